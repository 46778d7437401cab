/*
 * The serial source when the device goes away: the USB adapter unplugged and replugged (the PTY pair removed and
 * recreated while the firmware keeps sampling into its ring until it overflows), the device rebooting (firmware
 * killed, a new boot comes up), and glassd itself restarting against a real LMDB store (the persisted sequence
 * mapping makes the device's resends duplicates, not new samples). Pass mark: every gap reported with its size,
 * sequence numbers strictly increasing across all of it, nothing acknowledged lost.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/validate.js";
import { realClock } from "../src/core/clock.js";
import type { RawSample } from "../src/core/types.js";
import { type Gap, SerialBridgeSource, type SerialSourceEvents } from "../src/ingest/serial/index.js";
import { Validator } from "../src/ingest/validate.js";
import { Store } from "../src/storage/index.js";
import {
  buildFirmware,
  Firmware,
  killAll,
  PtyPair,
  RecordingSink,
  serialTags,
  sleep,
  tempDir,
  waitUntil,
} from "./fixtures/serial-pty.js";

buildFirmware();

const sources: SerialBridgeSource[] = [];
const stores: Store[] = [];

function source(path: string, extra: Partial<ConstructorParameters<typeof SerialBridgeSource>[0]> = {}) {
  const src = new SerialBridgeSource({
    path,
    deviceId: "lehr-mcu-07",
    tags: serialTags(),
    retry: { initialDelayMs: 50, maxDelayMs: 250 },
    handshakeTimeoutMs: 300,
    ...extra,
  });
  sources.push(src);
  return src;
}

function record<K extends keyof SerialSourceEvents>(src: SerialBridgeSource, ev: K): SerialSourceEvents[K][] {
  const out: SerialSourceEvents[K][] = [];
  src.on(ev, (e) => out.push(e));
  return out;
}

function strictlyIncreasing(samples: readonly RawSample[]): boolean {
  for (let i = 1; i < samples.length; i++) if (samples[i]!.seq <= samples[i - 1]!.seq) return false;
  return true;
}

test.after.each(async () => {
  for (const s of sources.splice(0)) await s.stop();
  for (const s of stores.splice(0)) await s.close();
  await killAll();
});

const FW = [
  "--device-id",
  "lehr-mcu-07",
  "--speed",
  "10",
  "--batch-max",
  "10",
  "--batch-ms",
  "20",
  "--reopen-ms",
  "20",
];

test("unplugged and replugged: reconnect, re-HELLO on the same boot, the ring overflow reported as a gap of its size", async () => {
  const dir = tempDir();
  let pty = await PtyPair.start(dir);
  const fw = Firmware.start(pty.dev, [...FW, "--ring", "8", "--limit", "1500", "--heartbeat-ms", "500"]);
  const rec = new RecordingSink();
  const src = source(pty.host);
  src.attach(rec.sink);
  const lost = record(src, "connectionLost");
  const back = record(src, "reestablished");
  const gaps = record(src, "gap");
  const resets = record(src, "deviceReset");
  await src.start(new AbortController().signal);
  await waitUntil(() => rec.samples.length > 50, 5000, "first samples");

  await pty.stop(); // unplug: both PTY ends vanish
  await waitUntil(() => lost.length === 1, 3000, "connectionLost");
  await sleep(1000); // 440 samples/s into an 8 × 10-sample ring: it overflows
  pty = await PtyPair.start(dir); // replug at the same paths
  await waitUntil(() => back.length === 1, 5000, "reestablished");

  const exit = await (async () => {
    const accounted = () => {
      const st = src.stats();
      return rec.samples.length + st.missing_samples + st.unseen_at_first_contact;
    };
    await waitUntil(() => accounted() >= 1500, 20_000, "every sample accounted").catch((e: Error) => {
      throw new Error(
        `${e.message}: ${rec.samples.length} received, ${JSON.stringify(src.stats())} ${fw.log.slice(-8).join(" | ")}`,
      );
    });
    await sleep(200);
    return fw.stop();
  })();
  const st = src.stats();
  assert.is(exit.produced_samples, 1500);
  assert.is(lost.length, 1, `connection lost once ${JSON.stringify({ lost, st })}`);
  assert.is(back.length, 1, "re-established once");
  assert.ok((exit.dropped_samples as number) > 0, "the device's ring overflowed while unplugged");
  assert.is(resets.length, 0, "same boot: no reset");
  assert.ok(gaps.length >= 1, "gap reported");
  for (const g of gaps) assert.is(g.reason, "device_dropped");
  const missing = gaps.reduce((n, g: Gap) => n + g.samples, 0);
  assert.is(st.missing_samples, missing);
  // Under load the device may overflow before glassd's first HELLO too: counted apart, not a gap of the sequence.
  const unseen = st.unseen_at_first_contact;
  assert.ok(missing > 0, "samples lost while unplugged");
  assert.ok(
    missing + unseen <= (exit.dropped_samples as number),
    `missing ${missing} + unseen ${unseen} ≤ dropped ${exit.dropped_samples}`,
  );
  assert.is(
    rec.samples.length + missing + unseen,
    1500,
    "received + missing + unseen = produced: nothing silently lost",
  );
  assert.ok(strictlyIncreasing(rec.samples));
  // Contiguous except exactly at the reported gaps.
  const gapAt = new Map(gaps.map((g) => [g.after, g.samples]));
  for (let i = 1; i < rec.samples.length; i++) {
    const prev = rec.samples[i - 1]!.seq;
    const step = rec.samples[i]!.seq - prev;
    assert.is(step, 1 + (gapAt.get(prev) ?? 0), `seq step after ${prev}`);
  }
  assert.is(st.reconnects, 1, `reconnects (watchdog ${st.watchdog_timeouts}, vanished ${st.path_vanished})`);
  assert.is(back[0]!.boot_id, src.device()?.boot_id);
});

test("device rebooted: new boot detected, seqs keep increasing, what the old boot lost is reported", async () => {
  const dir = tempDir();
  let pty = await PtyPair.start(dir);
  // Window 1: while the sink hangs the device can send only one batch and keeps the rest of its samples to itself.
  const args = [...FW, "--window", "1", "--heartbeat-ms", "100"];
  let fw = Firmware.start(pty.dev, [...args, "--boot-id", "1111"]);
  const rec = new RecordingSink();
  const src = source(pty.host, { watchdogFactor: 20 }); // a loaded CI machine must not trip the watchdog
  src.attach(rec.sink);
  const hbs = record(src, "heartbeat");
  const resets = record(src, "deviceReset");
  const gaps = record(src, "gap");
  let hbAtReset: SerialSourceEvents["heartbeat"] | undefined;
  src.on("deviceReset", () => {
    hbAtReset = hbs.at(-1);
  });
  await src.start(new AbortController().signal);
  await waitUntil(() => rec.samples.length > 50, 5000, "first samples");

  rec.hold();
  await waitUntil(() => rec.calls > rec.resolved, 5000, "a batch blocked at the sink");
  // With window 1 the device cannot send anything new now; wait for heartbeats sent after that.
  const n0 = hbs.length;
  await waitUntil(() => hbs.length >= n0 + 3 && (hbs.at(-1)?.ring_used ?? 0) >= 5, 5000, "batches piling up");
  const lastHb = hbs.at(-1)!;
  await fw.kill(); // power cut: the ring is gone
  await pty.stop();
  await waitUntil(() => !src.stats().connected, 3000, "link down");
  rec.release(); // the batch that was at the sink becomes durable
  await sleep(100);
  const oldCount = rec.samples.length;
  const lastOldSeq = rec.samples.at(-1)!.seq;

  pty = await PtyPair.start(dir);
  fw = Firmware.start(pty.dev, [...args, "--boot-id", "2222", "--limit", "300"]);
  await waitUntil(() => resets.length === 1, 5000, "deviceReset");
  await waitUntil(() => rec.samples.length >= oldCount + 300, 10_000, "the new boot's 300 samples");
  await fw.stop();

  const r = resets[0]!;
  assert.is(r.old_boot_id, 1111);
  assert.is(r.boot_id, 2222);
  // The last heartbeat the host saw from the old boot proves how much was produced; it received oldCount of it.
  assert.ok(hbAtReset && hbAtReset.samples_produced >= lastHb.samples_produced);
  const unseen = src.stats().unseen_at_first_contact; // dropped before the first HELLO (a loaded machine)
  assert.is(
    r.lost_samples_lower_bound,
    hbAtReset!.samples_produced - oldCount - unseen,
    "produced per last heartbeat − received",
  );
  assert.ok(r.lost_samples_lower_bound > 0);
  const g = gaps.find((x) => x.reason === "device_reset");
  assert.ok(g, "the reboot's loss reported as a gap");
  assert.is(g?.samples, r.lost_samples_lower_bound);
  assert.is(g?.after, lastOldSeq);
  assert.ok(strictlyIncreasing(rec.samples), "seqs strictly increasing across the reboot");
  assert.is(rec.samples[oldCount]!.seq, lastOldSeq + r.lost_samples_lower_bound + 1);
  assert.is(rec.samples.length, oldCount + 300);
  const st = src.stats();
  assert.is(st.device_resets, 1);
  assert.is(st.missing_samples, r.lost_samples_lower_bound);
});

test("glassd restarts while the device holds unacknowledged batches: resends are duplicates, the store has each sample once", async () => {
  const dir = tempDir();
  const pty = await PtyPair.start(dir);
  const fw = Firmware.start(pty.dev, [...FW, "--limit", "1500", "--ack-timeout-ms", "100", "--heartbeat-ms", "200"]);
  const config = defaultConfig();
  const tags = serialTags();
  const store = new Store({ dataDir: tempDir("glassd-serial-store-"), storage: config.storage, autoRetention: false });
  await store.open();
  stores.push(store);
  const validator = new Validator(tags, config.validation, realClock);
  let slow = 0;
  const sink = async (batch: RawSample[]) => {
    const { accepted, rejected } = validator.validateBatch(batch);
    if (slow) await sleep(slow); // the batch is at the sink when glassd stops
    await store.appendBatch(accepted, rejected);
  };
  const id = "serial:lehr-mcu-07";
  const a = source(pty.host, { tags, state: store });
  a.attach(sink);
  await a.start(new AbortController().signal);
  await waitUntil(() => (store.lastSeq(id) ?? 0) >= 300, 10_000, "300 samples stored");
  slow = 150;
  await sleep(60);
  await a.stop(); // the call at the sink completes and is durable, but is never acknowledged
  slow = 0;
  const stoppedAt = store.lastSeq(id) ?? 0;
  await sleep(300); // the device keeps sampling into its ring

  const b = source(pty.host, { tags, state: store });
  b.attach(sink);
  await b.start(new AbortController().signal);
  const hbs = record(b, "heartbeat");
  const count = () => tags.reduce((n, t) => n + store.count(t.id), 0);
  const unseen = a.stats().unseen_at_first_contact; // dropped before the first HELLO (a loaded machine)
  await waitUntil(() => count() >= 1500 - unseen, 20_000, "all samples stored");
  // A heartbeat sent before the last batch (or crossing its ack on the wire) can still say ring_used 0 or 1:
  // judge only heartbeats that left the device after the store held every sample and its ack had gone out.
  const hbAfterStored = hbs.length;
  await waitUntil(
    () => hbs.length >= hbAfterStored + 2 && hbs.at(-1)?.ring_used === 0,
    5000,
    "every batch acknowledged",
  );
  const exit = await fw.stop();
  const s = store.stats().sources[id]!;
  assert.is(exit.produced_samples, 1500);
  assert.is(count(), 1500 - unseen, "each sample stored once");
  assert.is(s.last_seq, 1500 - unseen);
  const diag = JSON.stringify({ store: s, quarantine: store.stats().quarantine.by_reason, a: a.stats(), b: b.stats() });
  assert.is(s.gaps_total, 0, `no gap ${diag}`);
  assert.is(s.duplicates_total, 0, `no duplicate reached the store ${diag}`);
  assert.is(store.stats().quarantine.entries, 0, `nothing quarantined ${diag}`);
  assert.ok(stoppedAt >= 300);
  assert.ok(
    b.stats().duplicate_batches >= 1,
    `the device resent what was durable but unacknowledged (${b.stats().duplicate_batches})`,
  );
  assert.is(exit.ring_used, 0);
});

test.run();
