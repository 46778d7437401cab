import { type FSWatcher, watch } from "node:fs";
import { copyFile, mkdir, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { extname, join } from "node:path";
import type { Logger } from "../../core/logger.js";
import type { FrameRejectReason } from "./reasons.js";

/*
 * The watched-directory protocol (what a camera, a frame grabber or the twin must do):
 *
 *   1. Write the image under a name the intake ignores: `<name>.tmp`, or a dotfile (`.<name>`), in the same
 *      directory (the same file system, so that step 3 is atomic). Optionally fsync it.
 *   2. Optionally write a sidecar `<base>.json` the same way first ({"item_id": 123, "ts": <ms or ISO with zone>,
 *      "camera": "mik1"}; other keys are ignored), so it is in place when the image appears.
 *   3. rename() it to its final name `<base>.jpg`, `<base>.jpeg` or `<base>.png`.
 *
 * Only completed names are taken: dotfiles, `*.tmp`, `*.json` sidecars and directories never are. A completed
 * name with any other extension is rejected (wrong_format). Each taken file is decoded, checked and stored; then
 * the file and its sidecar are removed from the directory. A rejected file and its sidecar move to the rejected
 * directory as `<received ms>-<name>` beside `<received ms>-<name>.reason.txt`. A file written in place without
 * the rename may be taken half-written: it is then rejected as truncated, never stored as a broken frame.
 *
 * Discovery: inotify (fs.watch) starts a scan on every event; a full rescan runs every `rescan_interval_ms` as
 * well, so files that arrived while glassd was down, or whose events were lost (inotify queue overflow, watcher
 * error, directory recreated), are taken too. Scans never overlap; files are taken in name order.
 */

export const IMAGE_EXTENSIONS: Readonly<Record<string, "jpeg" | "png">> = {
  ".jpg": "jpeg",
  ".jpeg": "jpeg",
  ".png": "png",
};

export interface WatchedFile {
  name: string;
  path: string;
  /** Sidecar path when `<base>.json` exists. */
  sidecar: string | undefined;
  /** Format its extension declares; undefined for an extension that is not an image's. */
  declared: "jpeg" | "png" | undefined;
}

export interface DirectoryOptions {
  dir: string;
  rejectedDir: string;
  rescanIntervalMs: number;
  rejectedMaxFiles: number;
  orphanSidecarAfterMs: number;
  log: Logger;
  /** Takes one completed file; resolves when it is stored or rejected (a throw leaves it for the next scan). */
  take(file: WatchedFile): Promise<void>;
  /** Called for a sidecar whose image never came (after it was moved to rejected/). */
  orphan(reason: FrameRejectReason): void;
}

const REASON_SUFFIX = ".reason.txt";

/** Ignored by the protocol: not yet complete. */
export function isIncompleteName(name: string): boolean {
  return name.startsWith(".") || name.endsWith(".tmp");
}

export class FrameDirectory {
  private watcher: FSWatcher | undefined;
  /** Inode the watch is on: a directory removed and made again needs a new watch. */
  private watchedIno: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  readonly counters = { scans: 0, watch_events: 0, watch_errors: 0, take_errors: 0 };

  constructor(private readonly o: DirectoryOptions) {}

  get watching(): boolean {
    return this.watcher !== undefined;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await mkdir(this.o.dir, { recursive: true });
    await mkdir(this.o.rejectedDir, { recursive: true });
    this.ensureWatch((await stat(this.o.dir)).ino);
    this.timer = setInterval(() => void this.rescanTick(), this.o.rescanIntervalMs);
    this.timer.unref();
    await this.scan();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    await this.scanning;
  }

  /** Starts a scan, or asks the running one to go round once more. */
  kick(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = this.scanLoop().finally(() => {
      this.scanning = undefined;
    });
  }

  /** One full scan now (joins a running one and waits until no scan is running). */
  async scan(): Promise<void> {
    this.kick();
    while (this.scanning) await this.scanning;
  }

  /** Moves a file (and its sidecar) to the rejected directory with a reason file; keeps that directory bounded. */
  async reject(file: WatchedFile, reason: FrameRejectReason, detail: string): Promise<void> {
    // Wall time, not line time: these names and ages are about files on this disk.
    const now = Date.now();
    const stem = `${String(now).padStart(13, "0")}-`;
    await mkdir(this.o.rejectedDir, { recursive: true });
    await moveFile(file.path, join(this.o.rejectedDir, stem + file.name));
    if (file.sidecar) await moveFile(file.sidecar, join(this.o.rejectedDir, stem + basenameOf(file.sidecar)));
    const text = `reason: ${reason}\ndetail: ${detail}\nfile: ${file.name}\nreceived_at: ${new Date(now).toISOString()}\n`;
    await writeFile(join(this.o.rejectedDir, stem + file.name + REASON_SUFFIX), text);
    await this.boundRejected();
  }

  private async rescanTick(): Promise<void> {
    const st = await stat(this.o.dir).catch(() => undefined);
    if (this.watcher && st?.ino !== this.watchedIno) {
      this.o.log.warn({ dir: this.o.dir }, "frame directory was replaced; watching the new one");
      this.watcher.close();
      this.watcher = undefined;
    }
    if (st) this.ensureWatch(st.ino);
    this.kick();
  }

  private ensureWatch(ino?: number): void {
    if (this.watcher || this.stopped) return;
    try {
      this.watchedIno = ino;
      const w = watch(this.o.dir, { persistent: false }, () => {
        this.counters.watch_events++;
        this.kick();
      });
      w.on("error", (err) => {
        // The directory went away or inotify failed: the periodic rescan re-creates the watch.
        this.counters.watch_errors++;
        this.o.log.warn({ err: err.message, dir: this.o.dir }, "frame directory watch failed; rescanning");
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch (err) {
      this.counters.watch_errors++;
      this.o.log.warn({ err: (err as Error).message, dir: this.o.dir }, "cannot watch the frame directory");
    }
  }

  private async scanLoop(): Promise<void> {
    do {
      this.again = false;
      this.counters.scans++;
      try {
        await this.scanOnce();
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message, dir: this.o.dir }, "frame directory scan failed");
      }
    } while (this.again && !this.stopped);
  }

  private async scanOnce(): Promise<void> {
    const entries = await readdir(this.o.dir, { withFileTypes: true });
    const names = new Set<string>();
    for (const e of entries) if (e.isFile()) names.add(e.name);
    const frames: string[] = [];
    const sidecars: string[] = [];
    for (const n of names) {
      if (isIncompleteName(n)) continue;
      if (extname(n).toLowerCase() === ".json") sidecars.push(n);
      else frames.push(n);
    }
    frames.sort();
    const bases = new Set<string>();
    for (const name of frames) {
      if (this.stopped) return;
      const base = name.slice(0, name.length - extname(name).length);
      bases.add(base);
      const sidecar = names.has(`${base}.json`) ? join(this.o.dir, `${base}.json`) : undefined;
      const file: WatchedFile = {
        name,
        path: join(this.o.dir, name),
        sidecar,
        declared: IMAGE_EXTENSIONS[extname(name).toLowerCase()],
      };
      try {
        await this.o.take(file);
      } catch (err) {
        this.counters.take_errors++;
        this.o.log.warn({ err: (err as Error).message, file: name }, "frame not taken; retrying at the next scan");
      }
    }
    const now = Date.now();
    for (const s of sidecars) {
      if (bases.has(s.slice(0, -5))) continue;
      const path = join(this.o.dir, s);
      const st = await stat(path).catch(() => undefined);
      if (!st || now - st.mtimeMs < this.o.orphanSidecarAfterMs) continue;
      await this.reject(
        { name: s, path, sidecar: undefined, declared: undefined },
        "orphan_sidecar",
        `no image named ${s.slice(0, -5)}.<jpg|jpeg|png> came within ${this.o.orphanSidecarAfterMs} ms`,
      ).catch(() => {});
      this.o.orphan("orphan_sidecar");
    }
  }

  private async boundRejected(): Promise<void> {
    const names = await readdir(this.o.rejectedDir).catch(() => [] as string[]);
    const reasons = names.filter((n) => n.endsWith(REASON_SUFFIX)).sort();
    const excess = reasons.length - this.o.rejectedMaxFiles;
    if (excess <= 0) return;
    for (const r of reasons.slice(0, excess)) {
      const image = r.slice(0, -REASON_SUFFIX.length);
      const stemBase = image.slice(0, image.length - extname(image).length);
      for (const n of names)
        if (n === r || n === image || n === `${stemBase}.json`)
          await unlink(join(this.o.rejectedDir, n)).catch(() => {});
    }
  }
}

function basenameOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** rename, or copy + unlink across file systems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    await copyFile(from, to);
    await unlink(from);
  }
}
