import type { TagConfig } from "../config/schema.js";
import { coolingDeltaTK, viscosityLog10 } from "../features/domain.js";
import { DelayBuffer } from "./delay-buffer.js";
import { TwinTagError } from "./errors.js";
import {
  batchHeatW,
  batchMeltRatePerS,
  burnerHeatW,
  clamp,
  effectiveAnnealingRate,
  FOREHEARTH,
  FORMING,
  FURNACE,
  furnaceEquilibriumC,
  furnaceLoss0W,
  furnaceLossW,
  furnaceTauS,
  gobTemperatureC,
  NOMINAL,
  REFINING,
  releaseTemperatureC,
  residualStressMPa,
  sagRatio,
  seedsPerKgTarget,
  unmeltedIndex,
  unrelaxedDeltaTK,
  wallSpread,
} from "./physics.js";
import { Rng } from "./rng.js";

/*
 * The process side of the twin. Every default tag is a channel: a deterministic part (a first-order lag with an
 * actuator slew limit toward a target set by its setpoint and by couplings, or an integrated balance), a slow
 * Ornstein–Uhlenbeck disturbance (process wander), an offset driven by disturbances, and white sensor noise added
 * per sample. Below the tags sit the process states the defects come from (physics.ts): the furnace heat balance,
 * the batch blanket and unmelted carry-over, the refiner's seed population, the forehearth transit to the gob,
 * forming (release temperature, sag, wall spread) and the lehr (frozen-in ΔT and residual stress). Exact
 * discretisation (exp(-dt/τ)) keeps every update stable for any step size. No timers, no wall clock: `step(dt)`
 * is the only way time moves.
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

/** State of one process variable: the deterministic part (`base`), the disturbance (`dist`) and an `offset`. */
export class Channel {
  setpoint: number;
  base: number;
  dist = 0;
  /** Added by disturbances (e.g. a failed lehr fan raises the cooling rate); managed by the line model. */
  offset = 0;
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
    this.value = this.base + this.dist + this.offset;
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

/**
 * The process states below the tags (true values, never measured directly), updated in place every step. Read them
 * for ground truth and dataset labels; they are the causes the defect model turns into hazards.
 */
export interface ProcessState {
  // furnace
  /** True melt temperature, °C (furnace_temperature without sensor noise or faults). */
  meltTemperatureC: number;
  /** Burner heat reaching the melt now (after the 4 min transport delay), W. */
  burnerHeatW: number;
  /** Heat taken by the batch charge (sensible + reactions), W. */
  batchHeatW: number;
  /** Heat lost through walls, openings and flue gas, W. */
  heatLossW: number;
  /** Temperature the heat balance is heading for with the current inputs, °C. */
  meltEquilibriumC: number;
  /** log10 of the melt viscosity (Pa·s), VFT at the melt temperature. */
  meltViscosityLog10: number;
  /** Share of the burners available (1 = all firing; < 1 during a burner trip). */
  burnerAvailability: number;
  // batch
  /** Cullet share of the batch in the blanket (0..1). */
  culletFraction: number;
  /** Relative difficulty of the batch composition to melt (1 = nominal recipe). */
  batchDifficulty: number;
  /** Relative effectiveness of the fining agent in the melt (1 = nominal). */
  finingFactor: number;
  /** Unmelted batch floating on the melt, kg. */
  batchBlanketKg: number;
  /** Feeder surge: batch flow minus its 10 min average, kg/h. */
  batchSurgeKgH: number;
  /** Unmelted batch carried past the throat, relative (1 = nominal); stones and cords come from it. */
  unmeltedIndex: number;
  // refining
  /** Glass pulled by the forming machines, kg/h (follows belt speed and the melt head). */
  pullKgH: number;
  /** Residence time in the refiner relative to nominal (nominal pull / pull). */
  residenceRatio: number;
  /** Visible seeds (bubbles) per kg of glass leaving the refiner. */
  seedsPerKg: number;
  /** seedsPerKg relative to this line's nominal point (1 = the base bubble rate). */
  seedIndex: number;
  /** Melt temperature swing: |T − 30 min average|, °C. */
  meltSwingC: number;
  // forming
  /** Gob temperature at the feeder: the melt 28 min ago, conditioned 430 °C down, °C. */
  gobTemperatureC: number;
  /** log10 of the gob viscosity (Pa·s). */
  gobViscosityLog10: number;
  /** Mean wall temperature at mold release, °C. */
  releaseTemperatureC: number;
  /** log10 of the viscosity at release (Pa·s). */
  releaseViscosityLog10: number;
  /** Forming-pressure swing: |P − 1 min average|, MPa. */
  formingPressureSwingMPa: number;
  /** Belt-speed spike: |v − 10 s average|, m/min. */
  beltSpikeMMin: number;
  /** Wall-thickness spread, coefficient of variation (0.1 = 10 % at nominal). */
  wallSpread: number;
  /** Sag tendency × relative wall spread: 1 at nominal, ≈ 8 at 180 m/min, ≈ 23 at 200 m/min. */
  deformationIndex: number;
  /** Relative impact energy of handling, (belt speed / 150)². */
  handlingIndex: number;
  // annealing
  /** Wall thickness at the thick spot, m (mean × (1 + 2·spread)). */
  wallThickSpotM: number;
  /** Side-to-side temperature difference from uneven lehr cooling (fan failure), K. */
  lehrUnevennessK: number;
  /** Through-wall ΔT frozen in by the cooling rate, K. */
  coolingDeltaTK: number;
  /** Forming gradient left unrelaxed by zone 1, K. */
  unrelaxedDeltaTK: number;
  /** Total frozen-in ΔT, K. */
  residualDeltaTK: number;
  /** Residual stress σ = E·α·ΔT/(1 − ν), MPa. */
  residualStressMPa: number;
  // environment
  /** True ambient relative humidity, %. */
  humidityPct: number;
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
  // Heat balance (physics.ts FURNACE): τ 35 min after a 4 min transport delay of burner power; ±4 °C slow wander.
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

/** Burner power reaches the melt after this dead time (combustion space, crown, then the melt). */
export const FURNACE_POWER_DELAY_MS = FURNACE.powerDelayMs;
/** Melt level: 25 kg of glass per mm; pull of 2000 kg/h at 150 m/min, rising with the hydrostatic head. */
const MELT_KG_PER_MM = 25;
const NOMINAL_PULL_KG_H = 2000;
/** Mold warms with more gobs per minute and with a hotter gob. */
const MOLD_K_BELT = 0.1;
const MOLD_K_GOB = 0.05;
/** Crown pressure and flue-gas O2 follow fuel flow (the actual burner power, so a trip shows in both). */
const PRESSURE_K_POWER = 0.08;
const O2_K_POWER = -0.03;

/**
 * How fast disturbances reach the process: a new batch composition or cullet share reaches the blanket in
 * ~15 min (feeder and blanket), the fining chemistry of the melt mixes over ~90 min; a failed lehr fan changes
 * the cooling within ~5 min.
 */
export const DISTURBANCE_TIMING = Object.freeze({
  blanketTauMs: 15 * MIN,
  meltChemistryTauMs: 90 * MIN,
  fanTauMs: 5 * MIN,
});

// --- disturbances ---

/** A timed, parameterised process disturbance. Times are simulated ms since the epoch; `endTs` absent = lasting. */
export type DisturbanceSpec =
  /** New batch recipe: `difficulty` (×reaction heat, ×seed generation, ÷melting rate; default 1.3) and `fining`
   * (×fining-agent effect; default 1). Reverts to nominal at `endTs`. */
  | { kind: "batch_change"; startTs: number; endTs?: number; difficulty?: number; fining?: number }
  /** Cullet share of the batch changes to `culletFraction` (0..0.95). */
  | { kind: "cullet_change"; startTs: number; endTs?: number; culletFraction: number }
  /** Burners trip: `powerLoss` (0..1, default 0.3) of the firing is lost until `endTs`, then relit and ramped back
   * over `recoveryMs` (default 10 min). */
  | { kind: "burner_trip"; startTs: number; endTs?: number; powerLoss?: number; recoveryMs?: number }
  /** A lehr fan fails: the cooling rate rises by `coolingRateIncrease` °C/min (default 3) and cooling becomes
   * uneven by `unevennessK` K side to side (default 30). */
  | { kind: "fan_failure"; startTs: number; endTs?: number; coolingRateIncrease?: number; unevennessK?: number }
  /** Weather: the humidity's mean moves to `value` % (linear over `rampMs`, default 30 min). */
  | { kind: "humidity"; startTs: number; endTs?: number; value: number; rampMs?: number };

export type DisturbanceKind = DisturbanceSpec["kind"];
export const DISTURBANCE_KINDS: readonly DisturbanceKind[] = [
  "batch_change",
  "cullet_change",
  "burner_trip",
  "fan_failure",
  "humidity",
];

interface Disturbance {
  spec: DisturbanceSpec;
  /** Time after which the disturbance no longer acts (end + recovery), for removal. */
  doneTs: number;
  seq: number;
}

// --- sensor faults ---

/** What a faulty sensor does to the measurement (the process keeps its true state). */
export type SensorFaultKind = "stuck" | "drift" | "spike" | "dropout" | "noise_burst";
export const SENSOR_FAULT_KINDS: readonly SensorFaultKind[] = ["stuck", "drift", "spike", "dropout", "noise_burst"];

/**
 * A sensor fault on one tag over [startTs, endTs). `endTs` absent means lasting; for a spike, `endTs` absent or
 * equal to `startTs` means a single spiked sample.
 * - stuck: reads `value` (default: the last healthy reading before the fault);
 * - drift: adds `ratePerMin` unit/min × time since the start;
 * - spike: each sample is offset by ±`magnitude` with probability `probability` (default 0.2; 1 for a single spike);
 * - dropout: no samples;
 * - noise_burst: adds white noise of standard deviation `sigma`.
 */
export interface SensorFaultSpec {
  tag: string;
  kind: SensorFaultKind;
  startTs: number;
  endTs?: number;
  value?: number;
  ratePerMin?: number;
  magnitude?: number;
  probability?: number;
  sigma?: number;
}

interface SensorFault {
  spec: SensorFaultSpec;
  endTs: number;
  single: boolean;
  /** Time of the spiked sample of a single spike (NaN until it happens). */
  usedTs: number;
  held: number;
  probability: number;
}

/** Line-specific physics figures (physics.ts NOMINAL gives the defaults). */
export interface LinePhysicsOptions {
  /** Cullet share of the batch at the operating point, 0..0.95. Default 0.5. */
  culletFraction?: number;
  /** Mean container wall thickness, m. Default 0.004. */
  wallThicknessM?: number;
}

/** Options of {@link LineModel}. */
export interface LineModelOptions {
  /** Tag dictionary: which tags are sampled, their limits and actuator ranges. */
  tags: TagConfig[];
  seed: number;
  /** Simulated time at construction, ms since the epoch. Default 2026-01-01T00:00:00Z. */
  startTs?: number;
  physics?: LinePhysicsOptions;
}

/** Called at the start of every step with the step's start and end times (simulated ms). */
export type StepHook = (tStart: number, tEnd: number) => void;

/** Exponential moving average with a time constant. */
class Ewma {
  private dtMs = -1;
  private k = 1;
  constructor(
    private readonly tauMs: number,
    public value: number,
  ) {}
  update(x: number, dtMs: number): number {
    if (dtMs !== this.dtMs) {
      this.dtMs = dtMs;
      this.k = 1 - Math.exp(-dtMs / this.tauMs);
    }
    this.value += (x - this.value) * this.k;
    return this.value;
  }
}

/**
 * The line's process state: pure, synchronous, deterministic for a seed and a sequence of `setSetpoint`,
 * `addDisturbance` and `addSensorFault` calls at given simulated times. Simulates all default tags even when the
 * dictionary omits some (the defect model needs them); a dictionary tag the physics does not know becomes a
 * generic lagged variable around the middle of its normal band.
 */
export class LineModel {
  /** Configured tags, in dictionary order; `measure(i)` indexes this. */
  readonly tags: readonly TagConfig[];
  /** The physics' variables by role; read-only outside the model (the defect model reads it). */
  readonly process: ProcessChannels;
  private t: number;
  private lastDtMs = 0;
  private readonly processRng: Rng;
  private readonly sensorRng: Rng;
  private readonly faultRng: Rng;
  private readonly generic: Channel[];
  private readonly byTag = new Map<string, { channel: Channel; tag: TagConfig | undefined; index: number }>();
  /** Channel of each configured tag, parallel to `tags`. */
  private readonly tagChannels: Channel[];
  private readonly limitsMin: Float64Array;
  private readonly limitsMax: Float64Array;
  private readonly writable: string[];
  private readonly powerDelay: DelayBuffer;
  private readonly forehearth: DelayBuffer;
  private readonly scratch = new Float64Array(1);
  private readonly st: ProcessState;
  private readonly nominalCullet: number;
  private readonly wallThicknessM: number;
  private readonly loss0W: number;
  private readonly blanketNominalKg: number;
  /** Seed density at this line's nominal point (its cullet share), the reference of `seedIndex`. */
  private readonly seedsNominal: number;
  private readonly meltAvg: Ewma;
  private readonly batchAvg: Ewma;
  private readonly beltAvg: Ewma;
  private readonly pressureAvg: Ewma;
  private readonly hooks: StepHook[] = [];
  private disturbances: Disturbance[] = [];
  private disturbanceSeq = 0;
  /** Per configured tag index: sensor faults not yet over (undefined when none, the common case). */
  private readonly faults: (SensorFault[] | undefined)[];
  /** Per configured tag index: every fault ever scheduled, for ground-truth labels after the fact. */
  private readonly faultLog: SensorFault[][];
  private disturbanceLog: Disturbance[] = [];
  private readonly lastHealthy: Float64Array;
  // Slow disturbance states (lagged toward their targets) and their cached step coefficients.
  private coefDt = -1;
  private kBlanket = 0;
  private kChem = 0;
  private kFan = 0;
  private kSeeds = 0;

  constructor(opts: LineModelOptions) {
    this.tags = opts.tags.slice();
    this.t = opts.startTs ?? Date.UTC(2026, 0, 1);
    this.processRng = Rng.derive(opts.seed, 1);
    this.sensorRng = Rng.derive(opts.seed, 2);
    this.faultRng = Rng.derive(opts.seed, 4);
    const cullet = opts.physics?.culletFraction ?? NOMINAL.culletFraction;
    if (!(cullet >= 0 && cullet <= 0.95)) {
      throw new RangeError(`LineModel: physics.culletFraction must be within 0..0.95, got ${cullet}`);
    }
    const wall = opts.physics?.wallThicknessM ?? NOMINAL.wallThicknessM;
    if (!(wall > 0 && wall <= 0.05)) {
      throw new RangeError(`LineModel: physics.wallThicknessM must be within (0, 0.05] m, got ${wall}`);
    }
    this.nominalCullet = cullet;
    this.wallThicknessM = wall;
    this.loss0W = furnaceLoss0W(cullet);
    const configured = new Map(this.tags.map((t, i) => [t.id, { tag: t, index: i }]));

    const process = {} as Record<Role, Channel>;
    for (const [id, k] of Object.entries(KNOWN)) {
      const ch = new Channel(id, k.spec);
      process[k.role] = ch;
      const c = configured.get(id);
      this.byTag.set(id, { channel: ch, tag: c?.tag, index: c?.index ?? -1 });
    }
    this.process = process;
    this.generic = [];
    this.tags.forEach((tag, index) => {
      if (KNOWN[tag.id]) return;
      const ch = new Channel(tag.id, genericSpec(tag));
      this.generic.push(ch);
      this.byTag.set(tag.id, { channel: ch, tag, index });
    });

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
    this.faults = this.tags.map(() => undefined);
    this.faultLog = this.tags.map(() => []);
    this.lastHealthy = new Float64Array(this.tags.length).fill(Number.NaN);

    // The line starts in the steady state of its current setpoints.
    const p = process;
    this.powerDelay = new DelayBuffer(FURNACE.powerDelayMs, this.t, [p.furnacePower.value]);
    const eq = {
      tempC: furnaceEquilibriumC(burnerHeatW(p.furnacePower.value), p.batchFlow.value, cullet, 1, this.loss0W),
    };
    p.furnaceTemperature.base = eq.tempC;
    p.furnaceTemperature.value = eq.tempC;
    p.furnaceTemperature.prev = eq.tempC;
    this.forehearth = new DelayBuffer(FOREHEARTH.transitMs, this.t, [eq.tempC]);
    this.blanketNominalKg = NOMINAL.batchKgH / 3600 / batchMeltRatePerS(NOMINAL.meltC, cullet, 1);
    this.seedsNominal = seedsPerKgTarget(NOMINAL.meltC, NOMINAL.o2Pct, 1, cullet, 1, 1);
    this.meltAvg = new Ewma(30 * MIN, eq.tempC);
    this.batchAvg = new Ewma(10 * MIN, p.batchFlow.value);
    this.beltAvg = new Ewma(10_000, p.beltSpeed.value);
    this.pressureAvg = new Ewma(MIN, p.formingPressure.value);
    this.st = {
      meltTemperatureC: eq.tempC,
      burnerHeatW: burnerHeatW(p.furnacePower.value),
      batchHeatW: 0,
      heatLossW: 0,
      meltEquilibriumC: eq.tempC,
      meltViscosityLog10: 0,
      burnerAvailability: 1,
      culletFraction: cullet,
      batchDifficulty: 1,
      finingFactor: 1,
      batchBlanketKg: p.batchFlow.value / 3600 / batchMeltRatePerS(eq.tempC, cullet, 1),
      batchSurgeKgH: 0,
      unmeltedIndex: 1,
      pullKgH: NOMINAL_PULL_KG_H,
      residenceRatio: 1,
      seedsPerKg: REFINING.nominalSeedsPerKg,
      seedIndex: 1,
      meltSwingC: 0,
      gobTemperatureC: gobTemperatureC(eq.tempC),
      gobViscosityLog10: 0,
      releaseTemperatureC: 0,
      releaseViscosityLog10: 0,
      formingPressureSwingMPa: 0,
      beltSpikeMMin: 0,
      wallSpread: FORMING.nominalSpread,
      deformationIndex: 1,
      handlingIndex: 1,
      wallThickSpotM: wall,
      lehrUnevennessK: 0,
      coolingDeltaTK: 0,
      unrelaxedDeltaTK: 0,
      residualDeltaTK: 0,
      residualStressMPa: 0,
      humidityPct: p.humidity.value,
    };
    this.st.seedsPerKg = this.seedTarget();
    this.derive();
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    return this.t;
  }

  /**
   * The process states below the tags, as of the last step. The object is updated in place by every step: copy it
   * (`{ ...model.state }`) to keep a snapshot.
   */
  get state(): Readonly<ProcessState> {
    return this.st;
  }

  /**
   * Registers `hook`, called at the start of every step with the step's start and end times, before the process
   * moves (a scenario applies its timed events there). Returns a function that removes it.
   */
  onStep(hook: StepHook): () => void {
    this.hooks.push(hook);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /** Advances the process by `dtMs` (> 0). */
  step(dtMs: number): void {
    if (!(dtMs > 0) || !Number.isFinite(dtMs)) throw new RangeError(`LineModel.step: dtMs must be > 0, got ${dtMs}`);
    for (let i = 0; i < this.hooks.length; i++) this.hooks[i]!(this.t, this.t + dtMs);
    const p = this.process;
    const st = this.st;
    this.t += dtMs;
    this.lastDtMs = dtMs;
    const t = this.t;
    if (dtMs !== this.coefDt) {
      this.coefDt = dtMs;
      this.kBlanket = 1 - Math.exp(-dtMs / DISTURBANCE_TIMING.blanketTauMs);
      this.kChem = 1 - Math.exp(-dtMs / DISTURBANCE_TIMING.meltChemistryTauMs);
      this.kFan = 1 - Math.exp(-dtMs / DISTURBANCE_TIMING.fanTauMs);
      this.kSeeds = 1 - Math.exp(-dtMs / REFINING.lagMs);
    }
    this.applyDisturbances(t);

    // Upstream first: levers, then the variables they drive.
    p.furnacePower.advance(p.furnacePower.setpoint * st.burnerAvailability, dtMs, this.noise(p.furnacePower));
    p.batchFlow.advance(p.batchFlow.setpoint, dtMs, this.noise(p.batchFlow));
    p.beltSpeed.advance(p.beltSpeed.setpoint, dtMs, this.noise(p.beltSpeed));
    p.formingPressure.advance(p.formingPressure.setpoint, dtMs, this.noise(p.formingPressure));

    const power = p.furnacePower.value;
    p.furnacePressure.advance(
      p.furnacePressure.setpoint + PRESSURE_K_POWER * (power - NOMINAL.powerPct),
      dtMs,
      this.noise(p.furnacePressure),
    );
    p.o2.advance(p.o2.setpoint + O2_K_POWER * (power - NOMINAL.powerPct), dtMs, this.noise(p.o2));
    p.co2.advance(10 + 0.06 * (power - NOMINAL.powerPct) - 0.8 * (p.o2.value - 5), dtMs, this.noise(p.co2));

    // Furnace heat balance (physics.ts): burner heat after its transport delay, losses, the batch as a heat sink.
    this.scratch[0] = power;
    this.powerDelay.push(t, this.scratch);
    const heatIn = burnerHeatW(this.powerDelay.readScalar(t));
    const batch = p.batchFlow.value;
    const eqC = furnaceEquilibriumC(heatIn, batch, st.culletFraction, st.batchDifficulty, this.loss0W);
    const ft = p.furnaceTemperature;
    ft.integrate((eqC - ft.base) * (1 - Math.exp(-dtMs / 1000 / furnaceTauS(batch))), dtMs, this.noise(ft));
    st.meltEquilibriumC = eqC;
    st.burnerHeatW = heatIn;

    const level = p.meltLevel.base;
    const pull = NOMINAL_PULL_KG_H * (p.beltSpeed.value / NOMINAL.beltMMin) * (1 + (level - 2500) / 2500);
    const dLevel = ((batch - pull) / 3_600_000) * (dtMs / MELT_KG_PER_MM);
    p.meltLevel.integrate(dLevel, dtMs, this.noise(p.meltLevel));
    st.pullKgH = pull;

    // Glass leaving the throat now reaches the feeder after the forehearth transit.
    const melt = ft.value;
    this.scratch[0] = melt;
    this.forehearth.push(t, this.scratch);
    const gob = gobTemperatureC(this.forehearth.readScalar(t));
    st.gobTemperatureC = gob;

    p.moldTemperature.advance(
      p.moldTemperature.setpoint +
        MOLD_K_BELT * (p.beltSpeed.value - NOMINAL.beltMMin) +
        MOLD_K_GOB * (gob - gobTemperatureC(NOMINAL.meltC)),
      dtMs,
      this.noise(p.moldTemperature),
    );
    p.zone1.advance(p.zone1.setpoint, dtMs, this.noise(p.zone1));
    p.zone2.advance(p.zone2.setpoint, dtMs, this.noise(p.zone2));
    p.zone3.advance(p.zone3.setpoint, dtMs, this.noise(p.zone3));
    p.coolingRate.advance(p.coolingRate.setpoint, dtMs, this.noise(p.coolingRate));
    p.humidity.advance(p.humidity.setpoint, dtMs, this.noise(p.humidity));

    for (const ch of this.generic) ch.advance(ch.setpoint, dtMs, this.noise(ch));

    // Slow process states.
    st.meltSwingC = Math.abs(melt - this.meltAvg.update(melt, dtMs));
    st.batchSurgeKgH = Math.abs(batch - this.batchAvg.update(batch, dtMs));
    st.beltSpikeMMin = Math.abs(p.beltSpeed.value - this.beltAvg.update(p.beltSpeed.value, dtMs));
    st.formingPressureSwingMPa = Math.abs(
      p.formingPressure.value - this.pressureAvg.update(p.formingPressure.value, dtMs),
    );
    const km = batchMeltRatePerS(melt, st.culletFraction, st.batchDifficulty);
    const blanketEq = batch / 3600 / km;
    st.batchBlanketKg = blanketEq + (st.batchBlanketKg - blanketEq) * Math.exp(-km * (dtMs / 1000));
    st.seedsPerKg += (this.seedTarget() - st.seedsPerKg) * this.kSeeds;
    this.derive();
  }

  /** One standard normal per disturbed channel per step, in a fixed order: setpoints never shift the stream. */
  private noise(ch: Channel): number {
    return ch.spec.ouSigma > 0 ? this.processRng.gaussian() : 0;
  }

  private seedTarget(): number {
    const st = this.st;
    st.residenceRatio = NOMINAL_PULL_KG_H / Math.max(st.pullKgH, 1);
    return seedsPerKgTarget(
      this.process.furnaceTemperature.value,
      this.process.o2.value,
      1 / st.residenceRatio,
      st.culletFraction,
      st.batchDifficulty,
      st.finingFactor,
    );
  }

  /** States that are algebraic in the others (forming and annealing relations, indices). */
  private derive(): void {
    const p = this.process;
    const st = this.st;
    const melt = p.furnaceTemperature.value;
    st.meltTemperatureC = melt;
    st.meltViscosityLog10 = viscosityLog10(melt);
    st.batchHeatW = batchHeatW(p.batchFlow.value, melt, st.culletFraction, st.batchDifficulty);
    st.heatLossW = furnaceLossW(melt, this.loss0W);
    st.unmeltedIndex = unmeltedIndex(st.batchBlanketKg / this.blanketNominalKg, melt, st.batchSurgeKgH);
    st.seedIndex = st.seedsPerKg / this.seedsNominal;

    const belt = p.beltSpeed.value;
    const mold = p.moldTemperature.value;
    st.gobViscosityLog10 = viscosityLog10(st.gobTemperatureC);
    st.releaseTemperatureC = releaseTemperatureC(mold, st.gobTemperatureC, belt);
    st.releaseViscosityLog10 = viscosityLog10(st.releaseTemperatureC);
    st.wallSpread = wallSpread(belt, mold, p.formingPressure.value, st.gobTemperatureC, st.formingPressureSwingMPa);
    st.deformationIndex = sagRatio(st.releaseTemperatureC) * (st.wallSpread / FORMING.nominalSpread);
    st.handlingIndex = (belt / NOMINAL.beltMMin) ** 2;

    st.wallThickSpotM = this.wallThicknessM * (1 + 2 * st.wallSpread);
    // residualDeltaTK() term by term, without its allocation.
    st.coolingDeltaTK = coolingDeltaTK(effectiveAnnealingRate(p.coolingRate.value, p.zone3.value), st.wallThickSpotM);
    st.unrelaxedDeltaTK = unrelaxedDeltaTK(p.zone1.value);
    st.residualDeltaTK = st.coolingDeltaTK + st.unrelaxedDeltaTK + Math.max(st.lehrUnevennessK, 0);
    st.residualStressMPa = residualStressMPa(st.residualDeltaTK);
    st.humidityPct = p.humidity.value;
  }

  // --- disturbances ---

  /**
   * Schedules a disturbance (it acts from `startTs`, which may be in the past or the future).
   * @throws RangeError naming the parameter when a value is out of its range.
   */
  addDisturbance(spec: DisturbanceSpec): void {
    checkDisturbance(spec);
    let doneTs = spec.endTs ?? INF;
    if (spec.kind === "burner_trip") doneTs += spec.recoveryMs ?? 10 * MIN;
    const d = { spec: { ...spec }, doneTs, seq: this.disturbanceSeq++ };
    this.disturbances.push(d);
    this.disturbanceLog.push(d);
  }

  /**
   * Disturbances acting at `ts` (default: now; a burner trip includes its recovery), in the order they were added.
   * Past times are answered from the full history, so labels can be made after the fact.
   */
  activeDisturbances(ts = this.t): DisturbanceSpec[] {
    return this.disturbanceLog.filter((d) => d.spec.startTs <= ts && ts < d.doneTs).map((d) => ({ ...d.spec }));
  }

  /** Removes every scheduled disturbance; the process returns to nominal through its own dynamics. */
  clearDisturbances(): void {
    // Cut the history at now, so labels for later times see no disturbance.
    for (const d of this.disturbances) d.doneTs = Math.min(d.doneTs, this.t);
    this.disturbances = [];
  }

  private applyDisturbances(t: number): void {
    const st = this.st;
    let availability = 1;
    let cullet = this.nominalCullet;
    let difficulty = 1;
    let fining = 1;
    let fanRate = 0;
    let uneven = 0;
    let humidity = 0;
    if (this.disturbances.length > 0) {
      let keep = 0;
      for (const d of this.disturbances) {
        if (t >= d.doneTs) continue;
        this.disturbances[keep++] = d;
        const s = d.spec;
        if (t < s.startTs) continue;
        const on = s.endTs === undefined || t < s.endTs;
        switch (s.kind) {
          case "burner_trip": {
            const loss = s.powerLoss ?? 0.3;
            const rec = s.recoveryMs ?? 10 * MIN;
            const f = on ? 1 : rec > 0 ? 1 - (t - s.endTs!) / rec : 0;
            availability *= 1 - loss * clamp(f, 0, 1);
            break;
          }
          case "batch_change":
            if (on) {
              difficulty = s.difficulty ?? 1.3;
              fining = s.fining ?? 1;
            }
            break;
          case "cullet_change":
            if (on) cullet = s.culletFraction;
            break;
          case "fan_failure":
            if (on) {
              fanRate += s.coolingRateIncrease ?? 3;
              uneven += s.unevennessK ?? 30;
            }
            break;
          case "humidity":
            if (on) {
              const ramp = s.rampMs ?? 30 * MIN;
              humidity =
                (s.value - KNOWN.humidity!.spec.nominal) * (ramp > 0 ? clamp((t - s.startTs) / ramp, 0, 1) : 1);
            }
            break;
          default:
            s satisfies never;
        }
      }
      this.disturbances.length = keep;
    }
    st.burnerAvailability = availability;
    st.culletFraction += (cullet - st.culletFraction) * this.kBlanket;
    st.batchDifficulty += (difficulty - st.batchDifficulty) * this.kBlanket;
    st.finingFactor += (fining - st.finingFactor) * this.kChem;
    const cr = this.process.coolingRate;
    cr.offset += (fanRate - cr.offset) * this.kFan;
    st.lehrUnevennessK += (uneven - st.lehrUnevennessK) * this.kFan;
    this.process.humidity.offset = humidity;
  }

  // --- sensors ---

  /**
   * Sensor reading of configured tag `i` at fraction `frac` (0..1) of the last step: the process value
   * interpolated between the step's ends, plus sensor noise, then any active sensor fault, clamped to the tag's
   * hard limits (sensor range). `undefined` while the sensor drops out (no sample). Draws from the sensor stream
   * whether or not a fault is active, so faults on one tag never shift another tag's noise.
   */
  readSensor(i: number, frac: number): number | undefined {
    const ch = this.tagChannels[i];
    if (!ch) throw new RangeError(`LineModel.readSensor: no tag at index ${i}`);
    let v = ch.prev + (ch.value - ch.prev) * frac + ch.spec.measSigma * this.sensorRng.gaussian();
    const faults = this.faults[i];
    if (faults !== undefined) {
      const r = this.applyFaults(i, faults, v, this.t - this.lastDtMs * (1 - frac));
      if (r === undefined) return undefined;
      if (r !== v) return clamp(r, this.limitsMin[i] as number, this.limitsMax[i] as number);
      v = r;
    }
    v = clamp(v, this.limitsMin[i] as number, this.limitsMax[i] as number);
    this.lastHealthy[i] = v;
    return v;
  }

  /** {@link readSensor}, with NaN during a dropout (kept for callers that take a number). */
  measure(i: number, frac: number): number {
    return this.readSensor(i, frac) ?? Number.NaN;
  }

  /**
   * Schedules a sensor fault on a configured tag. The measurement is affected; `reading()`, `readings()` and
   * `state` keep the true process values (ground truth for fault labels).
   * @throws TwinTagError for a tag not in the dictionary; RangeError naming a parameter out of its range.
   */
  addSensorFault(spec: SensorFaultSpec): void {
    const e = this.entry(spec.tag);
    checkSensorFault(spec);
    const single = spec.kind === "spike" && (spec.endTs === undefined || spec.endTs <= spec.startTs);
    const f: SensorFault = {
      spec: { ...spec },
      endTs: single ? INF : (spec.endTs ?? INF),
      single,
      usedTs: Number.NaN,
      held: Number.NaN,
      probability: spec.probability ?? (single ? 1 : 0.2),
    };
    const list = this.faults[e.index] ?? [];
    list.push(f);
    this.faults[e.index] = list;
    this.faultLog[e.index]!.push(f);
  }

  /** Removes the sensor faults of `tag` (every tag when omitted); they end now. */
  clearSensorFaults(tag?: string): void {
    const indices = tag === undefined ? this.tags.map((_, i) => i) : [this.entry(tag).index];
    for (const i of indices) {
      for (const f of this.faults[i] ?? []) {
        f.endTs = Math.min(f.endTs, this.t);
        if (f.single && Number.isNaN(f.usedTs)) f.usedTs = Number.NEGATIVE_INFINITY;
      }
      this.faults[i] = undefined;
    }
  }

  /**
   * Kind of the sensor fault affecting `tag`'s measurement at `ts` (default: now), or undefined when the sensor is
   * healthy then: ground truth for fault labels. A single spike affects exactly one sample time.
   */
  sensorFaultAt(tag: string, ts = this.t): SensorFaultKind | undefined {
    for (const f of this.faultLog[this.entry(tag).index]!) {
      if (f.single ? ts === f.usedTs : ts >= f.spec.startTs && ts < f.endTs) return f.spec.kind;
    }
    return undefined;
  }

  /** Sensor faults scheduled and not yet over. */
  sensorFaults(): SensorFaultSpec[] {
    const out: SensorFaultSpec[] = [];
    for (const list of this.faults) if (list) for (const f of list) out.push({ ...f.spec });
    return out;
  }

  private applyFaults(i: number, faults: SensorFault[], healthy: number, ts: number): number | undefined {
    let v = healthy;
    let keep = 0;
    let dropped = false;
    for (const f of faults) {
      if (ts >= f.endTs || (f.single && !Number.isNaN(f.usedTs))) continue; // over: forget it
      faults[keep++] = f;
      const s = f.spec;
      if (ts < s.startTs) continue;
      switch (s.kind) {
        case "dropout":
          dropped = true;
          break;
        case "stuck":
          if (Number.isNaN(f.held)) {
            const last = this.lastHealthy[i] as number;
            f.held = s.value ?? (Number.isNaN(last) ? healthy : last);
          }
          v = f.held;
          break;
        case "drift":
          v += ((s.ratePerMin ?? 0) * (ts - s.startTs)) / MIN;
          break;
        case "spike":
          if (this.faultRng.next() < f.probability) v += (this.faultRng.next() < 0.5 ? -1 : 1) * (s.magnitude ?? 0);
          if (f.single) f.usedTs = ts;
          break;
        case "noise_burst":
          v += (s.sigma ?? 0) * this.faultRng.gaussian();
          break;
        default:
          s.kind satisfies never;
      }
    }
    faults.length = keep;
    if (keep === 0) this.faults[i] = undefined;
    return dropped ? undefined : v;
  }

  // --- tags and setpoints ---

  /** Noise-free process value of a tag (samples add sensor noise and faults). */
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
   * The process then follows with the lever's actuator dynamics (time constant and slew limit, see KNOWN).
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

  /** Actuator range of a writable tag (what the PLC accepts). */
  actuatorRange(tag: string): { min: number; max: number } {
    const act = this.writableEntry(tag).tag!.actuator!;
    return { min: act.min, max: act.max };
  }

  private entry(tag: string): { channel: Channel; tag: TagConfig | undefined; index: number } {
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

  private writableEntry(tag: string): { channel: Channel; tag: TagConfig | undefined; index: number } {
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

function checkRange(what: string, name: string, v: number | undefined, lo: number, hi: number): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) {
    throw new RangeError(`${what}: ${name} must be a number within ${lo}..${hi}, got ${v}`);
  }
}

function checkTimes(what: string, startTs: number, endTs: number | undefined): void {
  if (typeof startTs !== "number" || !Number.isFinite(startTs)) {
    throw new RangeError(`${what}: startTs must be a finite time in ms, got ${startTs}`);
  }
  if (endTs !== undefined && !(typeof endTs === "number" && endTs >= startTs)) {
    throw new RangeError(`${what}: endTs must be >= startTs (${startTs}), got ${endTs}`);
  }
}

function checkDisturbance(s: DisturbanceSpec): void {
  const what = `disturbance ${s.kind}`;
  checkTimes(what, s.startTs, s.endTs);
  switch (s.kind) {
    case "batch_change":
      checkRange(what, "difficulty", s.difficulty, 0.5, 3);
      checkRange(what, "fining", s.fining, 0, 2);
      return;
    case "cullet_change":
      if (s.culletFraction === undefined) throw new RangeError(`${what}: culletFraction is required`);
      checkRange(what, "culletFraction", s.culletFraction, 0, 0.95);
      return;
    case "burner_trip":
      checkRange(what, "powerLoss", s.powerLoss, 0, 1);
      checkRange(what, "recoveryMs", s.recoveryMs, 0, 24 * HOUR);
      return;
    case "fan_failure":
      checkRange(what, "coolingRateIncrease", s.coolingRateIncrease, 0, 10);
      checkRange(what, "unevennessK", s.unevennessK, 0, 100);
      return;
    case "humidity":
      if (s.value === undefined) throw new RangeError(`${what}: value is required`);
      checkRange(what, "value", s.value, 0, 100);
      checkRange(what, "rampMs", s.rampMs, 0, 24 * HOUR);
      return;
    default: {
      const kind = (s as { kind: unknown }).kind;
      throw new RangeError(`unknown disturbance kind "${kind}"; valid: ${DISTURBANCE_KINDS.join(", ")}`);
    }
  }
}

function checkSensorFault(s: SensorFaultSpec): void {
  const what = `sensor fault ${s.kind} on ${s.tag}`;
  if (!SENSOR_FAULT_KINDS.includes(s.kind)) {
    throw new RangeError(`unknown sensor fault kind "${s.kind}"; valid: ${SENSOR_FAULT_KINDS.join(", ")}`);
  }
  checkTimes(what, s.startTs, s.endTs);
  const need = (name: keyof SensorFaultSpec) => {
    if (s[name] === undefined) throw new RangeError(`${what}: ${name} is required`);
  };
  if (s.kind === "drift") need("ratePerMin");
  if (s.kind === "spike") need("magnitude");
  if (s.kind === "noise_burst") need("sigma");
  for (const name of ["value", "ratePerMin", "magnitude"] as const) checkRange(what, name, s[name], -1e9, 1e9);
  checkRange(what, "probability", s.probability, 0, 1);
  checkRange(what, "sigma", s.sigma, 0, 1e9);
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
