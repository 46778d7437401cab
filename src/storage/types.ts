import type { Config } from "../config/schema.js";
import type { Clock } from "../core/clock.js";
import type { Logger } from "../core/logger.js";

/**
 * A sample that failed validation, as the quarantine stores it. Every field is JSON-safe: a raw value that was not
 * a finite number is kept as text, a timestamp or sequence number that was not usable is `null`.
 */
export interface Rejected {
  /** Tag id as received (text form if it was not a string). */
  tag: string;
  /** Source timestamp in ms epoch, `null` when it was not a finite number. */
  ts: number | null;
  /** When glassd received the sample (ms epoch, the daemon's clock). Quarantine queries filter and order on this. */
  received_at: number;
  /** Machine-readable reason, e.g. `out_of_range` (see `REJECT_REASONS` in ingest/validate). */
  reason: string;
  /** Human-readable explanation, bounded in length. */
  detail: string;
  /** The raw value as JSON-safe text (strings quoted, `NaN`/`Infinity` spelled out), bounded in length. */
  raw_value: string;
  source: string;
  /** Per-source sequence number, `null` when the source sent none usable (then it takes no part in seq tracking). */
  seq: number | null;
}

/** A stored quarantine record: the rejected sample plus its quarantine id (monotonically increasing). */
export interface QuarantineEntry extends Rejected {
  id: number;
}

/** Filter for `Store.quarantine()`. All fields optional; results are newest first. */
export interface QuarantineQuery {
  reason?: string;
  tag?: string;
  /** Inclusive lower bound on `received_at` (ms epoch). */
  from?: number;
  /** Inclusive upper bound on `received_at` (ms epoch). */
  to?: number;
  /** Most entries returned; default 100, at most 10 000. */
  limit?: number;
}

/** A gap seen in one source's sequence numbers while appending a batch. */
export interface SeqGap {
  source: string;
  /** Last sequence number committed before the gap. */
  after: number;
  /** First sequence number after the gap. */
  next: number;
  /** How many sequence numbers are missing (`next - after - 1`). */
  missing: number;
}

/** What `Store.appendBatch` did with a batch (all of it is also in the cumulative `StoreStats`). */
export interface AppendResult {
  /** Accepted samples written to the sample ring. */
  stored: number;
  /** Rejected samples written to the quarantine. */
  quarantined: number;
  /** Samples (accepted or rejected) whose (source, seq) was already committed; not stored again. */
  duplicates: number;
  gaps: SeqGap[];
}

/** Outcome of one retention pass. */
export interface RetentionResult {
  /** Samples deleted because they were older than `retention_hours`. */
  evicted_by_age: number;
  /** Samples deleted, oldest first, to bring the ring under `max_sample_bytes`. */
  evicted_by_bytes: number;
  duration_ms: number;
}

/** Per-source sequence tracking, persisted with every batch. */
export interface SourceStats {
  last_seq: number;
  duplicates_total: number;
  gaps_total: number;
  missing_total: number;
}

/** Cumulative write-latency histogram (Prometheus style: cumulative counts per upper bound, in seconds). */
export interface LatencyHistogram {
  buckets_s: readonly number[];
  /** `counts[i]` = batches whose commit took ≤ `buckets_s[i]`; `count` includes the +Inf bucket. */
  counts: number[];
  count: number;
  sum_s: number;
  max_s: number;
  last_s: number;
}

/** Figures for /metrics and the API. Keys are snake_case because they leave the process as JSON. */
export interface StoreStats {
  samples: {
    /** Entries in the sample ring (exact, from LMDB). */
    entries: number;
    /** Running estimate of the ring's size: Σ (key + value + LMDB node overhead); see `sampleEntryBytes`. */
    bytes: number;
    budget_bytes: number;
    /** Bytes of B-tree pages LMDB actually uses for the ring (page count × page size); ≥ `bytes` by page slack. */
    tree_bytes: number;
    tags: number;
    evicted_by_age_total: number;
    evicted_by_bytes_total: number;
  };
  quarantine: {
    entries: number;
    max_entries: number;
    /** Entries currently held, per reason. */
    by_reason: Record<string, number>;
    /** Entries ever quarantined, per reason (survives eviction and restarts). */
    total_by_reason: Record<string, number>;
    /** Entries dropped because the quarantine was full. */
    dropped_total: number;
  };
  sources: Record<string, SourceStats>;
  writes: {
    batches_total: number;
    failed_total: number;
    latency: LatencyHistogram;
  };
  retention: {
    runs_total: number;
    last_run_at: number | null;
    last_duration_ms: number | null;
  };
}

/** Result of `Store.checkIntegrity()`: the persisted running totals against a full recount. */
export interface IntegrityReport {
  ok: boolean;
  entries: number;
  persisted_bytes: number;
  recounted_bytes: number;
  quarantine_entries: number;
  persisted_quarantine_entries: number;
  /** Entries in the quarantine's indexes; each must equal `quarantine_entries`. */
  quarantine_index_entries: { by_reason: number; by_tag: number };
}

export interface StoreOptions {
  /** `config.data_dir`; the environment lives in `<dataDir>/lmdb`. */
  dataDir: string;
  storage: Config["storage"];
  /** Time source for retention and quarantine timestamps. Default: real time. */
  clock?: Clock;
  logger?: Logger;
  /**
   * Run retention on a timer (every `retentionIntervalMs`) and as soon as a batch takes the ring over its byte
   * budget. Default true; tests turn it off and call `runRetention()` themselves.
   */
  autoRetention?: boolean;
  /** Default 60 000 ms. */
  retentionIntervalMs?: number;
  /** Most entries deleted per retention transaction, so the event loop is never held for long. Default 2 000. */
  retentionChunk?: number;
}
