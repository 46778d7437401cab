/*
 * The twin's plant over MQTT, through a real Mosquitto on loopback: plain JSON topics, Sparkplug B births, data
 * with aliases, seq wrapping, rebirth on NCMD, and the NDEATH will when the plant process is killed — the plant
 * run in-process for the protocol details and as `glassd twin serve` (a child process) for the process-level ones.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type MqttClient } from "mqtt";
import { get as sparkplugNamespace } from "sparkplug-payload";
import type { UPayload } from "sparkplug-payload/lib/sparkplugbpayload.js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { Plant, PlantMqttJson, SparkplugEdgeNode } from "../src/twin/plant/index.js";

const MOSQUITTO = "/usr/sbin/mosquitto";
const ROOT = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "glassd-plant-mqtt-"));
const sp = sparkplugNamespace("spBv1.0")!;
const children: ChildProcess[] = [];
const clients: MqttClient[] = [];
let brokerUrl = "";
let broker: ChildProcess | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const num = (v: unknown): number => (typeof v === "object" && v !== null ? Number(String(v)) : Number(v));

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

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

interface Msg {
  topic: string;
  payload: Buffer;
  retain: boolean;
  at: number;
}

/** A subscriber that records every message it receives. */
async function subscriber(topics: string[]): Promise<{ client: MqttClient; msgs: Msg[] }> {
  const client = connect(brokerUrl, { protocolVersion: 5, clean: true, reconnectPeriod: 200 });
  clients.push(client);
  const msgs: Msg[] = [];
  client.on("message", (topic, payload, packet) =>
    msgs.push({ topic, payload, retain: packet.retain, at: Date.now() }),
  );
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  await client.subscribeAsync(topics, { qos: 1 });
  return { client, msgs };
}

const decode = (m: Msg): UPayload => sp.decodePayload(m.payload);

/** Starts `glassd twin serve` as a child process; resolves when it logs "twin plant ready". */
async function serveProcess(
  args: string[],
): Promise<{ child: ChildProcess; out: () => string; exit: Promise<number> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "twin", "serve", ...args], {
    cwd: ROOT,
    env: { ...process.env, FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const exit = new Promise<number>((resolve) => child.once("exit", (code, sig) => resolve(code ?? (sig ? -1 : 0))));
  await until(
    "the plant to be ready",
    () => out.includes('"msg":"twin plant ready"') || child.exitCode !== null,
    45_000,
  );
  if (child.exitCode !== null) throw new Error(`glassd twin serve exited early:\n${out}`);
  return { child, out: () => out, exit };
}

test.before(async () => {
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  // No per-client queue limit: a test process busy checking must not make the broker drop what it was sent.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`);
  broker = spawn(MOSQUITTO, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(broker);
  brokerUrl = `mqtt://127.0.0.1:${port}`;
  // Ready when it accepts an MQTT connection.
  const probe = connect(brokerUrl, { reconnectPeriod: 100, connectTimeout: 2000 });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`mosquitto did not come up on ${brokerUrl}`)), 10_000);
    probe.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
  });
  await probe.endAsync();
});

test.after(async () => {
  for (const c of clients) c.end(true);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

// --- in-process: the protocol details ---

test("in-process: JSON per tag with increasing seq, inspections, Sparkplug births, aliases, seq wrap, rebirth", async () => {
  const GROUP = "inproc";
  const NODE = "Line_A";
  const sub = await subscriber(["glass/Line_A/#", `spBv1.0/${GROUP}/#`]);
  const plant = new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed: 3,
    speed: 100,
    stepMs: 1000,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 5000,
  });
  const json = new PlantMqttJson(plant, { broker: { url: brokerUrl } });
  const node = new SparkplugEdgeNode(plant, {
    broker: { url: brokerUrl },
    groupId: GROUP,
    nodeId: NODE,
    layout: "node",
  });
  const abort = new AbortController();
  await json.start();
  await node.start();
  await plant.start(abort.signal);
  try {
    const nbirthTopic = `spBv1.0/${GROUP}/NBIRTH/${NODE}`;
    const ndataTopic = `spBv1.0/${GROUP}/NDATA/${NODE}`;
    // Enough node messages after the birth for seq to wrap (NBIRTH is 0; 256 more bring it back to 0).
    await until("300 Sparkplug messages after NBIRTH", () => {
      const i = sub.msgs.findIndex((m) => m.topic === nbirthTopic);
      return i >= 0 && sub.msgs.slice(i).filter((m) => m.topic === ndataTopic).length >= 300;
    });

    // JSON: every tag's topic, the documented payload, seq +1 per topic, ts increasing.
    const byTopic = new Map<string, { value: number; ts: number; quality: string; seq: number }[]>();
    for (const m of sub.msgs.filter((x) => x.topic.startsWith("glass/Line_A/sensors/"))) {
      const body = JSON.parse(m.payload.toString());
      assert.equal(Object.keys(body).sort(), ["quality", "seq", "ts", "value"]);
      const list = byTopic.get(m.topic);
      if (list) list.push(body);
      else byTopic.set(m.topic, [body]);
    }
    const fast = DEFAULT_TAGS.filter((t) => t.period_ms <= 10_000);
    for (const t of fast) {
      const list = byTopic.get(`glass/Line_A/sensors/${t.id}`);
      assert.ok(list && list.length >= 2, `samples of ${t.id}`);
      for (let i = 1; i < list!.length; i++) {
        assert.is(list![i]!.seq, list![i - 1]!.seq + 1, `${t.id} seq contiguous`);
        assert.ok(list![i]!.ts > list![i - 1]!.ts, `${t.id} ts increasing`);
      }
      assert.is(list![0]!.quality, "good");
      assert.type(list![0]!.value, "number");
    }
    const inspections = sub.msgs
      .filter((m) => m.topic === "glass/Line_A/inspection")
      .map((m) => JSON.parse(m.payload.toString()));
    assert.ok(inspections.length >= 3, "inspection results");
    assert.equal(Object.keys(inspections[0]).sort(), ["defects", "item_id", "ok", "seq", "ts"]);
    for (let i = 1; i < inspections.length; i++) assert.is(inspections[i].item_id, inspections[i - 1].item_id + 1);
    const status = sub.msgs.filter((m) => m.topic === "glass/Line_A/status").map((m) => m.payload.toString());
    assert.is(status.at(-1), "online");

    // NBIRTH: seq 0, bdSeq, Node Control/Rebirth, every tag with a name and an alias, engineering properties.
    const birthAt = sub.msgs.findIndex((m) => m.topic === nbirthTopic);
    const birth = decode(sub.msgs[birthAt]!);
    assert.is(num(birth.seq), 0);
    const metrics = birth.metrics ?? [];
    assert.is(num(metrics.find((m) => m.name === "bdSeq")?.value), node.currentBdSeq);
    assert.is(metrics.find((m) => m.name === "Node Control/Rebirth")?.value, false);
    const alias = new Map<number, string>();
    for (const m of metrics) if (m.alias != null) alias.set(num(m.alias), m.name!);
    assert.is(alias.size, metrics.length - 1, "aliases unique; every metric but bdSeq has one");
    for (const t of DEFAULT_TAGS) assert.ok([...alias.values()].includes(`${t.stage}/${t.id}`), `${t.id} born`);
    const ft = metrics.find((m) => m.name === "furnace/furnace_temperature")!;
    assert.is(ft.type, "Double");
    assert.is(ft.properties?.engUnit?.value, "°C");
    assert.is(ft.properties?.engLow?.value, 1450);

    // NDATA: aliases only, each alias one the birth announced; seq +1 mod 256 from the birth, wrapping.
    const after = sub.msgs.slice(birthAt + 1).filter((m) => m.topic.startsWith(`spBv1.0/${GROUP}/N`));
    let prev = 0;
    let wrapped = false;
    for (const m of after) {
      if (m.topic !== ndataTopic) break; // a rebirth would restart the count
      const p = decode(m);
      const seq = num(p.seq);
      assert.is(seq, (prev + 1) % 256, "seq increments by one");
      if (prev === 255) wrapped = true;
      prev = seq;
      for (const x of p.metrics ?? []) {
        assert.is(x.name ?? null, null, "data carries aliases, not names");
        assert.ok(alias.has(num(x.alias)), `alias ${x.alias} was born`);
      }
    }
    assert.ok(wrapped, "seq wrapped 255 → 0");

    // Remote mode and a setpoint change show up as NDATA with their aliases.
    const remoteAlias = [...alias].find(([, n]) => n === "Plant/remote_mode")![0];
    const spAlias = [...alias].find(([, n]) => n === "forming/forming_pressure_sp")![0];
    const mark = sub.msgs.length;
    plant.remote.heartbeat(1);
    await plant.writeSetpoint("forming_pressure", 55);
    const [r, s] = await until("remote_mode and setpoint NDATA", () => {
      const ms = sub.msgs
        .slice(mark)
        .filter((m) => m.topic === ndataTopic)
        .flatMap((m) => decode(m).metrics ?? []);
      const r = ms.find((x) => num(x.alias) === remoteAlias);
      const s = ms.find((x) => num(x.alias) === spAlias);
      return r && s ? ([r, s] as const) : undefined;
    });
    assert.is(r.value, true);
    assert.is(s.value, 55);

    // NCMD rebirth → a new NBIRTH with seq 0 and the same bdSeq.
    const births = () => sub.msgs.filter((m) => m.topic === nbirthTopic).length;
    const before = births();
    await sub.client.publishAsync(
      `spBv1.0/${GROUP}/NCMD/${NODE}`,
      Buffer.from(
        sp.encodePayload({
          timestamp: Date.now(),
          metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true }],
        }),
      ),
      { qos: 1 },
    );
    await until("NBIRTH after the rebirth request", () => births() > before);
    const rebirth = decode(sub.msgs.filter((m) => m.topic === nbirthTopic).at(-1)!);
    assert.is(num(rebirth.seq), 0);
    assert.is(num(rebirth.metrics?.find((m) => m.name === "bdSeq")?.value), node.currentBdSeq);
    assert.ok(json.stats().dropped === 0, "no JSON message dropped");
  } finally {
    await plant.stop();
    await node.stop();
    await json.stop();
  }
  // A clean stop publishes NDEATH itself, and the JSON status goes offline.
  await until("NDEATH on a clean stop", () => sub.msgs.some((m) => m.topic === `spBv1.0/${GROUP}/NDEATH/${NODE}`));
  await until(
    "status offline",
    () =>
      sub.msgs
        .filter((m) => m.topic === "glass/Line_A/status")
        .at(-1)
        ?.payload.toString() === "offline",
  );
});

// --- `glassd twin serve` as a process: devices, the will, bdSeq across restarts, clean shutdown ---

test("glassd twin serve: DBIRTH per stage, DDATA with aliases; kill -9 → NDEATH will with the birth's bdSeq", async () => {
  const GROUP = "proc";
  const NODE = "plant1";
  const data = join(dir, "serve-data");
  const users = join(dir, "users.json");
  writeFileSync(users, JSON.stringify({ users: [{ name: "glassd", password: "operator-password-1" }] }), {
    mode: 0o600,
  });
  const sub = await subscriber([`spBv1.0/${GROUP}/#`, "glass/Line_A/status"]);
  const args = [
    "--opcua-port",
    "0",
    "--opcua-host",
    "127.0.0.1",
    "--user-file",
    users,
    "--data-dir",
    data,
    "--mqtt-url",
    brokerUrl,
    "--sparkplug-group",
    GROUP,
    "--sparkplug-node",
    NODE,
    "--speed",
    "20",
  ];
  const first = await serveProcess(args);
  const nbirth = `spBv1.0/${GROUP}/NBIRTH/${NODE}`;
  await until("DDATA from the furnace", () =>
    sub.msgs.some((m) => m.topic === `spBv1.0/${GROUP}/DDATA/${NODE}/furnace`),
  );
  const birth = decode(sub.msgs.find((m) => m.topic === nbirth)!);
  const bdSeq = num(birth.metrics?.find((m) => m.name === "bdSeq")?.value);
  const devices = sub.msgs
    .filter((m) => m.topic.startsWith(`spBv1.0/${GROUP}/DBIRTH/`))
    .map((m) => m.topic.split("/")[4]);
  assert.equal(devices.sort(), ["annealing", "batch", "environment", "forming", "furnace", "mik_1"]);
  const furnaceBirth = decode(sub.msgs.find((m) => m.topic === `spBv1.0/${GROUP}/DBIRTH/${NODE}/furnace`)!);
  const furnaceAliases = new Set((furnaceBirth.metrics ?? []).map((m) => num(m.alias)));
  assert.ok(
    (furnaceBirth.metrics ?? []).some((m) => m.name === "furnace_power_sp"),
    "setpoints are metrics",
  );
  const ddata = decode(sub.msgs.find((m) => m.topic === `spBv1.0/${GROUP}/DDATA/${NODE}/furnace`)!);
  for (const m of ddata.metrics ?? []) assert.ok(furnaceAliases.has(num(m.alias)) && m.name == null);
  const persisted = JSON.parse(readFileSync(join(data, "sparkplug-bdseq.json"), "utf8"));
  assert.is(persisted.bdSeq, bdSeq);

  // kill -9: no NDEATH of its own; the broker publishes the will registered at CONNECT.
  const deathsBefore = sub.msgs.filter((m) => m.topic === `spBv1.0/${GROUP}/NDEATH/${NODE}`).length;
  first.child.kill("SIGKILL");
  await first.exit;
  const death = await until(
    "NDEATH will",
    () => sub.msgs.filter((m) => m.topic === `spBv1.0/${GROUP}/NDEATH/${NODE}`)[deathsBefore],
  );
  const deathPayload = decode(death);
  assert.is(
    num(deathPayload.metrics?.find((m) => m.name === "bdSeq")?.value),
    bdSeq,
    "the will carries the birth's bdSeq",
  );
  assert.is(deathPayload.seq ?? null, null, "NDEATH has no seq");
  assert.is(
    sub.msgs
      .filter((m) => m.topic === "glass/Line_A/status")
      .at(-1)
      ?.payload.toString(),
    "offline",
    "JSON will",
  );

  // Restarted with the same data dir: the next bdSeq, so a host can tell this session from the dead one.
  const births = () => sub.msgs.filter((m) => m.topic === nbirth);
  const n = births().length;
  const second = await serveProcess(args);
  await until("a new NBIRTH", () => births().length > n);
  const bdSeq2 = num(decode(births().at(-1)!).metrics?.find((m) => m.name === "bdSeq")?.value);
  assert.is(bdSeq2, (bdSeq + 1) % 256);

  // SIGTERM: NDEATH published by the plant itself with the current bdSeq, status offline, exit code 0.
  const deaths = () => sub.msgs.filter((m) => m.topic === `spBv1.0/${GROUP}/NDEATH/${NODE}`);
  const d = deaths().length;
  second.child.kill("SIGTERM");
  assert.is(await second.exit, 0, "clean exit");
  const cleanDeath = await until("NDEATH on SIGTERM", () => deaths()[d]);
  assert.is(num(decode(cleanDeath).metrics?.find((m) => m.name === "bdSeq")?.value), bdSeq2);
  assert.ok(second.out().includes('"msg":"twin plant stopped"'), "logged its stop");
});

test("TLS and user name/password: the plant publishes over mqtts:// with its credentials; wrong ones never connect", async () => {
  // A CA, a server certificate for 127.0.0.1 and a password file, made with the tools a plant engineer would use.
  const tls = join(dir, "tls");
  mkdirSync(tls, { recursive: true });
  const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: tls, stdio: "ignore" });
  sh("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=glassd-test-ca",
  ]);
  sh("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  writeFileSync(join(tls, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  sh("openssl", [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ]);
  sh("mosquitto_passwd", ["-b", "-c", "passwd", "plant", "plant-password-1"]);
  const port = await freePort();
  const conf = join(tls, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      "user root", // only matters when started as root: keeps it able to read the files of this temp dir
      `listener ${port} 127.0.0.1`,
      `cafile ${join(tls, "ca.pem")}`,
      `certfile ${join(tls, "server.pem")}`,
      `keyfile ${join(tls, "server.key")}`,
      "allow_anonymous false",
      `password_file ${join(tls, "passwd")}`,
      "",
    ].join("\n"),
  );
  const secure = spawn(MOSQUITTO, ["-c", conf], { stdio: "ignore" });
  children.push(secure);
  const url = `mqtts://127.0.0.1:${port}`;
  const auth = { username: "plant", password: "plant-password-1" };
  const ca = readFileSync(join(tls, "ca.pem"));
  const sub = connect(url, { ...auth, ca, protocolVersion: 5, reconnectPeriod: 100 });
  clients.push(sub);
  const got: string[] = [];
  sub.on("message", (topic) => got.push(topic));
  await new Promise<void>((r) => sub.once("connect", () => r()));
  await sub.subscribeAsync("glass/Line_A/sensors/#", { qos: 1 });
  const plant = new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed: 5,
    speed: 50,
    stepMs: 1000,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 5000,
  });
  const good = new PlantMqttJson(plant, { broker: { url, ...auth, caFile: join(tls, "ca.pem") } });
  const bad = new PlantMqttJson(plant, {
    broker: { url, username: "plant", password: "wrong-password", caFile: join(tls, "ca.pem") },
    clientId: "glassd-twin-bad",
    connectWaitMs: 1000,
  });
  const abort = new AbortController();
  await good.start();
  await bad.start(); // does not throw: it keeps retrying, as a device would, while the plant runs on
  await plant.start(abort.signal);
  try {
    await until("samples over TLS", () => got.length >= 20);
    assert.is(bad.stats().acked, 0, "wrong credentials: nothing accepted");
    assert.ok(good.stats().acked >= 20);
  } finally {
    await plant.stop();
    await good.stop();
    await bad.stop();
    secure.kill("SIGTERM");
  }
});

test.run();
