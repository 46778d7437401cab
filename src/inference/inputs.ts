import type { TagConfig } from "../config/index.js";
import {
  GRAPH_NODE_FEATURES,
  type GraphEdges,
  GraphFeatureExtractor,
  type GraphWindowSource,
} from "../features/graph.js";
import type { Feeds } from "./host.js";
import type { ModelRef } from "./manifest.js";

/*
 * Input builders: reproduce the factory's preprocessing from the manifest entry (feature_order, normalisation,
 * extra) and nothing else. A builder that cannot reproduce it (a feature the daemon does not compute, a node
 * order that differs from the tag dictionary, a normalisation kind it does not know) throws an InputSpecError at
 * construction: the model is then reported unavailable with that reason, never fed a guess.
 */

export class InputSpecError extends Error {
  constructor(model: string, message: string) {
    super(`${model}: ${message}`);
    this.name = "InputSpecError";
  }
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Per-feature normalisation from the manifest, or identity when the graph does it (`in_graph: true`). */
export interface Normaliser {
  readonly inGraph: boolean;
  apply(row: Float32Array, out: Float32Array, offset: number): void;
}

export function normaliserFor(ref: Pick<ModelRef, "name" | "normalisation">, width: number): Normaliser {
  const n = ref.normalisation;
  if (n === null || n.in_graph === true || n.kind === "none") {
    return { inGraph: true, apply: (row, out, o) => out.set(row, o) };
  }
  const kind = String(n.kind);
  const centre = (n.center ?? n.mean) as unknown;
  const scale = (n.scale ?? n.std) as unknown;
  if (!["robust", "standard", "zscore"].includes(kind))
    throw new InputSpecError(ref.name, `normalisation kind "${kind}" is not one the daemon reproduces`);
  if (!Array.isArray(centre) || !Array.isArray(scale) || centre.length !== width || scale.length !== width)
    throw new InputSpecError(ref.name, `normalisation needs center/mean and scale/std of ${width} values each`);
  const c = Float64Array.from(centre as number[], (v) => num(v) ?? 0);
  const s = Float64Array.from(scale as number[], (v) => (num(v) && v !== 0 ? v : 1));
  const clip = num(n.clip) ?? Number.POSITIVE_INFINITY;
  return {
    inGraph: false,
    apply(row, out, o) {
      for (let i = 0; i < width; i++) {
        const z = (row[i]! - c[i]!) / s[i]!;
        out[o + i] = Number.isNaN(z) ? 0 : Math.max(-clip, Math.min(clip, z));
      }
    },
  };
}

/**
 * The forecaster's input: the last T feature rows, oldest first, one every `stride_s` (the dataset's rows are
 * evenly spaced by stride_s; the daemon computes a row every tick and keeps the first one at or after each due
 * time, on a grid). A gap of more than two strides (daemon stopped, no ticks) restarts the window: a window with a
 * hole would not be the input the model was trained on.
 */
export class FeatureRing {
  readonly T: number;
  readonly F: number;
  readonly strideMs: number;
  private readonly perm: Int32Array;
  private readonly ring: Float32Array;
  private readonly norm: Normaliser;
  private readonly row: Float32Array;
  private head = 0;
  private rows = 0;
  private lastRowTs: number | undefined;
  private restarts = 0;

  constructor(
    ref: Pick<ModelRef, "name" | "feature_order" | "normalisation" | "extra" | "inputs">,
    daemonNames: readonly string[],
  ) {
    const order = ref.feature_order;
    if (!order) throw new InputSpecError(ref.name, "the manifest has no feature_order");
    const input = ref.inputs[0]!;
    const T = num(ref.extra.window_rows) ?? input.shape[1];
    if (!T || T < 1) throw new InputSpecError(ref.name, "window length unknown (extra.window_rows or input dim 1)");
    if (
      input.shape.length !== 3 ||
      (input.shape[1] !== -1 && input.shape[1] !== T) ||
      (input.shape[2] !== -1 && input.shape[2] !== order.length)
    )
      throw new InputSpecError(
        ref.name,
        `input ${input.name} shape [${input.shape}] does not fit [B, ${T}, ${order.length}]`,
      );
    const stride = num(ref.extra.stride_s);
    if (!stride || stride <= 0) throw new InputSpecError(ref.name, "extra.stride_s is missing");
    const pos = new Map(daemonNames.map((n, i) => [n, i]));
    const missing = order.filter((n) => !pos.has(n));
    if (missing.length)
      throw new InputSpecError(
        ref.name,
        `${missing.length} feature(s) the model needs are not computed by the daemon: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", …" : ""}`,
      );
    this.T = T;
    this.F = order.length;
    this.strideMs = stride * 1000;
    this.perm = Int32Array.from(order, (n) => pos.get(n)!);
    this.ring = new Float32Array(T * this.F);
    this.row = new Float32Array(this.F);
    this.norm = normaliserFor(ref, this.F);
  }

  /** Offers this tick's feature vector (daemon order); keeps it when a row is due. Returns true when kept. */
  offer(ts: number, values: ArrayLike<number>): boolean {
    if (this.lastRowTs !== undefined) {
      const due = this.lastRowTs + this.strideMs;
      if (ts < due) return false;
      if (ts - due > this.strideMs) {
        this.rows = 0;
        this.restarts++;
        this.lastRowTs = ts;
      } else this.lastRowTs = due;
    } else this.lastRowTs = ts;
    for (let i = 0; i < this.F; i++) this.row[i] = values[this.perm[i]!]!;
    this.norm.apply(this.row, this.ring, this.head * this.F);
    this.head = (this.head + 1) % this.T;
    if (this.rows < this.T) this.rows++;
    return true;
  }

  get ready(): boolean {
    return this.rows >= this.T;
  }

  status(): { rows: number; needed: number; stride_s: number; restarts: number } {
    return { rows: this.rows, needed: this.T, stride_s: this.strideMs / 1000, restarts: this.restarts };
  }

  /** The window as one batch-1 input, oldest row first (a fresh array: it may be transferred). */
  feeds(inputName: string): Feeds {
    const out = new Float32Array(this.T * this.F);
    // the oldest row is at `head` once the ring is full
    const tail = this.ring.subarray(this.head * this.F);
    out.set(tail, 0);
    out.set(this.ring.subarray(0, this.head * this.F), tail.length);
    return { [inputName]: { data: out, dims: [1, this.T, this.F] } };
  }
}

/** Spacing of the factory's graph snapshots when the manifest does not say (`extra.stride_s`): src/twin/dataset's. */
export const DEFAULT_GRAPH_STRIDE_S = 60;

/**
 * The sensor graph's snapshot of the windows for a tick. The factory's snapshots (src/twin/dataset) are taken every
 * `stride` (60 s) on the twin's sampling grid, after every sample up to them is in the windows. So each tag whose
 * period divides the stride (a "grid tag": 1, 2, 10 and 60 s on the default line) has a sample exactly at the
 * snapshot: its `age_frac` and `missing_frac` are 0 on a healthy line, with a std of ≈ 0 in training, and any other
 * value reads as a sensor fault to the model. Slower tags are seen at every phase. A tick's own time is neither: it
 * falls between the samples of a 10 s or 60 s tag (age up to 1/60 or 1/10 of the window), and with a fast twin the
 * newest samples are still on their way to the windows (a 1 s tag looks a few samples old and short).
 *
 * The snapshot therefore:
 * - is taken at the newest time `ts` (not after the tick) up to which every grid tag has delivered all its due
 *   samples, samples still in flight left out; a tag whose next sample is overdue by more than the fastest grid
 *   period at the data front (the median newest sample) is late: it does not hold the snapshot back, it shows
 *   as late (age, missing) as a dropout did in the dataset;
 * - shows each grid tag as of its newest sample instant due at or before `ts` (its own sampling grid, the phase
 *   taken from its newest sample), shifted to `ts`: on time, its newest sample is there and its window is the one
 *   the dataset had at a snapshot; in dropout, the due instant moves on without it and age/missing grow as in the
 *   dataset;
 * - shows slower tags as of `ts` itself (any phase, as in the dataset).
 * A shift is below one period of the tag, and `ts` trails a tag's newest sample by at most about two of the
 * fastest periods: inside what the windows keep (window + 3 periods).
 */
export class GraphSnapshot implements GraphWindowSource {
  private readonly ids: string[];
  /** Indices into `ids` of the grid tags. */
  private readonly grid: Int32Array;
  private readonly period: Float64Array;
  private readonly index: Map<string, number>;
  /** Per tag: how far (ms) its view is shifted forward to `ts`; 0 for slower tags. */
  private readonly shift: Float64Array;
  private readonly newest: Float64Array;
  private readonly sorted: Float64Array;
  /** A grid tag whose next sample is overdue by more than this at the data front is late (dropout, lagging). */
  private readonly lateMs: number;
  private inner: GraphWindowSource | undefined;

  constructor(
    tags: readonly Pick<TagConfig, "id" | "period_ms">[],
    readonly strideMs: number,
  ) {
    if (!(strideMs > 0)) throw new RangeError(`GraphSnapshot: stride must be > 0 ms, got ${strideMs}`);
    this.ids = tags.map((t) => t.id);
    this.index = new Map(this.ids.map((id, i) => [id, i]));
    this.period = Float64Array.from(tags, (t) => t.period_ms);
    this.grid = Int32Array.from(tags.flatMap((t, i) => (t.period_ms > 0 && strideMs % t.period_ms === 0 ? [i] : [])));
    this.shift = new Float64Array(tags.length);
    this.newest = new Float64Array(tags.length);
    this.sorted = new Float64Array(this.grid.length);
    this.lateMs = this.grid.length ? Math.min(...Array.from(this.grid, (i) => this.period[i]!)) : 0;
  }

  /**
   * Takes the snapshot of `windows` for a tick at `now`: returns its time; until the next call this object is the
   * view of the windows to compute the node features on, at that time.
   */
  take(windows: GraphWindowSource, now: number): number {
    this.inner = windows;
    this.shift.fill(0);
    const ids = this.ids;
    const newest = this.newest;
    let k = 0;
    for (const i of this.grid) {
      const t = windows.lastTsAtOrBefore(ids[i]!, now);
      newest[i] = t;
      if (Number.isFinite(t)) this.sorted[k++] = t;
    }
    if (k === 0) return now;
    // The data front: the median newest sample of the grid tags (one tag racing ahead does not move it).
    const front = this.sorted.subarray(0, k).sort()[Math.floor(k / 2)]!;
    // Every grid tag whose next sample is not overdue by more than `lateMs` at the front has delivered all its
    // samples up to just before that next one; the snapshot is the newest time all of them cover.
    let ts = now;
    for (const i of this.grid) {
      const next = newest[i]! + this.period[i]!;
      if (next >= front - this.lateMs && next - 1 < ts) ts = next - 1;
    }
    for (const i of this.grid) {
      const t = windows.lastTsAtOrBefore(ids[i]!, ts);
      if (!Number.isFinite(t)) continue;
      const p = this.period[i]!;
      this.shift[i] = ts - (t + Math.floor((ts - t) / p) * p);
    }
    return ts;
  }

  /** How far (ms) the last snapshot shifted a tag's view forward (0 for slower tags and unknown ids). */
  shiftOf(tag: string): number {
    const i = this.index.get(tag);
    return i === undefined ? 0 : this.shift[i]!;
  }

  copyWindow(tag: string, fromTs: number, toTs: number, outTs: Float64Array, outValues: Float64Array): number {
    const d = this.shiftOf(tag);
    const n = this.source().copyWindow(tag, fromTs - d, toTs - d, outTs, outValues);
    if (d !== 0) for (let j = 0; j < n; j++) outTs[j]! += d;
    return n;
  }

  lastTsAtOrBefore(tag: string, ts: number): number {
    const d = this.shiftOf(tag);
    return this.source().lastTsAtOrBefore(tag, ts - d) + d;
  }

  maxCapacity(): number {
    return this.source().maxCapacity();
  }

  private source(): GraphWindowSource {
    if (!this.inner) throw new Error("GraphSnapshot: take() a snapshot before reading it");
    return this.inner;
  }
}

/**
 * The sensor-graph input: node features by src/features/graph.ts (the code the dataset writer used) over the
 * FeatureStage's windows, nodes in the manifest's `extra.node_ids` order (which must be the tag dictionary's),
 * edges from `extra.edge_index` ([2, E], as the model was trained) fed as an int64 input when the model takes one.
 * A tick's node features are those of its {@link GraphSnapshot} (see there why not the tick's own time).
 */
export class GraphInput {
  readonly nodeIds: string[];
  private readonly extractor: GraphFeatureExtractor;
  private readonly edgeIndex: BigInt64Array;
  private readonly E: number;
  private readonly norm: Normaliser;
  private readonly snapshot: GraphSnapshot;

  constructor(
    private readonly ref: Pick<ModelRef, "name" | "feature_order" | "normalisation" | "extra" | "inputs">,
    tags: readonly TagConfig[],
  ) {
    const ids = ref.extra.node_ids;
    if (!Array.isArray(ids)) throw new InputSpecError(ref.name, "extra.node_ids is missing");
    const dict = tags.map((t) => t.id);
    if (ids.length !== dict.length || ids.some((id, i) => id !== dict[i]))
      throw new InputSpecError(
        ref.name,
        `node order [${ids.join(", ")}] differs from the tag dictionary [${dict.join(", ")}]; the graph was trained on another plant`,
      );
    const feats = ref.feature_order ?? [...GRAPH_NODE_FEATURES];
    if (feats.length !== GRAPH_NODE_FEATURES.length || feats.some((f, i) => f !== GRAPH_NODE_FEATURES[i]))
      throw new InputSpecError(
        ref.name,
        `node features [${feats.join(", ")}] differ from the daemon's [${GRAPH_NODE_FEATURES.join(", ")}]`,
      );
    const ei = ref.extra.edge_index;
    if (
      !Array.isArray(ei) ||
      ei.length !== 2 ||
      !Array.isArray(ei[0]) ||
      !Array.isArray(ei[1]) ||
      ei[0].length !== ei[1].length
    )
      throw new InputSpecError(ref.name, "extra.edge_index must be [[src...], [dst...]]");
    const src = Int32Array.from(ei[0] as number[]);
    const dst = Int32Array.from(ei[1] as number[]);
    for (let e = 0; e < src.length; e++)
      if (!(src[e]! >= 0 && src[e]! < dict.length && dst[e]! >= 0 && dst[e]! < dict.length))
        throw new InputSpecError(ref.name, `extra.edge_index edge ${e} is out of range`);
    this.E = src.length;
    this.edgeIndex = new BigInt64Array(2 * this.E);
    for (let e = 0; e < this.E; e++) {
      this.edgeIndex[e] = BigInt(src[e]!);
      this.edgeIndex[this.E + e] = BigInt(dst[e]!);
    }
    const edges: GraphEdges = { src, dst, kind: new Uint8Array(src.length) };
    const windowS = num(ref.extra.window_s);
    this.extractor = new GraphFeatureExtractor(tags, edges, windowS ? { windowS } : {});
    this.nodeIds = ids as string[];
    this.norm = normaliserFor(ref, GRAPH_NODE_FEATURES.length);
    this.snapshot = new GraphSnapshot(tags, (num(ref.extra.stride_s) ?? DEFAULT_GRAPH_STRIDE_S) * 1000);
  }

  /**
   * The raw node features [N × F] (row-major, before normalisation: what the dataset's graph/nodes.npy holds) of
   * the snapshot of `windows` for a tick at `now` (see {@link GraphSnapshot}), and the snapshot's time.
   */
  nodeFeatures(windows: GraphWindowSource, now: number): { ts: number; x: Float32Array } {
    const ts = this.snapshot.take(windows, now);
    return { ts, x: this.extractor.compute(this.snapshot, ts) };
  }

  /** The model's inputs for a tick at `now` and the time of the snapshot they describe. */
  feeds(windows: GraphWindowSource, now: number): { ts: number; feeds: Feeds } {
    const { ts, x: raw } = this.nodeFeatures(windows, now);
    const F = GRAPH_NODE_FEATURES.length;
    const N = this.nodeIds.length;
    const x = new Float32Array(N * F);
    for (let i = 0; i < N; i++) this.norm.apply(raw.subarray(i * F, (i + 1) * F), x, i * F);
    const feeds: Feeds = {};
    for (const inp of this.ref.inputs) {
      if (inp.dtype === "int64") feeds[inp.name] = { data: this.edgeIndex.slice(), dims: [2, this.E] };
      else feeds[inp.name] = { data: x, dims: inp.shape.length === 3 ? [1, N, F] : [N, F] };
    }
    return { ts, feeds };
  }
}

/**
 * The ensemble's input: a named vector picked from what the other models produced this tick (names in
 * `feature_order`, e.g. `forecaster.probability.60min.crack`, `vision.rate.crack`, `sensor_graph.graph_score`).
 * A name nobody produced this tick makes the ensemble unavailable for the tick, naming it.
 */
export function namedVector(
  ref: Pick<ModelRef, "name" | "feature_order" | "normalisation" | "inputs">,
  values: ReadonlyMap<string, number>,
): { feeds: Feeds } | { missing: string[] } {
  const order = ref.feature_order;
  if (!order) throw new InputSpecError(ref.name, "the manifest has no feature_order");
  const missing = order.filter((n) => !values.has(n));
  if (missing.length) return { missing };
  const row = Float32Array.from(order, (n) => values.get(n)!);
  const x = new Float32Array(order.length);
  normaliserFor(ref, order.length).apply(row, x, 0);
  const inp = ref.inputs[0]!;
  return { feeds: { [inp.name]: { data: x, dims: inp.shape.length === 1 ? [order.length] : [1, order.length] } } };
}

/**
 * Inputs of a stacking model (the ensemble) fed by tensor name from this tick's outputs of the other models, as
 * the factory's ensemble declares them (models/factory/glass_factory/models/ensemble.py): `probability` and
 * `uncertainty` [B,H,C] from the forecaster, `vision_rate` [B,C] from the vision window, `graph_score` [B,1] from
 * the sensor graph. `values` holds the tick's named outputs (`forecaster.probability.15min.crack`, …).
 */
export function stackingFeeds(
  ref: Pick<ModelRef, "name" | "inputs" | "extra" | "classes">,
  values: ReadonlyMap<string, number>,
  forecaster: string,
  classes: readonly string[],
): { feeds: Feeds } | { missing: string[] } {
  const cls = ref.classes ?? classes;
  const horizons = (ref.extra.horizons_min as number[] | undefined) ?? [];
  const missing: string[] = [];
  const pick = (keys: string[]) =>
    Float32Array.from(keys, (k) => {
      const v = values.get(k);
      if (v === undefined) missing.push(k);
      return v ?? Number.NaN;
    });
  const feeds: Feeds = {};
  for (const inp of ref.inputs) {
    if (inp.name === "probability" || inp.name === "uncertainty") {
      const keys = horizons.flatMap((h) => cls.map((c) => `${forecaster}.${inp.name}.${h}min.${c}`));
      feeds[inp.name] = { data: pick(keys), dims: [1, horizons.length, cls.length] };
    } else if (inp.name === "vision_rate") {
      feeds[inp.name] = { data: pick(cls.map((c) => `vision.rate.${c}`)), dims: [1, cls.length] };
    } else if (inp.name === "graph_score") {
      const key = [...values.keys()].find((k) => k.endsWith(".graph_score")) ?? "sensor-graph.graph_score";
      feeds[inp.name] = { data: pick([key]), dims: [1, 1] };
    } else missing.push(`${ref.name} input ${inp.name} (unknown to the daemon)`);
  }
  return missing.length ? { missing } : { feeds };
}
