import { SerialPort } from "serialport";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConfigError } from "../src/core/errors.js";
import {
  type ModbusConfig,
  ModbusRtuSource,
  planBlocks,
  rawValue,
  resolveModbusConfig,
} from "../src/ingest/modbus/index.js";
import { killAll, PtyPair, RecordingSink, tempDir, waitUntil } from "./fixtures/serial-pty.js";

/*
 * ModbusRtuSource against a Modbus RTU slave on the other end of a real socat pseudo-terminal pair.
 *
 * The slave is written here (about 80 lines, CRC-16/MODBUS by hand) rather than modbus-serial's ServerSerial,
 * because the faults under test need control ServerSerial does not offer: garbage before a reply, a reply with a
 * broken CRC, unsolicited noise, a unit that never answers. It parses requests with the same resynchronising rule a
 * real device uses (a frame is 8 bytes with a valid CRC; otherwise drop one byte and look again).
 */

function crc16(b: Uint8Array): number {
  let crc = 0xffff;
  for (const x of b) {
    crc ^= x;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

function withCrc(body: number[]): Buffer {
  const b = Buffer.alloc(body.length + 2);
  b.set(body);
  b.writeUInt16LE(crc16(b.subarray(0, body.length)), body.length);
  return b;
}

class RtuSlave {
  readonly holding = new Map<number, Uint16Array>();
  readonly input = new Map<number, Uint16Array>();
  /** `${unit}:${fc}:${register}` → exception code for any request covering that register. */
  readonly exceptions = new Map<string, number>();
  readonly silentUnits = new Set<number>();
  garbagePrefix: Buffer | undefined;
  /** Every Nth reply gets a broken CRC (0 = never). */
  badCrcEvery = 0;
  requests = 0;
  replies = 0;
  private buf = Buffer.alloc(0);

  private constructor(private readonly port: SerialPort) {
    port.on("data", (d: Buffer) => this.onData(d));
    port.on("error", () => {});
  }

  static async open(path: string): Promise<RtuSlave> {
    const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    return new RtuSlave(port);
  }

  regs(table: "holding" | "input", unit: number): Uint16Array {
    const m = table === "holding" ? this.holding : this.input;
    let r = m.get(unit);
    if (!r) {
      r = new Uint16Array(256);
      m.set(unit, r);
    }
    return r;
  }

  noise(bytes: Buffer): void {
    this.port.write(bytes);
  }

  close(): Promise<void> {
    return new Promise((r) => (this.port.isOpen ? this.port.close(() => r()) : r()));
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 8) {
      const f = this.buf.subarray(0, 8);
      if (f.readUInt16LE(6) !== crc16(f.subarray(0, 6))) {
        this.buf = this.buf.subarray(1);
        continue;
      }
      this.buf = this.buf.subarray(8);
      this.handle(f[0]!, f[1]!, f.readUInt16BE(2), f.readUInt16BE(4));
    }
  }

  private handle(unit: number, fc: number, start: number, count: number): void {
    this.requests++;
    if (this.silentUnits.has(unit)) return;
    let reply: Buffer;
    const exc = [...this.exceptions].find(([k]) => {
      const [u, f, r] = k.split(":").map(Number);
      return u === unit && f === fc && r! >= start && r! < start + count;
    });
    if (fc !== 3 && fc !== 4) reply = withCrc([unit, fc | 0x80, 1]);
    else if (exc) reply = withCrc([unit, fc | 0x80, exc[1]]);
    else if (start + count > 256) reply = withCrc([unit, fc | 0x80, 2]);
    else {
      const regs = this.regs(fc === 3 ? "holding" : "input", unit);
      const body = [unit, fc, count * 2];
      for (let i = 0; i < count; i++) body.push(regs[start + i]! >> 8, regs[start + i]! & 0xff);
      reply = withCrc(body);
    }
    this.replies++;
    if (this.badCrcEvery > 0 && this.replies % this.badCrcEvery === 0) reply[reply.length - 1]! ^= 0x5a;
    this.port.write(this.garbagePrefix ? Buffer.concat([this.garbagePrefix, reply]) : reply);
  }
}

/** Writes a 32-bit pattern into two registers with the given word order. */
function put32(regs: Uint16Array, at: number, bytes: Buffer, little: boolean): void {
  const hi = bytes.readUInt16BE(0);
  const lo = bytes.readUInt16BE(2);
  regs[at] = little ? lo : hi;
  regs[at + 1] = little ? hi : lo;
}

const f32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(v);
  return b;
};
const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};

function config(path: string, over: Partial<ModbusConfig> = {}): ModbusConfig {
  return resolveModbusConfig({
    path,
    id: "bench1",
    timeout_ms: 200,
    inter_request_delay_ms: 2,
    retry: { initial_delay_ms: 50, max_delay_ms: 200, jitter: 0.2 },
    tags: [
      { tag: "t_int16", unit_id: 1, register: 0, type: "int16", scale: 0.1, period_ms: 100 },
      { tag: "t_uint16", unit_id: 1, register: 1, type: "uint16", period_ms: 100 },
      { tag: "t_i32_big", unit_id: 1, register: 4, type: "int32", period_ms: 100 },
      { tag: "t_f32_little", unit_id: 1, register: 6, type: "float32", word_order: "little", period_ms: 100 },
      {
        tag: "t_input_f32",
        unit_id: 2,
        table: "input",
        register: 10,
        type: "float32",
        offset: -273.15,
        period_ms: 100,
      },
      { tag: "t_slow", unit_id: 2, register: 20, type: "uint16", period_ms: 400 },
    ],
    ...over,
  });
}

const EXPECTED: Record<string, number> = {
  t_int16: -123.4,
  t_uint16: 65000,
  t_i32_big: -2_000_000_000,
  t_f32_little: 3.5,
  t_input_f32: 1773.15 - 273.15,
  t_slow: 7,
};

function fill(slave: RtuSlave): void {
  const h1 = slave.regs("holding", 1);
  h1[0] = -1234 & 0xffff;
  h1[1] = 65000;
  put32(h1, 4, i32(-2_000_000_000), false);
  put32(h1, 6, f32(3.5), true);
  put32(slave.regs("input", 2), 10, f32(1773.15), false);
  slave.regs("holding", 2)[20] = 7;
}

function checkValues(sink: RecordingSink): void {
  for (const s of sink.samples) {
    const want = EXPECTED[s.tag];
    assert.ok(want !== undefined, `unexpected tag ${s.tag}`);
    assert.ok(Math.abs((s.value as number) - want!) < 1e-3, `${s.tag} = ${s.value}, want ${want}`);
    assert.is(s.source, "modbus:bench1");
    assert.is(s.quality, "good");
  }
}

const test = suite("modbus rtu");
test.after(async () => {
  await killAll();
});

test("config and planning: overlaps and duplicates named; blocks merge per unit/table/period; word orders", () => {
  try {
    resolveModbusConfig({
      path: "/dev/null",
      tags: [
        { tag: "a", unit_id: 1, register: 0, type: "int32" },
        { tag: "b", unit_id: 1, register: 1, type: "uint16" },
        { tag: "a", unit_id: 2, register: 0 },
      ],
    });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, ConfigError);
    const paths = (err as ConfigError).issues.map((i) => i.path);
    assert.ok(paths.includes("/source/modbus/tags/1/register"), paths.join());
    assert.ok(paths.includes("/source/modbus/tags/2/tag"), paths.join());
  }
  const blocks = planBlocks(config("/dev/null").tags, 64, 8);
  assert.equal(
    blocks.map((b) => [b.unit, b.table, b.start, b.count, b.periodMs, b.tags.length]),
    [
      [1, "holding", 0, 8, 100, 4],
      [2, "input", 10, 2, 100, 1],
      [2, "holding", 20, 1, 400, 1],
    ],
  );
  const regs = Buffer.from([0x00, 0x00, 0x40, 0x60]); // 3.5f as AB CD = 0x40600000
  // Read as AB CD the same registers are 0x00004060, a denormal next to zero: the word order matters.
  assert.ok(
    Math.abs(rawValue(regs, { tag: "x", index: 0, type: "float32", littleWords: false, scale: 1, offset: 0 })) < 1e-40,
  );
  assert.is(rawValue(regs, { tag: "x", index: 0, type: "float32", littleWords: true, scale: 1, offset: 0 }), 3.5);
});

test("polls every type, table and unit over a real PTY; seq contiguous; slow tag polled less often", async () => {
  const pair = await PtyPair.start(tempDir("glassd-modbus-"));
  const slave = await RtuSlave.open(pair.dev);
  fill(slave);
  const sink = new RecordingSink();
  const src = new ModbusRtuSource({ config: config(pair.host), startSeq: 41 });
  src.attach(sink.sink);
  try {
    await src.start(new AbortController().signal);
    await waitUntil(() => sink.samples.filter((s) => s.tag === "t_slow").length >= 3, 15_000, "3 slow samples");
    checkValues(sink);
    assert.equal(sink.contiguity(42), { ok: true });
    const count = (tag: string) => sink.samples.filter((s) => s.tag === tag).length;
    assert.ok(count("t_int16") > count("t_slow"), `${count("t_int16")} vs ${count("t_slow")}`);
    // One block of unit 1 carries its four tags with one timestamp.
    const first = sink.samples.filter((s) => s.tag.startsWith("t_") && ["t_int16", "t_f32_little"].includes(s.tag));
    assert.is(first[0]!.ts, first[1]!.ts);
    const s = src.stats();
    assert.ok(s.connected);
    assert.is(s.blocks, 3);
    assert.is(s.timeouts + s.crc_errors + s.bad_frames + s.exceptions_total, 0);
  } finally {
    await src.stop();
    await slave.close();
    await pair.stop();
  }
});

test("exception replies, a silent unit (timeouts), garbage and broken CRCs: counted, never a wrong value", async () => {
  const pair = await PtyPair.start(tempDir("glassd-modbus-"));
  const slave = await RtuSlave.open(pair.dev);
  fill(slave);
  slave.exceptions.set("2:3:20", 2); // t_slow: illegal data address
  slave.silentUnits.add(9);
  const cfg = config(pair.host);
  cfg.tags.push({
    tag: "t_absent",
    unit_id: 9,
    table: "holding",
    register: 0,
    type: "uint16",
    word_order: "big",
    scale: 1,
    offset: 0,
    period_ms: 150,
  });
  const sink = new RecordingSink();
  const src = new ModbusRtuSource({ config: cfg });
  src.attach(sink.sink);
  try {
    await src.start(new AbortController().signal);
    await waitUntil(
      () => src.stats().exceptions_total >= 2 && src.stats().timeouts >= 4,
      15_000,
      "exceptions and timeouts",
    );
    // Garbage before every reply: the buffered port skips to the unit/function pair and still reads the values.
    slave.garbagePrefix = Buffer.from([0x00, 0xff, 0x13, 0x37, 0xaa, 0x55]);
    const before = sink.samples.length;
    await waitUntil(() => sink.samples.length >= before + 20, 15_000, "samples through garbage");
    // Broken CRC on every third reply, plus unsolicited noise on the line.
    slave.garbagePrefix = undefined;
    slave.badCrcEvery = 3;
    for (let i = 0; i < 5; i++) slave.noise(Buffer.from([0x01, 0x03, 0xff, 0xfe, 0x00, 0x01, 0x02]));
    await waitUntil(() => src.stats().crc_errors + src.stats().bad_frames >= 3, 15_000, "CRC errors counted");
    slave.badCrcEvery = 0;
    const mid = sink.samples.length;
    await waitUntil(() => sink.samples.length >= mid + 20, 15_000, "samples after the noise");

    checkValues(sink);
    const s = src.stats();
    assert.ok((s.exceptions["2"] ?? 0) >= 2, JSON.stringify(s.exceptions));
    assert.is(sink.samples.filter((x) => x.tag === "t_slow" || x.tag === "t_absent").length, 0);
    assert.ok(s.timeouts >= 4);
    assert.is(s.path_vanished, 0, "a silent unit is not a vanished port");
    assert.ok(s.connected);
    assert.equal(sink.contiguity(1), { ok: true });
  } finally {
    await src.stop();
    await slave.close();
    await pair.stop();
  }
});

test("the port disappears and returns: reconnect, polling resumes, seq continues without duplicates", async () => {
  const dir = tempDir("glassd-modbus-");
  let pair = await PtyPair.start(dir);
  let slave = await RtuSlave.open(pair.dev);
  fill(slave);
  const sink = new RecordingSink();
  const src = new ModbusRtuSource({ config: config(pair.host) });
  const lost: string[] = [];
  src.on("connectionLost", (e) => lost.push(e.reason));
  src.attach(sink.sink);
  try {
    await src.start(new AbortController().signal);
    await waitUntil(() => sink.samples.length >= 10, 15_000, "first samples");
    await slave.close();
    await pair.stop(); // unplugged: socat gone, both links removed
    await waitUntil(() => lost.length >= 1, 15_000, "link loss noticed");
    await waitUntil(() => src.stats().connect_failures >= 1, 15_000, "reconnect attempts while absent");
    const during = sink.samples.length;

    pair = await PtyPair.start(dir); // replugged under the same path
    slave = await RtuSlave.open(pair.dev);
    fill(slave);
    await waitUntil(() => sink.samples.length >= during + 10, 15_000, "samples after replug");
    const s = src.stats();
    assert.ok(s.reconnects >= 1, JSON.stringify(s));
    assert.ok(s.connected);
    checkValues(sink);
    assert.equal(sink.contiguity(1), { ok: true });
  } finally {
    await src.stop();
    await slave.close();
    await pair.stop();
  }
});

test.run();
