/*
 * The daemon's source wiring: `source.type: plant` with the serial firmware bridge enabled reads the reference
 * firmware on a real pseudo-terminal into the store, with its health check and counters; `twin.scenario` attaches a
 * scenario to the embedded twin, and a scenario that does not load is a config error (safe mode, naming the field).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadConfig } from "../src/config/index.js";
import { buildFirmware, Firmware, killAll, PtyPair, serialTags, tempDir, waitUntil } from "./fixtures/serial-pty.js";
import { type Json, TestDaemon } from "./helpers/daemon.js";

buildFirmware();

/** Polls an async condition until it yields a value (waitUntil of the fixture takes synchronous ones). */
async function poll<T>(
  cond: () => Promise<T | undefined>,
  timeoutMs: number,
  context: () => string,
  what: string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const daemons: TestDaemon[] = [];
test.after.each(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await killAll();
});

test("source.type plant + serial: firmware samples become durable, health and metrics show the adapter", async () => {
  const dir = tempDir();
  const pty = await PtyPair.start(dir);
  Firmware.start(pty.dev, ["--device-id", "lehr-mcu-07"]);
  const cfg = join(dir, "glassd.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      tags: serialTags(false),
      source: {
        type: "plant",
        serial: {
          enabled: true,
          path: pty.host,
          device_id: "lehr-mcu-07",
          handshake_timeout_ms: 500,
          retry: { initial_delay_ms: 50, max_delay_ms: 300 },
        },
      },
    }),
  );
  const d = await TestDaemon.start({ source: "plant", configFile: cfg });
  daemons.push(d);
  assert.is(d.load.safeMode, false, JSON.stringify(d.load.issues));
  const token = await d.tokenFor("viewer");
  const mean = await poll(
    async () => {
      const r = await d.request<Json>("/api/features/latest", { token });
      const f = (r.body as { features?: Record<string, unknown> }).features;
      const v = f?.["lehr_temp.mean"];
      return typeof v === "number" && Number.isFinite(v) ? v : undefined;
    },
    15_000,
    () => d.logTail(30),
    "lehr_temp.mean from the firmware's samples in /api/features/latest",
  );
  assert.ok(mean > 0 && mean < 2000, `lehr_temp.mean ${mean}`);
  const stored = await poll(
    async () => {
      const r = await d.request<Json>("/api/sensors/latest", { token });
      return r.status === 200 ? r.body : undefined;
    },
    5_000,
    () => d.logTail(30),
    "latest sensor samples",
  );
  assert.ok(JSON.stringify(stored).includes("serial:lehr-mcu-07"), JSON.stringify(stored).slice(0, 400));
  const health = await poll(
    async () => {
      const h = await d.request<Json>("/health");
      const checks = h.body.checks as Record<string, { ok: boolean; detail: string }> | undefined;
      return checks?.["source:serial:lehr-mcu-07"]?.ok ? checks : undefined;
    },
    15_000,
    () => d.logTail(30),
    "serial source check ok in /health",
  );
  assert.match(health["source:serial:lehr-mcu-07"]?.detail ?? "", /samples durable/);
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  assert.match(metrics, /glassd_source_counter\{source="serial:lehr-mcu-07",counter="samples_durable"\} [1-9]/);
});

test("source.type plant: an absent serial device is reported, not fatal", async () => {
  const dir = tempDir();
  const cfg = join(dir, "glassd.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      tags: serialTags(false),
      source: {
        type: "plant",
        serial: { enabled: true, path: join(dir, "no-such-tty"), retry: { initial_delay_ms: 50, max_delay_ms: 200 } },
      },
    }),
  );
  const d = await TestDaemon.start({ source: "plant", configFile: cfg });
  daemons.push(d);
  const h = await d.request<Json>("/health");
  const checks = h.body.checks as Record<string, { ok: boolean; detail: string }>;
  assert.is(checks["source:serial:no-such-tty"]?.ok, false);
  assert.match(checks["source:serial:no-such-tty"]?.detail ?? "", /not connected/);
});

test("twin.scenario: a built-in scenario attaches to the twin", async () => {
  const d = await TestDaemon.start({ source: "twin", cli: { "twin.scenario": "fan_failure", "twin.speed": "600" } });
  daemons.push(d);
  assert.is(d.load.safeMode, false);
  await waitUntil(() => /scenario attached/.test(d.logTail(200)), 5_000, "scenario attached log line");
  assert.match(d.logTail(200), /"scenario":"fan_failure"/);
});

test("twin.scenario: unknown name and broken file are config errors naming /twin/scenario", () => {
  const dir = tempDir();
  const unknown = loadConfig({ env: {}, cwd: dir, cli: { "twin.scenario": "no_such_scenario" } });
  assert.is(unknown.safeMode, true);
  const i = unknown.issues.find((x) => x.path === "/twin/scenario");
  assert.ok(i, JSON.stringify(unknown.issues));
  assert.match(i.message, /built-in scenarios: .*fan_failure/);

  writeFileSync(
    join(dir, "bad.yaml"),
    "name: bad\nduration_hours: 1\nevents:\n  - at_min: 5\n    type: setpoint\n    tag: no_such_tag\n    value: 3\n",
  );
  const broken = loadConfig({ env: {}, cwd: dir, cli: { "twin.scenario": "bad.yaml" } });
  assert.is(broken.safeMode, true);
  const b = broken.issues.filter((x) => x.path === "/twin/scenario");
  assert.ok(b.length > 0, JSON.stringify(broken.issues));
  assert.match(b.map((x) => x.message).join(" "), /events\/0/);

  // The scenario is only checked where it is used: a plant daemon ignores twin.scenario.
  const plant = loadConfig({ env: {}, cwd: dir, cli: { "twin.scenario": "bad.yaml", "source.type": "plant" } });
  assert.is(plant.safeMode, false, JSON.stringify(plant.issues));
});

test.run();
