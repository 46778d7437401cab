/*
 * `glassd twin render`: writes MIK-1 images with their masks, label maps, overlays and a JSON per image, for a person
 * to look at (and a quick dataset). Events come from the built-in sampler (every class in any 8 consecutive items)
 * or from a file of InspectionEvents (a JSON array, or one JSON object per line).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GlassdError } from "../../core/errors.js";
import { DEFECT_CLASSES, type InspectionEvent } from "../../core/types.js";
import { encodeLabelPng, encodeMaskPng, encodeOverlayPng } from "./encode.js";
import type { RenderOptions } from "./options.js";
import { LABEL_PRECEDENCE, renderInspection } from "./render.js";
import { sampleInspection } from "./sample.js";

export const RENDER_HELP = `Usage: glassd twin render --out DIR [options]

Writes N synthetic MIK-1 inspection images and, for each, its masks and a JSON description:
  item-000001.png|jpg          the image
  item-000001.mask-CLASS.png   one 0/255 mask per class of the item
  item-000001.label.png        label map: 0 background, 1..8 = ${DEFECT_CLASSES.join(", ")}
  item-000001.overlay.png      the image with the label map and boxes in class colours (for a person)
  item-000001.json             event, boxes, files;  index.json lists all of them with the options

Options:
  --out DIR            output directory (created)                             required
  --n N                number of images                                       default 16
  --width W --height H 64..1920 each, at most 1920×1080 pixels                 default 512×512
  --seed S             with the item id, the only source of randomness        default 0
  --format png|jpeg    image encoding                                         default png
  --quality Q          JPEG quality 1..100                                    default 90
  --color gray|rgb                                                            default gray
  --product bottle|jar|mixed     --glass flint|green|amber|mixed              default bottle, flint
  --mm-per-px X        scale at the item                          default: the item fills 86 % of the height
  --blur SIGMA         optical blur, px                                       default 0.8
  --noise K            sensor-noise multiplier (0: none)                      default 1
  --hard P             probability of hard cases (small, low contrast, overlapping defects)  default 0
  --events FILE        render these InspectionEvents (JSON array or JSON lines) instead of sampled ones
  --help`;

class UsageError extends GlassdError {
  constructor(message: string) {
    super(message, { status: 400, code: "usage" });
  }
}

function numberArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got "${v}"`);
  return n;
}

async function readEvents(file: string): Promise<InspectionEvent[]> {
  const text = await readFile(file, "utf8");
  try {
    const t = text.trim();
    const events = t.startsWith("[")
      ? (JSON.parse(t) as InspectionEvent[])
      : t
          .split("\n")
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as InspectionEvent);
    return events;
  } catch (err) {
    throw new UsageError(
      `--events ${file}: not JSON (an array of events, or one event per line): ${(err as Error).message}`,
    );
  }
}

/** Runs `glassd twin render`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const err = (s: string) => process.stderr.write(`glassd twin render: ${s}\n`);
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: "string" },
        n: { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        seed: { type: "string" },
        format: { type: "string" },
        quality: { type: "string" },
        color: { type: "string" },
        product: { type: "string" },
        glass: { type: "string" },
        "mm-per-px": { type: "string" },
        blur: { type: "string" },
        noise: { type: "string" },
        hard: { type: "string" },
        events: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      out(RENDER_HELP);
      return 0;
    }
    if (!values.out) throw new UsageError("--out DIR is required");
    if (values.format !== undefined && values.format !== "png" && values.format !== "jpeg") {
      throw new UsageError(`--format must be png or jpeg, got "${values.format}"`);
    }
    const n = numberArg("n", values.n) ?? 16;
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      throw new UsageError(`--n must be an integer 1..1000000, got "${values.n}"`);
    const hard = numberArg("hard", values.hard) ?? 0;
    const opts: RenderOptions = {
      width: numberArg("width", values.width),
      height: numberArg("height", values.height),
      seed: numberArg("seed", values.seed),
      format: values.format as "png" | "jpeg" | undefined,
      quality: numberArg("quality", values.quality),
      color: values.color as RenderOptions["color"],
      product: values.product as RenderOptions["product"],
      glass: values.glass as RenderOptions["glass"],
      mmPerPx: numberArg("mm-per-px", values["mm-per-px"]),
      blurSigma: numberArg("blur", values.blur),
      noise: numberArg("noise", values.noise),
      hard,
    };
    for (const k of Object.keys(opts) as (keyof RenderOptions)[]) if (opts[k] === undefined) delete opts[k];
    const seed = opts.seed ?? 0;
    const events = values.events
      ? (await readEvents(values.events)).slice(0, values.n === undefined ? undefined : n)
      : Array.from({ length: n }, (_, i) => sampleInspection(seed, i + 1, { overlap: Math.min(1, Math.max(0, hard)) }));
    const dir = values.out;
    await mkdir(dir, { recursive: true });
    const ext = opts.format === "jpeg" ? "jpg" : "png";
    const items: string[] = [];
    const t0 = performance.now();
    for (const ev of events) {
      const r = await renderInspection(ev, opts);
      const stem = `item-${String(ev.item_id).padStart(6, "0")}`;
      const files: Record<string, string> = {};
      const masks: Record<string, string> = {};
      await writeFile(join(dir, `${stem}.${ext}`), r.image);
      for (const [cls, mask] of Object.entries(r.masks)) {
        masks[cls] = `${stem}.mask-${cls}.png`;
        await writeFile(join(dir, masks[cls]), await encodeMaskPng(mask, r.width, r.height));
      }
      files.label = `${stem}.label.png`;
      files.overlay = `${stem}.overlay.png`;
      await writeFile(join(dir, files.label), await encodeLabelPng(r.label, r.width, r.height));
      await writeFile(join(dir, files.overlay), await encodeOverlayPng(r));
      const meta = {
        item_id: ev.item_id,
        ts: ev.ts,
        image: `${stem}.${ext}`,
        width: r.width,
        height: r.height,
        channels: r.channels,
        format: r.format,
        mm_per_px: Math.round(r.mmPerPx * 1e5) / 1e5,
        product: r.product,
        glass: r.glass,
        mask_threshold: r.maskThreshold,
        masks,
        label: files.label,
        overlay: files.overlay,
        defects: ev.defects,
        boxes: r.boxes,
      };
      await writeFile(join(dir, `${stem}.json`), `${JSON.stringify(meta, null, 2)}\n`);
      items.push(`${stem}.json`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const index = {
      generator: "glassd twin render",
      options: opts,
      classes: DEFECT_CLASSES,
      label_values: Object.fromEntries(DEFECT_CLASSES.map((c, i) => [c, i + 1])),
      label_precedence: LABEL_PRECEDENCE,
      mask_rule:
        "a pixel is in a class mask iff the noise-free image differs from the noise-free clean render by more than " +
        "mask_threshold grey levels there and a defect of that class claims it (its own blurred change > threshold/2, " +
        "or the largest change of all defects there); mask PNGs are 0/255",
      box_convention: "half-open pixel box: x0 <= x < x1, y0 <= y < y1",
      items,
    };
    await writeFile(join(dir, "index.json"), `${JSON.stringify(index, null, 2)}\n`);
    out(`wrote ${events.length} images with masks to ${dir} in ${seconds.toFixed(1)} s`);
    return 0;
  } catch (e) {
    if (e instanceof GlassdError) {
      err(e.message);
      return 2;
    }
    if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      err(`${(e as Error).message}\n${RENDER_HELP}`);
      return 2;
    }
    err((e as Error).message);
    return 1;
  }
}
