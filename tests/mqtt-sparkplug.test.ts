/*
 * Sparkplug B host application through a real Mosquitto into a real LMDB store: the twin plant's edge node as the
 * peer (births, aliases, DDATA → samples, rebirth when glassd arrives after the births, NDEATH → bad quality), and a
 * hand-made edge node for the protocol corners (seq gap → rebirth requested, a late NDEATH of an old bdSeq ignored,
 * unknown alias, malformed payload), plus the host's retained STATE.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { sparkplug, sparkplugNumber, type UMetric } from "../src/core/sparkplug.js";
import type { MqttSource } from "../src/ingest/mqtt/index.js";
import type { Store } from "../src/storage/index.js";
import { Plant, SparkplugEdgeNode } from "../src/twin/plant/index.js";
import { type Broker, startBroker } from "./fixtures/mosquitto.js";
import { openStore, sleep, sourceOn, until } from "./fixtures/mqtt-ingest.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-mqtt-spb-"));
let broker: Broker;
const clients: MqttClient[] = [];
const sources: MqttSource[] = [];
const stores: Store[] = [];

async function client(): Promise<MqttClient> {
  const c = connect(broker.url, { protocolVersion: 5, reconnectPeriod: 200 });
  clients.push(c);
  await new Promise<void>((r) => c.once("connect", () => r()));
  return c;
}

function spbSource(store: Store, id: string, extra: object = {}): MqttSource {
  const src = sourceOn(store, {
    id,
    broker: { url: broker.url, client_id: `glassd-${id}` },
    json: { enabled: false },
    sparkplug: { enabled: true, host_id: `host_${id}`, rebirth_interval_ms: 0, ...extra },
  });
  sources.push(src);
  return src;
}

function plant(seed: number) {
  return new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed,
    speed: 20,
    stepMs: 1000,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 5000,
  });
}

test.before(async () => {
  broker = await startBroker({ dir });
});

test.after(async () => {
  for (const s of sources) await s.stop().catch(() => undefined);
  for (const c of clients) c.end(true);
  for (const s of stores) await s.close().catch(() => undefined);
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("twin edge node: births, aliases, DDATA → samples; rebirth for a late host; NDEATH → bad quality; STATE", async () => {
  const store = await openStore(join(dir, "a"));
  stores.push(store);
  const watcher = await client();
  const state: string[] = [];
  const ncmd: string[] = [];
  watcher.on("message", (topic, p) => {
    if (topic === "spBv1.0/STATE/host_spb_a") state.push(p.toString());
    if (topic.includes("/NCMD/")) ncmd.push(topic);
  });
  await watcher.subscribeAsync(["spBv1.0/STATE/host_spb_a", "spBv1.0/+/NCMD/#"], { qos: 1 });

  // The plant is born before glassd listens: glassd sees DDATA first and must ask for a rebirth.
  const p = plant(11);
  const node = new SparkplugEdgeNode(p, {
    broker: { url: broker.url },
    groupId: "plant",
    nodeId: "Line_A",
    clientId: "twin-spb-a",
  });
  const abort = new AbortController();
  await node.start();
  await p.start(abort.signal);
  await sleep(300);
  const src = spbSource(store, "spb_a");
  await src.start(AbortSignal.timeout(10_000));
  try {
    await until("STATE online", () => state.some((s) => JSON.parse(s).online === true));
    const st0 = JSON.parse(state.find((s) => JSON.parse(s).online === true)!);
    assert.type(st0.timestamp, "number");
    await until("rebirth requested and born", () => src.sparkplugSessions()["plant/Line_A"]);
    assert.ok(ncmd.includes("spBv1.0/plant/NCMD/Line_A"), "NCMD sent to the node");
    assert.ok(src.stats().sparkplug.before_birth >= 1);
    assert.ok(node.stats().rebirths >= 1, "the twin answered the rebirth");
    const session = src.sparkplugSessions()["plant/Line_A"]!;
    assert.is(session.bdSeq, node.currentBdSeq);
    assert.equal(session.devices.sort(), node.deviceIds().sort());
    const fast = DEFAULT_TAGS.filter((t) => t.period_ms <= 2000);
    await until("5 samples of every fast tag", () => fast.every((t) => store.count(t.id) >= 5), 20_000);
    // Values are the twin's: the latest stored furnace temperature is one the plant produced.
    const last = store.latest("furnace_temperature")!;
    assert.is(last.source, "spb_a");
    assert.is(last.quality, "good");
    assert.ok(last.value > 1400 && last.value < 1600);
    assert.is(src.stats().sparkplug.unknown_aliases, 0);
    assert.ok(src.stats().sparkplug.unmapped_metrics > 0, "setpoints and MIK-1 counters are no tags: counted");
  } finally {
    abort.abort();
    await p.stop();
  }
  // The node dies (clean stop publishes NDEATH): every tag it fed gets a sample of bad quality.
  await node.stop();
  await until("NDEATH handled", () => src.stats().sparkplug.deaths === 1);
  await until("bad quality stored", () => store.latest("furnace_temperature")?.quality === "bad");
  for (const t of DEFAULT_TAGS.filter((t) => t.period_ms <= 2000))
    assert.is(store.latest(t.id)?.quality, "bad", `${t.id} marked bad`);
  assert.equal(src.sparkplugSessions(), {});
  await src.stop();
  await until("STATE offline", () => JSON.parse(state.at(-1)!).online === false);
});

test("hand-made edge node: seq gap → rebirth; old-bdSeq NDEATH ignored; unknown alias and bad payload quarantined", async () => {
  const store = await openStore(join(dir, "b"));
  stores.push(store);
  const src = spbSource(store, "spb_b");
  await src.start(AbortSignal.timeout(10_000));
  const edge = await client();
  const rebirths: number[] = [];
  edge.on("message", (topic, payload) => {
    if (topic !== "spBv1.0/g1/NCMD/n1") return;
    const m = sparkplug.decodePayload(payload).metrics?.[0];
    if (m?.name === "Node Control/Rebirth" && m.value === true) rebirths.push(Date.now());
  });
  await edge.subscribeAsync("spBv1.0/g1/NCMD/n1", { qos: 1 });
  const t0 = Date.now();
  const send = (type: string, seq: number | undefined, metrics: UMetric[], device?: string) =>
    edge.publishAsync(
      `spBv1.0/g1/${type}/n1${device ? `/${device}` : ""}`,
      Buffer.from(sparkplug.encodePayload({ timestamp: Date.now(), ...(seq !== undefined ? { seq } : {}), metrics })),
      { qos: 0 },
    );
  const ft = (alias: number, value: number, ts: number): UMetric => ({ alias, timestamp: ts, type: "Double", value });
  await send("NBIRTH", 0, [
    { name: "bdSeq", type: "Int64", value: 5 },
    { name: "Node Control/Rebirth", alias: 1, type: "Boolean", value: false },
    { name: "furnace_temperature", alias: 2, timestamp: t0, type: "Double", value: 1500 },
    { name: "oven/belt", alias: 3, timestamp: t0, type: "Double", value: 150 },
  ]);
  await send("NDATA", 1, [ft(2, 1501, t0 + 1000)]);
  await until("birth + data", () => store.count("furnace_temperature") === 2);
  assert.is(store.count("belt_speed"), 0, "oven/belt maps to no tag by default");
  assert.is(rebirths.length, 0);
  // seq 2 is lost: 3 arrives.
  await send("NDATA", 3, [ft(2, 1502, t0 + 3000)]);
  await until("rebirth requested after the gap", () => rebirths.length === 1);
  assert.is(src.stats().sparkplug.seq_gaps, 1);
  assert.is(store.count("furnace_temperature"), 3, "the data after a gap is still stored");
  // An alias no birth defined: quarantined, and another rebirth.
  await send("NDATA", 4, [ft(9, 1, t0 + 4000)]);
  await until("unknown alias", () => store.quarantineCounts().sparkplug_unknown_alias === 1);
  await until("second rebirth", () => rebirths.length === 2);
  // Garbage on a Sparkplug topic.
  await edge.publishAsync("spBv1.0/g1/NDATA/n1", Buffer.from([0xff, 0xff, 0xff, 0x01]), { qos: 0 });
  await until("bad payload", () => store.quarantineCounts().sparkplug_bad_payload === 1);
  // A late will from an older session (bdSeq 4) must not kill the current one (bdSeq 5).
  await send("NDEATH", undefined, [{ name: "bdSeq", type: "Int64", value: 4 }]);
  await until("stale death counted", () => src.stats().sparkplug.stale_deaths === 1);
  assert.ok(src.sparkplugSessions()["g1/n1"], "still born");
  // The real death: bdSeq 5 → the node's tags are marked bad.
  await send("NDEATH", undefined, [{ name: "bdSeq", type: "Int64", value: 5 }]);
  await until("bad quality", () => store.latest("furnace_temperature")?.quality === "bad");
  const bad = store.latest("furnace_temperature")!;
  assert.is(bad.value, 1502, "the last value, flagged bad");
  // Data after the death is data before a birth.
  await send("NDATA", 5, [ft(2, 1503, Date.now())]);
  await until("before birth", () => store.quarantineCounts().sparkplug_before_birth === 1);
  assert.is(sparkplugNumber(src.stats().sparkplug.rebirths_requested), 3);
  assert.is(store.stats().sources.spb_b!.gaps_total, 0, "glassd's own seq has no gaps");
  await src.stop();
});

test("metric_tags maps metric names (qualified by device) to tags", async () => {
  const store = await openStore(join(dir, "c"));
  stores.push(store);
  const src = spbSource(store, "spb_c", { metric_tags: { "dev1/speed": "belt_speed", "n2/temp": "mold_temperature" } });
  await src.start(AbortSignal.timeout(10_000));
  const edge = await client();
  const now = Date.now();
  const pub = (topic: string, seq: number, metrics: UMetric[]) =>
    edge.publishAsync(topic, Buffer.from(sparkplug.encodePayload({ timestamp: now, seq, metrics })), { qos: 1 });
  await pub("spBv1.0/g2/NBIRTH/n2", 0, [
    { name: "bdSeq", type: "Int64", value: 0 },
    { name: "temp", alias: 1, timestamp: now, type: "Float", value: 320 },
  ]);
  await pub("spBv1.0/g2/DBIRTH/n2/dev1", 1, [{ name: "speed", alias: 2, timestamp: now, type: "Int32", value: 149 }]);
  await pub("spBv1.0/g2/DDATA/n2/dev1", 2, [
    {
      alias: 2,
      timestamp: now + 1000,
      type: "Int32",
      value: 150,
      properties: { Quality: { type: "Int32", value: 64 } },
    },
  ]);
  await until("device data", () => store.count("belt_speed") === 2);
  assert.is(store.latest("mold_temperature")?.value, 320);
  assert.is(store.latest("belt_speed")?.quality, "uncertain");
  // DDEATH marks only that device's tags.
  await pub("spBv1.0/g2/DDEATH/n2/dev1", 3, []);
  await until("device dead", () => store.latest("belt_speed")?.quality === "bad");
  assert.is(store.latest("mold_temperature")?.quality, "good");
  assert.is(src.stats().sparkplug.seq_gaps, 0);
  await src.stop();
});

test.run();
