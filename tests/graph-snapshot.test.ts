/*
 * The sensor graph's node features in the live daemon must be the ones the factory trained on (src/twin/dataset:
 * snapshots every 60 s on the twin's sampling grid, after every sample up to them was in the windows). In the
 * daemon a tick falls between the samples of the 2, 10 and 60 s tags and, on a fast twin, before the newest samples
 * have reached the windows; node features taken at the tick's own time then show age_frac / missing_frac values the
 * dataset never has on a healthy sensor (std ≈ 0 there), and the GNN flagged healthy sensors at 30–50× twin speed.
 * These tests pin the GraphSnapshot the live path uses: unit cases on hand-fed windows, then the daemon's tick path
 * (Validator on the twin's clock, FeatureStage, ModelStage with the real registry and the shipped GNN) on a steady
 * twin delivered as at 40× (a tick every ~40 line-seconds at any phase, the last batch still in flight).
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { TagConfig } from "../src/config/index.js";
import { defaultConfig } from "../src/config/validate.js";
import type { RawSample, Sample } from "../src/core/types.js";
import { GRAPH_NODE_FEATURES, type GraphEdges, GraphFeatureExtractor } from "../src/features/graph.js";
import { FeatureStage, TagWindows } from "../src/features/index.js";
import { GraphSnapshot } from "../src/inference/inputs.js";
import { ModelRegistry } from "../src/inference/registry.js";
import { type GraphOut, ModelStage } from "../src/inference/stage.js";
import { Validator } from "../src/ingest/validate.js";
import { Rng } from "../src/twin/rng.js";
import { loadScenario, ScenarioRunner } from "../src/twin/scenario/index.js";
import { TwinLine } from "../src/twin/twin-line.js";
import { modelsDir, registryOptions } from "./inference-fixtures.js";

const config = defaultConfig();
const tags: TagConfig[] = config.tags;
const START = Date.UTC(2026, 5, 1, 6, 0, 0);
const F = GRAPH_NODE_FEATURES.length;
const fi = (name: (typeof GRAPH_NODE_FEATURES)[number]) => GRAPH_NODE_FEATURES.indexOf(name);
const AGE = fi("age_frac");
const MISSING = fi("missing_frac");
const NEIGHBOR = fi("neighbor_dev");
const STRIDE_MS = 60_000;
/** Tags whose period divides the 60 s stride: the dataset always has their sample exactly at a snapshot. */
const gridTags = tags.filter((t) => STRIDE_MS % t.period_ms === 0).map((t) => t.id);
const noEdges: GraphEdges = { src: new Int32Array(0), dst: new Int32Array(0), kind: new Uint8Array(0) };

/** Windows fed with every tag on its own grid from START, values in the band, up to `until` (per-tag overrides). */
function fedWindows(until: number, lastOf: Record<string, number> = {}): TagWindows {
  const w = new TagWindows(tags, { windowS: config.pipeline.window_s, staleFactor: config.validation.stale_factor });
  const rng = new Rng(5);
  for (const t of tags) {
    const c = (t.normal.min + t.normal.max) / 2;
    const h = (t.normal.max - t.normal.min) / 2;
    const end = lastOf[t.id] ?? until;
    for (let ts = START; ts <= end; ts += t.period_ms)
      w.push({ tag: t.id, ts, value: c + 0.05 * h * rng.gaussian(), quality: "good", source: "test", seq: 0 });
  }
  return w;
}

const row = (x: Float32Array, tag: string) => {
  const i = tags.findIndex((t) => t.id === tag);
  return x.subarray(i * F, (i + 1) * F);
};

test("a tick between samples, with the newest samples in flight: grid tags look as at a dataset snapshot", () => {
  const tMax = START + 1_837_000; // 37 s past a minute: between the 2, 10 and 60 s tags' samples
  const now = tMax + 3_500; // the twin is 3.5 s further; those samples have not reached the windows
  const w = fedWindows(tMax);
  const x = new GraphFeatureExtractor(tags, noEdges);
  const snap = new GraphSnapshot(tags, STRIDE_MS);
  const ts = snap.take(w, now);
  assert.is(ts, tMax + 999, "the snapshot is where the delivered samples end, not the tick");
  const live = x.compute(snap, ts);
  for (const id of gridTags) {
    assert.is(row(live, id)[AGE], 0, `${id} age_frac`);
    assert.is(row(live, id)[MISSING], 0, `${id} missing_frac`);
  }
  // Each grid tag's row is the dataset extractor's row at the tag's own newest sample (its snapshot instant).
  for (const id of gridTags) {
    const at = w.lastTsAtOrBefore(id, ts);
    const ref = row(x.compute(w, at), id);
    const got = row(x.compute(snap, ts), id);
    for (let f = 0; f < F; f++)
      if (f !== NEIGHBOR)
        assert.ok(Object.is(got[f], ref[f]), `${id} ${GRAPH_NODE_FEATURES[f]}: ${got[f]} vs ${ref[f]}`);
  }
  // What the daemon computed before: the tick's own time (the bug). Documented here so the case stays a real one.
  const atTick = x.compute(w, now);
  for (const id of ["furnace_temperature", "batch_flow", "furnace_pressure", "annealing_zone1"])
    assert.ok(row(atTick, id)[AGE]! > 0, `${id} age_frac at the tick's own time is ${row(atTick, id)[AGE]}`);
});

test("a sensor in dropout neither holds the snapshot back nor hides: it shows its age as in the dataset", () => {
  const tMax = START + 1_837_000;
  const w = fedWindows(tMax, { cooling_rate: tMax - 41_000, furnace_pressure: tMax - 157_000 });
  const x = new GraphFeatureExtractor(tags, noEdges);
  const snap = new GraphSnapshot(tags, STRIDE_MS);
  const ts = snap.take(w, tMax + 200);
  assert.is(ts, tMax + 200, "the other tags decide the snapshot");
  const live = x.compute(snap, ts);
  // cooling_rate (2 s) is due at tMax − 1 s on its grid: its newest sample is 40 s older.
  assert.equal(row(live, "cooling_rate")[AGE], Math.fround(40_000 / 600_000));
  // furnace_pressure (60 s) is due at tMax − 37 s: its newest sample is 120 s older.
  assert.equal(row(live, "furnace_pressure")[AGE], Math.fround(120_000 / 600_000));
  assert.is(row(live, "furnace_temperature")[AGE], 0);
  assert.is(row(live, "batch_flow")[AGE], 0);
});

test("no grid tag with data: the snapshot is the tick", () => {
  const w = new TagWindows(tags, { windowS: 600 });
  const snap = new GraphSnapshot(tags, STRIDE_MS);
  assert.is(snap.take(w, START + 5_000), START + 5_000);
  assert.throws(() => new GraphSnapshot(tags, 0), /stride/);
});

// --- the daemon's tick path on a steady twin delivered as at 40× ---

let registry: ModelRegistry | undefined;
test.after(async () => {
  await registry?.stop();
});

test("steady twin at 40×: the live node features are the dataset's and the GNN flags no sensor", async () => {
  registry = new ModelRegistry(registryOptions([modelsDir()], { isolation: "inline", allowRejected: ["gnn"] }));
  await registry.start();
  const gnn = registry.snapshot().get("gnn");
  if (!gnn) {
    console.log("  (no gnn in the manifest: skipped)");
    return;
  }
  const threshold = typeof gnn.ref.extra.score_threshold === "number" ? gnn.ref.extra.score_threshold : 0.5;
  const twin = new TwinLine({
    tags,
    seed: 77,
    speed: 1,
    stepMs: config.twin.step_ms,
    itemsPerMin: config.twin.items_per_min,
    startTs: START,
  });
  new ScenarioRunner(loadScenario("steady", tags)).attach(twin);
  // The daemon: validation on the twin's clock when a batch arrives, the FeatureStage's windows.
  const live = { validator: new Validator(tags, config.validation, { now: () => twin.now() }) };
  const features = FeatureStage.fromConfig(config);
  // The dataset writer: each sample validated at its own time, into windows of its own.
  let refNow = START;
  const refValidator = new Validator(tags, config.validation, { now: () => refNow });
  const refWindows = new TagWindows(tags, { windowS: config.pipeline.window_s, staleFactor: 3 });
  const refX = new GraphFeatureExtractor(tags, noEdges, { windowS: config.pipeline.window_s });

  const fed: Float32Array[] = [];
  const stage = new ModelStage({
    // The real registry; the GNN's input is kept to compare it with the dataset's.
    registry: {
      snapshot: () => registry!.snapshot(),
      names: () => registry!.names(),
      unavailableReason: (n) => registry!.unavailableReason(n),
      run: (name, feeds, inst) => {
        if (name === gnn.name)
          fed.push((Object.values(feeds).find((t) => t.data instanceof Float32Array)!.data as Float32Array).slice());
        return registry!.run(name, feeds, inst);
      },
    },
    tags,
    featureNames: features.names,
    classes: ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"],
    pixelSizeMm: 0.1,
    vision: { maskThreshold: 0.5, scoreThreshold: 0.5, minPixels: 4, windowS: 900 },
    risk: { thresholds: {}, hysteresis: 0.01 },
    names: { graph: [gnn.name] },
  });

  const rng = new Rng(40);
  const end = START + 65 * 60_000;
  let nextTick = START + 40_000 + Math.round(rng.uniform(0, 2000));
  let rejected = 0;
  let scored = 0;
  let offGrid = 0;
  let agedAtTick = 0;
  const deliver = (samples: RawSample[]) => {
    const { accepted, rejected: bad } = live.validator.validateBatch(samples);
    rejected += bad.length;
    features.push(accepted);
    const ok: Sample[] = [];
    for (const raw of samples) {
      refNow = raw.ts;
      const r = refValidator.validate(raw);
      if (r.ok) ok.push(r.sample);
    }
    refWindows.pushMany(ok);
  };
  while (twin.now() < end) {
    // The twin's real-time mode: 1–4 steps per timer callback at 40×, then the batch goes to the sink.
    const { samples } = twin.advance(config.twin.step_ms * (1 + Math.floor(rng.next() * 4)));
    const now = twin.now();
    if (now >= nextTick) {
      // The tick runs while this batch is still on its way (awaiting the store).
      const p = await stage.run(now, features.compute(now).values, features.windows);
      nextTick = now + 40_000 + Math.round(rng.uniform(-1500, 1500));
      if (p.sensor_graph.status === "ok") {
        const g = p.sensor_graph as GraphOut;
        const x = fed.at(-1)!;
        scored++;
        if ((g.snapshot_ts - START) % STRIDE_MS !== 0) offGrid++;
        const old = new GraphFeatureExtractor(tags, noEdges).compute(features.windows, now);
        if (gridTags.some((id) => row(old, id)[AGE]! > 0)) agedAtTick++;
        for (const [tag, v] of Object.entries(g.node_scores ?? {}))
          assert.ok(v < threshold, `steady line, ${(now - START) / 60_000} min: ${tag} flagged at ${v}`);
        for (const t of tags) {
          // The dataset's row: grid tags at their own newest sample instant, slower tags at the snapshot.
          const at = gridTags.includes(t.id) ? refWindows.lastTsAtOrBefore(t.id, g.snapshot_ts) : g.snapshot_ts;
          const ref = row(refX.compute(refWindows, at), t.id);
          const got = row(x, t.id);
          for (let f = 0; f < F; f++) {
            if (f === NEIGHBOR) continue;
            const a = got[f]!;
            const b = ref[f]!;
            assert.ok(
              (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)),
              `${t.id} ${GRAPH_NODE_FEATURES[f]} at ${(now - START) / 1000} s: live ${a}, dataset ${b}`,
            );
          }
          if (gridTags.includes(t.id)) {
            assert.is(got[AGE], 0, `${t.id} age_frac`);
            assert.is(got[MISSING], 0, `${t.id} missing_frac`);
          }
        }
      }
    }
    deliver(samples as RawSample[]);
  }
  console.log(
    `  ${scored} scored ticks, ${offGrid} snapshots off the 60 s grid, ${agedAtTick} with grid tags aged at the tick's time`,
  );
  assert.is(rejected, 0, "batches of ≤ 4 steps are never stale");
  assert.ok(scored >= 20, `the graph answered on ${scored} ticks`);
  assert.ok(offGrid > scored / 2, `most snapshots are off the 60 s grid (${offGrid} of ${scored})`);
  assert.ok(agedAtTick > scored / 2, `at the tick's own time grid tags look aged (${agedAtTick} of ${scored})`);
});

test.run();
