import * as ort from "onnxruntime-node";
import { WorkerSession } from "./worker-session.js";

/*
 * Where an ONNX Runtime session lives. Two hosts, one interface:
 *
 * - "worker" (default): every loaded model version gets its own worker thread holding its one session; retiring
 *   the version releases the session and terminates the worker. onnxruntime-node leaks native memory on every
 *   session create/release (microsoft/onnxruntime#25325); measured here with a 2.6 MB vision model: +48 MB RSS over
 *   50 in-process swaps, ~0 (noise, ±15 MB) when each version lives and dies with its own worker
 *   (bench/inference.ts prints both). Calls go through shared memory (channel.ts, worker-session.ts): the inputs
 *   are written once into a SharedArrayBuffer, the worker (asleep in Atomics.wait) runs the session synchronously
 *   and writes the outputs back; the main thread waits with Atomics.waitAsync. A call costs two thread wake-ups
 *   and the copies (≈ 10–13 µs, forecaster ≈ 21 µs, on the loaded 2-core box) instead of two postMessage round
 *   trips and an event-loop turn in the worker (≈ 30–60 µs).
 * - "inline": the session in the main thread (no hop; for tools and for the bench's baseline).
 *
 * Both take and return typed arrays (`Feeds`); each returned array is the caller's own.
 */

export type TypedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/** One tensor: row-major data and its dimensions. */
export interface TensorData {
  data: TypedData;
  dims: readonly number[];
}
export type Feeds = Record<string, TensorData>;

/** A session's declared inputs/outputs as ONNX Runtime reads them from the model (symbolic dims as -1). */
export interface SessionIo {
  inputs: { name: string; type: string; shape: number[] }[];
  outputs: { name: string; type: string; shape: number[] }[];
}

export type Isolation = "worker" | "inline";

export interface SessionOptions {
  /** Intra-op threads of this session (default 1: a 2-core box runs several models and the event loop). */
  threads: number;
  isolation: Isolation;
  /** Worker isolation: a call not answered within this many ms ends the worker (default 30 s). */
  hangMs?: number;
  /** Worker isolation: use onnxruntime's public (async) API in the worker, the fallback path (tests). */
  publicApi?: boolean;
}

const DEFAULT_HANG_MS = 30_000;

/** A live session. `run` calls may overlap; the caller (ModelInstance's queue) serialises them. */
export interface ModelSession {
  readonly io: SessionIo;
  readonly isolation: Isolation;
  run(feeds: Feeds): Promise<Feeds>;
  /** Releases the session (and ends its worker). Idempotent. */
  close(): Promise<void>;
  /** Set when the session died underneath (worker crashed): every later run fails with it. */
  readonly dead: Error | undefined;
}

const TYPE_OF: Record<string, ort.Tensor.Type> = {
  Float32Array: "float32",
  Float64Array: "float64",
  BigInt64Array: "int64",
  Int32Array: "int32",
  Uint8Array: "uint8",
};

function dimsOf(shape: ReadonlyArray<number | string>): number[] {
  return shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1));
}

function ioOf(s: ort.InferenceSession): SessionIo {
  const one = (m: ort.InferenceSession.ValueMetadata) =>
    m.isTensor
      ? { name: m.name, type: m.type as string, shape: dimsOf(m.shape) }
      : { name: m.name, type: "non-tensor", shape: [] };
  return { inputs: s.inputMetadata.map(one), outputs: s.outputMetadata.map(one) };
}

/** The options every session gets (the bench and the tests build their bare baseline with the same). */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  };
}

function toOrtFeeds(feeds: Feeds): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    const type = TYPE_OF[t.data.constructor.name];
    if (!type) throw new TypeError(`input ${name}: unsupported array type ${t.data.constructor.name}`);
    out[name] = new ort.Tensor(type, t.data as ort.Tensor.DataType, t.dims as number[]);
  }
  return out;
}

function fromOrt(out: ort.InferenceSession.ReturnType): Feeds {
  const res: Feeds = {};
  for (const [name, t] of Object.entries(out)) res[name] = { data: t.data as TypedData, dims: [...t.dims] };
  return res;
}

class InlineSession implements ModelSession {
  readonly isolation = "inline" as const;
  readonly dead = undefined;
  private closed = false;
  constructor(
    private readonly s: ort.InferenceSession,
    readonly io: SessionIo,
  ) {}
  async run(feeds: Feeds): Promise<Feeds> {
    if (this.closed) throw new Error("session is closed");
    return fromOrt(await this.s.run(toOrtFeeds(feeds)));
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.s.release();
  }
}

/** Creates a session from the model's bytes (the same bytes whose sha256 was checked: no second read). */
export async function openSession(bytes: Uint8Array, opts: SessionOptions): Promise<ModelSession> {
  const options = sessionOptions(opts.threads);
  if (opts.isolation === "inline") {
    const s = await ort.InferenceSession.create(bytes, options);
    return new InlineSession(s, ioOf(s));
  }
  return WorkerSession.open(bytes, options, opts.hangMs ?? DEFAULT_HANG_MS, opts.publicApi);
}
