import type { Clock } from "../../core/clock.js";
import { TooManyAttemptsError } from "./errors.js";

export interface RateLimitOptions {
  /** Failures allowed per key within `windowMs`. */
  maxFailures: number;
  windowMs: number;
  /** Most keys tracked; beyond it the oldest window is forgotten (named drop policy: evict-oldest). */
  maxEntries: number;
}

interface Window {
  start: number;
  failures: number;
}

/**
 * Counts failures per key in fixed windows that start at the first failure. In memory only: a restart forgets, which
 * is fine for slowing down password guessing on a plant network, and keeps the login path free of disk writes.
 */
export class FailureLimiter {
  private readonly windows = new Map<string, Window>();
  /** Windows evicted because the map was full; a sign of a distributed guessing attempt. */
  evicted = 0;

  constructor(
    private readonly opts: RateLimitOptions,
    private readonly clock: Clock,
  ) {}

  /** Throws {@link TooManyAttemptsError} when `key` used up its failures in the current window. */
  check(key: string): void {
    const w = this.current(key);
    if (w && w.failures >= this.opts.maxFailures)
      throw new TooManyAttemptsError(Math.max(1, Math.ceil((w.start + this.opts.windowMs - this.clock.now()) / 1000)));
  }

  fail(key: string): void {
    const w = this.current(key);
    if (w) {
      w.failures++;
      return;
    }
    if (this.windows.size >= this.opts.maxEntries) this.makeRoom();
    this.windows.set(key, { start: this.clock.now(), failures: 1 });
  }

  /** Takes back one failure (an attempt counted up front that then succeeded). */
  forgive(key: string): void {
    const w = this.windows.get(key);
    if (w && --w.failures <= 0) this.windows.delete(key);
  }

  reset(key: string): void {
    this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }

  private current(key: string): Window | undefined {
    const w = this.windows.get(key);
    if (w && this.clock.now() - w.start >= this.opts.windowMs) {
      this.windows.delete(key);
      return undefined;
    }
    return w;
  }

  private makeRoom(): void {
    const now = this.clock.now();
    for (const [k, w] of this.windows) if (now - w.start >= this.opts.windowMs) this.windows.delete(k);
    // Map iteration is insertion order, so the first key is the oldest window.
    while (this.windows.size >= this.opts.maxEntries) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
      this.evicted++;
    }
  }
}
