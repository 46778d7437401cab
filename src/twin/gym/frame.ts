import { endianness } from "node:os";
import { GymError, type GymErrorCode } from "./errors.js";

/*
 * Wire framing of the gym protocol (PROTOCOL.md, "Framing"): every message, both ways, is
 *
 *   "GLGY"  u32 LE header_len  u32 LE body_len  header (UTF-8 JSON object)  body (raw arrays)
 *
 * The header's `arrays` lists the body's arrays in order as {name, dtype, shape}; dtypes are numpy type strings
 * ("<f4", "<f8", "<i4", "|u1") so Python reads them with np.frombuffer or array.array, no custom parser. The magic
 * lets the reader resynchronise after garbage: it skips to the next "GLGY" and reports the skip once.
 */

export const MAGIC = Buffer.from("GLGY", "ascii");
export const PREFIX_BYTES = 12;
/** Largest header and body the reader accepts; a larger length is taken for garbage and resynchronised past. */
export const MAX_HEADER_BYTES = 1 << 20;
export const MAX_BODY_BYTES = 1 << 28;

export type DType = "<f4" | "<f8" | "<i4" | "|u1";
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

const ITEM_BYTES: Record<DType, number> = { "<f4": 4, "<f8": 8, "<i4": 4, "|u1": 1 };
const LITTLE_ENDIAN_HOST = endianness() === "LE";

export interface WireArray {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** At least product(shape) elements; only those are sent. */
  data: TypedArray;
}

export interface Frame {
  header: Record<string, unknown>;
  /** A view into the reader's buffer: valid until the next `push`. */
  body: Buffer;
}

export type ParseResult = { frame: Frame } | { error: { code: GymErrorCode; message: string } };

export function dtypeOf(a: TypedArray): DType {
  if (a instanceof Float32Array) return "<f4";
  if (a instanceof Float64Array) return "<f8";
  if (a instanceof Int32Array) return "<i4";
  return "|u1";
}

/**
 * Encodes one frame. `header.arrays` is filled from `arrays`. The header is padded with spaces so the body starts
 * on an 8-byte boundary of the frame (a reader that keeps the frame in one buffer gets aligned arrays).
 */
export function encodeFrame(header: Record<string, unknown>, arrays: readonly WireArray[] = []): Buffer {
  const h = arrays.length
    ? { ...header, arrays: arrays.map((a) => ({ name: a.name, dtype: a.dtype, shape: a.shape })) }
    : header;
  const json = JSON.stringify(h);
  let hlen = Buffer.byteLength(json, "utf8");
  const pad = (8 - ((PREFIX_BYTES + hlen) % 8)) % 8;
  hlen += pad;
  let blen = 0;
  const sizes = arrays.map((a) => {
    const count = a.shape.reduce((x, y) => x * y, 1);
    if (a.data.length < count) throw new RangeError(`array ${a.name}: ${a.data.length} elements for shape ${a.shape}`);
    const bytes = count * ITEM_BYTES[a.dtype];
    blen += bytes;
    return bytes;
  });
  const out = Buffer.allocUnsafe(PREFIX_BYTES + hlen + blen);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(hlen, 4);
  out.writeUInt32LE(blen, 8);
  let off = PREFIX_BYTES + out.write(json, PREFIX_BYTES, "utf8");
  out.fill(0x20, off, off + pad);
  off += pad;
  arrays.forEach((a, k) => {
    const bytes = sizes[k]!;
    const src = Buffer.from(a.data.buffer, a.data.byteOffset, bytes);
    src.copy(out, off);
    if (!LITTLE_ENDIAN_HOST) swap(out.subarray(off, off + bytes), ITEM_BYTES[a.dtype]);
    off += bytes;
  });
  return out;
}

/**
 * Decodes the arrays a frame's header lists from its body into fresh (aligned) typed arrays.
 * @throws GymError("bad_body") when the descriptors are malformed or do not add up to the body's length.
 */
export function decodeArrays(frame: Frame): Map<string, { dtype: DType; shape: number[]; data: TypedArray }> {
  const out = new Map<string, { dtype: DType; shape: number[]; data: TypedArray }>();
  const list = frame.header.arrays;
  if (list === undefined) {
    if (frame.body.length) throw new GymError("bad_body", `a ${frame.body.length}-byte body but no header.arrays`);
    return out;
  }
  if (!Array.isArray(list)) throw new GymError("bad_body", "header.arrays must be a list of {name, dtype, shape}");
  let off = 0;
  for (const [k, d] of list.entries()) {
    const { name, dtype, shape } = (d ?? {}) as { name?: unknown; dtype?: unknown; shape?: unknown };
    if (typeof name !== "string" || !name) throw new GymError("bad_body", `header.arrays[${k}].name must be a string`);
    if (typeof dtype !== "string" || !(dtype in ITEM_BYTES)) {
      throw new GymError(
        "bad_body",
        `header.arrays[${k}] (${name}): dtype must be one of ${Object.keys(ITEM_BYTES).join(", ")}, got ${JSON.stringify(dtype)}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((x) => Number.isInteger(x) && x >= 0 && x <= MAX_BODY_BYTES)) {
      throw new GymError("bad_body", `header.arrays[${k}] (${name}): shape must be a list of integers >= 0`);
    }
    const count = (shape as number[]).reduce((x, y) => x * y, 1);
    const bytes = count * ITEM_BYTES[dtype as DType];
    if (off + bytes > frame.body.length) {
      throw new GymError(
        "bad_body",
        `header.arrays[${k}] (${name}) needs bytes ${off}..${off + bytes} but the body has ${frame.body.length}`,
      );
    }
    const data = allocate(dtype as DType, count);
    const view = Buffer.from(data.buffer, data.byteOffset, bytes);
    frame.body.copy(view, 0, off, off + bytes);
    if (!LITTLE_ENDIAN_HOST) swap(view, ITEM_BYTES[dtype as DType]);
    out.set(name, { dtype: dtype as DType, shape: shape as number[], data });
    off += bytes;
  }
  if (off !== frame.body.length) {
    throw new GymError("bad_body", `header.arrays describe ${off} bytes but the body has ${frame.body.length}`);
  }
  return out;
}

function allocate(dtype: DType, count: number): TypedArray {
  switch (dtype) {
    case "<f4":
      return new Float32Array(count);
    case "<f8":
      return new Float64Array(count);
    case "<i4":
      return new Int32Array(count);
    case "|u1":
      return new Uint8Array(count);
  }
}

function swap(b: Buffer, size: number): void {
  if (size === 4) b.swap32();
  else if (size === 8) b.swap64();
}

/**
 * Incremental frame reader over a byte stream (stdin, a child's stdout). `push` bytes as they come, then call
 * `next` until it returns undefined. Garbage before a frame is skipped to the next magic and reported once per run
 * of garbage; an absurd length is reported and skipped the same way; a header that is not a JSON object with a
 * string `type` is reported and its frame consumed.
 */
export class FrameReader {
  private buf: Buffer;
  private start = 0;
  private end = 0;
  private skipping = false;

  constructor(
    initialCapacity = 64 * 1024,
    private readonly maxHeader = MAX_HEADER_BYTES,
    private readonly maxBody = MAX_BODY_BYTES,
  ) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  /** Bytes received and not yet consumed (a partial frame at EOF means the peer was cut off mid-message). */
  get buffered(): number {
    return this.end - this.start;
  }

  push(chunk: Buffer): void {
    const need = this.end - this.start + chunk.length;
    if (this.end + chunk.length > this.buf.length) {
      if (need > this.buf.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
        this.buf.copy(grown, 0, this.start, this.end);
        this.buf = grown;
      } else this.buf.copy(this.buf, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  next(): ParseResult | undefined {
    for (;;) {
      const avail = this.end - this.start;
      if (avail < MAGIC.length) return undefined;
      if (this.buf.compare(MAGIC, 0, MAGIC.length, this.start, this.start + MAGIC.length) !== 0) {
        const at = this.buf.subarray(this.start, this.end).indexOf(MAGIC, 1);
        const skipped = at >= 0 ? at : avail - (MAGIC.length - 1);
        this.start += skipped;
        if (this.skipping) continue;
        this.skipping = true;
        return {
          error: {
            code: "bad_magic",
            message: `skipped ${skipped} byte(s) that do not start a frame; every message starts with "GLGY", u32 LE header length, u32 LE body length`,
          },
        };
      }
      if (avail < PREFIX_BYTES) return undefined;
      const hlen = this.buf.readUInt32LE(this.start + 4);
      const blen = this.buf.readUInt32LE(this.start + 8);
      if (hlen > this.maxHeader || blen > this.maxBody) {
        this.start += MAGIC.length;
        this.skipping = true;
        return {
          error: {
            code: "frame_too_large",
            message: `frame declares a ${hlen}-byte header and a ${blen}-byte body (limits ${this.maxHeader} and ${this.maxBody}); skipped it as garbage`,
          },
        };
      }
      const total = PREFIX_BYTES + hlen + blen;
      if (avail < total) return undefined;
      const h0 = this.start + PREFIX_BYTES;
      const text = this.buf.toString("utf8", h0, h0 + hlen);
      const body = this.buf.subarray(h0 + hlen, h0 + hlen + blen);
      this.start += total;
      this.skipping = false;
      if (this.start === this.end) this.start = this.end = 0;
      let header: unknown;
      try {
        header = JSON.parse(text);
      } catch (err) {
        return { error: { code: "bad_header", message: `header is not valid JSON: ${(err as Error).message}` } };
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        return { error: { code: "bad_header", message: "header must be a JSON object" } };
      }
      if (typeof (header as { type?: unknown }).type !== "string") {
        return { error: { code: "bad_header", message: 'header needs a string "type" (hello, reset, step, close)' } };
      }
      return { frame: { header: header as Record<string, unknown>, body } };
    }
  }
}
