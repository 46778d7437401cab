/*
 * The twin as vectorised RL environments (`glassd twin gym`): the protocol server, its framing, the environments
 * and a TypeScript client. PROTOCOL.md is the contract with the Python model factory.
 */
export { GymClient, type GymReply, type SpawnGymOptions } from "./client.js";
export { type EpisodeEnd, GlassEnv } from "./env.js";
export { GymError, type GymErrorCode } from "./errors.js";
export {
  type DType,
  decodeArrays,
  encodeFrame,
  type Frame,
  FrameReader,
  MAGIC,
  type ParseResult,
  type TypedArray,
  type WireArray,
} from "./frame.js";
export {
  DEFAULT_GYM_OPTIONS,
  DEFAULT_REWARD_WEIGHTS,
  type GymOptions,
  type GymReset,
  parseGymOptions,
  parseGymReset,
  type RewardWeights,
} from "./options.js";
export { computeReward, REWARD_FORMULA, REWARD_TERMS, type RewardTerm } from "./reward.js";
export {
  DATASET_MIX_SCENARIO,
  describeGymScenario,
  episodeScenario,
  type GymScenarioPlan,
  resolveGymScenario,
} from "./scenario.js";
export {
  DEFAULT_MAX_ENVS,
  GYM_PROTOCOL,
  GYM_PROTOCOL_VERSION,
  GymServer,
  type GymServerOptions,
  serveGym,
} from "./server.js";
export { buildGymSpec, type GymSpec, type LeverSpec } from "./spaces.js";
export { type FinalInfo, GlassVecEnv } from "./vec-env.js";
