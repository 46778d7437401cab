/*
 * MIK-1 image rendering: images/s and per-image latency of renderInspection (scene, defects, masks, label map,
 * sensor noise, encoding) at 512×512 and 1920×1080, PNG and JPEG, next to a bare sharp baseline in the same run:
 * sharp encoding a same-size raw buffer of noise with the same settings (no drawing, no masks) — the floor.
 * The baseline's noise has the renders' level (grey 180 ± 3), so PNG's zlib sees a similar entropy. One image at a
 * time (the latency a dataset writer or the plant's frame source sees), after a short warm-up.
 *
 * Usage: npx tsx bench/twin-images.ts [--rounds 3] [--scale 1] [--color gray|rgb]
 *   --scale multiplies the image counts (default 1: 40 at 512×512, 12 at 1920×1080 per round).
 * Prints figures; asserts nothing.
 */
import { performance } from "node:perf_hooks";
import sharp from "sharp";
import { type RenderOptions, renderInspection, sampleInspection } from "../src/twin/images/index.js";
import { Rng } from "../src/twin/rng.js";
import { best, median, ms, rate, summarize, table } from "./lib/index.js";

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? (argv[i + 1] ?? def) : def;
};
const rounds = Number(arg("rounds", "3"));
const scale = Number(arg("scale", "1"));
const color = arg("color", "gray") as "gray" | "rgb";
if (!(rounds >= 1 && scale > 0 && (color === "gray" || color === "rgb"))) {
  process.stderr.write("usage: npx tsx bench/twin-images.ts [--rounds N ≥ 1] [--scale X > 0] [--color gray|rgb]\n");
  process.exit(2);
}
const channels = color === "rgb" ? 3 : 1;

const SIZES = [
  { w: 512, h: 512, n: Math.max(5, Math.round(40 * scale)) },
  { w: 1920, h: 1080, n: Math.max(3, Math.round(12 * scale)) },
];
const FORMATS = ["png", "jpeg"] as const;
const QUALITY = 90;
const WARMUP = 3;

function noiseBuffer(w: number, h: number): Buffer {
  const rng = new Rng(1);
  const b = Buffer.allocUnsafe(w * h * channels);
  for (let i = 0; i < b.length; i++) b[i] = Math.max(0, Math.min(255, Math.round(180 + 3 * rng.gaussian())));
  return b;
}

function encodeBare(buf: Buffer, w: number, h: number, format: "png" | "jpeg"): Promise<Buffer> {
  let img = sharp(buf, { raw: { width: w, height: h, channels } });
  if (channels === 1) img = img.toColourspace("b-w");
  return format === "png" ? img.png({ compressionLevel: 6 }).toBuffer() : img.jpeg({ quality: QUALITY }).toBuffer();
}

interface Run {
  perS: number;
  p50: number;
  p99: number;
  bytes: number;
}

async function measure(n: number, one: (i: number) => Promise<number>): Promise<Run> {
  for (let i = 0; i < WARMUP; i++) await one(1_000_000 + i);
  const lat = new Float64Array(n);
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    bytes += await one(i + 1);
    lat[i] = performance.now() - s;
  }
  const wall = performance.now() - t0;
  const sm = summarize(lat);
  return { perS: (n / wall) * 1000, p50: sm.p50, p99: sm.p99, bytes: bytes / n };
}

process.stdout.write(
  `MIK-1 render bench: ${color}, ${rounds} round(s), one image at a time; sharp ${sharp.versions.sharp}, ` +
    `libvips ${sharp.versions.vips}, sharp threads ${sharp.concurrency()}\n\n`,
);
const rows: (string | number)[][] = [];
for (const { w, h, n } of SIZES) {
  const raw = noiseBuffer(w, h);
  for (const format of [...FORMATS, "raw" as const]) {
    const opts: RenderOptions = { width: w, height: h, format, color, quality: QUALITY };
    const glassd: Run[] = [];
    const bare: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      glassd.push(
        await measure(n, async (i) => {
          const res = await renderInspection(sampleInspection(r, i, { overlap: 0.2 }), opts);
          return res.image.length;
        }),
      );
      if (format !== "raw") bare.push(await measure(n, async () => (await encodeBare(raw, w, h, format)).length));
    }
    const g = {
      perS: best(
        glassd.map((x) => x.perS),
        true,
      ),
      p50: median(glassd.map((x) => x.p50)),
      p99: median(glassd.map((x) => x.p99)),
      bytes: median(glassd.map((x) => x.bytes)),
    };
    const label = `${w}×${h} ${format === "raw" ? "render only (no encoding)" : format}`;
    rows.push([label, "glassd", rate(g.perS), ms(g.p50, 1), ms(g.p99, 1), `${(g.bytes / 1024).toFixed(0)} KiB`, ""]);
    if (bare.length) {
      const b = {
        perS: best(
          bare.map((x) => x.perS),
          true,
        ),
        p50: median(bare.map((x) => x.p50)),
        p99: median(bare.map((x) => x.p99)),
        bytes: median(bare.map((x) => x.bytes)),
      };
      rows.push([
        "",
        "bare sharp",
        rate(b.perS),
        ms(b.p50, 1),
        ms(b.p99, 1),
        `${(b.bytes / 1024).toFixed(0)} KiB`,
        `glassd at ${((g.perS / b.perS) * 100).toFixed(0)} % of bare`,
      ]);
    }
  }
}
process.stdout.write(
  table(["size, format", "what", "images/s (best round)", "p50 ms", "p99 ms", "size", ""], rows, {
    align: ["l", "l", "r", "r", "r", "r", "l"],
  }),
);
process.stdout.write(
  "\nglassd = renderInspection: scene + defects + per-class masks + label map + boxes + noise + encoding.\n" +
    "bare sharp = sharp encoding a same-size raw noise buffer with the same settings: the floor for the encoding.\n",
);
