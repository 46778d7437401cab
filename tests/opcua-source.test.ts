/*
 * The OPC UA source against the twin's real OPC UA server (node-opcua, SignAndEncrypt/Basic256Sha256, loopback):
 * every default tag subscribed into a real Store and durable; a server restart (session and subscription recreated,
 * values re-read, the gap reported, seq continuous); a silent stall detected by the data-age watchdog; tags that do
 * not resolve reported by name; setpoint writes with read-back, PLC clamping and refusals.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { TagConfig } from "../src/config/schema.js";
import {
  OpcuaActuator,
  type OpcuaGap,
  OpcuaSource,
  type OpcuaSourceOptions,
  OpcuaWriteError,
} from "../src/ingest/opcua/index.js";
import {
  APP_URI,
  LINE,
  PlantServer,
  passwordFile,
  removeTempDirs,
  StoreRig,
  sleep,
  trustedPki,
  USERS,
  waitUntil,
} from "./fixtures/opcua-plant.js";

const ps = new PlantServer();
let pki = "";
const sources: OpcuaSource[] = [];
const rigs: StoreRig[] = [];

function source(over: Partial<OpcuaSourceOptions> = {}): OpcuaSource {
  const s = new OpcuaSource({
    endpoint: ps.endpoint,
    pkiDir: pki,
    applicationUri: APP_URI,
    tags: DEFAULT_TAGS,
    retry: { initialDelayMs: 100, maxDelayMs: 1000 },
    ...over,
  });
  sources.push(s);
  return s;
}

async function rig(tags: readonly TagConfig[] = DEFAULT_TAGS): Promise<StoreRig> {
  const r = new StoreRig(tags, { now: () => ps.plant.now() });
  await r.open();
  rigs.push(r);
  return r;
}

test.before(async () => {
  await ps.start();
  pki = await trustedPki(ps);
});

test.after(async () => {
  for (const s of sources) await s.stop();
  for (const r of rigs) await r.close();
  await ps.stop();
  removeTempDirs();
});

test("every default tag arrives in the Store with source timestamps, good quality and a contiguous seq; durable", async () => {
  const r = await rig();
  const src = source({ state: r.store });
  src.attach(r.sink);
  await src.start(new AbortController().signal);
  assert.is(src.id, "opcua:plc");
  assert.is(src.stats().connected, true);
  assert.is(src.stats().monitored_items, DEFAULT_TAGS.length);
  assert.equal(src.stats().unresolved_tags, []);
  await waitUntil("a sample of every tag stored", () => DEFAULT_TAGS.every((t) => r.store.latest(t.id)));
  await waitUntil("three samples of furnace_temperature", () => r.store.count("furnace_temperature") >= 3);
  const plantNow = ps.plant.now();
  for (const t of DEFAULT_TAGS) {
    const s = r.store.latest(t.id)!;
    assert.is(s.source, "opcua:plc");
    assert.is(s.quality, "good", t.id);
    assert.ok(s.value >= t.limits.min && s.value <= t.limits.max, `${t.id}=${s.value}`);
    assert.ok(s.ts <= plantNow && s.ts > plantNow - 3 * Math.max(t.period_ms, 60_000), `${t.id} source ts`);
  }
  // The 1 s tags' source timestamps advance one period at a time (sampling interval = period_ms).
  const ft = r.store.range("furnace_temperature", 0, Number.MAX_SAFE_INTEGER);
  for (let i = 1; i < ft.length; i++) assert.ok(ft[i]!.ts > ft[i - 1]!.ts, "increasing source timestamps");
  await src.stop();
  const st = src.stats();
  assert.ok(st.samples_durable > 0);
  assert.is(st.samples_durable, st.samples_received, "everything received became durable");
  assert.is(st.pending_samples, 0);
  assert.ok(
    r.sinkCalls.length > 0 && r.sinkCalls.length < st.samples_durable,
    "notifications go to the sink in batches",
  );
  const before = r.store.count();
  await r.reopen();
  assert.is(r.store.count(), before, "samples survive closing and reopening the store");
  const seqs = r.store.stats().sources["opcua:plc"]!;
  assert.is(seqs.last_seq, st.last_seq);
  assert.is(seqs.gaps_total, 0);
  assert.is(seqs.duplicates_total, 0);
  assert.equal(r.store.quarantineCounts(), {}, "nothing quarantined");

  // A new source on the same store continues the seq (Store.lastSeq).
  const again = source({ state: r.store });
  again.attach(r.sink);
  await again.start(new AbortController().signal);
  await waitUntil("samples of the second run", () => again.stats().samples_durable >= 20);
  await again.stop();
  const after = r.store.stats().sources["opcua:plc"]!;
  assert.is(after.gaps_total, 0, "no seq gap across the restart");
  assert.is(after.duplicates_total, 0, "no seq reused");
  assert.is(after.last_seq, st.last_seq + again.stats().samples_durable);
});

test("server restart: session and subscription recreated, values re-read, the gap reported, seq continuous", async () => {
  const r = await rig();
  const src = source({ state: r.store });
  src.attach(r.sink);
  const gaps: OpcuaGap[] = [];
  const how: string[] = [];
  src.on("gap", (g) => gaps.push(g));
  src.on("reestablished", (e) => how.push(e.how));
  await src.start(new AbortController().signal);
  await waitUntil("data before the restart", () => src.stats().samples_durable >= 20);
  const durableBefore = src.stats().samples_durable;
  const lastBefore = r.store.latest("furnace_temperature")!.ts;
  await ps.restart(1500);
  await waitUntil("connection re-established", () => how.length > 0 && src.stats().connected, 20_000);
  await waitUntil("the gap reported", () => gaps.length > 0);
  await waitUntil("new data after the restart", () => r.store.latest("furnace_temperature")!.ts > lastBefore + 1500);
  const st = src.stats();
  assert.ok(["recreated", "rebuilt"].includes(how[0]!), `recovered by ${how[0]}`);
  assert.ok(st.connection_losses >= 1);
  assert.ok(st.reconnects >= 1);
  assert.ok(st.sessions_created >= 2, "a new session");
  assert.ok(st.subscription_recreations + st.full_rebuilds >= 1, "subscription recreated");
  assert.is(st.gaps, gaps.length);
  const g = gaps[0]!;
  assert.ok(g.ms >= 1500, `gap ${g.ms} ms covers the 1.5 s the server was down`);
  assert.ok(g.max_source_gap_ms >= 1500, `source-time gap ${g.max_source_gap_ms} ms`);
  assert.is(
    st.gap_ms_total,
    gaps.reduce((a, x) => a + x.ms, 0),
  );
  assert.ok(st.samples_durable > durableBefore);
  await src.stop();
  const seqs = r.store.stats().sources["opcua:plc"]!;
  assert.is(seqs.gaps_total, 0, "seq continuous through the restart");
  assert.is(seqs.duplicates_total, 0);
  assert.is(seqs.last_seq, src.stats().last_seq);
  assert.is(src.stats().samples_durable, src.stats().samples_received);
});

test("a silent sensor (no new source timestamp while connected) is detected as stalled; the others are not", async () => {
  const src = source({ watchdogFactor: 2 });
  const r = await rig();
  src.attach(r.sink);
  const stalls: string[] = [];
  src.on("stall", (e) => stalls.push(e.tag));
  await src.start(new AbortController().signal);
  await waitUntil("mold_temperature data", () => r.store.latest("mold_temperature"));
  const now = ps.plant.now();
  ps.plant.twin.model.addSensorFault({ tag: "mold_temperature", kind: "dropout", startTs: now, endTs: now + 600_000 });
  // The server first flags the last value as UncertainLastUsableValue (one notification), then goes silent.
  await waitUntil(
    "stall detected after the uncertain last value",
    () => src.stats().uncertain_quality >= 1 && src.stats().stalled_tags.includes("mold_temperature"),
    20_000,
  );
  const st = src.stats();
  assert.ok(stalls.includes("mold_temperature"), "stall event");
  assert.is(st.connected, true, "the connection itself is fine");
  assert.ok(st.stall_checks >= 1, "confirmed by a read");
  for (const t of ["furnace_temperature", "belt_speed", "forming_pressure"])
    assert.not.ok(st.stalled_tags.includes(t), `${t} is not stalled`);
  await src.stop();
});

test("tags whose browse path or node id does not resolve are reported by name; the rest are read", async () => {
  const base = DEFAULT_TAGS.find((t) => t.id === "furnace_temperature")!;
  const extra = (id: string, opcua: TagConfig["sources"]["opcua"]): TagConfig => ({
    ...base,
    id,
    actuator: undefined,
    sources: { opcua },
  });
  const tags: TagConfig[] = [
    ...DEFAULT_TAGS.filter((t) => t.id !== "furnace_temperature"),
    extra("furnace_temperature", { browse_path: `/1:${LINE}/1:furnace/1:furnace_temperature` }),
    extra("ghost_by_path", { browse_path: `/1:${LINE}/1:furnace/1:no_such_variable` }),
    extra("ghost_by_id", { node_id: `ns=1;s=${LINE}.no_such_variable` }),
    { ...extra("unmapped_tag", undefined), sources: {} },
  ];
  const r = await rig(tags);
  const src = source({ tags });
  src.attach(r.sink);
  await src.start(new AbortController().signal);
  const st = src.stats();
  assert.is(st.unresolved_tags.length, 2, st.unresolved_tags.join("; "));
  assert.match(st.unresolved_tags.join(), /ghost_by_path \(browse path .*no_such_variable: BadNoMatch/);
  assert.match(st.unresolved_tags.join(), /ghost_by_id \(ns=1;s=Line_A.no_such_variable: BadNodeIdUnknown\)/);
  assert.is(st.unmapped_tags, 1);
  assert.is(st.monitored_items, DEFAULT_TAGS.length, "the resolvable tags, browse path included");
  assert.is(st.setpoint_items, DEFAULT_TAGS.filter((t) => t.actuator).length, "setpoints of the levers");
  await waitUntil("the browse-path tag delivers", () => r.store.latest("furnace_temperature"));
  await src.stop();
});

test("setpoint writes: refused in LOCAL mode, applied and read back, clamped by the PLC, refused outside limits", async () => {
  const src = source({
    identity: { type: "username", username: USERS.operator.name, passwordFile: passwordFile(USERS.operator.password) },
    securityPolicy: "Aes256_Sha256_RsaPss",
  });
  src.attach(async () => {});
  await src.start(new AbortController().signal);
  const act = new OpcuaActuator(src, { heartbeat: { nodeId: `ns=1;s=${LINE}.glassd_heartbeat`, intervalMs: 200 } });
  assert.equal(
    act.writableTags().sort(),
    DEFAULT_TAGS.filter((t) => t.actuator)
      .map((t) => t.id)
      .sort(),
  );
  await waitUntil("setpoint cache filled", () => {
    try {
      return act.readSetpoint("belt_speed") > 0;
    } catch {
      return false;
    }
  });
  // LOCAL mode (no heartbeat yet): the PLC refuses, nothing applied.
  const before = act.readSetpoint("belt_speed");
  const local = await act.write("belt_speed", 160).catch((e: unknown) => e);
  assert.instance(local, OpcuaWriteError);
  assert.is((local as OpcuaWriteError).reason, "BadNotWritable");
  assert.is(ps.plant.twin.readSetpoint("belt_speed"), before);

  act.startHeartbeat();
  await waitUntil("REMOTE mode", () => ps.plant.remote.isRemote());
  const ok = await act.write("belt_speed", 160);
  assert.equal([ok.requested, ok.applied, ok.readBack], [160, 160, 160]);
  assert.is(ps.plant.twin.readSetpoint("belt_speed"), 160);

  const clamped = await act.write("belt_speed", 250); // hard limits 50–300, actuator range 80–220
  assert.equal([clamped.requested, clamped.applied, clamped.readBack], [250, 220, 220]);
  assert.is(act.readSetpoint("belt_speed"), 220);
  assert.is(act.stats().writes_clamped, 1);

  const out = await act.write("belt_speed", 400).catch((e: unknown) => e);
  assert.instance(out, OpcuaWriteError);
  assert.is((out as OpcuaWriteError).reason, "BadOutOfRange");
  assert.is(ps.plant.twin.readSetpoint("belt_speed"), 220, "nothing applied");
  const notLever = await act.write("humidity", 50).catch((e: unknown) => e);
  assert.instance(notLever, OpcuaWriteError);
  assert.is((notLever as OpcuaWriteError).reason, "not_writable");
  act.stopHeartbeat();
  await act.write("belt_speed", 150).catch(() => {});
  await src.stop();
  const gone = await act.write("belt_speed", 150).catch((e: unknown) => e);
  assert.is((gone as OpcuaWriteError).reason, "not_connected");
  await sleep(10);
});

test.run();
