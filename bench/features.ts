/*
 * Feature extraction cost at the pipeline's load: 15 default tags at their configured periods, 600 s window, one
 * compute per simulated 1 s tick. Prints the cost of pushing samples and p50/p99 of one compute call.
 * Run: npx tsx bench/features.ts [ticks]
 */
import { defaultConfig } from "../src/config/index.js";
import type { Sample } from "../src/core/types.js";
import { FeatureStage } from "../src/features/index.js";
import { quantile, sortedCopy } from "./lib/index.js";

const ticks = Number(process.argv[2] ?? 5000);
const warmup = 500;
const config = defaultConfig();
const tags = config.tags;
const t0 = Date.UTC(2026, 0, 1);

// Deterministic noise so runs compare.
let r = 42;
const rnd = () => {
  r = (r * 1103515245 + 12345) % 2147483648;
  return r / 2147483648 - 0.5;
};
let seq = 0;
const mid = (t: (typeof tags)[number]) => (t.normal.min + t.normal.max) / 2;
const spread = (t: (typeof tags)[number]) => (t.normal.max - t.normal.min) / 4;

/** Samples due in second s (each tag at its period_ms). */
function samplesAt(s: number, out: Sample[]): Sample[] {
  out.length = 0;
  const ts = t0 + s * 1000;
  for (const t of tags) {
    if (ts % t.period_ms !== 0) continue;
    const value = mid(t) + spread(t) * (Math.sin(s / 120) + rnd());
    out.push({ tag: t.id, ts, value, quality: "good", source: "bench", seq: seq++ });
  }
  return out;
}

const pct = (xs: number[], p: number): number => quantile(sortedCopy(xs), p);
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;

// 1) Bulk push: one hour of history, then the live ticks.
const stage = FeatureStage.fromConfig(config);
const buf: Sample[] = [];
const history: Sample[] = [];
for (let s = 0; s < 3600; s++) history.push(...samplesAt(s, buf));
let a = performance.now();
stage.push(history);
const bulkMs = performance.now() - a;
console.log(
  `push (bulk, in order): ${history.length} samples in ${bulkMs.toFixed(2)} ms = ${((bulkMs * 1e6) / history.length).toFixed(0)} ns/sample`,
);

// 2) Late samples, worst case: the last ten minutes again, 0.5 s earlier, replayed newest first (every insert
// shifts the points after it).
const lateStage = FeatureStage.fromConfig(config);
lateStage.push(history);
const lateSamples = history
  .filter((x) => x.ts > t0 + 3000 * 1000)
  .map((x) => ({ ...x, ts: x.ts - 500, seq: seq++ }))
  .reverse();
a = performance.now();
lateStage.push(lateSamples);
const lateMs = performance.now() - a;
console.log(
  `push (late, worst case: window replayed newest first): ${lateSamples.length} samples, ${((lateMs * 1e6) / lateSamples.length).toFixed(0)} ns/sample`,
);

// 3) Live ticks: push one second of samples, compute one vector.
const compute: number[] = [];
const push: number[] = [];
const out = new Float32Array(stage.extractor.size);
let pushed = 0;
for (let i = 0; i < ticks; i++) {
  const s = 3600 + i;
  const batch = samplesAt(s, buf);
  pushed += batch.length;
  a = performance.now();
  stage.push(batch);
  const b = performance.now();
  stage.compute(t0 + s * 1000, out);
  const c = performance.now();
  if (i >= warmup) {
    push.push(b - a);
    compute.push(c - b);
  }
}
console.log(
  `compute (${tags.length} tags, ${config.pipeline.window_s} s window, ${stage.extractor.size} features): ` +
    `p50 ${us(pct(compute, 0.5))}  p99 ${us(pct(compute, 0.99))}  p99.9 ${us(pct(compute, 0.999))}  ` +
    `max ${us(Math.max(...compute))}  over ${compute.length} ticks, ${compute.filter((x) => x > 1).length} over 1 ms`,
);
console.log(
  `push per tick (${(pushed / ticks).toFixed(1)} samples on average): p50 ${us(pct(push, 0.5))}  p99 ${us(pct(push, 0.99))}`,
);

// Noise floor: a fixed arithmetic loop (no allocation) timed the same way. Spikes it shows too are the machine (other
// processes, GC of the bench's own sample objects), not the feature code.
const floor: number[] = [];
const junk = new Float64Array(1);
for (let i = 0; i < compute.length; i++) {
  a = performance.now();
  let x = 0;
  for (let k = 0; k < 150_000; k++) x += Math.sqrt(k);
  junk[0] = x;
  floor.push(performance.now() - a);
}
console.log(
  `noise floor (fixed loop): p50 ${us(pct(floor, 0.5))}  p99 ${us(pct(floor, 0.99))}  p99.9 ${us(pct(floor, 0.999))}  ` +
    `max ${us(Math.max(...floor))}`,
);

// 4) The aligned matrix a sequence model would read: every tag on a 1 s grid over the window.
const aligned: number[] = [];
for (let i = 0; i < 500; i++) {
  a = performance.now();
  stage.windows.alignedMatrix(t0 + (3600 + ticks - 1) * 1000, config.pipeline.window_s * 1000, 1000);
  aligned.push(performance.now() - a);
}
console.log(`alignedMatrix (15 × 600): p50 ${us(pct(aligned, 0.5))}  p99 ${us(pct(aligned, 0.99))}`);
