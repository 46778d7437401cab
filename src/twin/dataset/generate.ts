import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, TagConfig } from "../../config/schema.js";
import { defaultConfig } from "../../config/validate.js";
import { int64From, type NpyDtype, NpyWriter, writeNpy } from "../../core/npy.js";
import { DEFECT_CLASSES, type InspectionEvent, type RawSample } from "../../core/types.js";
import { buildGraphEdges, GRAPH_NODE_FEATURES, GraphFeatureExtractor } from "../../features/graph.js";
import { FeatureExtractor, FeatureStage, TagWindows } from "../../features/index.js";
import { REJECT_REASONS, Validator } from "../../ingest/validate.js";
import { VERSION } from "../../version.js";
import { SENSOR_FAULT_KINDS } from "../line-model.js";
import { type Scenario, ScenarioRunner } from "../scenario/index.js";
import { TwinLine } from "../twin-line.js";
import { TWIN_VERSION } from "../version.js";
import { CALIBRATION, calibrationPairs } from "./calibration.js";
import { type ImageSummary, writeImages } from "./images.js";
import { DATASET_MIX, datasetMix } from "./mix.js";

/*
 * The dataset writer: runs the twin (TwinLine in manual time, one ScenarioRunner for the scenario or the default
 * mix) and streams what the daemon would see and what really happened into `.npy` files (format: FORMAT.md in
 * this folder). Feature vectors are computed by the daemon's own FeatureStage, fed through the daemon's Validator
 * with the twin's clock, exactly as the pipeline feeds it; graph node features by src/features/graph.ts on the
 * same windows. Labels come from the twin's ground truth (injected faults, disturbances, inspected items).
 */

export const FORMAT_NAME = "glassd-twin-dataset";
export const FORMAT_VERSION = 1;
/** Forecast horizons of the labels, minutes. */
export const HORIZONS_MIN: readonly number[] = Object.freeze([15, 60, 240]);
/** Sensor-fault codes (uint8): index in this list. */
export const SENSOR_FAULT_CODES: readonly string[] = Object.freeze(["none", ...SENSOR_FAULT_KINDS]);
/** Validation outcome codes (uint8) of `sensors/<tag>.quarantine.npy`: 0 accepted, k = REJECT_REASONS[k − 1]. */
export const QUARANTINE_CODES: readonly string[] = Object.freeze(["accepted", ...REJECT_REASONS]);
/** Simulated start of every dataset (fixed, so the bytes depend on the seed and options only). */
export const DATASET_START_TS = Date.UTC(2026, 0, 1);
/** The entries a dataset directory holds; `--force` removes these and nothing else. */
export const DATASET_ENTRIES: readonly string[] = Object.freeze([
  "manifest.json",
  "sensors",
  "features",
  "graph",
  "items",
  "images",
]);

/** What to generate. */
export interface DatasetOptions {
  out: string;
  /** Simulated hours. */
  hours: number;
  seed: number;
  /** The scenario to run exactly; undefined: the default dataset mix. */
  scenario?: Scenario | undefined;
  /** Items to render as images (0: none). */
  images?: number;
  imageWidth?: number;
  imageHeight?: number;
  /** Feature rows every this many simulated seconds. Default 60. */
  strideS?: number;
  /** Feature window, seconds. Default config pipeline.window_s (600). */
  windowS?: number;
  /** Remove an existing dataset's entries in `out` instead of refusing. */
  force?: boolean;
  /** Tag dictionary and twin settings; default: the daemon's default config. */
  config?: Pick<Config, "tags" | "twin" | "validation" | "pipeline">;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

/** Per-file entry of the manifest. */
export interface FileEntry {
  shape: number[];
  dtype: NpyDtype | "json" | "png";
  description: string;
}

/** A non-empty output directory without --force. */
export class DatasetExistsError extends Error {}

interface TagStreams {
  values: NpyWriter<"float32">;
  ts: NpyWriter<"int64">;
  fault: NpyWriter<"uint8">;
  quarantine: NpyWriter<"uint8">;
}

const MIN = 60_000;

/** Checks `out` and prepares it: created when missing; refused when it holds anything, unless `force`. */
export function prepareOutDir(out: string, force: boolean): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new DatasetExistsError(`--out ${out} exists and is not a directory`);
    const entries = readdirSync(out);
    if (entries.length > 0 && !force) {
      throw new DatasetExistsError(
        `--out ${out} is not empty (${entries.slice(0, 5).join(", ")}${entries.length > 5 ? ", …" : ""}); ` +
          "choose an empty or new directory, or pass --force to replace a dataset there",
      );
    }
    for (const e of DATASET_ENTRIES) rmSync(join(out, e), { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
}

/** Generates a dataset into `opts.out`; returns the manifest written. */
export async function generateDataset(opts: DatasetOptions): Promise<Record<string, unknown>> {
  const wall0 = performance.now();
  const config = opts.config ?? defaultConfig();
  const tags: TagConfig[] = config.tags.slice();
  const windowS = opts.windowS ?? config.pipeline.window_s;
  const strideS = opts.strideS ?? 60;
  const stepMs = config.twin.step_ms;
  const windowMs = windowS * 1000;
  const strideMs = strideS * 1000;
  if (windowMs % stepMs !== 0 || strideMs % stepMs !== 0) {
    throw new RangeError(`window and stride must be whole multiples of the twin step (${stepMs} ms)`);
  }
  const startTs = DATASET_START_TS;
  const endTs = startTs + Math.round((opts.hours * 3_600_000) / stepMs) * stepMs;
  if (endTs - startTs < windowMs) {
    throw new RangeError(`--hours ${opts.hours} is shorter than one feature window (${windowS} s)`);
  }
  const out = opts.out;
  prepareOutDir(out, opts.force ?? false);
  for (const d of ["sensors", "features", "graph", "items"]) mkdirSync(join(out, d), { recursive: true });
  const say = opts.progress ?? (() => {});

  // --- the line ---
  const twin = new TwinLine({
    tags,
    seed: opts.seed,
    speed: 1,
    stepMs,
    itemsPerMin: config.twin.items_per_min,
    startTs,
  });
  const model = twin.model;
  const scenario = opts.scenario ?? datasetMix(opts.seed, opts.hours, tags);
  const runner = new ScenarioRunner(scenario).attach(twin);

  // --- the daemon's side: validation with the twin's clock, features, graph ---
  let clockNow = startTs;
  const validator = new Validator(tags, config.validation, { now: () => clockNow });
  const stage = new FeatureStage(
    new TagWindows(tags, { windowS, staleFactor: config.validation.stale_factor }),
    new FeatureExtractor(tags, { windowS }),
  );
  const nFeat = stage.names.length;
  const pairs = calibrationPairs(tags, stepMs, config.twin.items_per_min);
  const edges = buildGraphEdges(tags, pairs);
  const graphX = new GraphFeatureExtractor(tags, edges, { windowS });
  const N = tags.length;
  const FN = GRAPH_NODE_FEATURES.length;

  // --- writers ---
  const files: Record<string, FileEntry> = {};
  const streams: TagStreams[] = tags.map((t) => ({
    values: new NpyWriter(join(out, "sensors", `${t.id}.npy`), "float32"),
    ts: new NpyWriter(join(out, "sensors", `${t.id}.ts.npy`), "int64"),
    fault: new NpyWriter(join(out, "sensors", `${t.id}.fault.npy`), "uint8"),
    quarantine: new NpyWriter(join(out, "sensors", `${t.id}.quarantine.npy`), "uint8"),
  }));
  const X = new NpyWriter(join(out, "features", "X.npy"), "float32", [nFeat]);
  const nodes = new NpyWriter(join(out, "graph", "nodes.npy"), "float32", [N, FN]);
  const nodeFault = new NpyWriter(join(out, "graph", "node_fault.npy"), "uint8", [N]);
  const nodeFaultNow = new NpyWriter(join(out, "graph", "node_fault_now.npy"), "uint8", [N]);
  const anomaly = new NpyWriter(join(out, "graph", "process_anomaly.npy"), "uint8");
  const windowT: number[] = [];

  // Per tag: next grid time (the twin samples tag i at startTs + k·period), and the newest faulty sample.
  const index = new Map(tags.map((t, i) => [t.id, i]));
  const period = Float64Array.from(tags, (t) => t.period_ms);
  const nextGrid = new Float64Array(N).fill(startTs);
  const lastFaultTs = new Float64Array(N).fill(Number.NEGATIVE_INFINITY);
  const lastFaultCode = new Uint8Array(N);
  const counts = {
    samples: new Float64Array(N),
    dropped: new Float64Array(N),
    faulty: new Float64Array(N),
    quarantined: new Float64Array(N),
  };
  const faultCode = (tag: string, ts: number): number => {
    const k = model.sensorFaultAt(tag, ts);
    return k === undefined ? 0 : SENSOR_FAULT_CODES.indexOf(k);
  };
  const record = (i: number, ts: number, value: number, code: number, q: number) => {
    const s = streams[i]!;
    s.values.push(value);
    s.ts.push(ts);
    s.fault.push(code);
    s.quarantine.push(q);
    counts.samples[i]!++;
    if (code !== 0) {
      counts.faulty[i]!++;
      lastFaultTs[i] = ts;
      lastFaultCode[i] = code;
    }
    if (q !== 0) counts.quarantined[i]!++;
  };
  // A grid time with no sample: the sensor dropped out (the twin sends nothing then).
  const dropped = (i: number, ts: number) => {
    counts.dropped[i]!++;
    record(i, ts, Number.NaN, faultCode(tags[i]!.id, ts), 0);
  };

  // Items (small: 15/min) stay in memory for the labels.
  const itemTs: number[] = [];
  const itemId: number[] = [];
  const itemLabels: number[] = [];
  const defective: InspectionEvent[] = [];

  const rowX = new Float32Array(nFeat);
  const rowNodes = new Float32Array(N * FN);
  const rowFault = new Uint8Array(N);
  const rowFaultNow = new Uint8Array(N);
  const simWall0 = performance.now();
  let nextFeature = startTs + windowMs;
  let lastReport = performance.now();

  while (twin.now() < endTs) {
    const target = Math.min(nextFeature, endTs);
    const { samples, inspections } = twin.advance(target - twin.now());
    const now = twin.now();
    const accepted = [];
    for (const raw of samples as RawSample[]) {
      const i = index.get(raw.tag)!;
      for (let g = nextGrid[i]!; g < raw.ts; g += period[i]!) dropped(i, g);
      nextGrid[i] = raw.ts + period[i]!;
      // The pipeline validates each batch as it arrives: in real-time mode that is right after the sample.
      clockNow = raw.ts;
      const r = validator.validate(raw);
      if (r.ok) accepted.push(r.sample);
      record(i, raw.ts, raw.value as number, faultCode(raw.tag, raw.ts), r.ok ? 0 : QUARANTINE_CODES.indexOf(r.reason));
    }
    for (let i = 0; i < N; i++) {
      let g = nextGrid[i]!;
      for (; g <= now; g += period[i]!) dropped(i, g);
      nextGrid[i] = g;
    }
    stage.push(accepted);
    for (const e of inspections) {
      itemTs.push(e.ts);
      itemId.push(e.item_id);
      const lab = new Array<number>(DEFECT_CLASSES.length).fill(0);
      for (const d of e.defects) {
        const c = DEFECT_CLASSES.indexOf(d.class);
        lab[c] = Math.min(255, lab[c]! + 1);
      }
      itemLabels.push(...lab);
      if (e.defects.length > 0) defective.push(e);
    }

    if (now === nextFeature) {
      stage.compute(now, rowX);
      X.append(rowX);
      graphX.compute(stage.windows, now, rowNodes);
      nodes.append(rowNodes);
      for (let i = 0; i < N; i++) {
        rowFault[i] = lastFaultTs[i]! > now - graphX.tagWindowMs[i]! ? lastFaultCode[i]! : 0;
        rowFaultNow[i] = faultCode(tags[i]!.id, now);
      }
      nodeFault.append(rowFault);
      nodeFaultNow.append(rowFaultNow);
      const disturbed =
        model.activeDisturbances(now).length > 0 || runner.activeEvents(now).some((a) => a.event.type === "setpoint");
      anomaly.push(disturbed ? 1 : 0);
      windowT.push(now);
      nextFeature += strideMs;
    }
    if (performance.now() - lastReport > 2000) {
      lastReport = performance.now();
      say(`simulated ${((now - startTs) / 3_600_000).toFixed(1)} of ${opts.hours} h`);
    }
  }
  runner.detach();
  const simWallS = (performance.now() - simWall0) / 1000;

  // --- close the streams, write the rest ---
  const sensorShapes = streams.map((s) => ({
    values: s.values.close(),
    ts: s.ts.close(),
    fault: s.fault.close(),
    quarantine: s.quarantine.close(),
  }));
  tags.forEach((t, i) => {
    const sh = sensorShapes[i]!;
    files[`sensors/${t.id}.npy`] = {
      shape: sh.values,
      dtype: "float32",
      description: `${t.id} readings (${t.unit}) at its own period ${t.period_ms} ms as the sensor sent them (before validation); NaN during a dropout`,
    };
    files[`sensors/${t.id}.ts.npy`] = { shape: sh.ts, dtype: "int64", description: "sample times, ms since the epoch" };
    files[`sensors/${t.id}.fault.npy`] = {
      shape: sh.fault,
      dtype: "uint8",
      description: "injected sensor-fault code at that sample (sensor_fault_kinds index; 0 none)",
    };
    files[`sensors/${t.id}.quarantine.npy`] = {
      shape: sh.quarantine,
      dtype: "uint8",
      description: "daemon validation outcome (quarantine_codes index; 0 accepted, NaN dropouts count as 0)",
    };
  });
  const W = windowT.length;
  files["features/X.npy"] = {
    shape: X.close(),
    dtype: "float32",
    description: "FeatureStage vector (feature_names) at each window end; rows evenly spaced by stride_s",
  };
  writeNpy(join(out, "features", "t.npy"), int64From(windowT));
  files["features/t.npy"] = { shape: [W], dtype: "int64", description: "window end times, ms since the epoch" };

  const labels = horizonLabels(windowT, itemTs, itemLabels, endTs);
  writeNpy(join(out, "features", "y.npy"), labels.y, [W, HORIZONS_MIN.length, DEFECT_CLASSES.length]);
  writeNpy(join(out, "features", "y_any.npy"), labels.yAny, [W, HORIZONS_MIN.length]);
  writeNpy(join(out, "features", "n_items.npy"), labels.nItems, [W, HORIZONS_MIN.length]);
  files["features/y.npy"] = {
    shape: [W, HORIZONS_MIN.length, DEFECT_CLASSES.length],
    dtype: "float32",
    description: "fraction of items in (t, t+h] with ≥1 defect of class c; NaN when t+h is past end_ts or no item",
  };
  files["features/y_any.npy"] = {
    shape: [W, HORIZONS_MIN.length],
    dtype: "float32",
    description: "fraction of items in (t, t+h] with any defect; NaN as y",
  };
  files["features/n_items.npy"] = {
    shape: [W, HORIZONS_MIN.length],
    dtype: "int32",
    description: "items inspected in (t, min(t+h, end_ts)] behind each label",
  };

  files["graph/nodes.npy"] = {
    shape: nodes.close(),
    dtype: "float32",
    description: "node features (graph.node_feature_names) per tag at each window end (same t as features/t.npy)",
  };
  writeNpy(join(out, "graph", "t.npy"), int64From(windowT));
  files["graph/t.npy"] = { shape: [W], dtype: "int64", description: "snapshot times = features/t.npy" };
  const E = edges.src.length;
  const edgeIndex = new BigInt64Array(2 * E);
  for (let e = 0; e < E; e++) {
    edgeIndex[e] = BigInt(edges.src[e]!);
    edgeIndex[E + e] = BigInt(edges.dst[e]!);
  }
  writeNpy(join(out, "graph", "edge_index.npy"), edgeIndex, [2, E]);
  writeNpy(join(out, "graph", "edge_kind.npy"), edges.kind, [E]);
  files["graph/edge_index.npy"] = {
    shape: [2, E],
    dtype: "int64",
    description: "directed edges [source; target] (every link in both directions), node = tag index",
  };
  files["graph/edge_kind.npy"] = {
    shape: [E],
    dtype: "uint8",
    description: "0 plant topology / causal link, 1 strong correlation in the normal-operation calibration run",
  };
  files["graph/node_fault.npy"] = {
    shape: nodeFault.close(),
    dtype: "uint8",
    description:
      "fault code of the newest sample of the node's window (t − node window, t] that carried an injected fault; 0 none",
  };
  files["graph/node_fault_now.npy"] = {
    shape: nodeFaultNow.close(),
    dtype: "uint8",
    description: "fault code active on the node's sensor at t itself (ground truth, whether or not a sample shows it)",
  };
  files["graph/process_anomaly.npy"] = {
    shape: anomaly.close(),
    dtype: "uint8",
    description: "1 while a process disturbance or a scripted setpoint excursion is in force at t (not sensor faults)",
  };

  const I = itemTs.length;
  writeNpy(join(out, "items", "ts.npy"), int64From(itemTs));
  writeNpy(join(out, "items", "item_id.npy"), int64From(itemId));
  writeNpy(join(out, "items", "labels.npy"), Uint8Array.from(itemLabels), [I, DEFECT_CLASSES.length]);
  writeFileSync(
    join(out, "items", "defects.json"),
    JSON.stringify(defective.map((e) => ({ item_id: e.item_id, ts: e.ts, defects: e.defects }))),
  );
  files["items/ts.npy"] = { shape: [I], dtype: "int64", description: "inspection time of each item, ms" };
  files["items/item_id.npy"] = { shape: [I], dtype: "int64", description: "MIK-1 item id" };
  files["items/labels.npy"] = {
    shape: [I, DEFECT_CLASSES.length],
    dtype: "uint8",
    description: "defect count per class per item (defect_classes order)",
  };
  files["items/defects.json"] = {
    shape: [defective.length],
    dtype: "json",
    description: "defective items only: [{item_id, ts, defects: [{class, size_mm, x, y, severity}]}]",
  };

  // --- images ---
  let images: ImageSummary | undefined;
  const imgWall0 = performance.now();
  if ((opts.images ?? 0) > 0) {
    const all: InspectionEvent[] = [];
    const byId = new Map(defective.map((e) => [e.item_id, e]));
    for (let k = 0; k < I; k++) {
      const id = itemId[k]!;
      all.push(byId.get(id) ?? { item_id: id, ts: itemTs[k]!, defects: [], ok: true });
    }
    images = await writeImages(join(out, "images"), all, {
      n: opts.images!,
      width: opts.imageWidth ?? 256,
      height: opts.imageHeight ?? 256,
      seed: opts.seed,
      progress: say,
    });
    Object.assign(files, images.files);
  }
  const imgWallS = (performance.now() - imgWall0) / 1000;

  const wallS = (performance.now() - wall0) / 1000;
  const simS = (endTs - startTs) / 1000;
  const manifest = {
    format: FORMAT_NAME,
    format_version: FORMAT_VERSION,
    twin_version: TWIN_VERSION,
    glassd_version: VERSION,
    seed: opts.seed,
    scenario: opts.scenario ? { name: opts.scenario.name, spec: opts.scenario } : null,
    mix: opts.scenario ? null : { ...DATASET_MIX, spec: scenario },
    hours: opts.hours,
    start_ts: startTs,
    end_ts: endTs,
    step_ms: stepMs,
    items_per_min: config.twin.items_per_min,
    tags: tags.map((t) => ({
      id: t.id,
      unit: t.unit,
      stage: t.stage,
      period_ms: t.period_ms,
      normal: { min: t.normal.min, max: t.normal.max },
      limits: { min: t.limits.min, max: t.limits.max },
    })),
    defect_classes: [...DEFECT_CLASSES],
    feature_names: [...stage.names],
    horizons_min: [...HORIZONS_MIN],
    stride_s: strideS,
    window_s: windowS,
    sensor_fault_kinds: [...SENSOR_FAULT_CODES],
    quarantine_codes: [...QUARANTINE_CODES],
    graph: {
      node_ids: tags.map((t) => t.id),
      node_feature_names: [...GRAPH_NODE_FEATURES],
      node_window_s: Array.from(graphX.tagWindowMs, (ms) => ms / 1000),
      edge_kinds: ["topology", "correlation"],
      calibration: { ...CALIBRATION, pairs: pairs },
    },
    images: images ? images.meta : null,
    files,
    counts: {
      samples: Object.fromEntries(tags.map((t, i) => [t.id, counts.samples[i]!])),
      dropped_samples: Object.fromEntries(tags.map((t, i) => [t.id, counts.dropped[i]!])),
      faulty_samples: Object.fromEntries(tags.map((t, i) => [t.id, counts.faulty[i]!])),
      quarantined_samples: Object.fromEntries(tags.map((t, i) => [t.id, counts.quarantined[i]!])),
      windows: W,
      graphs: W,
      items: I,
      defective_items: defective.length,
      images: images?.meta.count ?? 0,
    },
    wall_s: round3(wallS),
    sim_wall_s: round3(simWallS),
    images_wall_s: round3(imgWallS),
    speed_x: Math.round(simS / Math.max(simWallS, 1e-9)),
    generated_at: new Date().toISOString(),
  };
  // The manifest goes last: a directory without one is an unfinished dataset.
  writeFileSync(join(out, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Multi-horizon labels at window ends `t`: over the items with t < ts ≤ t + h, the fraction with ≥ 1 defect of each
 * class and with any defect, and their count. NaN when t + h > endTs (the future is not fully known) or no item.
 */
export function horizonLabels(
  t: readonly number[],
  itemTs: readonly number[],
  itemLabels: readonly number[],
  endTs: number,
): { y: Float32Array; yAny: Float32Array; nItems: Int32Array } {
  const C = DEFECT_CLASSES.length;
  const H = HORIZONS_MIN.length;
  const I = itemTs.length;
  // Prefix counts of items having class c, and having any class.
  const cum = new Int32Array((I + 1) * (C + 1));
  for (let k = 0; k < I; k++) {
    let any = 0;
    for (let c = 0; c < C; c++) {
      const has = itemLabels[k * C + c]! > 0 ? 1 : 0;
      any |= has;
      cum[(k + 1) * (C + 1) + c] = cum[k * (C + 1) + c]! + has;
    }
    cum[(k + 1) * (C + 1) + C] = cum[k * (C + 1) + C]! + any;
  }
  const upper = (x: number) => {
    let lo = 0;
    let hi = I;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (itemTs[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const y = new Float32Array(t.length * H * C);
  const yAny = new Float32Array(t.length * H);
  const nItems = new Int32Array(t.length * H);
  t.forEach((tw, w) => {
    const a = upper(tw);
    HORIZONS_MIN.forEach((h, hi) => {
      const until = tw + h * MIN;
      const b = upper(Math.min(until, endTs));
      const n = b - a;
      nItems[w * H + hi] = n;
      const known = until <= endTs && n > 0;
      for (let c = 0; c <= C; c++) {
        const v = known ? (cum[b * (C + 1) + c]! - cum[a * (C + 1) + c]!) / n : Number.NaN;
        if (c < C) y[(w * H + hi) * C + c] = v;
        else yAny[w * H + hi] = v;
      }
    });
  });
  return { y, yAny, nItems };
}
