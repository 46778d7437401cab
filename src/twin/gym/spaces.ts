import type { TagConfig } from "../../config/schema.js";
import { DEFECT_CLASSES, DEFECT_SEVERITY, type DefectClass } from "../../core/types.js";
import { LineModel } from "../index.js";

/*
 * Observation and action spaces, derived from the tag dictionary (PROTOCOL.md, "Spaces"). Observation layout:
 *
 *   [0, T)             every tag, (value − band middle) / band half-width: ±1 is the edge of the normal band
 *   [T, T+L)           every lever's setpoint, scaled to its actuator range: −1 = actuator min, +1 = actuator max
 *   [T+L, T+L+C)       expected per-item probability of each defect class over the last control interval, percent
 *   T+L+C              expected share of defective items over the last control interval, percent
 *   T+L+C+1            time in episode, 0 at reset → 1 at truncation
 *
 * Actions: one per lever, in [−1, 1], a setpoint change of action × max_step, clamped to the actuator range.
 */

/** A lever the policy moves: a tag with an `actuator` that the twin's physics can drive. */
export interface LeverSpec {
  tag: string;
  unit: string;
  min: number;
  max: number;
  maxStep: number;
}

export interface GymSpec {
  tags: readonly TagConfig[];
  levers: readonly LeverSpec[];
  /** Band middle and half-width of every tag (normalisation), parallel to `tags`. */
  bandMid: Float64Array;
  bandHalf: Float64Array;
  obsDim: number;
  actDim: number;
  obsNames: string[];
  obsUnits: string[];
  obsLow: Float64Array;
  obsHigh: Float64Array;
  /** Offsets of the blocks in the observation vector. */
  offsets: { tags: number; setpoints: number; defects: number; defective: number; time: number };
  /** Index in `tags` of the tags the reward reads. */
  beltIndex: number;
  powerIndex: number;
  beltNominal: number;
}

/** Tags the reward needs (throughput from the belt, energy from burner power). */
export const REQUIRED_TAGS = ["belt_speed", "furnace_power"] as const;

/** Severity weights of the `defects` reward term, by DOMAIN.md's severity family. */
export const SEVERITY_WEIGHT: Readonly<Record<"critical" | "major" | "minor", number>> = {
  critical: 3,
  major: 2,
  minor: 1,
};

export const CLASS_SEVERITY_WEIGHT: Float64Array = Float64Array.from(
  DEFECT_CLASSES,
  (c: DefectClass) => SEVERITY_WEIGHT[DEFECT_SEVERITY[c]],
);

/** Builds the spaces for a tag dictionary. Throws an Error naming a missing tag the reward needs. */
export function buildGymSpec(tags: readonly TagConfig[]): GymSpec {
  for (const id of REQUIRED_TAGS) {
    if (!tags.some((t) => t.id === id)) {
      throw new Error(`the gym's reward needs tag "${id}" in the tag dictionary; add it to config.tags`);
    }
  }
  // The physics decides which actuator tags it can drive; ask it once rather than duplicating its list.
  const writable = new Set(new LineModel({ tags: tags.slice(), seed: 0 }).writableTags());
  const levers: LeverSpec[] = [];
  for (const t of tags) {
    if (!t.actuator || !writable.has(t.id)) continue;
    levers.push({ tag: t.id, unit: t.unit, min: t.actuator.min, max: t.actuator.max, maxStep: t.actuator.max_step });
  }
  if (levers.length === 0) throw new Error("the tag dictionary has no lever (tag with an actuator) the twin can drive");

  const T = tags.length;
  const L = levers.length;
  const C = DEFECT_CLASSES.length;
  const offsets = { tags: 0, setpoints: T, defects: T + L, defective: T + L + C, time: T + L + C + 1 };
  const obsDim = T + L + C + 2;
  const bandMid = Float64Array.from(tags, (t) => (t.normal.min + t.normal.max) / 2);
  const bandHalf = Float64Array.from(tags, (t) => (t.normal.max - t.normal.min) / 2 || 1);
  const obsNames: string[] = [];
  const obsUnits: string[] = [];
  const obsLow = new Float64Array(obsDim);
  const obsHigh = new Float64Array(obsDim);
  tags.forEach((t, i) => {
    obsNames.push(`tag:${t.id}`);
    obsUnits.push(`band-normalised ${t.unit} ((x - ${bandMid[i]}) / ${bandHalf[i]})`);
    obsLow[i] = (t.limits.min - bandMid[i]!) / bandHalf[i]!;
    obsHigh[i] = (t.limits.max - bandMid[i]!) / bandHalf[i]!;
  });
  levers.forEach((l, j) => {
    obsNames.push(`setpoint:${l.tag}`);
    obsUnits.push(`actuator-normalised ${l.unit} (-1 = ${l.min}, +1 = ${l.max})`);
    obsLow[T + j] = -1;
    obsHigh[T + j] = 1;
  });
  DEFECT_CLASSES.forEach((c, k) => {
    obsNames.push(`defect_pct:${c}`);
    obsUnits.push("% of items");
    obsLow[T + L + k] = 0;
    obsHigh[T + L + k] = 100;
  });
  obsNames.push("defective_pct");
  obsUnits.push("% of items");
  obsLow[offsets.defective] = 0;
  obsHigh[offsets.defective] = 100;
  obsNames.push("episode_time");
  obsUnits.push("fraction of the episode");
  obsLow[offsets.time] = 0;
  obsHigh[offsets.time] = 1;

  const beltIndex = tags.findIndex((t) => t.id === "belt_speed");
  const powerIndex = tags.findIndex((t) => t.id === "furnace_power");
  return {
    tags,
    levers,
    bandMid,
    bandHalf,
    obsDim,
    actDim: L,
    obsNames,
    obsUnits,
    obsLow,
    obsHigh,
    offsets,
    beltIndex,
    powerIndex,
    beltNominal: bandMid[beltIndex]!,
  };
}
