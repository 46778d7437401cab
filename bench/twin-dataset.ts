/*
 * `glassd twin dataset` throughput: simulated hours per wall second and × real time for sensor-only generation
 * (sensors + validation + FeatureStage rows + graph snapshots + labels, all written to .npy), next to the raw
 * baseline measured in the same run: the twin's bare step loop (TwinLine.advance hour by hour with the same dataset
 * mix attached, nothing validated, computed or written). Then images/s of a run with images (256×256 by default),
 * and the process's peak memory. Issue 3 asks for ≥ 1000× real time sensor-only.
 *
 * Usage: npx tsx bench/twin-dataset.ts [--hours 24] [--images 200] [--image-size 256x256] [--rounds 2]
 * Prints figures; asserts nothing. Writes into a temp directory and removes it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../src/config/validate.js";
import { datasetMix, generateDataset } from "../src/twin/dataset/index.js";
import { TwinLine, twinOptionsFromConfig } from "../src/twin/index.js";
import { ScenarioRunner } from "../src/twin/scenario/index.js";
import { best, table } from "./lib/index.js";

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? def) : def;
};
const hours = Number(arg("hours", "24"));
const nImages = Number(arg("images", "200"));
const rounds = Number(arg("rounds", "2"));
const size = /^(\d+)x(\d+)$/.exec(arg("image-size", "256x256"));
if (!(hours > 0.2 && nImages >= 0 && rounds >= 1 && size)) {
  process.stderr.write(
    "usage: npx tsx bench/twin-dataset.ts [--hours H > 0.2] [--images N] [--image-size WxH] [--rounds N]\n",
  );
  process.exit(2);
}
const [imgW, imgH] = [Number(size[1]), Number(size[2])];
const config = defaultConfig();
const simS = hours * 3600;
const root = mkdtempSync(join(tmpdir(), "glassd-bench-dataset-"));
let peakRss = 0;
const sampleRss = () => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
const rssTimer = setInterval(sampleRss, 50);

function bareLoop(seed: number): number {
  const twin = new TwinLine({ ...twinOptionsFromConfig(config), seed, startTs: Date.UTC(2026, 0, 1) });
  new ScenarioRunner(datasetMix(seed, hours, config.tags)).attach(twin);
  const t0 = performance.now();
  let samples = 0;
  for (let h = 0; h < Math.ceil(hours); h++) samples += twin.advance(Math.min(1, hours - h) * 3_600_000).samples.length;
  const wall = (performance.now() - t0) / 1000;
  sampleRss();
  if (samples === 0) throw new Error("the twin produced no samples");
  return wall;
}

async function datasetRun(seed: number, images: number): Promise<{ wall: number; simWall: number; imgWall: number }> {
  const out = join(root, `r${seed}-${images}`);
  const t0 = performance.now();
  const m = (await generateDataset({
    out,
    hours: images > 0 ? Math.min(hours, 4) : hours,
    seed,
    images,
    imageWidth: imgW,
    imageHeight: imgH,
  })) as { sim_wall_s: number; images_wall_s: number };
  const wall = (performance.now() - t0) / 1000;
  rmSync(out, { recursive: true, force: true });
  sampleRss();
  return { wall, simWall: m.sim_wall_s, imgWall: m.images_wall_s };
}

process.stdout.write(
  `twin dataset bench: ${hours} simulated h, ${config.tags.length} tags, window 600 s, stride 60 s, ${rounds} round(s)\n\n`,
);
// Warm-up (JIT, the graph calibration run is cached per process afterwards).
await datasetRun(99, 0);
bareLoop(99);

const bare: number[] = [];
const sensors: number[] = [];
const sensorsTotal: number[] = [];
for (let r = 0; r < rounds; r++) {
  bare.push(bareLoop(r + 1));
  const d = await datasetRun(r + 1, 0);
  sensors.push(d.simWall);
  sensorsTotal.push(d.wall);
}
const row = (what: string, wall: number) => [
  what,
  wall.toFixed(2),
  (hours / wall).toFixed(2),
  `${Math.round(simS / wall).toLocaleString("en")}×`,
];
const bBest = best(bare, false);
const sBest = best(sensors, false);
const tBest = best(sensorsTotal, false);
process.stdout.write(
  table(
    ["what (best round)", "wall s", "sim-h / wall-s", "× real time"],
    [
      row("baseline: bare twin step loop + mix, nothing written", bBest),
      row("dataset, sensor-only: simulation + validation + features + graph + .npy", sBest),
      row("dataset, sensor-only, whole command (incl. labels, manifest)", tBest),
    ],
  ),
);
process.stdout.write(`  dataset at ${((bBest / sBest) * 100).toFixed(0)} % of the bare loop's speed\n\n`);

if (nImages > 0) {
  const imgHours = Math.min(hours, 4);
  const d = await datasetRun(7, nImages);
  process.stdout.write(
    table(
      ["with images", "images", "size", "image phase s", "images/s"],
      [[`${imgHours} h + images`, nImages, `${imgW}×${imgH}`, d.imgWall.toFixed(2), (nImages / d.imgWall).toFixed(1)]],
    ),
  );
}
clearInterval(rssTimer);
sampleRss();
process.stdout.write(`\npeak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB (whole process, all runs)\n`);
rmSync(root, { recursive: true, force: true });
