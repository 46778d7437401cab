/*
 * The shipped forecaster follows a scripted cause, through the daemon's own tick path (validation, FeatureStage,
 * ModelStage with the MIK-1 `recent` rates, the registry running the ONNX model): a lehr cooling-fan failure raises
 * the predicted crack probability before the first crack reaches the MIK-1, compared with the same line (same seed)
 * without the failure. The twin runs in manual time, so the test is fast and deterministic.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/validate.js";
import type { RawSample, Sample } from "../src/core/types.js";
import { FeatureStage } from "../src/features/index.js";
import { RecentDefectRates } from "../src/inference/recent.js";
import { ModelRegistry } from "../src/inference/registry.js";
import { type ForecastOut, ModelStage } from "../src/inference/stage.js";
import { Validator } from "../src/ingest/validate.js";
import { loadScenario, ScenarioRunner } from "../src/twin/scenario/index.js";
import { TwinLine } from "../src/twin/twin-line.js";
import { modelsDir, registryOptions } from "./inference-fixtures.js";

const config = defaultConfig();
const START = Date.UTC(2026, 5, 1, 6, 0, 0);
const MIN = 60_000;
const FAN_AT_MIN = 120; // scenarios/fan_failure.yaml

interface Run {
  /** Minute → forecaster p(crack) at +60 min. */
  p60: Map<number, number>;
  /** Minute → cracked items inspected in that minute. */
  cracks: Map<number, number>;
  /** Minute → the sensor graph's per-node fault probability. */
  nodes: Map<number, Record<string, number>>;
}

async function run(registry: ModelRegistry, scenario: string, minutes: number): Promise<Run> {
  const twin = new TwinLine({
    tags: config.tags,
    seed: 77,
    speed: 1,
    stepMs: config.twin.step_ms,
    itemsPerMin: config.twin.items_per_min,
    startTs: START,
  });
  new ScenarioRunner(loadScenario(scenario, config.tags)).attach(twin);
  let now = START;
  const validator = new Validator(config.tags, config.validation, { now: () => now });
  const features = FeatureStage.fromConfig(config);
  const recent = new RecentDefectRates(4 * 60 * MIN);
  const stage = new ModelStage({
    registry,
    tags: config.tags,
    featureNames: features.names,
    classes: ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"],
    pixelSizeMm: 0.1,
    vision: { maskThreshold: 0.5, scoreThreshold: 0.5, minPixels: 4, windowS: 900 },
    risk: { thresholds: {}, hysteresis: 0.01 },
    recent: (ts, h) => recent.rates(ts, h),
  });
  const out: Run = { p60: new Map(), cracks: new Map(), nodes: new Map() };
  for (let m = 1; m <= minutes; m++) {
    const { samples, inspections } = twin.advance(MIN);
    const accepted: Sample[] = [];
    for (const raw of samples as RawSample[]) {
      now = raw.ts;
      const r = validator.validate(raw);
      if (r.ok) accepted.push(r.sample);
    }
    now = twin.now();
    features.push(accepted);
    for (const e of inspections) {
      recent.add(e);
      if (e.defects.some((d) => d.class === "crack")) out.cracks.set(m, (out.cracks.get(m) ?? 0) + 1);
    }
    const p = await stage.run(now, features.compute(now).values, features.windows);
    if (p.forecast.status === "ok") out.p60.set(m, (p.forecast as ForecastOut).probability["60"]?.crack ?? Number.NaN);
    if (p.sensor_graph.status === "ok")
      out.nodes.set(m, (p.sensor_graph as { node_scores: Record<string, number> }).node_scores);
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

let registry: ModelRegistry;
test.before(async () => {
  // The sensor graph is in the manifest as rejected by the factory (it trails the z-score baseline on node AUROC);
  // these tests judge what it does when an engineer allows it.
  registry = new ModelRegistry(registryOptions([modelsDir()], { isolation: "inline", allowRejected: ["gnn"] }));
  await registry.start();
});
test.after(async () => {
  await registry?.stop();
});

test("a lehr fan failure raises predicted crack risk before cracks reach the MIK-1", async () => {
  {
    const steady = await run(registry, "steady", 200);
    const fan = await run(registry, "fan_failure", 200);
    // The line has a background crack rate: "cracks appear" is when the failure's cracks show, i.e. the minute
    // at which the failing line has inspected 3 more cracked items since the failure than the same line without it.
    let excess = 0;
    let first: number | undefined;
    for (let m = FAN_AT_MIN + 1; m <= 200 && first === undefined; m++) {
      excess += (fan.cracks.get(m) ?? 0) - (steady.cracks.get(m) ?? 0);
      if (excess >= 3) first = m;
    }
    assert.ok(first !== undefined, "the fan failure produced no excess cracks within 80 min");
    // Minutes after the failure and before the first crack is inspected (the lehr transit delay).
    const window: number[] = [];
    for (let m = FAN_AT_MIN + 5; m < (first as number); m++) window.push(m);
    assert.ok(window.length >= 5, `only ${window.length} minutes between the failure and the first crack`);
    const pick = (r: Run) => window.map((m) => r.p60.get(m)).filter((v): v is number => Number.isFinite(v));
    const pFan = mean(pick(fan));
    const pSteady = mean(pick(steady));
    const before = mean([...Array(30).keys()].map((i) => fan.p60.get(FAN_AT_MIN - 30 + i) ?? Number.NaN));
    console.log(
      `  p(crack, +60 min), min ${window[0]}–${first}: fan failure ${(pFan * 100).toFixed(3)} %, ` +
        `no failure ${(pSteady * 100).toFixed(3)} %, half hour before the failure ${(before * 100).toFixed(3)} %`,
    );
    assert.ok(
      pFan > 2 * pSteady && pFan > 2 * before,
      `p(crack, +60 min) after the failure, before the first crack (min ${window[0]}–${first}): ` +
        `${(pFan * 100).toFixed(3)} % vs ${(pSteady * 100).toFixed(3)} % without the failure and ` +
        `${(before * 100).toFixed(3)} % in the half hour before it`,
    );
  }
});

test("the sensor graph flags the faulty sensor, by name, and stays quiet on the steady line", async () => {
  if (!registry.names().includes("gnn")) {
    console.log("  (no gnn in the manifest: skipped)");
    return;
  }
  const steady = await run(registry, "steady", 90);
  // After the first windows are full (the slowest tag, humidity, has a 45 min window), nothing is flagged.
  for (const [m, scores] of steady.nodes)
    if (m >= 50)
      for (const [tag, v] of Object.entries(scores)) assert.ok(v < 0.5, `steady line, minute ${m}: ${tag} at ${v}`);
  assert.ok(
    [...steady.nodes.keys()].some((m) => m >= 50),
    "the graph answered on the steady line",
  );

  // scenarios/sensor_faults.yaml: furnace_temperature stuck 30–90 min, cooling_rate dropout 150–180 min.
  const faults = await run(registry, "sensor_faults", 180);
  const top = (m: number) => {
    const e = Object.entries(faults.nodes.get(m) ?? {});
    e.sort((a, b) => b[1] - a[1]);
    return e[0];
  };
  for (const m of [50, 60, 70, 80]) {
    const [tag, v] = top(m) ?? ["none", 0];
    assert.is(tag, "furnace_temperature", `minute ${m}: top node ${tag} (${v})`);
    assert.ok(v > 0.5, `minute ${m}: furnace_temperature at ${v}`);
  }
  for (const m of [165, 175]) {
    const v = faults.nodes.get(m)?.cooling_rate ?? 0;
    assert.ok(v > 0.5, `minute ${m}: cooling_rate (dropout) at ${v}`);
  }
});

test.run();
