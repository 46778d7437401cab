/*
 * The plant's rules and its command line, without a broker: `glassd twin serve` arguments (every bad one named),
 * the user files, the PLC write rules of Plant.writeSetpoint, the heartbeat watchdog on an injected clock, the
 * MIK-1 frame hook (bounded queue, write-then-rename), and a port already in use.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { SimClock } from "../src/core/clock.js";
import { silentLogger } from "../src/core/logger.js";
import type { InspectionEvent } from "../src/core/types.js";
import {
  DirectoryFrameSink,
  type FrameSink,
  Plant,
  PlantFrames,
  PlantUsageError,
  PlantUsers,
  PlantWriteError,
  parseServeArgs,
  plantNodeIds,
  RemoteMode,
  readMqttCredentials,
  readUserFile,
  startPlant,
  statusForRefusal,
} from "../src/twin/plant/index.js";

const ROOT = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "glassd-plant-cli-"));
const USERS = join(dir, "users.json");
writeFileSync(
  USERS,
  JSON.stringify({ users: [{ name: "glassd", password: "operator-password-1", role: "operator" }] }),
);
const BASE = ["--user-file", USERS, "--data-dir", join(dir, "data")];

test.after(() => rmSync(dir, { recursive: true, force: true }));

function usage(argv: string[]): PlantUsageError {
  try {
    parseServeArgs(argv, dir);
  } catch (err) {
    assert.instance(err, PlantUsageError);
    return err as PlantUsageError;
  }
  throw new Error(`no usage error for ${JSON.stringify(argv)}`);
}

function plant(clock?: SimClock): Plant {
  return new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed: 1,
    speed: 1,
    stepMs: 1000,
    itemsPerMin: 15,
    heartbeatTimeoutMs: 10_000,
    ...(clock ? { clock } : {}),
    startTs: Date.UTC(2026, 0, 1),
  });
}

test("defaults: port 4840, Sign + SignAndEncrypt, anonymous off, PKI under the data dir, MQTT off", () => {
  const c = parseServeArgs(BASE, dir);
  assert.is(c.opcua.port, 4840);
  assert.equal(c.opcua.security, ["sign", "encrypt"]);
  assert.is(c.opcua.anonymous, "off");
  assert.is(c.opcua.pkiDir, join(dir, "data", "pki"));
  assert.is(c.opcua.userPkiDir, join(dir, "data", "user-pki"));
  assert.is(c.heartbeatTimeoutMs, 10_000);
  assert.is(c.mqtt, undefined);
  assert.is(c.lineId, "Line_A");
  const m = parseServeArgs([...BASE, "--mqtt-url", "mqtt://127.0.0.1:1883", "--opcua-security", "all"], dir);
  assert.equal(m.opcua.security, ["none", "sign", "encrypt"]);
  assert.equal(m.mqtt?.sparkplug, { groupId: "glass", nodeId: "Line_A", layout: "devices" });
  assert.is(m.mqtt?.json, true);
});

test("every bad argument is named", () => {
  const cases: [string[], string][] = [
    [["--opcua-port", "70000"], "--opcua-port"],
    [["--opcua-port", "12.5"], "--opcua-port"],
    [["--speed", "0"], "--speed"],
    [["--speed", "fast"], "--speed"],
    [["--seed", "1.5"], "--seed"],
    [["--step-ms", "5"], "--step-ms"],
    [["--heartbeat-timeout-s", "-1"], "--heartbeat-timeout-s"],
    [["--opcua-security", "sign,plain"], "--opcua-security"],
    [["--opcua-anonymous", "write"], "--opcua-anonymous"],
    [["--opcua-hostname", "bad host"], "--opcua-hostname"],
    [["--log-level", "loud"], "--log-level"],
    [["--mqtt-url", "ftp://x"], "--mqtt-url"],
    [["--mqtt-url", "not a url"], "--mqtt-url"],
    [["--mqtt-url", "mqtt://user:secret@127.0.0.1"], "--mqtt-url"],
    [["--mqtt-user-file", USERS], "--mqtt-user-file"],
    [["--sparkplug-group", "g"], "--sparkplug-group"],
    [["--mqtt-url", "mqtt://h", "--sparkplug-node", "a/b"], "--sparkplug-node"],
    [["--mqtt-url", "mqtt://h", "--sparkplug-layout", "flat"], "--sparkplug-layout"],
    [["--mqtt-url", "mqtt://h", "--mqtt-cert", "c.pem"], "--mqtt-cert"],
    [["--mqtt-url", "mqtt://h", "--no-sparkplug", "--no-mqtt-json"], "--no-mqtt-json"],
    [["--frame-width", "256"], "--frame-width"],
    [["--frames-dir", "f", "--frame-width", "5000"], "--frame-width"],
    [["--frames-dir", "f", "--frame-width", "1920", "--frame-height", "1920"], "--frame-width"],
    [["--frames-dir", "f", "--frame-format", "gif"], "--frame-format"],
    [["--bogus"], "--bogus"],
    [["--config", join(dir, "missing.yaml")], "--config"],
  ];
  for (const [args, flag] of cases) {
    const e = usage([...BASE, ...args]);
    assert.is(e.flag, flag, `${args.join(" ")} → ${e.message}`);
    assert.ok(e.message.startsWith(`${flag}:`), e.message);
  }
  assert.is(usage(["--data-dir", dir]).flag, "--user-file", "no users and no anonymous access: nobody could connect");
  assert.ok(parseServeArgs(["--opcua-anonymous", "read", "--data-dir", dir], dir), "read-only anonymous alone is fine");
});

test("user and credential files: clear errors naming the file and the field", () => {
  const bad = (body: string) => {
    const f = join(dir, `u${Math.random()}.json`);
    writeFileSync(f, body);
    try {
      readUserFile(f);
    } catch (err) {
      assert.instance(err, PlantUsageError);
      return (err as Error).message;
    }
    throw new Error("accepted");
  };
  assert.match(bad("{"), /not valid JSON/);
  assert.match(bad("[]"), /JSON object/);
  assert.match(bad('{"users":{}}'), /expected \{"users"/);
  assert.match(bad('{"users":[{"name":"a","password":"short"}]}'), /users\[0\]\.password/);
  assert.match(bad('{"users":[{"name":"a b","password":"long-enough"}]}'), /users\[0\]\.name/);
  assert.match(bad('{"users":[{"name":"a","password":"long-enough","role":"god"}]}'), /users\[0\]\.role/);
  assert.match(bad('{"users":[{"name":"a","password":"long-enough","pass":1}]}'), /unknown field "pass"/);
  assert.match(
    bad('{"users":[{"name":"a","password":"long-enough"},{"name":"a","password":"long-enough"}]}'),
    /appears twice/,
  );
  assert.match(bad('{"users":[{"name":"anonymous","password":"long-enough"}]}'), /reserved/);
  assert.throws(() => readUserFile(join(dir, "nope.json")), /--user-file: cannot read/);
  const users = readUserFile(USERS);
  assert.ok(users.verify("glassd", "operator-password-1"));
  assert.not.ok(users.verify("glassd", "operator-password-2"));
  assert.not.ok(users.verify("nobody", "operator-password-1"));
  assert.is(users.role("glassd"), "operator");
  const creds = join(dir, "mqtt.json");
  writeFileSync(creds, JSON.stringify({ username: "plant", password: "p" }));
  assert.equal(readMqttCredentials(creds), { username: "plant", password: "p" });
  writeFileSync(creds, JSON.stringify({ user: "plant" }));
  assert.throws(() => readMqttCredentials(creds), /--mqtt-user-file: .*unknown field "user"/);
});

test("glassd twin serve with a bad flag exits 2 and names it on stderr", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts", "twin", "serve", "--opcua-port", "x"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.is(r.status, 2);
  assert.match(r.stderr, /glassd twin serve: --opcua-port: expects an integer/);
});

test("PLC write rules: LOCAL refuses, hard limits refuse, the actuator range clamps", async () => {
  const clock = new SimClock(1_000_000);
  const p = plant(clock);
  const heard: [string, number][] = [];
  p.addListener({ onSetpoint: (tag, v) => heard.push([tag, v]) });
  const refused = async (tag: string, v: number) => {
    try {
      await p.writeSetpoint(tag, v);
    } catch (err) {
      assert.instance(err, PlantWriteError);
      return (err as PlantWriteError).reason;
    }
    throw new Error(`accepted ${tag}=${v}`);
  };
  assert.is(await refused("belt_speed", 160), "local_mode", "LOCAL until the first heartbeat");
  p.remote.heartbeat(1);
  assert.is(await refused("belt_speed", 301), "out_of_range");
  assert.is(await refused("belt_speed", 49), "out_of_range");
  assert.is(await refused("belt_speed", Number.NaN), "invalid_value");
  assert.is(await refused("humidity", 50), "not_writable");
  assert.is(await refused("nope", 1), "unknown_tag");
  const r = await p.writeSetpoint("belt_speed", 250);
  assert.equal([r.requested, r.applied, r.readBack], [250, 220, 220]);
  assert.is(p.setpoint("belt_speed").value, 220);
  assert.equal(heard, [["belt_speed", 220]]);
  clock.advance(10_001);
  assert.is(await refused("belt_speed", 160), "local_mode", "LOCAL again after the timeout");
  assert.is(p.stats().writes_refused, 7);
  assert.is(p.stats().writes_clamped, 1);
  assert.is(statusForRefusal("local_mode").name, "BadNotWritable");
  assert.is(statusForRefusal("out_of_range").name, "BadOutOfRange");
});

test("heartbeat watchdog: a changing counter keeps REMOTE, a repeated one does not, silence falls back to LOCAL", () => {
  const clock = new SimClock(0);
  const r = new RemoteMode({ timeoutMs: 10_000, clock });
  const modes: boolean[] = [];
  r.onChange((m) => modes.push(m));
  assert.not.ok(r.isRemote());
  assert.ok(r.heartbeat(1));
  assert.ok(r.isRemote());
  clock.advance(9_000);
  assert.not.ok(r.heartbeat(1), "same counter: not a beat");
  clock.advance(1_500);
  assert.not.ok(r.isRemote(), "10.5 s after the last real beat");
  assert.ok(r.heartbeat(2));
  clock.advance(9_999);
  assert.ok(r.isRemote());
  assert.equal(modes, [true, false, true]);
  assert.is(r.stats().beats, 2);
  assert.throws(() => new RemoteMode({ timeoutMs: 0 }), /timeoutMs/);
});

test("node ids follow the dictionary; a node id outside namespace 1 is refused by name", () => {
  const ids = plantNodeIds("Line_A", DEFAULT_TAGS);
  assert.is(ids.find((n) => n.tag === "furnace_temperature")?.nodeId, "ns=1;s=Line_A.furnace_temperature");
  assert.is(ids.find((n) => n.tag === "belt_speed")?.setpointNodeId, "ns=1;s=Line_A.belt_speed_sp");
  assert.is(ids.find((n) => n.tag === "humidity")?.setpointNodeId, undefined);
  const odd = DEFAULT_TAGS.map((t) =>
    t.id === "humidity" ? { ...t, sources: { opcua: { node_id: "ns=2;i=1001" } } } : t,
  );
  assert.throws(() => plantNodeIds("Line_A", odd), /tags\[\d+\] \(humidity\).*namespace 1/);
  const clash = [...DEFAULT_TAGS, { ...DEFAULT_TAGS[0]!, id: "belt_speed_sp", sources: {} }];
  assert.throws(() => plantNodeIds("Line_A", clash), /would share the node id ns=1;s=Line_A\.belt_speed_sp/);
  const mik = [
    ...DEFAULT_TAGS,
    { ...DEFAULT_TAGS[0]!, id: "quality_score", stage: "inspection" as const, sources: {} },
  ];
  assert.throws(() => plantNodeIds("Line_A", mik), /MIK-1's quality_score/);
});

test("MIK-1 frame hook: every item reaches the sink in order; a slow sink sheds the oldest, counted", async () => {
  const p = plant();
  const got: number[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const sink: FrameSink = {
    name: "slow",
    async onItem(e) {
      if (got.length === 0) await gate;
      got.push(e.item_id);
    },
  };
  const frames = new PlantFrames(p, sink, { maxQueue: 3, logger: silentLogger });
  frames.start();
  const ev = (id: number): InspectionEvent => ({ item_id: id, ts: id, defects: [], ok: true });
  for (let i = 1; i <= 8; i++) frames.onInspection(ev(i));
  release();
  for (let i = 0; i < 100 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
  await frames.stop();
  assert.is(got[0], 1, "the item in progress completes");
  assert.equal(got.slice(1), [6, 7, 8], "the queue kept the newest three");
  assert.is(frames.stats().dropped_oldest, 4);
});

test("DirectoryFrameSink writes <line>_<item>.png by write-then-rename (no .tmp left behind)", async () => {
  const out = join(dir, "frames");
  const sink = new DirectoryFrameSink(out, "Line_A", async (e) => ({
    data: new Uint8Array([137, 80, 78, 71, e.item_id]),
    format: "png",
  }));
  await sink.onItem({ item_id: 42, ts: 0, defects: [], ok: true });
  assert.equal(readdirSync(out), ["Line_A_0000000042.png"]);
  assert.equal([...readFileSync(join(out, "Line_A_0000000042.png"))], [137, 80, 78, 71, 42]);
});

test("a port already in use is a usage error naming --opcua-port, and nothing is left running", async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  const cfg = parseServeArgs(
    [
      "--opcua-port",
      String(port),
      "--opcua-host",
      "127.0.0.1",
      "--opcua-anonymous",
      "read",
      "--data-dir",
      join(dir, "inuse"),
    ],
    dir,
  );
  try {
    await startPlant(cfg, silentLogger, new AbortController().signal);
    assert.unreachable("started on a busy port");
  } catch (err) {
    assert.instance(err, PlantUsageError);
    assert.is((err as PlantUsageError).flag, "--opcua-port");
  } finally {
    await new Promise((r) => s.close(r));
  }
  assert.ok(
    existsSync(join(dir, "inuse", "pki", "own", "certs", "certificate.pem")),
    "certificate made on first start",
  );
});

test("--frames-dir: every inspected item becomes an image plus a JSON sidecar, written then renamed", async () => {
  const out = join(dir, "mik1");
  const cfg = parseServeArgs(
    [
      "--opcua-port",
      "0",
      "--opcua-host",
      "127.0.0.1",
      "--opcua-anonymous",
      "read",
      "--data-dir",
      join(dir, "frames-data"),
      "--speed",
      "120",
      "--frames-dir",
      out,
      "--frame-width",
      "128",
      "--frame-height",
      "128",
    ],
    dir,
  );
  const running = await startPlant(cfg, silentLogger, new AbortController().signal);
  try {
    const end = Date.now() + 20_000;
    while ((!existsSync(out) || readdirSync(out).filter((f) => f.endsWith(".png")).length < 2) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await running.stop();
  }
  const files = readdirSync(out);
  const pngs = files.filter((f) => f.endsWith(".png"));
  assert.ok(pngs.length >= 2, `frames written: ${files.join(", ")}`);
  assert.not.ok(
    files.some((f) => f.endsWith(".tmp")),
    "no partial file left",
  );
  const first = pngs.sort()[0]!;
  assert.match(first, /^Line_A_\d{10}\.png$/);
  assert.equal([...readFileSync(join(out, first)).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG");
  const meta = JSON.parse(readFileSync(join(out, first.replace(/\.png$/, ".json")), "utf8"));
  assert.is(meta.item_id, Number(first.slice(7, 17)));
  assert.is(meta.image, first);
  assert.ok(Array.isArray(meta.defects));
  assert.ok(running.frames!.stats().delivered >= 2);
});

test("PlantUsers never matches an unknown user, even with an empty password", () => {
  const u = new PlantUsers([{ name: "a", password: "x".repeat(8), role: "viewer" }]);
  assert.not.ok(u.verify("b", ""));
  assert.not.ok(u.verify("a", ""));
  assert.ok(u.verify("a", "x".repeat(8)));
});

test.run();
