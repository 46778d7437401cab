/*
 * Inference benchmark, on the trained models of models/manifest.json (or --models-dir DIR):
 *   1. per model, batch-1 latency of `ModelRegistry.run` (checked inputs, bounded queue, session in its own worker
 *      called through shared memory; and the same with isolation "inline") next to a bare `session.run` on the same
 *      model and input (the golden input's first row) in the same process, calls interleaved, back to back.
 *      Target (stated): registry ≤ 1.1 × bare.
 *   1b. the tick's pattern: the small models called once each per tick with the threads idle in between (every
 *      call then wakes the worker from sleep), bare and glassd side by side.
 *   2. RSS over 50 hot swaps (activate two versions of the same model alternately, each swap = load + sha256 +
 *      golden check + warm-up + retire the one before), for isolation "worker" and "inline", each in a fresh child
 *      process so one does not inherit the other's heap (JS garbage collected before each reading, so what
 *      remains is native memory). Target: no growth beyond noise.
 * Usage: npx tsx bench/inference.ts [--runs 2000] [--rounds 3] [--swaps 50] [--models-dir DIR] [--swap-model NAME[,NAME]]
 *   (--swap-model: default every model of the manifest)
 * Prints figures; asserts nothing.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { readNpy } from "../src/core/npy.js";
import { DEFECT_CLASSES } from "../src/core/types.js";
import type { Feeds, Isolation, TypedData } from "../src/inference/host.js";
import { type ManifestEntry, readGoldenDoc } from "../src/inference/manifest.js";
import { ModelRegistry, type RegistryOptions } from "../src/inference/registry.js";
import { ms, summarize, table } from "./lib/index.js";

const ROOT = new URL("..", import.meta.url).pathname;
function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const RUNS = Number(arg("runs", "2000"));
const ROUNDS = Number(arg("rounds", "3"));
const SWAPS = Number(arg("swaps", "50"));
const DIR = arg("models-dir", join(ROOT, "models"));
const entries = (JSON.parse(readFileSync(join(DIR, "manifest.json"), "utf8")) as { models: ManifestEntry[] }).models;

function options(dirs: string[], isolation: Isolation): RegistryOptions {
  return {
    dirs,
    threads: 1,
    isolation,
    queue: { capacity: 16, policy: "reject_newest", max_batch: 1 },
    expectClasses: { forecaster: DEFECT_CLASSES, vision: DEFECT_CLASSES, ensemble: DEFECT_CLASSES },
    watchIntervalMs: 0,
    onUpdate: "ignore",
    shadowAgreementAbs: 1e-6,
    // the bench measures the call path: models the factory rejected (its acceptance checks) are measured too
    allowRejected: entries.map((e) => e.name),
  };
}

function firstRow(e: ManifestEntry, dir: string): Feeds {
  const gp = join(dir, e.golden!);
  const feeds: Feeds = {};
  for (const i of readGoldenDoc(gp).inputs) {
    const a = readNpy(join(dirname(gp), i.file));
    const per = a.data.length / a.shape[0]!;
    feeds[i.name] = { data: a.data.slice(0, per) as TypedData, dims: [1, ...a.shape.slice(1)] };
  }
  return feeds;
}

async function swapChild(isolation: Isolation, name: string): Promise<void> {
  const e = entries.find((x) => x.name === name)!;
  const tmp = mkdtempSync(join(tmpdir(), "glassd-bench-swap-"));
  const models: ManifestEntry[] = [];
  for (const v of ["1.0.0", "1.0.1"]) {
    const rel = `${e.name}/${v}`;
    mkdirSync(join(tmp, rel), { recursive: true });
    cpSync(join(DIR, e.file), join(tmp, rel, "model.onnx"));
    const gdir = dirname(join(DIR, e.golden!));
    cpSync(join(gdir, "golden.json"), join(tmp, rel, "golden.json"));
    cpSync(join(gdir, "golden"), join(tmp, rel, "golden"), { recursive: true });
    models.push({ ...e, version: v, file: `${rel}/model.onnx`, golden: `${rel}/golden.json` });
  }
  writeFileSync(join(tmp, "manifest.json"), JSON.stringify({ format: "glassd-models", format_version: 1, models }));
  const r = new ModelRegistry(options([tmp], isolation));
  await r.start();
  const feeds = firstRow(e, DIR);
  // a few swaps first: the first sessions grow the allocator's arenas once
  for (let i = 0; i < 4; i++) await r.activate(e.name, i % 2 ? "1.0.0" : "1.0.1");
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const settle = async () => {
    await new Promise((res) => setTimeout(res, 50));
    gc();
  };
  await settle();
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const samples: number[] = [];
  for (let i = 0; i < SWAPS; i++) {
    await r.activate(e.name, i % 2 ? "1.0.0" : "1.0.1");
    await r.run(e.name, feeds);
    if ((i + 1) % 10 === 0) await settle();
    if ((i + 1) % 10 === 0) samples.push(Math.round((process.memoryUsage().rss - rss0) / 1048576));
  }
  const dt = (performance.now() - t0) / SWAPS;
  await r.stop();
  rmSync(tmp, { recursive: true, force: true });
  console.log(
    JSON.stringify({ isolation, model: e.name, bytes: e.bytes, swap_ms: dt, rss_growth_mb_every_10: samples }),
  );
}

const SMALL = 1_000_000; // models under 1 MB: the tick's (forecaster, gnn, ensemble, policy) and the int8 vision model
const ortOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
} as const;

interface Paths {
  e: ManifestEntry;
  feeds: Feeds;
  bare: ort.InferenceSession;
  bareFeeds: () => Record<string, ort.Tensor>;
}

async function paths(e: ManifestEntry): Promise<Paths> {
  const feeds = firstRow(e, DIR);
  const bare = await ort.InferenceSession.create(join(DIR, e.file), ortOptions);
  const bareFeeds = () =>
    Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.data as Float32Array, t.dims as number[])]),
    );
  return { e, feeds, bare, bareFeeds };
}

const ratio = (x: number, b: number) => `${(x / b).toFixed(2)}×`;

/** Back-to-back calls, the three paths interleaved call by call; per-round p50 ratios show the spread. */
async function latency(worker: ModelRegistry, inline: ModelRegistry): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const e of entries) {
    const p = await paths(e);
    const series = { bare: [] as number[], worker: [] as number[], inline: [] as number[] };
    const perRound: number[] = [];
    const runs = e.bytes > SMALL || e.name === "vision" ? Math.max(100, RUNS / 10) : RUNS;
    for (let round = 0; round < ROUNDS; round++) {
      const b0 = series.bare.length;
      for (let i = 0; i < runs; i++) {
        let t = performance.now();
        await p.bare.run(p.bareFeeds());
        series.bare.push(performance.now() - t);
        t = performance.now();
        await inline.run(e.name, p.feeds);
        series.inline.push(performance.now() - t);
        t = performance.now();
        await worker.run(e.name, p.feeds);
        series.worker.push(performance.now() - t);
      }
      perRound.push(summarize(series.worker.slice(b0)).p50 / summarize(series.bare.slice(b0)).p50);
    }
    const b = summarize(series.bare);
    for (const k of ["bare", "inline", "worker"] as const) {
      const s = summarize(series[k]);
      rows.push([
        e.name,
        k === "bare" ? "bare session.run" : k === "worker" ? "glassd (worker, shared memory)" : "registry.run (inline)",
        ms(s.p50),
        ms(s.p99),
        k === "bare" ? "1.00×" : ratio(s.p50, b.p50),
        k === "bare" ? "" : `${((s.p50 - b.p50) * 1000).toFixed(1)}`,
        k === "worker" ? perRound.map((r) => r.toFixed(2)).join(" ") : "",
      ]);
    }
    await p.bare.release();
  }
  console.log(
    `back-to-back batch-1 calls, ${ROUNDS} rounds of ${RUNS} (vision: ${Math.max(100, RUNS / 10)}), interleaved`,
  );
  console.log(table(["model", "path", "p50 ms", "p99 ms", "p50 vs bare", "Δp50 µs", "per-round ×"], rows));
}

/**
 * The tick's pattern: one call per model per tick, the thread idle in between (here 2 ms between ticks instead
 * of the daemon's seconds, to keep the bench short). Bare and glassd alternate which goes first.
 */
async function spaced(worker: ModelRegistry): Promise<void> {
  const small = entries.filter((e) => e.name !== "vision" && e.bytes <= SMALL);
  const ps = await Promise.all(small.map(paths));
  const series = new Map(ps.map((p) => [p.e.name, { bare: [] as number[], worker: [] as number[] }]));
  const ticks = Math.max(200, RUNS / 2) * ROUNDS;
  for (let tick = 0; tick < ticks; tick++) {
    await new Promise((r) => setTimeout(r, 2));
    for (const p of ps) {
      const s = series.get(p.e.name)!;
      const bareFirst = tick % 2 === 0;
      for (const which of bareFirst ? ["bare", "worker"] : ["worker", "bare"]) {
        const t = performance.now();
        if (which === "bare") await p.bare.run(p.bareFeeds());
        else await worker.run(p.e.name, p.feeds);
        (which === "bare" ? s.bare : s.worker).push(performance.now() - t);
      }
    }
  }
  const rows: (string | number)[][] = [];
  for (const p of ps) {
    const s = series.get(p.e.name)!;
    const b = summarize(s.bare);
    const w = summarize(s.worker);
    rows.push([p.e.name, ms(b.p50), ms(b.p99), ms(w.p50), ms(w.p99), ratio(w.p50, b.p50)]);
    await p.bare.release();
  }
  console.log(
    `\ntick pattern: ${ticks} ticks 2 ms apart, each calling ${small.map((e) => e.name).join(", ")} once per path`,
  );
  console.log(table(["model", "bare p50", "bare p99", "glassd p50", "glassd p99", "p50 vs bare"], rows));
}

const child = process.argv.indexOf("--swap-child");
if (child >= 0) {
  await swapChild(process.argv[child + 1] as Isolation, process.argv[child + 2]!);
} else {
  console.log(`models: ${DIR} (${entries.map((e) => `${e.name}@${e.version} ${e.variant}`).join(", ")})`);
  const worker = new ModelRegistry(options([DIR], "worker"));
  const inline = new ModelRegistry(options([DIR], "inline"));
  await worker.start();
  await inline.start();
  await latency(worker, inline);
  await spaced(worker);
  await worker.stop();
  await inline.stop();
  const names = arg("swap-model", entries.map((e) => e.name).join(",")).split(",");
  for (const name of names) {
    console.log(`\nRSS over ${SWAPS} swaps of ${name} (fresh process per mode)`);
    for (const iso of ["worker", "inline"] as const) {
      const out = execFileSync(
        process.execPath,
        [
          "--expose-gc",
          ...process.execArgv,
          new URL(import.meta.url).pathname,
          "--swap-child",
          iso,
          name,
          "--models-dir",
          DIR,
          "--swaps",
          String(SWAPS),
        ],
        { encoding: "utf8" },
      );
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as { swap_ms: number; rss_growth_mb_every_10: number[] };
      console.log(
        `  ${iso.padEnd(6)} swap ${r.swap_ms.toFixed(1)} ms each; RSS growth (MB) after 10/20/…: ${r.rss_growth_mb_every_10.join(", ")}`,
      );
    }
  }
}
