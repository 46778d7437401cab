import { DEFECT_CLASSES } from "../../core/types.js";
import type { RewardWeights } from "./options.js";
import { CLASS_SEVERITY_WEIGHT } from "./spaces.js";

/*
 * The reward of one env step (one control interval), as a sum of named terms that are also returned in `info`
 * (`reward_terms`, in REWARD_TERMS order) so a trainer can see what the policy is trading. Bars are means over
 * the interval's physics steps (each taken at the end of a physics step); z are the band-normalised tags at the
 * end of the interval (the observation).
 *
 *   throughput     = + w_throughput     · v̄ / v_nom                         belt speed vs the band middle (150 m/min)
 *   quality        = + w_quality        · ((1 − p̄_def) − 0.95) / 0.05       good share vs the plant's 0.95 target
 *   energy         = − w_energy         · P̄ / 100                           burner power, % → fraction
 *   defects        = − w_defects        · (v̄ / v_nom) · Σ_c s_c · p̄_c / 0.05  severity-weighted defects per unit time
 *   band           = − w_band           · Σ_i max(0, |z_i| − 1)              distance outside the normal bands
 *   actuator_limit = − w_actuator_limit · #levers whose setpoint sits at an actuator limit after the action
 *   termination    = − w_termination    · [a tag left its hard limits]
 *   reward         = the sum of the terms above
 *
 * p̄_c is the defect model's expected per-item probability of class c, p̄_def that of "at least one defect"; s_c is
 * 3 / 2 / 1 for critical / major / minor classes (DOMAIN.md). Expected probabilities rather than counted items keep
 * the reward's variance low; the counted items are in `info` for evaluation. At the nominal operating point (2.9 %
 * defective) the default weights give ≈ +0.5 per step: throughput +1, quality +0.21, energy −0.43, defects −0.27.
 */

export const REWARD_TERMS = [
  "throughput",
  "quality",
  "energy",
  "defects",
  "band",
  "actuator_limit",
  "termination",
] as const satisfies readonly (keyof RewardWeights)[];

export type RewardTerm = (typeof REWARD_TERMS)[number];

export const QUALITY_TARGET = 0.95;
const QUALITY_SCALE = 0.05;
const DEFECT_SCALE = 0.05;

/** The formula above, as text for `hello` and PROTOCOL.md. */
export const REWARD_FORMULA = [
  "throughput = +w.throughput * mean(belt_speed) / belt_nominal",
  `quality = +w.quality * ((1 - mean(p_defective)) - ${QUALITY_TARGET}) / ${QUALITY_SCALE}`,
  "energy = -w.energy * mean(furnace_power) / 100",
  `defects = -w.defects * (mean(belt_speed) / belt_nominal) * sum_c(severity_c * mean(p_c)) / ${DEFECT_SCALE}`,
  "band = -w.band * sum_tags(max(0, |z| - 1))",
  "actuator_limit = -w.actuator_limit * count(levers at an actuator limit)",
  "termination = -w.termination * (1 if a tag left its hard limits else 0)",
  "reward = sum of the terms",
].join("; ");

/** What one control interval measured, as the reward reads it. */
export interface IntervalStats {
  beltMean: number;
  beltNominal: number;
  powerMean: number;
  /** Mean per-item probability of each class, DEFECT_CLASSES order. */
  pClass: Float64Array;
  pDefective: number;
  /** Σ max(0, |z| − 1) over the tags at the end of the interval. */
  bandExcess: number;
  leversAtLimit: number;
  terminated: boolean;
}

/** Writes the terms into `out[off .. off + REWARD_TERMS.length)` and returns their sum. */
export function computeReward(s: IntervalStats, w: RewardWeights, out: Float32Array, off: number): number {
  const rate = s.beltMean / s.beltNominal;
  let severity = 0;
  for (let c = 0; c < DEFECT_CLASSES.length; c++) severity += CLASS_SEVERITY_WEIGHT[c]! * s.pClass[c]!;
  const throughput = w.throughput * rate;
  const quality = (w.quality * (1 - s.pDefective - QUALITY_TARGET)) / QUALITY_SCALE;
  const energy = (-w.energy * s.powerMean) / 100;
  const defects = (-w.defects * rate * severity) / DEFECT_SCALE;
  const band = s.bandExcess > 0 ? -w.band * s.bandExcess : 0;
  const actuatorLimit = s.leversAtLimit > 0 ? -w.actuator_limit * s.leversAtLimit : 0;
  const termination = s.terminated ? -w.termination : 0;
  // Sum in float64, then store: the terms in `info` are float32, so a client summing them sees a float32 rounding
  // (≈1e-7 relative) of the reward, not the reward itself.
  out[off] = throughput;
  out[off + 1] = quality;
  out[off + 2] = energy;
  out[off + 3] = defects;
  out[off + 4] = band;
  out[off + 5] = actuatorLimit;
  out[off + 6] = termination;
  return throughput + quality + energy + defects + band + actuatorLimit + termination;
}
