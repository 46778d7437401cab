import { MAX_PACKET } from "./frame-parser.js";

/*
 * Layer (b) of the serial protocol: the frame value type. One interface per message type of PROTOCOL.md §2 with the
 * spec's field names (snake_case, as in the golden JSON files), and `encodeMessage` / `decodeMessage` between a
 * message and its packet (type byte + little-endian body; framing and CRC are layer (a)). Decoding never trusts the
 * input: a body too short for its type, a field out of range or bad UTF-8 is a `MalformedPacketError`; bytes beyond
 * the known fields are ignored (a newer peer of the same version may append fields).
 */

export const PROTOCOL_VERSION = 1;

export const MessageType = {
  hello: 0x01,
  samples: 0x02,
  heartbeat: 0x03,
  cmd_ack: 0x04,
  time_sync_reply: 0x05,
  error: 0x06,
  host_hello: 0x81,
  ack: 0x82,
  time_sync: 0x83,
  command: 0x84,
} as const;
export type MessageName = keyof typeof MessageType;

export const ErrorCode = {
  OK: 0,
  UNKNOWN_TYPE: 1,
  MALFORMED: 2,
  VERSION: 3,
  NO_SESSION: 4,
  UNKNOWN_COMMAND: 5,
  BAD_ARGUMENT: 6,
  BUSY: 7,
  HARDWARE: 8,
  UNSUPPORTED: 9,
} as const;
export type ErrorName = keyof typeof ErrorCode;

/** Name of a device error code, or `code_<n>` for one this host does not know. */
export function errorName(code: number): string {
  for (const [name, c] of Object.entries(ErrorCode)) if (c === code) return name;
  return `code_${code}`;
}

export const ValueType = { f32: 0, u32: 1, i32: 2, state: 3 } as const;
export const Quality = { good: 0, uncertain: 1, bad: 2 } as const;
export const Command = { reject_pulse: 0x01, light_tower: 0x02, set_period: 0x03 } as const;
export const Lamp = { off: 0, on: 1, blink: 2 } as const;
export const Capability = {
  samples: 1 << 0,
  time_sync: 1 << 1,
  reject_pulse: 1 << 2,
  light_tower: 1 << 3,
  set_period: 1 << 4,
  resend: 1 << 5,
} as const;
export const SAMPLES_FLAG_RESENT = 0x01;

export const MAX_BATCH = 100;
export const MAX_CHANNELS = 32;
export const SAMPLES_HEADER = 22;
export const SAMPLE_SIZE = 10;
const DEVICE_ID = /^[A-Za-z0-9_.-]{1,32}$/;

export interface ChannelInfo {
  id: number;
  /** 0 f32, 1 u32, 2 i32, 3 state. */
  value_type: number;
  /** Nominal period, µs; 0 = on change. */
  period_us: number;
  name: string;
  unit: string;
}

export interface HelloMessage {
  type: "hello";
  /** 0 = unsolicited announcement. */
  req_id: number;
  version: number;
  min_version: number;
  max_version: number;
  fw_major: number;
  fw_minor: number;
  fw_patch: number;
  boot_id: number;
  device_us: number;
  capabilities: number;
  max_packet: number;
  ring_capacity: number;
  window: number;
  ack_timeout_ms: number;
  heartbeat_ms: number;
  device_id: string;
  channels: ChannelInfo[];
}

export interface WireSample {
  channel: number;
  quality: number;
  offset_us: number;
  /** The 4 value bytes as a little-endian u32; read it with the channel's value type (`sampleValue`). */
  raw: number;
}

export interface SamplesMessage {
  type: "samples";
  seq: number;
  oldest: number;
  first_sample: number;
  base_us: number;
  flags: number;
  samples: WireSample[];
}

export interface HeartbeatMessage {
  type: "heartbeat";
  uptime_us: number;
  last_seq: number;
  acked_seq: number;
  samples_produced: number;
  ring_used: number;
  dropped_batches: number;
  dropped_samples: number;
  rx_bad_crc: number;
  rx_errors: number;
}

export interface CmdAckMessage {
  type: "cmd_ack";
  req_id: number;
  command: number;
  status: number;
  device_us: number;
}

export interface TimeSyncReplyMessage {
  type: "time_sync_reply";
  req_id: number;
  host_unix_ms: number;
  device_us: number;
}

export interface ErrorMessage {
  type: "error";
  req_id: number;
  code: number;
  ref_type: number;
  detail: number;
}

export interface HostHelloMessage {
  type: "host_hello";
  req_id: number;
  min_version: number;
  max_version: number;
  host_unix_ms: number;
}

export interface AckMessage {
  type: "ack";
  seq: number;
}

export interface TimeSyncMessage {
  type: "time_sync";
  req_id: number;
  host_unix_ms: number;
}

export type CommandMessage = { type: "command"; req_id: number } & (
  | { command: typeof Command.reject_pulse; duration_ms: number }
  | { command: typeof Command.light_tower; red: number; amber: number; green: number; buzzer: number }
  | { command: typeof Command.set_period; channel: number; period_us: number }
);

export type Message =
  | HelloMessage
  | SamplesMessage
  | HeartbeatMessage
  | CmdAckMessage
  | TimeSyncReplyMessage
  | ErrorMessage
  | HostHelloMessage
  | AckMessage
  | TimeSyncMessage
  | CommandMessage;

/** A packet that passed the CRC but does not parse: too short, a field out of range, bad UTF-8, unknown type. */
export class MalformedPacketError extends Error {
  constructor(
    message: string,
    readonly reason: "malformed" | "unknown_type" = "malformed",
  ) {
    super(message);
    this.name = "MalformedPacketError";
  }
}

// ── reader / writer ──────────────────────────────────────────────────────────────────────────────────────────────

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8enc = new TextEncoder();
const TWO32 = 2 ** 32;

class Reader {
  private off = 0;
  private readonly view: DataView;
  constructor(
    private readonly p: Uint8Array,
    start: number,
  ) {
    this.view = new DataView(p.buffer, p.byteOffset, p.byteLength);
    this.off = start;
  }
  private need(n: number, what: string): number {
    const at = this.off;
    if (at + n > this.p.length) throw new MalformedPacketError(`body ends before ${what} (offset ${at - 1})`);
    this.off += n;
    return at;
  }
  u8(what: string): number {
    return this.view.getUint8(this.need(1, what));
  }
  u16(what: string): number {
    return this.view.getUint16(this.need(2, what), true);
  }
  u32(what: string): number {
    return this.view.getUint32(this.need(4, what), true);
  }
  u64(what: string): number {
    const at = this.need(8, what);
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    if (hi > 0x1fffff) throw new MalformedPacketError(`${what} exceeds 2^53`);
    return hi * TWO32 + lo;
  }
  str(what: string, max: number, allowEmpty: boolean): string {
    const n = this.u8(`${what} length`);
    if (n > max || (n === 0 && !allowEmpty)) throw new MalformedPacketError(`${what} length ${n} out of range`);
    const at = this.need(n, what);
    try {
      return utf8.decode(this.p.subarray(at, at + n));
    } catch {
      throw new MalformedPacketError(`${what} is not UTF-8`);
    }
  }
}

class Writer {
  readonly buf = new Uint8Array(MAX_PACKET);
  private readonly view = new DataView(this.buf.buffer);
  len = 0;
  private room(n: number): number {
    if (this.len + n > MAX_PACKET) throw new RangeError(`message exceeds ${MAX_PACKET} bytes`);
    const at = this.len;
    this.len += n;
    return at;
  }
  u8(v: number, what: string): void {
    this.view.setUint8(this.room(1), check(v, 0xff, what));
  }
  u16(v: number, what: string): void {
    this.view.setUint16(this.room(2), check(v, 0xffff, what), true);
  }
  u32(v: number, what: string): void {
    this.view.setUint32(this.room(4), check(v, 0xffffffff, what), true);
  }
  u64(v: number, what: string): void {
    const at = this.room(8);
    check(v, Number.MAX_SAFE_INTEGER, what);
    this.view.setUint32(at, v % TWO32, true);
    this.view.setUint32(at + 4, Math.floor(v / TWO32), true);
  }
  str(s: string, max: number, what: string): void {
    const b = utf8enc.encode(s);
    if (b.length > max) throw new RangeError(`${what} is ${b.length} bytes, at most ${max}`);
    this.u8(b.length, what);
    this.buf.set(b, this.room(b.length));
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function check(v: number, max: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} must be an integer in [0, ${max}]`);
  return v;
}

// ── SAMPLES without intermediate objects (the hot path) ──────────────────────────────────────────────────────────

/**
 * Reads a SAMPLES packet in place: header fields, then per-sample accessors. The host's source uses this to turn
 * a batch into RawSamples without building WireSample objects first. `wrap` validates the whole packet once.
 */
export class SamplesView {
  seq = 0;
  oldest = 0;
  first_sample = 0;
  base_us = 0;
  flags = 0;
  count = 0;
  private view: DataView = new DataView(new ArrayBuffer(0));
  private at = 0;

  /** Points the view at `packet` (type byte first). Throws MalformedPacketError. */
  wrap(packet: Uint8Array): this {
    if (packet[0] !== MessageType.samples) throw new MalformedPacketError("not a SAMPLES packet");
    if (packet.length < 1 + SAMPLES_HEADER) throw new MalformedPacketError("SAMPLES body shorter than its header");
    const v = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    this.seq = v.getUint32(1, true);
    this.oldest = v.getUint32(5, true);
    this.first_sample = v.getUint32(9, true);
    const hi = v.getUint32(17, true);
    if (hi > 0x1fffff) throw new MalformedPacketError("base_us exceeds 2^53");
    this.base_us = hi * TWO32 + v.getUint32(13, true);
    this.flags = v.getUint8(21);
    this.count = v.getUint8(22);
    if (this.count === 0 || this.count > MAX_BATCH)
      throw new MalformedPacketError(`SAMPLES count ${this.count} out of 1..${MAX_BATCH}`);
    if (((this.seq - this.oldest) | 0) < 0) throw new MalformedPacketError("SAMPLES oldest is after seq");
    if (packet.length < 1 + SAMPLES_HEADER + this.count * SAMPLE_SIZE)
      throw new MalformedPacketError(`SAMPLES body too short for ${this.count} samples`);
    this.view = v;
    this.at = 1 + SAMPLES_HEADER;
    for (let i = 0; i < this.count; i++)
      if (this.quality(i) > Quality.bad) throw new MalformedPacketError(`sample ${i} has quality ${this.quality(i)}`);
    return this;
  }
  channel(i: number): number {
    return this.view.getUint8(this.at + i * SAMPLE_SIZE);
  }
  quality(i: number): number {
    return this.view.getUint8(this.at + i * SAMPLE_SIZE + 1);
  }
  offsetUs(i: number): number {
    return this.view.getUint32(this.at + i * SAMPLE_SIZE + 2, true);
  }
  raw(i: number): number {
    return this.view.getUint32(this.at + i * SAMPLE_SIZE + 6, true);
  }
  /** The value read as `valueType` (f32, u32, i32 or state). */
  value(i: number, valueType: number): number {
    const o = this.at + i * SAMPLE_SIZE + 6;
    switch (valueType) {
      case ValueType.f32:
        return this.view.getFloat32(o, true);
      case ValueType.i32:
        return this.view.getInt32(o, true);
      default:
        return this.view.getUint32(o, true);
    }
  }
}

const f32scratch = new DataView(new ArrayBuffer(4));

/** A sample's value from its raw bits and the channel's value type. */
export function sampleValue(raw: number, valueType: number): number {
  switch (valueType) {
    case ValueType.f32:
      f32scratch.setUint32(0, raw, true);
      return f32scratch.getFloat32(0, true);
    case ValueType.i32:
      return raw | 0;
    default:
      return raw >>> 0;
  }
}

/** Raw bits of an f32 value (for building SAMPLES in tests and tools). */
export function f32Bits(value: number): number {
  f32scratch.setFloat32(0, value, true);
  return f32scratch.getUint32(0, true);
}

// ── codecs ───────────────────────────────────────────────────────────────────────────────────────────────────────

interface Codec<M extends Message> {
  encode(m: M, w: Writer): void;
  decode(r: Reader, packet: Uint8Array): M;
}
type Codecs = { [K in MessageName]: Codec<Extract<Message, { type: K }>> };

const codecs: Codecs = {
  hello: {
    encode(m, w) {
      if (!DEVICE_ID.test(m.device_id)) throw new RangeError("device_id must be 1-32 of [A-Za-z0-9_.-]");
      if (m.channels.length > MAX_CHANNELS) throw new RangeError(`at most ${MAX_CHANNELS} channels`);
      w.u16(m.req_id, "req_id");
      w.u8(m.version, "version");
      w.u8(m.min_version, "min_version");
      w.u8(m.max_version, "max_version");
      w.u8(m.fw_major, "fw_major");
      w.u8(m.fw_minor, "fw_minor");
      w.u8(m.fw_patch, "fw_patch");
      w.u32(m.boot_id, "boot_id");
      w.u64(m.device_us, "device_us");
      w.u32(m.capabilities, "capabilities");
      w.u16(m.max_packet, "max_packet");
      w.u16(m.ring_capacity, "ring_capacity");
      w.u8(m.window, "window");
      w.u8(0, "reserved");
      w.u16(m.ack_timeout_ms, "ack_timeout_ms");
      w.u16(m.heartbeat_ms, "heartbeat_ms");
      w.str(m.device_id, 32, "device_id");
      w.u8(m.channels.length, "channel_count");
      for (const c of m.channels) {
        w.u8(c.id, "channel id");
        w.u8(check(c.value_type, ValueType.state, "value_type"), "value_type");
        w.u32(c.period_us, "period_us");
        w.str(c.name, 16, "channel name");
        w.str(c.unit, 8, "channel unit");
      }
    },
    decode(r) {
      const m: HelloMessage = {
        type: "hello",
        req_id: r.u16("req_id"),
        version: r.u8("version"),
        min_version: r.u8("min_version"),
        max_version: r.u8("max_version"),
        fw_major: r.u8("fw_major"),
        fw_minor: r.u8("fw_minor"),
        fw_patch: r.u8("fw_patch"),
        boot_id: r.u32("boot_id"),
        device_us: r.u64("device_us"),
        capabilities: r.u32("capabilities"),
        max_packet: r.u16("max_packet"),
        ring_capacity: r.u16("ring_capacity"),
        window: r.u8("window"),
        ack_timeout_ms: 0,
        heartbeat_ms: 0,
        device_id: "",
        channels: [],
      };
      r.u8("reserved");
      m.ack_timeout_ms = r.u16("ack_timeout_ms");
      m.heartbeat_ms = r.u16("heartbeat_ms");
      m.device_id = r.str("device_id", 32, false);
      if (!DEVICE_ID.test(m.device_id))
        throw new MalformedPacketError("device_id has characters outside [A-Za-z0-9_.-]");
      const n = r.u8("channel_count");
      if (n > MAX_CHANNELS) throw new MalformedPacketError(`channel_count ${n} > ${MAX_CHANNELS}`);
      for (let i = 0; i < n; i++) {
        const c: ChannelInfo = {
          id: r.u8("channel id"),
          value_type: r.u8("value_type"),
          period_us: r.u32("period_us"),
          name: r.str("channel name", 16, true),
          unit: r.str("channel unit", 8, true),
        };
        if (c.value_type > ValueType.state)
          throw new MalformedPacketError(`channel ${c.id} value_type ${c.value_type}`);
        m.channels.push(c);
      }
      return m;
    },
  },
  samples: {
    encode(m, w) {
      if (m.samples.length < 1 || m.samples.length > MAX_BATCH) throw new RangeError(`1..${MAX_BATCH} samples`);
      w.u32(m.seq, "seq");
      w.u32(m.oldest, "oldest");
      w.u32(m.first_sample, "first_sample");
      w.u64(m.base_us, "base_us");
      w.u8(m.flags, "flags");
      w.u8(m.samples.length, "count");
      for (const s of m.samples) {
        w.u8(s.channel, "channel");
        w.u8(check(s.quality, Quality.bad, "quality"), "quality");
        w.u32(s.offset_us, "offset_us");
        w.u32(s.raw, "raw");
      }
    },
    decode(_r, packet) {
      const v = new SamplesView().wrap(packet);
      const samples: WireSample[] = new Array(v.count);
      for (let i = 0; i < v.count; i++)
        samples[i] = { channel: v.channel(i), quality: v.quality(i), offset_us: v.offsetUs(i), raw: v.raw(i) };
      return {
        type: "samples",
        seq: v.seq,
        oldest: v.oldest,
        first_sample: v.first_sample,
        base_us: v.base_us,
        flags: v.flags,
        samples,
      };
    },
  },
  heartbeat: {
    encode(m, w) {
      w.u64(m.uptime_us, "uptime_us");
      w.u32(m.last_seq, "last_seq");
      w.u32(m.acked_seq, "acked_seq");
      w.u32(m.samples_produced, "samples_produced");
      w.u16(m.ring_used, "ring_used");
      w.u16(0, "reserved");
      w.u32(m.dropped_batches, "dropped_batches");
      w.u32(m.dropped_samples, "dropped_samples");
      w.u32(m.rx_bad_crc, "rx_bad_crc");
      w.u32(m.rx_errors, "rx_errors");
    },
    decode(r) {
      const uptime_us = r.u64("uptime_us");
      const last_seq = r.u32("last_seq");
      const acked_seq = r.u32("acked_seq");
      const samples_produced = r.u32("samples_produced");
      const ring_used = r.u16("ring_used");
      r.u16("reserved");
      return {
        type: "heartbeat",
        uptime_us,
        last_seq,
        acked_seq,
        samples_produced,
        ring_used,
        dropped_batches: r.u32("dropped_batches"),
        dropped_samples: r.u32("dropped_samples"),
        rx_bad_crc: r.u32("rx_bad_crc"),
        rx_errors: r.u32("rx_errors"),
      };
    },
  },
  cmd_ack: {
    encode(m, w) {
      w.u16(m.req_id, "req_id");
      w.u8(m.command, "command");
      w.u8(m.status, "status");
      w.u64(m.device_us, "device_us");
    },
    decode(r) {
      return {
        type: "cmd_ack",
        req_id: r.u16("req_id"),
        command: r.u8("command"),
        status: r.u8("status"),
        device_us: r.u64("device_us"),
      };
    },
  },
  time_sync_reply: {
    encode(m, w) {
      w.u16(m.req_id, "req_id");
      w.u64(m.host_unix_ms, "host_unix_ms");
      w.u64(m.device_us, "device_us");
    },
    decode(r) {
      return {
        type: "time_sync_reply",
        req_id: r.u16("req_id"),
        host_unix_ms: r.u64("host_unix_ms"),
        device_us: r.u64("device_us"),
      };
    },
  },
  error: {
    encode(m, w) {
      if (m.code === ErrorCode.OK) throw new RangeError("ERROR code must not be 0");
      w.u16(m.req_id, "req_id");
      w.u8(m.code, "code");
      w.u8(m.ref_type, "ref_type");
      w.u16(m.detail, "detail");
    },
    decode(r) {
      const m: ErrorMessage = {
        type: "error",
        req_id: r.u16("req_id"),
        code: r.u8("code"),
        ref_type: r.u8("ref_type"),
        detail: r.u16("detail"),
      };
      if (m.code === ErrorCode.OK) throw new MalformedPacketError("ERROR with code 0");
      return m;
    },
  },
  host_hello: {
    encode(m, w) {
      w.u16(m.req_id, "req_id");
      w.u8(m.min_version, "min_version");
      w.u8(m.max_version, "max_version");
      w.u64(m.host_unix_ms, "host_unix_ms");
    },
    decode(r) {
      const m: HostHelloMessage = {
        type: "host_hello",
        req_id: r.u16("req_id"),
        min_version: r.u8("min_version"),
        max_version: r.u8("max_version"),
        host_unix_ms: r.u64("host_unix_ms"),
      };
      if (m.req_id === 0 || m.min_version > m.max_version) throw new MalformedPacketError("HOST_HELLO fields");
      return m;
    },
  },
  ack: {
    encode(m, w) {
      w.u32(m.seq, "seq");
    },
    decode(r) {
      return { type: "ack", seq: r.u32("seq") };
    },
  },
  time_sync: {
    encode(m, w) {
      w.u16(m.req_id, "req_id");
      w.u64(m.host_unix_ms, "host_unix_ms");
    },
    decode(r) {
      const m: TimeSyncMessage = { type: "time_sync", req_id: r.u16("req_id"), host_unix_ms: r.u64("host_unix_ms") };
      if (m.req_id === 0) throw new MalformedPacketError("TIME_SYNC req_id 0");
      return m;
    },
  },
  command: {
    encode(m, w) {
      w.u16(m.req_id, "req_id");
      w.u8(m.command, "command");
      switch (m.command) {
        case Command.reject_pulse:
          w.u16(m.duration_ms, "duration_ms");
          break;
        case Command.light_tower:
          w.u8(m.red, "red");
          w.u8(m.amber, "amber");
          w.u8(m.green, "green");
          w.u8(m.buzzer, "buzzer");
          break;
        case Command.set_period:
          w.u8(m.channel, "channel");
          w.u32(m.period_us, "period_us");
          break;
        default:
          throw new RangeError(`unknown command ${(m as { command: number }).command}`);
      }
    },
    decode(r) {
      const req_id = r.u16("req_id");
      if (req_id === 0) throw new MalformedPacketError("COMMAND req_id 0");
      const command = r.u8("command");
      switch (command) {
        case Command.reject_pulse:
          return { type: "command", req_id, command, duration_ms: r.u16("duration_ms") };
        case Command.light_tower:
          return {
            type: "command",
            req_id,
            command,
            red: r.u8("red"),
            amber: r.u8("amber"),
            green: r.u8("green"),
            buzzer: r.u8("buzzer"),
          };
        case Command.set_period:
          return { type: "command", req_id, command, channel: r.u8("channel"), period_us: r.u32("period_us") };
        default:
          throw new MalformedPacketError(`unknown command ${command}`);
      }
    },
  },
};

const byCode = new Map<number, MessageName>(
  (Object.entries(MessageType) as [MessageName, number][]).map(([name, code]) => [code, name]),
);

/** Name of the message type carried by `packet`, or undefined for an unknown type. */
export function packetType(packet: Uint8Array): MessageName | undefined {
  return byCode.get(packet[0] ?? -1);
}

/** Encodes a message into its packet (type + body). Throws RangeError for a field out of range. */
export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer();
  w.u8(MessageType[m.type], "type");
  (codecs[m.type] as Codec<Message>).encode(m, w);
  return w.done();
}

/** Decodes a packet (type + body, CRC already checked). Throws MalformedPacketError. */
export function decodeMessage(packet: Uint8Array): Message {
  if (packet.length < 1) throw new MalformedPacketError("empty packet");
  const name = byCode.get(packet[0]!);
  if (name === undefined)
    throw new MalformedPacketError(
      `unknown message type 0x${packet[0]!.toString(16).padStart(2, "0")}`,
      "unknown_type",
    );
  return (codecs[name] as Codec<Message>).decode(new Reader(packet, 1), packet);
}
