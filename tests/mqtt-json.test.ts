/*
 * MQTT plain JSON ingest through a real Mosquitto into a real LMDB store: topic → tag mapping (dictionary topics,
 * a topic-level wildcard, a tag named in the payload, nested paths, ISO timestamps), bad payloads quarantined with
 * their reasons and counted, the twin plant's JSON publisher as the peer, glassd's retained status (online on
 * connect, offline as the will), and seq continuing across a restart of the source.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { TagConfig } from "../src/config/schema.js";
import type { MqttSource } from "../src/ingest/mqtt/index.js";
import type { Store } from "../src/storage/index.js";
import { Plant, PlantMqttJson } from "../src/twin/plant/index.js";
import { type Broker, startBroker } from "./fixtures/mosquitto.js";
import { openStore, sleep, sourceOn, until } from "./fixtures/mqtt-ingest.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-mqtt-json-"));
let broker: Broker;
const clients: MqttClient[] = [];
const sources: MqttSource[] = [];
const stores: Store[] = [];

async function publisher(): Promise<MqttClient> {
  const c = connect(broker.url, { protocolVersion: 5, reconnectPeriod: 200 });
  clients.push(c);
  await new Promise<void>((r) => c.once("connect", () => r()));
  return c;
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

// A dictionary with one tag mapped to a nested path on its own topic.
const TAGS: TagConfig[] = DEFAULT_TAGS.map((t) =>
  t.id === "humidity" ? { ...t, sources: { mqtt: { topic: "plant/env/climate", path: "readings.rh" } } } : t,
);

test("topic mapping: dictionary topics, wildcard by topic level, tag in payload, nested path; bad payloads quarantined by reason", async () => {
  const store = await openStore(join(dir, "a"));
  stores.push(store);
  const src = sourceOn(
    store,
    {
      id: "mqtt_a",
      broker: { url: broker.url, client_id: "glassd-test-a" },
      json: {
        topics: [
          { filter: "glass/{line}/sensors/+", tag_level: 3 },
          { filter: "gw/+/data", tag_path: "meta.tag", value_path: "v", ts_path: "time" },
        ],
      },
    },
    {},
    TAGS,
  );
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  const pub = await publisher();
  const now = Date.now();
  const send = (topic: string, body: unknown) =>
    pub.publishAsync(topic, typeof body === "string" ? body : JSON.stringify(body), { qos: 1 });

  await send("glass/Line_A/sensors/furnace_temperature", { value: 1501.5, ts: now, quality: "good", seq: 1 });
  await send("glass/Line_A/sensors/belt_speed", { value: 150, ts: now + 1, quality: "uncertain" });
  await send("plant/env/climate", { readings: { rh: 45.5 }, ts: now + 2 });
  await send("gw/plc7/data", { meta: { tag: "mold_temperature" }, v: 321, time: new Date(now + 3).toISOString() });
  // Bad ones, one per reason:
  await send("glass/Line_A/sensors/forming_pressure", "{not json");
  await send("glass/Line_A/sensors/forming_pressure", { val: 50, ts: now });
  await send("glass/Line_A/sensors/forming_pressure", { value: "50.1", ts: now });
  await send("glass/Line_A/sensors/forming_pressure", { value: null, ts: now });
  await send("glass/Line_A/sensors/forming_pressure", { value: 50, ts: "yesterday" });
  await send("gw/plc7/data", { v: 1, time: now });
  // Valid JSON for a tag the dictionary does not know: the validator quarantines it (unknown_tag).
  await send("glass/Line_A/sensors/no_such_tag", { value: 1, ts: now });

  await until("11 messages processed", () => src.stats().acks_delayed >= 11);
  const ft = store.range("furnace_temperature", now, now);
  assert.is(ft.length, 1);
  assert.is(ft[0]!.value, 1501.5);
  assert.is(ft[0]!.source, "mqtt_a");
  assert.is(store.range("belt_speed", now + 1, now + 1)[0]?.quality, "uncertain");
  assert.is(store.range("humidity", now + 2, now + 2)[0]?.value, 45.5);
  assert.is(store.range("mold_temperature", now + 3, now + 3)[0]?.value, 321);
  // furnace_temperature is named by both the dictionary topic and the wildcard rule: stored once.
  assert.is(store.count("furnace_temperature"), 1);

  const st = src.stats();
  assert.equal(st.quarantined_by_reason, {
    mqtt_bad_json: 1,
    mqtt_missing_path: 2,
    mqtt_not_number: 2,
    mqtt_bad_timestamp: 1,
  });
  const q = store.quarantineCounts();
  assert.is(q.mqtt_bad_json, 1);
  assert.is(q.mqtt_missing_path, 2);
  assert.is(q.mqtt_not_number, 2);
  assert.is(q.mqtt_bad_timestamp, 1);
  assert.is(q.unknown_tag, 1);
  const bad = store.quarantine({ reason: "mqtt_not_number" });
  assert.ok(
    bad.some((e) => e.raw_value === '"50.1"' && e.tag === "forming_pressure"),
    "raw value kept",
  );
  assert.match(bad[0]!.detail, /glass\/Line_A\/sensors\/forming_pressure/);
  const missing = store.quarantine({ reason: "mqtt_missing_path" });
  assert.ok(missing.some((e) => /tag path "meta\.tag"/.test(e.detail)));
  assert.ok(missing.some((e) => /no value at "value"/.test(e.detail)));
  // Every sample got the next seq of the source; nothing was counted as a gap or a duplicate.
  const s = store.stats().sources.mqtt_a!;
  assert.is(s.gaps_total, 0);
  assert.is(s.duplicates_total, 0);
  assert.is(src.stats().last_seq, 5);
  await src.stop();
});

test("the twin plant's JSON publisher as the peer: every fast tag ingested with the twin's values", async () => {
  const store = await openStore(join(dir, "b"));
  stores.push(store);
  const src = sourceOn(store, { id: "mqtt_b", broker: { url: broker.url, client_id: "glassd-test-b" } });
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  const plant = new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed: 7,
    speed: 20,
    stepMs: 1000,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 5000,
  });
  const json = new PlantMqttJson(plant, { broker: { url: broker.url }, clientId: "twin-json-b" });
  // A bare subscriber on the same topics: what the broker delivered to it must all be in the store.
  const bare = await publisher();
  let delivered = 0;
  bare.on("message", () => delivered++);
  await bare.subscribeAsync("glass/Line_A/sensors/#", { qos: 1 });
  const abort = new AbortController();
  await json.start();
  await plant.start(abort.signal);
  try {
    const fast = DEFAULT_TAGS.filter((t) => t.period_ms <= 2000);
    await until("5 samples of every fast tag", () => fast.every((t) => store.count(t.id) >= 5), 20_000);
  } finally {
    abort.abort();
    await plant.stop();
    await json.stop();
  }
  assert.is(json.stats().dropped, 0);
  await until("the bare subscriber got everything", () => json.stats().inflight === 0);
  await sleep(300);
  const published = delivered;
  assert.ok(published > 50, `${published} sensor messages`);
  // Every sensor message the broker delivered was ingested: a sample, or a quarantined reading.
  const ingested = () => DEFAULT_TAGS.reduce((n, t) => n + store.count(t.id), 0) + store.stats().quarantine.entries;
  await until(`all ${published} messages ingested`, () => ingested() === published);
  await sleep(200);
  assert.is(ingested(), published);
  assert.is(store.stats().sources.mqtt_b!.gaps_total, 0);
  await src.stop();
});

test("glassd's status: retained online on connect, offline as the will when the connection dies, seq resumes", async () => {
  const store = await openStore(join(dir, "c"));
  stores.push(store);
  const watcher = await publisher();
  const seen: string[] = [];
  watcher.on("message", (topic, p) => topic === "glassd/Line_A/status" && seen.push(p.toString()));
  await watcher.subscribeAsync("glassd/Line_A/status", { qos: 1 });
  const cfg = { id: "mqtt_c", broker: { url: broker.url, client_id: "glassd-test-c", keepalive_s: 5 } };
  const src = sourceOn(store, cfg);
  await src.start(AbortSignal.timeout(10_000));
  await until("online", () => seen.at(-1) === "online");
  const pub = await publisher();
  await pub.publishAsync("glass/Line_A/sensors/belt_speed", JSON.stringify({ value: 151, ts: Date.now() }), {
    qos: 1,
  });
  await until("stored", () => store.count("belt_speed") === 1);
  // Kill the connection without DISCONNECT: the broker publishes the will.
  (src as unknown as { json: { client: MqttClient } }).json.client.stream.destroy();
  await until("offline will", () => seen.includes("offline"));
  await src.stop();
  // A new source on the same store continues the sequence.
  const again = sourceOn(store, cfg);
  sources.push(again);
  await again.start(AbortSignal.timeout(10_000));
  await until("online again", () => seen.at(-1) === "online");
  await pub.publishAsync("glass/Line_A/sensors/belt_speed", JSON.stringify({ value: 152, ts: Date.now() + 1 }), {
    qos: 1,
  });
  await until("stored again", () => store.count("belt_speed") === 2);
  assert.is(store.stats().sources.mqtt_c!.last_seq, 2);
  assert.is(store.stats().sources.mqtt_c!.duplicates_total, 0);
  // A retained status for late subscribers.
  const late = await publisher();
  const retained = new Promise<string>((r) => late.on("message", (_t, p) => r(p.toString())));
  await late.subscribeAsync("glassd/Line_A/status", { qos: 1 });
  assert.is(await retained, "online");
  await again.stop();
  await until("offline on clean stop", () => seen.at(-1) === "offline");
});

test.run();
