import {
  DEFECT_CLASSES,
  DEFECT_SEVERITY,
  type DefectClass,
  type InspectedDefect,
  type InspectionEvent,
} from "../core/types.js";
import { DelayBuffer } from "./delay-buffer.js";
import type { LineModel, ProcessChannels, ProcessState } from "./line-model.js";
import { crackProbability, excess, FORMING } from "./physics.js";
import { Rng } from "./rng.js";

/*
 * Defects as a per-class hazard per item. Each process stage turns its *current* process states (the line model's
 * `state`: seed population, unmelted batch, wall spread and sag, residual stress, …, and some tags directly) into
 * extra per-class probability, and that contribution reaches the MIK-1 through the stage's transport delay (dead
 * time: nothing shows before it) and then a first-order lag (items made under the new conditions replace the old
 * ones gradually). So a cause is visible upstream well before its defects are — the forecaster's job.
 *
 * Two kinds of terms: physical ones (bubbles ∝ seed density; cracks from a Weibull law on residual stress) and
 * DOMAIN.md's rules where the twin has no finer mechanism, written as "extra probability per unit of excess", where
 * excess is how far past its threshold the variable is, in units of a stated scale. Every term is 0 at the nominal
 * point, so BASE_DEFECT_RATE is the steady state.
 */

const MIN = 60_000;

/** Transport delay and spread of each stage's effect on the defects seen at the MIK-1. */
export interface StageTiming {
  /** Dead time: a change cannot affect the inspected items before this. */
  delayMs: number;
  /** Time constant of the first-order lag after the dead time. */
  lagMs: number;
}

/**
 * Stage timings (DOMAIN.md: furnace 25–120 min, forming seconds to minutes, annealing over hours).
 * - furnace: 30 min dead time (throat → forehearth, 28 min, → forming → camera, 2 min) + 30 min lag (mixing and
 *   the spread of residence times) → 63 % at 60 min, 95 % at 120 min after a change of the glass at the throat.
 *   The refiner's seed population itself follows the melt with a 20 min lag, and the melt follows burner power
 *   after 4 min with τ 35 min (line-model.ts), so a power change shows in bubbles after ≥ 34 min, mostly 1–3 h.
 * - forming: 2 min dead time (conveyor and lehr entry to the camera) + 20 s lag; e.g. belt speed > 180 m/min
 *   raises deformation from 2 min after the belt crosses 180 and reaches 95 % of the effect ~1 min later. The gob
 *   the forming machine gets is the melt of 28 min ago (line-model.ts forehearth), so a hotter melt reaches forming
 *   defects (sag, wall spread) after 28 + 2 = 30 min, like the other melt effects.
 * - annealing: 30 min dead time (transit through the lehr) + 45 min lag → the effect builds over 1–3 h.
 */
export const STAGE_TIMING: Readonly<Record<"furnace" | "forming" | "annealing", StageTiming>> = {
  furnace: { delayMs: 30 * MIN, lagMs: 30 * MIN },
  forming: { delayMs: 2 * MIN, lagMs: 20_000 },
  annealing: { delayMs: 30 * MIN, lagMs: 45 * MIN },
};

/**
 * Per-item probability of each class in steady state. Sum ≈ 2.9 %, so ≈ 2.9 % of items are defective (DOMAIN.md:
 * 1–5 %) and bubbles are the most common defect.
 */
export const BASE_DEFECT_RATE: Readonly<Record<DefectClass, number>> = {
  crack: 0.0015,
  bubble: 0.01,
  chip: 0.003,
  cloudiness: 0.004,
  deformation: 0.002,
  stain: 0.003,
  stone: 0.002,
  scratch: 0.004,
};

/** No class exceeds this per-item probability, however far out of band the process is. */
const MAX_CLASS_PROBABILITY = 0.6;

/** Median size (mm) of each class; sizes are lognormal around it. */
const MEDIAN_SIZE_MM: Readonly<Record<DefectClass, number>> = {
  crack: 6,
  bubble: 0.8,
  chip: 3,
  cloudiness: 12,
  deformation: 10,
  stain: 5,
  stone: 1.2,
  scratch: 15,
};

const NC = DEFECT_CLASSES.length;
const idx = (c: DefectClass) => DEFECT_CLASSES.indexOf(c);
const CRACK = idx("crack");
const BUBBLE = idx("bubble");
const CHIP = idx("chip");
const CLOUD = idx("cloudiness");
const DEFORM = idx("deformation");
const STAIN = idx("stain");
const STONE = idx("stone");
const SCRATCH = idx("scratch");

const NOMINAL_SPREAD = FORMING.nominalSpread;
/** Handling index at 170 m/min (DOMAIN: chips above 170 m/min). */
const HANDLING_170 = (170 / 150) ** 2;

type Contribution = (out: Float64Array) => void;

/** One stage's path to the camera: the current contribution, its dead time, and the lagged result. */
class Stage {
  readonly now = new Float64Array(NC);
  readonly delayed = new Float64Array(NC);
  readonly filtered = new Float64Array(NC);
  private readonly buffer: DelayBuffer;
  private dtMs = -1;
  private k = 1;

  constructor(
    private readonly timing: StageTiming,
    private readonly contribute: Contribution,
    t0: number,
  ) {
    contribute(this.now);
    this.filtered.set(this.now);
    this.buffer = new DelayBuffer(timing.delayMs, t0, this.now);
  }

  update(t: number, dtMs: number): void {
    this.now.fill(0);
    this.contribute(this.now);
    this.buffer.push(t, this.now);
    this.buffer.read(t, this.delayed);
    if (dtMs !== this.dtMs) {
      this.dtMs = dtMs;
      this.k = this.timing.lagMs > 0 ? 1 - Math.exp(-dtMs / this.timing.lagMs) : 1;
    }
    const f = this.filtered;
    for (let c = 0; c < NC; c++) f[c]! += (this.delayed[c]! - f[c]!) * this.k;
  }
}

/** Options of {@link DefectModel}. */
export interface DefectModelOptions {
  seed: number;
  /** Items inspected per minute at the nominal belt speed (150 m/min); scales with belt speed. */
  itemsPerMin: number;
}

/**
 * Items and their defects, driven by a {@link LineModel}. Call `step(dtMs, out)` right after `model.step(dtMs)`.
 * Deterministic: items draw from their own random stream.
 */
export class DefectModel {
  private readonly rng: Rng;
  private readonly stages: Stage[];
  private readonly p = new Float64Array(NC);
  private readonly itemsPerMin: number;
  private phase = 0;
  private nextItemId = 1;

  constructor(
    private readonly model: LineModel,
    opts: DefectModelOptions,
  ) {
    if (!(opts.itemsPerMin > 0)) throw new RangeError(`DefectModel: itemsPerMin must be > 0, got ${opts.itemsPerMin}`);
    this.itemsPerMin = opts.itemsPerMin;
    this.rng = Rng.derive(opts.seed, 3);
    const t0 = model.now();
    this.stages = [
      new Stage(STAGE_TIMING.furnace, (o) => this.furnace(model.state, model.process, o), t0),
      new Stage(STAGE_TIMING.forming, (o) => this.forming(model.state, model.process, o), t0),
      new Stage(STAGE_TIMING.annealing, (o) => this.annealing(model.state, model.process, o), t0),
    ];
    this.combine();
  }

  /** Items inspected so far. */
  get itemsInspected(): number {
    return this.nextItemId - 1;
  }

  /**
   * Advances the hazards to the model's current time and appends the items inspected during the last `dtMs`
   * (the model's last step) to `out`.
   */
  step(dtMs: number, out: InspectionEvent[]): void {
    const proc = this.model.process;
    const t = this.model.now();
    for (const s of this.stages) s.update(t, dtMs);
    this.combine();

    // Items reach the camera at a rate proportional to belt speed; each crossing of a whole item is one event.
    const inc = (this.itemsPerMin * Math.max(proc.beltSpeed.value, 0) * dtMs) / (150 * MIN);
    const start = this.phase;
    const end = start + inc;
    const tPrev = t - dtMs;
    for (let k = 1; k <= end; k++) out.push(this.inspect(Math.round(tPrev + (dtMs * (k - start)) / inc)));
    this.phase = end - Math.floor(end);
  }

  /** Current per-item probability of class `c`. */
  probability(c: DefectClass): number {
    return this.p[idx(c)]!;
  }

  /** Current per-item probability of every class. */
  probabilities(): Record<DefectClass, number> {
    const out = {} as Record<DefectClass, number>;
    for (let c = 0; c < NC; c++) out[DEFECT_CLASSES[c]!] = this.p[c]!;
    return out;
  }

  /** Current probability that an item has at least one defect. */
  defectiveProbability(): number {
    let ok = 1;
    for (let c = 0; c < NC; c++) ok *= 1 - this.p[c]!;
    return 1 - ok;
  }

  private combine(): void {
    for (let c = 0; c < NC; c++) {
      let v = BASE_DEFECT_RATE[DEFECT_CLASSES[c]!];
      for (const s of this.stages) v += s.filtered[c]!;
      this.p[c] = Math.min(Math.max(v, 0), MAX_CLASS_PROBABILITY);
    }
  }

  private inspect(ts: number): InspectionEvent {
    const rng = this.rng;
    const defects: InspectedDefect[] = [];
    // One uniform per class for every item, so the stream advances the same way whatever the outcome.
    for (let c = 0; c < NC; c++) {
      if (rng.next() >= this.p[c]!) continue;
      const cls = DEFECT_CLASSES[c]!;
      defects.push({
        class: cls,
        size_mm: Math.round(MEDIAN_SIZE_MM[cls] * Math.exp(0.5 * rng.gaussian()) * 10) / 10,
        x: rng.next(),
        y: rng.next(),
        severity: DEFECT_SEVERITY[cls],
      });
    }
    return { item_id: this.nextItemId++, ts, defects, ok: defects.length === 0 };
  }

  // --- causes, one stage each (DOMAIN.md's taxonomy, driven by the line model's process states) ---

  /**
   * Melt quality, from the throat onward: seeds left by refining (bubbles, relative to the nominal seed density),
   * unmelted batch carried over (stones; cords, i.e. cloudiness), and DOMAIN's furnace rules the states do not
   * cover (O2 < 3 % and low crown pressure: reducing, unstable combustion → cords; melt swings → cords; > 1600 °C
   * → refractory attack and checks).
   */
  private furnace(s: Readonly<ProcessState>, p: ProcessChannels, o: Float64Array): void {
    o[BUBBLE]! += BASE_DEFECT_RATE.bubble * (s.seedIndex - 1);
    const u = s.unmeltedIndex;
    o[STONE]! += 0.001 * (u - 1) + 0.004 * excess(u - 3);
    o[CLOUD]! += 0.005 * excess(u - 3);
    o[CLOUD]! += 0.02 * excess((3 - p.o2.value) / 0.5);
    o[CLOUD]! += 0.01 * excess((10 - p.furnacePressure.value) / 3);
    o[CLOUD]! += 0.01 * excess((s.meltSwingC - 10) / 10);
    o[CRACK]! += 0.03 * excess((s.meltTemperatureC - 1600) / 50);
  }

  /**
   * Forming and handling: sag and wall distribution (deformation), chilled-mold checks, excessive pressure, air
   * trapped by pressure swings and fast cycles (bubbles), handling impacts (chips, scratches), hot-mold swabbing
   * and condensation (stains).
   */
  private forming(s: Readonly<ProcessState>, p: ProcessChannels, o: Float64Array): void {
    // Deformation: log10 of the deformation index past log10(8) (≈ 180 m/min at nominal mold and gob), and walls
    // more than twice as uneven as nominal (a chilled mold, a cold gob, low pressure).
    const spreadRatio = s.wallSpread / NOMINAL_SPREAD;
    o[DEFORM]! += 0.05 * excess((Math.log10(Math.max(s.deformationIndex, 1e-9)) - 0.9) / 0.35);
    o[DEFORM]! += 0.02 * excess(spreadRatio - 2);
    const h = s.handlingIndex;
    o[CHIP]! += 0.03 * excess((h - HANDLING_170) / 0.3);
    o[SCRATCH]! += 0.01 * excess((h - HANDLING_170) / 0.3) + 0.02 * excess((s.beltSpikeMMin - 5) / 10);
    o[BUBBLE]! += 0.01 * excess((p.beltSpeed.value - 180) / 20);
    o[BUBBLE]! += 0.03 * excess((s.formingPressureSwingMPa - 15) / 10);
    const mold = p.moldTemperature.value;
    o[CRACK]! += 0.04 * excess((280 - mold) / 20);
    o[CHIP]! += 0.03 * excess((300 - mold) / 20);
    o[STAIN]! += 0.03 * excess((mold - 350) / 20);
    o[CRACK]! += 0.03 * excess((p.formingPressure.value - 65) / 10);
    o[STAIN]! += 0.03 * excess((s.humidityPct - 70) / 10);
  }

  /**
   * Annealing: items crack when the residual stress frozen in by the lehr (σ = E·α·ΔT/(1 − ν)) approaches the
   * 50 MPa strength (three-parameter Weibull, physics.ts), and above 7 °C/min (DOMAIN), where surface checks from
   * forming and handling grow under the transient cooling stress.
   */
  private annealing(s: Readonly<ProcessState>, p: ProcessChannels, o: Float64Array): void {
    o[CRACK]! += crackProbability(s.residualStressMPa);
    o[CRACK]! += 0.08 * excess(p.coolingRate.value - 7);
  }
}
