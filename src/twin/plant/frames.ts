import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type Logger, silentLogger } from "../../core/logger.js";
import type { InspectionEvent } from "../../core/types.js";
import type { Plant, PlantListener } from "./plant.js";

/*
 * MIK-1 frames: the hook where the plant hands every inspected item to whatever produces its image. The renderer
 * (src/twin/images) plugs in as a FrameSink; the plant queues items (bounded, drop-oldest, counted) and feeds the
 * sink one at a time, so a slow renderer never holds up the line.
 */

/** Receives every inspected item (its InspectionEvent: item id, time, defects with class, size and position). */
export interface FrameSink {
  readonly name: string;
  /** Produce (and deliver) the frame of one item. A rejection is logged and counted; the next item follows. */
  onItem(event: InspectionEvent): Promise<void>;
  close?(): Promise<void>;
}

/** An encoded frame as a renderer returns it. */
export interface EncodedFrame {
  data: Uint8Array;
  format: "png" | "jpg";
}

export interface PlantFramesOptions {
  /** Most items waiting for the sink; beyond it the oldest is dropped (policy "drop_oldest"). Default 64. */
  maxQueue?: number;
  logger?: Logger;
}

/** Feeds a {@link FrameSink} from the plant's inspections through a bounded queue. */
export class PlantFrames implements PlantListener {
  private readonly queue: InspectionEvent[] = [];
  private readonly maxQueue: number;
  private readonly log: Logger;
  private busy: Promise<void> | undefined;
  private removeListener: (() => void) | undefined;
  private readonly counters = { delivered: 0, dropped_oldest: 0, failed: 0 };

  constructor(
    /** Where inspections come from: the plant, or anything that registers a PlantListener the same way. */
    private readonly plant: Pick<Plant, "addListener">,
    private readonly sink: FrameSink,
    opts: PlantFramesOptions = {},
  ) {
    this.maxQueue = Math.max(1, opts.maxQueue ?? 64);
    this.log = opts.logger ?? silentLogger;
  }

  start(): void {
    this.removeListener ??= this.plant.addListener(this);
  }

  /** Stops taking items, lets the one in progress finish, drops the rest, closes the sink. */
  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    this.queue.length = 0;
    await this.busy;
    await this.sink.close?.();
  }

  stats() {
    return { ...this.counters, queued: this.queue.length };
  }

  onInspection(e: InspectionEvent): void {
    if (this.queue.length >= this.maxQueue) {
      this.queue.shift();
      this.counters.dropped_oldest++;
    }
    this.queue.push(e);
    if (!this.busy) this.busy = this.drain();
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e; e = this.queue.shift()) {
      try {
        await this.sink.onItem(e);
        this.counters.delivered++;
      } catch (err) {
        this.counters.failed++;
        this.log.warn({ err, item_id: e.item_id, sink: this.sink.name }, "frame sink failed for an item");
      }
    }
    this.busy = undefined;
  }
}

/**
 * Writes a file the way a camera should drop frames into a watched directory: `<name>.tmp`, fsync, rename to
 * `<name>` (a watcher that ignores *.tmp never sees a partial image), then fsync the directory so the rename
 * survives a power cut.
 */
export function writeFileAtomic(dir: string, name: string, data: Uint8Array): string {
  mkdirSync(dir, { recursive: true });
  const final = join(dir, name);
  const tmp = `${final}.tmp`;
  const fd = openSync(tmp, "w", 0o644);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, final);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return final;
}

/**
 * A FrameSink that renders each item with `render` and drops it into `dir` as
 * `<line>_<item id, 10 digits>.<png|jpg>` by write-then-rename, after a `<same name>.json` sidecar with the
 * inspection event (item id, time, defects: the ground truth of the image), so a watcher that picks the image up
 * finds its metadata already in place.
 */
export class DirectoryFrameSink implements FrameSink {
  readonly name = "directory";
  constructor(
    private readonly dir: string,
    private readonly lineId: string,
    private readonly render: (event: InspectionEvent) => Promise<EncodedFrame>,
    private readonly opts: { sidecar?: boolean } = {},
  ) {}

  async onItem(event: InspectionEvent): Promise<void> {
    const frame = await this.render(event);
    const base = `${this.lineId}_${String(event.item_id).padStart(10, "0")}`;
    if (this.opts.sidecar) {
      const meta = { line: this.lineId, ...event, image: `${base}.${frame.format}` };
      writeFileAtomic(this.dir, `${base}.json`, Buffer.from(`${JSON.stringify(meta)}\n`));
    }
    writeFileAtomic(this.dir, `${base}.${frame.format}`, frame.data);
  }
}
