import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/index.js";
import type { Sample } from "../src/core/types.js";
import { FeatureStage } from "../src/features/index.js";
import { MAX_RANGE_LIMIT, Store } from "../src/storage/index.js";

/*
 * A restart refills the feature windows from LMDB: after it, the feature vector and every tag's window (the slow
 * tags' long stale horizons included, which the sensor graph reads) are what a daemon that never stopped would
 * hold. Samples are written through the real Store, as the ingest path writes them.
 */

const dirs: string[] = [];
const stores: Store[] = [];
test.after(async () => {
  for (const s of stores) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const config = defaultConfig();
const T0 = Date.UTC(2026, 10, 26, 6, 0, 0);

/** Every default tag at its own period over `spanMs`, with a value that moves (so windows differ by where they start). */
function history(spanMs: number): Sample[] {
  const out: Sample[] = [];
  for (const t of config.tags) {
    const mid = (t.normal.min + t.normal.max) / 2;
    const half = (t.normal.max - t.normal.min) / 2;
    for (let ts = T0; ts <= T0 + spanMs; ts += t.period_ms) {
      const u = (ts - T0) / 60_000;
      out.push({
        tag: t.id,
        ts,
        value: mid + half * Math.sin(u / 7 + t.period_ms),
        quality: "good",
        source: "test",
        seq: 0,
      });
    }
  }
  out.sort((a, b) => a.ts - b.ts);
  out.forEach((s, i) => {
    s.seq = i + 1; // one source: its seqs rise in the order it sends
  });
  return out;
}

async function openStore(): Promise<Store> {
  const dataDir = mkdtempSync(join(tmpdir(), "glassd-refill-"));
  dirs.push(dataDir);
  const store = new Store({ dataDir, storage: config.storage, autoRetention: false });
  await store.open();
  stores.push(store);
  return store;
}

function sameVector(a: Float32Array, b: Float32Array, names: readonly string[]): void {
  assert.is(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    if (!Object.is(a[i], b[i])) assert.unreachable(`feature ${names[i]}: live ${a[i]} vs refilled ${b[i]}`);
}

test("after a restart the refilled windows equal those of a daemon that never stopped", async () => {
  const live = FeatureStage.fromConfig(config);
  const slowest = [...config.tags].sort((a, b) => b.period_ms - a.period_ms)[0]!;
  const retention = live.windows.retentionMs(slowest.id)!;
  assert.ok(retention > config.pipeline.window_s * 1000, "a slow tag keeps more than the feature window");
  const span = 2 * retention;
  const samples = history(span);
  const store = await openStore();
  for (let i = 0; i < samples.length; i += 5000) await store.appendBatch(samples.slice(i, i + 5000));
  assert.is(store.count(), samples.length, "every sample stored");
  live.push(samples);

  const now = T0 + span;
  const asked: { tag: string; from: number; to: number }[] = [];
  const restarted = FeatureStage.fromConfig(config);
  const n = restarted.refill((tag, from, to) => {
    asked.push({ tag, from, to });
    return store.range(tag, from, to, MAX_RANGE_LIMIT);
  }, now);
  assert.ok(n > 0);
  // each tag asked once, for exactly its retention horizon
  assert.is(asked.length, config.tags.length);
  for (const a of asked) assert.is(now - a.from, restarted.windows.retentionMs(a.tag), a.tag);

  sameVector(live.compute(now).values, restarted.compute(now).values, live.names);
  for (const t of config.tags) {
    assert.equal(restarted.windows.latest(t.id), live.windows.latest(t.id), `${t.id} newest point`);
    // the oldest point any reader can use: at the far end of the retention horizon (the graph's long windows)
    const edge = now - restarted.windows.retentionMs(t.id)! + t.period_ms;
    assert.is(restarted.windows.valueAt(t.id, edge), live.windows.valueAt(t.id, edge), `${t.id} at the horizon`);
    assert.ok(Number.isFinite(restarted.windows.valueAt(t.id, edge)), `${t.id} refilled to its horizon`);
  }
});

test("refill from an empty store or an unknown range leaves empty windows, not invented values", async () => {
  const store = await openStore();
  const stage = FeatureStage.fromConfig(config);
  assert.is(
    stage.refill((tag, from, to) => store.range(tag, from, to), T0),
    0,
  );
  for (const t of config.tags) assert.is(stage.windows.latest(t.id), undefined);
  assert.ok(Number.isNaN(stage.windows.valueAt(config.tags[0]!.id, T0)));
});

test.run();
