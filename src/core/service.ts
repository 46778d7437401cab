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

/**
 * Starts a background loop that calls `firstDone` once its first attempt is over (connected or failed), and returns
 * the loop with a promise of that moment — or of `signal` aborting, whichever comes first. An adapter's `start` awaits
 * `first`, so an unreachable peer does not hold up the daemon while the loop keeps retrying.
 */
export function startLoop(
  run: (firstDone: () => void) => Promise<void>,
  signal: AbortSignal,
): { loop: Promise<void>; first: Promise<void> } {
  let firstDone: () => void = () => {};
  const reached = new Promise<void>((r) => {
    firstDone = r;
  });
  const loop = run(firstDone);
  const onAbort = () => firstDone();
  signal.addEventListener("abort", onAbort, { once: true });
  const first = reached.finally(() => signal.removeEventListener("abort", onAbort));
  return { loop, first };
}
