/*
 * The serial source end to end with real peers: the host-built reference firmware on one end of a socat PTY pair,
 * SerialBridgeSource on the other. Handshake and tag mapping, acknowledgement only after the sink resolved (with a
 * slow sink the device resends and the host recognises the duplicates), garbage on the line, commands with their
 * acknowledgement and a timeout when the device does not answer, a clean SIGTERM of the firmware.
 */
import { closeSync, constants, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SerialBridgeSource, type SerialRequestError } from "../src/ingest/serial/index.js";
import {
  buildFirmware,
  Firmware,
  GOLDEN_DIR,
  killAll,
  PtyPair,
  RecordingSink,
  serialTags,
  sleep,
  tempDir,
  waitUntil,
} from "./fixtures/serial-pty.js";

buildFirmware();

interface Rig {
  pty: PtyPair;
  fw: Firmware;
  src: SerialBridgeSource;
  rec: RecordingSink;
}

const rigs: Rig[] = [];

async function rig(
  fwArgs: string[],
  opts: {
    startSeq?: number;
    commandTimeoutMs?: number;
    beforeStart?: (src: SerialBridgeSource, rec: RecordingSink) => void;
  } = {},
): Promise<Rig> {
  const pty = await PtyPair.start(tempDir());
  const fw = Firmware.start(pty.dev, ["--device-id", "lehr-mcu-07", ...fwArgs]);
  const rec = new RecordingSink();
  const src = new SerialBridgeSource({
    path: pty.host,
    deviceId: "lehr-mcu-07",
    tags: serialTags(),
    startSeq: opts.startSeq ?? 0,
    retry: { initialDelayMs: 50, maxDelayMs: 300 },
    handshakeTimeoutMs: 500,
    commandTimeoutMs: opts.commandTimeoutMs ?? 1000,
    timeSyncIntervalMs: 200,
  });
  src.attach(rec.sink);
  const r = { pty, fw, src, rec };
  rigs.push(r);
  opts.beforeStart?.(src, rec);
  await src.start(new AbortController().signal);
  return r;
}

async function teardown(): Promise<void> {
  for (const r of rigs.splice(0)) await r.src.stop();
  await killAll();
}

test.after.each(teardown);

test("handshake, then samples arrive as RawSamples with the tags of their channels", async () => {
  const { src, rec, fw } = await rig(["--speed", "10", "--limit", "400", "--batch-ms", "20"], { startSeq: 1000 });
  const dev = src.device();
  assert.ok(dev, "connected after start");
  assert.is(dev?.device_id, "lehr-mcu-07");
  assert.is(dev?.protocol_version, 1);
  assert.equal(
    dev?.channels.map((c) => [c.id, c.tag, c.unit]),
    [
      [1, "lehr_temp", "°C"],
      [2, "line_pressure", "kPa"],
      [3, "photo_eye_count", "count"],
      [4, "reject_gate", ""],
    ],
  );
  assert.is(src.id, "serial:lehr-mcu-07");
  await waitUntil(() => rec.samples.length >= 400, 15_000, "400 samples");
  await sleep(100);
  assert.is(rec.samples.length, 400, "each sample exactly once");
  assert.equal(rec.contiguity(1001), { ok: true }, "seqs continue after startSeq without a hole");
  const byTag = new Map<string, number[]>();
  for (const s of rec.samples) {
    assert.is(s.source, "serial:lehr-mcu-07");
    assert.is(s.quality, "good");
    assert.ok(Math.abs(s.ts - Date.now()) < 10_000, `ts ${s.ts} is wall-clock time`);
    byTag.set(s.tag, [...(byTag.get(s.tag) ?? []), s.value as number]);
  }
  assert.equal([...byTag.keys()].sort(), ["lehr_temp", "line_pressure", "photo_eye_count", "reject_gate"]);
  for (const v of byTag.get("lehr_temp")!) assert.ok(v > 1510 && v < 1530, `furnace temperature ${v}`);
  for (const v of byTag.get("line_pressure")!) assert.ok(v > 100 && v < 103, `pressure ${v}`);
  for (const v of byTag.get("reject_gate")!) assert.is(v, 0);
  // Channel 2 samples twice as often as channel 1.
  const n1 = byTag.get("lehr_temp")!.length;
  const n2 = byTag.get("line_pressure")!.length;
  assert.ok(n2 > 1.6 * n1 && n2 < 2.4 * n1, `rates ${n1} / ${n2}`);
  const st = src.stats();
  assert.is(st.connected, true);
  assert.is(st.bad_crc, 0);
  assert.is(st.gaps, 0);
  assert.is(st.samples_durable, 400);
  assert.ok(st.acks_sent > 0);
  await waitUntil(() => src.stats().time_syncs > 0, 3000, "a TIME_SYNC exchange");
  await waitUntil(() => src.stats().last_heartbeat_age_ms >= 0, 3000, "a heartbeat");
  const exit = await fw.stop();
  assert.is(exit.produced_samples, 400);
  assert.is(exit.ring_used, 0, "the device holds nothing unacknowledged");
  assert.is(exit.dropped_samples, 0);
});

test("ACK only after the sink resolved: a slow sink makes the device resend, the host drops the duplicates", async () => {
  const heartbeats: Array<{ acked: number; ring: number }> = [];
  const acks: Array<{ seq: number; resolvedCalls: number }> = [];
  const r = await rig(
    ["--speed", "10", "--limit", "300", "--batch-ms", "20", "--ack-timeout-ms", "100", "--heartbeat-ms", "50"],
    {
      beforeStart: (s, sink) => {
        s.on("heartbeat", (hb) => heartbeats.push({ acked: hb.acked_seq, ring: hb.ring_used }));
        s.on("ack", (a) => acks.push({ seq: a.seq, resolvedCalls: sink.resolved }));
      },
    },
  );
  const { src, fw, rec } = r;

  // The store "hangs": nothing more becomes durable, so nothing more may be acknowledged; the device resends.
  rec.hold();
  await waitUntil(() => rec.calls > rec.resolved, 5000, "a batch blocked at the sink");
  const acksBefore = acks.length;
  const ackedBefore = acks.at(-1)?.seq ?? 0;
  const hbBefore = heartbeats.length;
  await sleep(800);
  const during = heartbeats.slice(hbBefore);
  assert.ok(during.length >= 5, `heartbeats while the sink hangs (${during.length})`);
  for (const hb of during)
    assert.ok(
      hb.acked <= ackedBefore,
      `the device got no ACK for what the sink holds (acked ${hb.acked} > ${ackedBefore}; acks ${JSON.stringify(acks)}, calls ${rec.calls}/${rec.resolved})`,
    );
  assert.ok(during.at(-1)!.ring > 1, "the device holds the unacknowledged batches");
  assert.is(acks.length, acksBefore, "no ACK sent while the sink hangs");
  assert.ok(src.stats().duplicate_batches > 0, "resent batches recognised as duplicates");

  // Now slow but working: 4× the device's ACK timeout per call.
  rec.delayMs = 400;
  rec.release();
  await waitUntil(() => rec.samples.length >= 300, 30_000, "300 samples through a slow sink");
  await sleep(200);
  const st = src.stats();
  assert.is(rec.samples.length, 300, "nothing lost, nothing twice");
  assert.equal(rec.contiguity(1), { ok: true });
  assert.ok(st.duplicate_batches > 0, `duplicates detected (${st.duplicate_batches})`);
  for (const a of acks) assert.ok(a.resolvedCalls > 0, "every ACK went out after a sink call resolved");
  await waitUntil(() => heartbeats.at(-1)?.ring === 0, 3000, "device ring empty");
  const exit = await fw.stop();
  assert.ok((exit.resends as number) > 0, "the device resent after its timeout");
  assert.is(exit.ring_used, 0);
  assert.is(exit.dropped_samples, 0);
});

test("garbage on the line: resync, counted, nothing lost", async () => {
  const { src, rec, pty, fw } = await rig([
    "--speed",
    "10",
    "--limit",
    "600",
    "--batch-ms",
    "20",
    "--ack-timeout-ms",
    "100",
  ]);
  await waitUntil(() => rec.samples.length > 20, 5000, "first samples");
  // Write garbage into the device's end of the PTY pair: socat carries it to the host between (or into) frames.
  const fd = openSync(pty.dev, constants.O_WRONLY | constants.O_NOCTTY);
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  try {
    for (let k = 0; k < 40; k++) {
      const g = Buffer.alloc(1 + (rnd() % 300));
      for (let i = 0; i < g.length; i++) g[i] = rnd() & 0xff;
      if (k % 5 === 0) g.fill(0x41); // a long run without delimiter
      writeSync(fd, g);
      await sleep(15);
    }
    writeSync(fd, Buffer.alloc(3000, 0x42)); // longer than any frame: oversize
    writeSync(fd, Buffer.from([0]));
  } finally {
    closeSync(fd);
  }
  await waitUntil(() => rec.samples.length >= 600, 20_000, "all 600 samples");
  await sleep(200);
  const st = src.stats();
  assert.is(rec.samples.length, 600, "nothing lost, nothing twice");
  assert.equal(rec.contiguity(1), { ok: true });
  assert.ok(st.resyncs > 0, `resyncs counted (${st.resyncs})`);
  assert.ok(st.bad_crc + st.malformed > 0, `bad frames counted (crc ${st.bad_crc}, malformed ${st.malformed})`);
  assert.ok(st.oversize >= 1, "oversize run counted");
  assert.is(st.gaps, 0);
  assert.is(st.connected, true, "the link survived");
  const exit = await fw.stop();
  assert.is(exit.dropped_samples, 0);
});

test("commands: light tower and reject pulse acknowledged; a frozen device times out; BUSY is reported", async () => {
  const { src, rec, fw } = await rig(["--speed", "10", "--batch-ms", "20"], { commandTimeoutMs: 300 });
  const r = await src.command({ command: "light_tower", red: "on", amber: "off", green: "blink" });
  assert.is(r.command, "light_tower");
  assert.ok(r.rtt_ms >= 0 && r.rtt_ms < 300);
  const ev = await fw.waitEvent((e) => e.event === "command" && e.command === "light_tower", 2000, "light tower");
  assert.equal([ev.red, ev.amber, ev.green, ev.buzzer], ["on", "off", "blink", "off"]);

  await src.command({ command: "reject_pulse", duration_ms: 400 });
  const busy = await src.command({ command: "reject_pulse", duration_ms: 100 }).catch((e: SerialRequestError) => e);
  assert.instance(busy, Error);
  assert.is((busy as SerialRequestError).code, "serial_rejected");
  assert.is((busy as SerialRequestError).deviceError, "BUSY");
  await waitUntil(() => rec.samples.some((s) => s.tag === "reject_gate" && s.value === 1), 3000, "gate state 1");

  fw.pause(); // the device freezes: no answer
  const t0 = Date.now();
  const err = await src.command({ command: "light_tower", red: "off", amber: "on", green: "off" }).catch((e) => e);
  const waited = Date.now() - t0;
  fw.resume();
  assert.instance(err, Error);
  assert.is((err as SerialRequestError).code, "serial_timeout");
  assert.ok(waited >= 280 && waited < 1000, `timed out after ${waited} ms`);
  // The device is back: the next command works again.
  await src.command({ command: "light_tower", red: "off", amber: "off", green: "on" });
  const st = src.stats();
  assert.is(st.commands_ok, 3);
  assert.is(st.commands_failed, 2);
  assert.ok(st.request_timeouts >= 1);
});

test("an unsolicited HELLO mid-session (device reset on a live link): new handshake, nothing lost", async () => {
  const { src, rec, pty, fw } = await rig([
    "--speed",
    "10",
    "--limit",
    "500",
    "--batch-ms",
    "20",
    "--ack-timeout-ms",
    "100",
  ]);
  await waitUntil(() => rec.samples.length > 50, 5000, "first samples");
  const fd = openSync(pty.dev, constants.O_WRONLY | constants.O_NOCTTY);
  try {
    writeSync(fd, readFileSync(join(GOLDEN_DIR, "hello_announce.bin")));
  } finally {
    closeSync(fd);
  }
  await waitUntil(() => src.stats().announces === 1, 3000, "announcement seen");
  await waitUntil(() => rec.samples.length >= 500, 10_000, "all 500 samples");
  await sleep(100);
  const st = src.stats();
  assert.is(rec.samples.length, 500);
  assert.equal(rec.contiguity(1), { ok: true });
  assert.is(st.connected, true);
  assert.is(st.reconnects, 0, "the link never dropped");
  assert.is(st.device_resets, 0, "the real device answered the new HELLO with its unchanged boot id");
  await fw.stop();
});

test("a device with another id, or with no common protocol version, is refused and retried, never used", async () => {
  for (const [args, why] of [
    [["--device-id", "press-mcu-01"], /is press-mcu-01, expected lehr-mcu-07/],
    [
      ["--device-id", "lehr-mcu-07", "--versions", "2-3"],
      /VERSION \(the device speaks protocol versions 2-3\); this glassd speaks 1-1/,
    ],
  ] as const) {
    const pty = await PtyPair.start(tempDir());
    Firmware.start(pty.dev, [...args, "--speed", "10"]);
    const rec = new RecordingSink();
    const src = new SerialBridgeSource({
      path: pty.host,
      deviceId: "lehr-mcu-07",
      tags: serialTags(),
      retry: { initialDelayMs: 50, maxDelayMs: 100 },
      handshakeTimeoutMs: 500,
    });
    rigs.push({ pty, fw: undefined as unknown as Firmware, src, rec });
    src.attach(rec.sink);
    const reasons: string[] = [];
    src.on("backoff", (b) => reasons.push(b.reason));
    await src.start(new AbortController().signal);
    await waitUntil(() => reasons.length >= 2, 5000, "retries");
    assert.match(reasons[0]!, why, reasons[0]);
    assert.is(src.stats().connected, false);
    assert.ok(src.stats().handshake_failures >= 2);
    await sleep(200);
    assert.is(rec.samples.length, 0, "no sample from a refused device");
    await src.stop();
  }
});

test("a command while disconnected fails at once with serial_not_connected", async () => {
  const { src, pty } = await rig(["--speed", "10"]);
  await pty.stop();
  await waitUntil(() => !src.stats().connected, 3000, "disconnect noticed");
  const err = await src.command({ command: "reject_pulse", duration_ms: 50 }).catch((e) => e);
  assert.is((err as SerialRequestError).code, "serial_not_connected");
});

test("the firmware exits cleanly on SIGTERM with its summary", async () => {
  const { fw, rec } = await rig(["--speed", "10", "--batch-ms", "20"]);
  await waitUntil(() => rec.samples.length > 10, 5000, "samples");
  const exit = await fw.stop();
  assert.is(fw.exitCode, 0);
  assert.ok((exit.produced_samples as number) > 10);
});

test.run();
