/*
 * Serial firmware bridge benchmark.
 *
 * 1. Parser alone, in memory: a stream of SAMPLES frames (50 or 100 samples each, with a HEARTBEAT every 20 batches)
 *    fed in 4 KiB chunks (what a serial read hands over) through FrameParser (COBS + CRC), then also through the
 *    SAMPLES decode the source does (SamplesView, every value read), next to a bare loop that touches every byte of
 *    the same stream once (the raw baseline: what any parser must at least pay).
 * 2. End to end over a socat PTY pair: the host-built firmware at its maximum rate (--max-rate: full batches as fast
 *    as ACKs free its ring) → SerialBridgeSource → a sink that resolves at once, and → Validator + LMDB Store with
 *    synchronous commits (the daemon's real sink shape). Samples/s from the first sample to the last.
 *
 * Usage: npx tsx bench/serial.ts [--quick]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { TagConfig } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import { realClock } from "../src/core/clock.js";
import type { RawSample } from "../src/core/types.js";
import {
  encodeFrame,
  encodeMessage,
  FrameParser,
  f32Bits,
  type Message,
  SamplesView,
  SerialBridgeSource,
} from "../src/ingest/serial/index.js";
import { Validator } from "../src/ingest/validate.js";
import { Store } from "../src/storage/index.js";
import { median, rate, table } from "./lib/index.js";

const quick = process.argv.includes("--quick");
const root = fileURLToPath(new URL("..", import.meta.url));
const FW_DIR = join(root, "firmware-bridge", "firmware");
const FW_BIN = join(FW_DIR, "build", "glassbridge-host");

// ── 1. parser alone ────────────────────────────────────────────────────────────────────────────────────────────────

function makeStream(batches: number, perBatch: number): { bytes: Uint8Array; frames: number; samples: number } {
  const parts: Uint8Array[] = [];
  let r = 1;
  let frames = 0;
  let samples = 0;
  for (let b = 0; b < batches; b++) {
    const list = [];
    for (let i = 0; i < perBatch; i++) {
      r = (r * 1103515245 + 12345) & 0x7fffffff;
      const ch = 1 + (i % 4);
      list.push({
        channel: ch,
        quality: 0,
        offset_us: i * 2500,
        raw: ch <= 2 ? f32Bits(1500 + (r % 1000) / 100) : ch === 3 ? b * 25 + i : r & 1,
      });
    }
    const m: Message = {
      type: "samples",
      seq: b + 1,
      oldest: Math.max(1, b - 7),
      first_sample: b * perBatch,
      base_us: 1_000_000 + b * 250_000,
      flags: 0,
      samples: list,
    };
    parts.push(encodeFrame(encodeMessage(m)));
    frames++;
    samples += perBatch;
    if (b % 20 === 19) {
      parts.push(
        encodeFrame(
          encodeMessage({
            type: "heartbeat",
            uptime_us: 1_000_000 + b * 250_000,
            last_seq: b + 1,
            acked_seq: b,
            samples_produced: (b + 1) * perBatch,
            ring_used: 1,
            dropped_batches: 0,
            dropped_samples: 0,
            rx_bad_crc: 0,
            rx_errors: 0,
          }),
        ),
      );
      frames++;
    }
  }
  return { bytes: Buffer.concat(parts), frames, samples };
}

const CHUNK = 4096;

function bare(bytes: Uint8Array): number {
  let x = 0;
  for (let at = 0; at < bytes.length; at += CHUNK) {
    const c = bytes.subarray(at, at + CHUNK);
    for (let i = 0; i < c.length; i++) x = (x + c[i]!) | 0;
  }
  return x;
}

function parseOnly(bytes: Uint8Array): number {
  let n = 0;
  const p = new FrameParser(() => {
    n++;
  });
  for (let at = 0; at < bytes.length; at += CHUNK) p.push(bytes.subarray(at, at + CHUNK));
  return n;
}

function parseAndDecode(bytes: Uint8Array): number {
  const v = new SamplesView();
  let sum = 0;
  const p = new FrameParser((pkt) => {
    if (pkt[0] !== 0x02) return;
    v.wrap(pkt);
    for (let i = 0; i < v.count; i++) sum += v.value(i, v.channel(i) <= 2 ? 0 : 1) + v.offsetUs(i) + v.quality(i);
  });
  for (let at = 0; at < bytes.length; at += CHUNK) p.push(bytes.subarray(at, at + CHUNK));
  return sum;
}

function time(fn: () => unknown, rounds: number): number {
  const t: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    fn();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
}

process.stdout.write(`glassd serial bench — node ${process.version}\n\n1. parser alone (4 KiB chunks, in memory)\n`);
const rows: (string | number)[][] = [];
for (const perBatch of [50, 100]) {
  const s = makeStream(quick ? 4000 : 20_000, perBatch);
  for (let w = 0; w < 3; w++) {
    bare(s.bytes);
    parseOnly(s.bytes);
    parseAndDecode(s.bytes);
  }
  const rounds = quick ? 3 : 7;
  const tb = time(() => bare(s.bytes), rounds);
  const tp = time(() => parseOnly(s.bytes), rounds);
  const td = time(() => parseAndDecode(s.bytes), rounds);
  const mb = s.bytes.length / 1e6;
  rows.push(
    [
      `bare loop, ${perBatch}/batch`,
      `${(mb / tb).toFixed(0)} MB/s`,
      rate(s.frames / tb),
      rate(s.samples / tb),
      "100 %",
    ],
    [
      `FrameParser (COBS+CRC)`,
      `${(mb / tp).toFixed(0)} MB/s`,
      rate(s.frames / tp),
      rate(s.samples / tp),
      `${((tb / tp) * 100).toFixed(0)} %`,
    ],
    [
      `+ SAMPLES decode`,
      `${(mb / td).toFixed(0)} MB/s`,
      rate(s.frames / td),
      rate(s.samples / td),
      `${((tb / td) * 100).toFixed(0)} %`,
    ],
  );
}
process.stdout.write(table(["path", "bytes", "frames", "samples", "of bare"], rows));

// ── 2. end to end over a PTY ───────────────────────────────────────────────────────────────────────────────────────

const live = new Set<ChildProcess>();
const stopAll = async () => {
  for (const p of live) {
    if (p.exitCode === null && p.pid !== undefined) process.kill(p.pid, "SIGTERM");
    if (p.exitCode === null) await new Promise((r) => p.once("exit", r));
  }
  live.clear();
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tags(): TagConfig[] {
  const t = (id: string, unit: string, channel: number, max: number): TagConfig => ({
    id,
    unit,
    stage: "forming",
    description: "",
    normal: { min: 0, max },
    limits: { min: 0, max },
    period_ms: 60_000,
    stale_after_ms: 3_600_000,
    sources: { serial: { channel } },
  });
  return [
    t("lehr_temp", "°C", 1, 2000),
    t("line_pressure", "kPa", 2, 1000),
    t("photo_eye_count", "count", 3, 4e9),
    t("reject_gate", "", 4, 1),
  ];
}

async function endToEnd(
  total: number,
  sinkKind: "none" | "store",
): Promise<{ rate: number; frames: number; secs: number; exit: string }> {
  const dir = mkdtempSync(join(tmpdir(), "glassd-serial-bench-"));
  const socat = spawn("socat", [`pty,raw,echo=0,link=${dir}/dev`, `pty,raw,echo=0,link=${dir}/host`], {
    stdio: "ignore",
  });
  live.add(socat);
  while (!existsSync(join(dir, "dev")) || !existsSync(join(dir, "host"))) await sleep(10);
  const fw = spawn(
    FW_BIN,
    [
      "--port",
      join(dir, "dev"),
      "--device-id",
      "bench",
      "--max-rate",
      "--batch-max",
      "100",
      "--window",
      "16",
      "--ring",
      "128",
      "--limit",
      String(total),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  live.add(fw);
  let fwOut = "";
  fw.stderr?.on("data", (b: Buffer) => {
    fwOut += b.toString();
  });
  const config = defaultConfig();
  const t = tags();
  let store: Store | undefined;
  let received = 0;
  let first = 0;
  let last = 0;
  let sink: (b: RawSample[]) => Promise<void>;
  if (sinkKind === "store") {
    store = new Store({ dataDir: join(dir, "data"), storage: config.storage, autoRetention: false });
    await store.open();
    const validator = new Validator(t, config.validation, realClock);
    const st = store;
    sink = async (batch) => {
      const { accepted, rejected } = validator.validateBatch(batch);
      await st.appendBatch(accepted, rejected);
      if (!first) first = performance.now();
      received += batch.length;
      last = performance.now();
    };
  } else {
    sink = async (batch) => {
      if (!first) first = performance.now();
      received += batch.length;
      last = performance.now();
    };
  }
  const src = new SerialBridgeSource({ path: join(dir, "host"), deviceId: "bench", tags: t, state: store });
  src.attach(sink);
  await src.start(new AbortController().signal);
  const deadline = performance.now() + 120_000;
  while (received < total && performance.now() < deadline) await sleep(20);
  const frames = src.stats().batches_received;
  await src.stop();
  await stopAll();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
  const exit = /"resends":(\d+)/.exec(fwOut)?.[1] ?? "?";
  const secs = (last - first) / 1000;
  if (received < total) throw new Error(`only ${received} of ${total} samples arrived`);
  return { rate: (received - 100) / secs, frames: frames / secs, secs, exit };
}

spawnSync("make", ["-s", "-C", FW_DIR], { stdio: "inherit" });
process.stdout.write("\n2. end to end: host firmware --max-rate → socat PTY → SerialBridgeSource → sink\n");
const total = quick ? 100_000 : 400_000;
const e2eRows: (string | number)[][] = [];
try {
  await endToEnd(20_000, "none"); // warm-up
  for (const kind of ["none", "store"] as const) {
    const r = await endToEnd(total, kind);
    e2eRows.push([
      kind === "none" ? "sink resolves at once" : "Validator + LMDB (sync commits)",
      rate(r.rate),
      rate(r.frames),
      `${r.secs.toFixed(2)} s`,
      r.exit,
    ]);
  }
} finally {
  await stopAll();
}
process.stdout.write(
  table(["sink", "samples", "SAMPLES frames", `time for ${total.toLocaleString("en-US")}`, "device resends"], e2eRows),
);
