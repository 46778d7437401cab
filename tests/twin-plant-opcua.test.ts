/*
 * The twin's plant over OPC UA, with a real node-opcua client on loopback: browse, read, subscribe, secured and
 * authenticated writes with PLC clamping, role checks, the heartbeat and REMOTE/LOCAL, certificate trust.
 * The client trusts the server's certificate explicitly (copied into its trusted folder) and the server trusts the
 * client's the same way: nothing is auto-accepted.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AttributeIds,
  BrowseDirection,
  ClientMonitoredItem,
  type ClientSession,
  ClientSubscription,
  DataType,
  type DataValue,
  MessageSecurityMode,
  NodeClass,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  type StatusCode,
  TimestampsToReturn,
  UserTokenType,
} from "node-opcua";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { Plant, PlantOpcuaServer, PlantUsers } from "../src/twin/plant/index.js";

const LINE = "Line_A";
const HEARTBEAT_TIMEOUT_MS = 1500;
const dir = mkdtempSync(join(tmpdir(), "glassd-plant-opcua-"));
const USERS = {
  operator: { name: "glassd", password: "operator-password-1" },
  viewer: { name: "vera", password: "viewer-password-1" },
};

const plant = new Plant({
  lineId: LINE,
  tags: DEFAULT_TAGS,
  seed: 7,
  speed: 20,
  stepMs: 1000,
  itemsPerMin: 15,
  heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
});
const server = new PlantOpcuaServer(plant, {
  port: 0,
  host: "127.0.0.1",
  hostname: "127.0.0.1",
  security: ["sign", "encrypt"],
  users: new PlantUsers([
    { ...USERS.operator, role: "operator" },
    { ...USERS.viewer, role: "viewer" },
  ]),
  anonymous: "read",
  pkiDir: join(dir, "pki"),
  userPkiDir: join(dir, "user-pki"),
});
const abort = new AbortController();
const clients: OPCUAClient[] = [];
let clientCertFile = "";
let clientCM: OPCUACertificateManager;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A client PKI with its own self-signed certificate, so the server can be told to trust it before it starts. */
async function makeClientPki(name: string): Promise<{ cm: OPCUACertificateManager; certFile: string }> {
  // The certificate's URI must be the client's applicationUri (connect() derives it from the same name).
  const cm = new OPCUACertificateManager({
    rootFolder: join(dir, `${name}-pki`),
    automaticallyAcceptUnknownCertificate: false,
  });
  await cm.initialize();
  const certFile = join(dir, `${name}-pki`, "own", "certs", "client.pem");
  await cm.createSelfSignedCertificate({
    applicationUri: `urn:glassd-test:${name}`,
    subject: `/CN=${name}/O=glassd-test`,
    dns: ["localhost"],
    startDate: new Date(),
    validity: 30,
    outputFile: certFile,
  });
  return { cm, certFile };
}

interface ConnectOptions {
  mode?: MessageSecurityMode;
  policy?: SecurityPolicy;
  user?: { name: string; password: string } | "anonymous";
  cm?: OPCUACertificateManager;
  certFile?: string;
  appName?: string;
}

async function connect(o: ConnectOptions = {}): Promise<{ client: OPCUAClient; session: ClientSession }> {
  const appName = o.appName ?? "client";
  const client = OPCUAClient.create({
    applicationName: appName,
    applicationUri: `urn:glassd-test:${appName}`,
    securityMode: o.mode ?? MessageSecurityMode.SignAndEncrypt,
    securityPolicy: o.policy ?? SecurityPolicy.Basic256Sha256,
    clientCertificateManager: o.cm ?? clientCM,
    certificateFile: o.certFile ?? clientCertFile,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
    requestedSessionTimeout: 10_000,
  });
  clients.push(client);
  await client.connect(server.endpointUrl);
  const user = o.user ?? USERS.operator;
  const session =
    user === "anonymous"
      ? await client.createSession({ type: UserTokenType.Anonymous })
      : await client.createSession({ type: UserTokenType.UserName, userName: user.name, password: user.password });
  return { client, session };
}

async function close(c: { client: OPCUAClient; session: ClientSession }): Promise<void> {
  await c.session.close().catch(() => {});
  await c.client.disconnect();
}

const id = (tag: string) => `ns=1;s=${LINE}.${tag}`;

async function readValue(session: ClientSession, nodeId: string): Promise<DataValue> {
  return session.read({ nodeId, attributeId: AttributeIds.Value }, 0);
}

async function writeDouble(session: ClientSession, nodeId: string, value: number): Promise<StatusCode> {
  return session.write({
    nodeId,
    attributeId: AttributeIds.Value,
    value: { value: { dataType: DataType.Double, value } },
  });
}

async function heartbeat(session: ClientSession, counter: number): Promise<StatusCode> {
  return session.write({
    nodeId: id("glassd_heartbeat"),
    attributeId: AttributeIds.Value,
    value: { value: { dataType: DataType.UInt32, value: counter } },
  });
}

/** Browses forward hierarchical references; returns browse name → node id. */
async function children(session: ClientSession, nodeId: string): Promise<Map<string, string>> {
  const r = await session.browse({
    nodeId,
    browseDirection: BrowseDirection.Forward,
    referenceTypeId: "HierarchicalReferences",
    includeSubtypes: true,
    nodeClassMask: NodeClass.Object | NodeClass.Variable,
    resultMask: 63,
  });
  return new Map((r.references ?? []).map((ref) => [ref.browseName.name ?? "", ref.nodeId.toString()]));
}

test.before(async () => {
  const c = await makeClientPki("client");
  clientCM = c.cm;
  clientCertFile = c.certFile;
  // The server trusts this client's certificate explicitly (what `glassd pki trust` does on the other side).
  mkdirSync(join(dir, "pki", "trusted", "certs"), { recursive: true });
  copyFileSync(clientCertFile, join(dir, "pki", "trusted", "certs", "client.pem"));
  await server.start();
  // …and the client trusts the server's self-signed application certificate explicitly (into its trusted/ folder).
  await clientCM.trustCertificate(pemToDer(readFileSync(server.certificateFile, "utf8")));
  await plant.start(abort.signal);
});

test.after(async () => {
  for (const c of clients) await c.disconnect().catch(() => {});
  await plant.stop();
  await server.stop(0);
  await clientCM.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test("namespace 1 is the plant's and every tag sits under its stage with the dictionary's node id", async () => {
  const c = await connect();
  try {
    const nsArray = await readValue(c.session, "ns=0;i=2255");
    assert.ok((nsArray.value.value as string[]).length >= 2, "namespace array has the plant's namespace");
    const objects = await children(c.session, "ns=0;i=85");
    assert.is(objects.get(LINE), `ns=1;s=${LINE}`);
    const stages = await children(c.session, `ns=1;s=${LINE}`);
    for (const t of DEFAULT_TAGS) {
      const stageId = stages.get(t.stage);
      assert.ok(stageId, `stage ${t.stage} is browsable`);
      const vars = await children(c.session, stageId!);
      assert.is(vars.get(t.id), t.sources.opcua?.node_id, `${t.id} under ${t.stage}`);
      if (t.actuator) assert.is(vars.get(`${t.id}_sp`), `${t.sources.opcua?.node_id}_sp`, `${t.id}_sp`);
      else assert.not.ok(vars.has(`${t.id}_sp`), `${t.id} has no setpoint`);
    }
    const control = await children(c.session, stages.get("control")!);
    assert.is(control.get("glassd_heartbeat"), id("glassd_heartbeat"));
    assert.is(control.get("remote_mode"), id("remote_mode"));
    assert.ok(stages.has("mik_1"));
  } finally {
    await close(c);
  }
});

test("process variables: Double, engineering units, EURange = normal band, InstrumentRange = hard limits", async () => {
  const c = await connect();
  try {
    const t = DEFAULT_TAGS.find((x) => x.id === "furnace_temperature")!;
    const dt = await c.session.read({ nodeId: id(t.id), attributeId: AttributeIds.DataType });
    assert.is(dt.value.value.toString(), "ns=0;i=11", "DataType Double");
    const props = await children(c.session, id(t.id));
    const eu = await readValue(c.session, props.get("EURange")!);
    assert.equal([eu.value.value.low, eu.value.value.high], [t.normal.min, t.normal.max]);
    const ir = await readValue(c.session, props.get("InstrumentRange")!);
    assert.equal([ir.value.value.low, ir.value.value.high], [t.limits.min, t.limits.max]);
    const units = await readValue(c.session, props.get("EngineeringUnits")!);
    assert.is(units.value.value.displayName.text, "°C");
    assert.is(units.value.value.unitId, 4408652, "UNECE CEL");
    const sp = await children(c.session, id("belt_speed_sp"));
    const spEu = await readValue(c.session, sp.get("EURange")!);
    assert.equal([spEu.value.value.low, spEu.value.value.high], [80, 220], "setpoint EURange = actuator range");
  } finally {
    await close(c);
  }
});

test("values lie within the hard limits and source timestamps advance with the twin's clock", async () => {
  const c = await connect();
  try {
    const first = new Map<string, number>();
    for (const t of DEFAULT_TAGS) {
      const dv = await readValue(c.session, id(t.id));
      assert.ok(dv.statusCode.isGood(), `${t.id} status ${dv.statusCode.toString()}`);
      const v = dv.value.value as number;
      assert.ok(v >= t.limits.min && v <= t.limits.max, `${t.id}=${v} within hard limits`);
      assert.ok(dv.sourceTimestamp instanceof Date);
      first.set(t.id, dv.sourceTimestamp!.getTime());
    }
    await sleep(1200);
    const later = await readValue(c.session, id("furnace_temperature"));
    // 1.2 s of wall time at 20× is ~24 s of plant time; the 1 s-period tag has moved on by at least 10 s.
    assert.ok(later.sourceTimestamp!.getTime() - first.get("furnace_temperature")! >= 10_000);
    const simTime = await readValue(c.session, id("sim_time"));
    assert.ok(Math.abs((simTime.value.value as Date).getTime() - plant.now()) < 5_000);
  } finally {
    await close(c);
  }
});

test("a monitored item receives changes with increasing source timestamps", async () => {
  const c = await connect({ user: "anonymous", mode: MessageSecurityMode.Sign });
  try {
    const sub = ClientSubscription.create(c.session, {
      requestedPublishingInterval: 100,
      requestedMaxKeepAliveCount: 20,
      requestedLifetimeCount: 100,
      publishingEnabled: true,
    });
    const item = ClientMonitoredItem.create(
      sub,
      { nodeId: id("furnace_temperature"), attributeId: AttributeIds.Value },
      { samplingInterval: 100, queueSize: 10, discardOldest: true },
      TimestampsToReturn.Both,
    );
    const seen: number[] = [];
    item.on("changed", (dv: DataValue) => seen.push(dv.sourceTimestamp!.getTime()));
    await until("5 notifications", () => seen.length >= 5);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, "source timestamps increase");
    await sub.terminate();
  } finally {
    await close(c);
  }
});

test("setpoint write over SignAndEncrypt/Basic256Sha256: reads back, and the process moves toward it", async () => {
  const c = await connect();
  try {
    assert.ok((await heartbeat(c.session, 1)).isGood());
    assert.is((await readValue(c.session, id("remote_mode"))).value.value, true);
    const before = (await readValue(c.session, id("forming_pressure"))).value.value as number;
    const target = before > 50 ? 40 : 60;
    const status = await writeDouble(c.session, id("forming_pressure_sp"), target);
    assert.is(status.name, "Good");
    assert.is((await readValue(c.session, id("forming_pressure_sp"))).value.value, target);
    assert.is(plant.twin.readSetpoint("forming_pressure"), target);
    // τ 1.5 s of plant time: within a second of wall time at 20× the pressure is most of the way there.
    await until("forming_pressure near its new setpoint", async () => {
      const v = (await readValue(c.session, id("forming_pressure"))).value.value as number;
      return Math.abs(v - target) < Math.abs(before - target) / 2 ? v : undefined;
    });
  } finally {
    await close(c);
  }
});

test("PLC clamping: inside the hard limits but outside the actuator range → GoodClamped, reads back clamped", async () => {
  const c = await connect();
  try {
    await heartbeat(c.session, 2);
    const status = await writeDouble(c.session, id("belt_speed_sp"), 250); // hard limits 50–300, actuator 80–220
    assert.is(status.name, "GoodClamped");
    // Severity Good (node-opcua's isGood() means exactly Good; isGoodish() tests the severity).
    assert.ok(status.isGoodish() && !status.isGood(), "GoodClamped has Good severity");
    assert.is((await readValue(c.session, id("belt_speed_sp"))).value.value, 220);
    await writeDouble(c.session, id("belt_speed_sp"), 150);
  } finally {
    await close(c);
  }
});

test("outside the hard limits, not finite or not a Double → refused, nothing applied", async () => {
  const c = await connect();
  try {
    await heartbeat(c.session, 3);
    const before = (await readValue(c.session, id("belt_speed_sp"))).value.value;
    assert.is((await writeDouble(c.session, id("belt_speed_sp"), 400)).name, "BadOutOfRange");
    assert.is((await writeDouble(c.session, id("belt_speed_sp"), 10)).name, "BadOutOfRange");
    assert.is((await writeDouble(c.session, id("belt_speed_sp"), Number.NaN)).name, "BadOutOfRange");
    const asString = await c.session.write({
      nodeId: id("belt_speed_sp"),
      attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.String, value: "160" } },
    });
    assert.is(asString.name, "BadTypeMismatch");
    assert.is((await readValue(c.session, id("belt_speed_sp"))).value.value, before);
    assert.is(
      (await writeDouble(c.session, id("belt_speed"), 160)).name,
      "BadNotWritable",
      "process values are read-only",
    );
  } finally {
    await close(c);
  }
});

test("anonymous (read-only) and viewer sessions cannot write setpoints or the heartbeat", async () => {
  const anon = await connect({ user: "anonymous" });
  const viewer = await connect({ user: USERS.viewer });
  const op = await connect();
  try {
    await heartbeat(op.session, 4);
    const before = plant.twin.readSetpoint("belt_speed");
    for (const s of [anon.session, viewer.session]) {
      assert.ok((await readValue(s, id("belt_speed_sp"))).statusCode.isGood(), "can read");
      assert.is((await writeDouble(s, id("belt_speed_sp"), 160)).name, "BadUserAccessDenied");
      assert.is((await heartbeat(s, 99)).name, "BadUserAccessDenied");
    }
    assert.is(plant.twin.readSetpoint("belt_speed"), before);
  } finally {
    await close(anon);
    await close(viewer);
    await close(op);
  }
});

test("heartbeat stops → LOCAL and writes refused (BadNotWritable); heartbeat resumes → REMOTE again", async () => {
  const c = await connect();
  try {
    const sub = ClientSubscription.create(c.session, {
      requestedPublishingInterval: 100,
      requestedMaxKeepAliveCount: 20,
      requestedLifetimeCount: 100,
      publishingEnabled: true,
    });
    const item = ClientMonitoredItem.create(
      sub,
      { nodeId: id("remote_mode"), attributeId: AttributeIds.Value },
      { samplingInterval: 0, queueSize: 10, discardOldest: true },
      TimestampsToReturn.Both,
    );
    const modes: boolean[] = [];
    item.on("changed", (dv: DataValue) => modes.push(dv.value.value as boolean));
    await heartbeat(c.session, 10);
    await until("REMOTE", () => modes.at(-1) === true);
    let counter = 10;
    const beat = setInterval(() => void heartbeat(c.session, ++counter), 300);
    await sleep(HEARTBEAT_TIMEOUT_MS + 300);
    clearInterval(beat);
    assert.is(modes.at(-1), true, "steady heartbeats keep the plant REMOTE");
    const stoppedAt = Date.now();
    await until("LOCAL after the timeout", () => modes.at(-1) === false, HEARTBEAT_TIMEOUT_MS + 3000);
    assert.ok(Date.now() - stoppedAt >= HEARTBEAT_TIMEOUT_MS - 400, "not before the timeout");
    const before = plant.twin.readSetpoint("mold_temperature");
    assert.is((await writeDouble(c.session, id("mold_temperature_sp"), 330)).name, "BadNotWritable");
    assert.is(plant.twin.readSetpoint("mold_temperature"), before);
    // The same counter again is not a beat: a stuck controller does not bring the plant back.
    const last = plant.remote.counter()!;
    await heartbeat(c.session, last);
    assert.is((await readValue(c.session, id("remote_mode"))).value.value, false);
    await heartbeat(c.session, last + 1);
    await until("REMOTE again", () => modes.at(-1) === true);
    assert.is((await writeDouble(c.session, id("mold_temperature_sp"), 330)).name, "Good");
    await sub.terminate();
  } finally {
    await close(c);
  }
});

test("Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss work with Sign and SignAndEncrypt; None is not offered", async () => {
  let beats = 1000;
  for (const policy of [SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss]) {
    for (const mode of [MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt]) {
      const c = await connect({ policy, mode });
      try {
        assert.ok((await heartbeat(c.session, ++beats)).isGood(), `${policy} ${mode}`);
      } finally {
        await close(c);
      }
    }
  }
  const probe = OPCUAClient.create({
    clientCertificateManager: clientCM,
    certificateFile: clientCertFile,
    applicationUri: "urn:glassd-test:client",
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
  });
  clients.push(probe);
  await probe.connect(server.endpointUrl);
  const endpoints = await probe.getEndpoints();
  await probe.disconnect();
  const sessionEndpoints = endpoints.filter((e) => e.securityMode !== MessageSecurityMode.None);
  assert.is(sessionEndpoints.length, 6, "3 policies × Sign/SignAndEncrypt");
  const none = endpoints.filter((e) => e.securityMode === MessageSecurityMode.None);
  const noneClient = OPCUAClient.create({
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    clientCertificateManager: clientCM,
    certificateFile: clientCertFile,
    applicationUri: "urn:glassd-test:client",
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
  });
  clients.push(noneClient);
  await noneClient.connect(server.endpointUrl);
  let refused = false;
  try {
    await noneClient.createSession({ type: UserTokenType.Anonymous });
  } catch {
    refused = true;
  }
  await noneClient.disconnect();
  assert.ok(refused, `a session over None is refused (None endpoints listed for discovery: ${none.length})`);
});

test("a client whose certificate the server does not trust is refused and lands in rejected/", async () => {
  const stranger = await makeClientPki("stranger");
  await stranger.cm.trustCertificate(pemToDer(readFileSync(server.certificateFile, "utf8")));
  let failed = false;
  try {
    const c = await connect({ cm: stranger.cm, certFile: stranger.certFile, appName: "stranger" });
    await close(c);
  } catch {
    failed = true;
  }
  await stranger.cm.dispose();
  assert.ok(failed, "connection refused");
  const rejected = readdirSync(join(dir, "pki", "rejected"));
  assert.ok(rejected.length >= 1, "the stranger's certificate is kept in rejected/ for an operator to review");
});

test("a client that does not trust the server's certificate refuses to connect (no auto-accept)", async () => {
  const naive = await makeClientPki("naive");
  let failed = false;
  try {
    const c = await connect({ cm: naive.cm, certFile: naive.certFile, appName: "naive" });
    await close(c);
  } catch {
    failed = true;
  }
  await naive.cm.dispose();
  assert.ok(failed);
});

test("sensor quality hook: a bad sample is served with BadSensorFailure and the last good value", async () => {
  const c = await connect();
  try {
    const good = await readValue(c.session, id("humidity"));
    const ts = plant.now();
    server.onSamples([{ tag: "humidity", ts, value: Number.NaN, quality: "bad", source: "twin", seq: 0 }]);
    const bad = await readValue(c.session, id("humidity"));
    assert.is(bad.statusCode.name, "BadSensorFailure");
    server.onSamples([{ tag: "humidity", ts: ts + 1, value: 55, quality: "uncertain", source: "twin", seq: 0 }]);
    const unc = await readValue(c.session, id("humidity"));
    assert.is(unc.statusCode.name, "UncertainSensorNotAccurate");
    assert.is(unc.value.value, 55);
    assert.ok(good.statusCode.isGood());
  } finally {
    await close(c);
  }
});

test("a sensor dropout (the twin sends nothing) turns into UncertainLastUsableValue, then Good when it returns", async () => {
  const c = await connect();
  try {
    const now = plant.now();
    // 60 s of plant time is 3 s of wall time at 20×; stale after 3 periods of 1 s.
    plant.twin.model.addSensorFault({ tag: "mold_temperature", kind: "dropout", startTs: now, endTs: now + 60_000 });
    const stale = await until("stale status", async () => {
      const dv = await readValue(c.session, id("mold_temperature"));
      return dv.statusCode.name === "UncertainLastUsableValue" ? dv : undefined;
    });
    assert.ok(stale.sourceTimestamp!.getTime() <= now + 1000, "the source timestamp is the last sample's");
    assert.ok(plant.staleTags().includes("mold_temperature"));
    await until(
      "Good again after the dropout",
      async () => (await readValue(c.session, id("mold_temperature"))).statusCode.isGood() || undefined,
      15_000,
    );
  } finally {
    await close(c);
  }
});

test("the application certificate and PKI folders live under the given directory", () => {
  const pki = readdirSync(join(dir, "pki"));
  for (const d of ["own", "trusted", "rejected"]) assert.ok(pki.includes(d), d);
  assert.ok(readFileSync(server.certificateFile, "utf8").includes("BEGIN CERTIFICATE"));
  assert.ok(server.certificateFile.startsWith(join(dir, "pki")));
});

test("security none + anonymous off: a None endpoint whose password token is still encrypted; anonymous refused", async () => {
  const plain = new PlantOpcuaServer(plant, {
    port: 0,
    host: "127.0.0.1",
    hostname: "127.0.0.1",
    security: ["none"],
    users: new PlantUsers([{ ...USERS.operator, role: "operator" }]),
    anonymous: "off",
    pkiDir: join(dir, "pki-none"),
    userPkiDir: join(dir, "user-pki-none"),
  });
  await plain.start();
  try {
    const open = async (user: ConnectOptions["user"]) => {
      const client = OPCUAClient.create({
        applicationUri: "urn:glassd-test:client",
        securityMode: MessageSecurityMode.None,
        securityPolicy: SecurityPolicy.None,
        clientCertificateManager: clientCM,
        certificateFile: clientCertFile,
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 0 },
      });
      clients.push(client);
      await client.connect(plain.endpointUrl);
      try {
        const session =
          user === "anonymous" || user === undefined
            ? await client.createSession({ type: UserTokenType.Anonymous })
            : await client.createSession({
                type: UserTokenType.UserName,
                userName: user.name,
                password: user.password,
              });
        return { client, session };
      } catch (err) {
        await client.disconnect();
        throw err;
      }
    };
    const endpoints = await (async () => {
      const c = await open(USERS.operator);
      const e = await c.client.getEndpoints();
      assert.ok((await readValue(c.session, id("furnace_temperature"))).statusCode.isGood());
      await close(c);
      return e;
    })();
    const none = endpoints.find((e) => e.securityMode === MessageSecurityMode.None)!;
    const tokens = (none.userIdentityTokens ?? []).map((t) => `${t.tokenType}:${t.securityPolicyUri ?? ""}`);
    assert.ok(tokens.length > 0 && tokens.every((t) => /Basic256Sha256|Aes128_Sha256_RsaOaep/.test(t)), tokens.join());
    assert.not.ok(
      tokens.some((t) => t.startsWith(`${UserTokenType.Anonymous}:`)),
      "no anonymous token",
    );
    let refused = false;
    try {
      await close(await open("anonymous"));
    } catch {
      refused = true;
    }
    assert.ok(refused, "anonymous session refused");
  } finally {
    await plain.stop(0);
  }
});

test.run();
