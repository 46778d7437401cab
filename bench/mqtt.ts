/*
 * MQTT benchmark, one real Mosquitto on loopback, everything in the same run.
 *
 * Inbound: N JSON messages at QoS 1 from one publisher (all sent as fast as MQTT.js will), received by
 *   - a bare MQTT.js subscriber (QoS 1, MQTT.js acknowledges at once, nothing stored): the raw baseline;
 *   - glassd's MqttSource → Validator → LMDB Store (fsync'd commits), PUBACK only after the commit (batched);
 *   - the same with serialAcks (MQTT.js's documented handleMessage route: one message per commit), fewer messages.
 *   msgs/s from the first publish to the last message received (bare) or durable (glassd), and the latency from
 *   publish to received/durable, p50/p99.
 * Outbound: Outbound.publish() of N results, awaited one by one (each one an LMDB commit) and all at once
 *   (commits batched by lmdb-js), until a subscriber has received all of them; next to a bare MQTT.js publisher
 *   (QoS 1) to the same subscriber.
 *
 * Usage: npx tsx bench/mqtt.ts [--quick]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { connect, type MqttClient } from "mqtt";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { realClock } from "../src/core/clock.js";
import { MqttSource, parseMqttSourceConfig, parseOutboundMqttConfig } from "../src/ingest/mqtt/index.js";
import { Validator } from "../src/ingest/validate.js";
import { Outbound } from "../src/outbound/index.js";
import { Store } from "../src/storage/index.js";
import { startBroker } from "../tests/fixtures/mosquitto.js";
import { ms, pct, quantile, rate, sortedCopy, table } from "./lib/index.js";

const quick = process.argv.includes("--quick");
const N = quick ? 5_000 : 30_000;
const N_SERIAL = quick ? 500 : 2_000;
const N_OUT = quick ? 2_000 : 10_000;
const dir = mkdtempSync(join(tmpdir(), "glassd-bench-mqtt-"));
const broker = await startBroker({ dir });
const T0 = Date.now() - 3_600_000;

async function client(opts: object = {}): Promise<MqttClient> {
  const c = connect(broker.url, { protocolVersion: 5, ...opts });
  await new Promise<void>((r) => c.once("connect", () => r()));
  return c;
}

async function openStore(name: string): Promise<Store> {
  const store = new Store({
    dataDir: join(dir, name),
    storage: { retention_hours: 1e6, max_sample_bytes: 1 << 30, map_size_bytes: 1 << 30, quarantine_max_entries: 1000 },
    autoRetention: false,
  });
  await store.open();
  return store;
}

interface Run {
  name: string;
  n: number;
  seconds: number;
  lat: Float64Array;
  extra?: string;
}

/** Publishes n messages on `topic`; records each publish time by index. */
function publishAll(pub: MqttClient, topic: string, n: number, sentAt: Float64Array): Promise<unknown> {
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    sentAt[i] = performance.now();
    all.push(pub.publishAsync(topic, JSON.stringify({ value: 150, ts: T0 + i }), { qos: 1 }));
  }
  return Promise.all(all);
}

async function bare(n: number): Promise<Run> {
  const topic = "bench/bare/sensors/belt_speed";
  const sub = await client({ clientId: "bench-bare", clean: true });
  const sentAt = new Float64Array(n);
  const lat = new Float64Array(n);
  let got = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve) =>
    sub.on("message", (_t, payload) => {
      const i = (JSON.parse(payload.toString()) as { ts: number }).ts - T0;
      lat[got++] = performance.now() - sentAt[i]!;
      if (got === n) resolve(performance.now());
    }),
  );
  await sub.subscribeAsync(topic, { qos: 1 });
  const pub = await client();
  t0 = performance.now();
  await publishAll(pub, topic, n, sentAt);
  const t1 = await done;
  sub.end(true);
  pub.end(true);
  return { name: "bare MQTT.js subscriber (no storage)", n, seconds: (t1 - t0) / 1000, lat };
}

async function glassd(n: number, serialAcks: boolean): Promise<Run> {
  const tag = "belt_speed";
  const topic = `bench/${serialAcks ? "serial" : "batched"}/sensors/${tag}`;
  const store = await openStore(serialAcks ? "serial" : "batched");
  const validator = new Validator(DEFAULT_TAGS, { stale_factor: 1e9, future_tolerance_ms: 1e12 }, realClock);
  const src = new MqttSource({
    config: parseMqttSourceConfig({
      id: "bench",
      broker: { url: broker.url, client_id: `bench-${serialAcks}` },
      json: { topics: [{ filter: topic, tag }] },
    }),
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    state: store,
    quarantine: (r) => store.appendBatch([], r),
    serialAcks,
  });
  const sentAt = new Float64Array(n);
  const lat = new Float64Array(n);
  let got = 0;
  let resolveDone: (t: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  src.attach(async (batch) => {
    const { accepted, rejected, commit } = validator.validateBatch(batch, { defer: true });
    await store.appendBatch(accepted, rejected);
    commit();
    const now = performance.now();
    for (const s of batch) lat[got++] = now - sentAt[(s.ts as number) - T0]!;
    if (got >= n) resolveDone(now);
  });
  await src.start(AbortSignal.timeout(10_000));
  const pub = await client();
  const t0 = performance.now();
  await publishAll(pub, topic, n, sentAt);
  const t1 = await done;
  const st = src.stats();
  await src.stop();
  pub.end(true);
  const stored = store.count(tag);
  await store.close();
  if (stored !== n) throw new Error(`stored ${stored} of ${n}`);
  return {
    name: serialAcks ? "glassd, serialAcks (1 msg per commit)" : "glassd → LMDB, PUBACK after commit",
    n,
    seconds: (t1 - t0) / 1000,
    lat,
    extra: `${st.batches} commits, max batch ${st.max_batch_seen}`,
  };
}

async function outbound(n: number, awaitEach: boolean): Promise<Run> {
  const store = await openStore(`out-${awaitEach}`);
  const sub = await client({ clientId: `bench-out-sub-${awaitEach}` });
  let got = 0;
  let resolveDone: (t: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  sub.on("message", () => {
    if (++got === n) resolveDone(performance.now());
  });
  await sub.subscribeAsync(`bench/out${awaitEach}/#`, { qos: 1 });
  const out = new Outbound({
    config: parseOutboundMqttConfig({
      enabled: true,
      broker: { url: broker.url },
      topics: { prediction: `bench/out${awaitEach}/prediction` },
      max_inflight: 500,
    }),
    lineId: "Line_A",
    store,
  });
  await out.start(AbortSignal.timeout(5000));
  while (!out.stats().targets.json!.connected) await new Promise((r) => setTimeout(r, 10));
  const t0 = performance.now();
  const enq = new Float64Array(n);
  if (awaitEach) {
    for (let i = 0; i < n; i++) {
      const a = performance.now();
      await out.publish("prediction", { i, defect_probability: 0.1 });
      enq[i] = performance.now() - a;
    }
  } else {
    await Promise.all(Array.from({ length: n }, (_, i) => out.publish("prediction", { i, defect_probability: 0.1 })));
  }
  const t1 = await done;
  await out.stop();
  sub.end(true);
  await store.close();
  return {
    name: awaitEach ? "Outbound.publish awaited one by one" : "Outbound.publish all at once",
    n,
    seconds: (t1 - t0) / 1000,
    lat: awaitEach ? enq : new Float64Array(),
    extra: awaitEach ? "latency = publish() until durable in the queue" : undefined,
  };
}

async function barePublisher(n: number): Promise<Run> {
  const sub = await client({ clientId: "bench-barepub-sub" });
  let got = 0;
  let resolveDone: (t: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  sub.on("message", () => {
    if (++got === n) resolveDone(performance.now());
  });
  await sub.subscribeAsync("bench/barepub/#", { qos: 1 });
  const pub = await client();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      pub.publishAsync("bench/barepub/prediction", JSON.stringify({ i, defect_probability: 0.1 }), { qos: 1 }),
    ),
  );
  const t1 = await done;
  pub.end(true);
  sub.end(true);
  return { name: "bare MQTT.js publisher QoS 1 (no queue)", n, seconds: (t1 - t0) / 1000, lat: new Float64Array() };
}

function rows(runs: Run[], base: Run): (string | number)[][] {
  return runs.map((r) => {
    const s = sortedCopy(r.lat);
    return [
      r.name,
      r.n,
      rate(r.n / r.seconds),
      pct(r.n / r.seconds / (base.n / base.seconds)),
      s.length ? ms(quantile(s, 0.5), 2) : "–",
      s.length ? ms(quantile(s, 0.99), 2) : "–",
      r.extra ?? "",
    ];
  });
}

try {
  const b = await bare(N);
  const g = await glassd(N, false);
  const s = await glassd(N_SERIAL, true);
  console.log(`\nMQTT inbound, JSON QoS 1, one publisher, mosquitto on loopback (${quick ? "quick" : "full"})`);
  console.log(
    table(["receiver", "msgs", "msgs/s", "vs bare", "p50 publish→recv/durable", "p99", "notes"], rows([b, g, s], b)),
  );
  const bp = await barePublisher(N_OUT);
  const o1 = await outbound(N_OUT, true);
  const o2 = await outbound(N_OUT, false);
  console.log("\nMQTT outbound, QoS 1, until a subscriber received everything");
  console.log(table(["publisher", "msgs", "msgs/s", "vs bare", "p50", "p99", "notes"], rows([bp, o1, o2], bp)));
  const mem = process.memoryUsage();
  console.log(`\nrss ${(mem.rss / 1048576).toFixed(0)} MiB, heap ${(mem.heapUsed / 1048576).toFixed(0)} MiB`);
} finally {
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
