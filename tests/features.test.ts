import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS, defaultConfig, type TagConfig } from "../src/config/index.js";
import type { Sample } from "../src/core/types.js";
import {
  annealingMonotonic,
  annealingRmsDeviationC,
  annealingScore,
  coolingDeltaTK,
  coolingStressMPa,
  DOMAIN_FEATURES,
  FeatureExtractor,
  FeatureStage,
  gridTimes,
  inBandFraction,
  PER_TAG_FEATURES,
  SODA_LIME_DIFFUSIVITY_M2S,
  stabilityIndex,
  stressRatio,
  TagWindows,
  thermalGradientC,
  thermalStressMPa,
  VFT_SODA_LIME,
  viscosityLog10,
} from "../src/features/index.js";
import { quantilesInPlace } from "../src/features/stats.js";
import type { PipelinePorts } from "../src/pipeline/ports.js";

const T0 = Date.UTC(2026, 0, 1);
let seq = 0;

function sample(tag: string, ts: number, value: number, quality: Sample["quality"] = "good"): Sample {
  return { tag, ts, value, quality, source: "test", seq: seq++ };
}

/** A test tag: period 1 s, normal band [3, 6]. */
function tagCfg(id: string, normal: [number, number] = [3, 6], period_ms = 1000): TagConfig {
  return {
    id,
    unit: "u",
    stage: "forming",
    description: "",
    normal: { min: normal[0], max: normal[1] },
    limits: { min: -1e40, max: 1e40 },
    period_ms,
    sources: {},
  };
}

/** Pushes `values` for tag "x" at the given second offsets from T0; returns the extractor's output as a lookup. */
function featuresOf(values: number[], seconds: number[], endS: number, opts: { halfLifeS?: number } = {}) {
  const tags = [tagCfg("x")];
  const w = new TagWindows(tags, { windowS: 60 });
  values.forEach((v, i) => {
    w.push(sample("x", T0 + seconds[i]! * 1000, v));
  });
  const fx = new FeatureExtractor(tags, { windowS: 60, ewmaHalfLifeS: opts.halfLifeS ?? 1 });
  const fv = fx.compute(w, T0 + endS * 1000);
  return (name: string): number => {
    const i = fx.indexOf(`x.${name}`);
    assert.ok(i >= 0, `no feature x.${name}`);
    return fv.values[i]!;
  };
}

function close(actual: number, expected: number, tol = 1e-5, msg = "") {
  assert.ok(
    Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)),
    `${msg} expected ${expected}, got ${actual}`,
  );
}

// ── statistics against hand-computed values ────────────────────────────────────────────────────────────────

// Series A: 2 4 4 4 5 5 7 9 at t = 1..8 s. mean 5; deviations −3 −1 −1 −1 0 0 2 4:
// Σd² = 9+1+1+1+0+0+4+16 = 32 → m2 = 4, std 2; Σd³ = −27−1−1−1+0+0+8+64 = 42 → m3 = 5.25, skew = 5.25/2³ = 0.65625;
// Σd⁴ = 81+1+1+1+0+0+16+256 = 356 → m4 = 44.5, excess kurt = 44.5/2⁴ − 3 = −0.21875.
test("statistics of a known series: mean, std, min, max, skew, excess kurtosis", () => {
  const f = featuresOf([2, 4, 4, 4, 5, 5, 7, 9], [1, 2, 3, 4, 5, 6, 7, 8], 8.5);
  close(f("mean"), 5);
  close(f("std"), 2);
  close(f("min"), 2);
  close(f("max"), 9);
  close(f("skew"), 0.65625);
  close(f("kurt"), -0.21875);
  close(f("count"), 8);
});

// Type 7 on sorted 2 4 4 4 5 5 7 9 (n = 8, h = 7p): p05 h=0.35 → 2+0.35·2 = 2.7; p50 h=3.5 → 4.5;
// p95 h=6.65 → 7+0.65·2 = 8.3.
test("quantiles use linear interpolation (type 7)", () => {
  const f = featuresOf([9, 4, 5, 2, 4, 7, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8], 8);
  close(f("p05"), 2.7);
  close(f("p50"), 4.5);
  close(f("p95"), 8.3);
});

// Series A: t−4.5 = ±0.5..±3.5 → Sxx = 42; Sxy = 10.5+2.5+1.5+0.5+0+0+5+14 = 34 → slope 34/42 per s.
// roc = (9−2)/(8−1) = 1. Differences 2 0 0 1 0 2 2: mean 1, Σ(d−1)² = 6 → volatility sqrt(6/7).
// EWMA, half-life 1 s with 1 s steps → α = ½: 2, 3, 3.5, 3.75, 4.375, 4.6875, 5.84375, 7.421875.
test("temporal features of a known series: slope, rate of change, volatility, EWMA, last, age, in-band", () => {
  const f = featuresOf([2, 4, 4, 4, 5, 5, 7, 9], [1, 2, 3, 4, 5, 6, 7, 8], 8.5);
  close(f("slope"), 34 / 42);
  close(f("roc"), 1);
  close(f("volatility"), Math.sqrt(6 / 7));
  close(f("ewma"), 7.421875);
  close(f("last"), 9);
  close(f("age_s"), 0.5);
  // Normal band [3, 6]: 4 4 4 5 5 inside → 5/8.
  close(f("in_band"), 0.625);
});

test("quickselect quantiles equal sort-then-interpolate on random data with ties (type 7 reference)", () => {
  let r = 7;
  const rnd = () => {
    r = (r * 1103515245 + 12345) % 2147483648;
    return r / 2147483648;
  };
  const ps = [0, 0.05, 0.25, 0.5, 0.95, 1];
  const out = new Float64Array(ps.length);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rnd() * 700);
    const levels = 1 + Math.floor(rnd() * 50); // few levels → many ties
    const data = Array.from({ length: n }, () => Math.floor(rnd() * levels) - levels / 2);
    const sorted = data.slice().sort((a, b) => a - b);
    quantilesInPlace(Float64Array.from(data), n, ps, out);
    ps.forEach((p, i) => {
      const h = (n - 1) * p;
      const lo = Math.floor(h);
      const ref = sorted[lo]! + (h - lo) * (sorted[Math.min(n - 1, lo + 1)]! - sorted[lo]!);
      close(out[i]!, ref, 1e-12, `n=${n} p=${p}`);
    });
  }
});

// Series B: 0 0 0 0 10. mean 2; d = −2 ×4, 8: m2 = 80/5 = 16 (std 4); m3 = (−32+512)/5 = 96 → skew 96/64 = 1.5;
// m4 = (64+4096)/5 = 832 → excess kurt 832/256 − 3 = 0.25. Type 7: p05 h=0.2 → 0; p95 h=3.8 → 0.8·10 = 8.
test("statistics of a skewed series (positive skew, positive excess kurtosis)", () => {
  const f = featuresOf([0, 0, 0, 0, 10], [1, 2, 3, 4, 5], 5);
  close(f("mean"), 2);
  close(f("std"), 4);
  close(f("skew"), 1.5);
  close(f("kurt"), 0.25);
  close(f("p05"), 0);
  close(f("p50"), 0);
  close(f("p95"), 8);
});

// Irregular sampling: 0 @0 s, 10 @2 s, 10 @6 s. EWMA half-life 2 s: α = 1−2^(−1) = ½ → 5; α = 1−2^(−2) = ¾ → 8.75.
// Slope: t̄ = 8/3, v̄ = 20/3; Sxy = (160−20+100)/9, Sxx = (64+4+100)/9 → 240/168. roc = 10/6. Diffs 10, 0 → vol 5.
test("EWMA and slope weigh irregular sampling by time", () => {
  const f = featuresOf([0, 10, 10], [0, 2, 6], 6, { halfLifeS: 2 });
  close(f("ewma"), 8.75);
  close(f("slope"), 240 / 168);
  close(f("roc"), 10 / 6);
  close(f("volatility"), 5);
});

// ── NaN safety ──────────────────────────────────────────────────────────────────────────────────────────────

test("constant series: std 0, volatility 0, slope 0, skewness and kurtosis NaN (documented)", () => {
  const f = featuresOf([5, 5, 5, 5, 5], [1, 2, 3, 4, 5], 5);
  assert.is(f("mean"), 5);
  assert.is(f("std"), 0);
  assert.is(f("volatility"), 0);
  assert.is(f("slope"), 0);
  assert.is(f("roc"), 0);
  assert.is(f("p50"), 5);
  assert.is(f("ewma"), 5);
  assert.ok(Number.isNaN(f("skew")));
  assert.ok(Number.isNaN(f("kurt")));
});

test("constant non-representable value (0.1) is still exactly constant: no spurious skew", () => {
  const f = featuresOf([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [1, 2, 3, 4, 5, 6, 7], 7);
  assert.is(f("std"), 0);
  assert.ok(Number.isNaN(f("skew")));
});

test("single point: location features defined, spread and trend features NaN", () => {
  const f = featuresOf([7], [3], 4);
  assert.is(f("mean"), 7);
  assert.is(f("min"), 7);
  assert.is(f("max"), 7);
  assert.is(f("p05"), 7);
  assert.is(f("p95"), 7);
  assert.is(f("ewma"), 7);
  assert.is(f("last"), 7);
  assert.is(f("count"), 1);
  for (const n of ["std", "skew", "kurt", "slope", "roc", "volatility"]) assert.ok(Number.isNaN(f(n)), n);
});

test("two and three points: skew needs 3, kurtosis needs 4, volatility needs 3", () => {
  const two = featuresOf([1, 3], [1, 2], 2);
  close(two("std"), 1);
  assert.ok(Number.isNaN(two("skew")));
  assert.ok(Number.isNaN(two("volatility")));
  const three = featuresOf([1, 2, 6], [1, 2, 3], 3);
  assert.ok(Number.isFinite(three("skew")));
  assert.ok(Number.isNaN(three("kurt")));
});

test("empty windows and unfed tags: every feature NaN except count 0, nothing throws, no Infinity", () => {
  const w = new TagWindows(DEFAULT_TAGS, { windowS: 600 });
  const fx = new FeatureExtractor(DEFAULT_TAGS);
  const fv = fx.compute(w, T0);
  fv.names.forEach((n, i) => {
    const v = fv.values[i]!;
    if (n.endsWith(".count")) assert.is(v, 0, n);
    else assert.ok(Number.isNaN(v), `${n} = ${v}`);
  });
});

test("a tag the windows do not know, and domain tags absent from the dictionary, give NaN", () => {
  const tags = [tagCfg("x"), tagCfg("y")];
  const w = new TagWindows([tags[0]!], { windowS: 60 });
  w.push(sample("x", T0, 4));
  const fx = new FeatureExtractor(tags, { windowS: 60 });
  const fv = fx.compute(w, T0);
  assert.is(fv.values[fx.indexOf("x.mean")], 4);
  assert.ok(Number.isNaN(fv.values[fx.indexOf("y.mean")]!));
  assert.is(fv.values[fx.indexOf("y.count")], 0);
  for (const d of DOMAIN_FEATURES) {
    if (d !== "stability_index") assert.ok(Number.isNaN(fv.values[fx.indexOf(`domain.${d}`)]!), d);
  }
  // Both test tags are stage "forming" (key tags); y has no data and is skipped, x is in band (4 ∈ [3, 6]).
  assert.is(fv.values[fx.indexOf("domain.stability_index")], 1);
});

test("values beyond float32 range become NaN, never ±Infinity", () => {
  const f = featuresOf([1e39, 2e39, 3e39], [1, 2, 3], 3);
  for (const n of PER_TAG_FEATURES) {
    const v = f(n);
    assert.ok(!Number.isFinite(v) ? Number.isNaN(v) : true, `${n} is ${v}`);
  }
  assert.ok(Number.isNaN(f("mean")));
  assert.is(f("count"), 3);
});

test("window is (endTs − window, endTs]: the sample at the start is out, at the end in, later ones ignored", () => {
  const tags = [tagCfg("x")];
  const w = new TagWindows(tags, { windowS: 10 });
  w.push(sample("x", T0, 100)); // exactly endTs − 10 s: excluded
  w.push(sample("x", T0 + 5000, 1));
  w.push(sample("x", T0 + 10_000, 3)); // exactly endTs: included
  w.push(sample("x", T0 + 11_000, 1000)); // after endTs: ignored
  const fx = new FeatureExtractor(tags, { windowS: 10 });
  const fv = fx.compute(w, T0 + 10_000);
  assert.is(fv.values[fx.indexOf("x.count")], 2);
  assert.is(fv.values[fx.indexOf("x.mean")], 2);
  assert.is(fv.values[fx.indexOf("x.last")], 3);
});

test("last is NaN once the newest value is older than the stale horizon (3 × period)", () => {
  const f = featuresOf([1, 2], [0, 1], 1 + 3);
  assert.is(f("last"), 2);
  const g = featuresOf([1, 2], [0, 1], 1 + 3.001);
  assert.ok(Number.isNaN(g("last")));
  close(g("age_s"), 3.001, 1e-4);
});

// ── domain features ─────────────────────────────────────────────────────────────────────────────────────────

// DOMAIN.md reference points; tolerance ±0.5 decades. Worst fits: 545 °C (−0.30) and 1500 °C (−0.22).
const VFT_POINTS: Array<[number, number]> = [
  [1450, 1],
  [1475, 1],
  [1500, 1],
  [1000, 3],
  [720, 6.6],
  [545, 12],
  [505, 13.5],
];

test("VFT viscosity hits every DOMAIN.md reference point within ±0.5 decades", () => {
  for (const [t, ref] of VFT_POINTS) {
    const v = viscosityLog10(t);
    assert.ok(Math.abs(v - ref) <= 0.5, `${t} °C: expected ~${ref}, got ${v.toFixed(3)}`);
  }
});

test("VFT constants and formula: hand-computed values, NaN at and below T0", () => {
  assert.equal({ ...VFT_SODA_LIME }, { A: -3.04, B: 4930, T0: 210.5 });
  // 1000 °C: −3.04 + 4930/789.5 = −3.04 + 6.244459 = 3.204459.
  close(viscosityLog10(1000), 3.204459, 1e-5);
  // 545 °C: −3.04 + 4930/334.5 = −3.04 + 14.738416 = 11.698416.
  close(viscosityLog10(545), 11.698416, 1e-5);
  assert.ok(Number.isNaN(viscosityLog10(210.5)));
  assert.ok(Number.isNaN(viscosityLog10(100)));
  assert.ok(Number.isNaN(viscosityLog10(Number.NaN)));
  assert.ok(viscosityLog10(1550) < viscosityLog10(1450), "viscosity falls as temperature rises");
});

// One-sided wall, d = 4 mm, a = 1.4/(2500·840) = 6.6667e-7 m²/s, r = 3.5/60 = 0.058333 K/s:
// ΔT = r·d²/(2a) = 0.058333 · 1.6e-5 / 1.33333e-6 = 0.7 K. σ = 70e9 · 9e-6 · 0.7 / 0.78 Pa = 0.5653846 MPa.
// Ratio to 50 MPa: 0.01130769.
test("cooling stress against a hand computation", () => {
  close(SODA_LIME_DIFFUSIVITY_M2S, 6.6666667e-7, 1e-6);
  close(coolingDeltaTK(3.5), 0.7, 1e-9);
  close(thermalStressMPa(0.7), 0.5653846, 1e-6);
  close(coolingStressMPa(3.5), 0.5653846, 1e-6);
  close(stressRatio(coolingStressMPa(3.5)), 0.01130769, 1e-6);
  // σ = 630000 Pa/K · 10 K / 0.78 = 8.0769231 MPa.
  close(thermalStressMPa(10), 8.0769231, 1e-6);
  // Thickness doubles → ΔT ×4; the sign of the rate is ignored.
  close(coolingDeltaTK(-3.5, 0.008), 2.8, 1e-9);
});

// Zones 605/545/500 vs 600/550/500: d = 5, −5, 0 → RMS sqrt(50/3) = 4.0824829; score 1 − 4.0824829/25 = 0.8367007.
test("annealing profile: RMS deviation, monotonic decrease, score", () => {
  close(annealingRmsDeviationC(605, 545, 500), 4.0824829);
  assert.is(annealingRmsDeviationC(600, 550, 500), 0);
  assert.is(annealingMonotonic(605, 545, 500), 1);
  assert.is(annealingMonotonic(600, 560, 570), 0);
  assert.is(annealingMonotonic(600, 600, 500), 0);
  assert.ok(Number.isNaN(annealingMonotonic(600, Number.NaN, 500)));
  close(annealingScore(4.0824829, 1), 0.8367007);
  assert.is(annealingScore(4, 0), 0);
  assert.is(annealingScore(30, 1), 0);
  assert.is(annealingScore(0, 1), 1);
});

test("thermal gradient, in-band fraction and stability index", () => {
  assert.is(thermalGradientC(1500, 320), 1180);
  assert.ok(Number.isNaN(thermalGradientC(Number.NaN, 320)));
  assert.is(inBandFraction(Float64Array.of(1, 3, 4, 6, 7), 5, 3, 6), 0.6);
  assert.is(inBandFraction(Float64Array.of(1, 3, 4, 6, 7), 2, 3, 6), 0.5);
  assert.ok(Number.isNaN(inBandFraction(new Float64Array(0), 0, 3, 6)));
  assert.is(stabilityIndex([1, 0.5, Number.NaN]), 0.75);
  assert.ok(Number.isNaN(stabilityIndex([Number.NaN])));
});

test("domain features from the default dictionary, through the extractor", () => {
  const config = defaultConfig();
  const stage = FeatureStage.fromConfig(config);
  const now = T0 + 600_000;
  const set: Record<string, number> = {
    furnace_temperature: 1000,
    mold_temperature: 320,
    annealing_zone1: 605,
    annealing_zone2: 545,
    annealing_zone3: 500,
    cooling_rate: 3.5,
  };
  stage.push(Object.entries(set).map(([tag, v]) => sample(tag, now, v)));
  // belt_speed: two points in band, two out → 0.5. Key tags with data: the six above (furnace 1000 is out of its
  // band 1450–1550 → 0; the others in band → 1) and belt_speed 0.5: (0 + 5·1 + 0.5)/7.
  stage.push([100, 150, 160, 200].map((v, i) => sample("belt_speed", now - 3000 + i * 1000, v)));
  // humidity is an environment tag: out of band, but not part of the stability index.
  stage.push([sample("humidity", now, 95)]);
  const fv = stage.compute(now);
  const d = (n: string) => fv.values[stage.extractor.indexOf(`domain.${n}`)]!;
  close(d("viscosity_log10"), 3.204459);
  close(d("gradient_furnace_mold_c"), 680);
  close(d("gradient_mold_lehr_c"), 285);
  close(d("gradient_lehr_c"), 105);
  close(d("annealing_rms_dev_c"), 4.0824829);
  assert.is(d("annealing_monotonic"), 1);
  close(d("annealing_score"), 0.8367007);
  close(d("cooling_dt_k"), 0.7);
  close(d("cooling_stress_mpa"), 0.5653846);
  close(d("cooling_stress_ratio"), 0.01130769);
  close(d("stability_index"), 5.5 / 7);
});

// ── stable order ────────────────────────────────────────────────────────────────────────────────────────────

test("feature names: stable across calls and instances, fixed positions, one block per tag then domain", () => {
  const a = new FeatureExtractor(DEFAULT_TAGS);
  const b = new FeatureExtractor(structuredClone(DEFAULT_TAGS));
  const w = new TagWindows(DEFAULT_TAGS, { windowS: 600 });
  const v1 = a.compute(w, T0);
  const v2 = a.compute(w, T0 + 1000);
  assert.is(v1.names, v2.names, "the same array every call");
  assert.is(v1.names, a.names);
  assert.ok(Object.isFrozen(a.names));
  assert.equal([...a.names], [...b.names]);
  assert.is(PER_TAG_FEATURES.length, 17);
  assert.is(DOMAIN_FEATURES.length, 11);
  assert.is(a.names.length, 15 * 17 + 11);
  assert.is(v1.values.length, a.names.length);
  assert.ok(v1.values instanceof Float32Array);
  // Positions pinned: models trained on these vectors depend on them.
  assert.is(a.indexOf("batch_flow.mean"), 0);
  assert.is(a.indexOf("batch_flow.in_band"), 16);
  assert.is(a.indexOf("furnace_temperature.mean"), 17);
  assert.is(a.indexOf("furnace_temperature.slope"), 26);
  assert.is(a.indexOf("humidity.in_band"), 254);
  assert.is(a.indexOf("domain.viscosity_log10"), 255);
  assert.is(a.indexOf("domain.stability_index"), 265);
  assert.is(a.indexOf("nope.mean"), -1);
  assert.equal(PER_TAG_FEATURES.slice(0, 4), ["mean", "std", "min", "max"]);
  assert.is(a.names[a.indexOf("furnace_temperature.p95")], "furnace_temperature.p95");
});

test("compute with a reused output array fills it and allocates none", () => {
  const tags = [tagCfg("x")];
  const w = new TagWindows(tags, { windowS: 60 });
  w.push(sample("x", T0, 4));
  const fx = new FeatureExtractor(tags, { windowS: 60 });
  const out = new Float32Array(fx.size);
  const fv = fx.compute(w, T0, out);
  assert.is(fv.values, out);
  assert.is(out[fx.indexOf("x.mean")], 4);
  assert.throws(() => fx.compute(w, T0, new Float32Array(fx.size - 1)), RangeError);
});

// ── windows: ordering, alignment, memory ─────────────────────────────────────────────────────────────────────

function windowPoints(w: TagWindows, tag: string, from: number, to: number) {
  const ts = new Float64Array(w.maxCapacity());
  const v = new Float64Array(w.maxCapacity());
  const n = w.copyWindow(tag, from, to, ts, v);
  return { ts: [...ts.subarray(0, n)], v: [...v.subarray(0, n)] };
}

test("out-of-order samples are inserted in time order; same timestamp replaces; too old is dropped and counted", () => {
  const w = new TagWindows([tagCfg("x")], { windowS: 10 });
  w.push(sample("x", T0 + 1000, 1));
  w.push(sample("x", T0 + 3000, 3));
  assert.ok(w.push(sample("x", T0 + 2000, 2)));
  w.push(sample("x", T0 + 3000, 33));
  // Retention = 10 s window + 3 s stale horizon behind the newest (3000): older than −10 s is dropped.
  assert.not.ok(w.push(sample("x", T0 - 10_001, 9)));
  assert.ok(w.push(sample("x", T0 - 10_000, 0)));
  const p = windowPoints(w, "x", -Infinity, Infinity);
  assert.equal(
    p.ts.map((t) => t - T0),
    [-10_000, 1000, 2000, 3000],
  );
  assert.equal(p.v, [0, 1, 2, 33]);
  const c = w.counters("x")!;
  assert.is(c.insertedLate, 2);
  assert.is(c.replaced, 1);
  assert.is(c.droppedLate, 1);
  assert.is(c.accepted, 5);
  assert.equal(w.latest("x"), { ts: T0 + 3000, value: 33 });
});

test("invalid, bad-quality and unknown-tag samples are dropped and counted", () => {
  const w = new TagWindows([tagCfg("x")], { windowS: 10 });
  assert.not.ok(w.push(sample("x", T0, Number.NaN)));
  assert.not.ok(w.push(sample("x", Number.NaN, 1)));
  assert.not.ok(w.push(sample("x", T0, 1, "bad")));
  assert.ok(w.push(sample("x", T0, 1, "uncertain")));
  assert.not.ok(w.push(sample("zzz", T0, 1)));
  assert.is(w.pushMany([sample("x", T0 + 1, 2), sample("zzz", T0, 1)]), 1);
  const c = w.counters("x")!;
  assert.is(c.droppedInvalid, 2);
  assert.is(c.droppedBad, 1);
  assert.is(w.droppedUnknown(), 2);
  assert.is(w.latest("zzz"), undefined);
  assert.is(w.counters("zzz"), undefined);
  const ok = new TagWindows([tagCfg("x")], { windowS: 10, acceptBadQuality: true });
  assert.ok(ok.push(sample("x", T0, 1, "bad")));
});

test("late inserts across the ring's wrap-around keep every in-window sample, in order", () => {
  // Deterministic jittered arrival (LCG): each sample arrives up to 5 s late. Everything within the window of the
  // newest must be present, sorted, with its value.
  const w = new TagWindows([tagCfg("x")], { windowS: 20 });
  let r = 12345;
  const rnd = () => {
    r = (r * 1103515245 + 12345) % 2147483648;
    return r / 2147483648;
  };
  const pending: number[] = [];
  let newest = -Infinity;
  for (let s = 0; s < 2000; s++) {
    pending.push(s);
    // Release a random subset of what is pending: out of order, bounded lateness.
    for (let i = pending.length - 1; i >= 0; i--) {
      const t = pending[i]!;
      if (rnd() < 0.4 || s - t >= 5) {
        w.push(sample("x", T0 + t * 1000, t * 10));
        newest = Math.max(newest, t);
        pending.splice(i, 1);
      }
    }
  }
  const p = windowPoints(w, "x", T0 + (newest - 20) * 1000, T0 + newest * 1000);
  const expected: number[] = [];
  for (let t = newest - 19; t <= newest; t++) if (!pending.includes(t)) expected.push(t);
  assert.equal(
    p.ts.map((t) => (t - T0) / 1000),
    expected,
  );
  assert.equal(
    p.v,
    expected.map((t) => t * 10),
  );
  assert.ok(w.counters("x")!.insertedLate > 100, "the test did exercise late inserts");
  assert.is(w.counters("x")!.truncated, 0);
});

test("aligned: last value carried forward on a shared grid, NaN past the max age or before any data", () => {
  const tags = [tagCfg("a"), tagCfg("b")];
  const w = new TagWindows(tags, { windowS: 10 });
  w.push(sample("a", T0 + 1000, 1));
  w.push(sample("a", T0 + 2000, 2));
  w.push(sample("a", T0 + 5000, 3));
  w.push(sample("b", T0 + 3500, 7));
  // Grid: 6 points ending at T0+6000, step 1 s → T0+1000 … T0+6000.
  const grid = gridTimes(T0 + 6000, 6000, 1000);
  assert.equal(
    [...grid].map((t) => t - T0),
    [1000, 2000, 3000, 4000, 5000, 6000],
  );
  const a = w.aligned("a", T0 + 6000, 6000, 1000, { maxAgeMs: 1500 });
  // 3000: value from 2000 (age 1000) ok; 4000: age 2000 > 1500 → NaN.
  assert.equal([...a], [1, 2, 2, Number.NaN, 3, 3]);
  // Default max age: 3 × period = 3000 ms → 4000 keeps 2 (age 2000).
  assert.equal([...w.aligned("a", T0 + 6000, 6000, 1000)], [1, 2, 2, 2, 3, 3]);
  const b = w.aligned("b", T0 + 6000, 6000, 1000);
  assert.equal([...b], [Number.NaN, Number.NaN, Number.NaN, 7, 7, 7]);
  assert.equal([...w.aligned("unknown", T0 + 6000, 6000, 1000)], Array(6).fill(Number.NaN));
  const m = w.alignedMatrix(T0 + 6000, 6000, 1000);
  assert.equal([...m.ts], [...grid]);
  assert.equal(m.tags, ["a", "b"]);
  assert.equal([...m.values], [1, 2, 2, 2, 3, 3, ...b]);
  const out = new Float64Array(6);
  assert.is(w.aligned("a", T0 + 6000, 6000, 1000, { out }), out);
  assert.is(w.valueAt("a", T0 + 4500), 2);
  assert.ok(Number.isNaN(w.valueAt("a", T0 + 4500, 2000)));
});

test("bounded memory: 100 000 samples at the nominal rate keep the ring at its initial size", () => {
  const w = new TagWindows([tagCfg("x")], { windowS: 600 });
  const initial = w.capacity("x");
  assert.ok(initial >= 603 && initial <= 1024, `initial capacity ${initial}`);
  for (let s = 0; s < 100_000; s++) w.push(sample("x", T0 + s * 1000, s));
  assert.is(w.capacity("x"), initial);
  assert.ok(w.size("x") <= initial);
  // Still covers the window plus the stale horizon.
  const p = windowPoints(w, "x", -Infinity, Infinity);
  assert.ok(p.ts[0]! <= T0 + (99_999 - 603) * 1000, "keeps at least window + stale horizon");
  assert.is(p.ts.at(-1), T0 + 99_999 * 1000);
  assert.is(w.counters("x")!.truncated, 0);
});

test("bounded memory: a burst far above the nominal rate grows the ring only up to its cap", () => {
  const w = new TagWindows([tagCfg("x")], { windowS: 600, maxPointsPerTag: 5000 });
  for (let i = 0; i < 200_000; i++) w.push(sample("x", T0 + i * 5, i)); // 200 Hz for 1000 s
  assert.is(w.capacity("x"), 5000);
  assert.is(w.size("x"), 5000);
  assert.is(w.maxCapacity(), 5000);
  assert.ok(w.counters("x")!.truncated > 0, "the cap's losses are counted");
  // The newest points are the ones kept.
  assert.equal(w.latest("x"), { ts: T0 + 199_999 * 5, value: 199_999 });
  // And features still compute over what is kept.
  const fx = new FeatureExtractor([tagCfg("x")], { windowS: 600 });
  const fv = fx.compute(w, T0 + 199_999 * 5);
  assert.is(fv.values[fx.indexOf("x.count")], 5000);
});

test("FeatureStage wires windows and extractor from the config", () => {
  const config = defaultConfig();
  const stage = FeatureStage.fromConfig(config);
  // Compile-time contract: the stage fits the pipeline's features port as it is.
  const port: PipelinePorts["features"] = stage;
  assert.ok(port);
  assert.is(stage.windows.windowMs, config.pipeline.window_s * 1000);
  assert.is(stage.extractor.windowMs, config.pipeline.window_s * 1000);
  assert.is(stage.push([sample("furnace_temperature", T0, 1500), sample("nope", T0, 1)]), 1);
  const fv = stage.compute(T0);
  assert.is(fv.ts, T0);
  assert.is(fv.names, stage.names);
  assert.is(fv.values[stage.extractor.indexOf("furnace_temperature.last")], 1500);
});

test.run();
