/*
 * Vision end to end at the MIK-1's full resolution: 1920×1080 JPEG frames of inspected items (rendered by the twin,
 * with defects) through the daemon's path — FramePreprocessor (sharp decode + resize + normalise to the vision
 * model's input, as the intake does), the registry running the shipped vision model (worker isolation, as the
 * daemon), and ModelStage.onFrame's postprocess (per-class masks → defects with boxes, mm², RLE). Figures: frames/s
 * and latency percentiles, one frame at a time and two in flight (2 cores), next to the raw baseline measured in the
 * same run on the same frames: bare sharp decode+resize to the same raw input plus a bare onnxruntime-node
 * `session.run` in the main thread.
 *
 * Usage: npx tsx bench/vision.ts [--frames 24] [--rounds 3]
 * Prints figures; asserts nothing. Targets (stated): ≥ 30 frames/s and p99 < 100 ms on 2 cores.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { defaultConfig } from "../src/config/validate.js";
import { DEFECT_CLASSES, type InspectionEvent } from "../src/core/types.js";
import { ModelRegistry } from "../src/inference/registry.js";
import { ModelStage } from "../src/inference/stage.js";
import { FramePreprocessor } from "../src/ingest/frames/preprocess.js";
import { renderInspection } from "../src/twin/images/index.js";
import { best, median, ms, summarize, table } from "./lib/index.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!(v > 0)) throw new RangeError(`--${name} must be a positive number`);
  return v;
}
const N = arg("frames", 24);
const ROUNDS = arg("rounds", 3);
const MODELS = fileURLToPath(new URL("../models", import.meta.url));

const config = defaultConfig();
const registry = new ModelRegistry({
  dirs: [MODELS],
  threads: 1,
  isolation: "worker",
  queue: { capacity: 8, policy: "reject_newest", max_batch: 1 },
  queueByModel: { vision: { capacity: 8, policy: "drop_oldest", max_batch: 1 } },
  watchIntervalMs: 0,
  onUpdate: "ignore",
  shadowAgreementAbs: 0,
});
await registry.start();
const vision = registry.snapshot().get("vision");
if (!vision) {
  process.stdout.write(`no vision model in ${MODELS}/manifest.json: ${registry.unavailableReason("vision")}\n`);
  await registry.stop();
  process.exit(0);
}
const [, C, H, W] = vision.ref.inputs[0]!.shape as [number, number, number, number];
const norm = vision.ref.normalisation as { mean: number[]; std: number[] };
const frames = {
  ...config.frames,
  model_input: { width: W, height: H, channels: C as 1 | 3, mean: norm.mean, std: norm.std, fit: "fill" as const },
};
const pre = new FramePreprocessor(frames);
const stage = new ModelStage({
  registry,
  tags: config.tags,
  featureNames: [],
  classes: DEFECT_CLASSES,
  pixelSizeMm: 0.1,
  vision: { maskThreshold: 0.5, scoreThreshold: 0.5, minPixels: 4, windowS: 900 },
  risk: { thresholds: {}, hysteresis: 0.01 },
});

// Frames: items with one to three defects of mixed classes, JPEG at 1920×1080 (the MIK-1's resolution).
const jpegs: Buffer[] = [];
for (let i = 0; i < N; i++) {
  const ev: InspectionEvent = {
    item_id: 1000 + i,
    ts: Date.UTC(2026, 0, 1) + i * 4000,
    ok: false,
    defects: Array.from({ length: 1 + (i % 3) }, (_, k) => {
      const cls = DEFECT_CLASSES[(i + 3 * k) % DEFECT_CLASSES.length]!;
      return {
        class: cls,
        size_mm: 2 + ((i * 7 + k) % 9),
        x: 0.3 + 0.15 * k,
        y: 0.35 + 0.1 * (i % 4),
        severity: "major" as const,
      };
    }),
  };
  const r = await renderInspection(ev, { width: 1920, height: 1080, format: "jpeg", quality: 90, seed: 1 });
  jpegs.push(Buffer.from(r.image));
}
const avgKb = jpegs.reduce((a, b) => a + b.length, 0) / jpegs.length / 1024;

// Bare baseline: sharp decode + resize to the same raw input, normalise, and session.run in the main thread.
const session = await ort.InferenceSession.create(readFileSync(join(MODELS, vision.ref.file)), {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: "sequential",
});
const inName = vision.ref.inputs[0]!.name;
async function bare(jpeg: Buffer): Promise<void> {
  let img = sharp(jpeg).resize(W, H, { fit: "fill" });
  if (C === 1) img = img.greyscale();
  const { data } = await img.raw().toBuffer({ resolveWithObject: true });
  const x = new Float32Array(C * H * W);
  for (let p = 0; p < H * W; p++)
    for (let c = 0; c < C; c++)
      x[c * H * W + p] =
        ((data[p * C + c] as number) / 255 - (norm.mean[c] ?? norm.mean[0]!)) / (norm.std[c] ?? norm.std[0]!);
  await session.run({ [inName]: new ort.Tensor("float32", x, [1, C, H, W]) });
}
async function glassd(jpeg: Buffer, i: number): Promise<void> {
  const p = await pre.run(jpeg, "jpeg");
  const r = await stage.onFrame({
    id: i,
    camera: "mik1",
    item_id: i,
    ts: Date.now(),
    original: { width: p.original.width, height: p.original.height },
    tensor: p.tensor,
  });
  if ("status" in r && r.status === "unavailable") throw new Error(`vision: ${r.reason}`);
}

async function measure(fn: (b: Buffer, i: number) => Promise<void>, inFlight: number) {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < jpegs.length) {
      const i = next++;
      const t = performance.now();
      await fn(jpegs[i]!, i);
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const wall = performance.now() - t0;
  return { fps: (jpegs.length / wall) * 1000, s: summarize(lat) };
}

for (let i = 0; i < 3; i++) {
  await glassd(jpegs[i]!, i);
  await bare(jpegs[i]!);
}
process.stdout.write(
  `vision end to end — ${N} frames 1920×1080 JPEG (${avgKb.toFixed(0)} KiB avg) → ${vision.name}@${vision.version} ` +
    `input [1,${C},${H},${W}], ${ROUNDS} rounds; sharp ${sharp.versions.sharp}, onnxruntime-node ${ort.env.versions.node}\n\n`,
);
const rows: (string | number)[][] = [];
for (const inFlight of [1, 2]) {
  const g: Array<{ fps: number; p50: number; p99: number }> = [];
  const b: Array<{ fps: number; p50: number; p99: number }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const x = await measure(glassd, inFlight);
    g.push({ fps: x.fps, p50: x.s.p50, p99: x.s.p99 });
    const y = await measure(async (buf) => bare(buf), inFlight);
    b.push({ fps: y.fps, p50: y.s.p50, p99: y.s.p99 });
  }
  const gf = best(
    g.map((x) => x.fps),
    true,
  );
  const bf = best(
    b.map((x) => x.fps),
    true,
  );
  rows.push([
    `${inFlight} in flight`,
    "glassd (intake preprocess + registry + postprocess)",
    `${gf.toFixed(1)}/s`,
    ms(median(g.map((x) => x.p50)), 1),
    ms(median(g.map((x) => x.p99)), 1),
    `${((gf / bf) * 100).toFixed(0)} %`,
  ]);
  rows.push([
    "",
    "bare sharp + session.run",
    `${bf.toFixed(1)}/s`,
    ms(median(b.map((x) => x.p50)), 1),
    ms(median(b.map((x) => x.p99)), 1),
    "100 %",
  ]);
}
process.stdout.write(`${table(["", "path", "frames/s (best)", "p50 ms", "p99 ms", "of bare"], rows)}\n`);
process.stdout.write("\ntargets: ≥ 30 frames/s, p99 < 100 ms (2 cores)\n");
await registry.stop();
