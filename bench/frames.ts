/*
 * MIK-1 frames at 1920×1080: frames/s and per-frame latency of FramePreprocessor.run (magic + header checks, full
 * decode with failOn, resize to the model input, float32 NCHW normalisation) next to bare sharp in the same run
 * (decode + resize to the same size to raw 8-bit: the floor), and of the whole push path FrameIntake.submit
 * (+ thumbnail, original written and fsync'd, LMDB commit fsync'd). Inputs are twin renders (MIK-1 scenes, noise,
 * defects) as JPEG q90 and PNG, grey and RGB. One frame at a time, and two at a time (max_concurrent_decodes).
 *
 * Usage: npx tsx bench/frames.ts [--rounds 3] [--n 30]
 * Prints figures; asserts nothing. Target from issue 4: preprocessing ≥ 80 % of bare sharp.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import sharp from "sharp";
import { defaultConfig } from "../src/config/validate.js";
import { FrameIntake, FramePreprocessor, resolveFramesConfig } from "../src/ingest/frames/index.js";
import { Store } from "../src/storage/index.js";
import { renderInspection, sampleInspection } from "../src/twin/images/index.js";
import { best, median, ms, rate, summarize, table } from "./lib/index.js";

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? def) : def;
};
const rounds = Number(arg("rounds", "3"));
const n = Number(arg("n", "30"));
if (!(rounds >= 1 && n >= 4)) {
  process.stderr.write("usage: npx tsx bench/frames.ts [--rounds N ≥ 1] [--n N ≥ 4]\n");
  process.exit(2);
}
const W = 1920;
const H = 1080;
const config = resolveFramesConfig({ enabled: true, model_input: { width: 224, height: 224, channels: 3 } });
const pre = new FramePreprocessor(config);

function bare(buf: Buffer): Promise<Buffer> {
  return sharp(buf).resize(224, 224, { fit: "fill" }).removeAlpha().toColourspace("srgb").raw().toBuffer();
}

interface Run {
  perS: number;
  p50: number;
  p99: number;
}

async function measure(inputs: Buffer[], conc: number, one: (b: Buffer) => Promise<unknown>): Promise<Run> {
  for (let i = 0; i < 3; i++) await one(inputs[i % inputs.length]!);
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) {
        const b = inputs[next++ % inputs.length]!;
        const s = performance.now();
        await one(b);
        lat.push(performance.now() - s);
      }
    }),
  );
  const wall = performance.now() - t0;
  const sm = summarize(lat);
  return { perS: (n / wall) * 1000, p50: sm.p50, p99: sm.p99 };
}

function fold(runs: Run[]): Run {
  return {
    perS: best(
      runs.map((r) => r.perS),
      true,
    ),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
  };
}

const dataDir = mkdtempSync(join(tmpdir(), "glassd-bench-frames-"));
const store = new Store({ dataDir, storage: defaultConfig().storage, autoRetention: false });
await store.open();
const intake = new FrameIntake({ config, dataDir, store });
await intake.start(new AbortController().signal);

process.stdout.write(
  `MIK-1 frame preprocessing bench: ${W}×${H} → 224×224×3 float32, ${rounds} round(s) × ${n} frames; sharp ` +
    `${sharp.versions.sharp}, libvips ${sharp.versions.vips}, sharp threads ${sharp.concurrency()}\n\n`,
);
const rows: (string | number)[][] = [];
const rss0 = process.memoryUsage().rss;
let rssPeak = rss0;
for (const [format, color] of [
  ["jpeg", "gray"],
  ["jpeg", "rgb"],
  ["png", "gray"],
] as const) {
  const inputs: Buffer[] = [];
  for (let i = 0; i < 4; i++)
    inputs.push(
      (await renderInspection(sampleInspection(1, i + 1), { width: W, height: H, format, color, quality: 90 })).image,
    );
  const kib = inputs.reduce((a, b) => a + b.length, 0) / inputs.length / 1024;
  for (const conc of [1, 2]) {
    const b: Run[] = [];
    const g: Run[] = [];
    const full: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      b.push(await measure(inputs, conc, bare));
      g.push(await measure(inputs, conc, (x) => pre.run(x)));
      full.push(await measure(inputs, conc, (x) => intake.submit(x, {})));
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
    const fb = fold(b);
    const fg = fold(g);
    const ff = fold(full);
    const label = `${format} ${color} ${kib.toFixed(0)} KiB, ×${conc}`;
    rows.push([label, "bare sharp", rate(fb.perS), ms(fb.p50, 1), ms(fb.p99, 1), ""]);
    rows.push([
      "",
      "glassd preprocess",
      rate(fg.perS),
      ms(fg.p50, 1),
      ms(fg.p99, 1),
      `${((fg.perS / fb.perS) * 100).toFixed(0)} % of bare`,
    ]);
    rows.push([
      "",
      "glassd intake (stored)",
      rate(ff.perS),
      ms(ff.p50, 1),
      ms(ff.p99, 1),
      `${((ff.perS / fb.perS) * 100).toFixed(0)} % of bare`,
    ]);
  }
}
process.stdout.write(
  table(["input, concurrency", "what", "frames/s (best round)", "p50 ms", "p99 ms", ""], rows, {
    align: ["l", "l", "r", "r", "r", "l"],
  }),
);
const s = intake.stats();
process.stdout.write(
  `\nbare sharp = decode + resize to 224×224×3 raw 8-bit (no checks, no float conversion).\n` +
    `glassd preprocess = FramePreprocessor.run: magic + header checks, decode with failOn, resize, NCHW float32.\n` +
    `glassd intake = FrameIntake.submit: preprocess + 160-px JPEG thumbnail + original fsync'd + LMDB commit.\n` +
    `RSS ${(rss0 / 2 ** 20).toFixed(0)} MiB at start, peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB; ` +
    `${s.stored_frames} frames stored, ${(s.stored_bytes / 2 ** 20).toFixed(0)} MiB.\n`,
);
await intake.stop();
await store.close();
rmSync(dataDir, { recursive: true, force: true });
