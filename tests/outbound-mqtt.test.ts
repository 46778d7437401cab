/*
 * Outbound publishing through a real Mosquitto: plain JSON topics per kind, the publisher's retained status,
 * store-and-forward across a broker outage (everything queued while the broker was away arrives after it returns,
 * in order, flagged is_historical), and glassd as a Sparkplug B edge node (NBIRTH with bdSeq, NDATA with aliases,
 * isHistorical on replay, NDEATH on stop and as the will).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { sparkplug, sparkplugNumber, type UPayload } from "../src/core/sparkplug.js";
import { parseOutboundMqttConfig } from "../src/ingest/mqtt/index.js";
import { Outbound } from "../src/outbound/index.js";
import type { Store } from "../src/storage/index.js";
import { type Broker, startBroker } from "./fixtures/mosquitto.js";
import { openStore, until } from "./fixtures/mqtt-ingest.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-outbound-"));
let broker: Broker;
const clients: MqttClient[] = [];
const outs: Outbound[] = [];
const stores: Store[] = [];

interface Msg {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** A persistent subscriber: its session (and what is queued for it) survives the broker restart. */
async function subscriber(id: string, topics: string[]): Promise<Msg[]> {
  const c = connect(broker.url, {
    protocolVersion: 5,
    clientId: id,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 100,
  });
  clients.push(c);
  const msgs: Msg[] = [];
  c.on("message", (topic, payload, packet) => msgs.push({ topic, payload, retain: packet.retain }));
  await new Promise<void>((r) => c.once("connect", () => r()));
  await c.subscribeAsync(topics, { qos: 1 });
  return msgs;
}

test.before(async () => {
  broker = await startBroker({ dir, persistence: true });
});

test.after(async () => {
  for (const o of outs) await o.stop().catch(() => undefined);
  for (const c of clients) c.end(true);
  for (const s of stores) await s.close().catch(() => undefined);
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("plain topics: live, then a broker outage replayed in order with is_historical", async () => {
  const store = await openStore(join(dir, "a"));
  stores.push(store);
  const msgs = await subscriber("sub-json", ["glassd/Line_A/#"]);
  const out = new Outbound({
    config: parseOutboundMqttConfig({
      enabled: true,
      broker: { url: broker.url, reconnect_ms: 100 },
      status_topic: "glassd/{line}/outbound/status",
      topics: { recommendation: "" },
    }),
    lineId: "Line_A",
    store,
  });
  outs.push(out);
  await out.start(AbortSignal.timeout(5000));
  await until("connected", () => out.stats().targets.json!.connected);
  await out.publish("prediction", { defect_probability: 0.12, horizon_s: 300 });
  await out.publish("alarm", { tag: "furnace_temperature", level: "high" });
  await out.publish("recommendation", { ignored: true });
  await until("2 live messages", () => msgs.filter((m) => !m.topic.endsWith("status")).length === 2);
  const live = msgs.filter((m) => !m.topic.endsWith("status")).map((m) => [m.topic, JSON.parse(m.payload.toString())]);
  assert.equal(live, [
    ["glassd/Line_A/prediction", { defect_probability: 0.12, horizon_s: 300, is_historical: false }],
    ["glassd/Line_A/alarm", { tag: "furnace_temperature", level: "high", is_historical: false }],
  ]);
  assert.ok(msgs.some((m) => m.topic === "glassd/Line_A/outbound/status" && m.payload.toString() === "online"));
  await until("queue empty", () => out.stats().targets.json!.queue.depth === 0);

  // The broker goes away; results keep coming and are durable in the queue.
  await broker.stop();
  await until("disconnected", () => !out.stats().targets.json!.connected);
  for (let i = 0; i < 200; i++) await out.publish("pipeline_result", { tick: i, ok: i % 3 !== 0 });
  assert.is(out.stats().targets.json!.queue.depth, 200);
  const before = msgs.length;
  await broker.start();
  await until("replayed", () => msgs.filter((m) => m.topic === "glassd/Line_A/pipeline_result").length >= 200, 20_000);
  await out.publish("pipeline_result", { tick: 200, ok: true });
  await until("live again", () => msgs.filter((m) => m.topic === "glassd/Line_A/pipeline_result").length >= 201);
  const results = msgs
    .slice(before)
    .filter((m) => m.topic === "glassd/Line_A/pipeline_result")
    .map((m) => JSON.parse(m.payload.toString()) as { tick: number; is_historical: boolean });
  assert.equal(
    results.map((r) => r.tick),
    Array.from({ length: 201 }, (_, i) => i),
    "in order, none missing, none twice",
  );
  assert.ok(results.slice(0, 200).every((r) => r.is_historical === true));
  assert.is(results[200]!.is_historical, false);
  const st = out.stats().targets.json!;
  assert.is(st.replayed, 200);
  assert.ok(st.reconnects >= 1);
  await until("acknowledged and deleted", () => out.stats().targets.json!.queue.depth === 0);
  await out.stop();
  await until("offline", () => msgs.at(-1)?.payload.toString() === "offline");
});

test("Sparkplug B edge node: NBIRTH/NDATA with bdSeq and aliases, isHistorical on replay, NDEATH", async () => {
  const store = await openStore(join(dir, "b"));
  stores.push(store);
  const msgs = await subscriber("sub-spb", ["spBv1.0/glassd/#"]);
  const cfg = parseOutboundMqttConfig({
    enabled: true,
    broker: { url: broker.url, reconnect_ms: 100 },
    topics: { prediction: "", alarm: "", recommendation: "", pipeline_result: "" },
    sparkplug: { enabled: true },
  });
  const out = new Outbound({ config: cfg, lineId: "Line_A", store });
  outs.push(out);
  await out.start(AbortSignal.timeout(5000));
  const dec = (m: Msg): UPayload => sparkplug.decodePayload(m.payload);
  const of = (type: string) => msgs.filter((m) => m.topic === `spBv1.0/glassd/${type}/Line_A`);
  await until("NBIRTH", () => of("NBIRTH").length === 1);
  const bd0 = sparkplugNumber(dec(of("NBIRTH")[0]!).metrics!.find((m) => m.name === "bdSeq")!.value);
  assert.is(bd0, out.sparkplugBdSeq);
  await out.publish("prediction", { defect_probability: 0.3, class: "crack", alarm: true });
  await until("rebirth with the new metrics, then NDATA", () => of("NDATA").length === 1);
  const birth = dec(of("NBIRTH").at(-1)!);
  assert.is(sparkplugNumber(birth.seq), 0);
  const aliases = new Map(birth.metrics!.filter((m) => m.alias != null).map((m) => [sparkplugNumber(m.alias), m.name]));
  const data = dec(of("NDATA")[0]!);
  assert.is(sparkplugNumber(data.seq), 1);
  const named = Object.fromEntries(data.metrics!.map((m) => [aliases.get(sparkplugNumber(m.alias)), m.value]));
  assert.equal(named, { "prediction/defect_probability": 0.3, "prediction/class": "crack", "prediction/alarm": true });
  assert.ok(data.metrics!.every((m) => !m.isHistorical));

  // Outage → replay with isHistorical, after a new NBIRTH with the next bdSeq.
  await broker.stop();
  await until("disconnected", () => !out.stats().targets.sparkplug!.connected);
  for (let i = 0; i < 20; i++)
    await out.publish("prediction", { defect_probability: i / 100, class: "bubble", alarm: false });
  await broker.start();
  await until("replayed", () => of("NDATA").length >= 21, 20_000);
  const births = of("NBIRTH");
  const bd1 = sparkplugNumber(dec(births.at(-1)!).metrics!.find((m) => m.name === "bdSeq")!.value);
  // bdSeq advances with every CONNECT attempt (Sparkplug 3.0), failed ones during the outage included.
  assert.ok(bd1 !== bd0, "a new session, a new bdSeq");
  assert.is(bd1, out.sparkplugBdSeq);
  const replay = of("NDATA").slice(1).map(dec);
  assert.equal(
    replay.map(
      (p) =>
        p.metrics!.find(
          (m) => sparkplugNumber(m.alias) === [...aliases].find(([, n]) => n === "prediction/defect_probability")![0],
        )!.value,
    ),
    Array.from({ length: 20 }, (_, i) => i / 100),
    "in order",
  );
  assert.ok(replay.every((p) => p.metrics!.every((m) => m.isHistorical === true)));
  assert.equal(
    replay.map((p) => sparkplugNumber(p.seq)),
    Array.from({ length: 20 }, (_, i) => i + 1),
    "seq after the NBIRTH",
  );

  // A lost connection → the broker publishes the will: NDEATH with this session's bdSeq.
  const deaths = () => of("NDEATH").map((m) => sparkplugNumber(dec(m).metrics![0]!.value));
  const spClient = (out as unknown as { targets: { publisher: { client: MqttClient } }[] }).targets[1]!.publisher
    .client;
  spClient.stream.destroy();
  await until("NDEATH will", () => deaths().includes(bd1));
  await until("reborn", () => of("NBIRTH").length > births.length);
  const n = deaths().length;
  await out.stop();
  await until("NDEATH on stop", () => deaths().length === n + 1);
  assert.is(deaths().at(-1), out.sparkplugBdSeq);
  assert.ok(out.sparkplugBdSeq !== bd1);
});

test.run();
