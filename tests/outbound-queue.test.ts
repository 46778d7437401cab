/*
 * The outbound queue in LMDB: order, durability across a reopen of the store, deletion only of what is removed,
 * and the byte budget dropping the oldest entries (counted, totals exact).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OutboundQueue } from "../src/outbound/index.js";
import { openStore } from "./fixtures/mqtt-ingest.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-outq-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("ordered, durable across a reopen, removed only when acknowledged", async () => {
  const path = join(dir, "a");
  let store = await openStore(path);
  let q = new OutboundQueue(store, "t", 1 << 20);
  for (let i = 0; i < 50; i++) await q.push("alarm", { i, text: `alarm ${i}` }, 1000 + i);
  const head = q.peek(0, 10);
  assert.equal(
    head.map((e) => (e.entry.payload as { i: number }).i),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  await q.remove(head.slice(0, 5).map((e) => e.key));
  assert.is(q.stats().depth, 45);
  await store.close();
  store = await openStore(path);
  q = new OutboundQueue(store, "t", 1 << 20);
  assert.is(q.stats().depth, 45);
  const all = q.peek(0, 100);
  assert.equal(
    all.map((e) => (e.entry.payload as { i: number }).i),
    Array.from({ length: 45 }, (_, i) => i + 5),
  );
  assert.is(all[0]!.entry.enqueued_at, 1005);
  assert.is(all[0]!.entry.kind, "alarm");
  const bytes = all.reduce((n, e) => n + e.entry.bytes, 0);
  assert.is(q.stats().bytes, bytes, "byte total exact");
  // New entries continue after the old keys.
  await q.push("alarm", { i: 50 }, 2000);
  assert.is((q.peek(all.at(-1)!.key, 5)[0]!.entry.payload as { i: number }).i, 50);
  await store.close();
});

test("byte budget: the oldest are dropped and counted; totals stay exact", async () => {
  const store = await openStore(join(dir, "b"));
  const size = OutboundQueue.sizeOf("prediction", { i: 100, pad: "x".repeat(200) });
  const q = new OutboundQueue(store, "budget", 65_536);
  const n = 1000;
  let dropped = 0;
  for (let i = 0; i < n; i++) dropped += await q.push("prediction", { i: 100 + i, pad: "x".repeat(200) }, i);
  const st = q.stats();
  assert.ok(st.bytes <= 65_536, `${st.bytes} within the budget`);
  assert.is(st.depth, Math.floor(65_536 / size));
  assert.is(st.dropped, n - st.depth);
  assert.is(dropped, st.dropped);
  const left = q.peek(0, 10_000).map((e) => (e.entry.payload as { i: number }).i);
  assert.equal(
    left,
    Array.from({ length: st.depth }, (_, k) => 100 + n - st.depth + k),
    "the newest survive, in order",
  );
  await store.close();
});

test.run();
