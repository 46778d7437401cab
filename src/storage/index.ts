export { LMDB_NODE_OVERHEAD, sampleEntryBytes, VALUE_BYTES } from "./codec.js";
export { MAX_RANGE_LIMIT, Store } from "./store.js";
export type {
  AppendResult,
  IntegrityReport,
  LatencyHistogram,
  QuarantineEntry,
  QuarantineQuery,
  Rejected,
  RetentionResult,
  SeqGap,
  SourceStats,
  StoreOptions,
  StoreStats,
} from "./types.js";
