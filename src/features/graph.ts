import type { TagConfig } from "../config/index.js";
import { inBandFraction } from "./domain.js";
import { lsSlopePerS, moments, newMoments, stdOf, volatility } from "./stats.js";

/*
 * The sensor graph for the GNN (sensor-fault vs process-anomaly detection): one node per tag in dictionary order,
 * edges from the plant topology (DOMAIN.md's stage chain and the twin's physical couplings) and from strong
 * correlations seen in normal operation, and a small named set of node features per tag. The dataset writer and
 * the daemon at inference time call the same functions here, so training and serving cannot disagree.
 */

/**
 * Node features, in order; each is a pure function of the tag's samples in its window and the tag dictionary
 * (band centre c = (normal.min + normal.max)/2, half-width h = (normal.max − normal.min)/2). The window of a tag
 * is `max(windowS, 3 × period)` ending at `endTs` (so slow tags such as O2 every 10 min still see three samples):
 * - `last_z`: (newest value in the window − c)/h;
 * - `mean_z`: (mean − c)/h;
 * - `std_rel`: population std / h (n ≥ 2);
 * - `slope_rel`: least-squares slope × window length / h: how far the tag moved across the window, in half-bands
 *   (drift);
 * - `diff_std_rel`: std of sample-to-sample differences / h (n ≥ 3): noise bursts raise it, slow drift does not;
 * - `max_step_rel`: largest |sample-to-sample difference| / h (n ≥ 2): spikes;
 * - `flat_frac`: share of consecutive pairs with exactly the same value (n ≥ 2): a stuck sensor (a live sensor's
 *   noise never repeats a float exactly; a real line with coarse quantisation will see a floor here);
 * - `missing_frac`: 1 − n / (window / period), clamped to 0..1: dropouts (and quarantined samples);
 * - `age_frac`: time since the newest sample at or before endTs as a fraction of the window, capped at 1 (NaN when
 *   the tag has no sample at all);
 * - `in_band`: share of the window's samples inside the normal band;
 * - `neighbor_dev`: last_z minus the mean last_z of the node's graph neighbours (those with a value): a faulty
 *   sensor departs from its neighbours, a process disturbance tends to move them together.
 * Every feature is NaN when it cannot be computed (no or too few samples), never ±Infinity.
 */
export const GRAPH_NODE_FEATURES = Object.freeze([
  "last_z",
  "mean_z",
  "std_rel",
  "slope_rel",
  "diff_std_rel",
  "max_step_rel",
  "flat_frac",
  "missing_frac",
  "age_frac",
  "in_band",
  "neighbor_dev",
] as const);
export type GraphNodeFeature = (typeof GRAPH_NODE_FEATURES)[number];

/** Edge kinds: 0 plant topology / causal link, 1 strong correlation in normal operation. */
export const EDGE_TOPOLOGY = 0;
export const EDGE_CORRELATION = 1;

/** Directed edges (every link appears in both directions), as parallel arrays of node indices. */
export interface GraphEdges {
  src: Int32Array;
  dst: Int32Array;
  kind: Uint8Array;
}

/** The process stages in material-flow order (DOMAIN.md); `environment` acts on forming and is linked there. */
export const STAGE_CHAIN: readonly TagConfig["stage"][] = Object.freeze([
  "batch",
  "furnace",
  "forming",
  "annealing",
  "inspection",
]);

/**
 * Physical couplings among DOMAIN.md's default tags (the twin's, line-model.ts), upstream first: the batch is the
 * furnace's heat sink and fills the melt; burner power heats the melt and sets crown pressure and the flue gas
 * (O2, CO2); the pull (belt speed) drains the melt and, with the gob (the melt 28 min earlier), heats the mold; the
 * mold hands the ware to the lehr, whose zones follow each other down to the cooling rate.
 */
export const CAUSAL_LINKS: readonly (readonly [string, string])[] = Object.freeze([
  ["batch_flow", "furnace_temperature"],
  ["batch_flow", "melt_level"],
  ["furnace_power", "furnace_temperature"],
  ["furnace_power", "furnace_pressure"],
  ["furnace_power", "o2_percent"],
  ["furnace_power", "co2_percent"],
  ["o2_percent", "co2_percent"],
  ["belt_speed", "melt_level"],
  ["furnace_temperature", "mold_temperature"],
  ["belt_speed", "mold_temperature"],
  ["mold_temperature", "annealing_zone1"],
  ["annealing_zone1", "annealing_zone2"],
  ["annealing_zone2", "annealing_zone3"],
  ["annealing_zone3", "cooling_rate"],
] as const);

type NodeTag = Pick<TagConfig, "id" | "stage">;

/**
 * Undirected topology links as [i, j] (i < j) node-index pairs, sorted:
 * 1. {@link CAUSAL_LINKS} whose tags are both in the dictionary;
 * 2. a tag (not environment) that step 1 left without a link is linked to every other tag of its stage (one
 *    piece of equipment), e.g. forming_pressure or a tag a plant adds to the dictionary;
 * 3. two consecutive stages of {@link STAGE_CHAIN} with tags but no link between them are linked tag to tag;
 * 4. environment tags are linked to every forming tag (ambient humidity acts on the hot ware), or to every tag
 *    when there is none.
 */
export function topologyPairs(tags: readonly NodeTag[]): [number, number][] {
  const set = new Set<number>();
  const n = tags.length;
  const add = (a: number, b: number) => {
    if (a === b || a < 0 || b < 0) return;
    set.add(Math.min(a, b) * n + Math.max(a, b));
  };
  const pos = new Map(tags.map((t, i) => [t.id, i]));
  const linked = new Set<number>();
  for (const [a, b] of CAUSAL_LINKS) {
    const i = pos.get(a);
    const j = pos.get(b);
    if (i === undefined || j === undefined) continue;
    add(i, j);
    linked.add(i);
    linked.add(j);
  }
  for (let i = 0; i < n; i++) {
    if (linked.has(i) || tags[i]!.stage === "environment") continue;
    for (let j = 0; j < n; j++) if (tags[j]!.stage === tags[i]!.stage) add(i, j);
  }
  const byStage = (s: TagConfig["stage"]) => tags.flatMap((t, i) => (t.stage === s ? [i] : []));
  const chain = STAGE_CHAIN.map(byStage).filter((idx) => idx.length > 0);
  for (let k = 0; k + 1 < chain.length; k++) {
    const up = chain[k]!;
    const down = chain[k + 1]!;
    if (up.some((i) => down.some((j) => set.has(Math.min(i, j) * n + Math.max(i, j))))) continue;
    for (const i of up) for (const j of down) add(i, j);
  }
  const env = byStage("environment");
  const forming = byStage("forming");
  const targets = forming.length > 0 ? forming : tags.map((_, i) => i);
  for (const e of env) for (const j of targets) add(e, j);
  return [...set].sort((a, b) => a - b).map((k) => [Math.floor(k / n), k % n]);
}

/** A strongly correlated pair of tags from a calibration run. */
export interface CorrelatedPair {
  a: string;
  b: string;
  /** Pearson correlation. */
  r: number;
}

/** Default |r| above which two tags get a correlation edge. */
export const CORRELATION_THRESHOLD = 0.6;

/**
 * Pairs of series with a strong, stable Pearson correlation: |r| ≥ `threshold` in the first half and in the second
 * half of the run, with the same sign (slow random wanders correlate by chance over one stretch, rarely over two),
 * reported with r over the whole run. Series are resampled onto one common time grid; NaN entries are skipped
 * pairwise; a half with fewer than 10 common points or a constant series gives no pair. Sorted by index.
 */
export function correlatedPairs(
  ids: readonly string[],
  series: readonly ArrayLike<number>[],
  threshold = CORRELATION_THRESHOLD,
): CorrelatedPair[] {
  if (ids.length !== series.length) throw new RangeError("correlatedPairs: one series per id is needed");
  const out: CorrelatedPair[] = [];
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      const x = series[i]!;
      const y = series[j]!;
      const n = Math.min(x.length, y.length);
      const mid = Math.floor(n / 2);
      const r1 = pearson(x, y, 0, mid);
      const r2 = pearson(x, y, mid, n);
      if (!(Math.abs(r1) >= threshold && Math.abs(r2) >= threshold && Math.sign(r1) === Math.sign(r2))) continue;
      out.push({ a: ids[i]!, b: ids[j]!, r: pearson(x, y, 0, n) });
    }
  }
  return out;
}

function pearson(x: ArrayLike<number>, y: ArrayLike<number>, from: number, to: number): number {
  let m = 0;
  let sx = 0;
  let sy = 0;
  for (let k = from; k < to; k++) {
    const a = x[k]!;
    const b = y[k]!;
    if (Number.isNaN(a) || Number.isNaN(b)) continue;
    m++;
    sx += a;
    sy += b;
  }
  if (m < 10) return Number.NaN;
  const mx = sx / m;
  const my = sy / m;
  let cxy = 0;
  let cxx = 0;
  let cyy = 0;
  for (let k = from; k < to; k++) {
    const a = x[k]!;
    const b = y[k]!;
    if (Number.isNaN(a) || Number.isNaN(b)) continue;
    cxy += (a - mx) * (b - my);
    cxx += (a - mx) * (a - mx);
    cyy += (b - my) * (b - my);
  }
  return cxx > 0 && cyy > 0 ? cxy / Math.sqrt(cxx * cyy) : Number.NaN;
}

/**
 * The graph's directed edge list: every topology link ({@link topologyPairs}) with kind 0, then every correlated
 * pair not already linked with kind 1; each link as i→j then j→i. Correlated pairs naming a tag outside the
 * dictionary are ignored.
 */
export function buildGraphEdges(tags: readonly NodeTag[], correlated: readonly CorrelatedPair[] = []): GraphEdges {
  const n = tags.length;
  const pos = new Map(tags.map((t, i) => [t.id, i]));
  const pairs = topologyPairs(tags).map(([i, j]) => ({ i, j, kind: EDGE_TOPOLOGY }));
  const seen = new Set(pairs.map((p) => p.i * n + p.j));
  const corr: { i: number; j: number; kind: number }[] = [];
  for (const c of correlated) {
    const a = pos.get(c.a);
    const b = pos.get(c.b);
    if (a === undefined || b === undefined || a === b) continue;
    const i = Math.min(a, b);
    const j = Math.max(a, b);
    if (seen.has(i * n + j)) continue;
    seen.add(i * n + j);
    corr.push({ i, j, kind: EDGE_CORRELATION });
  }
  corr.sort((p, q) => p.i - q.i || p.j - q.j);
  const all = [...pairs, ...corr];
  const src = new Int32Array(all.length * 2);
  const dst = new Int32Array(all.length * 2);
  const kind = new Uint8Array(all.length * 2);
  all.forEach((p, k) => {
    src[2 * k] = p.i;
    dst[2 * k] = p.j;
    src[2 * k + 1] = p.j;
    dst[2 * k + 1] = p.i;
    kind[2 * k] = p.kind;
    kind[2 * k + 1] = p.kind;
  });
  return { src, dst, kind };
}

/** What the node features read: a tag's stored points. {@link TagWindows} (the FeatureStage's windows) fits. */
export interface GraphWindowSource {
  copyWindow(tag: string, fromTs: number, toTs: number, outTs: Float64Array, outValues: Float64Array): number;
  lastTsAtOrBefore(tag: string, ts: number): number;
  maxCapacity(): number;
}

/** Options of {@link GraphFeatureExtractor}. */
export interface GraphFeatureOptions {
  /** Window length in seconds (each tag's window is at least 3 of its periods). Default 600, as the features. */
  windowS?: number;
}

const NF = GRAPH_NODE_FEATURES.length;
const G = Object.fromEntries(GRAPH_NODE_FEATURES.map((k, i) => [k, i])) as Record<GraphNodeFeature, number>;

/**
 * Computes the node-feature matrix `[nodes × GRAPH_NODE_FEATURES]` (row-major Float32Array) for the window ending
 * at `endTs`. Scratch buffers are reused; `compute` allocates only its output (none when `out` is given).
 */
export class GraphFeatureExtractor {
  readonly names: readonly string[] = GRAPH_NODE_FEATURES;
  readonly windowMs: number;
  private readonly tags: readonly TagConfig[];
  /** Window of each tag, ms. */
  readonly tagWindowMs: Float64Array;
  private readonly nbrStart: Int32Array;
  private readonly nbr: Int32Array;
  private readonly f64: Float64Array;
  private readonly m = newMoments();
  private sTs = new Float64Array(0);
  private sVal = new Float64Array(0);

  constructor(tags: readonly TagConfig[], edges: GraphEdges, opts: GraphFeatureOptions = {}) {
    const windowS = opts.windowS ?? 600;
    if (!(windowS > 0)) throw new RangeError(`GraphFeatureExtractor: windowS must be > 0, got ${windowS}`);
    this.windowMs = windowS * 1000;
    this.tags = tags.slice();
    const n = this.tags.length;
    this.tagWindowMs = Float64Array.from(this.tags, (t) => Math.max(this.windowMs, 3 * t.period_ms));
    // Neighbour lists (CSR) from the directed edges: j is a neighbour of i for every edge i→j.
    const count = new Int32Array(n + 1);
    for (let e = 0; e < edges.src.length; e++) {
      const s = edges.src[e]!;
      const d = edges.dst[e]!;
      if (s < 0 || s >= n || d < 0 || d >= n)
        throw new RangeError(`GraphFeatureExtractor: edge ${e} (${s}→${d}) is out of range`);
      count[s + 1]!++;
    }
    for (let i = 0; i < n; i++) count[i + 1]! += count[i]!;
    this.nbrStart = count;
    this.nbr = new Int32Array(edges.src.length);
    const fill = count.slice(0, n);
    for (let e = 0; e < edges.src.length; e++) this.nbr[fill[edges.src[e]!]!++] = edges.dst[e]!;
    this.f64 = new Float64Array(n * NF);
  }

  /** Number of values in one matrix: nodes × features. */
  get size(): number {
    return this.f64.length;
  }

  compute(windows: GraphWindowSource, endTs: number, out?: Float32Array): Float32Array {
    if (out !== undefined && out.length < this.f64.length) {
      throw new RangeError(`GraphFeatureExtractor.compute: out has ${out.length} slots, needs ${this.f64.length}`);
    }
    const cap = windows.maxCapacity();
    if (this.sTs.length < cap) {
      this.sTs = new Float64Array(cap);
      this.sVal = new Float64Array(cap);
    }
    const f = this.f64;
    for (let i = 0; i < this.tags.length; i++) this.node(windows, i, endTs);
    for (let i = 0; i < this.tags.length; i++) {
      const own = f[i * NF + G.last_z]!;
      let sum = 0;
      let k = 0;
      for (let e = this.nbrStart[i]!; e < this.nbrStart[i + 1]!; e++) {
        const v = f[this.nbr[e]! * NF + G.last_z]!;
        if (Number.isNaN(v)) continue;
        sum += v;
        k++;
      }
      f[i * NF + G.neighbor_dev] = k > 0 ? own - sum / k : Number.NaN;
    }
    const values = out ?? new Float32Array(f.length);
    for (let i = 0; i < f.length; i++) {
      const v = f[i]!;
      values[i] = Number.isFinite(v) && Math.abs(v) <= 3.4028234663852886e38 ? v : Number.NaN;
    }
    return values;
  }

  private node(w: GraphWindowSource, i: number, endTs: number): void {
    const tag = this.tags[i]!;
    const f = this.f64;
    const o = i * NF;
    const winMs = this.tagWindowMs[i]!;
    const ts = this.sTs;
    const v = this.sVal;
    const n = w.copyWindow(tag.id, endTs - winMs, endTs, ts, v);
    const c = (tag.normal.min + tag.normal.max) / 2;
    const rawHalf = (tag.normal.max - tag.normal.min) / 2;
    const h = rawHalf > 0 ? rawHalf : Math.max(Math.abs(c) * 0.01, 1e-9);
    const m = moments(v, n, this.m);
    f[o + G.last_z] = n > 0 ? (v[n - 1]! - c) / h : Number.NaN;
    f[o + G.mean_z] = (m.mean - c) / h;
    f[o + G.std_rel] = stdOf(m) / h;
    f[o + G.slope_rel] = (lsSlopePerS(ts, v, n, endTs) * (winMs / 1000)) / h;
    f[o + G.diff_std_rel] = volatility(v, n) / h;
    let maxStep = Number.NaN;
    let flat = 0;
    if (n >= 2) {
      maxStep = 0;
      for (let k = 1; k < n; k++) {
        const step = v[k]! - v[k - 1]!;
        if (step === 0) flat++;
        const a = Math.abs(step);
        if (a > maxStep) maxStep = a;
      }
    }
    f[o + G.max_step_rel] = maxStep / h;
    f[o + G.flat_frac] = n >= 2 ? flat / (n - 1) : Number.NaN;
    const expected = winMs / tag.period_ms;
    f[o + G.missing_frac] = Math.min(1, Math.max(0, 1 - n / expected));
    const lastTs = w.lastTsAtOrBefore(tag.id, endTs);
    f[o + G.age_frac] = Math.min((endTs - lastTs) / winMs, 1);
    f[o + G.in_band] = inBandFraction(v, n, tag.normal.min, tag.normal.max);
  }
}
