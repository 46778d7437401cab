/*
 * `glassd twin dataset`: training data for the model factory from the twin (format: FORMAT.md in this folder).
 * Public API only.
 */
export { CALIBRATION, calibrationPairs, calibrationScenario } from "./calibration.js";
export {
  DATASET_ENTRIES,
  DATASET_START_TS,
  DatasetExistsError,
  type DatasetOptions,
  FORMAT_NAME,
  FORMAT_VERSION,
  generateDataset,
  HORIZONS_MIN,
  horizonLabels,
  QUARANTINE_CODES,
  SENSOR_FAULT_CODES,
} from "./generate.js";
export { type ImageSummary, selectImageItems } from "./images.js";
export { DATASET_MIX, datasetMix, excursionRange, SETPOINT_LIMIT_MARGIN } from "./mix.js";
export { checkDataset, type DatasetManifest, readDatasetArray, readManifest } from "./read.js";
