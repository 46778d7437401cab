import { parseArgs } from "node:util";
import { numberFlag } from "../../cli/flags.js";
import { MAX_PIXELS, MAX_SIDE, MIN_SIDE } from "../images/index.js";
import { loadScenario, type Scenario, ScenarioError } from "../scenario/index.js";
import { DatasetExistsError, type DatasetOptions, generateDataset } from "./generate.js";

/*
 * `glassd twin dataset --out DIR --hours H --seed S [...]`: writes a training dataset (FORMAT.md in this folder).
 * Exit codes: 0 written, 2 bad command line (the message names the flag), 1 failure while generating.
 */

const HELP = `Usage: glassd twin dataset --out DIR --hours H --seed S [options]

Runs the digital twin and writes training data for the model factory (.npy arrays + manifest.json; format:
src/twin/dataset/FORMAT.md): sensor series with injected-fault labels, feature windows computed by the daemon's own
feature code with multi-horizon defect-rate labels, sensor-graph snapshots, inspected items and, optionally,
MIK-1 images with per-pixel masks.

  --out DIR            output directory (created; must be empty unless --force)
  --hours H            simulated hours, > 0 and at most 720 (default: the scenario's duration_hours)
  --seed S             integer seed (default: the scenario's seed); same seed and options → same bytes
  --scenario NAME|FILE run exactly this scenario (built-in name or YAML/JSON file); default: the dataset mix
                       (random sensor faults, disturbances and setpoint excursions from the seed)
  --images N           render N inspected items, about half of them defective (default 0)
  --image-size WxH     image size in pixels (default 256x256; ${MIN_SIDE}..${MAX_SIDE} a side, at most 1920×1080)
  --stride-s S         seconds between feature rows (default 60)
  --window-s S         feature window, seconds (default 600, the daemon's pipeline.window_s)
  --force              replace the dataset entries of a non-empty --out
  --quiet              no progress lines on stderr`;

export interface DatasetCliIo {
  out(s: string): void;
  err(s: string): void;
}

const stdio: DatasetCliIo = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

/** A bad command line; the message names the flag. */
export class DatasetUsageError extends Error {}

const MAX_HOURS = 720;

const num = (flag: string, raw: string | undefined, ok: (n: number) => boolean, what: string) =>
  numberFlag(flag, raw, ok, what, (m) => new DatasetUsageError(m));

/** Parses and checks the command line into generator options (the scenario is loaded and validated here). */
export function parseDatasetArgs(argv: string[]): (DatasetOptions & { quiet: boolean }) | "help" {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new DatasetUsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) return "help";
  if (positionals.length > 0) throw new DatasetUsageError(`unexpected argument "${positionals[0]}"`);
  if (v.out === undefined || v.out.trim() === "") throw new DatasetUsageError("--out DIR is required");

  let scenario: Scenario | undefined;
  if (v.scenario !== undefined) {
    try {
      scenario = loadScenario(v.scenario);
    } catch (err) {
      if (!(err instanceof ScenarioError)) throw err;
      throw new DatasetUsageError(
        `--scenario ${v.scenario}: ${err.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      );
    }
  }
  const hours =
    num("hours", v.hours, (n) => n > 0 && n <= MAX_HOURS, `a number of hours in (0, ${MAX_HOURS}]`) ??
    scenario?.duration_hours;
  if (hours === undefined) throw new DatasetUsageError("--hours H is required (the scenario has no duration_hours)");
  if (hours > MAX_HOURS)
    throw new DatasetUsageError(`--hours: the scenario's ${hours} h exceed ${MAX_HOURS} h; pass --hours`);
  const seed = num("seed", v.seed, Number.isSafeInteger, "an integer") ?? scenario?.seed;
  if (seed === undefined) throw new DatasetUsageError("--seed S is required (the scenario has no seed)");
  const images = num("images", v.images, (n) => Number.isInteger(n) && n >= 0 && n <= 100_000, "an integer 0..100000");
  const strideS = num(
    "stride-s",
    v["stride-s"],
    (n) => Number.isInteger(n) && n >= 1 && n <= 86_400,
    "an integer 1..86400",
  );
  const windowS = num(
    "window-s",
    v["window-s"],
    (n) => Number.isInteger(n) && n >= 10 && n <= 86_400,
    "an integer 10..86400 (as config pipeline.window_s)",
  );
  let imageWidth: number | undefined;
  let imageHeight: number | undefined;
  if (v["image-size"] !== undefined) {
    const m = /^(\d+)x(\d+)$/i.exec(v["image-size"].trim());
    const w = m ? Number(m[1]) : Number.NaN;
    const h = m ? Number(m[2]) : Number.NaN;
    if (!m || w < MIN_SIDE || h < MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS) {
      throw new DatasetUsageError(
        `--image-size expects WxH with ${MIN_SIDE}..${MAX_SIDE} pixels a side and at most 1920×1080 in all, got "${v["image-size"]}"`,
      );
    }
    imageWidth = w;
    imageHeight = h;
  }
  const window = windowS ?? 600;
  if (hours * 3600 < window) {
    throw new DatasetUsageError(`--hours ${hours} is shorter than one feature window (--window-s ${window} s)`);
  }
  return {
    out: v.out,
    hours,
    seed,
    scenario,
    images: images ?? 0,
    ...(imageWidth === undefined ? {} : { imageWidth, imageHeight }),
    ...(strideS === undefined ? {} : { strideS }),
    ...(windowS === undefined ? {} : { windowS }),
    force: v.force ?? false,
    quiet: v.quiet ?? false,
  };
}

export async function main(argv: string[], io: DatasetCliIo = stdio): Promise<number> {
  let opts: ReturnType<typeof parseDatasetArgs>;
  try {
    opts = parseDatasetArgs(argv);
  } catch (err) {
    if (err instanceof DatasetUsageError) {
      io.err(`glassd twin dataset: ${err.message}\nTry 'glassd twin dataset --help'.`);
      return 2;
    }
    throw err;
  }
  if (opts === "help") {
    io.out(HELP);
    return 0;
  }
  try {
    const m = (await generateDataset({ ...opts, ...(opts.quiet ? {} : { progress: (s) => io.err(s) }) })) as {
      counts: { windows: number; items: number; defective_items: number; images: number };
      sim_wall_s: number;
      wall_s: number;
      speed_x: number;
    };
    const c = m.counts;
    io.out(
      `wrote ${opts.out}: ${opts.hours} h simulated, ${c.windows} feature windows, ${c.items} items ` +
        `(${c.defective_items} defective), ${c.images} images; ${m.wall_s.toFixed(1)} s wall, ` +
        `${m.speed_x.toExponential(2)}× real time without images`,
    );
    return 0;
  } catch (err) {
    if (err instanceof DatasetExistsError) {
      io.err(`glassd twin dataset: ${err.message}`);
      return 2;
    }
    io.err(`glassd twin dataset: failed: ${(err as Error).message}`);
    return 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      out: { type: "string" },
      hours: { type: "string" },
      seed: { type: "string" },
      scenario: { type: "string" },
      images: { type: "string" },
      "image-size": { type: "string" },
      "stride-s": { type: "string" },
      "window-s": { type: "string" },
      force: { type: "boolean" },
      quiet: { type: "boolean" },
    },
  });
}
