import type { TagConfig } from "../../config/schema.js";
import type { Clock } from "../../core/clock.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import {
  DEFECT_CLASSES,
  type DefectClass,
  type InspectionEvent,
  type Quality,
  type RawSample,
} from "../../core/types.js";
import type { WriteResult } from "../../ingest/ports.js";
import { TwinLine } from "../twin-line.js";
import { PlantWriteError } from "./errors.js";
import { RemoteMode } from "./remote-mode.js";

/** Options of {@link Plant}. */
export interface PlantOptions {
  /** Line id, e.g. "Line_A": the prefix of node ids and topics. */
  lineId: string;
  /** Tag dictionary (config.tags). */
  tags: TagConfig[];
  seed: number;
  /** Simulated ms per wall ms. */
  speed: number;
  stepMs: number;
  itemsPerMin: number;
  /** LOCAL mode after this long without a heartbeat, wall ms. */
  heartbeatTimeoutMs: number;
  /** Wall clock for the twin's pacing and the heartbeat watchdog. */
  clock?: Clock;
  /** Simulated time at the start. Default: now, rounded down to a whole second. */
  startTs?: number;
  logger?: Logger;
}

/** The latest reading of a tag as the plant reports it. */
export interface PlantReading {
  value: number;
  /** Source timestamp (simulated time), ms since the epoch. */
  ts: number;
  quality: Quality;
}

/**
 * What a protocol front (OPC UA server, MQTT publisher, frame writer) hears from the plant. Called synchronously
 * from the twin's loop: keep it short, never throw (a throw is counted and logged, the plant keeps running).
 */
export interface PlantListener {
  /** One batch of samples from the twin, in time order. */
  onSamples?(batch: readonly RawSample[]): void;
  /** One item inspected by the MIK-1. */
  onInspection?(event: InspectionEvent): void;
  /** A setpoint took a new value through {@link Plant.writeSetpoint}. */
  onSetpoint?(tag: string, value: number, ts: number): void;
  /** REMOTE (true) / LOCAL (false) changed. */
  onRemoteMode?(remote: boolean, ts: number): void;
  /**
   * A tag's sensor went silent: no sample for {@link STALE_AFTER_PERIODS} sampling periods (the twin's sensor
   * dropout sends nothing, as a dead field device would). Its next sample ends the episode.
   */
  onSensorStale?(tag: string, last: PlantReading, ts: number): void;
}

/** A tag without a sample for this many of its sampling periods is stale. */
export const STALE_AFTER_PERIODS = 3;

/** MIK-1 counters since the plant started. */
export interface MikCounters {
  itemsInspected: number;
  defectiveItems: number;
  defectsPerClass: Record<DefectClass, number>;
  /** Share of good items among the last {@link QUALITY_WINDOW} (1 before the first item). */
  qualityScore: number;
  lastItemId: number;
  lastTs: number;
}

/** Items over which `qualityScore` is computed. */
export const QUALITY_WINDOW = 100;

/**
 * The twin as a plant: the line simulation in real time (or faster), the PLC-side rules for setpoint writes
 * (hard limits, clamping to the actuator range, REMOTE/LOCAL via a heartbeat) and one fan-out to the protocol
 * fronts. The fronts only translate; every rule about what the plant accepts lives here.
 */
export class Plant {
  readonly lineId: string;
  readonly tags: readonly TagConfig[];
  readonly twin: TwinLine;
  readonly remote: RemoteMode;
  private readonly byId: Map<string, TagConfig>;
  private readonly writable: Set<string>;
  private readonly latest = new Map<string, PlantReading>();
  private readonly stale = new Set<string>();
  private readonly setpointTs = new Map<string, number>();
  private readonly listeners: PlantListener[] = [];
  private readonly log: Logger;
  private readonly recentOk: Uint8Array = new Uint8Array(QUALITY_WINDOW);
  private recentCount = 0;
  private recentGood = 0;
  private readonly mik: MikCounters;
  private listenerErrors = 0;
  private writesApplied = 0;
  private writesClamped = 0;
  private writesRefused = 0;
  private running = false;

  constructor(opts: PlantOptions) {
    this.lineId = opts.lineId;
    this.tags = opts.tags.slice();
    this.log = opts.logger ?? silentLogger;
    this.twin = new TwinLine({
      tags: this.tags.slice(),
      seed: opts.seed,
      speed: opts.speed,
      stepMs: opts.stepMs,
      itemsPerMin: opts.itemsPerMin,
      clock: opts.clock,
      startTs: opts.startTs,
      logger: this.log,
    });
    this.remote = new RemoteMode({ timeoutMs: opts.heartbeatTimeoutMs, clock: opts.clock });
    this.byId = new Map(this.tags.map((t) => [t.id, t]));
    this.writable = new Set(this.twin.writableTags());
    const t0 = this.twin.now();
    // Before the first sample: the process value without sensor noise.
    for (const t of this.tags) this.latest.set(t.id, { value: this.twin.model.reading(t.id), ts: t0, quality: "good" });
    for (const id of this.writable) this.setpointTs.set(id, t0);
    this.mik = {
      itemsInspected: 0,
      defectiveItems: 0,
      defectsPerClass: Object.fromEntries(DEFECT_CLASSES.map((c) => [c, 0])) as Record<DefectClass, number>,
      qualityScore: 1,
      lastItemId: 0,
      lastTs: t0,
    };
    this.twin.attach(this.onBatch);
    this.twin.onInspection(this.onItem);
    this.remote.onChange((remote) => {
      this.log.info(
        { remote },
        remote ? "REMOTE: heartbeat present" : "LOCAL: heartbeat lost; setpoint writes refused",
      );
      this.emit((l) => l.onRemoteMode?.(remote, this.twin.now()));
    });
  }

  /** Adds a listener; returns a function that removes it. */
  addListener(listener: PlantListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Starts the simulation in real time and the heartbeat watchdog. */
  async start(signal: AbortSignal): Promise<void> {
    this.remote.start();
    await this.twin.start(signal);
    this.running = true;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.remote.stop();
    await this.twin.stop();
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Simulated time, ms since the epoch (the plant's clock: every source timestamp comes from it). */
  now(): number {
    return this.twin.now();
  }

  tag(id: string): TagConfig | undefined {
    return this.byId.get(id);
  }

  /** Tags with a writable setpoint. */
  writableTags(): string[] {
    return [...this.writable];
  }

  reading(tag: string): PlantReading | undefined {
    return this.latest.get(tag);
  }

  setpoint(tag: string): { value: number; ts: number } {
    return { value: this.twin.readSetpoint(tag), ts: this.setpointTs.get(tag) ?? this.twin.now() };
  }

  mikCounters(): Readonly<MikCounters> {
    return this.mik;
  }

  /**
   * A remote setpoint write with the PLC's rules: refused outside the tag's hard limits (`out_of_range`), for a
   * non-finite value (`invalid_value`) or in LOCAL mode (`local_mode`); otherwise clamped to the actuator range
   * and applied. The result says what was requested, what was applied and what reads back.
   * @throws PlantWriteError when refused (nothing applied).
   */
  async writeSetpoint(tag: string, value: number): Promise<WriteResult> {
    try {
      const cfg = this.byId.get(tag);
      if (!cfg) throw new PlantWriteError("unknown_tag", tag, `tag "${tag}" is not in the plant's tag dictionary`);
      if (!this.writable.has(tag)) {
        throw new PlantWriteError("not_writable", tag, `tag "${tag}" has no setpoint (no actuator lever)`);
      }
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new PlantWriteError("invalid_value", tag, `setpoint for "${tag}" must be a finite number`);
      }
      if (value < cfg.limits.min || value > cfg.limits.max) {
        throw new PlantWriteError(
          "out_of_range",
          tag,
          `setpoint ${value} for "${tag}" is outside its hard limits [${cfg.limits.min}, ${cfg.limits.max}] ${cfg.unit}`,
        );
      }
      if (!this.remote.isRemote()) {
        throw new PlantWriteError(
          "local_mode",
          tag,
          "the plant is in LOCAL mode (no controller heartbeat): remote setpoint writes are refused",
        );
      }
    } catch (err) {
      this.writesRefused++;
      throw err;
    }
    const res = await this.twin.write(tag, value);
    this.writesApplied++;
    if (res.applied !== value) this.writesClamped++;
    this.setpointTs.set(tag, res.ts);
    this.log.info({ tag, requested: value, applied: res.applied }, "setpoint written");
    this.emit((l) => l.onSetpoint?.(tag, res.applied, res.ts));
    return res;
  }

  stats() {
    return {
      twin: this.twin.stats(),
      remote: this.remote.stats(),
      writes_applied: this.writesApplied,
      writes_clamped: this.writesClamped,
      writes_refused: this.writesRefused,
      listener_errors: this.listenerErrors,
    };
  }

  private readonly onBatch = async (batch: RawSample[]): Promise<void> => {
    for (const s of batch) {
      const v = typeof s.value === "number" ? s.value : Number.NaN;
      this.latest.set(s.tag, { value: v, ts: s.ts, quality: s.quality ?? "good" });
      this.stale.delete(s.tag);
    }
    this.emit((l) => l.onSamples?.(batch));
    const now = this.twin.now();
    for (const t of this.tags) {
      const r = this.latest.get(t.id)!;
      if (this.stale.has(t.id) || now - r.ts <= STALE_AFTER_PERIODS * t.period_ms) continue;
      this.stale.add(t.id);
      this.log.warn({ tag: t.id, last_ts: r.ts }, "sensor silent: no sample for 3 sampling periods");
      this.emit((l) => l.onSensorStale?.(t.id, r, now));
    }
  };

  /** Tags whose sensor is silent right now. */
  staleTags(): string[] {
    return [...this.stale];
  }

  private readonly onItem = (e: InspectionEvent): void => {
    const m = this.mik;
    m.itemsInspected++;
    if (!e.ok) m.defectiveItems++;
    for (const d of e.defects) m.defectsPerClass[d.class]++;
    m.lastItemId = e.item_id;
    m.lastTs = e.ts;
    const slot = (this.recentCount++ % QUALITY_WINDOW) | 0;
    if (this.recentCount > QUALITY_WINDOW) this.recentGood -= this.recentOk[slot]!;
    this.recentOk[slot] = e.ok ? 1 : 0;
    this.recentGood += this.recentOk[slot]!;
    m.qualityScore = this.recentGood / Math.min(this.recentCount, QUALITY_WINDOW);
    this.emit((l) => l.onInspection?.(e));
  };

  private emit(call: (l: PlantListener) => void): void {
    for (const l of this.listeners) {
      try {
        call(l);
      } catch (err) {
        this.listenerErrors++;
        this.log.warn({ err }, "plant listener threw; the plant keeps running");
      }
    }
  }
}
