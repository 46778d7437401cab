import type { Config, TagConfig } from "../config/index.js";
import {
  ANNEALING_NOMINAL_C,
  ANNEALING_SCORE_SCALE_C,
  annealingMonotonic,
  annealingRmsDeviationC,
  annealingScore,
  coolingDeltaTK,
  DEFAULT_WALL_THICKNESS_M,
  inBandFraction,
  stabilityIndex,
  stressRatio,
  thermalGradientC,
  thermalStressMPa,
  VFT_SODA_LIME,
  type VftConstants,
  viscosityLog10,
} from "./domain.js";
import {
  ewma,
  excessKurtosisOf,
  lsSlopePerS,
  moments,
  newMoments,
  quantilesInPlace,
  rateOfChangePerS,
  skewnessOf,
  stdOf,
  volatility,
} from "./stats.js";
import type { TagWindows } from "./tag-windows.js";

/**
 * Per-tag features, in vector order; the name of each is `<tag>.<suffix>`. Statistics are over the raw samples
 * with `endTs − window < ts ≤ endTs` (sample-weighted, not time-weighted):
 * - `mean`, `min`, `max`; `std` population (÷n), NaN for n < 2;
 * - `p05`, `p50`, `p95` quantiles, linear interpolation (Hyndman–Fan type 7, as R/NumPy default);
 * - `skew` population skewness g1 (n ≥ 3), `kurt` population excess kurtosis g2 (n ≥ 4); NaN for a constant window;
 * - `slope` least-squares, unit/s; `roc` (last − first)/elapsed s; `volatility` population std of first differences
 *   (unit per sample step, n ≥ 3); `ewma` time-aware EWMA with the configured half-life, seeded with the first point;
 * - `last` newest value at or before endTs if no older than the tag's stale horizon (may predate the window);
 * - `count` points in the window; `age_s` seconds since the newest point at or before endTs (NaN when none);
 * - `in_band` fraction of the window's points inside the tag's normal band.
 */
export const PER_TAG_FEATURES = Object.freeze([
  "mean",
  "std",
  "min",
  "max",
  "p05",
  "p50",
  "p95",
  "skew",
  "kurt",
  "slope",
  "roc",
  "volatility",
  "ewma",
  "last",
  "count",
  "age_s",
  "in_band",
] as const);

/**
 * Cross-tag domain features, after every per-tag block, in this order. Each reads the tags' `last` values (the
 * current state); `stability_index` reads their `in_band`. A tag missing from the dictionary makes its features NaN.
 * - `viscosity_log10`: VFT log10 η (Pa·s) at furnace_temperature;
 * - `gradient_furnace_mold_c`: furnace_temperature − mold_temperature, °C (nominal ≈ 1180);
 * - `gradient_mold_lehr_c`: annealing_zone1 − mold_temperature, °C (reheat at the lehr entry, nominal ≈ 280);
 * - `gradient_lehr_c`: annealing_zone1 − annealing_zone3, °C (drop across the lehr, nominal 100);
 * - `annealing_rms_dev_c`: RMS deviation of zones 1..3 from the nominal profile, °C;
 * - `annealing_monotonic`: 1 when zone1 > zone2 > zone3, else 0;
 * - `annealing_score`: 0..1, monotonic × max(0, 1 − rms/25 °C);
 * - `cooling_dt_k`: through-thickness ΔT (K) from cooling_rate, one-sided wall model ΔT = r·d²/(2a);
 * - `cooling_stress_mpa`: E·α·ΔT/(1 − ν), MPa; `cooling_stress_ratio`: that over the 50 MPa tensile strength;
 * - `stability_index`: 0..1, mean in-band fraction over the key tags that have data.
 */
export const DOMAIN_FEATURES = Object.freeze([
  "viscosity_log10",
  "gradient_furnace_mold_c",
  "gradient_mold_lehr_c",
  "gradient_lehr_c",
  "annealing_rms_dev_c",
  "annealing_monotonic",
  "annealing_score",
  "cooling_dt_k",
  "cooling_stress_mpa",
  "cooling_stress_ratio",
  "stability_index",
] as const);

/** Prefix of domain feature names: `domain.viscosity_log10`. */
export const DOMAIN_PREFIX = "domain";

/** One feature vector: `values[i]` is the feature named `names[i]`; NaN where it cannot be computed. */
export interface FeatureVector {
  /** Feature names in vector order; the same frozen array on every call of one extractor. */
  readonly names: readonly string[];
  values: Float32Array;
  /** End of the window (the tick time), ms since the epoch. */
  ts: number;
}

/** Options of {@link FeatureExtractor}. */
export interface FeatureExtractorOptions {
  /** Window length in seconds. Default 600 (config `pipeline.window_s`). */
  windowS?: number;
  /** EWMA half-life in seconds. Default 60: recent minute weighs half, a 600 s window holds ten half-lives. */
  ewmaHalfLifeS?: number;
  /**
   * Tags averaged into `domain.stability_index` (ids not in the dictionary are ignored). Default: every tag of stage batch, furnace, forming or annealing
   * (the environment is not a process variable and inspection is an outcome).
   */
  stabilityTags?: readonly string[];
  /** Nominal lehr profile zones 1..3 in °C. Default 600 / 550 / 500. */
  annealingNominalC?: readonly [number, number, number];
  /** Wall thickness for the cooling-stress model, m. Default 0.004. */
  wallThicknessM?: number;
  /** VFT constants. Default soda-lime ({@link VFT_SODA_LIME}). */
  vft?: Readonly<VftConstants>;
}

const STABILITY_STAGES: ReadonlySet<TagConfig["stage"]> = new Set(["batch", "furnace", "forming", "annealing"]);
// Largest finite float32: anything beyond would become ±Infinity in the Float32Array.
const F32_MAX = 3.4028234663852886e38;
const NT = PER_TAG_FEATURES.length;
// p05, p50, p95, ascending as quantilesInPlace requires.
const QUANTILES: readonly number[] = Object.freeze([0.05, 0.5, 0.95]);
// Offsets by name, so the compute code follows the lists above if they are ever reordered.
const T = offsets(PER_TAG_FEATURES);
const D = offsets(DOMAIN_FEATURES);

function offsets<K extends string>(list: readonly K[]): Record<K, number> {
  return Object.fromEntries(list.map((k, i) => [k, i])) as Record<K, number>;
}

const DOMAIN_TAGS = {
  furnace: "furnace_temperature",
  mold: "mold_temperature",
  zone1: "annealing_zone1",
  zone2: "annealing_zone2",
  zone3: "annealing_zone3",
  cooling: "cooling_rate",
} as const;

/**
 * Turns the tag windows into one named feature vector per tick. The layout is fixed at construction: one block of
 * {@link PER_TAG_FEATURES} per tag in dictionary order, then {@link DOMAIN_FEATURES}. `names` is computed once and
 * shared by every vector. `compute` never throws for missing data and never yields ±Infinity: a feature that
 * cannot be computed is NaN. Scratch buffers are preallocated; a call allocates only the output vector (none when
 * `out` is given).
 */
export class FeatureExtractor {
  /** Feature names in vector order (frozen). */
  readonly names: readonly string[];
  /** Window length in ms. */
  readonly windowMs: number;
  private readonly tags: readonly TagConfig[];
  private readonly index: ReadonlyMap<string, number>;
  private readonly halfLifeS: number;
  private readonly stabilityIdx: Int32Array;
  private readonly domainIdx: Record<keyof typeof DOMAIN_TAGS, number>;
  private readonly nominal: readonly [number, number, number];
  private readonly thicknessM: number;
  private readonly vft: Readonly<VftConstants>;
  private readonly m = newMoments();
  private readonly inBand: Float64Array;
  private readonly f64: Float64Array;
  private readonly q = new Float64Array(QUANTILES.length);
  private sTs = new Float64Array(0);
  private sVal = new Float64Array(0);
  private sSort = new Float64Array(0);

  constructor(tags: readonly TagConfig[], opts: FeatureExtractorOptions = {}) {
    const windowS = opts.windowS ?? 600;
    if (!(windowS > 0)) throw new RangeError(`FeatureExtractor: windowS must be > 0, got ${windowS}`);
    this.halfLifeS = opts.ewmaHalfLifeS ?? 60;
    if (!(this.halfLifeS > 0)) throw new RangeError(`FeatureExtractor: ewmaHalfLifeS must be > 0`);
    this.windowMs = windowS * 1000;
    this.tags = tags.slice();
    const names: string[] = [];
    for (const t of this.tags) for (const f of PER_TAG_FEATURES) names.push(`${t.id}.${f}`);
    for (const f of DOMAIN_FEATURES) names.push(`${DOMAIN_PREFIX}.${f}`);
    this.names = Object.freeze(names);
    const index = new Map<string, number>();
    names.forEach((n, i) => {
      if (index.has(n)) throw new RangeError(`FeatureExtractor: duplicate feature "${n}" (duplicate tag id?)`);
      index.set(n, i);
    });
    this.index = index;
    const tagPos = (id: string) => this.tags.findIndex((t) => t.id === id);
    this.domainIdx = {
      furnace: tagPos(DOMAIN_TAGS.furnace),
      mold: tagPos(DOMAIN_TAGS.mold),
      zone1: tagPos(DOMAIN_TAGS.zone1),
      zone2: tagPos(DOMAIN_TAGS.zone2),
      zone3: tagPos(DOMAIN_TAGS.zone3),
      cooling: tagPos(DOMAIN_TAGS.cooling),
    };
    const stab = opts.stabilityTags
      ? opts.stabilityTags.map(tagPos).filter((i) => i >= 0)
      : this.tags.flatMap((t, i) => (STABILITY_STAGES.has(t.stage) ? [i] : []));
    this.stabilityIdx = Int32Array.from(stab);
    this.inBand = new Float64Array(stab.length);
    this.nominal = opts.annealingNominalC ?? ANNEALING_NOMINAL_C;
    this.thicknessM = opts.wallThicknessM ?? DEFAULT_WALL_THICKNESS_M;
    this.vft = opts.vft ?? VFT_SODA_LIME;
    this.f64 = new Float64Array(names.length);
  }

  /** The extractor for a validated config: its tag dictionary and `pipeline.window_s`. */
  static fromConfig(config: Config, opts: FeatureExtractorOptions = {}): FeatureExtractor {
    return new FeatureExtractor(config.tags, { windowS: config.pipeline.window_s, ...opts });
  }

  /** Number of features. */
  get size(): number {
    return this.names.length;
  }

  /** Position of a named feature in every vector, or −1 when there is no such feature. */
  indexOf(name: string): number {
    return this.index.get(name) ?? -1;
  }

  /**
   * Computes the feature vector for the window ending at `endTs` (ms). Pass `out` (length ≥ `size`) to fill a
   * reused array instead of allocating one. Missing data never throws; a too-short `out` is a programming error
   * and throws RangeError.
   */
  compute(windows: TagWindows, endTs: number, out?: Float32Array): FeatureVector {
    if (out !== undefined && out.length < this.names.length)
      throw new RangeError(`FeatureExtractor.compute: out has ${out.length} slots, needs ${this.names.length}`);
    const f = this.f64;
    this.ensureScratch(windows.maxCapacity());
    const from = endTs - this.windowMs;
    for (let t = 0; t < this.tags.length; t++) this.tagBlock(windows, this.tags[t]!, t * NT, from, endTs);
    this.domainBlock(this.tags.length * NT);

    const values = out ?? new Float32Array(f.length);
    for (let i = 0; i < f.length; i++) {
      const v = f[i]!;
      values[i] = Number.isFinite(v) && Math.abs(v) <= F32_MAX ? v : Number.NaN;
    }
    return { names: this.names, values, ts: endTs };
  }

  private ensureScratch(cap: number): void {
    if (this.sTs.length >= cap) return;
    this.sTs = new Float64Array(cap);
    this.sVal = new Float64Array(cap);
    this.sSort = new Float64Array(cap);
  }

  private tagBlock(w: TagWindows, tag: TagConfig, o: number, from: number, endTs: number): void {
    const f = this.f64;
    const ts = this.sTs;
    const v = this.sVal;
    const n = w.copyWindow(tag.id, from, endTs, ts, v);
    const m = moments(v, n, this.m);
    f[o + T.mean] = m.mean;
    f[o + T.std] = stdOf(m);
    f[o + T.min] = m.min;
    f[o + T.max] = m.max;
    const sorted = this.sSort;
    for (let i = 0; i < n; i++) sorted[i] = v[i]!;
    quantilesInPlace(sorted, n, QUANTILES, this.q);
    f[o + T.p05] = this.q[0]!;
    f[o + T.p50] = this.q[1]!;
    f[o + T.p95] = this.q[2]!;
    f[o + T.skew] = skewnessOf(m);
    f[o + T.kurt] = excessKurtosisOf(m);
    f[o + T.slope] = lsSlopePerS(ts, v, n, endTs);
    f[o + T.roc] = rateOfChangePerS(ts, v, n);
    f[o + T.volatility] = volatility(v, n);
    f[o + T.ewma] = ewma(ts, v, n, this.halfLifeS);
    f[o + T.last] = w.valueAt(tag.id, endTs);
    f[o + T.count] = n;
    f[o + T.age_s] = (endTs - w.lastTsAtOrBefore(tag.id, endTs)) / 1000;
    f[o + T.in_band] = inBandFraction(v, n, tag.normal.min, tag.normal.max);
  }

  private domainBlock(o: number): void {
    const f = this.f64;
    const d = this.domainIdx;
    const furnace = this.lastOf(d.furnace);
    const mold = this.lastOf(d.mold);
    const z1 = this.lastOf(d.zone1);
    const z2 = this.lastOf(d.zone2);
    const z3 = this.lastOf(d.zone3);
    const cooling = this.lastOf(d.cooling);

    f[o + D.viscosity_log10] = viscosityLog10(furnace, this.vft);
    f[o + D.gradient_furnace_mold_c] = thermalGradientC(furnace, mold);
    f[o + D.gradient_mold_lehr_c] = thermalGradientC(z1, mold);
    f[o + D.gradient_lehr_c] = thermalGradientC(z1, z3);
    const rms = annealingRmsDeviationC(z1, z2, z3, this.nominal);
    const mono = annealingMonotonic(z1, z2, z3);
    f[o + D.annealing_rms_dev_c] = rms;
    f[o + D.annealing_monotonic] = mono;
    f[o + D.annealing_score] = annealingScore(rms, mono, ANNEALING_SCORE_SCALE_C);
    const dT = coolingDeltaTK(cooling, this.thicknessM);
    const sigma = thermalStressMPa(dT);
    f[o + D.cooling_dt_k] = dT;
    f[o + D.cooling_stress_mpa] = sigma;
    f[o + D.cooling_stress_ratio] = stressRatio(sigma);
    for (let i = 0; i < this.stabilityIdx.length; i++) this.inBand[i] = f[this.stabilityIdx[i]! * NT + T.in_band]!;
    f[o + D.stability_index] = stabilityIndex(this.inBand);
  }

  /** The `last` feature of the tag at dictionary position t (NaN when the tag is not in the dictionary). */
  private lastOf(t: number): number {
    return t < 0 ? Number.NaN : this.f64[t * NT + T.last]!;
  }
}
