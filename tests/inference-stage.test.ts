import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/validate.js";
import { readNpy } from "../src/core/npy.js";
import { DEFECT_CLASSES } from "../src/core/types.js";
import { FeatureStage } from "../src/features/index.js";
import type { Feeds, TensorData } from "../src/inference/host.js";
import { FeatureRing, InputSpecError, normaliserFor } from "../src/inference/inputs.js";
import { readGoldenDoc } from "../src/inference/manifest.js";
import { QueueDropError, RunQueue } from "../src/inference/queue.js";
import { ModelRegistry } from "../src/inference/registry.js";
import { type ForecastOut, ModelStage, type ModelStageOptions } from "../src/inference/stage.js";
import { components, postprocess, rleDecode, rleEncode } from "../src/inference/vision.js";
import { copyModel, manifestEntries, modelsDir, registryOptions, writeManifest } from "./inference-fixtures.js";

/*
 * The models stage: the forecaster fed through the daemon's feature ring reproduces the factory's golden output
 * (so the window, row order and feature order are exactly the factory's); parts without a model say why;
 * vision postprocessing, RLE, and the bounded queue's drop policies and batching.
 */

const SRC = modelsDir();
const config = defaultConfig();
const tmp: string[] = [];
const registries: ModelRegistry[] = [];
test.after(async () => {
  for (const r of registries) await r.stop();
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

function stageOptions(registry: ModelRegistry, featureNames: readonly string[]): ModelStageOptions {
  return {
    registry,
    tags: config.tags,
    featureNames,
    classes: DEFECT_CLASSES,
    pixelSizeMm: 0.1,
    vision: { maskThreshold: 0.5, scoreThreshold: 0.5, minPixels: 2, windowS: 600 },
    risk: { thresholds: { crack: 0.3 }, hysteresis: 0.05 },
  };
}

test("forecaster through the feature ring reproduces the factory's golden output", async () => {
  const f = manifestEntries(SRC).find((e) => e.name === "forecaster");
  if (!f) {
    console.log("  (no forecaster in the manifest: skipped)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "glassd-inf-stage-"));
  tmp.push(dir);
  writeManifest(dir, [copyModel(f, SRC, dir, f.version)]);
  const registry = new ModelRegistry(registryOptions([dir]));
  registries.push(registry);
  await registry.start();
  const gp = join(SRC, f.golden!);
  const doc = readGoldenDoc(gp);
  const x = readNpy(join(dirname(gp), doc.inputs[0]!.file));
  const [, T, F] = x.shape as [number, number, number];
  const probGolden = readNpy(join(dirname(gp), doc.outputs.find((o) => o.name === "probability")!.file));
  // the daemon's feature vector in a different order than the model's: the ring must permute it back
  const daemonNames = [...f.feature_order!].reverse();
  const sample = 3; // golden window #3
  // The forecaster's second input (recent MIK-1 rates) comes from the golden file for that window.
  const recentDoc = doc.inputs.find((i) => i.name === "recent");
  const recentGolden = recentDoc ? readNpy(join(dirname(gp), recentDoc.file)) : undefined;
  const perSample = recentGolden ? (recentGolden.data as Float32Array).length / recentGolden.shape[0]! : 0;
  const stage = new ModelStage({
    ...stageOptions(registry, daemonNames),
    ...(recentGolden
      ? {
          recent: () => (recentGolden.data as Float32Array).slice(sample * perSample, (sample + 1) * perSample),
        }
      : {}),
  });
  const windows = FeatureStage.fromConfig(config).windows;
  const stride = (f.extra.stride_s as number) * 1000;
  const t0 = Date.UTC(2026, 0, 1);
  let last: Awaited<ReturnType<ModelStage["run"]>> | undefined;
  for (let t = 0; t < T; t++) {
    const row = (x.data as Float32Array).subarray((sample * T + t) * F, (sample * T + t + 1) * F);
    const daemonRow = Float32Array.from(daemonNames, (_, i) => row[F - 1 - i]!);
    // ticks every 1 s between rows: only the first tick at/after each due time is kept
    for (let k = 0; k < 3; k++) last = await stage.run(t0 + t * stride + k * 1000, daemonRow, windows);
    if (t < T - 1) {
      assert.is(last!.forecast.status, "unavailable");
      assert.match((last!.forecast as { reason: string }).reason, new RegExp(`window filling: ${t + 1} of ${T} rows`));
    }
  }
  assert.is(last!.forecast.status, "ok", JSON.stringify(last!.forecast));
  const fc = last!.forecast as ForecastOut;
  const H = fc.horizons_min.length;
  const C = DEFECT_CLASSES.length;
  for (let h = 0; h < H; h++)
    for (let c = 0; c < C; c++) {
      const want = (probGolden.data as Float32Array)[(sample * H + h) * C + c]!;
      const got = fc.probability[String(fc.horizons_min[h])]![DEFECT_CLASSES[c]!]!;
      assert.ok(
        Math.abs(got - want) <= doc.tolerance.abs + doc.tolerance.rel * Math.abs(want),
        `${h}/${c}: ${got} vs ${want}`,
      );
    }
  assert.is(fc.attention?.length, T);
  // the rest has no model here and says so
  assert.is(last!.status, "ok");
  assert.is(last!.vision.status, "unavailable");
  assert.match((last!.risk as { reason: string }).reason, /ensemble: no model of this name/);
  assert.match(last!.reason, /sensor-graph/);
  assert.ok(typeof last!.latency_ms.forecaster === "number");

  // a gap of more than two strides restarts the window
  const later = await stage.run(t0 + (T + 5) * stride, new Float32Array(F), windows);
  assert.match((later.forecast as { reason: string }).reason, /window filling: 1 of/);
});

test("a model whose features the daemon does not compute is refused with the names", () => {
  const ref = {
    name: "forecaster",
    feature_order: ["a", "b", "zzz"],
    normalisation: null,
    extra: { window_rows: 2, stride_s: 60 },
    inputs: [{ name: "x", shape: [-1, 2, 3], dtype: "float32" as const }],
  };
  try {
    new FeatureRing(ref, ["a", "b"]);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, InputSpecError);
    assert.match((err as Error).message, /1 feature\(s\) the model needs are not computed by the daemon: zzz/);
  }
  // normalisation outside the graph is applied exactly: clip((x − c)/s), NaN → 0
  const n = normaliserFor({ name: "m", normalisation: { kind: "robust", center: [1, 0], scale: [2, 1], clip: 3 } }, 2);
  const out = new Float32Array(2);
  n.apply(Float32Array.of(5, Number.NaN), out, 0);
  assert.equal(Array.from(out), [2, 0]);
  n.apply(Float32Array.of(100, -100), out, 0);
  assert.equal(Array.from(out), [3, -3]);
});

test("no models at all: every part unavailable with its reason", async () => {
  const dir = mkdtempSync(join(tmpdir(), "glassd-inf-empty-"));
  tmp.push(dir);
  const registry = new ModelRegistry(registryOptions([dir]));
  registries.push(registry);
  await registry.start();
  const stage = new ModelStage(stageOptions(registry, []));
  const p = await stage.run(Date.now(), new Float32Array(0), FeatureStage.fromConfig(config).windows);
  assert.is(p.status, "unavailable");
  for (const part of [p.forecast, p.sensor_graph, p.vision, p.risk]) assert.is(part.status, "unavailable");
  assert.match(p.reason, /forecaster: no model of this name/);
});

test("vision postprocess: components, boxes in frame pixels, mm², RLE", () => {
  const C = DEFECT_CLASSES.length;
  const H = 8;
  const W = 10;
  const masks = new Float32Array(C * H * W);
  const set = (c: number, y: number, x: number, v = 0.9) => {
    masks[c * H * W + y * W + x] = v;
  };
  // crack: two blobs (2×2 at (1,1), 1×3 at row 6); bubble: a blob but an image score under the threshold
  for (const [y, x] of [
    [1, 1],
    [1, 2],
    [2, 1],
    [2, 2],
  ])
    set(0, y!, x!, 0.8);
  for (const x of [5, 6, 7]) set(0, 6, x);
  set(0, 4, 9, 0.9); // one pixel: below minPixels
  for (const x of [0, 1]) set(1, 0, x);
  const scores = new Float32Array(C);
  scores[0] = 0.95;
  scores[1] = 0.2;
  const r = postprocess(
    { data: masks, dims: [1, C, H, W] },
    { data: scores, dims: [1, C] },
    {
      classes: DEFECT_CLASSES,
      maskThreshold: 0.5,
      scoreThreshold: 0.5,
      minPixels: 2,
      pixelSizeMm: 0.1,
      originalWidth: 100,
      originalHeight: 80,
    },
  );
  assert.equal(r.present, ["crack"]);
  assert.is(r.defects.length, 2);
  const [a, b] = r.defects;
  assert.equal(a!.box, [10, 10, 20, 20]);
  assert.is(a!.area_px, 400);
  assert.ok(Math.abs(a!.area_mm2 - 4) < 1e-9); // 400 px × (0.1 mm)²
  assert.ok(Math.abs(a!.score - 0.8) < 1e-6);
  assert.equal(b!.box, [50, 60, 30, 10]);
  const m = rleDecode(b!.mask);
  assert.equal(
    [...m.keys()].filter((i) => m[i]),
    [6 * W + 5, 6 * W + 6, 6 * W + 7],
  );
  assert.ok(Math.abs(r.scores.bubble! - 0.2) < 1e-6);
  const bits = Uint8Array.of(1, 1, 0, 0, 1, 1, 1, 0, 1);
  assert.equal(rleEncode(bits, 3, 3).counts, [0, 2, 2, 3, 1, 1]);
  assert.equal(Array.from(rleDecode(rleEncode(bits, 3, 3))), Array.from(bits));
  assert.is(components(bits, 3, 3).count, 2);
});

async function rejects(p: Promise<unknown>, check: (e: Error) => boolean): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(check(err as Error), (err as Error).message);
    return;
  }
  assert.unreachable("expected a rejection");
}

function deferred() {
  const calls: { feeds: Feeds; resolve(out: Feeds): void }[] = [];
  const exec = (feeds: Feeds) => new Promise<Feeds>((resolve) => calls.push({ feeds, resolve }));
  return { calls, exec };
}
const t2 = (v: number): TensorData => ({ data: Float32Array.of(v, v), dims: [1, 2] });
const one = (v: number): Feeds => ({ x: t2(v) });

test("queue: reject_newest keeps the waiting calls, drop_oldest keeps the newest", async () => {
  const d = deferred();
  const drops: string[] = [];
  const q = new RunQueue(d.exec, { name: "m@1", capacity: 1, policy: "reject_newest", maxBatch: 1 }, (p) =>
    drops.push(p),
  );
  const p1 = q.submit(one(1));
  const p2 = q.submit(one(2));
  const p3 = q.submit(one(3));
  await rejects(
    p3,
    (e: Error) => e instanceof QueueDropError && /m@1 is full; call dropped \(reject_newest\)/.test(e.message),
  );
  d.calls[0]!.resolve({ y: t2(1) });
  await p1;
  await new Promise((r) => setImmediate(r));
  assert.equal(Array.from(d.calls[1]!.feeds.x!.data as Float32Array), [2, 2]);
  d.calls[1]!.resolve({ y: t2(2) });
  await p2;
  assert.equal(drops, ["reject_newest"]);

  const e = deferred();
  const q2 = new RunQueue(e.exec, { name: "v@1", capacity: 1, policy: "drop_oldest", maxBatch: 1 });
  const a = q2.submit(one(1));
  const b = q2.submit(one(2));
  const c = q2.submit(one(3));
  await rejects(b, (x: Error) => x instanceof QueueDropError);
  e.calls[0]!.resolve({ y: t2(1) });
  await a;
  await new Promise((r) => setImmediate(r));
  assert.equal(Array.from(e.calls[1]!.feeds.x!.data as Float32Array), [3, 3]);
  e.calls[1]!.resolve({ y: t2(3) });
  await c;
  assert.is(q2.stats().dropped, 1);
});

test("queue: waiting calls of one shape run as one batch and get their own rows back", async () => {
  const d = deferred();
  const q = new RunQueue(d.exec, { name: "v@1", capacity: 8, policy: "drop_oldest", maxBatch: 4 });
  const first = q.submit(one(0));
  const rest = [1, 2, 3, 4, 5].map((v) => q.submit(one(v)));
  d.calls[0]!.resolve(one(0));
  await first;
  await new Promise((r) => setImmediate(r));
  const batch = d.calls[1]!.feeds.x!;
  assert.equal(batch.dims, [4, 2]);
  assert.equal(Array.from(batch.data as Float32Array), [1, 1, 2, 2, 3, 3, 4, 4]);
  // the "model" doubles its input
  d.calls[1]!.resolve({ x: { data: (batch.data as Float32Array).map((v) => 2 * v), dims: batch.dims } });
  const outs = await Promise.all(rest.slice(0, 4));
  outs.forEach((o, i) => {
    assert.equal(o.x!.dims, [1, 2]);
    assert.equal(Array.from(o.x!.data as Float32Array), [2 * (i + 1), 2 * (i + 1)]);
  });
  await new Promise((r) => setImmediate(r));
  d.calls[2]!.resolve(one(5));
  await rest[4];
  assert.equal(q.stats().batches, 1);
  assert.equal(q.stats().batched_calls, 4);
});

test.run();
