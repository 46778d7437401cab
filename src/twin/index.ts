/*
 * Digital twin: the line simulator glassd uses as its default line. Public API only; the dynamics' building
 * blocks (channels, delay buffers) stay inside the folder.
 */
export {
  BASE_DEFECT_RATE,
  DefectModel,
  type DefectModelOptions,
  STAGE_TIMING,
  type StageTiming,
} from "./defect-model.js";
export { TwinTagError, type TwinTagErrorCode } from "./errors.js";
export {
  DISTURBANCE_KINDS,
  DISTURBANCE_TIMING,
  type DisturbanceKind,
  type DisturbanceSpec,
  FURNACE_POWER_DELAY_MS,
  KNOWN_TAG_IDS,
  LineModel,
  type LineModelOptions,
  type LinePhysicsOptions,
  type ProcessState,
  SENSOR_FAULT_KINDS,
  type SensorFaultKind,
  type SensorFaultSpec,
  type StepHook,
} from "./line-model.js";
export { ANNEALING, BATCH, FOREHEARTH, FORMING, FURNACE, NOMINAL, REFINING } from "./physics.js";
export { Rng } from "./rng.js";
export { TwinLine, type TwinLineOptions, type TwinOutput, type TwinStats, twinOptionsFromConfig } from "./twin-line.js";
export { TWIN_VERSION } from "./version.js";
