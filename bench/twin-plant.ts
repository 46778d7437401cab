/*
 * The twin's plant over real protocols (`glassd twin serve`), measured from the client side on loopback.
 *
 * OPC UA: notifications/s received by a node-opcua client subscribed to every tag at a 100 ms sampling interval
 *   (publishing interval 100 ms, queue 10), over SignAndEncrypt/Basic256Sha256 and over Sign, for
 *   (a) DOMAIN.md's 15 tags with the twin at 1000× real time (each 1 s tag changes ~1000×/s of wall time, so the
 *       10 Hz sampling is the limit: at most 10 notifications/s per item), and
 *   (b) 1000 generic tags sampled every 100 ms with the twin at 1× (1000 items at 10 Hz, issue 4's load).
 *   Server, twin and client share this process; CPU is the process's, in % of one core.
 * MQTT: messages/s from the plant's JSON publisher (every sample, QoS 1) received by a bare mqtt.js subscriber
 *   through Mosquitto, next to the same subscriber receiving a bare mqtt.js publisher loop (same payload size,
 *   QoS 1, same in-flight window) in the same run; plus Sparkplug B NDATA/DDATA messages and metrics/s.
 *
 * Usage: npx tsx bench/twin-plant.ts [--quick] [--only opcua|mqtt]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  ClientSubscription,
  type DataValue,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
} from "node-opcua";
import { get as sparkplugNamespace } from "sparkplug-payload";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { TagConfig } from "../src/config/schema.js";
import { Plant, PlantMqttJson, PlantOpcuaServer, PlantUsers, SparkplugEdgeNode } from "../src/twin/plant/index.js";
import { rate, table } from "./lib/index.js";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
const MEASURE_MS = quick ? 2_000 : 5_000;
const WARMUP_MS = quick ? 500 : 1_500;
const dir = mkdtempSync(join(tmpdir(), "glassd-bench-plant-"));
let brokerProc: ChildProcess | undefined;
// bench/run.ts stops a bench that overruns with SIGTERM: take the broker and the temp dir along.
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    brokerProc?.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const USER = { name: "bench", password: "bench-password-1" };
const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");

function genericTags(n: number): TagConfig[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `gen_${String(i).padStart(4, "0")}`;
    return {
      id,
      unit: "°C",
      stage: (["batch", "furnace", "forming", "annealing"] as const)[i % 4]!,
      description: "",
      normal: { min: 100, max: 200 },
      limits: { min: 0, max: 1000 },
      period_ms: 100,
      max_rate_per_s: 50,
      sources: { opcua: { node_id: `ns=1;s=Line_A.${id}` }, mqtt: { topic: `glass/Line_A/sensors/${id}` } },
    };
  });
}

function cpuMeter() {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / (performance.now() - t0);
  };
}

// --- OPC UA ---

interface OpcuaRow {
  name: string;
  items: number;
  perS: number;
  cpu: number;
}

async function opcuaCase(name: string, tags: TagConfig[], speed: number, stepMs: number): Promise<OpcuaRow[]> {
  const caseDir = join(dir, name.replace(/\W+/g, "-"));
  const clientCM = new OPCUACertificateManager({
    rootFolder: join(caseDir, "client-pki"),
    automaticallyAcceptUnknownCertificate: false,
  });
  await clientCM.initialize();
  const clientCert = join(caseDir, "client-pki", "own", "certs", "client.pem");
  await clientCM.createSelfSignedCertificate({
    applicationUri: "urn:glassd-bench:client",
    subject: "/CN=bench",
    dns: ["localhost"],
    startDate: new Date(),
    validity: 30,
    outputFile: clientCert,
  });
  mkdirSync(join(caseDir, "pki", "trusted", "certs"), { recursive: true });
  copyFileSync(clientCert, join(caseDir, "pki", "trusted", "certs", "bench.pem"));
  const plant = new Plant({
    lineId: "Line_A",
    tags,
    seed: 1,
    speed,
    stepMs,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 10_000,
  });
  const server = new PlantOpcuaServer(plant, {
    port: 0,
    host: "127.0.0.1",
    hostname: "127.0.0.1",
    security: ["sign", "encrypt"],
    users: new PlantUsers([{ ...USER, role: "viewer" }]),
    anonymous: "off",
    pkiDir: join(caseDir, "pki"),
    userPkiDir: join(caseDir, "user-pki"),
    maxSessions: 4,
  });
  await server.start();
  // Explicit trust through the client's certificate manager (written to its trusted/ folder and indexed at once).
  await clientCM.trustCertificate(pemToDer(readFileSync(server.certificateFile, "utf8")));
  const abort = new AbortController();
  await plant.start(abort.signal);
  const rows: OpcuaRow[] = [];
  try {
    for (const mode of [MessageSecurityMode.SignAndEncrypt, MessageSecurityMode.Sign]) {
      const client = OPCUAClient.create({
        applicationUri: "urn:glassd-bench:client",
        applicationName: "bench",
        securityMode: mode,
        securityPolicy: SecurityPolicy.Basic256Sha256,
        clientCertificateManager: clientCM,
        certificateFile: clientCert,
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 0 },
      });
      await client.connect(server.endpointUrl);
      const session = await client.createSession({
        type: UserTokenType.UserName,
        userName: USER.name,
        password: USER.password,
      });
      const sub = ClientSubscription.create(session, {
        requestedPublishingInterval: 100,
        requestedMaxKeepAliveCount: 20,
        requestedLifetimeCount: 200,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
      });
      const group = ClientMonitoredItemGroup.create(
        sub,
        tags.map((t) => ({ nodeId: t.sources.opcua!.node_id!, attributeId: AttributeIds.Value })),
        { samplingInterval: 100, queueSize: 10, discardOldest: true },
        TimestampsToReturn.Both,
      );
      let n = 0;
      group.on("changed", (_item: unknown, _dv: DataValue) => {
        n++;
      });
      await sleep(WARMUP_MS);
      n = 0;
      const cpu = cpuMeter();
      const t0 = performance.now();
      await sleep(MEASURE_MS);
      const perS = (n / (performance.now() - t0)) * 1000;
      rows.push({
        name: `${name}, ${mode === MessageSecurityMode.Sign ? "Sign" : "SignAndEncrypt"}`,
        items: tags.length,
        perS,
        cpu: cpu(),
      });
      await sub.terminate();
      await session.close();
      await client.disconnect();
    }
  } finally {
    await plant.stop();
    await server.stop(0);
    await clientCM.dispose();
  }
  return rows;
}

// --- MQTT ---

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function mosquitto(): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  // Unbounded queues so the broker's defaults (1000 queued per client) do not cap either side of the comparison.
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n`,
  );
  const proc = spawn("/usr/sbin/mosquitto", ["-c", conf], { stdio: "ignore" });
  const url = `mqtt://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(url, { reconnectPeriod: 0, connectTimeout: 500 });
      c.once("connect", () => {
        c.end(true);
        resolve(true);
      });
      c.once("error", () => {
        c.end(true);
        resolve(false);
      });
      c.once("close", () => resolve(false));
    });
    if (ok) return { url, proc };
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error("mosquitto did not come up");
}

async function counter(url: string, topics: string[]): Promise<{ client: MqttClient; count: () => number }> {
  const client = connect(url, { protocolVersion: 5, clean: true });
  let n = 0;
  client.on("message", () => {
    n++;
  });
  await new Promise<void>((r) => client.once("connect", () => r()));
  await client.subscribeAsync(topics, { qos: 1 });
  return { client, count: () => n };
}

async function measure(count: () => number): Promise<{ perS: number; cpu: number }> {
  await sleep(WARMUP_MS);
  const n0 = count();
  const cpu = cpuMeter();
  const t0 = performance.now();
  await sleep(MEASURE_MS);
  return { perS: ((count() - n0) / (performance.now() - t0)) * 1000, cpu: cpu() };
}

async function mqttBench(url: string) {
  const rows: (string | number)[][] = [];
  // Bare baseline: one publisher, QoS 1, a window of in-flight messages, payloads like the plant's.
  {
    const sub = await counter(url, ["bench/#"]);
    const pub = connect(url, { protocolVersion: 5, clean: true });
    await new Promise<void>((r) => pub.once("connect", () => r()));
    let running = true;
    let inflight = 0;
    let seq = 0;
    const WINDOW = 20_000;
    const pump = () => {
      while (running && inflight < WINDOW) {
        inflight++;
        const body = { ts: Date.UTC(2026, 0, 1) + seq, quality: "good", seq: ++seq, value: 1500 + Math.random() };
        pub.publish(`bench/sensors/t${seq % 15}`, JSON.stringify(body), { qos: 1 }, () => {
          inflight--;
          if (inflight < WINDOW / 2) setImmediate(pump);
        });
      }
    };
    pump();
    const m = await measure(sub.count);
    running = false;
    await pub.endAsync();
    sub.client.end(true);
    rows.push(["bare mqtt.js publisher loop → subscriber", rate(m.perS), "", `${(m.cpu * 100).toFixed(0)} %`]);
  }
  const baseline = Number(String(rows[0]![1]).replace(/[^\d]/g, ""));
  // The plant's JSON publisher, every sample of the default tags at a speed that outruns the broker.
  for (const speed of [1000, 5000]) {
    const sub = await counter(url, ["glass/Line_A/#"]);
    const plant = new Plant({
      lineId: "Line_A",
      tags: DEFAULT_TAGS,
      seed: 1,
      speed,
      stepMs: 1000,
      itemsPerMin: 15,
      heartbeatTimeoutMs: 10_000,
    });
    const json = new PlantMqttJson(plant, { broker: { url } });
    await json.start();
    const abort = new AbortController();
    await plant.start(abort.signal);
    const m = await measure(sub.count);
    const st = json.stats();
    await plant.stop();
    await json.stop();
    sub.client.end(true);
    rows.push([
      `plant JSON publisher, twin at ${speed}× → subscriber`,
      rate(m.perS),
      `${((m.perS / baseline) * 100).toFixed(0)} % of bare`,
      `${(m.cpu * 100).toFixed(0)} %`,
      `published ${st.published.toLocaleString("en-US")}, dropped ${st.dropped.toLocaleString("en-US")}`,
    ]);
  }
  // Sparkplug B: one DDATA per stage per twin batch, each carrying that batch's samples as metrics.
  {
    const sp = sparkplugNamespace("spBv1.0")!;
    const client = connect(url, { protocolVersion: 5, clean: true });
    let msgs = 0;
    let metrics = 0;
    client.on("message", (topic, payload) => {
      if (!topic.includes("DATA")) return;
      msgs++;
      metrics += sp.decodePayload(payload).metrics?.length ?? 0;
    });
    await new Promise<void>((r) => client.once("connect", () => r()));
    await client.subscribeAsync("spBv1.0/bench/#", { qos: 0 });
    const plant = new Plant({
      lineId: "Line_A",
      tags: DEFAULT_TAGS,
      seed: 1,
      speed: 5000,
      stepMs: 1000,
      itemsPerMin: 15,
      heartbeatTimeoutMs: 10_000,
    });
    const node = new SparkplugEdgeNode(plant, { broker: { url }, groupId: "bench", nodeId: "Line_A" });
    await node.start();
    const abort = new AbortController();
    await plant.start(abort.signal);
    const m = await measure(() => msgs);
    const metricsPerS = (metrics / (MEASURE_MS + WARMUP_MS)) * 1000;
    await plant.stop();
    await node.stop();
    client.end(true);
    rows.push([
      "plant Sparkplug B edge node, twin at 5000× → subscriber",
      rate(m.perS),
      "",
      `${(m.cpu * 100).toFixed(0)} %`,
      `≈${rate(metricsPerS, " metrics/s")}`,
    ]);
  }
  return rows;
}

process.stdout.write(
  `twin plant bench — node ${process.version}; ${MEASURE_MS / 1000} s per figure after ${WARMUP_MS / 1000} s warm-up\n\n`,
);
try {
  if (only !== "mqtt") {
    const opcua = [
      ...(await opcuaCase("15 default tags, twin 1000×", DEFAULT_TAGS, 1000, 1000)),
      ...(await opcuaCase("1000 tags @ 10 Hz, twin 1×", genericTags(1000), 1, 100)),
    ];
    process.stdout.write("OPC UA: client subscribed to every tag, sampling 100 ms, publishing 100 ms\n");
    process.stdout.write(
      table(
        ["case", "items", "notifications/s", "per item/s", "CPU (1 core)"],
        opcua.map((r) => [
          r.name,
          r.items,
          rate(r.perS),
          (r.perS / r.items).toFixed(1),
          `${(r.cpu * 100).toFixed(0)} %`,
        ]),
      ),
    );
  }
  if (only !== "opcua") {
    const broker = await mosquitto();
    brokerProc = broker.proc;
    try {
      const rows = await mqttBench(broker.url);
      process.stdout.write(
        "\nMQTT through Mosquitto (QoS 1 JSON; Sparkplug QoS 0), received by a bare mqtt.js subscriber\n",
      );
      process.stdout.write(table(["publisher", "received/s", "vs bare", "CPU (1 core)", "notes"], rows));
    } finally {
      broker.proc.kill("SIGTERM");
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
