/*
 * Pipeline tick benchmark: latency of `Pipeline.tick("timer")` with the 15 default tags, built the way the daemon
 * builds it (wireParts: LMDB store in a temp data dir, validator, feature stage, auth, WebSocket hub; then Pipeline),
 * with the digital twin as the line and its simulated clock as the line clock. The twin is not started in real-time
 * mode: the bench steps it with `advance(1000)` and hands each second of samples to `pipeline.sink` (validation +
 * durable LMDB append + feature windows), exactly what the real-time twin does once per simulated second.
 *
 * It prefills `--prefill-s` seconds (default 600 = the feature window), then runs `--rounds` rounds of `--ticks`
 * ticks, each tick after one new second of samples, and prints the per-stage breakdown from the result's `stages`.
 * In every round it also times the raw baselines on the same data, in the same process:
 *   - the bare feature computation, `FeatureStage.compute(now)` on the same windows (the "features" stage), once
 *     repeated at a fixed time (warm caches) and once right after each new second of samples (as in a tick);
 *   - a bare `Store.putState` of the same small record into the same LMDB environment (the "store" stage: one
 *     fsync'd commit).
 * The data dir is under os.tmpdir(); the figures for the store stage depend on that file system's fsync.
 *
 * Usage: npx tsx bench/tick.ts [--ticks 1000] [--rounds 5] [--prefill-s 600] [--items-per-min 15] [--isolation-worker]
 * (--items-per-min: MIK-1 items per minute, config twin.items_per_min; the inspection summary of every tick scans
 * the items of the last hour, so a fast line or a longer prefill makes "other" grow.)
 * The shipped models run in the tick (forecaster once its 15 rows are in, sensor graph after its first window,
 * ensemble): prefill at least 1500 s to include them all (the default). Prints figures; asserts nothing.
 * Targets (stated, not enforced): tick p99 < 5 ms without models, < 20 ms with all models (vision excluded).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { validateConfig } from "../src/config/index.js";
import { createLogger } from "../src/core/logger.js";
import { Metrics } from "../src/health/metrics.js";
import { Pipeline, STAGES, type StageName } from "../src/pipeline/pipeline.js";
import { TwinLine } from "../src/twin/index.js";
import { wireParts } from "../src/wiring.js";
import { best, median, ms, summarize, table } from "./lib/index.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!(v > 0)) throw new RangeError(`--${name} must be a positive number`);
  return v;
}

const TICKS = arg("ticks", 1000);
const ROUNDS = arg("rounds", 5);
const PREFILL_S = arg("prefill-s", 1500);
const ITEMS_PER_MIN = arg("items-per-min", 15);
const WARMUP_TICKS = 100;
/** Stop starting new rounds past this (the bench stays within about a minute on a slow machine). */
const BUDGET_MS = 50_000;
const TARGET_P99_MS = 20;

type Row = StageName | "other" | "total" | "wall" | "sink";
interface Round {
  series: Record<Row, number[]>;
  status: Partial<Record<StageName, string>>;
  compute: number[];
  computeFed: number[];
  putState: number[];
  rejected: number;
}

const dir = mkdtempSync(join(tmpdir(), "glassd-bench-tick-"));
const checked = validateConfig({
  data_dir: dir,
  log: { level: "silent" },
  source: { type: "twin" },
  // The twin's camera off: this bench is the tick (vision runs per frame, beside it: bench/vision.ts).
  twin: { items_per_min: ITEMS_PER_MIN, frames: { enabled: false } },
  // The daemon's default isolation (tabular models inline, vision in a worker); --isolation-worker to compare.
  inference: { isolation: process.argv.includes("--isolation-worker") ? "worker" : "inline" },
});
if (!checked.ok) throw new Error(`bench config invalid: ${JSON.stringify(checked.issues)}`);
const config = checked.config;
const logs = createLogger({ level: "silent" });
const metrics = new Metrics();
const abort = new AbortController();
const parts = await wireParts(config, { logs, metrics, safeMode: false, signal: abort.signal });
let pipeline: Pipeline | undefined;

try {
  const twin = parts.sources[0];
  if (!(twin instanceof TwinLine)) throw new Error("expected wireParts to build the twin (source.type twin)");
  const p = new Pipeline(config, parts.ports, parts.clock, metrics, logs.child("pipeline"));
  pipeline = p;
  // Not p.start(): that arms the 1 s timer; here the bench calls tick() itself, back to back.
  const features = parts.ports.features;
  const store = parts.ports.store;
  const featureCount = features.compute(parts.clock.now()).names.length;

  /** One simulated second of line data through the same path as the real-time twin. Returns the sink time. */
  const feedOneSecond = async (): Promise<number> => {
    const out = twin.advance(1000);
    for (const ev of out.inspections) p.onInspection(ev);
    const t = performance.now();
    await p.sink(out.samples);
    return performance.now() - t;
  };

  process.stdout.write(
    `glassd tick bench — node ${process.version}, ${config.tags.length} tags, window ${config.pipeline.window_s} s, ` +
      `${featureCount} features, twin step ${config.twin.step_ms} ms, ${ITEMS_PER_MIN} items/min, ` +
      `LMDB in ${tmpdir()} (fsync'd commits)\n`,
  );
  const tPrefill = performance.now();
  const prefillSink: number[] = [];
  // A tick every 30 line-seconds during the prefill, so the forecaster's rows and the graph's warm-up are in.
  for (let s = 0; s < PREFILL_S; s++) {
    prefillSink.push(await feedOneSecond());
    if (s % 30 === 29) await p.tick("timer");
  }
  const pre = summarize(prefillSink);
  process.stdout.write(
    `prefill: ${PREFILL_S} s of twin samples in ${((performance.now() - tPrefill) / 1000).toFixed(2)} s wall ` +
      `(sink per 1 s batch p50 ${ms(pre.p50)} ms, p99 ${ms(pre.p99)} ms)\n`,
  );
  for (let i = 0; i < WARMUP_TICKS; i++) {
    await feedOneSecond();
    await p.tick("timer");
  }

  const rounds: Round[] = [];
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    if (r > 0 && performance.now() - t0 > BUDGET_MS) {
      process.stdout.write(`(time budget reached: ${r} of ${ROUNDS} rounds run)\n`);
      break;
    }
    const rows: Row[] = [...STAGES, "other", "total", "wall", "sink"];
    const series = Object.fromEntries(rows.map((k) => [k, [] as number[]])) as Record<Row, number[]>;
    const status: Round["status"] = {};
    let rejected = 0;
    for (let i = 0; i < TICKS; i++) {
      series.sink.push(await feedOneSecond());
      const a = performance.now();
      const res = await p.tick("timer");
      series.wall.push(performance.now() - a);
      let known = 0;
      for (const s of STAGES) {
        const st = res.stages[s];
        series[s].push(st.latency_ms);
        status[s] = st.status;
        known += st.latency_ms;
      }
      const total = res.performance_metrics.total_latency_ms;
      series.total.push(total);
      // What the stages do not cover: building the result (sensor_data, feature record, inspection summary).
      series.other.push(Math.max(0, total - known));
      rejected += res.ingest.rejected;
    }
    // Raw baselines on the same windows and the same LMDB environment, right after the ticks.
    const compute: number[] = [];
    const now = parts.clock.now();
    for (let i = 0; i < TICKS; i++) {
      const a = performance.now();
      features.compute(now);
      compute.push(performance.now() - a);
    }
    // The same call right after one more second of samples (as in a tick): the windows just changed, caches are cold.
    const computeFed: number[] = [];
    for (let i = 0; i < TICKS; i++) {
      await feedOneSecond();
      const at = parts.clock.now();
      const a = performance.now();
      features.compute(at);
      computeFed.push(performance.now() - a);
    }
    const putState: number[] = [];
    for (let i = 0; i < TICKS; i++) {
      const a = performance.now();
      await store.putState("bench.baseline", { tick: i, ts: now, trigger: "timer", features: featureCount });
      putState.push(performance.now() - a);
    }
    rounds.push({ series, status, compute, computeFed, putState, rejected });
  }

  // ── output ──────────────────────────────────────────────────────────────────────────────────────────────────────
  const per = rounds.map((r) => ({
    tick: summarize(r.series.total),
    wall: summarize(r.series.wall),
    compute: summarize(r.compute),
    computeFed: summarize(r.computeFed),
    put: summarize(r.putState),
    sink: summarize(r.series.sink),
  }));
  process.stdout.write(`\nper round (${TICKS} ticks each, one new second of samples before each tick; ms)\n`);
  process.stdout.write(
    table(
      [
        "round",
        "tick p50",
        "tick p99",
        "tick max",
        "bare compute p50",
        "p99",
        "after feed p50",
        "p99",
        "bare putState p50",
        "p99",
        "sink 1 s p50",
        "p99",
      ],
      per.map((x, i) => [
        i + 1,
        ms(x.tick.p50),
        ms(x.tick.p99),
        ms(x.tick.max),
        ms(x.compute.p50),
        ms(x.compute.p99),
        ms(x.computeFed.p50),
        ms(x.computeFed.p99),
        ms(x.put.p50),
        ms(x.put.p99),
        ms(x.sink.p50),
        ms(x.sink.p99),
      ]),
    ),
  );

  const medOf = (row: Row, q: "p50" | "p99" | "max") => median(rounds.map((r) => summarize(r.series[row])[q]));
  const label: Record<Row, string> = {
    validate: "validate (0 on timer ticks: the sink validates)",
    features: "features",
    models: "models",
    explain: "explain",
    recommend: "recommend",
    autonomy: "autonomy",
    publish: "publish (JSON + WS broadcast, 0 clients)",
    store: "store (tick record every 10 s, not awaited)",
    other: "other (assemble result, inspection)",
    total: "TOTAL (result.performance_metrics)",
    wall: "wall (await tick())",
    sink: "sink per 1 s batch (not in the tick)",
  };
  const rowsOut = ([...STAGES, "other", "total", "wall", "sink"] as Row[]).map((k) => [
    label[k],
    ((rounds[0]?.status ?? {}) as Record<string, string>)[k] ?? "",
    ms(medOf(k, "p50")),
    ms(medOf(k, "p99")),
    ms(medOf(k, "max")),
  ]);
  process.stdout.write(`\nstage breakdown (median over ${rounds.length} rounds of each round's percentile; ms)\n`);
  process.stdout.write(table(["stage", "status", "p50", "p99", "max"], rowsOut));

  const p99s = per.map((x) => x.tick.p99);
  const p50s = per.map((x) => x.tick.p50);
  const bestP99 = best(p99s);
  const medP99 = median(p99s);
  const cmp = (stage: "features" | "store", base: "compute" | "computeFed" | "put") => {
    const s = medOf(stage, "p50");
    const b = median(per.map((x) => x[base].p50));
    return `${ms(s)} vs ${ms(b)} ms bare (${(s / b).toFixed(2)}×)`;
  };
  const rejected = rounds.reduce((a, r) => a + r.rejected, 0);
  process.stdout.write(
    `\nsummary: tick p50 best ${ms(best(p50s))} / median ${ms(median(p50s))} ms; ` +
      `p99 best ${ms(bestP99)} / median ${ms(medP99)} ms; max ${ms(best(per.map((x) => x.tick.max)))}–` +
      `${ms(Math.max(...per.map((x) => x.tick.max)))} ms\n` +
      `  target: tick p99 < ${TARGET_P99_MS} ms with the models (vision excluded) → ${medP99 < TARGET_P99_MS ? "OK" : "ABOVE TARGET"} ` +
      `(median of rounds)\n` +
      `  features stage p50 ${cmp("features", "compute")} at a fixed time, ${cmp("features", "computeFed")} ` +
      `right after a 1 s feed\n` +
      `  store stage p50 ${cmp("store", "put")}\n` +
      `  samples rejected by validation during the measured ticks: ${rejected}\n`,
  );
} finally {
  await pipeline?.stop();
  await parts.hub.close();
  for (const s of [...parts.started].reverse()) await s.stop();
  metrics.close();
  rmSync(dir, { recursive: true, force: true });
}
