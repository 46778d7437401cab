import type { Config, TagConfig } from "../config/schema.js";
import { type Clock, realClock } from "../core/clock.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { throwIfAborted } from "../core/service.js";
import type { InspectionEvent, RawSample } from "../core/types.js";
import type { ActuatorSink, InspectionSource, SampleSink, SampleSource, WriteResult } from "../ingest/ports.js";
import { shortestStaleMs } from "../ingest/validate.js";
import { DefectModel } from "./defect-model.js";
import { LineModel, type LinePhysicsOptions } from "./line-model.js";

/** Options of {@link TwinLine}. */
export interface TwinLineOptions {
  /** Tag dictionary: which tags are sampled (each at its own `period_ms`), limits and actuator ranges. */
  tags: TagConfig[];
  /** Same seed + same setpoint writes at the same simulated times → the same samples and inspections. */
  seed: number;
  /** Simulated ms per real ms in real-time mode. */
  speed: number;
  /** Simulation step, ms of simulated time. */
  stepMs: number;
  /** Items inspected per minute at nominal belt speed (150 m/min). */
  itemsPerMin: number;
  /** Wall clock that paces real-time mode. Default: the system clock. */
  clock?: Clock;
  /** Simulated time at the start, ms since the epoch. Default: `clock.now()` rounded down to a whole second. */
  startTs?: number;
  logger?: Logger;
  /** Most simulation steps per timer callback in real-time mode (keeps the event loop responsive). Default 5000. */
  maxStepsPerTick?: number;
  /** Most samples per batch handed to the sink. Default 5000. */
  maxBatchSize?: number;
  /**
   * Most simulation steps whose samples go to the sink together (default: `maxStepsPerTick`). A callback catching
   * up many steps simulates and sends them in chunks of this size, each after the previous one was accepted, so the
   * oldest sample of a batch is never older (in line time) than this many steps when it is validated: set it below
   * the shortest stale horizon (see `shortestStaleMs` in ingest/validate.ts) or fast twins lose samples as stale.
   */
  maxStepsPerSend?: number;
  /** Line-specific physics figures (cullet share, wall thickness); defaults are DOMAIN.md's typical line. */
  physics?: LinePhysicsOptions;
  /**
   * Last sequence number already delivered (e.g. `store.lastSeq("twin")`), so a restarted twin continues the
   * sequence instead of repeating numbers the store would count as duplicates. Default 0.
   */
  startSeq?: number;
}

/** What {@link TwinLine.advance} produced. */
export interface TwinOutput {
  samples: RawSample[];
  inspections: InspectionEvent[];
}

/** Counters of a {@link TwinLine}, for health and metrics. */
export interface TwinStats {
  /** Simulated time, ms since the epoch. */
  simTs: number;
  steps: number;
  samples: number;
  batches: number;
  /** Batches the sink rejected (the twin logs and keeps running). */
  sinkErrors: number;
  /** Samples generated while no sink was attached. */
  samplesWithoutSink: number;
  itemsInspected: number;
  defectiveItems: number;
  /** Inspection handlers that threw. */
  handlerErrors: number;
  /** Simulated time skipped because real-time mode fell too far behind (slow sink or slow host). */
  skippedSimMs: number;
  /** Samples not produced because their sensor was in a dropout fault. */
  droppedSamples: number;
}

/** How long `stop()` waits for a batch already handed to the sink. */
const STOP_DRAIN_MS = 5_000;

/**
 * The digital twin as the daemon's line: a sample source, an inspection source (standing in for the MIK-1) and an
 * actuator sink, all in simulated time. Real-time mode (`start`) paces the simulation with timers; manual mode
 * (`advance`) steps synchronously for tests and dataset generation. Use one mode at a time.
 */
export class TwinLine implements SampleSource, InspectionSource, ActuatorSink {
  readonly id = "twin";
  readonly name = "twin";
  readonly model: LineModel;
  readonly defects: DefectModel;
  /** Simulated time as a {@link Clock}, for services that must run on the twin's time. */
  readonly simClock: Clock;

  private readonly tags: readonly TagConfig[];
  private readonly stepMs: number;
  private readonly speed: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly maxStepsPerTick: number;
  private readonly maxStepsPerSend: number;
  private readonly maxBatchSize: number;
  /** Next due time of each tag's sample, parallel to `tags`. */
  private readonly nextDue: Float64Array;
  private readonly periods: Float64Array;
  private seq: number;
  /** Simulated time requested by `advance` but short of a whole step. */
  private pendingMs = 0;

  private sink: SampleSink | undefined;
  private readonly handlers: ((e: InspectionEvent) => void)[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastWall = 0;
  private owedMs = 0;
  private signal: AbortSignal | undefined;
  private readonly counters = {
    steps: 0,
    samples: 0,
    batches: 0,
    sinkErrors: 0,
    samplesWithoutSink: 0,
    defectiveItems: 0,
    handlerErrors: 0,
    skippedSimMs: 0,
    droppedSamples: 0,
  };

  constructor(opts: TwinLineOptions) {
    if (!(opts.stepMs > 0) || !Number.isFinite(opts.stepMs)) {
      throw new RangeError(`TwinLine: stepMs must be a positive number, got ${opts.stepMs}`);
    }
    if (!(opts.speed > 0) || !Number.isFinite(opts.speed)) {
      throw new RangeError(`TwinLine: speed must be a positive number, got ${opts.speed}`);
    }
    this.tags = opts.tags.slice();
    this.stepMs = opts.stepMs;
    this.speed = opts.speed;
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    this.maxStepsPerTick = Math.max(1, Math.floor(opts.maxStepsPerTick ?? 5000));
    this.maxBatchSize = Math.max(1, Math.floor(opts.maxBatchSize ?? 5000));
    this.maxStepsPerSend = Math.max(1, Math.floor(opts.maxStepsPerSend ?? this.maxStepsPerTick));
    const startTs = opts.startTs ?? Math.floor(this.clock.now() / 1000) * 1000;
    this.model = new LineModel({
      tags: this.tags.slice(),
      seed: opts.seed,
      startTs,
      ...(opts.physics ? { physics: opts.physics } : {}),
    });
    this.defects = new DefectModel(this.model, { seed: opts.seed, itemsPerMin: opts.itemsPerMin });
    // Each tag samples on its own grid, first at the start (the line's state when the twin comes up).
    this.nextDue = new Float64Array(this.tags.length).fill(startTs);
    this.periods = Float64Array.from(this.tags, (t) => t.period_ms);
    this.simClock = { now: () => this.model.now() };
    this.seq = opts.startSeq ?? 0;
  }

  // --- SampleSource / InspectionSource ---

  attach(sink: SampleSink): void {
    this.sink = sink;
  }

  onInspection(handler: (event: InspectionEvent) => void): void {
    this.handlers.push(handler);
  }

  /**
   * Starts real-time mode: a timer advances simulated time by `speed × elapsed wall time` in whole steps (catching
   * up at most `maxStepsPerTick` steps per callback), hands the samples to the sink in batches and waits for each
   * batch before the next one (backpressure), and calls the inspection handlers. Idempotent while running.
   */
  async start(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.running) return;
    this.running = true;
    this.signal = signal;
    signal.addEventListener("abort", this.onAbort, { once: true });
    this.lastWall = this.clock.now();
    this.owedMs = 0;
    this.schedule();
  }

  /** Stops real-time mode: clears the timer and waits (bounded) for a batch already at the sink. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.signal = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const inFlight = this.inFlight;
    if (!inFlight) return;
    let drainTimer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      drainTimer = setTimeout(resolve, STOP_DRAIN_MS);
    });
    await Promise.race([inFlight, timeout]);
    clearTimeout(drainTimer);
  }

  // --- ActuatorSink ---

  writableTags(): string[] {
    return this.model.writableTags();
  }

  /**
   * Writes a setpoint; the twin clamps it to the tag's actuator range like a PLC and reports what it applied.
   * Rejects with TwinTagError for an unknown or non-writable tag or a non-finite value.
   */
  async write(tag: string, value: number): Promise<WriteResult> {
    const applied = this.model.setSetpoint(tag, value);
    return { tag, requested: value, applied, readBack: this.model.setpoint(tag), ts: this.model.now() };
  }

  readSetpoint(tag: string): number {
    return this.model.setpoint(tag);
  }

  // --- manual mode ---

  /**
   * Advances simulated time by `ms` synchronously (whole steps; a remainder carries over to the next call) and
   * returns the samples and inspections produced. Neither the sink nor the handlers are called.
   * @throws Error while real-time mode is running.
   */
  advance(ms: number): TwinOutput {
    if (this.running) throw new Error("TwinLine.advance: stop real-time mode before stepping manually");
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`TwinLine.advance: ms must be >= 0, got ${ms}`);
    const out: TwinOutput = { samples: [], inspections: [] };
    this.pendingMs += ms;
    const steps = Math.floor(this.pendingMs / this.stepMs);
    this.pendingMs -= steps * this.stepMs;
    this.runSteps(steps, out.samples, out.inspections);
    return out;
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    return this.model.now();
  }

  stats(): TwinStats {
    return { simTs: this.model.now(), itemsInspected: this.defects.itemsInspected, ...this.counters };
  }

  // --- internals ---

  private runSteps(steps: number, samples: RawSample[], inspections: InspectionEvent[]): void {
    const model = this.model;
    const dt = this.stepMs;
    const n = this.tags.length;
    const firstInspection = inspections.length;
    const firstSample = samples.length;
    for (let s = 0; s < steps; s++) {
      const tPrev = model.now();
      model.step(dt);
      const t = model.now();
      this.defects.step(dt, inspections);
      for (let i = 0; i < n; i++) {
        let due = this.nextDue[i]!;
        if (due > t) continue;
        const period = this.periods[i]!;
        const tag = this.tags[i]!.id;
        for (; due <= t; due += period) {
          const frac = due <= tPrev ? 0 : (due - tPrev) / dt;
          const value = model.readSensor(i, frac);
          // A sensor in dropout sends nothing (no sample, no sequence number), as a silent field device would.
          if (value === undefined) {
            this.counters.droppedSamples++;
            continue;
          }
          samples.push({ tag, ts: due, value, quality: "good", source: this.id, seq: ++this.seq });
        }
        this.nextDue[i] = due;
      }
    }
    this.counters.steps += steps;
    this.counters.samples += samples.length - firstSample;
    for (let k = firstInspection; k < inspections.length; k++) if (!inspections[k]!.ok) this.counters.defectiveItems++;
  }

  private readonly onAbort = (): void => {
    void this.stop();
  };

  private schedule(): void {
    // Tick about twice per step of wall time, but not faster than every 10 ms nor slower than every 200 ms.
    const tickMs = Math.min(200, Math.max(10, this.stepMs / this.speed / 2));
    this.timer = setTimeout(this.tick, tickMs);
  }

  private readonly tick = (): void => {
    this.timer = undefined;
    if (!this.running) return;
    const wall = this.clock.now();
    this.owedMs += Math.max(0, wall - this.lastWall) * this.speed;
    this.lastWall = wall;
    const steps = Math.min(Math.floor(this.owedMs / this.stepMs), this.maxStepsPerTick);
    this.owedMs -= steps * this.stepMs;
    // More debt than a few callbacks can repay means the host or the sink cannot keep up: skip it, and say so.
    const maxOwed = 4 * this.maxStepsPerTick * this.stepMs;
    if (this.owedMs > maxOwed) {
      this.counters.skippedSimMs += this.owedMs - maxOwed;
      this.owedMs = maxOwed;
    }
    const first = this.runChunk(Math.min(steps, this.maxStepsPerSend));
    if (first.length === 0 && steps <= this.maxStepsPerSend) {
      this.schedule();
      return;
    }
    this.inFlight = this.sendChunks(first, steps - Math.min(steps, this.maxStepsPerSend)).finally(() => {
      this.inFlight = undefined;
      if (this.running) this.schedule();
    });
  };

  /** Simulates `steps` steps, notifies the inspection handlers and returns the samples. */
  private runChunk(steps: number): RawSample[] {
    const samples: RawSample[] = [];
    const inspections: InspectionEvent[] = [];
    this.runSteps(steps, samples, inspections);
    for (const e of inspections) this.notify(e);
    return samples;
  }

  /** Sends `samples`, then simulates and sends the remaining steps chunk by chunk (stops early when stopped). */
  private async sendChunks(samples: RawSample[], remaining: number): Promise<void> {
    let next = samples;
    for (;;) {
      if (next.length > 0) await this.send(next);
      if (remaining <= 0 || !this.running) return;
      const n = Math.min(remaining, this.maxStepsPerSend);
      remaining -= n;
      next = this.runChunk(n);
    }
  }

  private notify(e: InspectionEvent): void {
    for (const h of this.handlers) {
      try {
        h(e);
      } catch (err) {
        this.counters.handlerErrors++;
        this.log.warn({ err, item_id: e.item_id }, "inspection handler threw; continuing");
      }
    }
  }

  /** Hands samples to the sink in bounded batches, one at a time; never rejects. */
  private async send(samples: RawSample[]): Promise<void> {
    const sink = this.sink;
    if (!sink) {
      this.counters.samplesWithoutSink += samples.length;
      return;
    }
    for (let i = 0; i < samples.length; i += this.maxBatchSize) {
      const batch = i === 0 && samples.length <= this.maxBatchSize ? samples : samples.slice(i, i + this.maxBatchSize);
      try {
        await sink(batch);
        this.counters.batches++;
      } catch (err) {
        this.counters.sinkErrors++;
        this.log.warn(
          { err, samples: batch.length, first_seq: batch[0]?.seq },
          "sample sink rejected a batch; the twin keeps running",
        );
      }
    }
  }
}

/** TwinLine options from the daemon's config (`config.twin` and `config.tags`). */
export function twinOptionsFromConfig(
  config: Pick<Config, "twin" | "tags" | "validation">,
  extra: Pick<TwinLineOptions, "clock" | "startTs" | "logger" | "startSeq"> = {},
): TwinLineOptions {
  return {
    tags: config.tags,
    seed: config.twin.seed,
    speed: config.twin.speed,
    stepMs: config.twin.step_ms,
    itemsPerMin: config.twin.items_per_min,
    // a catch-up after a stalled event loop must not hand the validator samples older than its stale horizon
    maxStepsPerSend: Math.max(1, Math.floor(shortestStaleMs(config.tags, config.validation) / config.twin.step_ms)),
    ...extra,
  };
}
