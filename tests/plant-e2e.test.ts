/*
 * glassd pointed at `glassd twin serve` over every protocol at once, as a plant would be wired: the twin plant is a
 * separate process (OPC UA server with SignAndEncrypt and user login, MQTT JSON + Sparkplug B to a real Mosquitto,
 * MIK-1 frames written into a directory with the write-then-rename protocol), the reference firmware speaks the
 * serial bridge on a pseudo-terminal, and the daemon runs with `source.type: plant` and every adapter on. Certificates
 * are trusted both ways explicitly (glassd's with the plant, the plant's with `glassd pki trust`), never
 * auto-accepted. Every source must deliver durable samples, /health must show each adapter ok, frames must land.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { openPki, pkiPaths } from "../src/ingest/opcua/index.js";
import { type Broker, freePort, startBroker } from "./fixtures/mosquitto.js";
import { buildFirmware, Firmware, killAll, PtyPair, serialTags, tempDir } from "./fixtures/serial-pty.js";
import { type Json, TestDaemon } from "./helpers/daemon.js";

buildFirmware();

const ROOT = new URL("..", import.meta.url).pathname;
let plant: ChildProcess | undefined;
let plantLog = "";
let broker: Broker | undefined;
let daemon: TestDaemon | undefined;

test.after(async () => {
  await daemon?.stop();
  if (plant && plant.exitCode === null) {
    plant.kill("SIGTERM");
    await new Promise((r) => plant?.once("exit", r));
  }
  await broker?.stop();
  await killAll();
});

async function poll<T>(cond: () => Promise<T | undefined> | T | undefined, what: string, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}\n--- glassd ---\n${daemon?.logTail(25)}\n--- plant ---\n${plantLog.slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("glassd reads glassd twin serve over OPC UA (SignAndEncrypt), MQTT (JSON + Sparkplug B), serial and frames", async () => {
  const dir = tempDir("glassd-e2e-");
  broker = await startBroker({ dir });

  // glassd's OPC UA application certificate, made before anything connects; the plant trusts it explicitly.
  const glassdPki = join(dir, "glassd-pki");
  const { cm } = await openPki(glassdPki, {});
  await cm.dispose();
  const plantDir = join(dir, "plant");
  mkdirSync(join(plantDir, "pki", "trusted", "certs"), { recursive: true });
  copyFileSync(pkiPaths(glassdPki).ownCert, join(plantDir, "pki", "trusted", "certs", "glassd.pem"));
  writeFileSync(
    join(dir, "plant-users.json"),
    JSON.stringify({ users: [{ name: "glassd", password: "plant-operator-pw", role: "operator" }] }),
    { mode: 0o600 },
  );
  writeFileSync(join(dir, "opcua-password"), "plant-operator-pw\n", { mode: 0o600 });
  const framesDir = join(dir, "frames-in");
  mkdirSync(framesDir);

  // The plant: a separate process, as in the field.
  const opcPort = await freePort();
  plant = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "src/main.ts",
      "twin",
      "serve",
      "--opcua-port",
      String(opcPort),
      "--opcua-host",
      "127.0.0.1",
      "--opcua-hostname",
      "127.0.0.1",
      "--opcua-security",
      "encrypt",
      "--user-file",
      join(dir, "plant-users.json"),
      "--data-dir",
      plantDir,
      "--mqtt-url",
      broker.url,
      "--frames-dir",
      framesDir,
      "--frame-width",
      "320",
      "--frame-height",
      "240",
      // Real time: a plant's clock is the wall clock (a faster twin would send samples "from the future").
      "--speed",
      "1",
      "--seed",
      "5",
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  plant.stdout?.on("data", (b: Buffer) => {
    plantLog += b.toString();
  });
  plant.stderr?.on("data", (b: Buffer) => {
    plantLog += b.toString();
  });
  await poll(() => (plantLog.includes("twin plant ready") ? true : undefined), "the plant to be ready", 60_000);

  // The plant's certificate, trusted the way an operator does it.
  const plantCert = join(plantDir, "pki", "own", "certs", "certificate.pem");
  assert.ok(existsSync(plantCert), "the plant wrote its certificate");
  const trust = spawnSync(
    process.execPath,
    ["--import", "tsx", "src/main.ts", "pki", "trust", plantCert, "--set", `source.opcua.pki_dir=${glassdPki}`],
    { cwd: ROOT, encoding: "utf8", env: { ...process.env, GLASSD_DATA_DIR: join(dir, "unused") } },
  );
  assert.is(trust.status, 0, trust.stderr);

  // The microcontroller on the serial bridge.
  const pty = await PtyPair.start(dir);
  Firmware.start(pty.dev, ["--device-id", "lehr-mcu-07"]);

  const cfg = join(dir, "glassd.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      tags: [...DEFAULT_TAGS, ...serialTags(false)],
      source: {
        type: "plant",
        opcua: {
          enabled: true,
          endpoint: `opc.tcp://127.0.0.1:${opcPort}`,
          security_mode: "SignAndEncrypt",
          security_policy: "Basic256Sha256",
          identity: { type: "username", username: "glassd", password_file: join(dir, "opcua-password") },
          pki_dir: glassdPki,
        },
        mqtt: { enabled: true, broker: { url: broker.url }, sparkplug: { enabled: true } },
        serial: { enabled: true, path: pty.host, device_id: "lehr-mcu-07", retry: { initial_delay_ms: 50 } },
      },
      frames: { enabled: true, directory: { path: framesDir, rescan_interval_ms: 500 } },
    }),
  );
  daemon = await TestDaemon.start({ source: "plant", configFile: cfg, tickIntervalMs: 500 });
  assert.is(daemon.load.safeMode, false, JSON.stringify(daemon.load.issues));
  const d = daemon;
  const viewer = await d.tokenFor("viewer");

  const checks = await poll(async () => {
    const h = await d.request<Json>("/health");
    const c = h.body.checks as Record<string, { ok: boolean; detail: string }> | undefined;
    const want = ["source:opcua:plc", "source:mqtt", "source:serial:lehr-mcu-07"];
    return c && want.every((k) => c[k]?.ok) ? c : undefined;
  }, "every adapter ok in /health");
  assert.match(checks["source:opcua:plc"]?.detail ?? "", /15 items/);

  // Durable samples from every source.
  const bySource = await poll(async () => {
    const r = await d.request<{ samples: Array<{ tag: string; source: string }> }>("/api/sensors/latest", {
      token: viewer,
    });
    const sources = new Set((r.body.samples ?? []).map((s) => s.source));
    return ["opcua:plc", "mqtt", "serial:lehr-mcu-07"].every((s) => sources.has(s)) ? sources : undefined;
  }, "samples from opcua:plc, mqtt and serial:lehr-mcu-07");
  assert.ok(bySource.size >= 3);
  let lastSeen = "";
  // The same tags over both protocols (each at its own period: poll until both paths delivered).
  for (const tag of ["furnace_temperature", "belt_speed"])
    await poll(async () => {
      const r = await d.request<{ samples: Array<{ source: string }> }>(`/api/samples?tag=${tag}&limit=10000`, {
        token: viewer,
      });
      const src = new Set(r.body.samples.map((s) => s.source));
      if (src.has("opcua:plc") && src.has("mqtt")) return true;
      const q = await d.request<Json>("/api/quarantine?limit=3", { token: viewer });
      lastSeen = `${tag} from [${[...src].join(", ")}]; quarantine ${JSON.stringify(q.body).slice(0, 600)}`;
      return undefined;
    }, `${tag} from both opcua:plc and mqtt (${tag})`).catch((err: Error) => {
      throw new Error(`${err.message}\nlast seen: ${lastSeen}`);
    });

  // MIK-1 frames rendered by the plant, taken from the directory.
  const frames = await poll(async () => {
    const r = await d.request<{ frames: Json[] }>("/api/frames/recent?limit=5", { token: viewer });
    return r.status === 200 && r.body.frames.length > 0 ? r.body.frames : undefined;
  }, "a MIK-1 frame from the plant");
  assert.ok(frames.length > 0);

  // Nothing the plant sent was rejected as malformed. (NDATA that arrives before glassd has seen the node's birth
  // is quarantined as sparkplug_before_birth and answered with a rebirth request: that is the protocol, not a fault.)
  const q = await d.request<{ counts_by_reason: Record<string, number> }>("/api/quarantine", { token: viewer });
  for (const reason of Object.keys(q.body.counts_by_reason ?? {}))
    if (reason !== "sparkplug_before_birth") assert.not.match(reason, /mqtt_|sparkplug_/, `quarantined: ${reason}`);
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  assert.match(metrics, /glassd_source_counter\{source="mqtt",counter="sparkplug_connected"\} 1/);
});

test.run();
