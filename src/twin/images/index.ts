/*
 * Synthetic MIK-1 inspection images with pixel-accurate masks (the twin's camera). Public API only: the scene,
 * the defect drawings and the raster helpers stay inside the folder.
 */
export { CLASS_COLORS, encodeLabelPng, encodeMaskPng, encodeOverlayPng } from "./encode.js";
export {
  type Glass,
  HARD_KINDS,
  type HardKind,
  type ImageColor,
  type ImageFormat,
  MAX_PIXELS,
  MAX_SIDE,
  MIN_SIDE,
  type Product,
  type RenderOptions,
} from "./options.js";
export {
  type DefectBox,
  LABEL_PRECEDENCE,
  type RenderResult,
  renderClean,
  renderInspection,
} from "./render.js";
export { type SampleOptions, sampleInspection, TYPICAL_SIZE_MM } from "./sample.js";
