import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import * as ort from "onnxruntime-node";

/*
 * Where an ONNX Runtime session lives. Two hosts, one interface:
 *
 * - "worker" (default): every loaded model version gets its own worker thread holding its one session; retiring
 *   the version releases the session and terminates the worker. onnxruntime-node leaks native memory on every
 *   session create/release (microsoft/onnxruntime#25325); measured here with a 2.6 MB vision model: +48 MB RSS over
 *   50 in-process swaps, ~0 (noise, ±15 MB) when each version lives and dies with its own worker
 *   (bench/inference.ts prints both). A call costs one postMessage each way (~30 µs).
 * - "inline": the session in the main thread (no message hop; for tools and for the bench's baseline).
 *
 * Both take and return typed arrays (`Feeds`); inputs are copied once into the session, outputs are handed over
 * without a copy (transferred from the worker).
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
}

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

function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
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

/*
 * The worker's source, evaluated as CommonJS (eval: true) so that it runs the same from src/ under tsx and from
 * dist/: no second file to locate or compile. It requires onnxruntime-node from the path the main thread resolved.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const ort = require(workerData.ortPath);
let session;
const TYPE_OF = { Float32Array: "float32", Float64Array: "float64", BigInt64Array: "int64", Int32Array: "int32", Uint8Array: "uint8" };
function dims(shape) { return shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1)); }
function meta(m) { return m.isTensor ? { name: m.name, type: m.type, shape: dims(m.shape) } : { name: m.name, type: "non-tensor", shape: [] }; }
parentPort.on("message", async (m) => {
  try {
    if (m.op === "load") {
      session = await ort.InferenceSession.create(m.bytes, m.options);
      parentPort.postMessage({ id: m.id, io: { inputs: session.inputMetadata.map(meta), outputs: session.outputMetadata.map(meta) } });
    } else if (m.op === "run") {
      const feeds = {};
      for (const name in m.feeds) {
        const t = m.feeds[name];
        const type = TYPE_OF[t.data.constructor.name];
        if (!type) throw new TypeError("input " + name + ": unsupported array type " + t.data.constructor.name);
        feeds[name] = new ort.Tensor(type, t.data, t.dims);
      }
      const out = await session.run(feeds);
      const res = {};
      const transfer = [];
      for (const name in out) {
        const d = out[name].data;
        res[name] = { data: d, dims: Array.from(out[name].dims) };
        if (d && d.buffer && !transfer.includes(d.buffer)) transfer.push(d.buffer);
      }
      parentPort.postMessage({ id: m.id, out: res }, transfer);
    } else if (m.op === "close") {
      if (session) await session.release();
      session = undefined;
      parentPort.postMessage({ id: m.id, closed: true });
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
  }
});
`;

const require = createRequire(import.meta.url);
let ortPath: string | undefined;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

class WorkerSession implements ModelSession {
  readonly isolation = "worker" as const;
  io: SessionIo = { inputs: [], outputs: [] };
  dead: Error | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closing: Promise<void> | undefined;

  constructor(private readonly worker: Worker) {
    worker.on("message", (m: { id: number; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m);
    });
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    worker.on("error", (err) => die(new Error(`model worker crashed: ${err.message}`)));
    worker.on("exit", (code) => die(new Error(`model worker exited (code ${code})`)));
  }

  call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...msg, id });
    });
  }

  async run(feeds: Feeds): Promise<Feeds> {
    if (this.closing) throw new Error("session is closed");
    const m = await this.call<{ out: Feeds }>({ op: "run", feeds });
    return m.out;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.dead) await this.call({ op: "close" });
      } catch {
        // the worker is terminated below either way
      }
      this.dead ??= new Error("session is closed");
      await this.worker.terminate();
    })();
    return this.closing;
  }
}

/** Creates a session from the model's bytes (the same bytes whose sha256 was checked: no second read). */
export async function openSession(bytes: Uint8Array, opts: SessionOptions): Promise<ModelSession> {
  const options = sessionOptions(opts.threads);
  if (opts.isolation === "inline") {
    const s = await ort.InferenceSession.create(bytes, options);
    return new InlineSession(s, ioOf(s));
  }
  ortPath ??= require.resolve("onnxruntime-node");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath } });
  const s = new WorkerSession(worker);
  try {
    const m = await s.call<{ io: SessionIo }>({ op: "load", bytes, options });
    s.io = m.io;
    return s;
  } catch (err) {
    await s.close();
    throw err;
  }
}
