/** Time source. Real time for the daemon, simulated time for the twin and tests (uvu has no fake timers). */
export interface Clock {
  /** ms since the Unix epoch. */
  now(): number;
}

export const realClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to; used by the twin and by tests. */
export class SimClock implements Clock {
  constructor(private t: number = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`SimClock.advance: ms must be >= 0, got ${ms}`);
    this.t += ms;
  }
  set(t: number): void {
    this.t = t;
  }
}
