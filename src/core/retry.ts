/*
 * Retry policy as data (STYLE.md: `initialDelay, maxDelay, maxRetry, jitter`), shared by the adapters that reconnect
 * to a peer (serial bridge, OPC UA).
 */
export interface RetryPolicy {
  /** First delay, ms. */
  initialDelayMs: number;
  /** Delays double up to this, ms. */
  maxDelayMs: number;
  /** Attempts before giving up; Infinity = never give up (a plant device may come back any time). */
  maxRetry: number;
  /** Relative spread, 0..1: each delay is multiplied by a uniform factor in [1 − jitter, 1 + jitter]. */
  jitter: number;
}

export const DEFAULT_RETRY: RetryPolicy = { initialDelayMs: 250, maxDelayMs: 10_000, maxRetry: Infinity, jitter: 0.2 };

/** Delay before retry number `attempt` (0-based), with full-range jitter so that many clients do not sync up. */
export function retryDelay(p: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** Math.min(attempt, 30));
  const j = Math.min(1, Math.max(0, p.jitter));
  return Math.max(0, Math.round(base * (1 - j + 2 * j * random())));
}
