import type { Feeds, TypedData } from "./host.js";

/*
 * The shared-memory call channel between the main thread and one model worker (one SharedArrayBuffer per loaded
 * version, one call in flight at a time). Layout:
 *
 *   [0, 64)          header, Int32: STATE (the doorbell both sides wait on), OP, STATUS, COUNT, SEQ, RSEQ, RUN_US, FAULT
 *   [64, DATA)       tensor descriptors, Int32, DESC_INTS each: [index, dtype, rank, byteOffset, elements, dims…]
 *   [DATA, end)      tensor data, every tensor 8-byte aligned (first the request's inputs, then the outputs overwrite
 *                    them: the worker copies the inputs out before it runs)
 *
 * A call: the main thread writes the inputs (descriptors + data), SEQ, OP, then STATE = REQUEST and notifies; the
 * worker (blocked in Atomics.wait on STATE) runs, writes the outputs (or an error text), RSEQ = SEQ, then
 * STATE = DONE and notifies; the main thread (waiting in Atomics.waitAsync, its event loop free) reads the outputs
 * into arrays of its own. Tensors are named by their index in the session's declared inputs/outputs.
 *
 * What does not fit (inputs larger than the data region, an input name the session does not declare, outputs over
 * INLINE_OUT_MAX such as vision masks) travels as a message on a MessagePort beside the channel, received
 * synchronously with receiveMessageOnPort once the doorbell says so; large outputs are transferred, not copied.
 *
 * This file is the main thread's half; the worker's half is the same layout in worker-source.ts.
 */

export const H = {
  STATE: 0,
  OP: 1,
  STATUS: 2,
  COUNT: 3,
  SEQ: 4,
  RSEQ: 5,
  RUN_US: 6,
  FAULT: 7,
} as const;
export const HEADER_BYTES = 64;
export const STATE = { IDLE: 0, REQUEST: 1, DONE: 2 } as const;
/** RUN: inputs in the data region; RUN_PORT: inputs in a port message; CLOSE: release the session and stop. */
export const OP = { RUN: 1, RUN_PORT: 2, CLOSE: 3 } as const;
/** OK: outputs in the data region; OK_PORT: outputs in a port message; ERROR: UTF-8 text in the data region. */
export const STATUS = { OK: 0, OK_PORT: 1, ERROR: 2 } as const;
/** Test-only faults the worker acts on at its next call: exit as if it crashed, or never answer (a stuck run). */
export const FAULT = { NONE: 0, CRASH: 1, HANG: 2 } as const;

export const MAX_RANK = 8;
export const MAX_TENSORS = 32;
export const DESC_INTS = 5 + MAX_RANK;
export const DATA_OFFSET = HEADER_BYTES + MAX_TENSORS * DESC_INTS * 4;
/** Outputs up to this many bytes in all are copied through shared memory; larger ones are transferred. */
export const INLINE_OUT_MAX = 256 * 1024;
/** Data region size bounds: 4 × the batch-1 input bytes, at least the inline output limit, at most 8 MiB. */
export const DATA_MIN = INLINE_OUT_MAX;
export const DATA_MAX = 8 * 1024 * 1024;

type Ctor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedData; BYTES_PER_ELEMENT: number };
/** dtype codes (index = code): the array type and onnxruntime's name of it; the worker gets the same tables. */
export const CTORS: readonly (Ctor | null)[] = [
  null,
  Float32Array,
  Float64Array,
  BigInt64Array,
  Int32Array,
  Uint8Array,
];
export const DTYPES: readonly (string | null)[] = [null, "float32", "float64", "int64", "int32", "uint8"];

export function dtypeCode(d: TypedData): number {
  // exact constructors only: a Buffer (a Uint8Array subclass) or a Uint8ClampedArray takes the port path
  const c = d.constructor;
  for (let i = 1; i < CTORS.length; i++) if (CTORS[i] === c) return i;
  return 0;
}

const align8 = (n: number) => (n + 7) & ~7;

/** The main thread's views of one channel. */
export class ChannelViews {
  readonly header: Int32Array;
  readonly desc: Int32Array;
  readonly capacity: number;
  private readonly views: (TypedData | null)[];
  private readonly bytes: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.desc = new Int32Array(sab, HEADER_BYTES, MAX_TENSORS * DESC_INTS);
    this.capacity = sab.byteLength - DATA_OFFSET;
    this.views = CTORS.map((C) =>
      C ? new C(sab, DATA_OFFSET, Math.floor(this.capacity / C.BYTES_PER_ELEMENT)) : null,
    );
    this.bytes = new Uint8Array(sab, DATA_OFFSET, this.capacity);
  }

  /**
   * Writes the inputs into the data region; returns false (nothing usable written) when they do not fit: an input
   * the session does not declare, an array type without a code, a rank over MAX_RANK, or too many bytes.
   */
  writeFeeds(feeds: Feeds, inputIndex: ReadonlyMap<string, number>): boolean {
    let n = 0;
    let off = 0;
    for (const name in feeds) {
      const t = feeds[name]!;
      const index = inputIndex.get(name);
      const code = dtypeCode(t.data);
      const bytes = t.data.byteLength;
      if (index === undefined || code === 0 || t.dims.length > MAX_RANK || n >= MAX_TENSORS) return false;
      if (off + bytes > this.capacity) return false;
      const d = n * DESC_INTS;
      const desc = this.desc;
      desc[d] = index;
      desc[d + 1] = code;
      desc[d + 2] = t.dims.length;
      desc[d + 3] = off;
      desc[d + 4] = t.data.length;
      for (let k = 0; k < t.dims.length; k++) desc[d + 5 + k] = t.dims[k]!;
      (this.views[code] as Float32Array).set(t.data as Float32Array, off / CTORS[code]!.BYTES_PER_ELEMENT);
      off = align8(off + bytes);
      n++;
    }
    this.header[H.COUNT] = n;
    return true;
  }

  /** Reads the outputs the worker wrote into fresh arrays (the region is reused by the next call). */
  readOutputs(names: readonly string[]): Feeds {
    const out: Feeds = {};
    const n = this.header[H.COUNT]!;
    const desc = this.desc;
    for (let i = 0; i < n; i++) {
      const d = i * DESC_INTS;
      const code = desc[d + 1]!;
      const rank = desc[d + 2]!;
      const C = CTORS[code]!;
      const start = desc[d + 3]! / C.BYTES_PER_ELEMENT;
      const dims: number[] = new Array(rank);
      for (let k = 0; k < rank; k++) dims[k] = desc[d + 5 + k]!;
      // slice() of a shared view makes an ordinary (non-shared) array of the same type
      out[names[desc[d]!]!] = { data: this.views[code]!.slice(start, start + desc[d + 4]!) as TypedData, dims };
    }
    return out;
  }

  /** The error text the worker wrote (COUNT bytes of UTF-8). */
  readError(): string {
    const len = Math.min(this.header[H.COUNT]!, this.capacity);
    return new TextDecoder().decode(this.bytes.slice(0, len));
  }
}

/** Size of the data region for a session whose batch-1 inputs take `inputBytes`. */
export function dataBytes(inputBytes: number): number {
  return Math.min(DATA_MAX, Math.max(DATA_MIN, align8(4 * inputBytes)));
}
