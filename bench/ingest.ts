/*
 * Ingest benchmark: samples/s through Validator.validateBatch + Store.appendBatch (each batch awaited until durable,
 * as a source that acknowledges upstream would), next to a bare lmdb-js put loop writing the same keys and 9-byte
 * values into an environment opened with the same durability settings (overlappingSync off, sync on), awaiting
 * each batch's commit the same way. Prints both rates, their ratio and p50/p99 batch commit latency.
 *
 * Usage: npx tsx bench/ingest.ts [--quick]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { open } from "lmdb";
import type { TagConfig } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import { SimClock } from "../src/core/clock.js";
import type { RawSample } from "../src/core/types.js";
import { Validator } from "../src/ingest/validate.js";
import { Store } from "../src/storage/index.js";
import { quantile } from "./lib/index.js";

const quick = process.argv.includes("--quick");
const config = defaultConfig();
const TAGS = config.tags;
const T0 = Date.UTC(2026, 0, 1);

interface Case {
  name: string;
  batch: number;
  /** Time between two rounds over all tags inside a batch, ms. */
  stepMs: number;
  total: number;
}

const CASES: Case[] = [
  // The daemon's shape: every tag once per second, one batch per second.
  { name: "15 tags × 1 s", batch: TAGS.length, stepMs: 1000, total: quick ? 6_000 : 30_000 },
  { name: "batch 100", batch: 100, stepMs: 40, total: quick ? 20_000 : 100_000 },
  { name: "batch 1000", batch: 1000, stepMs: 40, total: quick ? 50_000 : 300_000 },
];

/** A smooth, physically plausible signal: stays inside the normal band and changes at ≤ half the allowed rate. */
function signal(t: TagConfig, ts: number): number {
  const period = 600;
  const mid = (t.normal.min + t.normal.max) / 2;
  const maxRate = t.max_rate_per_s ?? Number.POSITIVE_INFINITY;
  const amp = Math.min((t.normal.max - t.normal.min) / 2, (maxRate * period) / (4 * Math.PI));
  return mid + amp * Math.sin((2 * Math.PI * ts) / 1000 / period);
}

function makeBatches(c: Case): RawSample[][] {
  const out: RawSample[][] = [];
  let seq = 0;
  let round = 0;
  for (let n = 0; n < c.total; ) {
    const batch: RawSample[] = [];
    while (batch.length < c.batch) {
      const ts = T0 + round * c.stepMs;
      for (const t of TAGS) {
        if (batch.length === c.batch) break;
        batch.push({ tag: t.id, ts, value: signal(t, ts), quality: "good", source: "bench", seq: ++seq });
      }
      round++;
    }
    out.push(batch);
    n += batch.length;
  }
  return out;
}

/** Percentile `p` (0..100) of an ascending array. */
const pct = (sorted: number[], p: number): number => quantile(sorted, p / 100);

interface RunResult {
  rate: number;
  p50: number;
  p99: number;
  extra?: string;
}

async function runIngest(batches: RawSample[][]): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "glassd-bench-"));
  const clock = new SimClock(T0);
  const store = new Store({ dataDir: dir, storage: config.storage, clock, autoRetention: false });
  await store.open();
  const validator = new Validator(TAGS, config.validation, clock);
  const lat: number[] = [];
  let n = 0;
  let rejected = 0;
  const start = performance.now();
  for (const raw of batches) {
    clock.set(raw[raw.length - 1]!.ts);
    const t = performance.now();
    const v = validator.validateBatch(raw);
    await store.appendBatch(v.accepted, v.rejected);
    lat.push(performance.now() - t);
    n += raw.length;
    rejected += v.rejected.length;
  }
  const secs = (performance.now() - start) / 1000;
  const st = store.stats();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  if (rejected) throw new Error(`bench data should all be valid, ${rejected} rejected`);
  const fill = st.samples.bytes / st.samples.tree_bytes;
  return {
    rate: n / secs,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    extra: `est ${(st.samples.bytes / st.samples.entries).toFixed(1)} B/entry, LMDB tree ${(st.samples.tree_bytes / st.samples.entries).toFixed(1)} B/entry (fill ${(fill * 100).toFixed(0)} %)`,
  };
}

async function runBare(batches: RawSample[][]): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "glassd-bench-bare-"));
  const env = open(join(dir, "lmdb"), { maxDbs: 16, mapSize: config.storage.map_size_bytes, overlappingSync: false });
  const db = env.openDB("samples", { encoding: "binary" });
  const lat: number[] = [];
  let n = 0;
  const start = performance.now();
  for (const raw of batches) {
    const t = performance.now();
    let last: Promise<boolean> | undefined;
    for (const s of raw) {
      const value = Buffer.allocUnsafe(9);
      value[0] = 0;
      value.writeDoubleLE(s.value as number, 1);
      last = db.put([s.tag, s.ts, s.source, s.seq], value);
    }
    await last;
    lat.push(performance.now() - t);
    n += raw.length;
  }
  const secs = (performance.now() - start) / 1000;
  await env.close();
  rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return { rate: n / secs, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const fmtRate = (r: number) => `${Math.round(r).toLocaleString("en-US")}/s`.padStart(12);
const fmtMs = (ms: number) => `${ms.toFixed(2)} ms`;

process.stdout.write(`glassd ingest bench — node ${process.version}, lmdb-js, sync commits (overlappingSync off)\n`);
// Warm-up: JIT, page cache, native module.
const warm = makeBatches({ name: "warm", batch: 100, stepMs: 40, total: 5_000 });
await runBare(warm);
await runIngest(warm);

let worst = Number.POSITIVE_INFINITY;
for (const c of CASES) {
  const batches = makeBatches(c);
  // Alternate the two so that drift in the machine's state hits both; keep the best of each.
  const bare: RunResult[] = [];
  const ingest: RunResult[] = [];
  for (let rep = 0; rep < 3; rep++) {
    bare.push(await runBare(batches));
    ingest.push(await runIngest(batches));
  }
  const b = bare.reduce((x, y) => (y.rate > x.rate ? y : x));
  const i = ingest.reduce((x, y) => (y.rate > x.rate ? y : x));
  const ratio = i.rate / b.rate;
  worst = Math.min(worst, ratio);
  process.stdout.write(
    `\n${c.name} (${batches.length} batches, ${c.total.toLocaleString("en-US")} samples)\n` +
      `  bare lmdb put   ${fmtRate(b.rate)}   batch commit p50 ${fmtMs(b.p50)}  p99 ${fmtMs(b.p99)}\n` +
      `  validate+store  ${fmtRate(i.rate)}   batch commit p50 ${fmtMs(i.p50)}  p99 ${fmtMs(i.p99)}\n` +
      `  ratio           ${(ratio * 100).toFixed(0)} % of bare puts   (${i.extra})\n`,
  );
}
process.stdout.write(
  `\nworst ratio ${(worst * 100).toFixed(0)} % (target ≥ 50 %) ${worst >= 0.5 ? "OK" : "BELOW TARGET"}\n`,
);
