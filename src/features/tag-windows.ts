import type { Config, TagConfig } from "../config/index.js";
import type { Sample } from "../core/types.js";

/** What TagWindows needs to know about a tag: its id and its expected sampling period. */
export type TagWindowSpec = Pick<TagConfig, "id" | "period_ms">;

/** Options of {@link TagWindows}. */
export interface TagWindowsOptions {
  /** Feature window length in seconds (config `pipeline.window_s`). Every tag keeps at least this much history. */
  windowS: number;
  /**
   * Last-value-carried-forward horizon as a multiple of the tag's `period_ms`: a value older than
   * `staleFactor × period_ms` is no longer "current" and reads as NaN. Default 3, like config
   * `validation.stale_factor`.
   */
  staleFactor?: number;
  /**
   * Hard cap on points per tag (16 bytes each). Default: 4 × the points the window plus the stale horizon need
   * at the nominal period, at least 1024. When a tag samples faster than that, the oldest points are overwritten
   * even if still inside the window and `truncated` counts it.
   */
  maxPointsPerTag?: number;
  /** Keep samples whose quality is "bad". Default false: a bad reading is not evidence about the process. */
  acceptBadQuality?: boolean;
}

/** Per-tag bookkeeping of what happened to pushed samples. Counters only grow. */
export interface TagWindowCounters {
  /** Samples stored (in order, late-inserted or replacing a same-timestamp one). */
  accepted: number;
  /** Accepted samples that were older than the tag's newest one and were inserted in time order. */
  insertedLate: number;
  /** Accepted samples whose timestamp equalled a stored one; the newer arrival replaced the value. */
  replaced: number;
  /** Samples older than the retention horizon (newest − window − stale horizon): no window can use them. */
  droppedLate: number;
  /** Samples with a non-finite value or timestamp (validation should have stopped them). */
  droppedInvalid: number;
  /** Samples with quality "bad" (unless `acceptBadQuality`). */
  droppedBad: number;
  /**
   * Points lost at the capacity cap while still inside the retention horizon: the oldest point overwritten, or a
   * late sample older than everything kept.
   */
  truncated: number;
}

/** The newest stored point of a tag. */
export interface TagPoint {
  ts: number;
  value: number;
}

const MIN_CAPACITY = 8;

/*
 * One tag's history: a ring of (ts, value) in two Float64Arrays, sorted by ts (oldest at `head`). Kept sorted on
 * insert so every read is a binary search plus a linear walk, with no sorting on the hot path.
 */
class Ring {
  ts: Float64Array;
  val: Float64Array;
  head = 0;
  size = 0;
  readonly counters: TagWindowCounters = {
    accepted: 0,
    insertedLate: 0,
    replaced: 0,
    droppedLate: 0,
    droppedInvalid: 0,
    droppedBad: 0,
    truncated: 0,
  };

  constructor(
    capacity: number,
    readonly maxCapacity: number,
    readonly retentionMs: number,
    readonly maxAgeMs: number,
  ) {
    this.ts = new Float64Array(capacity);
    this.val = new Float64Array(capacity);
  }

  get capacity(): number {
    return this.ts.length;
  }

  /** Physical slot of logical index i (0 = oldest). */
  slot(i: number): number {
    const j = this.head + i;
    const cap = this.ts.length;
    return j >= cap ? j - cap : j;
  }

  tsAt(i: number): number {
    return this.ts[this.slot(i)]!;
  }

  valAt(i: number): number {
    return this.val[this.slot(i)]!;
  }

  /** Logical index of the first point with ts > t (size when none). */
  upperBound(t: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.tsAt(mid) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(t: number, v: number): void {
    const c = this.counters;
    if (this.size === 0) {
      this.ts[this.head] = t;
      this.val[this.head] = v;
      this.size = 1;
      c.accepted++;
      return;
    }
    const newest = this.tsAt(this.size - 1);
    if (t < newest - this.retentionMs) {
      c.droppedLate++;
      return;
    }
    // Common case first: strictly newer than everything stored.
    let pos = t > newest ? this.size : this.upperBound(t);
    if (pos > 0 && this.tsAt(pos - 1) === t) {
      this.val[this.slot(pos - 1)] = v;
      c.replaced++;
      c.accepted++;
      return;
    }
    if (this.size === this.capacity) {
      const before = this.size;
      if (!this.makeRoom(Math.max(t, newest))) {
        // Full at the cap (already counted as truncated): a late sample older than everything kept is the one
        // that goes; otherwise the oldest point does.
        if (pos === 0) return;
        this.head = this.slot(1);
        this.size--;
      }
      // Evicting the oldest shifts every logical index down by one (never below 0: a late sample older than the
      // evicted point is still older than the rest).
      pos = Math.max(0, pos - (before - this.size));
    }
    // Shift the (usually few) newer points one slot right to open position pos.
    for (let i = this.size; i > pos; i--) {
      const to = this.slot(i);
      const from = this.slot(i - 1);
      this.ts[to] = this.ts[from]!;
      this.val[to] = this.val[from]!;
    }
    const s = this.slot(pos);
    this.ts[s] = t;
    this.val[s] = v;
    this.size++;
    c.accepted++;
    if (pos < this.size - 1) c.insertedLate++;
  }

  /**
   * Called when full. Returns true when a slot was freed without losing needed history (oldest point no longer
   * needed, or the ring grew); false when the caller must overwrite the oldest point although it is still needed.
   */
  private makeRoom(newestTs: number): boolean {
    // The oldest point may go if the second oldest still reaches back to the retention horizon (it then carries
    // the value forward to the start of any window we serve).
    if (this.size >= 2 && this.tsAt(1) <= newestTs - this.retentionMs) {
      this.head = this.slot(1);
      this.size--;
      return true;
    }
    if (this.capacity < this.maxCapacity) {
      this.grow(Math.min(this.maxCapacity, this.capacity * 2));
      return true;
    }
    this.counters.truncated++;
    return false;
  }

  private grow(capacity: number): void {
    const ts = new Float64Array(capacity);
    const val = new Float64Array(capacity);
    for (let i = 0; i < this.size; i++) {
      const s = this.slot(i);
      ts[i] = this.ts[s]!;
      val[i] = this.val[s]!;
    }
    this.ts = ts;
    this.val = val;
    this.head = 0;
  }
}

/**
 * Per-tag bounded ring buffers of (ts, value) fed with validated samples, and time-aligned views of them.
 *
 * Ordering policy: a sample older than its tag's newest is **inserted in time order** (counted as
 * `insertedLate`) as long as it is within the retention horizon (window + stale horizon behind the newest);
 * older ones are dropped and counted (`droppedLate`). A sample with the same timestamp as a stored one replaces
 * its value (`replaced`). Non-finite samples and, by default, quality "bad" ones are dropped and counted.
 *
 * Memory: each ring starts at the size the window needs at the tag's nominal period and doubles, when a burst
 * would otherwise evict points still inside the retention horizon, up to `maxPointsPerTag`. Points older than
 * the horizon are overwritten in place, so memory never exceeds `tags × maxPointsPerTag × 16` bytes.
 */
export class TagWindows {
  /** Tag ids in construction order. */
  readonly tags: readonly string[];
  /** Window length in ms. */
  readonly windowMs: number;
  private readonly rings: Ring[];
  private readonly byId = new Map<string, Ring>();
  private readonly acceptBad: boolean;
  private unknown = 0;

  constructor(tags: readonly TagWindowSpec[], opts: TagWindowsOptions) {
    if (!(opts.windowS > 0)) throw new RangeError(`TagWindows: windowS must be > 0, got ${opts.windowS}`);
    this.windowMs = opts.windowS * 1000;
    const staleFactor = opts.staleFactor ?? 3;
    if (!(staleFactor > 0)) throw new RangeError(`TagWindows: staleFactor must be > 0, got ${staleFactor}`);
    this.acceptBad = opts.acceptBadQuality ?? false;
    this.rings = tags.map((t) => {
      if (!(t.period_ms > 0)) throw new RangeError(`TagWindows: tag "${t.id}" needs period_ms > 0`);
      if (this.byId.has(t.id)) throw new RangeError(`TagWindows: duplicate tag "${t.id}"`);
      const maxAgeMs = staleFactor * t.period_ms;
      const retentionMs = this.windowMs + maxAgeMs;
      const nominal = Math.ceil(retentionMs / t.period_ms) + 2;
      const maxCapacity = Math.max(MIN_CAPACITY, Math.floor(opts.maxPointsPerTag ?? Math.max(1024, 4 * nominal)));
      const ring = new Ring(Math.min(maxCapacity, Math.max(MIN_CAPACITY, nominal)), maxCapacity, retentionMs, maxAgeMs);
      this.byId.set(t.id, ring);
      return ring;
    });
    this.tags = Object.freeze(tags.map((t) => t.id));
  }

  /** Builds the windows for every tag of a validated config, with `pipeline.window_s` and `validation.stale_factor`. */
  static fromConfig(config: Config, opts: Partial<TagWindowsOptions> = {}): TagWindows {
    return new TagWindows(config.tags, {
      windowS: config.pipeline.window_s,
      staleFactor: config.validation.stale_factor,
      ...opts,
    });
  }

  /**
   * How far back from its newest sample a tag keeps points (window + stale horizon): older samples are useless to
   * every reader and are dropped. Undefined for an unknown tag.
   */
  retentionMs(tag: string): number | undefined {
    return this.byId.get(tag)?.retentionMs;
  }

  /** Stores one sample. Returns false when it was dropped (see the counters for why). */
  push(sample: Sample): boolean {
    const ring = this.byId.get(sample.tag);
    if (ring === undefined) {
      this.unknown++;
      return false;
    }
    const c = ring.counters;
    if (!Number.isFinite(sample.value) || !Number.isFinite(sample.ts)) {
      c.droppedInvalid++;
      return false;
    }
    if (sample.quality === "bad" && !this.acceptBad) {
      c.droppedBad++;
      return false;
    }
    const before = c.accepted;
    ring.insert(sample.ts, sample.value);
    return c.accepted !== before;
  }

  /** Stores many samples; returns how many were accepted. */
  pushMany(samples: Iterable<Sample>): number {
    let n = 0;
    for (const s of samples) if (this.push(s)) n++;
    return n;
  }

  /** The newest stored point of a tag, or undefined when the tag is unknown or empty. */
  latest(tag: string): TagPoint | undefined {
    const r = this.byId.get(tag);
    if (r === undefined || r.size === 0) return undefined;
    return { ts: r.tsAt(r.size - 1), value: r.valAt(r.size - 1) };
  }

  /**
   * Last value carried forward: the value of the newest point with ts ≤ `ts`, or NaN when there is none or it is
   * older than `maxAgeMs` (default: the tag's stale horizon, `staleFactor × period_ms`).
   */
  valueAt(tag: string, ts: number, maxAgeMs?: number): number {
    const r = this.byId.get(tag);
    if (r === undefined) return Number.NaN;
    const i = r.upperBound(ts) - 1;
    if (i < 0) return Number.NaN;
    return ts - r.tsAt(i) <= (maxAgeMs ?? r.maxAgeMs) ? r.valAt(i) : Number.NaN;
  }

  /** Timestamp of the newest point with ts ≤ `ts`, or NaN when there is none. */
  lastTsAtOrBefore(tag: string, ts: number): number {
    const r = this.byId.get(tag);
    if (r === undefined) return Number.NaN;
    const i = r.upperBound(ts) - 1;
    return i < 0 ? Number.NaN : r.tsAt(i);
  }

  /**
   * Copies the raw points with `fromTs < ts ≤ toTs` into `outTs`/`outValues` in time order and returns how many.
   * When the outputs are shorter than the match, the newest points that fit are copied. Never allocates.
   */
  copyWindow(tag: string, fromTs: number, toTs: number, outTs: Float64Array, outValues: Float64Array): number {
    const r = this.byId.get(tag);
    if (r === undefined || r.size === 0) return 0;
    const end = r.upperBound(toTs);
    let start = r.upperBound(fromTs);
    const room = Math.min(outTs.length, outValues.length);
    if (end - start > room) start = end - room;
    let n = 0;
    for (let i = start; i < end; i++, n++) {
      const s = r.slot(i);
      outTs[n] = r.ts[s]!;
      outValues[n] = r.val[s]!;
    }
    return n;
  }

  /**
   * The tag resampled onto the shared grid `gridTimes(endTs, windowMs, stepMs)`: at each grid time the last value
   * at or before it (LOCF), or NaN when that value is older than `maxAgeMs` (default: the tag's stale horizon) or
   * there is none. An unknown tag gives all NaN. Pass `out` (length ≥ grid size) to avoid allocating.
   */
  aligned(
    tag: string,
    endTs: number,
    windowMs: number,
    stepMs: number,
    opts: { maxAgeMs?: number; out?: Float64Array } = {},
  ): Float64Array {
    const n = gridSize(windowMs, stepMs);
    const out = opts.out ?? new Float64Array(n);
    const r = this.byId.get(tag);
    if (r === undefined) {
      out.fill(Number.NaN, 0, n);
      return out;
    }
    fillAligned(r, endTs, n, stepMs, opts.maxAgeMs ?? r.maxAgeMs, out, 0);
    return out;
  }

  /**
   * Every tag on the same grid: `values` is row-major, `tags.length × ts.length`, row i being `aligned(tags[i])`.
   */
  alignedMatrix(
    endTs: number,
    windowMs: number,
    stepMs: number,
  ): { tags: readonly string[]; ts: Float64Array; values: Float64Array } {
    const ts = gridTimes(endTs, windowMs, stepMs);
    const n = ts.length;
    const values = new Float64Array(n * this.rings.length);
    this.rings.forEach((r, i) => {
      fillAligned(r, endTs, n, stepMs, r.maxAgeMs, values, i * n);
    });
    return { tags: this.tags, ts, values };
  }

  /** Points currently stored for a tag (0 when unknown). */
  size(tag: string): number {
    return this.byId.get(tag)?.size ?? 0;
  }

  /** Current ring capacity of a tag in points (0 when unknown). */
  capacity(tag: string): number {
    return this.byId.get(tag)?.capacity ?? 0;
  }

  /** The largest capacity any tag's ring may ever reach; scratch buffers of this size fit every window. */
  maxCapacity(): number {
    let m = 0;
    for (const r of this.rings) if (r.maxCapacity > m) m = r.maxCapacity;
    return m;
  }

  /** The stale horizon of a tag in ms (NaN when unknown). */
  maxAgeMs(tag: string): number {
    return this.byId.get(tag)?.maxAgeMs ?? Number.NaN;
  }

  /** A copy of a tag's counters, or undefined when the tag is unknown. */
  counters(tag: string): TagWindowCounters | undefined {
    const r = this.byId.get(tag);
    return r === undefined ? undefined : { ...r.counters };
  }

  /** Samples dropped because their tag is not in the dictionary. */
  droppedUnknown(): number {
    return this.unknown;
  }
}

/** Number of points of the grid spanning `windowMs` at `stepMs` (at least 1; 0 when the arguments are invalid). */
export function gridSize(windowMs: number, stepMs: number): number {
  if (!(stepMs > 0) || !(windowMs >= 0) || !Number.isFinite(windowMs)) return 0;
  return Math.max(1, Math.floor(windowMs / stepMs));
}

/**
 * The shared grid of aligned windows: `gridSize(windowMs, stepMs)` timestamps ending exactly at `endTs`, spaced by
 * `stepMs` (t_k = endTs − (n−1−k)·stepMs). Every tag aligned with the same arguments shares these timestamps.
 */
export function gridTimes(endTs: number, windowMs: number, stepMs: number, out?: Float64Array): Float64Array {
  const n = gridSize(windowMs, stepMs);
  const ts = out ?? new Float64Array(n);
  for (let k = 0; k < n; k++) ts[k] = endTs - (n - 1 - k) * stepMs;
  return ts;
}

function fillAligned(
  r: Ring,
  endTs: number,
  n: number,
  stepMs: number,
  maxAgeMs: number,
  out: Float64Array,
  offset: number,
): void {
  const t0 = endTs - (n - 1) * stepMs;
  // j walks forward with the grid: the last point at or before the current grid time.
  let j = r.upperBound(t0) - 1;
  for (let k = 0; k < n; k++) {
    const t = t0 + k * stepMs;
    while (j + 1 < r.size && r.tsAt(j + 1) <= t) j++;
    out[offset + k] = j >= 0 && t - r.tsAt(j) <= maxAgeMs ? r.valAt(j) : Number.NaN;
  }
}
