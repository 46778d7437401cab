import { readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { type Clock, realClock } from "../../core/clock.js";
import { ConfigError, type Issue, UnavailableError } from "../../core/errors.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { type Service, throwIfAborted } from "../../core/service.js";
import { type FramesConfig, framesConfigIssues } from "./config.js";
import { FrameDirectory, type WatchedFile } from "./directory.js";
import { type FrameDbHost, type FrameRecord, FrameStore } from "./frame-store.js";
import { FramePreprocessor, type FrameTensor, type Preprocessed } from "./preprocess.js";
import { DecodeLimiter, DropOldestQueue } from "./queue.js";
import { FRAME_REJECT_REASONS, FrameRejectedError, type FrameRejectReason } from "./reasons.js";

/*
 * MIK-1 frame intake: the watched directory and HTTP pushes → checks + preprocessing (bounded decode concurrency)
 * → durable storage (original, metadata, thumbnail) → a bounded drop-oldest queue → the vision model's handler.
 *
 * A frame is stored before it is queued, and queued only while a handler is registered: with no vision model the
 * frames are still kept (and can be looked at through the API). Every refusal is counted per reason.
 */

/** What the vision model gets: the preprocessed tensor and where it came from. */
export interface IntakeFrame {
  id: number;
  camera: string;
  item_id: number | null;
  ts: number;
  received_at: number;
  origin: FrameRecord["origin"];
  /** Size and encoding of the original. */
  original: Preprocessed["original"];
  tensor: FrameTensor;
}

export type FrameHandler = (frame: IntakeFrame) => void | Promise<void>;

/** Frame metadata as a client or a sidecar gives it (strings from a query or form are fine). */
export interface FrameMetaInput {
  camera?: unknown;
  item_id?: unknown;
  ts?: unknown;
}

export interface FrameIntakeOptions {
  config: FramesConfig;
  /** The daemon's data_dir: originals go under <data_dir>/frames. */
  dataDir: string;
  /** The daemon's Store (open before `start`). */
  store: FrameDbHost;
  /** Line time (received_at, retention, timestamp checks). */
  clock?: Clock;
  logger?: Logger;
  /** How often retention runs besides after each over-budget commit. Default 60 s. */
  retentionIntervalMs?: number;
}

export interface FrameIntakeStats {
  received: number;
  received_directory: number;
  received_http: number;
  accepted: number;
  rejected: Record<FrameRejectReason, number>;
  rejected_total: number;
  /** Pushes refused with 503 because every decoder was busy and the wait list full. */
  busy: number;
  /** Frames not stored for a reason that is not the frame's (disk, LMDB); a watched file stays for a retry. */
  failed: number;
  /** Watched files found already stored (a crash between commit and removal): only removed. */
  already_stored: number;
  dropped_oldest: number;
  queue_depth: number;
  queue_capacity: number;
  delivered: number;
  handler_errors: number;
  decoding: number;
  waiting: number;
  stored_frames: number;
  stored_bytes: number;
  evicted: number;
  evicted_by_age: number;
  evicted_by_bytes: number;
  orphans_removed: number;
  watching: boolean;
  scans: number;
}

const CAMERA_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MIN_TS = Date.UTC(2000, 0, 1);

/** Thrown when every decoder is busy and the wait list is full; the API answers 503 with Retry-After. */
export class FramesBusyError extends UnavailableError {
  readonly headers = { "Retry-After": "1" };
  constructor() {
    super("frame intake is busy: every decoder is in use and frames.max_waiting pushes wait; retry", "frames_busy");
  }
}

export class FrameIntake implements Service {
  readonly name = "frames";
  readonly config: FramesConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly pre: FramePreprocessor;
  private readonly store: FrameStore;
  private readonly queue: DropOldestQueue<IntakeFrame>;
  private readonly limiter: DecodeLimiter;
  private readonly directory: FrameDirectory | undefined;
  private readonly handlers = new Set<FrameHandler>();
  private readonly retentionIntervalMs: number;
  private retentionTimer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private running = false;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly rejected = Object.fromEntries(FRAME_REJECT_REASONS.map((r) => [r, 0])) as Record<
    FrameRejectReason,
    number
  >;
  private readonly c = {
    received_directory: 0,
    received_http: 0,
    accepted: 0,
    busy: 0,
    failed: 0,
    already_stored: 0,
    dropped_oldest: 0,
    delivered: 0,
    handler_errors: 0,
  };

  constructor(opts: FrameIntakeOptions) {
    const issues: Issue[] = framesConfigIssues(opts.config);
    if (issues.length) throw new ConfigError(issues);
    this.config = opts.config;
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    this.retentionIntervalMs = opts.retentionIntervalMs ?? 60_000;
    this.pre = new FramePreprocessor(opts.config);
    this.store = new FrameStore(opts.store, opts.dataDir, opts.config.retention, this.clock, this.log);
    this.queue = new DropOldestQueue(opts.config.queue_size);
    this.limiter = new DecodeLimiter(opts.config.max_concurrent_decodes, opts.config.max_waiting);
    const dc = opts.config.directory;
    if (dc.path) {
      this.directory = new FrameDirectory({
        dir: dc.path,
        rejectedDir: dc.rejected_dir ?? join(dc.path, "rejected"),
        rescanIntervalMs: dc.rescan_interval_ms,
        rejectedMaxFiles: dc.rejected_max_files,
        orphanSidecarAfterMs: dc.orphan_sidecar_after_ms,
        log: this.log,
        take: (f) => this.takeFile(f),
        orphan: (reason) => {
          this.rejected[reason]++;
        },
      });
    }
  }

  async start(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    await this.store.open();
    this.running = true;
    throwIfAborted(signal);
    await this.store.enforceRetention();
    this.retentionTimer = setInterval(() => {
      this.store.enforceRetention().catch((err: unknown) => this.log.error({ err }, "frame retention failed"));
    }, this.retentionIntervalMs);
    this.retentionTimer.unref();
    if (this.directory) await this.directory.start();
    this.log.info(
      { directory: this.config.directory.path ?? null, http: this.config.http.enabled, ...this.store.stats() },
      "frame intake started",
    );
    if (signal.aborted) {
      await this.stop();
      throwIfAborted(signal);
    }
  }

  /** Stops taking frames, lets the ones in progress finish, drops what waits for the handler. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.retentionTimer);
    await this.directory?.stop();
    await Promise.allSettled([...this.inflight]);
    this.queue.clear();
    await this.pumping;
    await this.store.close();
  }

  /**
   * Registers the consumer of preprocessed frames (the vision model). Frames stored while no handler is registered
   * are not queued. Handlers run one frame at a time, in order; a throw is counted and logged. Returns an
   * unsubscribe function.
   */
  onFrame(handler: FrameHandler): () => void {
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
    };
  }

  /**
   * Takes one pushed frame: checks, preprocesses, stores durably, then queues it. Resolves with the stored record;
   * throws FrameRejectedError (counted) for a bad frame, FramesBusyError when the decoders are saturated.
   */
  async submit(data: Uint8Array, meta: FrameMetaInput, declared?: "jpeg" | "png"): Promise<FrameRecord> {
    this.requireRunning();
    this.c.received_http++;
    const slot = this.limiter.tryAcquire();
    if (!slot) {
      this.c.busy++;
      throw new FramesBusyError();
    }
    const release = await slot;
    const job = (async () => {
      try {
        const m = this.parseMeta(meta, this.clock.now());
        return await this.ingest(data, m, declared, undefined);
      } catch (err) {
        this.countFailure(err);
        throw err;
      } finally {
        release();
      }
    })();
    return this.track(job);
  }

  /** Counts a push refused before it reached `submit` (body too large, wrong Content-Type, unreadable form). */
  countRejection(reason: FrameRejectReason): void {
    this.c.received_http++;
    this.rejected[reason]++;
  }

  get(id: number): FrameRecord | undefined {
    return this.store.get(id);
  }

  recent(limit: number, camera?: string): FrameRecord[] {
    return this.store.recent(limit, camera);
  }

  thumbnail(id: number): Buffer | undefined {
    return this.store.thumbnail(id);
  }

  originalPath(rec: FrameRecord): string {
    return this.store.absolutePath(rec);
  }

  /** One directory scan now (tests, and `glassd` tools); no-op without a watched directory. */
  async scanNow(): Promise<void> {
    await this.directory?.scan();
  }

  /** Retention now (tests); it also runs on a timer and after every commit that goes over budget. */
  enforceRetention(): Promise<void> {
    return this.store.enforceRetention();
  }

  stats(): FrameIntakeStats {
    const s = this.running ? this.store.stats() : { frames: 0, bytes: 0, evicted_by_age: 0, evicted_by_bytes: 0 };
    const c = this.c;
    let rejectedTotal = 0;
    for (const r of FRAME_REJECT_REASONS) rejectedTotal += this.rejected[r];
    return {
      received: c.received_directory + c.received_http,
      received_directory: c.received_directory,
      received_http: c.received_http,
      accepted: c.accepted,
      rejected: { ...this.rejected },
      rejected_total: rejectedTotal,
      busy: c.busy,
      failed: c.failed,
      already_stored: c.already_stored,
      dropped_oldest: c.dropped_oldest,
      queue_depth: this.queue.length,
      queue_capacity: this.queue.capacity,
      delivered: c.delivered,
      handler_errors: c.handler_errors,
      decoding: this.limiter.running,
      waiting: this.limiter.waiting,
      stored_frames: s.frames,
      stored_bytes: s.bytes,
      evicted: s.evicted_by_age + s.evicted_by_bytes,
      evicted_by_age: s.evicted_by_age,
      evicted_by_bytes: s.evicted_by_bytes,
      orphans_removed: this.store.orphansRemoved,
      watching: this.directory?.watching ?? false,
      scans: this.directory?.counters.scans ?? 0,
    };
  }

  /**
   * Checks metadata; throws FrameRejectedError(bad_metadata) naming the field. `ts` defaults to `fallbackTs`
   * (arrival time for a push, the file's mtime for the directory); `camera` to frames.camera_id.
   */
  parseMeta(m: FrameMetaInput, fallbackTs: number): { camera: string; item_id: number | null; ts: number } {
    const camera = m.camera === undefined || m.camera === "" ? this.config.camera_id : m.camera;
    if (typeof camera !== "string" || !CAMERA_RE.test(camera))
      throw new FrameRejectedError("bad_metadata", "camera must be 1-64 characters: letters, digits, _ . -", "camera");
    let item: number | null = null;
    if (m.item_id !== undefined && m.item_id !== null && m.item_id !== "") {
      item = typeof m.item_id === "string" && /^\d{1,15}$/.test(m.item_id) ? Number(m.item_id) : Number.NaN;
      if (typeof m.item_id === "number") item = m.item_id;
      if (!Number.isSafeInteger(item) || item < 0)
        throw new FrameRejectedError("bad_metadata", "item_id must be an integer ≥ 0", "item_id");
    }
    let ts = fallbackTs;
    if (m.ts !== undefined && m.ts !== null && m.ts !== "") ts = parseTs(m.ts);
    const now = this.clock.now();
    if (!Number.isFinite(ts) || ts < MIN_TS)
      throw new FrameRejectedError(
        "bad_metadata",
        "ts must be epoch milliseconds or an ISO 8601 date-time with a zone, after 2000-01-01",
        "ts",
      );
    if (ts > now + this.config.max_future_ms)
      throw new FrameRejectedError(
        "bad_metadata",
        `ts ${new Date(ts).toISOString()} is in the future (more than frames.max_future_ms = ${this.config.max_future_ms})`,
        "ts",
      );
    return { camera, item_id: item, ts: Math.round(ts) };
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────────────────────

  private requireRunning(): void {
    if (!this.running) throw new UnavailableError("frame intake is not running", "frames_stopped");
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  private countFailure(err: unknown): void {
    if (err instanceof FrameRejectedError) this.rejected[err.reason]++;
    else this.c.failed++;
  }

  /** Preprocess → thumbnail → original on disk → LMDB commit → queue. */
  private async ingest(
    data: Uint8Array,
    meta: { camera: string; item_id: number | null; ts: number },
    declared: "jpeg" | "png" | undefined,
    file: { path: string; name: string; src: string } | undefined,
  ): Promise<FrameRecord> {
    const p = await this.pre.run(data, declared);
    const thumb = await this.pre.thumbnail(data);
    const id = this.store.allocateId();
    const loc = this.store.locate(id, meta.ts, p.original.format);
    if (file) await this.store.adoptOriginal(loc.abs, file.path);
    else await this.store.writeOriginal(loc.abs, data);
    const rec: FrameRecord = {
      id,
      camera: meta.camera,
      item_id: meta.item_id,
      ts: meta.ts,
      received_at: this.clock.now(),
      origin: file ? "directory" : "http",
      name: file?.name ?? null,
      format: p.original.format,
      width: p.original.width,
      height: p.original.height,
      bytes: p.original.bytes,
      thumb_bytes: thumb.length,
      path: loc.rel,
      ...(file ? { src: file.src } : {}),
    };
    try {
      await this.store.commit(rec, thumb);
    } catch (err) {
      await unlink(loc.abs).catch(() => {});
      throw err;
    }
    this.c.accepted++;
    if (this.handlers.size > 0) this.enqueue({ ...meta, id, received_at: rec.received_at, origin: rec.origin, ...p });
    return rec;
  }

  private enqueue(f: IntakeFrame): void {
    if (this.queue.push(f)) this.c.dropped_oldest++;
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  private async pump(): Promise<void> {
    for (let f = this.queue.shift(); f; f = this.queue.shift()) {
      for (const h of this.handlers) {
        try {
          await h(f);
        } catch (err) {
          this.c.handler_errors++;
          this.log.warn({ err, frame: f.id }, "frame handler failed");
        }
      }
      this.c.delivered++;
    }
  }

  /** One completed file of the watched directory. */
  private async takeFile(f: WatchedFile): Promise<void> {
    const st = await stat(f.path).catch(() => undefined);
    if (!st?.isFile()) return; // taken meanwhile
    const src = `${st.dev}:${st.ino}:${st.size}:${Math.trunc(st.mtimeMs)}`;
    if (this.store.bySource(src) !== undefined) {
      this.c.already_stored++;
      await this.removeTaken(f);
      return;
    }
    this.c.received_directory++;
    const release = await this.limiter.acquire();
    try {
      if (!f.declared)
        throw new FrameRejectedError(
          "wrong_format",
          `the name ${f.name} does not end in .jpg, .jpeg or .png (the watched-directory protocol)`,
        );
      if (st.size === 0) throw new FrameRejectedError("empty", "the file has 0 bytes");
      if (st.size > this.config.max_bytes)
        throw new FrameRejectedError(
          "too_many_bytes",
          `${st.size} bytes exceed frames.max_bytes = ${this.config.max_bytes}`,
        );
      const meta = this.parseMeta(f.sidecar ? await readSidecar(f.sidecar) : {}, st.mtimeMs);
      const data = await readFile(f.path);
      await this.track(this.ingest(data, meta, f.declared, { path: f.path, name: f.name, src }));
      await this.removeTaken(f);
    } catch (err) {
      this.countFailure(err);
      if (!(err instanceof FrameRejectedError)) throw err; // left in place for the next scan
      this.log.info({ file: f.name, reason: err.reason, detail: err.detail }, "frame file rejected");
      await this.directory!.reject(f, err.reason, err.detail);
    } finally {
      release();
    }
  }

  private async removeTaken(f: WatchedFile): Promise<void> {
    await unlink(f.path).catch(() => {});
    if (f.sidecar) await unlink(f.sidecar).catch(() => {});
  }
}

function parseTs(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return Number.NaN;
  const s = v.trim();
  if (/^\d{1,16}(\.\d+)?$/.test(s)) return Number(s);
  // An ISO time without a zone would be read in the server's local time: ambiguous on a plant network, refused.
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(s)) return Number.NaN;
  return Date.parse(s);
}

async function readSidecar(path: string): Promise<FrameMetaInput> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new FrameRejectedError("bad_metadata", `sidecar ${path} is not JSON: ${(err as Error).message}`, "sidecar");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new FrameRejectedError("bad_metadata", `sidecar ${path} must be a JSON object`, "sidecar");
  const o = parsed as Record<string, unknown>;
  return { camera: o.camera, item_id: o.item_id, ts: o.ts };
}
