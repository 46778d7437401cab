import type { Logger } from "./logger.js";

/**
 * Typed listeners for an adapter's events (`connected`, `gap`, …): `on` returns the unsubscribe function, and a
 * listener that throws is logged and does not stop the others or the adapter.
 */
export class TypedEvents<M extends object> {
  private readonly listeners = new Map<keyof M, Set<(e: never) => void>>();

  constructor(
    private readonly log: Pick<Logger, "error">,
    private readonly what: string,
  ) {}

  on<K extends keyof M>(event: K, fn: (e: M[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(fn as (e: never) => void);
    return () => set.delete(fn as (e: never) => void);
  }

  emit<K extends keyof M>(event: K, e: M[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        (fn as (e: M[K]) => void)(e);
      } catch (err) {
        this.log.error({ err, event }, `${this.what} event listener failed`);
      }
    }
  }
}
