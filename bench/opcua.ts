/*
 * OPC UA client benchmark: N tags (default 1000) changing at 10 Hz on a real node-opcua server in a child process
 * (so the CPU measured here is the client's), SignAndEncrypt/Basic256Sha256, anonymous.
 *
 * 1. Baseline: a bare node-opcua ClientSubscription (publishing 100 ms) with one monitored-item group over the same
 *    items (sampling 100 ms, queue 2, StatusValueTimestamp trigger), counting notifications; latency = receipt −
 *    source timestamp.
 * 2. glassd: OpcuaSource (batch_ms 100) → Validator → LMDB Store (synchronous, fsync'd commits), latency = batch
 *    durable (appendBatch resolved) − source timestamp.
 * Same server, same items, one after the other in the same run. Client CPU = process.cpuUsage over the window.
 *
 * Usage: npx tsx bench/opcua.ts [--quick] [--tags N] [--seconds S]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TagConfig } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import { realClock } from "../src/core/clock.js";
import type { RawSample } from "../src/core/types.js";
import { OpcuaSource, openPki, trustCert } from "../src/ingest/opcua/index.js";
import { Validator, validatingSink } from "../src/ingest/validate.js";
import { Store } from "../src/storage/index.js";
import { ms, pct, rate, summarize, table } from "./lib/index.js";

const argv = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const quick = argv.includes("--quick");
const N = arg("--tags", 1000);
const SECONDS = arg("--seconds", quick ? 4 : 10);
const HZ = 10;
const nodeId = (i: number) => `ns=1;s=bench.t${String(i).padStart(4, "0")}`;

// ── the server (child process) ───────────────────────────────────────────────────────────────────────────────────

async function serve(): Promise<void> {
  const ua = await import("node-opcua");
  const dir = mkdtempSync(join(tmpdir(), "glassd-bench-opcua-srv-"));
  const server = new ua.OPCUAServer({
    port: 0,
    host: "127.0.0.1",
    hostname: "127.0.0.1",
    serverCertificateManager: new ua.OPCUACertificateManager({
      rootFolder: join(dir, "pki"),
      automaticallyAcceptUnknownCertificate: true,
    }),
    securityModes: [ua.MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [ua.SecurityPolicy.Basic256Sha256],
    allowAnonymous: true,
    serverCapabilities: { maxSessions: 8, maxMonitoredItemsPerSubscription: 100_000 },
  });
  await server.initialize();
  const ns = server.engine.addressSpace!.getOwnNamespace();
  const folder = ns.addFolder(server.engine.addressSpace!.rootFolder.objects, { browseName: "bench" });
  const vars = Array.from({ length: N }, (_, i) =>
    ns.addVariable({
      componentOf: folder,
      browseName: `t${i}`,
      nodeId: nodeId(i).slice("ns=1;".length),
      dataType: "Double",
      minimumSamplingInterval: 0,
    }),
  );
  await server.start();
  let k = 0;
  const timer = setInterval(() => {
    k++;
    const now = new Date();
    for (let i = 0; i < N; i++)
      vars[i]!.setValueFromSource({ dataType: ua.DataType.Double, value: k + i / N }, ua.StatusCodes.Good, now);
  }, 1000 / HZ);
  process.stdout.write(`${JSON.stringify({ port: server.endpoints[0]!.port, cert: server.certificateFile })}\n`);
  const stop = async () => {
    clearInterval(timer);
    await server.shutdown(0);
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.stdin.on("end", () => void stop());
  process.stdin.resume();
}

function startServer(): Promise<{ child: ChildProcess; endpoint: string; cert: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "--serve", "--tags", String(N)],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (b: Buffer) => {
      buf += b.toString();
      const line = buf.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        const j = JSON.parse(line) as { port: number; cert: string };
        resolve({ child, endpoint: `opc.tcp://127.0.0.1:${j.port}`, cert: j.cert });
      }
    });
    child.on("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
  });
}

// ── the runs ─────────────────────────────────────────────────────────────────────────────────────────────────────

interface Result {
  name: string;
  samples: number;
  seconds: number;
  lat: number[];
  cpuMs: number;
}

async function bare(endpoint: string, pkiDir: string): Promise<Result> {
  const ua = await import("node-opcua");
  const cm = new ua.OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false });
  const client = ua.OPCUAClient.create({
    applicationName: "bench-bare",
    securityMode: ua.MessageSecurityMode.SignAndEncrypt,
    securityPolicy: ua.SecurityPolicy.Basic256Sha256,
    clientCertificateManager: cm,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
  });
  await client.connect(endpoint);
  const session = await client.createSession();
  const sub = await session.createSubscription2({
    requestedPublishingInterval: 100,
    requestedMaxKeepAliveCount: 10,
    requestedLifetimeCount: 600,
    maxNotificationsPerPublish: 0,
    publishingEnabled: true,
  });
  const lat: number[] = [];
  let counting = false;
  let samples = 0;
  const group = await sub.monitorItems(
    Array.from({ length: N }, (_, i) => ({ nodeId: nodeId(i), attributeId: ua.AttributeIds.Value })),
    {
      samplingInterval: 1000 / HZ,
      queueSize: 2,
      discardOldest: true,
      filter: new ua.DataChangeFilter({ trigger: ua.DataChangeTrigger.StatusValueTimestamp }),
    },
    ua.TimestampsToReturn.Both,
  );
  group.on("changed", (_mi, dv) => {
    if (!counting) return;
    samples++;
    if ((samples & 7) === 0) lat.push(Date.now() - dv.sourceTimestamp!.getTime());
  });
  await new Promise((r) => setTimeout(r, 1500)); // initial values and warm-up
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  counting = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await sub.terminate();
  await session.close();
  await client.disconnect();
  await cm.dispose();
  return { name: "bare node-opcua ClientSubscription", samples, seconds, lat, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function glassd(endpoint: string, pkiDir: string): Promise<Result> {
  const dataDir = mkdtempSync(join(tmpdir(), "glassd-bench-opcua-store-"));
  const tags: TagConfig[] = Array.from({ length: N }, (_, i) => ({
    id: `t${String(i).padStart(4, "0")}`,
    unit: "",
    stage: "furnace",
    description: "",
    normal: { min: 0, max: 1e9 },
    limits: { min: -1e9, max: 1e9 },
    period_ms: 1000 / HZ,
    stale_after_ms: 60_000,
    sources: { opcua: { node_id: nodeId(i) } },
  }));
  const cfg = defaultConfig();
  const store = new Store({ dataDir, storage: cfg.storage, clock: realClock, autoRetention: false });
  await store.open();
  const validator = new Validator(tags, cfg.validation, realClock);
  const inner = validatingSink(validator, (a, r) => store.appendBatch(a, r));
  const lat: number[] = [];
  let counting = false;
  let samples = 0;
  let batches = 0;
  const src = new OpcuaSource({ endpoint, pkiDir, tags, batchMs: 100, state: store });
  src.attach(async (b: RawSample[]) => {
    await inner(b);
    if (!counting) return;
    const now = Date.now();
    batches++;
    samples += b.length;
    for (let i = 0; i < b.length; i += 8) lat.push(now - b[i]!.ts);
  });
  await src.start(new AbortController().signal);
  if (!src.stats().connected) throw new Error(`glassd source not connected: ${src.stats().last_error}`);
  await new Promise((r) => setTimeout(r, 1500));
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  counting = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const st = src.stats();
  await src.stop();
  const q = store.quarantineCounts();
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
  console.log(
    `glassd: ${batches} batches (${Math.round(samples / Math.max(1, batches))} samples each), quarantined ${JSON.stringify(q)}, lost ${st.lost_samples}, sink errors ${st.sink_errors}, stalled ${st.stalled_items}`,
  );
  return { name: "glassd OpcuaSource → LMDB (durable)", samples, seconds, lat, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function main(): Promise<void> {
  const { child, endpoint, cert } = await startServer();
  const dirs = [
    mkdtempSync(join(tmpdir(), "glassd-bench-opcua-pki-")),
    mkdtempSync(join(tmpdir(), "glassd-bench-opcua-pki-")),
  ];
  try {
    for (const d of dirs) {
      const { cm } = await openPki(d);
      await cm.dispose();
      await trustCert(d, cert);
    }
    console.log(
      `OPC UA: ${N} tags at ${HZ} Hz (${N * HZ} changes/s offered), SignAndEncrypt/Basic256Sha256, ${SECONDS} s per run`,
    );
    const runs = [await bare(endpoint, dirs[0]!), await glassd(endpoint, dirs[1]!)];
    const base = runs[0]!.samples / runs[0]!.seconds;
    const rows = runs.map((r) => {
      const s = summarize(r.lat);
      const perS = r.samples / r.seconds;
      return [
        r.name,
        rate(perS),
        pct(perS / base),
        `${ms(s.p50, 1)} ms`,
        `${ms(s.p99, 1)} ms`,
        pct(r.cpuMs / 1000 / r.seconds),
      ];
    });
    console.log(
      table(["client", "samples/s", "vs bare", "latency p50", "latency p99", "client CPU (1 core = 100 %)"], rows),
    );
    console.log(`rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`);
  } finally {
    child.stdin?.end();
    child.kill("SIGTERM");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

if (argv.includes("--serve")) await serve();
else await main();
