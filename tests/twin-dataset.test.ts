import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/validate.js";
import { int64ToNumbers, type NpyArray, readNpy } from "../src/core/npy.js";
import { DEFECT_CLASSES, type InspectionEvent } from "../src/core/types.js";
import { buildGraphEdges, type CorrelatedPair, GraphFeatureExtractor } from "../src/features/graph.js";
import { FeatureStage } from "../src/features/index.js";
import { Validator } from "../src/ingest/validate.js";
import { main } from "../src/twin/dataset/cli.js";
import {
  checkDataset,
  type DatasetManifest,
  datasetMix,
  excursionRange,
  generateDataset,
  HORIZONS_MIN,
  readManifest,
  SENSOR_FAULT_CODES,
  SETPOINT_LIMIT_MARGIN,
} from "../src/twin/dataset/index.js";
import { renderClean } from "../src/twin/images/index.js";
import { TwinLine, twinOptionsFromConfig } from "../src/twin/index.js";
import { type Scenario, ScenarioRunner, scenarioSchemaIssues, scenarioTagIssues } from "../src/twin/scenario/index.js";

const MIN = 60_000;
const config = defaultConfig();
const tags = config.tags;
const tagIndex = (id: string) => tags.findIndex((t) => t.id === id);

let root = "";
let ds = "";
let manifest: DatasetManifest;
const io = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
};

const SCENARIO = {
  name: "dataset_test",
  duration_hours: 1.5,
  events: [
    { type: "sensor_fault", at_min: 15, tag: "furnace_temperature", fault: "stuck", duration_min: 30 },
    { type: "sensor_fault", at_min: 20, tag: "belt_speed", fault: "dropout", duration_min: 12 },
    { type: "burner_trip", at_min: 30, duration_min: 20, power_loss: 0.3 },
    { type: "sensor_fault", at_min: 40, tag: "mold_temperature", fault: "noise_burst", sigma: 10, duration_min: 10 },
  ],
};

const arr = (rel: string): NpyArray => readNpy(join(ds, rel));
const nums = (rel: string): Float64Array => {
  const a = arr(rel);
  return a.dtype === "int64" ? int64ToNumbers(a.data as BigInt64Array) : Float64Array.from(a.data as Float32Array);
};

test.before(async () => {
  root = mkdtempSync(join(tmpdir(), "glassd-dataset-"));
  ds = join(root, "ds");
  const file = join(root, "scenario.json");
  writeFileSync(file, JSON.stringify(SCENARIO));
  const c = io();
  const code = await main(
    [
      "--out",
      ds,
      "--hours",
      "1.5",
      "--seed",
      "3",
      "--scenario",
      file,
      "--images",
      "6",
      "--image-size",
      "96x64",
      "--quiet",
    ],
    c.io,
  );
  assert.is(code, 0, c.err.join("\n"));
  assert.match(c.out.join("\n"), /wrote .*1\.5 h simulated/);
  manifest = readManifest(ds);
});
test.after(() => {
  rmSync(root, { recursive: true, force: true });
});

test("round trip: every file the manifest lists reads back with its dtype and shape", () => {
  assert.equal(checkDataset(ds), []);
  const m = manifest as unknown as Record<string, unknown> & {
    feature_names: string[];
    tags: { id: string }[];
    counts: { windows: number; items: number; images: number };
    scenario: { name: string };
  };
  assert.is(m.format, "glassd-twin-dataset");
  assert.is(m.format_version, 1);
  assert.is(m.feature_names.length, 266);
  assert.equal(m.defect_classes, [...DEFECT_CLASSES]);
  assert.equal(m.horizons_min, [15, 60, 240]);
  assert.equal(m.sensor_fault_kinds, ["none", "stuck", "drift", "spike", "dropout", "noise_burst"]);
  assert.equal(
    m.tags.map((t) => t.id),
    tags.map((t) => t.id),
  );
  assert.is(m.scenario.name, "dataset_test");
  assert.is(m.mix, null);
  // 1.5 h, first row after 600 s, one every 60 s: 5400 − 600 = 4800 s → 81 rows.
  assert.is(m.counts.windows, 81);
  assert.equal(arr("features/X.npy").shape, [81, 266]);
  assert.equal(arr("graph/nodes.npy").shape, [81, tags.length, 11]);
  assert.is(m.counts.images, 6);
  for (const f of Object.keys(manifest.files)) assert.ok(existsSync(join(ds, f)), `${f} missing`);
});

test("timestamps: sensors on their own grid and monotone, feature rows evenly spaced, items in order", () => {
  const start = manifest.start_ts as number;
  for (const t of tags) {
    const ts = nums(`sensors/${t.id}.ts.npy`);
    assert.is(ts[0], start, t.id);
    for (let k = 1; k < ts.length; k++) {
      if (ts[k]! - ts[k - 1]! !== t.period_ms) assert.unreachable(`${t.id}: gap ${ts[k]! - ts[k - 1]!} at ${k}`);
    }
    assert.is(arr(`sensors/${t.id}.npy`).shape[0], ts.length);
  }
  const t = nums("features/t.npy");
  assert.is(t[0], start + 600_000);
  for (let k = 1; k < t.length; k++) assert.is(t[k]! - t[k - 1]!, 60_000);
  assert.equal(Array.from(nums("graph/t.npy")), Array.from(t));
  const its = nums("items/ts.npy");
  for (let k = 1; k < its.length; k++) if (its[k]! < its[k - 1]!) assert.unreachable(`items out of order at ${k}`);
});

test("labels agree with the items: per-item counts, defects.json and the horizon fractions", () => {
  const C = DEFECT_CLASSES.length;
  const ids = nums("items/item_id.npy");
  const its = nums("items/ts.npy");
  const lab = arr("items/labels.npy").data as Uint8Array;
  const defects = JSON.parse(readFileSync(join(ds, "items/defects.json"), "utf8")) as InspectionEvent[];
  const byId = new Map(defects.map((e) => [e.item_id, e]));
  let defective = 0;
  for (let k = 0; k < ids.length; k++) {
    const e = byId.get(ids[k]!);
    const counts = new Array(C).fill(0);
    for (const d of e?.defects ?? []) counts[DEFECT_CLASSES.indexOf(d.class)]++;
    if (e) {
      defective++;
      assert.is(e.ts, its[k]);
    }
    for (let c = 0; c < C; c++) if (lab[k * C + c] !== counts[c]) assert.unreachable(`item ${ids[k]} class ${c}`);
  }
  assert.is(defective, defects.length);
  assert.ok(defective > 0, "a 1.5 h run has defective items");

  const t = nums("features/t.npy");
  const y = arr("features/y.npy").data as Float32Array;
  const yAny = arr("features/y_any.npy").data as Float32Array;
  const n = arr("features/n_items.npy").data as Int32Array;
  const end = manifest.end_ts as number;
  const H = HORIZONS_MIN.length;
  for (let w = 0; w < t.length; w++) {
    HORIZONS_MIN.forEach((h, hi) => {
      const until = t[w]! + h * MIN;
      const inWin: number[] = [];
      for (let k = 0; k < its.length; k++) if (its[k]! > t[w]! && its[k]! <= Math.min(until, end)) inWin.push(k);
      assert.is(n[w * H + hi], inWin.length);
      if (until > end) {
        assert.ok(Number.isNaN(yAny[w * H + hi]!), `y_any past the end must be NaN (w ${w}, h ${h})`);
        return;
      }
      const any = inWin.filter((k) => lab.subarray(k * C, k * C + C).some((v) => v > 0)).length;
      assert.is(yAny[w * H + hi], Math.fround(any / inWin.length));
      for (let c = 0; c < C; c++) {
        const has = inWin.filter((k) => lab[k * C + c]! > 0).length;
        assert.is(y[(w * H + hi) * C + c], Math.fround(has / inWin.length));
      }
    });
  }
  // 240 min never fits a 90 min run; 15 min does for the early rows.
  assert.ok(Number.isNaN(yAny[2]!));
  assert.not.ok(Number.isNaN(yAny[0]!));
});

/**
 * The daemon's path, rebuilt independently of the writer: a fresh TwinLine with the manifest's seed and scenario,
 * stepped one tick (1 s) at a time like real-time mode, each tick's batch through the daemon's Validator on the
 * twin's clock, the accepted samples into FeatureStage.fromConfig, vectors taken at the given times.
 */
function daemonStages(times: readonly number[]): Map<number, { x: Float32Array; stage: FeatureStage }> {
  const m = manifest as unknown as { seed: number; start_ts: number; scenario: { spec: Scenario } };
  const twin = new TwinLine({ ...twinOptionsFromConfig(config), seed: m.seed, startTs: m.start_ts });
  new ScenarioRunner(m.scenario.spec).attach(twin);
  const validator = new Validator(tags, config.validation, twin.simClock);
  const stage = FeatureStage.fromConfig(config);
  const out = new Map<number, { x: Float32Array; stage: FeatureStage }>();
  const last = Math.max(...times);
  while (twin.now() < last) {
    const { accepted } = validator.validateBatch(twin.advance(config.twin.step_ms).samples);
    stage.push(accepted);
    if (times.includes(twin.now())) out.set(twin.now(), { x: stage.compute(twin.now()).values, stage });
  }
  return out;
}

test("X rows equal FeatureStage's vectors computed independently, and graph nodes graph.ts's", () => {
  const t = nums("features/t.npy");
  const X = arr("features/X.npy").data as Float32Array;
  const nodes = arr("graph/nodes.npy").data as Float32Array;
  const F = 266;
  const g = manifest.graph as { calibration: { pairs: CorrelatedPair[] } };
  const edges = buildGraphEdges(tags, g.calibration.pairs);
  const ei = arr("graph/edge_index.npy").data as BigInt64Array;
  const E = edges.src.length;
  for (let e = 0; e < E; e++) {
    assert.is(Number(ei[e]), edges.src[e]);
    assert.is(Number(ei[E + e]), edges.dst[e]);
  }
  const gx = new GraphFeatureExtractor(tags, edges, { windowS: 600 });
  const rows = [0, 40, t.length - 1];
  const daemon = daemonStages(rows.map((w) => t[w]!));
  for (const w of rows) {
    const { x: v, stage } = daemon.get(t[w]!)!;
    const row = X.subarray(w * F, (w + 1) * F);
    assert.ok(Buffer.from(v.buffer).equals(Buffer.from(row.slice().buffer)), `X row ${w} differs from FeatureStage`);
    // The stage moved on after row 0 and 40; node features are checked on the last row's windows.
    if (w !== t.length - 1) continue;
    const nv = gx.compute(stage.windows, t[w]!);
    const nrow = nodes.subarray(w * nv.length, (w + 1) * nv.length);
    assert.ok(Buffer.from(nv.buffer).equals(Buffer.from(nrow.slice().buffer)), `nodes row ${w} differ`);
  }
});

test("scenario faults show in the sensors' fault arrays, node_fault and process_anomaly", () => {
  const start = manifest.start_ts as number;
  const code = (k: string) => SENSOR_FAULT_CODES.indexOf(k);
  const inRange = (ts: number, a: number, b: number) => ts >= start + a * MIN && ts < start + b * MIN;
  // stuck furnace temperature 15..45 min: flagged exactly then, one constant reading.
  const ft = nums("sensors/furnace_temperature.npy");
  const fts = nums("sensors/furnace_temperature.ts.npy");
  const ff = arr("sensors/furnace_temperature.fault.npy").data as Uint8Array;
  const held = new Set<number>();
  for (let k = 0; k < fts.length; k++) {
    const on = inRange(fts[k]!, 15, 45);
    assert.is(ff[k], on ? code("stuck") : 0, `furnace_temperature sample ${k}`);
    if (on) held.add(ft[k]!);
  }
  assert.is(held.size, 1, "a stuck sensor repeats one value");
  // belt speed dropout 20..32 min: NaN readings coded dropout.
  const bs = nums("sensors/belt_speed.npy");
  const bts = nums("sensors/belt_speed.ts.npy");
  const bf = arr("sensors/belt_speed.fault.npy").data as Uint8Array;
  let nan = 0;
  for (let k = 0; k < bts.length; k++) {
    const on = inRange(bts[k]!, 20, 32);
    assert.is(Number.isNaN(bs[k]!), on, `belt_speed sample ${k}`);
    assert.is(bf[k], on ? code("dropout") : 0);
    if (on) nan++;
  }
  assert.is(nan, 720);
  // Graph labels at the window ends.
  const t = nums("graph/t.npy");
  const N = tags.length;
  const nf = arr("graph/node_fault.npy").data as Uint8Array;
  const nn = arr("graph/node_fault_now.npy").data as Uint8Array;
  const pa = arr("graph/process_anomaly.npy").data as Uint8Array;
  const fi = tagIndex("furnace_temperature");
  const bi = tagIndex("belt_speed");
  const mi = tagIndex("mold_temperature");
  for (let w = 0; w < t.length; w++) {
    const m = (t[w]! - start) / MIN;
    assert.is(nn[w * N + fi], m >= 15 && m < 45 ? code("stuck") : 0, `now, minute ${m}`);
    // Within the window: from the first faulty sample until the last one leaves the 600 s window.
    assert.is(nf[w * N + fi], m >= 15 && m < 45 + 10 ? code("stuck") : 0, `window, minute ${m}`);
    assert.is(nf[w * N + bi], m >= 20 && m < 32 + 10 ? code("dropout") : 0, `belt window, minute ${m}`);
    assert.is(nf[w * N + mi], m >= 40 && m < 50 + 10 ? code("noise_burst") : 0, `mold window, minute ${m}`);
    // Burner trip 30..50 min plus 10 min recovery.
    assert.is(pa[w], m >= 30 && m < 60 ? 1 : 0, `process anomaly, minute ${m}`);
    for (let i = 0; i < N; i++) {
      if (i !== fi && i !== bi && i !== mi && nf[w * N + i] !== 0) assert.unreachable(`node ${i} flagged at ${m}`);
    }
  }
  // The features see what the daemon sees: a stuck sensor's window is flat, a dropout's count falls.
  const names = manifest.feature_names as string[];
  const X = arr("features/X.npy").data as Float32Array;
  const w40 = 40 - 10; // row at minute 40
  assert.is(X[w40 * 266 + names.indexOf("furnace_temperature.std")], 0);
  const w31 = 31 - 10;
  assert.is(X[w31 * 266 + names.indexOf("belt_speed.count")], 0);
  const nodes = arr("graph/nodes.npy").data as Float32Array;
  const FN = 11;
  assert.is(nodes[(w40 * N + fi) * FN + 6], 1, "flat_frac of the stuck sensor");
  assert.is(nodes[(w31 * N + bi) * FN + 7], 1, "missing_frac of the dropped sensor");
});

test("images: bitmasks lie where the image differs from the clean render; labels follow the masks", async () => {
  const img = arr("images/images.npy");
  const masks = arr("images/masks.npy").data as Uint8Array;
  const labels = arr("images/labels.npy").data as Uint8Array;
  const ids = nums("images/item_id.npy");
  assert.equal(img.shape, [6, 64, 96]);
  const defects = JSON.parse(readFileSync(join(ds, "items/defects.json"), "utf8")) as InspectionEvent[];
  const byId = new Map(defects.map((e) => [e.item_id, e]));
  const n = 64 * 96;
  let withDefects = 0;
  const T = (manifest.images as { mask_threshold: number }).mask_threshold;
  for (let k = 0; k < ids.length; k++) {
    const e = byId.get(ids[k]!) ?? { item_id: ids[k]!, ts: 0, defects: [], ok: true };
    if (e.defects.length) withDefects++;
    const clean = await renderClean(e, { width: 96, height: 64, seed: 3, format: "raw", color: "gray" });
    const px = (img.data as Uint8Array).subarray(k * n, (k + 1) * n);
    const mk = masks.subarray(k * n, (k + 1) * n);
    const present = new Array(8).fill(0);
    for (let p = 0; p < n; p++) {
      const d = Math.abs(px[p]! - clean.pixels[p]!);
      // The rule holds on the noise-free renders; the same noise field on both shifts it by at most ±1.
      if (mk[p] !== 0 && d < T) assert.unreachable(`image ${k} pixel ${p}: in a mask but differs by ${d}`);
      if (mk[p] === 0 && d > T + 1) assert.unreachable(`image ${k} pixel ${p}: differs by ${d} outside every mask`);
      for (let c = 0; c < 8; c++) if (mk[p]! & (1 << c)) present[c] = 1;
    }
    assert.equal(Array.from(labels.subarray(k * 8, k * 8 + 8)), present, `labels of image ${k}`);
    if (!e.defects.length)
      assert.ok(
        mk.every((b) => b === 0),
        `good item ${e.item_id} has mask pixels`,
      );
    assert.ok(existsSync(join(ds, "images", "png", `${String(k).padStart(6, "0")}.png`)));
  }
  assert.is(withDefects, 3, "half of the images show defective items");
});

test("determinism: the same seed gives identical bytes, another seed does not; the default mix is a valid scenario", async () => {
  const run = async (name: string, seed: number) => {
    const out = join(root, name);
    await generateDataset({ out, hours: 0.5, seed });
    return out;
  };
  const a = await run("a", 5);
  const b = await run("b", 5);
  const c = await run("c", 6);
  const bytes = (d: string, f: string) => readFileSync(join(d, f));
  assert.ok(bytes(a, "features/X.npy").equals(bytes(b, "features/X.npy")), "X.npy differs for the same seed");
  for (const f of Object.keys(readManifest(a).files).filter((f) => f.endsWith(".npy"))) {
    assert.ok(bytes(a, f).equals(bytes(b, f)), `${f} differs for the same seed`);
  }
  assert.not.ok(bytes(a, "features/X.npy").equals(bytes(c, "features/X.npy")), "another seed, same X");
  const ma = readManifest(a) as unknown as { scenario: null; mix: { spec: unknown } };
  assert.is(ma.scenario, null);
  const mix = datasetMix(5, 48, tags);
  assert.equal(scenarioSchemaIssues(mix), []);
  assert.equal(scenarioTagIssues(mix, tags), []);
  const kinds = new Set<string>(mix.events.map((e) => (e.type === "sensor_fault" ? e.fault : e.type)));
  for (const k of ["stuck", "drift", "spike", "dropout", "noise_burst", "setpoint"]) assert.ok(kinds.has(k), k);
});

test("the mix's operator moves stay inside each lever's hard limits (burner power never to its 100 % trip limit)", () => {
  const byId = new Map(tags.map((t) => [t.id, t]));
  let moves = 0;
  let powerUp = 0;
  for (let seed = 0; seed < 200; seed++) {
    for (const e of datasetMix(seed, 48, tags).events) {
      if (e.type !== "setpoint") continue;
      moves++;
      const t = byId.get(e.tag)!;
      const margin = SETPOINT_LIMIT_MARGIN * (t.actuator!.max - t.actuator!.min);
      assert.ok(
        e.value <= t.limits.max - margin + 0.01 && e.value >= t.limits.min + margin - 0.01,
        `${e.tag} ${e.value}`,
      );
      assert.ok(e.value <= t.actuator!.max && e.value >= t.actuator!.min, `${e.tag} ${e.value} in its actuator range`);
      if (e.tag === "furnace_power" && e.value > (t.normal.min + t.normal.max) / 2) powerUp++;
    }
  }
  assert.ok(moves > 500, `${moves} moves`);
  assert.ok(powerUp > 5, "upward burner moves exist (they are limited, not dropped)");
  const power = byId.get("furnace_power")!;
  assert.is(
    excursionRange(power).max,
    power.limits.max - SETPOINT_LIMIT_MARGIN * (power.actuator!.max - power.actuator!.min),
  );
});

test("bad arguments exit 2 with a message naming the flag; a non-empty --out needs --force", async () => {
  const out = join(root, "bad");
  const cases: [string[], RegExp][] = [
    [["--hours", "1", "--seed", "1"], /--out DIR is required/],
    [["--out", out, "--seed", "1"], /--hours H is required/],
    [["--out", out, "--hours", "1"], /--seed S is required/],
    [["--out", out, "--hours", "-1", "--seed", "1"], /--hours/],
    [["--out", out, "--hours=-1", "--seed", "1"], /--hours expects/],
    [["--out", out, "--hours", "abc", "--seed", "1"], /--hours expects/],
    [["--out", out, "--hours", "0.1", "--seed", "1"], /--hours 0\.1 is shorter than one feature window/],
    [["--out", out, "--hours", "1", "--seed", "1.5"], /--seed expects an integer/],
    [["--out", out, "--hours", "1", "--seed", "1", "--images=-2"], /--images expects/],
    [["--out", out, "--hours", "1", "--seed", "1", "--image-size", "10x10"], /--image-size expects/],
    [["--out", out, "--hours", "1", "--seed", "1", "--image-size", "big"], /--image-size expects/],
    [["--out", out, "--hours", "1", "--seed", "1", "--stride-s", "0"], /--stride-s expects/],
    [["--out", out, "--hours", "1", "--seed", "1", "--window-s", "5"], /--window-s expects/],
    [["--out", out, "--hours", "1", "--seed", "1", "--scenario", "no_such_scenario"], /--scenario no_such_scenario/],
    [["--out", out, "--hours", "1", "--seed", "1", "--bogus"], /bogus/],
  ];
  for (const [argv, re] of cases) {
    const c = io();
    assert.is(await main(argv, c.io), 2, argv.join(" "));
    assert.match(c.err.join("\n"), re, argv.join(" "));
  }
  assert.not.ok(existsSync(out), "nothing is written for a bad command line");
  mkdirSync(out);
  writeFileSync(join(out, "keep.txt"), "x");
  const c = io();
  assert.is(await main(["--out", out, "--hours", "0.2", "--seed", "1", "--quiet"], c.io), 2);
  assert.match(c.err.join("\n"), /--out .* is not empty.*--force/);
  const d = io();
  assert.is(await main(["--out", out, "--hours", "0.2", "--seed", "1", "--quiet", "--force"], d.io), 0, d.err.join());
  assert.ok(existsSync(join(out, "keep.txt")), "--force removes only dataset entries");
  assert.ok(existsSync(join(out, "manifest.json")));
  const h = io();
  assert.is(await main(["--help"], h.io), 0);
  assert.match(h.out.join("\n"), /--image-size WxH/);
});

test.run();
