/*
 * MIK-1 frame intake: watched directory (write-then-rename) and HTTP push → checks → preprocessing for the vision
 * model → originals on disk, metadata and thumbnails in LMDB → a bounded drop-oldest queue → `onFrame` handlers.
 */
export {
  type FramesConfig,
  FramesConfigSchema,
  framesConfigIssues,
  MAX_CAMERA_PIXELS,
  resolveFramesConfig,
} from "./config.js";
export { IMAGE_EXTENSIONS, isIncompleteName } from "./directory.js";
export type { FrameDbHost, FrameRecord } from "./frame-store.js";
export {
  type FrameHandler,
  FrameIntake,
  type FrameIntakeOptions,
  type FrameIntakeStats,
  type FrameMetaInput,
  FramesBusyError,
  type IntakeFrame,
} from "./intake.js";
export {
  type FrameFormat,
  FramePreprocessor,
  type FrameTensor,
  hasTrailer,
  type Preprocessed,
  sniffFormat,
} from "./preprocess.js";
export { DecodeLimiter, DropOldestQueue } from "./queue.js";
export { FRAME_REJECT_REASONS, FrameRejectedError, type FrameRejectReason } from "./reasons.js";
