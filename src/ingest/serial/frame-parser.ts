import { cobsDecodeInto, cobsEncodeInto, cobsMaxEncoded } from "./cobs.js";
import { crc16 } from "./crc16.js";

/*
 * Layer (a) of the serial protocol: bytes → checked packets. A frame on the wire is
 * `0x00 COBS(packet ‖ crc16_le(packet)) 0x00` (PROTOCOL.md §1). The parser collects bytes up to each 0x00, decodes,
 * checks the CRC and hands out the packet; anything that fails is counted and dropped, and parsing carries on after
 * that delimiter (a resync). It never throws on input and never holds more than one encoded frame.
 */

/** Largest packet (type + body). */
export const MAX_PACKET = 1024;
export const CRC_LEN = 2;
/** Largest encoded frame between two delimiters; more without a delimiter is an oversize frame. */
export const MAX_ENCODED = cobsMaxEncoded(MAX_PACKET + CRC_LEN);
/** Largest frame on the wire, both delimiters included. */
export const MAX_FRAME = MAX_ENCODED + 2;

/** Counters of the parser, for health and metrics. */
export interface ParserStats {
  bytes_in: number;
  frames_ok: number;
  bad_crc: number;
  /** COBS errors and frames shorter than type + CRC. */
  malformed: number;
  oversize: number;
  /** Times bytes were dropped and parsing restarted at the next delimiter (one per failed frame or oversize run). */
  resyncs: number;
  /** Bytes dropped by failed frames and oversize runs. */
  bytes_discarded: number;
}

/**
 * Receives a checked packet (type + body, CRC removed). The array is a view into the parser's scratch buffer, valid
 * only until the callback returns: copy what must outlive it.
 */
export type PacketHandler = (packet: Uint8Array) => void;

export class FrameParser {
  readonly stats: ParserStats = {
    bytes_in: 0,
    frames_ok: 0,
    bad_crc: 0,
    malformed: 0,
    oversize: 0,
    resyncs: 0,
    bytes_discarded: 0,
  };
  private readonly buf = new Uint8Array(MAX_ENCODED);
  private len = 0;
  private discarding = false;
  private readonly out = new Uint8Array(MAX_ENCODED);

  constructor(private readonly onPacket: PacketHandler) {}

  /** Feeds received bytes; calls the handler once per valid frame, in order. */
  push(chunk: Uint8Array): void {
    this.stats.bytes_in += chunk.length;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      const z = chunk.indexOf(0, i);
      const end = z < 0 ? n : z;
      if (this.discarding) {
        this.stats.bytes_discarded += end - i;
      } else if (this.len === 0 && z >= 0 && end - i <= MAX_ENCODED) {
        // The whole frame is inside this chunk: decode straight from it, no copy.
        if (end > i) this.finish(chunk, i, end);
      } else if (this.len + (end - i) > MAX_ENCODED) {
        this.stats.oversize++;
        this.stats.bytes_discarded += this.len + (end - i);
        this.len = 0;
        this.discarding = true;
      } else {
        this.buf.set(chunk.subarray(i, end), this.len);
        this.len += end - i;
        if (z >= 0) {
          const len = this.len;
          this.len = 0;
          this.finish(this.buf, 0, len);
        }
      }
      if (z < 0) break;
      if (this.discarding) {
        this.discarding = false;
        this.stats.resyncs++;
      }
      i = z + 1;
    }
  }

  /** Drops a partial frame (e.g. after reconnecting: its start belonged to the old link). */
  reset(): void {
    if (this.len > 0) this.stats.bytes_discarded += this.len;
    this.len = 0;
    this.discarding = false;
  }

  private finish(src: Uint8Array, start: number, end: number): void {
    const n = cobsDecodeInto(src, start, end, this.out);
    if (n < CRC_LEN + 1) {
      this.stats.malformed++;
      this.stats.resyncs++;
      this.stats.bytes_discarded += end - start;
      return;
    }
    const crc = this.out[n - 2]! | (this.out[n - 1]! << 8);
    if (crc16(this.out, 0, n - 2) !== crc) {
      this.stats.bad_crc++;
      this.stats.resyncs++;
      this.stats.bytes_discarded += end - start;
      return;
    }
    this.stats.frames_ok++;
    this.onPacket(this.out.subarray(0, n - 2));
  }
}

/** Wraps a packet into a frame as it goes on the wire: `0x00 COBS(packet ‖ crc16_le) 0x00`. */
export function encodeFrame(packet: Uint8Array): Uint8Array {
  if (packet.length < 1 || packet.length > MAX_PACKET)
    throw new RangeError(`packet must be 1..${MAX_PACKET} bytes, got ${packet.length}`);
  const tmp = new Uint8Array(packet.length + CRC_LEN);
  tmp.set(packet);
  const crc = crc16(packet);
  tmp[packet.length] = crc & 0xff;
  tmp[packet.length + 1] = crc >> 8;
  const out = new Uint8Array(cobsMaxEncoded(tmp.length) + 2);
  out[0] = 0;
  const end = cobsEncodeInto(tmp, tmp.length, out, 1);
  out[end] = 0;
  return out.subarray(0, end + 1);
}
