/*
 * Delivery guarantees of the MQTT source against a real Mosquitto with persistence: a QoS 1 message is acknowledged
 * only once durable, so (1) a broker restart in the middle of a stream loses no acknowledged sample, (2) messages
 * published while glassd is down are delivered after it reconnects (persistent session), (3) a glassd killed
 * before its LMDB commit gets the message again (it was never acknowledged), and (4) the documented one-at-a-time
 * acknowledgement route works too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { MqttSource } from "../src/ingest/mqtt/index.js";
import type { Store } from "../src/storage/index.js";
import { type Broker, startBroker } from "./fixtures/mosquitto.js";
import { openStore, sleep, sourceOn, until } from "./fixtures/mqtt-ingest.js";

const ROOT = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "glassd-mqtt-delivery-"));
let broker: Broker;
const clients: MqttClient[] = [];
const sources: MqttSource[] = [];
const stores: Store[] = [];
const children: ChildProcess[] = [];

async function publisher(clientId: string): Promise<MqttClient> {
  // A persistent publisher too: what it sent but the broker did not acknowledge is resent after a reconnect.
  const c = connect(broker.url, {
    protocolVersion: 5,
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 100,
  });
  clients.push(c);
  await new Promise<void>((r) => c.once("connect", () => r()));
  return c;
}

test.before(async () => {
  broker = await startBroker({ dir, persistence: true });
});

test.after(async () => {
  for (const s of sources) await s.stop().catch(() => undefined);
  for (const c of clients) c.end(true);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of stores) await s.close().catch(() => undefined);
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.now() - 3_600_000;
const body = (i: number) => JSON.stringify({ value: 150 + (i % 2) * 0.5, ts: T0 + i * 1000 });

function storedTs(store: Store): Set<number> {
  return new Set(store.range("belt_speed", T0, T0 + 10_000_000, 1_000_000).map((s) => s.ts));
}

test("broker restart mid-stream and messages published while glassd is down: no acknowledged sample lost", async () => {
  const store = await openStore(join(dir, "a"));
  stores.push(store);
  const cfg = { id: "mqtt_d", broker: { url: broker.url, client_id: "glassd-delivery", reconnect_ms: 200 } };
  let src = sourceOn(store, cfg);
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  const pub = await publisher("pub-delivery");
  const acked = new Set<number>();
  const sendRange = (from: number, to: number) => {
    const all: Promise<void>[] = [];
    for (let i = from; i < to; i++)
      all.push(
        pub.publishAsync("glass/Line_A/sensors/belt_speed", body(i), { qos: 1 }).then(
          () => void acked.add(T0 + i * 1000),
          () => undefined,
        ),
      );
    return all;
  };
  // 1) a stream, with the broker restarted in the middle of it
  const first = sendRange(0, 1500);
  await until("part of the stream stored", () => store.count("belt_speed") >= 300);
  await broker.restart();
  const second = sendRange(1500, 3000);
  await Promise.all([...first, ...second]);
  await until("glassd reconnected", () => src.stats().connected && src.stats().reconnects >= 1, 15_000);
  // 2) glassd goes away; the broker queues for its session; glassd comes back
  await src.stop();
  await Promise.all(sendRange(3000, 4000));
  src = sourceOn(store, cfg);
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  await until(
    "every acknowledged message stored",
    () => {
      const have = storedTs(store);
      for (const ts of acked) if (!have.has(ts)) return false;
      return true;
    },
    20_000,
  );
  assert.is(acked.size, 4000, "the publisher got every message acknowledged");
  const s = store.stats().sources.mqtt_d!;
  assert.is(s.gaps_total, 0, "glassd's seq has no gaps");
  // At-least-once: a message whose PUBACK was lost in the restart may be stored twice, never zero times.
  assert.ok(store.count("belt_speed") >= 4000);
  await src.stop();
});

test("glassd killed before its LMDB commit: the message was not acknowledged and is delivered again", async () => {
  const store = await openStore(join(dir, "b"));
  stores.push(store);
  const clientId = "glassd-killed";
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "tests/fixtures/mqtt-hang-harness.ts", broker.url, clientId],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let out = "";
  child.stdout!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  await until("harness ready", () => out.includes("ready") || child.exitCode !== null, 30_000);
  assert.ok(out.includes("ready"), out);
  const pub = await publisher("pub-kill");
  const ts = T0 + 42_000;
  await pub.publishAsync("glass/Line_A/sensors/belt_speed", JSON.stringify({ value: 149, ts }), { qos: 1 });
  await until("the child received it", () => out.includes(`got belt_speed ${ts}`));
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  const src = sourceOn(store, { id: "mqtt_kill", broker: { url: broker.url, client_id: clientId } });
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  await until("redelivered and stored", () => store.count("belt_speed") === 1);
  assert.is(store.latest("belt_speed")?.ts, ts);
  assert.is(src.stats().acks_delayed, 1);
  await sleep(200);
  assert.is(store.count("belt_speed"), 1);
  await src.stop();
});

test("serialAcks: the documented handleMessage route (one message per commit) stores everything in order", async () => {
  const store = await openStore(join(dir, "c"));
  stores.push(store);
  const src = sourceOn(
    store,
    { id: "mqtt_s", broker: { url: broker.url, client_id: "glassd-serial" } },
    { serialAcks: true },
  );
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  const pub = await publisher("pub-serial");
  await Promise.all(
    Array.from({ length: 200 }, (_, i) => pub.publishAsync("glass/Line_A/sensors/belt_speed", body(i), { qos: 1 })),
  );
  await until("200 stored", () => store.count("belt_speed") === 200);
  const st = src.stats();
  assert.is(st.acks_delayed, 200);
  assert.is(st.max_batch_seen, 1, "one message per commit");
  const seqs = store
    .range("belt_speed", T0, T0 + 1e9)
    .sort((a, b) => a.ts - b.ts)
    .map((s) => s.seq);
  assert.equal(
    seqs,
    Array.from({ length: 200 }, (_, i) => i + 1),
    "arrival order = publish order",
  );
  await src.stop();
});

test.run();
