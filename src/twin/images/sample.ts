import {
  DEFECT_CLASSES,
  DEFECT_SEVERITY,
  type DefectClass,
  type InspectedDefect,
  type InspectionEvent,
} from "../../core/types.js";
import { Rng } from "../rng.js";

/**
 * Typical defect size per class (mm): the medians of the twin's defect model (src/twin/defect-model.ts), repeated
 * here because that table is private to it. Sizes are lognormal around them, as there.
 */
export const TYPICAL_SIZE_MM: Readonly<Record<DefectClass, number>> = {
  crack: 6,
  bubble: 0.8,
  chip: 3,
  cloudiness: 12,
  deformation: 10,
  stain: 5,
  stone: 1.2,
  scratch: 15,
};

export interface SampleOptions {
  /** Probability that an item gets a second defect drawn on top of the first (an overlap hard case). Default 0. */
  overlap?: number;
  /** Start of the item timestamps, ms since the epoch; items are 4 s apart (MIK-1 nominal rate). */
  startTs?: number;
}

/**
 * A defective inspection event for item `itemId` to render, as the MIK-1 would report it: the first defect's class
 * cycles through DEFECT_CLASSES with the item id (so any 8 consecutive items show every class), 30 % of items get
 * one or two more defects of any class, sizes are lognormal around TYPICAL_SIZE_MM. Deterministic per (seed, itemId).
 */
export function sampleInspection(seed: number, itemId: number, opts: SampleOptions = {}): InspectionEvent {
  const rng = Rng.derive(seed, (Math.floor(new Rng(itemId).next() * 4_294_967_296) ^ 0x5eed) >>> 0);
  const make = (cls: DefectClass, x: number, y: number): InspectedDefect => ({
    class: cls,
    size_mm: Math.round(TYPICAL_SIZE_MM[cls] * Math.exp(0.5 * rng.gaussian()) * 10) / 10 || 0.1,
    x: Math.round(x * 1e4) / 1e4,
    y: Math.round(y * 1e4) / 1e4,
    severity: DEFECT_SEVERITY[cls],
  });
  const first = DEFECT_CLASSES[((itemId % 8) + 8) % 8] as DefectClass;
  const defects = [make(first, 0.1 + 0.8 * rng.next(), 0.08 + 0.86 * rng.next())];
  const extraRoll = rng.next();
  const extra = extraRoll < 0.1 ? 2 : extraRoll < 0.3 ? 1 : 0;
  for (let k = 0; k < extra; k++) {
    const cls = DEFECT_CLASSES[Math.floor(rng.next() * 8)] as DefectClass;
    defects.push(make(cls, 0.1 + 0.8 * rng.next(), 0.08 + 0.86 * rng.next()));
  }
  if (rng.next() < (opts.overlap ?? 0)) {
    const d0 = defects[0] as InspectedDefect;
    const cls = DEFECT_CLASSES[Math.floor(rng.next() * 8)] as DefectClass;
    const clamp = (v: number) => Math.min(1, Math.max(0, v));
    defects.push(make(cls, clamp(d0.x + 0.08 * (rng.next() - 0.5)), clamp(d0.y + 0.03 * (rng.next() - 0.5))));
  }
  return { item_id: itemId, ts: (opts.startTs ?? Date.UTC(2026, 0, 1)) + itemId * 4000, defects, ok: false };
}
