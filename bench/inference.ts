/*
 * Inference benchmark, on the trained models of models/manifest.json (or --models-dir DIR):
 *   1. per model, batch-1 latency of `ModelRegistry.run` (checked inputs, bounded queue, session in its own worker;
 *      and the same with isolation "inline") next to a bare `session.run` on the same model and input (the golden
 *      input's first row) in the same process, rounds interleaved. Target (stated): registry ≤ 1.1 × bare.
 *   2. RSS over 50 hot swaps (activate two versions of the same model alternately, each swap = load + sha256 +
 *      golden check + warm-up + retire the one before), for isolation "worker" and "inline", each in a fresh child
 *      process so one does not inherit the other's heap (JS garbage collected before each reading, so what
 *      remains is native memory). Target: no growth beyond noise.
 * Usage: npx tsx bench/inference.ts [--runs 2000] [--rounds 3] [--swaps 50] [--models-dir DIR] [--swap-model NAME]
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

async function latency(): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const e of entries) {
    const feeds = firstRow(e, DIR);
    const bare = await ort.InferenceSession.create(join(DIR, e.file), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
    const worker = new ModelRegistry(options([DIR], "worker"));
    const inline = new ModelRegistry(options([DIR], "inline"));
    await worker.start();
    await inline.start();
    const series = { bare: [] as number[], worker: [] as number[], inline: [] as number[] };
    const bareFeeds = () =>
      Object.fromEntries(
        Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.data as Float32Array, t.dims as number[])]),
      );
    const runs = e.bytes > 1_000_000 ? Math.max(100, RUNS / 10) : RUNS;
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < runs; i++) {
        let t = performance.now();
        await bare.run(bareFeeds());
        series.bare.push(performance.now() - t);
        t = performance.now();
        await inline.run(e.name, feeds);
        series.inline.push(performance.now() - t);
        t = performance.now();
        await worker.run(e.name, feeds);
        series.worker.push(performance.now() - t);
      }
    }
    const b = summarize(series.bare);
    for (const k of ["bare", "inline", "worker"] as const) {
      const s = summarize(series[k]);
      rows.push([
        e.name,
        k === "bare" ? "bare session.run" : `registry.run (${k})`,
        ms(s.p50),
        ms(s.p99),
        k === "bare" ? "1.00×" : `${(s.p50 / b.p50).toFixed(2)}×`,
      ]);
    }
    await bare.release();
    await worker.stop();
    await inline.stop();
  }
  console.log(`batch-1 latency, ${ROUNDS} interleaved rounds (${RUNS} runs each; models > 1 MB: ${RUNS / 10})`);
  console.log(table(["model", "path", "p50", "p99", "p50 vs bare"], rows));
}

const child = process.argv.indexOf("--swap-child");
if (child >= 0) {
  await swapChild(process.argv[child + 1] as Isolation, process.argv[child + 2]!);
} else {
  console.log(`models: ${DIR} (${entries.map((e) => `${e.name}@${e.version} ${e.variant}`).join(", ")})`);
  await latency();
  const name = arg("swap-model", [...entries].sort((a, b) => b.bytes - a.bytes)[0]!.name);
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
