/*
 * MQTT over TLS with a throwaway CA made by openssl in the test: mosquitto requires a client certificate and a
 * password; glassd's source connects with CA, client cert/key and a password from files, ingests, and announces
 * itself. A wrong password or an unknown CA keeps it out, and the password never shows in its logs.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { connect, type MqttClient } from "mqtt";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../src/core/logger.js";
import type { MqttSource } from "../src/ingest/mqtt/index.js";
import type { Store } from "../src/storage/index.js";
import { type Broker, startBroker } from "./fixtures/mosquitto.js";
import { openStore, sleep, sourceOn, until } from "./fixtures/mqtt-ingest.js";

const dir = mkdtempSync(join(tmpdir(), "glassd-mqtt-tls-"));
const f = (n: string) => join(dir, n);
let broker: Broker;
const clients: MqttClient[] = [];
const sources: MqttSource[] = [];
const stores: Store[] = [];
const PASSWORD = "s3cret-Pa55word!";

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

function makeCa(name: string): void {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    f(`${name}.key`),
    "-out",
    f(`${name}.crt`),
  );
}

function issue(ca: string, name: string, ext: string): void {
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    f(`${name}.key`),
    "-out",
    f(`${name}.csr`),
  );
  writeFileSync(f(`${name}.ext`), ext);
  openssl(
    "x509",
    "-req",
    "-in",
    f(`${name}.csr`),
    "-CA",
    f(`${ca}.crt`),
    "-CAkey",
    f(`${ca}.key`),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    f(`${name}.ext`),
    "-out",
    f(`${name}.crt`),
  );
}

test.before(async () => {
  makeCa("ca");
  makeCa("otherca");
  issue("ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue("ca", "glassd", "extendedKeyUsage=clientAuth\n");
  writeFileSync(f("passwd"), "");
  execFileSync("mosquitto_passwd", ["-b", f("passwd"), "glassd", PASSWORD]);
  execFileSync("mosquitto_passwd", ["-b", f("passwd"), "tester", "tester-pw"]);
  writeFileSync(f("password"), `${PASSWORD}\n`);
  writeFileSync(f("wrong"), "not-it\n");
  broker = await startBroker({
    dir,
    allowAnonymous: false,
    listenerLines: [
      `cafile ${f("ca.crt")}`,
      `certfile ${f("server.crt")}`,
      `keyfile ${f("server.key")}`,
      "require_certificate true",
      `password_file ${f("passwd")}`,
    ],
  });
});

test.after(async () => {
  for (const s of sources) await s.stop().catch(() => undefined);
  for (const c of clients) c.end(true);
  for (const s of stores) await s.close().catch(() => undefined);
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

function capture(): { logger: Logger; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { logger: pino({ level: "trace" }, stream) as unknown as Logger, text: () => text };
}

const tls = (extra: object) => ({
  url: broker.url,
  ca_file: f("ca.crt"),
  cert_file: f("glassd.crt"),
  key_file: f("glassd.key"),
  username: "glassd",
  password_file: f("password"),
  reconnect_ms: 300,
  ...extra,
});

test("CA, client certificate and password from files: connected, status online, samples ingested", async () => {
  const store = await openStore(join(dir, "a"));
  stores.push(store);
  const log = capture();
  const src = sourceOn(store, { id: "mqtt_tls", broker: tls({ client_id: "glassd-tls" }) }, { logger: log.logger });
  sources.push(src);
  await src.start(AbortSignal.timeout(10_000));
  assert.ok(src.stats().connected);
  const pub = connect(broker.url, {
    protocolVersion: 5,
    ca: execFileSync("cat", [f("ca.crt")]),
    cert: execFileSync("cat", [f("glassd.crt")]),
    key: execFileSync("cat", [f("glassd.key")]),
    username: "tester",
    password: "tester-pw",
  });
  clients.push(pub);
  await new Promise<void>((r) => pub.once("connect", () => r()));
  const status = new Promise<string>((r) =>
    pub.on("message", (t, p) => t === "glassd/Line_A/status" && r(p.toString())),
  );
  await pub.subscribeAsync("glassd/Line_A/status", { qos: 1 });
  assert.is(await status, "online");
  await pub.publishAsync("glass/Line_A/sensors/belt_speed", JSON.stringify({ value: 150, ts: Date.now() }), { qos: 1 });
  await until("stored", () => store.count("belt_speed") === 1);
  await src.stop();
  assert.not.match(log.text(), PASSWORD);
});

test("wrong password or a CA that did not sign the broker: not connected, retrying, password never logged", async () => {
  const store = await openStore(join(dir, "b"));
  stores.push(store);
  for (const broken of [{ password_file: f("wrong") }, { ca_file: f("otherca.crt") }]) {
    const log = capture();
    const src = sourceOn(
      store,
      { id: "mqtt_tls_bad", broker: tls({ client_id: "glassd-tls-bad", ...broken }) },
      {
        logger: log.logger,
        connectWaitMs: 1500,
      },
    );
    sources.push(src);
    await src.start(AbortSignal.timeout(10_000));
    await sleep(700);
    assert.is(src.stats().connected, false);
    assert.match(log.text(), /MQTT client error|not reachable/);
    assert.not.match(log.text(), PASSWORD);
    assert.not.match(log.text(), "not-it");
    await src.stop();
  }
});

test("a missing certificate file is a config error naming the field", async () => {
  const store = await openStore(join(dir, "c"));
  stores.push(store);
  const src = sourceOn(store, { id: "mqtt_tls_cfg", broker: tls({ key_file: f("nope.key") }) });
  sources.push(src);
  try {
    await src.start(AbortSignal.timeout(5000));
    assert.unreachable("should have thrown");
  } catch (err) {
    assert.match((err as Error).message, "/source/mqtt/broker/key_file");
    assert.match((err as Error).message, "ENOENT");
  }
});

test.run();
