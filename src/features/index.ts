/*
 * Feature extraction: per-tag time windows fed with validated samples, and the named feature vector the pipeline
 * computes each tick (per-tag statistics, temporal features and glass-physics domain features).
 */
export {
  ANNEALING_NOMINAL_C,
  ANNEALING_SCORE_SCALE_C,
  annealingMonotonic,
  annealingRmsDeviationC,
  annealingScore,
  coolingDeltaTK,
  coolingStressMPa,
  DEFAULT_WALL_THICKNESS_M,
  inBandFraction,
  SODA_LIME,
  SODA_LIME_DIFFUSIVITY_M2S,
  stabilityIndex,
  stressRatio,
  thermalGradientC,
  thermalStressMPa,
  VFT_SODA_LIME,
  type VftConstants,
  viscosityLog10,
} from "./domain.js";
export {
  DOMAIN_FEATURES,
  DOMAIN_PREFIX,
  FeatureExtractor,
  type FeatureExtractorOptions,
  type FeatureVector,
  PER_TAG_FEATURES,
} from "./feature-extractor.js";
export { FeatureStage } from "./feature-stage.js";
export {
  gridSize,
  gridTimes,
  type TagPoint,
  type TagWindowCounters,
  type TagWindowSpec,
  TagWindows,
  type TagWindowsOptions,
} from "./tag-windows.js";
