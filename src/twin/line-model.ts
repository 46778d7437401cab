import type { TagConfig } from "../config/schema.js";
import { DelayBuffer } from "./delay-buffer.js";
import { TwinTagError } from "./errors.js";
import { Rng } from "./rng.js";

/*
 * The process side of the twin: every default tag as a first-order lag (with an actuator slew limit) toward a
 * target set by its setpoint and by couplings to upstream variables, plus a slow Ornstein–Uhlenbeck disturbance
 * (process wander) and white sensor noise added per sample. Exact discretisation (exp(-dt/τ)) keeps every
 * update stable for any step size. No timers, no wall clock: `step(dt)` is the only way time moves.
 *
 * Noise levels are chosen so that, in steady state, a sample-to-sample jump stays below ~1/5 of the tag's
 * `max_rate_per_s × period` (validation quarantines faster jumps) and the values stay at least 4σ inside the
 * normal band; slew limits keep even a full-range setpoint jump below `max_rate_per_s`.
 */

const MIN = 60_000;
const HOUR = 60 * MIN;

/** Dynamics of one process variable. Times in ms, rates in unit/s. */
export interface ChannelSpec {
  nominal: number;
  /** Time constant of the response toward the target (0 = follows it at once). */
  tauMs: number;
  /** Largest rate of change of the deterministic part (actuator or process slew), unit/s. */
  slewPerS: number;
  /** Stationary standard deviation and correlation time of the process disturbance (OU process). */
  ouSigma: number;
  ouTauMs: number;
  /** Sensor noise standard deviation, drawn per sample. */
  measSigma: number;
  /** The model has a physical lever for this variable: it follows a writable setpoint. */
  lever: boolean;
}

/** State of one process variable; the deterministic part (`base`) plus the disturbance (`dist`). */
export class Channel {
  setpoint: number;
  base: number;
  dist = 0;
  /** Process value now and before the last step (samples interpolate between them). */
  value: number;
  prev: number;
  private dtMs = -1;
  private lagK = 1;
  private slew = Number.POSITIVE_INFINITY;
  private ouA = 1;
  private ouB = 0;

  constructor(
    readonly id: string,
    readonly spec: ChannelSpec,
  ) {
    this.setpoint = spec.nominal;
    this.base = spec.nominal;
    this.value = spec.nominal;
    this.prev = spec.nominal;
  }

  /** One step of the lag toward `target` plus one OU step driven by the standard normal `noise`. */
  advance(target: number, dtMs: number, noise: number): void {
    if (dtMs !== this.dtMs) this.coefficients(dtMs);
    let d = (target - this.base) * this.lagK;
    if (d > this.slew) d = this.slew;
    else if (d < -this.slew) d = -this.slew;
    this.base += d;
    this.finish(noise);
  }

  /** One step of an integrating variable (e.g. melt level): `delta` is added to the deterministic part. */
  integrate(delta: number, dtMs: number, noise: number): void {
    if (dtMs !== this.dtMs) this.coefficients(dtMs);
    this.base += delta;
    this.finish(noise);
  }

  private finish(noise: number): void {
    this.dist = this.dist * this.ouA + this.ouB * noise;
    this.prev = this.value;
    this.value = this.base + this.dist;
  }

  // Recomputed only when the step size changes: exp() per variable per step is the costliest part otherwise.
  private coefficients(dtMs: number): void {
    const s = this.spec;
    this.dtMs = dtMs;
    this.lagK = s.tauMs > 0 ? 1 - Math.exp(-dtMs / s.tauMs) : 1;
    this.slew = Number.isFinite(s.slewPerS) ? (s.slewPerS * dtMs) / 1000 : Number.POSITIVE_INFINITY;
    this.ouA = s.ouTauMs > 0 ? Math.exp(-dtMs / s.ouTauMs) : 0;
    this.ouB = s.ouSigma * Math.sqrt(1 - this.ouA * this.ouA);
  }
}

/** The process variables the physics knows, by role. */
export interface ProcessChannels {
  batchFlow: Channel;
  furnaceTemperature: Channel;
  furnacePressure: Channel;
  meltLevel: Channel;
  furnacePower: Channel;
  o2: Channel;
  co2: Channel;
  beltSpeed: Channel;
  moldTemperature: Channel;
  formingPressure: Channel;
  zone1: Channel;
  zone2: Channel;
  zone3: Channel;
  coolingRate: Channel;
  humidity: Channel;
}

type Role = keyof ProcessChannels;

const spec = (
  nominal: number,
  tauMs: number,
  slewPerS: number,
  ouSigma: number,
  ouTauMs: number,
  measSigma: number,
  lever: boolean,
): ChannelSpec => ({ nominal, tauMs, slewPerS, ouSigma, ouTauMs, measSigma, lever });

const INF = Number.POSITIVE_INFINITY;

/**
 * The default tags' dynamics (DOMAIN.md). Levers the default dictionary does not mark writable (damper, air/fuel
 * ratio) are modelled too, so a plant config that adds an `actuator` to furnace_pressure or o2_percent works.
 */
const KNOWN: Record<string, { role: Role; spec: ChannelSpec }> = {
  // Feeder: follows its setpoint in ~20 s; a 60 s-correlated ±25 kg/h flutter (batch surges are larger).
  batch_flow: { role: "batchFlow", spec: spec(2000, 20_000, 50, 25, MIN, 5, true) },
  // Slow: τ 35 min after a 4 min transport delay of burner power (see FURNACE_* below); ±4 °C slow wander.
  furnace_temperature: { role: "furnaceTemperature", spec: spec(1500, 35 * MIN, 1, 4, 40 * MIN, 0.1, false) },
  // Damper setpoint + burner power; crown pressure settles within minutes.
  furnace_pressure: { role: "furnacePressure", spec: spec(15, MIN, 0.5, 0.8, 5 * MIN, 0.1, true) },
  // Integrator of batch in vs glass pulled (see melt-level constants).
  melt_level: { role: "meltLevel", spec: spec(2500, 0, INF, 5, 20 * MIN, 1.5, false) },
  // Burner power feedback: reaches a new setpoint in seconds, slewing at 2 %/s.
  furnace_power: { role: "furnacePower", spec: spec(85, 3_000, 2, 0.3, 30_000, 0.1, true) },
  // Air/fuel ratio setpoint, lowered by more fuel; combustion gases settle in ~2 min.
  o2_percent: { role: "o2", spec: spec(5, 2 * MIN, 0.01, 0.1, 20 * MIN, 0.03, true) },
  co2_percent: { role: "co2", spec: spec(10, 2 * MIN, 0.02, 0.1, 20 * MIN, 0.05, false) },
  // Motor: τ 8 s with a 3 (m/min)/s ramp, so a 50 m/min step settles in ~40 s.
  belt_speed: { role: "beltSpeed", spec: spec(150, 8_000, 3, 0.4, 20_000, 0.15, true) },
  // Mold heater: τ 20 min (DOMAIN: 15–30 min).
  mold_temperature: { role: "moldTemperature", spec: spec(320, 20 * MIN, 0.5, 1.5, 5 * MIN, 0.12, true) },
  // Valve: τ 1.5 s (DOMAIN: 1–5 s), slewing at 8 MPa/s (below the 15 MPa/s validation limit).
  forming_pressure: { role: "formingPressure", spec: spec(50, 1_500, 8, 0.8, 30_000, 0.2, true) },
  // Lehr zones: τ 45 min each, so a profile change settles in 2–4 h.
  annealing_zone1: { role: "zone1", spec: spec(600, 45 * MIN, 0.2, 0.8, 20 * MIN, 0.12, true) },
  annealing_zone2: { role: "zone2", spec: spec(550, 45 * MIN, 0.2, 0.8, 20 * MIN, 0.12, true) },
  annealing_zone3: { role: "zone3", spec: spec(500, 45 * MIN, 0.2, 0.8, 20 * MIN, 0.12, true) },
  // Lehr fans/heaters: τ 40 min (DOMAIN: 30–60 min).
  cooling_rate: { role: "coolingRate", spec: spec(3.5, 40 * MIN, 0.01, 0.12, 10 * MIN, 0.03, true) },
  // Weather: a 6 h-correlated random walk around 50 % (σ 5 %).
  humidity: { role: "humidity", spec: spec(50, 0, INF, 5, 6 * HOUR, 0.3, false) },
};

/** Tag ids of the physics' own variables (the default dictionary). */
export const KNOWN_TAG_IDS: readonly string[] = Object.keys(KNOWN);

/** Furnace: steady state 1500 °C at 85 % power; +3 °C per % power (±10 % → ±30 °C); colder with more batch. */
const FURNACE_T_AT_NOMINAL = 1500;
const FURNACE_K_POWER = 3;
const FURNACE_K_BATCH = -0.02;
/** Burner power reaches the melt after this dead time (combustion space, crown, then the melt). */
export const FURNACE_POWER_DELAY_MS = 4 * MIN;
/** Melt level: 25 kg of glass per mm; pull of 2000 kg/h at 150 m/min, rising with the hydrostatic head. */
const MELT_KG_PER_MM = 25;
const NOMINAL_PULL_KG_H = 2000;
/** Mold warms with more gobs per minute. */
const MOLD_K_BELT = 0.1;

/** Options of {@link LineModel}. */
export interface LineModelOptions {
  /** Tag dictionary: which tags are sampled, their limits and actuator ranges. */
  tags: TagConfig[];
  seed: number;
  /** Simulated time at construction, ms since the epoch. Default 2026-01-01T00:00:00Z. */
  startTs?: number;
}

/**
 * The line's process state: pure, synchronous, deterministic for a seed and a sequence of `setSetpoint` calls.
 * Simulates all default tags even when the dictionary omits some (the defect model needs them); a dictionary tag
 * the physics does not know becomes a generic lagged variable around the middle of its normal band.
 */
export class LineModel {
  /** Configured tags, in dictionary order; `measure(i)` indexes this. */
  readonly tags: readonly TagConfig[];
  /** The physics' variables by role; read-only outside the model (the defect model reads it). */
  readonly process: ProcessChannels;
  private t: number;
  private readonly processRng: Rng;
  private readonly sensorRng: Rng;
  private readonly generic: Channel[];
  private readonly byTag = new Map<string, { channel: Channel; tag: TagConfig | undefined }>();
  /** Channel of each configured tag, parallel to `tags`. */
  private readonly tagChannels: Channel[];
  private readonly limitsMin: Float64Array;
  private readonly limitsMax: Float64Array;
  private readonly writable: string[];
  private readonly powerDelay: DelayBuffer;
  private readonly scratch = new Float64Array(1);

  constructor(opts: LineModelOptions) {
    this.tags = opts.tags.slice();
    this.t = opts.startTs ?? Date.UTC(2026, 0, 1);
    this.processRng = Rng.derive(opts.seed, 1);
    this.sensorRng = Rng.derive(opts.seed, 2);
    const configured = new Map(this.tags.map((t) => [t.id, t]));

    const process = {} as Record<Role, Channel>;
    for (const [id, k] of Object.entries(KNOWN)) {
      const ch = new Channel(id, k.spec);
      process[k.role] = ch;
      this.byTag.set(id, { channel: ch, tag: configured.get(id) });
    }
    this.process = process;
    this.generic = [];
    for (const tag of this.tags) {
      if (KNOWN[tag.id]) continue;
      const ch = new Channel(tag.id, genericSpec(tag));
      this.generic.push(ch);
      this.byTag.set(tag.id, { channel: ch, tag });
    }

    this.writable = [];
    for (const tag of this.tags) {
      const entry = this.byTag.get(tag.id);
      if (!entry || !tag.actuator || !entry.channel.spec.lever) continue;
      this.writable.push(tag.id);
      // Start at the nominal operating point, inside what the actuator accepts.
      const ch = entry.channel;
      const sp = clamp(ch.spec.nominal, tag.actuator.min, tag.actuator.max);
      ch.setpoint = sp;
      ch.base = sp;
      ch.value = sp;
      ch.prev = sp;
    }

    this.tagChannels = this.tags.map((t) => this.byTag.get(t.id)!.channel);
    this.limitsMin = Float64Array.from(this.tags, (t) => t.limits.min);
    this.limitsMax = Float64Array.from(this.tags, (t) => t.limits.max);
    this.powerDelay = new DelayBuffer(FURNACE_POWER_DELAY_MS, this.t, [process.furnacePower.value]);
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    return this.t;
  }

  /** Advances the process by `dtMs` (> 0). */
  step(dtMs: number): void {
    if (!(dtMs > 0) || !Number.isFinite(dtMs)) throw new RangeError(`LineModel.step: dtMs must be > 0, got ${dtMs}`);
    const p = this.process;
    this.t += dtMs;
    const t = this.t;

    // Upstream first: levers, then the variables they drive.
    p.furnacePower.advance(p.furnacePower.setpoint, dtMs, this.noise(p.furnacePower));
    p.batchFlow.advance(p.batchFlow.setpoint, dtMs, this.noise(p.batchFlow));
    p.beltSpeed.advance(p.beltSpeed.setpoint, dtMs, this.noise(p.beltSpeed));
    p.formingPressure.advance(p.formingPressure.setpoint, dtMs, this.noise(p.formingPressure));

    const power = p.furnacePower.value;
    p.furnacePressure.advance(p.furnacePressure.setpoint + 0.08 * (power - 85), dtMs, this.noise(p.furnacePressure));
    p.o2.advance(p.o2.setpoint - 0.03 * (power - 85), dtMs, this.noise(p.o2));
    p.co2.advance(10 + 0.06 * (power - 85) - 0.8 * (p.o2.value - 5), dtMs, this.noise(p.co2));

    this.scratch[0] = power;
    this.powerDelay.push(t, this.scratch);
    const delayedPower = this.powerDelay.readScalar(t);
    const furnaceTarget =
      FURNACE_T_AT_NOMINAL + FURNACE_K_POWER * (delayedPower - 85) + FURNACE_K_BATCH * (p.batchFlow.value - 2000);
    p.furnaceTemperature.advance(furnaceTarget, dtMs, this.noise(p.furnaceTemperature));

    const level = p.meltLevel.base;
    const pull = NOMINAL_PULL_KG_H * (p.beltSpeed.value / 150) * (1 + (level - 2500) / 2500);
    const dLevel = ((p.batchFlow.value - pull) / 3_600_000) * (dtMs / MELT_KG_PER_MM);
    p.meltLevel.integrate(dLevel, dtMs, this.noise(p.meltLevel));

    p.moldTemperature.advance(
      p.moldTemperature.setpoint + MOLD_K_BELT * (p.beltSpeed.value - 150),
      dtMs,
      this.noise(p.moldTemperature),
    );
    p.zone1.advance(p.zone1.setpoint, dtMs, this.noise(p.zone1));
    p.zone2.advance(p.zone2.setpoint, dtMs, this.noise(p.zone2));
    p.zone3.advance(p.zone3.setpoint, dtMs, this.noise(p.zone3));
    p.coolingRate.advance(p.coolingRate.setpoint, dtMs, this.noise(p.coolingRate));
    p.humidity.advance(p.humidity.setpoint, dtMs, this.noise(p.humidity));

    for (const ch of this.generic) ch.advance(ch.setpoint, dtMs, this.noise(ch));
  }

  /** One standard normal per disturbed channel per step, in a fixed order: setpoints never shift the stream. */
  private noise(ch: Channel): number {
    return ch.spec.ouSigma > 0 ? this.processRng.gaussian() : 0;
  }

  /**
   * Sensor reading of configured tag `i` at fraction `frac` (0..1) of the last step: the process value
   * interpolated between the step's ends, plus sensor noise, clamped to the tag's hard limits (sensor range).
   * Draws from the sensor stream, so the number of samples taken never changes the process.
   */
  measure(i: number, frac: number): number {
    const ch = this.tagChannels[i];
    if (!ch) throw new RangeError(`LineModel.measure: no tag at index ${i}`);
    const v = ch.prev + (ch.value - ch.prev) * frac + ch.spec.measSigma * this.sensorRng.gaussian();
    return clamp(v, this.limitsMin[i] as number, this.limitsMax[i] as number);
  }

  /** Noise-free process value of a tag (samples add sensor noise). */
  reading(tag: string): number {
    return this.entry(tag).channel.value;
  }

  /** Noise-free process values of every configured tag. */
  readings(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < this.tags.length; i++) out[this.tags[i]!.id] = this.tagChannels[i]!.value;
    return out;
  }

  /** Tags with a lever the twin can move: configured with `actuator` and modelled with a setpoint. */
  writableTags(): string[] {
    return this.writable.slice();
  }

  /** Current setpoint of a writable tag. */
  setpoint(tag: string): number {
    return this.writableEntry(tag).channel.setpoint;
  }

  /** Setpoints of every writable tag. */
  setpoints(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const id of this.writable) out[id] = this.byTag.get(id)!.channel.setpoint;
    return out;
  }

  /**
   * Sets a lever's setpoint, clamped to the tag's `actuator` range as a PLC would, and returns the value applied.
   * The step limit `actuator.max_step` is the actuation gate's business, not the plant's: it is not enforced here.
   * @throws TwinTagError for an unknown or non-writable tag or a non-finite value.
   */
  setSetpoint(tag: string, value: number): number {
    const { channel, tag: cfg } = this.writableEntry(tag);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new TwinTagError("invalid_value", tag, `setpoint for "${tag}" must be a finite number, got ${value}`);
    }
    const act = cfg!.actuator!;
    const applied = clamp(value, act.min, act.max);
    channel.setpoint = applied;
    return applied;
  }

  private entry(tag: string): { channel: Channel; tag: TagConfig | undefined } {
    const e = this.byTag.get(tag);
    if (!e?.tag) {
      throw new TwinTagError(
        "unknown_tag",
        tag,
        `tag "${tag}" is not in the twin's tag dictionary; known tags: ${this.tags.map((t) => t.id).join(", ")}`,
      );
    }
    return e;
  }

  private writableEntry(tag: string): { channel: Channel; tag: TagConfig | undefined } {
    const e = this.entry(tag);
    if (!this.writable.includes(tag)) {
      throw new TwinTagError(
        "not_writable",
        tag,
        `tag "${tag}" is not writable on the twin (no actuator lever); writable tags: ${this.writable.join(", ")}`,
      );
    }
    return e;
  }
}

/**
 * Dynamics for a dictionary tag the physics does not know: lag toward its setpoint (or the middle of the normal
 * band) with a wander that stays well inside the band and jumps well below `max_rate_per_s`.
 */
function genericSpec(tag: TagConfig): ChannelSpec {
  const nominal = (tag.normal.min + tag.normal.max) / 2;
  const half = Math.max((tag.normal.max - tag.normal.min) / 2, 0);
  const periodS = tag.period_ms / 1000;
  const ouTauMs = Math.max(MIN, 10 * tag.period_ms);
  const maxStep = tag.max_rate_per_s !== undefined ? tag.max_rate_per_s * periodS : INF;
  // OU increment per sample ≈ σ·sqrt(2·period/τ); keep it and the sensor noise to ~1/10 of the allowed jump.
  const ouSigma = Math.min(half / 6, (0.1 * maxStep) / Math.sqrt((2 * tag.period_ms) / ouTauMs));
  const measSigma = Math.min(half / 30, 0.05 * maxStep);
  const slew = tag.max_rate_per_s !== undefined ? 0.5 * tag.max_rate_per_s : INF;
  return spec(nominal, 30_000, slew, ouSigma, ouTauMs, measSigma, true);
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}
