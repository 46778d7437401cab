import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { endianness } from "node:os";

/*
 * NumPy `.npy` files (format version 1.0, little-endian, C order), written and read without numpy: the dataset
 * writer's output format and the reader the daemon's tests use on golden files.
 *
 * Layout: magic "\x93NUMPY", version bytes 1 0, a uint16 LE header length, then an ASCII Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (n, m), }` padded with spaces and ended by "\n" so that the
 * data starts at a multiple of 64 bytes, then the raw array data. The reader also accepts versions 2.0 and 3.0
 * (uint32 header length) and big-endian files of the same dtypes (byte-swapped on read); it refuses Fortran order,
 * object arrays and dtypes outside the six below.
 */

/** The dtypes glassd writes and reads. */
export type NpyDtype = "float32" | "float64" | "int64" | "int32" | "uint8" | "uint16";
export const NPY_DTYPES: readonly NpyDtype[] = ["float32", "float64", "int64", "int32", "uint8", "uint16"];

/** Typed array of each dtype (int64 is a BigInt64Array). */
export interface NpyDataOf {
  float32: Float32Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
}
export type NpyData = NpyDataOf[NpyDtype];

/** An array as stored in a `.npy` file: row-major data with its shape. */
export interface NpyArray<D extends NpyDtype = NpyDtype> {
  dtype: D;
  shape: number[];
  data: NpyDataOf[D];
}

/** A file that is not a `.npy` this module can read; the message says what is wrong. */
export class NpyError extends Error {
  constructor(
    message: string,
    readonly source = "npy",
  ) {
    super(`${source}: ${message}`);
    this.name = "NpyError";
  }
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
const ALIGN = 64;

const DESCR: Record<NpyDtype, string> = {
  float32: "<f4",
  float64: "<f8",
  int64: "<i8",
  int32: "<i4",
  uint8: "|u1",
  uint16: "<u2",
};
const SIZE: Record<NpyDtype, number> = { float32: 4, float64: 8, int64: 8, int32: 4, uint8: 1, uint16: 2 };

/** The dtype of a typed array, or undefined for one npy.ts does not write. */
export function dtypeOf(data: ArrayBufferView): NpyDtype | undefined {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Uint16Array) return "uint16";
  return undefined;
}

function checkHost(): void {
  // Typed arrays use the host's byte order; every platform Node 20 ships for is little-endian.
  if (endianness() !== "LE") throw new NpyError("only little-endian hosts are supported");
}

function checkShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new RangeError(`npy: shape ${JSON.stringify(shape)} has a bad dimension`);
    n *= d;
  }
  return n;
}

function shapeText(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(", ")})`;
}

/**
 * The header (magic through the newline) of a `.npy` v1.0 file. `minBytes` pads it to at least that many bytes
 * (rounded up to a multiple of 64) so a streaming writer can rewrite the shape in place once it is known.
 */
export function npyHeader(dtype: NpyDtype, shape: readonly number[], minBytes = 0): Buffer {
  checkShape(shape);
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText(shape)}, }`;
  const fixed = MAGIC.length + 2 + 2;
  let total = Math.ceil((fixed + dict.length + 1) / ALIGN) * ALIGN;
  if (minBytes > total) total = Math.ceil(minBytes / ALIGN) * ALIGN;
  const headerLen = total - fixed;
  if (headerLen > 0xffff) throw new RangeError("npy: header longer than version 1.0 allows");
  const out = Buffer.alloc(total, 0x20);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(headerLen, 8);
  out.write(dict, fixed, "latin1");
  out[total - 1] = 0x0a;
  return out;
}

function bytesOf(data: ArrayBufferView): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A whole `.npy` file in memory. `shape` defaults to 1-D; its product must equal `data.length`. */
export function encodeNpy(data: NpyData, shape: readonly number[] = [data.length]): Buffer {
  checkHost();
  const dtype = dtypeOf(data);
  if (!dtype) throw new TypeError("npy: data must be a Float32/Float64/BigInt64/Int32/Uint8/Uint16 array");
  const n = checkShape(shape);
  if (n !== data.length) {
    throw new RangeError(`npy: shape ${JSON.stringify(shape)} holds ${n} elements, data has ${data.length}`);
  }
  return Buffer.concat([npyHeader(dtype, shape), bytesOf(data)]);
}

/** Writes `data` with `shape` (default 1-D) to `path` as a `.npy` v1.0 file. */
export function writeNpy(path: string, data: NpyData, shape: readonly number[] = [data.length]): void {
  writeFileSync(path, encodeNpy(data, shape));
}

/** `numbers` (ms timestamps, ids) as int64; each must be a safe integer. */
export function int64From(numbers: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(numbers.length);
  for (let i = 0; i < numbers.length; i++) {
    const v = numbers[i]!;
    if (!Number.isSafeInteger(v)) throw new RangeError(`npy: int64 element ${i} is not a safe integer: ${v}`);
    out[i] = BigInt(v);
  }
  return out;
}

/** Header room of a streamed file: enough for any shape of up to 6 dimensions of 15 digits. */
const STREAM_HEADER_BYTES = 256;
const FLUSH_BYTES = 1 << 20;

/**
 * Appends rows to a `.npy` file whose first dimension is not known in advance: the header is written with room to
 * spare, rows are buffered and written in 1 MiB chunks, and `close()` rewrites the header with the final row count.
 * A file not closed has a header claiming 0 rows (numpy reads it as an empty array, never as garbage).
 */
export class NpyWriter<D extends NpyDtype = NpyDtype> {
  readonly dtype: D;
  /** Shape of one row (the dimensions after the first). */
  readonly rowShape: readonly number[];
  private readonly rowElems: number;
  private fd: number;
  private rows = 0;
  private buf: Buffer;
  private used = 0;

  constructor(
    readonly path: string,
    dtype: D,
    rowShape: readonly number[] = [],
  ) {
    checkHost();
    this.dtype = dtype;
    this.rowShape = rowShape.slice();
    this.rowElems = checkShape(rowShape);
    this.buf = Buffer.allocUnsafe(FLUSH_BYTES);
    this.fd = openSync(path, "w");
    writeSync(this.fd, npyHeader(dtype, [0, ...rowShape], STREAM_HEADER_BYTES));
  }

  /** Rows written so far. */
  get length(): number {
    return this.rows;
  }

  /** Appends whole rows: `data.length` must be a multiple of the row size and `data` of this writer's dtype. */
  append(data: NpyDataOf[D]): void {
    if (this.fd < 0) throw new Error(`npy: ${this.path} is closed`);
    if (dtypeOf(data) !== this.dtype) throw new TypeError(`npy: ${this.path} takes ${this.dtype} data`);
    if (this.rowElems === 0 ? data.length !== 0 : data.length % this.rowElems !== 0) {
      throw new RangeError(`npy: ${data.length} elements are not whole rows of ${this.rowElems}`);
    }
    const bytes = bytesOf(data);
    if (this.used + bytes.length > this.buf.length) this.flush();
    if (bytes.length > this.buf.length) writeSync(this.fd, bytes);
    else {
      bytes.copy(this.buf, this.used);
      this.used += bytes.length;
    }
    this.rows += this.rowElems === 0 ? 0 : data.length / this.rowElems;
  }

  /** Appends one scalar row of a 1-D writer (number for every dtype but int64, which also takes a number). */
  push(value: number): void {
    if (this.rowElems !== 1) throw new RangeError("npy: push() is for 1-D writers");
    if (this.used + SIZE[this.dtype] > this.buf.length) this.flush();
    const b = this.buf;
    const o = this.used;
    switch (this.dtype) {
      case "float32":
        b.writeFloatLE(value, o);
        break;
      case "float64":
        b.writeDoubleLE(value, o);
        break;
      case "int64":
        b.writeBigInt64LE(BigInt(value), o);
        break;
      case "int32":
        b.writeInt32LE(value, o);
        break;
      case "uint8":
        b.writeUInt8(value, o);
        break;
      case "uint16":
        b.writeUInt16LE(value, o);
        break;
    }
    this.used += SIZE[this.dtype];
    this.rows++;
  }

  private flush(): void {
    if (this.used > 0) writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }

  /** Writes what is buffered, fixes the header's row count and closes the file. Returns the final shape. */
  close(): number[] {
    const shape = [this.rows, ...this.rowShape];
    if (this.fd < 0) return shape;
    this.flush();
    writeSync(this.fd, npyHeader(this.dtype, shape, STREAM_HEADER_BYTES), 0, STREAM_HEADER_BYTES, 0);
    closeSync(this.fd);
    this.fd = -1;
    return shape;
  }
}

// --- reading ---

const FROM_DESCR = new Map<string, { dtype: NpyDtype; swap: boolean }>();
for (const d of NPY_DTYPES) {
  const le = DESCR[d];
  FROM_DESCR.set(le, { dtype: d, swap: false });
  if (le[0] === "<") {
    FROM_DESCR.set(`>${le.slice(1)}`, { dtype: d, swap: true });
    FROM_DESCR.set(`=${le.slice(1)}`, { dtype: d, swap: false });
  } else {
    FROM_DESCR.set(`<${le.slice(1)}`, { dtype: d, swap: false });
    FROM_DESCR.set(`>${le.slice(1)}`, { dtype: d, swap: false });
    FROM_DESCR.set(`=${le.slice(1)}`, { dtype: d, swap: false });
  }
}

function parseHeader(text: string, source: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape)
    throw new NpyError(`header is not a dict with descr, fortran_order, shape: ${text.trim()}`, source);
  const dims = shape[1]!
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const n = Number(s.replace(/L$/, ""));
      if (!Number.isSafeInteger(n) || n < 0) throw new NpyError(`bad shape (${shape[1]})`, source);
      return n;
    });
  return { descr: descr[1]!, fortran: fortran[1] === "True", shape: dims };
}

/** Parses a `.npy` file held in memory. The data is copied into a fresh, aligned typed array. */
export function decodeNpy(bytes: Uint8Array, source = "npy"): NpyArray {
  checkHost();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new NpyError("not a .npy file (bad magic)", source);
  const major = buf[6]!;
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new NpyError("truncated header", source);
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else throw new NpyError(`unsupported format version ${major}.${buf[7]}`, source);
  if (start + headerLen > buf.length) throw new NpyError("truncated header", source);
  const header = parseHeader(buf.toString(major === 3 ? "utf8" : "latin1", start, start + headerLen), source);
  const kind = FROM_DESCR.get(header.descr);
  if (!kind) throw new NpyError(`unsupported dtype '${header.descr}'; readable: ${NPY_DTYPES.join(", ")}`, source);
  if (header.fortran) throw new NpyError("Fortran-ordered arrays are not supported (save with C order)", source);
  const n = header.shape.reduce((a, b) => a * b, 1);
  const size = SIZE[kind.dtype];
  const offset = start + headerLen;
  if (buf.length - offset < n * size) {
    throw new NpyError(
      `data truncated: shape (${header.shape.join(", ")}) needs ${n * size} bytes, file has ${buf.length - offset}`,
      source,
    );
  }
  const copy = new Uint8Array(n * size);
  copy.set(buf.subarray(offset, offset + n * size));
  if (kind.swap && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  const ab = copy.buffer;
  const data: NpyData =
    kind.dtype === "float32"
      ? new Float32Array(ab)
      : kind.dtype === "float64"
        ? new Float64Array(ab)
        : kind.dtype === "int64"
          ? new BigInt64Array(ab)
          : kind.dtype === "int32"
            ? new Int32Array(ab)
            : kind.dtype === "uint16"
              ? new Uint16Array(ab)
              : copy;
  return { dtype: kind.dtype, shape: header.shape, data } as NpyArray;
}

/** Reads a `.npy` file. @throws NpyError naming the file when it is not a supported `.npy`. */
export function readNpy(path: string): NpyArray {
  return decodeNpy(readFileSync(path), path);
}

/**
 * Reads a `.npy` file and checks its dtype (and shape, when given; -1 matches any size in that dimension).
 * @throws NpyError naming the file and the mismatch.
 */
export function readNpyAs<D extends NpyDtype>(path: string, dtype: D, shape?: readonly number[]): NpyArray<D> {
  const a = readNpy(path);
  if (a.dtype !== dtype) throw new NpyError(`dtype is ${a.dtype}, expected ${dtype}`, path);
  if (shape && (shape.length !== a.shape.length || shape.some((d, i) => d !== -1 && d !== a.shape[i]))) {
    throw new NpyError(`shape is (${a.shape.join(", ")}), expected (${shape.join(", ")})`, path);
  }
  return a as NpyArray<D>;
}

/** int64 data as numbers (ms timestamps, ids); throws RangeError for a value beyond ±2^53. */
export function int64ToNumbers(data: BigInt64Array): Float64Array {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]!);
    if (!Number.isSafeInteger(v)) throw new RangeError(`npy: int64 element ${i} exceeds 2^53`);
    out[i] = v;
  }
  return out;
}
