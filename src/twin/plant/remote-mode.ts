import { type Clock, realClock } from "../../core/clock.js";

/** Options of {@link RemoteMode}. */
export interface RemoteModeOptions {
  /** LOCAL once no heartbeat arrived for this long (wall time: the controller runs in real time). */
  timeoutMs: number;
  /** Wall clock. Default: the system clock. */
  clock?: Clock;
  /** How often the watchdog looks at the clock. Default: timeout / 4, between 50 ms and 1 s. */
  checkEveryMs?: number;
}

/**
 * The PLC's remote/local switch, driven by a heartbeat watchdog. The remote controller (glassd) writes a counter;
 * every write of a value different from the last one is a beat. The plant is REMOTE while beats keep coming and
 * falls back to LOCAL `timeoutMs` after the last one, so a controller that hung, crashed or lost the network can
 * no longer drive the line: in LOCAL mode setpoint writes are refused and the line keeps its last setpoints.
 * A counter written again with the same value is not a beat (a stuck controller repeating itself is not alive).
 * The plant starts LOCAL; the first beat makes it REMOTE.
 */
export class RemoteMode {
  readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly checkEveryMs: number;
  private lastBeatAt = Number.NEGATIVE_INFINITY;
  private lastCounter: number | undefined;
  private remote = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly handlers: ((remote: boolean) => void)[] = [];
  private beatsCounted = 0;
  private transitions = 0;

  constructor(opts: RemoteModeOptions) {
    if (!(opts.timeoutMs > 0) || !Number.isFinite(opts.timeoutMs)) {
      throw new RangeError(`RemoteMode: timeoutMs must be a positive number, got ${opts.timeoutMs}`);
    }
    this.timeoutMs = opts.timeoutMs;
    this.clock = opts.clock ?? realClock;
    this.checkEveryMs = opts.checkEveryMs ?? Math.min(1000, Math.max(50, opts.timeoutMs / 4));
  }

  /** Called on every change of mode (true = REMOTE). Handlers must not throw. */
  onChange(handler: (remote: boolean) => void): void {
    this.handlers.push(handler);
  }

  /** Starts the watchdog timer. Idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A heartbeat write. Returns true when it counted as a beat (the counter changed). */
  heartbeat(counter: number): boolean {
    if (this.lastCounter !== undefined && counter === this.lastCounter) {
      this.check();
      return false;
    }
    this.lastCounter = counter;
    this.lastBeatAt = this.clock.now();
    this.beatsCounted++;
    this.set(true);
    return true;
  }

  /** Last counter written, if any. */
  counter(): number | undefined {
    return this.lastCounter;
  }

  /**
   * REMOTE now? Looks at the clock itself rather than trusting the timer alone, so a write that races the
   * watchdog's tick is still refused once the timeout has passed.
   */
  isRemote(): boolean {
    this.check();
    return this.remote;
  }

  stats(): { remote: boolean; beats: number; transitions: number; last_beat_age_ms: number | null } {
    const age = this.clock.now() - this.lastBeatAt;
    return {
      remote: this.remote,
      beats: this.beatsCounted,
      transitions: this.transitions,
      last_beat_age_ms: Number.isFinite(age) ? age : null,
    };
  }

  private check(): void {
    if (this.remote && this.clock.now() - this.lastBeatAt > this.timeoutMs) this.set(false);
  }

  private set(remote: boolean): void {
    if (remote === this.remote) return;
    this.remote = remote;
    this.transitions++;
    for (const h of this.handlers) h(remote);
  }
}
