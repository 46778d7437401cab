import { copyFile, link, open, readdir, rmdir, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Database, Key } from "lmdb";
import type { Clock } from "../../core/clock.js";
// Crash-safe temp + fsync + rename writer, shared with the credential files (it belongs in core/ one day).
import { ensureDir, writeFileAtomic } from "../../core/files.js";
import type { Logger } from "../../core/logger.js";
import type { FramesConfig } from "./config.js";
import type { FrameFormat } from "./preprocess.js";

/*
 * Stored frames: originals on disk under <data_dir>/frames/YYYY-MM-DD/<id>.<jpg|png> (UTC date of the capture
 * time), metadata and a small JPEG thumbnail in LMDB sub-databases of the daemon's Store:
 *
 *   x:frames         id → FrameRecord (msgpack)
 *   x:frames_thumbs  id → JPEG bytes
 *   x:frames_src     "<dev>:<ino>:<size>:<mtime>" of a directory file → id   (a file already taken after a crash)
 *   x:frames_meta    "totals" → FramesTotals                                 (exact, updated in the same txn)
 *
 * Order of writes, so that a crash at any point loses no acknowledged frame and leaks no disk space for long:
 * original on disk (fsync'd) → LMDB commit (fsync'd) → only then the frame counts as stored (HTTP 201, the
 * watched file removed). An original whose commit never happened is an orphan and is deleted at the next open;
 * a watched file stored but not yet removed is recognised by its `frames_src` key and only removed.
 * Eviction (age, then byte budget, oldest first) commits the deletions first and unlinks the files after.
 */

export interface FrameRecord {
  id: number;
  camera: string;
  item_id: number | null;
  /** Capture time, ms since the Unix epoch. */
  ts: number;
  /** When glassd stored it (line time). */
  received_at: number;
  origin: "directory" | "http";
  /** File name in the watched directory, or null for a push. */
  name: string | null;
  format: FrameFormat;
  width: number;
  height: number;
  bytes: number;
  thumb_bytes: number;
  /** Relative to <data_dir>/frames. */
  path: string;
  /** Identity of the watched file it came from. */
  src?: string;
}

interface FramesTotals {
  next_id: number;
  frames: number;
  bytes: number;
  evicted_by_age: number;
  evicted_by_bytes: number;
}

/** The part of the daemon's Store frames need; `Store` satisfies it. */
export interface FrameDbHost {
  openDatabase<V = unknown, K extends Key = Key>(
    name: string,
    opts?: { encoding?: "json" | "msgpack" | "binary" },
  ): Database<V, K>;
  transaction<T>(fn: () => T): Promise<T>;
}

const TOTALS = "totals";
const EVICT_CHUNK = 256;
const EXT: Record<FrameFormat, string> = { jpeg: "jpg", png: "png" };
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const FILE_RE = /^(\d+)\.(jpg|png)$/;

const emptyTotals = (): FramesTotals => ({ next_id: 1, frames: 0, bytes: 0, evicted_by_age: 0, evicted_by_bytes: 0 });

export class FrameStore {
  readonly root: string;
  private frames!: Database<FrameRecord, number>;
  private thumbs!: Database<Buffer, number>;
  private srcIndex!: Database<number, string>;
  private meta!: Database<FramesTotals, string>;
  private nextId = 1;
  private opened = false;
  private evicting: Promise<void> | undefined;
  orphansRemoved = 0;

  constructor(
    private readonly host: FrameDbHost,
    dataDir: string,
    private readonly retention: FramesConfig["retention"],
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.root = join(dataDir, "frames");
  }

  async open(): Promise<void> {
    if (this.opened) return;
    this.frames = this.host.openDatabase<FrameRecord, number>("frames");
    this.thumbs = this.host.openDatabase<Buffer, number>("frames_thumbs", { encoding: "binary" });
    this.srcIndex = this.host.openDatabase<number, string>("frames_src");
    this.meta = this.host.openDatabase<FramesTotals, string>("frames_meta");
    this.nextId = this.totals().next_id;
    this.opened = true;
    await ensureDir(this.root);
    await this.reconcile();
  }

  close(): Promise<void> {
    this.opened = false;
    return this.evicting ?? Promise.resolve();
  }

  /** A fresh id; ids only grow (an id whose commit failed is never reused). */
  allocateId(): number {
    return this.nextId++;
  }

  /** Where frame `id` captured at `ts` lives: relative and absolute path. */
  locate(id: number, ts: number, format: FrameFormat): { rel: string; abs: string } {
    const day = new Date(ts).toISOString().slice(0, 10);
    const rel = `${day}/${id}.${EXT[format]}`;
    return { rel, abs: join(this.root, rel) };
  }

  /** Writes a pushed original (temp + fsync + rename + directory fsync). */
  writeOriginal(abs: string, data: Uint8Array): Promise<void> {
    return writeFileAtomic(abs, Buffer.from(data.buffer, data.byteOffset, data.length));
  }

  /** Takes a watched file as the original: a hard link (no copy), or a synced copy across file systems. */
  async adoptOriginal(abs: string, from: string): Promise<void> {
    const dir = dirname(abs);
    await ensureDir(dir);
    try {
      await link(from, abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") await unlink(abs);
      else if (code !== "EXDEV" && code !== "EPERM") throw err;
      await copyFile(from, abs);
      const fh = await open(abs, "r");
      await fh.sync().finally(() => fh.close());
    }
    const dh = await open(dir, "r");
    await dh.sync().finally(() => dh.close());
  }

  /** Commits metadata + thumbnail; resolves when durable. */
  async commit(rec: FrameRecord, thumb: Buffer): Promise<void> {
    const over = await this.host.transaction(() => {
      const t = this.totals();
      this.frames.putSync(rec.id, rec);
      this.thumbs.putSync(rec.id, thumb);
      if (rec.src) this.srcIndex.putSync(rec.src, rec.id);
      t.next_id = Math.max(t.next_id, rec.id + 1);
      t.frames++;
      t.bytes += rec.bytes + rec.thumb_bytes;
      this.meta.putSync(TOTALS, t);
      return t.bytes > this.retention.max_bytes;
    });
    if (over) this.kickRetention();
  }

  get(id: number): FrameRecord | undefined {
    return this.frames.get(id);
  }

  thumbnail(id: number): Buffer | undefined {
    return this.thumbs.getBinary(id) ?? undefined;
  }

  /** The frame a watched file with this identity already became, if any. */
  bySource(src: string): number | undefined {
    return this.srcIndex.get(src);
  }

  /** Newest first; at most `limit`, optionally of one camera (looks at most 20 × limit records back). */
  recent(limit: number, camera?: string): FrameRecord[] {
    const out: FrameRecord[] = [];
    let seen = 0;
    for (const { value } of this.frames.getRange({ reverse: true })) {
      if (++seen > limit * 20 && camera !== undefined) break;
      if (camera !== undefined && value.camera !== camera) continue;
      out.push(value);
      if (out.length >= limit) break;
    }
    return out;
  }

  absolutePath(rec: FrameRecord): string {
    return join(this.root, rec.path);
  }

  stats(): { frames: number; bytes: number; evicted_by_age: number; evicted_by_bytes: number } {
    const t = this.totals();
    return { frames: t.frames, bytes: t.bytes, evicted_by_age: t.evicted_by_age, evicted_by_bytes: t.evicted_by_bytes };
  }

  /** Runs retention now (or joins the run in progress). */
  enforceRetention(): Promise<void> {
    this.evicting ??= this.evict().finally(() => {
      this.evicting = undefined;
    });
    return this.evicting;
  }

  private kickRetention(): void {
    this.enforceRetention().catch((err: unknown) => this.log.error({ err }, "frame retention failed"));
  }

  private totals(): FramesTotals {
    return this.meta.get(TOTALS) ?? emptyTotals();
  }

  private async evict(): Promise<void> {
    const maxAgeMs = this.retention.max_age_hours * 3_600_000;
    for (;;) {
      if (!this.opened) return;
      const cutoff = this.clock.now() - maxAgeMs;
      const victims = await this.host.transaction(() => {
        const t = this.totals();
        const out: FrameRecord[] = [];
        for (const { value } of this.frames.getRange({ limit: EVICT_CHUNK })) {
          const byAge = value.received_at < cutoff;
          if (!byAge && t.bytes <= this.retention.max_bytes) break;
          this.frames.removeSync(value.id);
          this.thumbs.removeSync(value.id);
          if (value.src) this.srcIndex.removeSync(value.src);
          t.frames--;
          t.bytes -= value.bytes + value.thumb_bytes;
          if (byAge) t.evicted_by_age++;
          else t.evicted_by_bytes++;
          out.push(value);
        }
        if (out.length) this.meta.putSync(TOTALS, t);
        return out;
      });
      for (const v of victims) await unlink(this.absolutePath(v)).catch(() => {});
      if (victims.length) await this.removeEmptyDays();
      if (victims.length < EVICT_CHUNK) return;
    }
  }

  /** Deletes originals that never got their commit, and temp files, left by a crash. */
  private async reconcile(): Promise<void> {
    for (const day of await readdir(this.root).catch(() => [] as string[])) {
      if (!DAY_RE.test(day)) continue;
      const dir = join(this.root, day);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const m = FILE_RE.exec(name);
        const rec = m ? this.frames.get(Number(m[1])) : undefined;
        if (rec && rec.path === `${day}/${name}`) continue;
        await unlink(join(dir, name)).catch(() => {});
        this.orphansRemoved++;
      }
    }
    if (this.orphansRemoved) this.log.warn({ files: this.orphansRemoved }, "removed frame files left without metadata");
    await this.removeEmptyDays();
  }

  private async removeEmptyDays(): Promise<void> {
    // Days before yesterday only: a frame captured just before midnight may still be on its way into its day.
    const before = new Date(this.clock.now() - 86_400_000).toISOString().slice(0, 10);
    for (const day of await readdir(this.root).catch(() => [] as string[])) {
      if (!DAY_RE.test(day) || day >= before) continue;
      await rmdir(join(this.root, day)).catch(() => {}); // fails while not empty: that is the check
    }
  }
}
