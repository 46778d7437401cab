import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Config } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import { SimClock } from "../src/core/clock.js";
import { UnavailableError, ValidationError } from "../src/core/errors.js";
import type { Quality, Sample } from "../src/core/types.js";
import {
  LMDB_NODE_OVERHEAD,
  type Rejected,
  Store,
  type StoreOptions,
  sampleEntryBytes,
  VALUE_BYTES,
} from "../src/storage/index.js";

const ROOT = new URL("..", import.meta.url).pathname;
const NOW = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "glassd-storage-"));
  dirs.push(d);
  return d;
}

function storage(over: Partial<Config["storage"]> = {}): Config["storage"] {
  return { ...defaultConfig().storage, ...over };
}

function makeStore(dataDir: string, over: Partial<StoreOptions> = {}, clock = new SimClock(NOW)): Store {
  return new Store({ dataDir, storage: storage(), clock, autoRetention: false, ...over });
}

/** Opens a store in a fresh temp dir, runs `fn`, always closes it. */
async function withStore(
  fn: (store: Store, ctx: { dir: string; clock: SimClock }) => Promise<void>,
  over: Partial<StoreOptions> = {},
): Promise<void> {
  const dir = tempDir();
  const clock = new SimClock(NOW);
  const store = makeStore(dir, over, clock);
  await store.open();
  try {
    await fn(store, { dir, clock });
  } finally {
    await store.close();
  }
}

function s(tag: string, ts: number, value: number, seq: number, source = "twin", quality: Quality = "good"): Sample {
  return { tag, ts, value, quality, source, seq };
}

function rej(over: Partial<Rejected> & { received_at: number }): Rejected {
  return {
    tag: "furnace_temperature",
    ts: over.received_at,
    reason: "out_of_range",
    detail: "test",
    raw_value: "9999",
    source: "twin",
    seq: null,
    ...over,
  };
}

test("append, then range (inclusive, oldest first, limited), latest, count and tags", async () => {
  await withStore(async (store) => {
    const batch: Sample[] = [];
    let seq = 0;
    for (let i = 0; i < 10; i++)
      for (const tag of ["tag_a", "tag_b", "tag_ab"]) batch.push(s(tag, NOW + i * 1000, i + 0.1 + 0.2, ++seq));
    batch.push(s("tag_c", NOW, -0, ++seq, "twin", "uncertain"));
    batch.push(s("tag_c", NOW + 1, Number.MAX_VALUE, ++seq, "twin", "bad"));
    const r = await store.appendBatch(batch, []);
    assert.equal(r, { stored: 32, quarantined: 0, duplicates: 0, gaps: [] });

    const a = store.range("tag_a", NOW + 2000, NOW + 5000);
    assert.equal(
      a.map((x) => x.ts),
      [NOW + 2000, NOW + 3000, NOW + 4000, NOW + 5000],
    );
    assert.is(a[0]!.value, 2 + 0.1 + 0.2, "float64 round-trips bit for bit");
    assert.equal(a[0], s("tag_a", NOW + 2000, 2 + 0.1 + 0.2, 7));
    assert.is(store.range("tag_a", NOW, NOW + 9000, 3).length, 3);
    assert.is(store.range("tag_a", NOW + 9001, NOW + 20_000).length, 0);
    assert.is(store.range("tag_a", NOW + 5000, NOW).length, 0, "from > to is empty");
    // "tag_a" is a prefix of "tag_ab": their key ranges must not bleed into each other.
    assert.ok(store.range("tag_a", 0, Number.POSITIVE_INFINITY).every((x) => x.tag === "tag_a"));

    assert.equal(store.latest("tag_b"), s("tag_b", NOW + 9000, 9 + 0.1 + 0.2, 29));
    assert.is(store.latest("nope"), undefined);
    const c = store.range("tag_c", 0, Number.POSITIVE_INFINITY);
    assert.ok(Object.is(c[0]!.value, -0) && c[0]!.quality === "uncertain");
    assert.ok(c[1]!.value === Number.MAX_VALUE && c[1]!.quality === "bad");

    assert.is(store.count(), 32);
    assert.is(store.count("tag_a"), 10);
    assert.is(store.count("tag_a", NOW + 1000, NOW + 3000), 3);
    assert.equal(store.tags(), ["tag_a", "tag_ab", "tag_b", "tag_c"]);
    assert.throws(
      () => store.range("tag_a", 0, 1, 0),
      (e: unknown) => e instanceof ValidationError,
    );
  });
});

test("acknowledged means committed: close right after appendBatch resolves, reopen, everything is there", async () => {
  const dir = tempDir();
  let store = makeStore(dir);
  await store.open();
  const batch = Array.from({ length: 500 }, (_, i) => s(`tag_${i % 5}`, NOW + i, i * 1.5, i + 1));
  await store.appendBatch(batch, [rej({ received_at: NOW, seq: 501 })]);
  const before = store.stats();
  await store.close();

  store = makeStore(dir);
  await store.open();
  try {
    assert.is(store.count(), 500);
    assert.equal(
      store.range("tag_3", 0, Number.POSITIVE_INFINITY),
      batch.filter((x) => x.tag === "tag_3"),
    );
    assert.is(store.lastSeq("twin"), 501);
    assert.is(store.stats().samples.bytes, before.samples.bytes);
    assert.equal(store.quarantineCounts(), { out_of_range: 1 });
    assert.equal(store.tags(), ["tag_0", "tag_1", "tag_2", "tag_3", "tag_4"], "tags are rediscovered on open");
    assert.ok(store.checkIntegrity().ok);
  } finally {
    await store.close();
  }
});

test("the byte estimate is honest: it equals encoded key + value + LMDB node overhead, read back raw", async () => {
  const dir = tempDir();
  const store = makeStore(dir);
  await store.open();
  const batch = [
    s("furnace_temperature", NOW, 1500.25, 1),
    s("humidity", NOW + 0.5, 40, 2, "opcua:plc1"),
    s("é", NOW, 1, 3),
  ];
  await store.appendBatch(batch, []);
  const bytes = store.stats().samples.bytes;
  assert.is(
    bytes,
    batch.reduce((a, x) => a + sampleEntryBytes(x), 0),
  );
  await store.close();
  // Read the raw keys and values with lmdb-js itself, bypassing the store's codec.
  const env = open(join(dir, "lmdb"), { maxDbs: 16, overlappingSync: false });
  try {
    const raw = env.openDB("samples", { keyEncoding: "binary", encoding: "binary" });
    let actual = 0;
    for (const { key, value } of raw.getRange({})) {
      assert.is((value as Buffer).length, VALUE_BYTES);
      actual += (key as Buffer).length + (value as Buffer).length + LMDB_NODE_OVERHEAD;
    }
    assert.is(actual, bytes);
  } finally {
    await env.close();
  }
});

test("age retention deletes samples older than retention_hours, counts them and keeps the byte total exact", async () => {
  await withStore(
    async (store) => {
      const batch: Sample[] = [];
      let seq = 0;
      // 3 h of history, one sample per minute per tag.
      for (let m = 180; m >= 0; m--)
        for (const tag of ["tag_a", "tag_b"]) batch.push(s(tag, NOW - m * 60_000, m, ++seq));
      await store.appendBatch(batch, []);
      const res = await store.runRetention();
      // Older than NOW - 1 h: minutes 61..180 → 120 per tag; exactly 1 h old (m = 60) is kept.
      assert.is(res.evicted_by_age, 240);
      assert.is(res.evicted_by_bytes, 0);
      assert.is(store.count(), 362 - 240);
      assert.is(store.range("tag_a", 0, Number.POSITIVE_INFINITY)[0]!.ts, NOW - HOUR);
      const st = store.stats();
      assert.is(st.samples.evicted_by_age_total, 240);
      assert.is(st.retention.runs_total, 1);
      assert.ok(store.checkIntegrity().ok, JSON.stringify(store.checkIntegrity()));
      assert.is((await store.runRetention()).evicted_by_age, 0, "a second pass finds nothing");
    },
    { storage: storage({ retention_hours: 1 }), retentionChunk: 50 },
  );
});

test("byte budget evicts the globally oldest samples first, across tags, and counts them", async () => {
  const budget = 20_000;
  await withStore(
    async (store) => {
      const batch: Sample[] = [];
      let seq = 0;
      // tag_c only has old data; tag_a/tag_b interleave. All ids have the same length, so entries are equal in size.
      for (let i = 0; i < 200; i++) batch.push(s("tag_c", NOW - 10_000 + i, i, ++seq));
      for (let i = 0; i < 600; i++) batch.push(s(i % 3 === 0 ? "tag_a" : "tag_b", NOW - 9_000 + i, i, ++seq));
      await store.appendBatch(batch, []);
      const per = sampleEntryBytes({ tag: "tag_a", source: "twin" });
      assert.is(store.stats().samples.bytes, 800 * per);
      const res = await store.runRetention();
      const expected = Math.ceil((800 * per - budget) / per);
      assert.is(res.evicted_by_bytes, expected);
      assert.is(res.evicted_by_age, 0);
      const st = store.stats();
      assert.ok(st.samples.bytes <= budget, `${st.samples.bytes} <= ${budget}`);
      assert.is(st.samples.bytes, (800 - expected) * per);
      assert.is(st.samples.evicted_by_bytes_total, expected);
      // What is left is exactly the newest (800 - expected) samples by ts, whatever their tag.
      const left = store.tags().flatMap((t) => store.range(t, -Infinity, Number.POSITIVE_INFINITY).map((x) => x.ts));
      const newest = batch
        .map((x) => x.ts)
        .sort((a, b) => b - a)
        .slice(0, 800 - expected);
      assert.equal(
        left.sort((a, b) => a - b),
        newest.sort((a, b) => a - b),
      );
      assert.is(store.count("tag_c"), 0, "the old-only tag went first");
      assert.ok(store.checkIntegrity().ok);
    },
    { storage: storage({ max_sample_bytes: budget }), retentionChunk: 37 },
  );
});

test("byte budget: a dense tag and a sparse tag — nothing newer is evicted while an older entry remains", async () => {
  const budget = 50_000;
  await withStore(
    async (store) => {
      const batch: Sample[] = [];
      let seq = 0;
      // tag_a: one sample per ms; tag_b: one per 100 ms over a longer span. Per-tag heads cover very different times.
      for (let i = 0; i < 2000; i++) batch.push(s("tag_a", NOW + i, i, ++seq));
      for (let i = 0; i < 100; i++) batch.push(s("tag_b", NOW + i * 100, i, ++seq));
      await store.appendBatch(batch, []);
      const per = sampleEntryBytes({ tag: "tag_a", source: "twin" });
      const keep = Math.floor(budget / per);
      const res = await store.runRetention();
      assert.is(res.evicted_by_bytes, 2100 - keep);
      const left = store.tags().flatMap((t) => store.range(t, -Infinity, Number.POSITIVE_INFINITY).map((x) => x.ts));
      const oldestLeft = Math.min(...left);
      // Everything evicted is at or before the oldest survivor (ties at one ts may go either way).
      const evicted = batch.filter((x) => !store.range(x.tag, x.ts, x.ts).length);
      assert.ok(
        evicted.every((x) => x.ts <= oldestLeft),
        `evicted up to ${Math.max(...evicted.map((x) => x.ts)) - NOW}, oldest left ${oldestLeft - NOW}`,
      );
    },
    { storage: storage({ max_sample_bytes: budget }), retentionChunk: 37 },
  );
});

test("auto retention: a batch that takes the ring over budget triggers eviction without a call", async () => {
  const budget = 10_000;
  await withStore(
    async (store) => {
      const batch = Array.from({ length: 500 }, (_, i) => s("tag_a", NOW - 1000 + i, i, i + 1));
      await store.appendBatch(batch, []);
      const deadline = Date.now() + 5000;
      while (store.stats().samples.bytes > budget && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(store.stats().samples.bytes <= budget);
      assert.ok(store.stats().samples.evicted_by_bytes_total > 0);
    },
    { storage: storage({ max_sample_bytes: budget }), autoRetention: true, retentionIntervalMs: 3_600_000 },
  );
});

test("retention works in chunks and lets the event loop run between them", async () => {
  await withStore(
    async (store) => {
      const batch = Array.from({ length: 3000 }, (_, i) => s("tag_a", NOW - 2 * HOUR + i, i, i + 1));
      await store.appendBatch(batch, []);
      let ticks = 0;
      let spinning = true;
      const spin = () => {
        ticks++;
        if (spinning) setImmediate(spin);
      };
      setImmediate(spin);
      const res = await store.runRetention();
      spinning = false;
      assert.is(res.evicted_by_age, 3000);
      assert.ok(ticks >= 10, `event loop turned ${ticks} times during 30 chunks`);
    },
    { storage: storage({ retention_hours: 1 }), retentionChunk: 100 },
  );
});

test("quarantine: stored with every field, queried by reason/tag/time newest first, bounded, counted", async () => {
  await withStore(
    async (store) => {
      const reasons = ["out_of_range", "stale", "not_finite"];
      const tags = ["tag_a", "tag_b"];
      const all: Rejected[] = [];
      for (let i = 0; i < 150; i++)
        all.push(
          rej({
            received_at: NOW + i,
            reason: reasons[i % 3]!,
            tag: tags[i % 2]!,
            ts: NOW + i - 5,
            raw_value: `"${i}"`,
            detail: `detail ${i}`,
            seq: i + 1,
          }),
        );
      // Two batches so the bound is enforced across batches too.
      await store.appendBatch([], all.slice(0, 80));
      await store.appendBatch([], all.slice(80));
      const kept = all.slice(50);
      const st = store.stats().quarantine;
      assert.is(st.entries, 100);
      assert.is(st.dropped_total, 50);
      const count = (list: Rejected[], reason: string) => list.filter((r) => r.reason === reason).length;
      assert.equal(store.quarantineCounts(), Object.fromEntries(reasons.map((r) => [r, count(kept, r)])));
      assert.equal(st.total_by_reason, Object.fromEntries(reasons.map((r) => [r, count(all, r)])));

      const newest = store.quarantine({ limit: 3 });
      assert.equal(
        newest.map((e) => e.received_at),
        [NOW + 149, NOW + 148, NOW + 147],
      );
      const { id, ...rest } = newest[0]!;
      assert.equal(rest, all[149]);
      assert.ok(id > 0);

      const stale = store.quarantine({ reason: "stale", limit: 1000 });
      assert.equal(
        stale.map((e) => e.received_at),
        kept
          .filter((r) => r.reason === "stale")
          .map((r) => r.received_at)
          .reverse(),
      );
      const tagB = store.quarantine({ tag: "tag_b", from: NOW + 100, to: NOW + 110 });
      assert.equal(
        tagB.map((e) => e.received_at),
        [109, 107, 105, 103, 101].map((d) => NOW + d),
      );
      const both = store.quarantine({ reason: "not_finite", tag: "tag_a", limit: 2 });
      assert.equal(
        both.map((e) => [e.reason, e.tag, e.received_at]),
        [
          ["not_finite", "tag_a", NOW + 146],
          ["not_finite", "tag_a", NOW + 140],
        ],
      );
      // One more: the bound holds exactly (101 → 100).
      await store.appendBatch([], [rej({ received_at: NOW + 150 })]);
      assert.is(store.stats().quarantine.entries, 100);
      assert.is(store.stats().quarantine.dropped_total, 51);
      assert.is(store.quarantine({ limit: 1000 }).at(-1)!.received_at, NOW + 51);
      assert.is(store.quarantine({ from: NOW, to: NOW + 49 }).length, 0, "dropped entries are gone");
      assert.is(store.quarantine({ reason: "out_of_range", from: NOW, to: NOW + 49 }).length, 0, "and their index");
      assert.ok(store.checkIntegrity().ok);
    },
    { storage: storage({ quarantine_max_entries: 100 }) },
  );
});

test("state persists across reopen with JSON semantics; deleteState; bad keys and values are refused", async () => {
  const dir = tempDir();
  let store = makeStore(dir);
  await store.open();
  await store.putState("autonomy", { mode: "advisory", since: new Date(NOW), skip: undefined, n: [1, 2] });
  await store.putState("gone", 1);
  assert.ok(await store.deleteState("gone"));
  await assert_rejects(() => store.putState("bad", 1n), ValidationError);
  await assert_rejects(() => store.putState("", 1), ValidationError);
  await store.close();
  store = makeStore(dir);
  await store.open();
  try {
    assert.equal(store.getState("autonomy"), { mode: "advisory", since: new Date(NOW).toISOString(), n: [1, 2] });
    assert.is(store.getState("gone"), undefined);
    assert.is(store.getState("never"), undefined);
  } finally {
    await store.close();
  }
});

test("duplicates and gaps are tracked per source, durably, including rejected samples; duplicates are not stored", async () => {
  const dir = tempDir();
  let store = makeStore(dir);
  await store.open();
  const A = (seq: number) => s("tag_a", NOW + seq, seq, seq, "src_a");
  const B = (seq: number) => s("tag_a", NOW + seq, seq, seq, "src_b");
  assert.equal(await store.appendBatch([1, 2, 3, 4, 5].map(A), []), {
    stored: 5,
    quarantined: 0,
    duplicates: 0,
    gaps: [],
  });
  // 4 and 5 again: duplicates. Then 6..8, shuffled within the batch (reordering inside a batch is not a gap).
  const r2 = await store.appendBatch([4, 7, 5, 6, 8].map(A), []);
  assert.equal(r2, { stored: 3, quarantined: 0, duplicates: 2, gaps: [] });
  // A jump from 8 to 12: a gap of 3. seq 13 arrives rejected, 14 accepted: no gap, the rejected one counts.
  const r3 = await store.appendBatch([A(12), A(14), B(100)], [rej({ received_at: NOW, source: "src_a", seq: 13 })]);
  assert.equal(r3, {
    stored: 3,
    quarantined: 1,
    duplicates: 0,
    gaps: [{ source: "src_a", after: 8, next: 12, missing: 3 }],
  });
  // A duplicate rejected sample is not quarantined twice; a rejection without seq is always stored.
  const r4 = await store.appendBatch(
    [],
    [rej({ received_at: NOW, source: "src_a", seq: 13 }), rej({ received_at: NOW, source: "src_a", seq: null })],
  );
  assert.equal(r4, { stored: 0, quarantined: 1, duplicates: 1, gaps: [] });
  // The smallest gap: one seq missing.
  const r5 = await store.appendBatch([A(16)], []);
  assert.equal(r5.gaps, [{ source: "src_a", after: 14, next: 16, missing: 1 }]);
  await store.close();

  store = makeStore(dir);
  await store.open();
  try {
    const st = store.stats();
    assert.equal(st.sources.src_a, { last_seq: 16, duplicates_total: 3, gaps_total: 2, missing_total: 4 });
    assert.equal(st.sources.src_b, { last_seq: 100, duplicates_total: 0, gaps_total: 0, missing_total: 0 });
    assert.is(store.lastSeq("src_a"), 16);
    assert.is(store.lastSeq("nobody"), undefined);
    // Persisted high-water mark survives the restart: 14 again is a duplicate.
    assert.is((await store.appendBatch([A(14)], [])).duplicates, 1);
    assert.equal(
      store
        .range("tag_a", 0, Number.POSITIVE_INFINITY)
        .filter((x) => x.source === "src_a")
        .map((x) => x.seq),
      [1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 16],
    );
    assert.is(store.stats().quarantine.entries, 2);
  } finally {
    await store.close();
  }
});

test("concurrent appendBatch calls from two sources commit all their samples, no false duplicates", async () => {
  await withStore(async (store) => {
    const calls: Promise<unknown>[] = [];
    for (let b = 0; b < 20; b++)
      for (const src of ["src_a", "src_b"])
        calls.push(
          store.appendBatch(
            Array.from({ length: 15 }, (_, i) => s(`tag_${i}`, NOW + b * 15 + i, i, b * 15 + i + 1, src)),
            [],
          ),
        );
    await Promise.all(calls);
    const st = store.stats();
    assert.is(st.samples.entries, 600);
    assert.equal(st.sources.src_a, { last_seq: 300, duplicates_total: 0, gaps_total: 0, missing_total: 0 });
    assert.is(st.writes.batches_total, 40);
    assert.is(st.writes.latency.count, 40);
    assert.ok(store.checkIntegrity().ok);
  });
});

test("appendBatch refuses items that break the contract and writes nothing of that batch", async () => {
  await withStore(async (store) => {
    const good = s("tag_a", NOW, 1, 1);
    const bad = [
      { ...s("tag_a", NOW, Number.NaN, 2) },
      { ...s("", NOW, 1, 3) },
      { ...s("tag_a", NOW, 1, -1) },
      { ...s("tag\u0000x", NOW, 1, 4) },
      { ...s("tag_a", NOW, 1, 5), quality: "great" as Quality },
    ];
    for (const b of bad) await assert_rejects(() => store.appendBatch([good, b], []), ValidationError);
    await assert_rejects(
      () => store.appendBatch([], [rej({ received_at: NOW, reason: "Bad Reason" })]),
      ValidationError,
    );
    assert.is(store.count(), 0);
    assert.is(store.lastSeq("twin"), undefined);
  });
});

test("lifecycle: not open → UnavailableError; stop is idempotent; start honours an aborted signal", async () => {
  const dir = tempDir();
  const store = makeStore(dir);
  assert.throws(
    () => store.count(),
    (e: unknown) => e instanceof UnavailableError,
  );
  await store.stop();
  const ac = new AbortController();
  ac.abort(new Error("shutdown"));
  await assert_rejects(() => store.start(ac.signal), Error);
  await store.start(new AbortController().signal);
  await store.appendBatch([s("tag_a", NOW, 1, 1)], []);
  await store.stop();
  await store.stop();
  await assert_rejects(() => store.appendBatch([s("tag_a", NOW, 1, 2)], []), UnavailableError);
});

// ── crash test ────────────────────────────────────────────────────────────────────────────────────────────────────

const CRASH_TAGS = ["crash_a", "crash_b", "crash_c"];
const CRASH_BASE_TS = Date.UTC(2026, 0, 1);

/** Runs the crash writer until it has acknowledged `acks` batches, SIGKILLs it, returns what it acknowledged. */
async function crashWriter(dir: string, acks: number): Promise<{ acked: number; state: number }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "tests/fixtures/storage-crash-writer.ts"), dir],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  let acked = 0;
  let state = 0;
  let seen = 0;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${acks} acks within 30 s; stderr: ${err}`)), 30_000);
      child.stderr!.on("data", (b: Buffer) => {
        err += b.toString();
      });
      child.stdout!.on("data", (b: Buffer) => {
        out += b.toString();
        // Only complete lines count: a line cut by the kill was never fully acknowledged.
        const lines = out.split("\n");
        out = lines.pop() ?? "";
        for (const line of lines) {
          const [kind, n] = line.split(" ");
          if (kind === "ack") {
            acked = Number(n);
            seen++;
          } else if (kind === "state") state = Number(n);
        }
        if (seen >= acks) {
          clearTimeout(timer);
          // Kill while the writer is mid-stream: it has more batches in flight right now.
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        if (signal !== "SIGKILL") {
          clearTimeout(timer);
          reject(new Error(`writer exited early (${code ?? signal}); stderr: ${err}`));
        }
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  }
  return { acked, state };
}

test("crash: SIGKILL mid-stream loses nothing acknowledged and the store reopens cleanly (twice)", async () => {
  const dir = tempDir();
  let lastAcked = 0;
  for (const round of [1, 2]) {
    const { acked, state } = await crashWriter(dir, 12 + round * 5);
    assert.ok(acked > lastAcked, `round ${round} made progress (${acked} > ${lastAcked})`);
    lastAcked = acked;
    const store = makeStore(dir);
    await store.open();
    try {
      const last = store.lastSeq("crash")!;
      assert.ok(last >= acked, `last committed seq ${last} >= last acknowledged ${acked}`);
      // Every seq 1..last is present exactly once: acknowledged batches are complete, nothing half-written.
      const seqs = CRASH_TAGS.flatMap((t) => store.range(t, 0, Number.POSITIVE_INFINITY, 1_000_000).map((x) => x.seq));
      assert.is(seqs.length, last);
      seqs.sort((a, b) => a - b);
      assert.ok(
        seqs.every((q, i) => q === i + 1),
        "no hole in the committed seqs",
      );
      const one = store.range(CRASH_TAGS[acked % 3]!, CRASH_BASE_TS + acked, CRASH_BASE_TS + acked);
      assert.equal(one, [
        {
          tag: CRASH_TAGS[acked % 3],
          ts: CRASH_BASE_TS + acked,
          value: acked / 4,
          quality: "good",
          source: "crash",
          seq: acked,
        },
      ]);
      assert.ok((store.getState<{ seq: number }>("crash-writer")?.seq ?? 0) >= state, "acknowledged state is there");
      assert.is(store.stats().quarantine.entries, last / 250, "one quarantined item per committed batch");
      const integrity = store.checkIntegrity();
      assert.ok(integrity.ok, JSON.stringify(integrity));
    } finally {
      await store.close();
    }
  }
});

async function assert_rejects(fn: () => Promise<unknown>, type: new (...a: never[]) => Error): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.instance(e, type);
    return;
  }
  assert.unreachable(`expected a ${type.name}`);
}

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test.run();
