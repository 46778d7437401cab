import {
  CTORS,
  DATA_OFFSET,
  DESC_INTS,
  DTYPES,
  FAULT,
  H,
  HEADER_BYTES,
  INLINE_OUT_MAX,
  MAX_TENSORS,
  OP,
  STATE,
  STATUS,
} from "./channel.js";

/*
 * The model worker: one thread per loaded model version, holding its one session. Evaluated as CommonJS (eval: true)
 * so that it runs the same from src/ under tsx and from dist/ (no second file to locate or compile); the layout
 * constants come from channel.ts.
 *
 * 1. Loads the session from workerData (bytes, options) and posts its declared inputs/outputs (or the error).
 * 2. Receives the channel's SharedArrayBuffer and port, then serves calls (channel.ts) until OP.CLOSE: blocked in
 *    Atomics.wait between calls (no CPU), the session run synchronously through onnxruntime-node's native binding.
 *    Its public `session.run` defers the native call to setImmediate, which never fires in a thread that blocks;
 *    and the binding rejects SharedArrayBuffer-backed arrays, so each input is copied once from the channel into
 *    an array of the worker's own (kept and reused while the input's shape stays the same).
 *    When the binding's file is not where onnxruntime-node 1.x keeps it, the worker falls back to the public API
 *    and waits with Atomics.waitAsync instead (same protocol, one event-loop turn more per call).
 */
const CTOR_NAMES = CTORS.slice(1)
  .map((c) => c!.name)
  .join(", ");

export const WORKER_SOURCE = `"use strict";
const { parentPort, workerData, receiveMessageOnPort } = require("node:worker_threads");
const path = require("node:path");
const ort = require(workerData.ortPath);
const TYPES = ${JSON.stringify(DTYPES)};
const CTORS = [null, ${CTOR_NAMES}];
// the binding's element type numbers (ONNX TensorProto.DataType), named as onnxruntime-node's backend names them
const ORT_TYPES = [undefined, "float32", "uint8", "int8", "uint16", "int16", "int32", "int64", "string", "bool", "float16", "float64", "uint32", "uint64"];
ORT_TYPES[21] = "uint4";
ORT_TYPES[22] = "int4";
const H = ${JSON.stringify(H)}, STATE = ${JSON.stringify(STATE)}, OP = ${JSON.stringify(OP)};
const STATUS = ${JSON.stringify(STATUS)}, FAULT = ${JSON.stringify(FAULT)};
const HEADER_BYTES = ${HEADER_BYTES}, DESC_INTS = ${DESC_INTS}, MAX_TENSORS = ${MAX_TENSORS};
const DATA_OFFSET = ${DATA_OFFSET}, INLINE_OUT_MAX = ${INLINE_OUT_MAX};

let native; // the binding's synchronous session, when available
let session; // the public session (fallback)
try {
  if (workerData.publicApi) throw new Error("public API asked for");
  const b = require(path.join(path.dirname(workerData.ortPath), "binding.js"));
  if (typeof b.initOrt !== "function" || typeof b.binding?.InferenceSession !== "function") throw new Error("layout");
  b.initOrt();
  native = new b.binding.InferenceSession();
} catch {
  native = undefined;
}

function dims(shape) { return Array.from(shape, (d) => (typeof d === "number" && d >= 0 ? d : -1)); }
function rawMeta(m) {
  return m.isTensor ? { name: m.name, type: ORT_TYPES[m.type] ?? "unknown", shape: dims(m.shape) } : { name: m.name, type: "non-tensor", shape: [] };
}
function pubMeta(m) {
  return m.isTensor ? { name: m.name, type: m.type, shape: dims(m.shape) } : { name: m.name, type: "non-tensor", shape: [] };
}

async function load() {
  const bytes = workerData.bytes;
  if (native) {
    native.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, workerData.options);
    return { inputs: native.inputMetadata.map(rawMeta), outputs: native.outputMetadata.map(rawMeta) };
  }
  session = await ort.InferenceSession.create(bytes, workerData.options);
  return { inputs: session.inputMetadata.map(pubMeta), outputs: session.outputMetadata.map(pubMeta) };
}

load().then(
  (io) => {
    parentPort.postMessage({ io, direct: !!native });
    parentPort.once("message", (m) => {
      serve(m.sab, m.port, io).catch((err) => setImmediate(() => { throw err; }));
    });
  },
  (err) => parentPort.postMessage({ error: String((err && err.message) || err) }),
);

async function serve(sab, port, io) {
  const hdr = new Int32Array(sab, 0, HEADER_BYTES / 4);
  const desc = new Int32Array(sab, HEADER_BYTES, MAX_TENSORS * DESC_INTS);
  const capacity = sab.byteLength - DATA_OFFSET;
  const views = CTORS.map((C) => (C ? new C(sab, DATA_OFFSET, Math.floor(capacity / C.BYTES_PER_ELEMENT)) : null));
  const bytes = new Uint8Array(sab, DATA_OFFSET, capacity);
  const inNames = io.inputs.map((i) => i.name);
  const outNames = io.outputs.map((o) => o.name);
  const outIndex = new Map(outNames.map((n, i) => [n, i]));
  const fetches = Object.fromEntries(outNames.map((n) => [n, null]));
  const runOptions = {};
  // a pending Atomics.waitAsync does not keep a thread's event loop alive (the fallback path waits that way)
  const keepAlive = native ? undefined : setInterval(() => {}, 1 << 30);
  const slots = []; // per input index: { code, elements, shape, local, tensor }, reused while the shape stays the same

  function sharedFeeds() {
    const feeds = {};
    const n = hdr[H.COUNT];
    for (let i = 0; i < n; i++) {
      const d = i * DESC_INTS;
      const index = desc[d], code = desc[d + 1], rank = desc[d + 2], elements = desc[d + 4];
      const C = CTORS[code];
      const start = desc[d + 3] / C.BYTES_PER_ELEMENT;
      let s = slots[index];
      let same = !!s && s.code === code && s.elements === elements && s.shape.length === rank;
      for (let k = 0; same && k < rank; k++) same = s.shape[k] === desc[d + 5 + k];
      if (!same) {
        const shape = Array.from(desc.subarray(d + 5, d + 5 + rank));
        const local = new C(elements);
        s = slots[index] = { code, elements, shape, local, tensor: new ort.Tensor(TYPES[code], local, shape) };
      }
      s.local.set(views[code].subarray(start, start + elements));
      feeds[inNames[index]] = s.tensor;
    }
    return feeds;
  }

  function portFeeds() {
    const m = receiveMessageOnPort(port);
    if (!m) throw new Error("model worker: call inputs missing on the port");
    const feeds = {};
    for (const name in m.message.feeds) {
      const t = m.message.feeds[name];
      const code = CTORS.indexOf(t.data.constructor);
      if (code <= 0) throw new TypeError("input " + name + ": unsupported array type " + t.data.constructor.name);
      feeds[name] = new ort.Tensor(TYPES[code], t.data, t.dims);
    }
    return feeds;
  }

  /** Outputs into the data region; false when they do not fit (then they go by port). */
  function writeOutputs(out) {
    let total = 0;
    for (const name in out) {
      const d = out[name].data;
      if (!outIndex.has(name) || CTORS.indexOf(d && d.constructor) <= 0 || out[name].dims.length > DESC_INTS - 5) return false;
      total += (d.byteLength + 7) & ~7;
    }
    if (total > INLINE_OUT_MAX || total > capacity) return false;
    let n = 0, off = 0;
    for (const name in out) {
      const t = out[name], data = t.data, code = CTORS.indexOf(data.constructor);
      const d = n * DESC_INTS;
      desc[d] = outIndex.get(name); desc[d + 1] = code; desc[d + 2] = t.dims.length; desc[d + 3] = off; desc[d + 4] = data.length;
      for (let k = 0; k < t.dims.length; k++) desc[d + 5 + k] = t.dims[k];
      views[code].set(data, off / CTORS[code].BYTES_PER_ELEMENT);
      off = (off + data.byteLength + 7) & ~7;
      n++;
    }
    hdr[H.COUNT] = n;
    return true;
  }

  function postOutputs(seq, out) {
    const res = {};
    const transfer = [];
    for (const name in out) {
      const d = out[name].data;
      res[name] = { data: d, dims: Array.from(out[name].dims) };
      if (d && d.buffer instanceof ArrayBuffer && !transfer.includes(d.buffer)) transfer.push(d.buffer);
    }
    port.postMessage({ seq, out: res }, transfer);
  }

  function writeError(err) {
    const text = new TextEncoder().encode(String((err && err.message) || err)).subarray(0, capacity);
    bytes.set(text);
    hdr[H.COUNT] = text.length;
    hdr[H.STATUS] = STATUS.ERROR;
  }

  for (;;) {
    let s;
    while ((s = Atomics.load(hdr, H.STATE)) !== STATE.REQUEST) {
      if (native) Atomics.wait(hdr, H.STATE, s);
      else await Atomics.waitAsync(hdr, H.STATE, s).value;
    }
    const op = hdr[H.OP], seq = hdr[H.SEQ];
    const fault = Atomics.exchange(hdr, H.FAULT, FAULT.NONE);
    if (fault === FAULT.CRASH) throw new Error("injected fault: model worker crashed mid-call");
    if (fault === FAULT.HANG) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    if (op === OP.CLOSE) {
      if (native) native.dispose();
      else if (session) await session.release();
      native = session = undefined;
      hdr[H.STATUS] = STATUS.OK;
      hdr[H.COUNT] = 0;
      hdr[H.RSEQ] = seq;
      Atomics.store(hdr, H.STATE, STATE.DONE);
      Atomics.notify(hdr, H.STATE);
      port.close();
      clearInterval(keepAlive);
      return;
    }
    try {
      const feeds = op === OP.RUN ? sharedFeeds() : portFeeds();
      // as onnxruntime-common checks before its native call (the binding itself only logs and fails the run)
      for (let i = 0; i < inNames.length; i++)
        if (!(inNames[i] in feeds)) throw new Error("input '" + inNames[i] + "' is missing in 'feeds'.");
      const t0 = performance.now();
      const out = native ? native.run(feeds, fetches, runOptions) : await session.run(feeds);
      hdr[H.RUN_US] = Math.round((performance.now() - t0) * 1000);
      if (writeOutputs(out)) hdr[H.STATUS] = STATUS.OK;
      else {
        postOutputs(seq, out);
        hdr[H.STATUS] = STATUS.OK_PORT;
      }
    } catch (err) {
      writeError(err);
    }
    hdr[H.RSEQ] = seq;
    Atomics.store(hdr, H.STATE, STATE.DONE);
    Atomics.notify(hdr, H.STATE);
  }
}
`;
