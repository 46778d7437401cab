import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type Database, type Key, open, type RootDatabase } from "lmdb";
import type { Config } from "../config/schema.js";
import { type Clock, realClock } from "../core/clock.js";
import { GlassdError, type Issue, UnavailableError, ValidationError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { type Service, throwIfAborted } from "../core/service.js";
import type { Sample } from "../core/types.js";
import {
  decodeSample,
  idProblem,
  isQuality,
  KEY_MAX,
  keySafe,
  type SampleKey,
  sampleEntryBytes,
  VALUE_BYTES,
  writeSampleValue,
} from "./codec.js";
import { Latency } from "./latency.js";
import type {
  AppendResult,
  IntegrityReport,
  QuarantineEntry,
  QuarantineQuery,
  Rejected,
  RetentionResult,
  SourceStats,
  StoreOptions,
  StoreStats,
} from "./types.js";

/*
 * One LMDB environment under <data_dir>/lmdb with these sub-databases:
 *
 *   samples               [tag, ts, source, seq] → 9-byte value (see codec.ts)       the bounded sample ring
 *   quarantine            [received_at, id]      → QuarantineEntry (MessagePack)     rejected samples, oldest first
 *   quarantine_by_reason  [reason, received_at, id] → empty                          index for queries by reason
 *   quarantine_by_tag     [tag, received_at, id]    → empty                          index for queries by tag
 *   state                 string → JSON                                             small persisted state
 *   meta                  ["m", "samples"|"quarantine"], ["src", source] → records   running totals, seq tracking
 *
 * Every batch is one LMDB (child) transaction: samples, quarantine entries, per-source sequence state and running
 * totals commit together or not at all, so the totals are exactly right after any crash and never need a rescan.
 * The running totals and per-source state are read from the write transaction itself (not from a JS mirror), so
 * batches queued in the same LMDB transaction see each other and a failed commit leaves nothing to undo in memory.
 */

const DB_NAMES = {
  samples: "samples",
  quarantine: "quarantine",
  byReason: "quarantine_by_reason",
  byTag: "quarantine_by_tag",
  state: "state",
  meta: "meta",
} as const;

const META_SAMPLES: Key = ["m", "samples"];
const META_QUARANTINE: Key = ["m", "quarantine"];
const srcKey = (source: string): Key => ["src", source];

const EMPTY = Buffer.alloc(0);
const REASON_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
/** Longest detail / raw-value text kept in a quarantine entry. */
const MAX_TEXT = 1024;
export const MAX_RANGE_LIMIT = 1_000_000;
const MAX_QUARANTINE_LIMIT = 10_000;

interface SamplesMeta {
  bytes: number;
  evicted_by_age: number;
  evicted_by_bytes: number;
}

interface QuarantineMeta {
  next_id: number;
  entries: number;
  by_reason: Record<string, number>;
  total_by_reason: Record<string, number>;
  dropped: number;
}

interface LmdbStats {
  pageSize: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  entryCount: number;
}

type IndexKey = [string, number, number];

/**
 * The daemon's LMDB store: the bounded sample ring, the quarantine, small persisted state.
 *
 * Durability: `appendBatch`, `putState` and `deleteState` resolve only after LMDB has committed the transaction and
 * fsync'd it (`mdb_txn_commit` without MDB_NOSYNC/MDB_NOMETASYNC). lmdb-js 3.x enables `overlappingSync` by default
 * on Linux, where a write promise resolves at commit (visible) and the flush to disk completes later; the store turns
 * it off so that the promise it hands back means "on disk". LMDB is copy-on-write with two meta pages, so a crash
 * (process kill, or power loss on a disk that honours fsync) at any point leaves the last fsync'd transaction intact
 * and the file needs no repair.
 *
 * One Store per environment per process; opening the same directory from two daemons is not supported.
 */
export class Store implements Service {
  readonly name = "storage";
  private readonly dataDir: string;
  private readonly storage: Config["storage"];
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly autoRetention: boolean;
  private readonly retentionIntervalMs: number;
  private readonly chunk: number;

  private env: RootDatabase | undefined;
  private samples!: Database<Buffer, Key>;
  private quarantineDb!: Database<QuarantineEntry, Key>;
  private byReason!: Database<Buffer, Key>;
  private byTag!: Database<Buffer, Key>;
  private stateDb!: Database<unknown, Key>;
  private meta!: Database<unknown, Key>;

  /** Tags that have (or had) entries in the ring; retention walks each one's key range. Rebuilt on open. */
  private readonly knownTags = new Set<string>();
  /** One value buffer reused for every put: inside a write transaction lmdb-js copies it into the page at once. */
  private readonly scratch = Buffer.alloc(VALUE_BYTES);

  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionResult> | undefined;
  private queued: Promise<RetentionResult> | undefined;
  private stopping = false;

  private readonly latency = new Latency();
  private batches = 0;
  private failed = 0;
  private retentionRuns = 0;
  private lastRetentionAt: number | null = null;
  private lastRetentionMs: number | null = null;

  constructor(opts: StoreOptions) {
    this.dataDir = opts.dataDir;
    this.storage = opts.storage;
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    this.autoRetention = opts.autoRetention ?? true;
    this.retentionIntervalMs = opts.retentionIntervalMs ?? 60_000;
    this.chunk = opts.retentionChunk ?? 2_000;
    const issues: Issue[] = [];
    const s = this.storage;
    if (!(s.retention_hours > 0)) issues.push({ path: "/storage/retention_hours", message: "must be > 0" });
    if (!(s.max_sample_bytes > 0)) issues.push({ path: "/storage/max_sample_bytes", message: "must be > 0" });
    if (!(s.quarantine_max_entries >= 1))
      issues.push({ path: "/storage/quarantine_max_entries", message: "must be >= 1" });
    if (!(this.chunk >= 1)) issues.push({ path: "retentionChunk", message: "must be >= 1" });
    if (issues.length) throw new ValidationError("invalid storage options", issues, 500);
  }

  /** Path of the LMDB environment directory. */
  get path(): string {
    return join(this.dataDir, "lmdb");
  }

  async start(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    await this.open();
    if (signal.aborted) {
      await this.stop();
      throwIfAborted(signal);
    }
  }

  stop(): Promise<void> {
    return this.close();
  }

  /** Opens (or creates) the environment. Idempotent. After an unclean stop LMDB simply opens its last commit. */
  async open(): Promise<void> {
    if (this.env) return;
    const path = this.path;
    let env: RootDatabase;
    try {
      mkdirSync(path, { recursive: true });
      env = open(path, {
        maxDbs: 32,
        mapSize: this.storage.map_size_bytes,
        // See the class comment: without this the write promise resolves before the fsync.
        overlappingSync: false,
      });
    } catch (e) {
      throw new GlassdError(
        `cannot open the LMDB environment at ${path}: ${(e as Error).message}. Check that data_dir exists, is writable by glassd and is on a local file system.`,
        { code: "storage_open_failed", cause: e },
      );
    }
    this.env = env;
    this.samples = env.openDB<Buffer, Key>(DB_NAMES.samples, { encoding: "binary" });
    this.quarantineDb = env.openDB<QuarantineEntry, Key>(DB_NAMES.quarantine, {});
    this.byReason = env.openDB<Buffer, Key>(DB_NAMES.byReason, { encoding: "binary" });
    this.byTag = env.openDB<Buffer, Key>(DB_NAMES.byTag, { encoding: "binary" });
    this.stateDb = env.openDB<unknown, Key>(DB_NAMES.state, { encoding: "json" });
    this.meta = env.openDB<unknown, Key>(DB_NAMES.meta, {});
    this.stopping = false;
    this.scanTags();
    await this.ensureMeta();
    if (this.autoRetention && this.retentionIntervalMs > 0) {
      this.timer = setInterval(() => this.kickRetention(), this.retentionIntervalMs);
      this.timer.unref();
    }
    this.log.info({ path, entries: this.lmdbStats().entryCount, tags: this.knownTags.size }, "storage open");
  }

  /** Waits for retention to stop at its next chunk and for queued writes to commit, then closes. Idempotent. */
  async close(): Promise<void> {
    const env = this.env;
    if (!env) return;
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([this.running, this.queued]);
    this.env = undefined;
    await env.close();
    this.knownTags.clear();
    this.log.info({ path: this.path }, "storage closed");
  }

  /**
   * A named database of its own in the same environment (and so in the same fsync'd transactions), for a
   * capability that keeps durable data beside the samples: an outbound queue, frame metadata, a replay buffer.
   * Names are prefixed with `x:` so they never collide with the store's own. A write through it is durable when its
   * promise resolves, as for samples. Available only while the store is open.
   */
  openDatabase<V = unknown, K extends Key = Key>(
    name: string,
    opts: { encoding?: "json" | "msgpack" | "binary" } = {},
  ): Database<V, K> {
    if (!/^[a-z][a-z0-9_.-]{0,47}$/.test(name))
      throw new GlassdError(`invalid database name "${name}"`, { code: "bad_db_name" });
    return this.requireOpen().openDB<V, K>(`x:${name}`, { encoding: opts.encoding ?? "msgpack" });
  }

  /** Runs `fn` inside one write transaction of the environment (all puts in it commit and fsync together). */
  transaction<T>(fn: () => T): Promise<T> {
    return this.requireOpen().transaction(fn);
  }

  // ── writes ────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Stores validated samples in the ring and rejected ones in the quarantine, in one transaction. Resolves only once
   * that transaction is committed and fsync'd: the caller may acknowledge the batch upstream then, and not before.
   *
   * Sequence tracking: per source, a (source, seq) at or below the last committed seq is a duplicate — counted and
   * not stored again; a jump of more than one is a gap — counted with the number of missing seqs. Within a batch the
   * items are taken in seq order, so a batch may arrive shuffled. Rejected items with `seq: null` are stored without
   * tracking. Consequence: a source must keep its seq increasing across restarts (resume from `lastSeq(source)`),
   * otherwise its new samples are counted as duplicates.
   *
   * Rejects with `ValidationError` (nothing written) when an item breaks the `Sample`/`Rejected` contract, and with
   * a `GlassdError` code `storage_write_failed` when LMDB could not commit (nothing written either).
   */
  async appendBatch(accepted: readonly Sample[], rejected: readonly Rejected[] = []): Promise<AppendResult> {
    const env = this.requireOpen();
    checkAccepted(accepted);
    checkRejected(rejected);
    if (accepted.length === 0 && rejected.length === 0) return { stored: 0, quarantined: 0, duplicates: 0, gaps: [] };
    const t0 = performance.now();
    let out: { result: AppendResult; overBudget: boolean };
    try {
      out = await env.childTransaction(() => this.writeBatch(accepted, rejected));
    } catch (e) {
      this.failed++;
      throw new GlassdError(
        `LMDB commit failed, the batch was not stored (${(e as Error).message}); do not acknowledge it upstream, retry later.`,
        { code: "storage_write_failed", status: 503, cause: e },
      );
    }
    this.latency.observe((performance.now() - t0) / 1000);
    this.batches++;
    if (out.overBudget) this.kickRetention();
    return out.result;
  }

  /** Runs inside the write transaction. */
  private writeBatch(
    accepted: readonly Sample[],
    rejected: readonly Rejected[],
  ): { result: AppendResult; overBudget: boolean } {
    const na = accepted.length;
    const result: AppendResult = { stored: 0, quarantined: 0, duplicates: 0, gaps: [] };
    const sm = this.readSamplesMeta();
    let qm: QuarantineMeta | undefined;

    let src: string | undefined;
    let srcStats: SourceStats | undefined;
    const order = seqOrder(accepted, rejected);
    const n = order ? order.length : na;
    for (let k = 0; k < n; k++) {
      const i = order ? order[k]! : k;
      const item: Sample | Rejected = i < na ? accepted[i]! : rejected[i - na]!;
      const seq = item.seq;
      if (seq !== null && (i < na || idProblem(item.source) === undefined)) {
        if (item.source !== src) {
          if (src !== undefined && srcStats) this.meta.putSync(srcKey(src), srcStats);
          src = item.source;
          srcStats = this.meta.get(srcKey(src)) as SourceStats | undefined;
        }
        if (srcStats === undefined) {
          srcStats = { last_seq: seq, duplicates_total: 0, gaps_total: 0, missing_total: 0 };
        } else if (seq <= srcStats.last_seq) {
          srcStats.duplicates_total++;
          result.duplicates++;
          continue;
        } else {
          if (seq > srcStats.last_seq + 1) {
            const missing = seq - srcStats.last_seq - 1;
            srcStats.gaps_total++;
            srcStats.missing_total += missing;
            result.gaps.push({ source: src, after: srcStats.last_seq, next: seq, missing });
          }
          srcStats.last_seq = seq;
        }
      }
      if (i < na) {
        const s = item as Sample;
        writeSampleValue(s, this.scratch, 0);
        // noOverwrite keeps the byte total exact even if the same key were ever offered twice.
        if (putNew(this.samples, [s.tag, s.ts, s.source, s.seq], this.scratch)) {
          sm.bytes += sampleEntryBytes(s);
          result.stored++;
          if (!this.knownTags.has(s.tag)) this.knownTags.add(s.tag);
        } else {
          result.duplicates++;
        }
      } else {
        qm ??= this.readQuarantineMeta();
        this.putQuarantine(item as Rejected, qm);
        result.quarantined++;
      }
    }
    if (src !== undefined && srcStats) this.meta.putSync(srcKey(src), srcStats);
    if (result.stored > 0) this.meta.putSync(META_SAMPLES, sm);
    if (qm) {
      const excess = qm.entries - this.storage.quarantine_max_entries;
      if (excess > 0) this.dropOldestQuarantine(excess, qm);
      this.meta.putSync(META_QUARANTINE, qm);
    }
    return { result, overBudget: sm.bytes > this.storage.max_sample_bytes };
  }

  private putQuarantine(r: Rejected, qm: QuarantineMeta): void {
    const id = qm.next_id++;
    const at = r.received_at;
    const entry: QuarantineEntry = {
      id,
      tag: clip(r.tag, MAX_TEXT),
      ts: r.ts,
      received_at: at,
      reason: r.reason,
      detail: clip(r.detail, MAX_TEXT),
      raw_value: clip(r.raw_value, MAX_TEXT),
      source: clip(r.source, MAX_TEXT),
      seq: r.seq,
    };
    this.quarantineDb.putSync([at, id], entry);
    this.byReason.putSync([r.reason, at, id], EMPTY);
    this.byTag.putSync([keySafe(r.tag), at, id], EMPTY);
    qm.entries++;
    bump(qm.by_reason, r.reason, 1);
    bump(qm.total_by_reason, r.reason, 1);
  }

  private dropOldestQuarantine(count: number, qm: QuarantineMeta): void {
    const victims = Array.from(this.quarantineDb.getRange({ limit: count }));
    for (const { key, value } of victims) {
      this.quarantineDb.removeSync(key);
      this.byReason.removeSync([value.reason, value.received_at, value.id]);
      this.byTag.removeSync([keySafe(value.tag), value.received_at, value.id]);
      qm.entries--;
      qm.dropped++;
      bump(qm.by_reason, value.reason, -1);
    }
  }

  /** Durably stores a small JSON value under `key` (resolves after the fsync'd commit). */
  async putState(key: string, value: unknown): Promise<void> {
    this.requireOpen();
    checkStateKey(key);
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (e) {
      throw new ValidationError("state value is not JSON-serialisable", [{ path: key, message: (e as Error).message }]);
    }
    if (text === undefined)
      throw new ValidationError("state value is not JSON-serialisable", [{ path: key, message: "undefined" }]);
    // Store what JSON keeps, so that getState returns exactly what a reader of the JSON would see.
    await this.stateDb.put(key, JSON.parse(text));
  }

  /** The value last stored under `key`, or undefined. */
  getState<T = unknown>(key: string): T | undefined {
    this.requireOpen();
    checkStateKey(key);
    return this.stateDb.get(key) as T | undefined;
  }

  /** Durably removes `key`; resolves to whether it existed. */
  async deleteState(key: string): Promise<boolean> {
    this.requireOpen();
    checkStateKey(key);
    return this.stateDb.remove(key);
  }

  // ── queries ───────────────────────────────────────────────────────────────────────────────────────────────────

  /** Samples of `tag` with `fromTs ≤ ts ≤ toTs`, oldest first, at most `limit` (default 10 000). */
  range(tag: string, fromTs: number, toTs: number, limit = 10_000): Sample[] {
    this.requireOpen();
    checkLimit(limit, MAX_RANGE_LIMIT);
    if (Number.isNaN(fromTs) || Number.isNaN(toTs))
      throw new ValidationError("range bounds must be numbers", [{ path: "fromTs/toTs", message: "NaN" }]);
    const out: Sample[] = [];
    if (fromTs > toTs) return out;
    for (const { key, value } of this.samples.getRange({ start: [tag, fromTs], end: [tag, toTs, KEY_MAX], limit }))
      out.push(decodeSample(key as SampleKey, value));
    return out;
  }

  /** The sample of `tag` with the greatest ts, or undefined. */
  latest(tag: string): Sample | undefined {
    this.requireOpen();
    for (const { key, value } of this.samples.getRange({ start: [tag, KEY_MAX], end: [tag], reverse: true, limit: 1 }))
      return decodeSample(key as SampleKey, value);
    return undefined;
  }

  /** Number of samples in the ring, or of one tag within an optional ts window (inclusive). */
  count(tag?: string, fromTs = -Infinity, toTs = Infinity): number {
    this.requireOpen();
    if (tag === undefined) return this.lmdbStats().entryCount;
    if (fromTs > toTs) return 0;
    return this.samples.getCount({ start: [tag, fromTs], end: [tag, toTs, KEY_MAX] });
  }

  /** Tags present in the ring, sorted. */
  tags(): string[] {
    this.requireOpen();
    return [...this.knownTags].sort();
  }

  /** Last committed sequence number of `source`, for an adapter that resumes after a restart. */
  lastSeq(source: string): number | undefined {
    this.requireOpen();
    return (this.meta.get(srcKey(source)) as SourceStats | undefined)?.last_seq;
  }

  /** Quarantined samples matching `q`, newest (by `received_at`) first. */
  quarantine(q: QuarantineQuery = {}): QuarantineEntry[] {
    this.requireOpen();
    const limit = q.limit ?? 100;
    checkLimit(limit, MAX_QUARANTINE_LIMIT);
    const from = q.from ?? -Infinity;
    const to = q.to ?? Infinity;
    const out: QuarantineEntry[] = [];
    if (from > to) return out;
    if (q.reason !== undefined || q.tag !== undefined) {
      // Walk the narrower index we have; filter the other criterion on the record.
      const [index, prefix] = q.reason !== undefined ? [this.byReason, q.reason] : [this.byTag, keySafe(q.tag!)];
      const wantTag = q.reason !== undefined && q.tag !== undefined ? keySafe(q.tag) : undefined;
      for (const key of index.getKeys({ start: [prefix, to, KEY_MAX], end: [prefix, from], reverse: true })) {
        const [, at, id] = key as IndexKey;
        const e = this.quarantineDb.get([at, id]);
        if (!e || (wantTag !== undefined && keySafe(e.tag) !== wantTag)) continue;
        out.push(e);
        if (out.length >= limit) break;
      }
      return out;
    }
    for (const { value } of this.quarantineDb.getRange({ start: [to, KEY_MAX], end: [from], reverse: true, limit }))
      out.push(value);
    return out;
  }

  /** Entries currently in the quarantine, per reason. */
  quarantineCounts(): Record<string, number> {
    this.requireOpen();
    return { ...this.readQuarantineMeta().by_reason };
  }

  stats(): StoreStats {
    this.requireOpen();
    const sm = this.readSamplesMeta();
    const qm = this.readQuarantineMeta();
    const ls = this.lmdbStats();
    const sources: Record<string, SourceStats> = {};
    for (const { key, value } of this.meta.getRange({ start: ["src"], end: ["src", KEY_MAX] }))
      sources[(key as [string, string])[1]] = value as SourceStats;
    return {
      samples: {
        entries: ls.entryCount,
        bytes: sm.bytes,
        budget_bytes: this.storage.max_sample_bytes,
        tree_bytes: (ls.treeBranchPageCount + ls.treeLeafPageCount + ls.overflowPages) * ls.pageSize,
        tags: this.knownTags.size,
        evicted_by_age_total: sm.evicted_by_age,
        evicted_by_bytes_total: sm.evicted_by_bytes,
      },
      quarantine: {
        entries: qm.entries,
        max_entries: this.storage.quarantine_max_entries,
        by_reason: qm.by_reason,
        total_by_reason: qm.total_by_reason,
        dropped_total: qm.dropped,
      },
      sources,
      writes: { batches_total: this.batches, failed_total: this.failed, latency: this.latency.snapshot() },
      retention: {
        runs_total: this.retentionRuns,
        last_run_at: this.lastRetentionAt,
        last_duration_ms: this.lastRetentionMs,
      },
    };
  }

  /**
   * Recounts the ring and the quarantine (and its two indexes) from one read snapshot and compares them with the
   * persisted running totals. O(entries): a diagnostic (and a test oracle), not something to call per scrape.
   */
  checkIntegrity(): IntegrityReport {
    const env = this.requireOpen();
    const transaction = env.useReadTransaction();
    try {
      const sm = (this.meta.get(META_SAMPLES, { transaction }) as SamplesMeta | undefined) ?? emptySamplesMeta();
      const qm = (this.meta.get(META_QUARANTINE, { transaction }) as QuarantineMeta | undefined) ?? emptyQMeta();
      let entries = 0;
      let bytes = 0;
      for (const key of this.samples.getKeys({ transaction })) {
        const k = key as SampleKey;
        entries++;
        bytes += sampleEntryBytes({ tag: k[0], source: k[2] });
      }
      const qEntries = this.quarantineDb.getCount({ transaction });
      const byReason = this.byReason.getCount({ transaction });
      const byTag = this.byTag.getCount({ transaction });
      return {
        ok: bytes === sm.bytes && qEntries === qm.entries && byReason === qEntries && byTag === qEntries,
        entries,
        persisted_bytes: sm.bytes,
        recounted_bytes: bytes,
        quarantine_entries: qEntries,
        persisted_quarantine_entries: qm.entries,
        quarantine_index_entries: { by_reason: byReason, by_tag: byTag },
      };
    } finally {
      transaction.done();
    }
  }

  // ── retention ─────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Deletes samples older than `retention_hours`, then the oldest samples across all tags until the ring fits
   * `max_sample_bytes`. Works in transactions of at most `retentionChunk` deletions, awaiting each commit, so the
   * event loop is never held for more than one chunk. A call while a pass runs queues one more pass after it.
   */
  runRetention(): Promise<RetentionResult> {
    this.requireOpen();
    if (this.queued) return this.queued;
    if (!this.running) return this.startPass();
    this.queued = this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.startPass();
      });
    return this.queued;
  }

  private kickRetention(): void {
    if (!this.autoRetention || this.running || this.queued || !this.env || this.stopping) return;
    void this.runRetention().catch((e: unknown) => this.log.error({ err: e }, "retention failed"));
  }

  private startPass(): Promise<RetentionResult> {
    const p = this.retentionPass().finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async retentionPass(): Promise<RetentionResult> {
    const env = this.requireOpen();
    const t0 = performance.now();
    const cutoff = this.clock.now() - this.storage.retention_hours * 3_600_000;
    let byAge = 0;
    let byBytes = 0;
    for (const tag of [...this.knownTags]) {
      for (;;) {
        if (this.stopping) break;
        const n = await env.childTransaction(() => this.evictTagOlderThan(tag, cutoff));
        byAge += n;
        if (n < this.chunk) break;
      }
    }
    for (;;) {
      if (this.stopping) break;
      const n = await env.childTransaction(() => this.evictOldestOverBudget());
      if (n === 0) break;
      byBytes += n;
    }
    const ms = performance.now() - t0;
    this.retentionRuns++;
    this.lastRetentionAt = this.clock.now();
    this.lastRetentionMs = ms;
    if (byAge || byBytes)
      this.log.info({ evicted_by_age: byAge, evicted_by_bytes: byBytes, ms: Math.round(ms) }, "retention pass");
    return { evicted_by_age: byAge, evicted_by_bytes: byBytes, duration_ms: ms };
  }

  /** Runs inside a write transaction. */
  private evictTagOlderThan(tag: string, cutoff: number): number {
    // [tag, cutoff] sorts before [tag, cutoff, source, seq]: the end bound is exclusive, so ts == cutoff is kept.
    const keys = Array.from(this.samples.getKeys({ start: [tag], end: [tag, cutoff], limit: this.chunk }));
    if (keys.length === 0) return 0;
    const sm = this.readSamplesMeta();
    let n = 0;
    for (const key of keys) {
      const k = key as SampleKey;
      if (this.samples.removeSync(k)) {
        sm.bytes -= sampleEntryBytes({ tag: k[0], source: k[2] });
        n++;
      }
    }
    sm.evicted_by_age += n;
    this.meta.putSync(META_SAMPLES, sm);
    return n;
  }

  /**
   * Runs inside a write transaction. Global oldest-first across tags without a second index: read the head of
   * every tag's range, merge by ts, and delete only up to the point every tag has been read to (`horizon`), so no
   * older entry of some tag can be left behind. Tags are few (the tag dictionary), so this is K short cursor reads.
   */
  private evictOldestOverBudget(): number {
    const sm = this.readSamplesMeta();
    const excess = sm.bytes - this.storage.max_sample_bytes;
    if (excess <= 0) return 0;
    const tags = [...this.knownTags];
    const per = Math.max(16, Math.ceil(this.chunk / Math.max(1, tags.length)));
    const heads: { key: SampleKey; bytes: number }[] = [];
    let horizon = Infinity;
    for (const tag of tags) {
      let got = 0;
      let last = -Infinity;
      for (const key of this.samples.getKeys({ start: [tag], end: [tag, KEY_MAX], limit: per })) {
        const k = key as SampleKey;
        heads.push({ key: k, bytes: sampleEntryBytes({ tag: k[0], source: k[2] }) });
        last = k[1];
        got++;
      }
      if (got === per && last < horizon) horizon = last;
    }
    if (heads.length === 0) {
      // Nothing left to evict but the total says otherwise: the total is wrong, trust the (empty) ring.
      if (this.lmdbStats().entryCount === 0) {
        sm.bytes = 0;
        this.meta.putSync(META_SAMPLES, sm);
      }
      return 0;
    }
    heads.sort((a, b) => a.key[1] - b.key[1]);
    let freed = 0;
    let n = 0;
    for (const h of heads) {
      if (freed >= excess || n >= this.chunk || h.key[1] > horizon) break;
      if (this.samples.removeSync(h.key)) {
        freed += h.bytes;
        n++;
      }
    }
    sm.bytes -= freed;
    sm.evicted_by_bytes += n;
    this.meta.putSync(META_SAMPLES, sm);
    return n;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────────────

  private requireOpen(): RootDatabase {
    if (!this.env) throw new UnavailableError("storage is not open (not started yet, or stopped)", "storage_closed");
    return this.env;
  }

  private lmdbStats(): LmdbStats {
    return this.samples.getStats() as LmdbStats;
  }

  private readSamplesMeta(): SamplesMeta {
    return (this.meta.get(META_SAMPLES) as SamplesMeta | undefined) ?? emptySamplesMeta();
  }

  private readQuarantineMeta(): QuarantineMeta {
    return (this.meta.get(META_QUARANTINE) as QuarantineMeta | undefined) ?? emptyQMeta();
  }

  /** Finds the distinct tags in the ring by skipping from one tag's key range to the next: one seek per tag. */
  private scanTags(): void {
    this.knownTags.clear();
    let start: Key | undefined;
    for (;;) {
      let next: string | undefined;
      for (const key of this.samples.getKeys(start === undefined ? { limit: 1 } : { start, limit: 1 }))
        next = (key as SampleKey)[0];
      if (next === undefined) break;
      this.knownTags.add(next);
      start = [next, KEY_MAX];
    }
  }

  /** Recounts running totals that are missing (an environment written before they existed, or a deleted meta). */
  private async ensureMeta(): Promise<void> {
    const env = this.requireOpen();
    const hasSamples = this.meta.get(META_SAMPLES) !== undefined;
    const hasQuarantine = this.meta.get(META_QUARANTINE) !== undefined;
    if (hasSamples && hasQuarantine) return;
    await env.childTransaction(() => {
      if (!hasSamples) {
        const sm = emptySamplesMeta();
        for (const key of this.samples.getKeys({})) {
          const k = key as SampleKey;
          sm.bytes += sampleEntryBytes({ tag: k[0], source: k[2] });
        }
        this.meta.putSync(META_SAMPLES, sm);
      }
      if (!hasQuarantine) {
        const qm = emptyQMeta();
        for (const { value } of this.quarantineDb.getRange({})) {
          qm.entries++;
          qm.next_id = Math.max(qm.next_id, value.id + 1);
          bump(qm.by_reason, value.reason, 1);
          bump(qm.total_by_reason, value.reason, 1);
        }
        this.meta.putSync(META_QUARANTINE, qm);
      }
    });
  }
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** `putSync` with MDB_NOOVERWRITE; lmdb-js returns false when the key exists (its typings say void). */
function putNew(db: Database<Buffer, Key>, key: Key, value: Buffer): boolean {
  return db.putSync(key, value, { noOverwrite: true }) as unknown as boolean;
}

function emptySamplesMeta(): SamplesMeta {
  return { bytes: 0, evicted_by_age: 0, evicted_by_bytes: 0 };
}

function emptyQMeta(): QuarantineMeta {
  return { next_id: 1, entries: 0, by_reason: {}, total_by_reason: {}, dropped: 0 };
}

/** Adds `d` to `m[k]`; own-property check because reasons like "constructor" are valid ids. */
function bump(m: Record<string, number>, k: string, d: number): void {
  const v = (Object.hasOwn(m, k) ? (m[k] ?? 0) : 0) + d;
  if (v === 0) delete m[k];
  else m[k] = v;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * Order in which a batch's items are applied to sequence tracking: grouped by source, ascending seq (stable), items
 * without a seq wherever they fall. Returns null for the common case (one source, accepted only, already ascending)
 * so that the hot path allocates nothing.
 */
function seqOrder(accepted: readonly Sample[], rejected: readonly Rejected[]): number[] | null {
  if (rejected.length === 0) {
    let ordered = true;
    const src = accepted[0]?.source;
    for (let i = 1; i < accepted.length; i++) {
      const a = accepted[i]!;
      if (a.source !== src || a.seq <= accepted[i - 1]!.seq) {
        ordered = false;
        break;
      }
    }
    if (ordered) return null;
  }
  const na = accepted.length;
  const items = (i: number): Sample | Rejected => (i < na ? accepted[i]! : rejected[i - na]!);
  const order = Array.from({ length: na + rejected.length }, (_, i) => i);
  order.sort((x, y) => {
    const a = items(x);
    const b = items(y);
    if (a.source !== b.source) return a.source < b.source ? -1 : 1;
    const sa = a.seq ?? Number.POSITIVE_INFINITY;
    const sb = b.seq ?? Number.POSITIVE_INFINITY;
    return sa - sb || x - y;
  });
  return order;
}

function checkLimit(limit: number, max: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > max)
    throw new ValidationError("invalid limit", [{ path: "limit", message: `must be an integer in 1..${max}` }]);
}

function checkStateKey(key: string): void {
  const p = idProblem(key);
  if (p) throw new ValidationError("invalid state key", [{ path: "key", message: p }]);
}

const MAX_ISSUES = 10;

function checkAccepted(batch: readonly Sample[]): void {
  let issues: Issue[] | undefined;
  const add = (i: number, field: string, message: string) => {
    issues ??= [];
    if (issues.length < MAX_ISSUES) issues.push({ path: `/accepted/${i}/${field}`, message });
  };
  for (let i = 0; i < batch.length; i++) {
    const s = batch[i]!;
    if (typeof s !== "object" || s === null) {
      add(i, "", "must be a Sample object");
      continue;
    }
    const tp = idProblem(s.tag);
    if (tp) add(i, "tag", tp);
    const sp = idProblem(s.source);
    if (sp) add(i, "source", sp);
    if (typeof s.ts !== "number" || !Number.isFinite(s.ts)) add(i, "ts", "must be a finite number");
    if (typeof s.value !== "number" || !Number.isFinite(s.value)) add(i, "value", "must be a finite number");
    if (!Number.isSafeInteger(s.seq) || s.seq < 0) add(i, "seq", "must be a safe integer >= 0");
    if (!isQuality(s.quality)) add(i, "quality", "must be good, uncertain or bad");
  }
  if (issues)
    throw new ValidationError(
      "appendBatch: accepted samples break the Sample contract (run them through the Validator)",
      issues,
    );
}

function checkRejected(batch: readonly Rejected[]): void {
  let issues: Issue[] | undefined;
  const add = (i: number, field: string, message: string) => {
    issues ??= [];
    if (issues.length < MAX_ISSUES) issues.push({ path: `/rejected/${i}/${field}`, message });
  };
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    if (typeof r !== "object" || r === null) {
      add(i, "", "must be a Rejected object");
      continue;
    }
    if (typeof r.reason !== "string" || !REASON_PATTERN.test(r.reason))
      add(i, "reason", "must match ^[a-z][a-z0-9_]*$");
    for (const f of ["tag", "source", "detail", "raw_value"] as const)
      if (typeof r[f] !== "string") add(i, f, "must be a string");
    if (typeof r.received_at !== "number" || !Number.isFinite(r.received_at))
      add(i, "received_at", "must be a finite number");
    if (r.ts !== null && (typeof r.ts !== "number" || !Number.isFinite(r.ts)))
      add(i, "ts", "must be a finite number or null");
    if (r.seq !== null && (!Number.isSafeInteger(r.seq) || r.seq < 0))
      add(i, "seq", "must be a safe integer >= 0 or null");
  }
  if (issues) throw new ValidationError("appendBatch: rejected samples break the Rejected contract", issues);
}
