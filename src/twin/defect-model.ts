import {
  DEFECT_CLASSES,
  DEFECT_SEVERITY,
  type DefectClass,
  type InspectedDefect,
  type InspectionEvent,
} from "../core/types.js";
import { viscosityLog10 } from "../features/domain.js";
import { DelayBuffer } from "./delay-buffer.js";
import type { LineModel, ProcessChannels } from "./line-model.js";
import { excess } from "./physics.js";
import { Rng } from "./rng.js";

/*
 * Defects as a per-class hazard per item. Each process stage turns its *current* state into extra per-class
 * probability (DOMAIN.md's causal rules), and that contribution reaches the MIK-1 through the stage's transport
 * delay (dead time: nothing shows before it) and then a first-order lag (items formed under the new conditions
 * replace the old ones gradually). So a cause is visible upstream well before its defects are — the forecaster's
 * job. A rule's strength is "extra probability per unit of excess", where excess is how far past its threshold the
 * variable is, in units of a stated scale.
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
 * - furnace: 30 min dead time (refining, conditioning, forehearth) + 30 min lag → 63 % at 60 min, 95 % at 120 min.
 * - forming: 2 min dead time (conveyor and lehr entry to the camera) + 20 s lag; e.g. belt speed > 180 m/min
 *   raises deformation from 2 min after the belt crosses 180 and reaches 95 % of the effect ~1 min later.
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

/** Gob temperature below the melt: the forehearth conditions glass ~430 °C down to the working range. */
const GOB_BELOW_MELT_C = 430;

/** Exponential moving average with a time constant; used to measure swings and surges. */
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

type Contribution = (p: ProcessChannels, out: Float64Array) => void;

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
    process: ProcessChannels,
    t0: number,
  ) {
    contribute(process, this.now);
    this.filtered.set(this.now);
    this.buffer = new DelayBuffer(timing.delayMs, t0, this.now);
  }

  update(process: ProcessChannels, t: number, dtMs: number): void {
    this.now.fill(0);
    this.contribute(process, this.now);
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
  private readonly furnaceT: Ewma;
  private readonly batch: Ewma;
  private readonly belt: Ewma;
  private readonly formingPressure: Ewma;

  constructor(
    private readonly model: LineModel,
    opts: DefectModelOptions,
  ) {
    if (!(opts.itemsPerMin > 0)) throw new RangeError(`DefectModel: itemsPerMin must be > 0, got ${opts.itemsPerMin}`);
    this.itemsPerMin = opts.itemsPerMin;
    this.rng = Rng.derive(opts.seed, 3);
    const p = model.process;
    // Swings are deviations from a recent average: 30 min for the melt, 10 min for the feeder, seconds for forming.
    this.furnaceT = new Ewma(30 * MIN, p.furnaceTemperature.value);
    this.batch = new Ewma(10 * MIN, p.batchFlow.value);
    this.belt = new Ewma(10_000, p.beltSpeed.value);
    this.formingPressure = new Ewma(MIN, p.formingPressure.value);
    const t0 = model.now();
    this.stages = [
      new Stage(STAGE_TIMING.furnace, (q, o) => this.furnace(q, o), p, t0),
      new Stage(STAGE_TIMING.forming, (q, o) => this.forming(q, o), p, t0),
      new Stage(STAGE_TIMING.annealing, (q, o) => this.annealing(q, o), p, t0),
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
    this.furnaceT.update(proc.furnaceTemperature.value, dtMs);
    this.batch.update(proc.batchFlow.value, dtMs);
    this.belt.update(proc.beltSpeed.value, dtMs);
    this.formingPressure.update(proc.formingPressure.value, dtMs);
    for (const s of this.stages) s.update(proc, t, dtMs);
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

  // --- DOMAIN.md causal rules, one stage each ---

  private furnace(p: ProcessChannels, o: Float64Array): void {
    const T = p.furnaceTemperature.value;
    // Too cold: no degassing (bubbles), incomplete melting (cord), unmelted batch (stones).
    const cold = excess((1450 - T) / 25);
    o[BUBBLE]! += 0.04 * cold;
    o[CLOUD]! += 0.02 * cold;
    o[STONE]! += 0.015 * cold;
    o[CRACK]! += 0.03 * excess((T - 1600) / 50);
    // Too hot: the gob is too fluid to hold its shape (VFT viscosity at the gob temperature).
    o[DEFORM]! += 0.02 * excess((2.4 - viscosityLog10(T - GOB_BELOW_MELT_C)) / 0.3);
    const o2 = p.o2.value;
    o[BUBBLE]! += 0.01 * excess((o2 - 5) / 0.5);
    o[CLOUD]! += 0.02 * excess((3 - o2) / 0.5);
    o[CLOUD]! += 0.01 * excess((10 - p.furnacePressure.value) / 3);
    o[CLOUD]! += 0.01 * excess((Math.abs(T - this.furnaceT.value) - 10) / 10);
    o[STONE]! += 0.02 * excess((Math.abs(p.batchFlow.value - this.batch.value) - 150) / 200);
  }

  private forming(p: ProcessChannels, o: Float64Array): void {
    const belt = p.beltSpeed.value;
    const over170 = excess((belt - 170) / 20);
    const over180 = excess((belt - 180) / 20);
    o[DEFORM]! += 0.06 * over180;
    o[CHIP]! += 0.03 * over170;
    o[BUBBLE]! += 0.01 * over180;
    o[SCRATCH]! += 0.01 * over170 + 0.02 * excess((Math.abs(belt - this.belt.value) - 5) / 10);
    const mold = p.moldTemperature.value;
    const under280 = excess((280 - mold) / 20);
    o[CRACK]! += 0.04 * under280;
    o[DEFORM]! += 0.04 * under280 + 0.04 * excess((mold - 400) / 20);
    o[CHIP]! += 0.03 * excess((300 - mold) / 20);
    o[STAIN]! += 0.03 * excess((mold - 350) / 20);
    const fp = p.formingPressure.value;
    const swing = Math.abs(fp - this.formingPressure.value);
    o[CRACK]! += 0.03 * excess((fp - 65) / 10);
    o[BUBBLE]! += 0.03 * excess((swing - 15) / 10);
    o[DEFORM]! += 0.02 * excess((swing - 10) / 10);
    o[STAIN]! += 0.03 * excess((p.humidity.value - 70) / 10);
  }

  private annealing(p: ProcessChannels, o: Float64Array): void {
    o[CRACK]! += 0.08 * excess(p.coolingRate.value - 7);
    // Residual stress from a lehr profile away from 600/550/500 °C.
    const dev = Math.max(Math.abs(p.zone1.value - 600), Math.abs(p.zone2.value - 550), Math.abs(p.zone3.value - 500));
    o[CRACK]! += 0.02 * excess((dev - 10) / 10);
  }
}
