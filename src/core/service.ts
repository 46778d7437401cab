/**
 * A long-running part of the daemon. The composition root starts services in order and stops them in reverse.
 * `start` must honour `signal`: when it is aborted, give up promptly (throw `signal.reason`).
 * `stop` must be idempotent and must not throw for a service that never started.
 */
export interface Service {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/** Throws the abort reason when `signal` is aborted; call after every await in a start sequence. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("start aborted");
}
