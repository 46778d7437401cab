import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { GlassdError } from "../core/errors.js";
import { LatencyWindow } from "../core/latency.js";
import { type NpyArray, readNpy } from "../core/npy.js";
import { type Feeds, type Isolation, type ModelSession, openSession, type TensorData, type TypedData } from "./host.js";
import { type GoldenDoc, type IoSpec, type ModelRef, readGoldenDoc } from "./manifest.js";
import { type DropPolicy, RunQueue } from "./queue.js";

/** A model version that could not be loaded; `stage` says which check refused it. */
export class ModelLoadError extends GlassdError {
  constructor(
    readonly model: string,
    readonly version: string,
    readonly stage:
      | "acceptance"
      | "missing"
      | "sha256"
      | "onnxruntime"
      | "io"
      | "classes"
      | "golden"
      | "warmup"
      | "input",
    message: string,
  ) {
    super(`${model}@${version}: ${message}`, { status: 422, code: `model_${stage}` });
  }
}

/** A call whose inputs do not fit the model; names the input and what is wrong. */
export class ModelInputError extends GlassdError {
  constructor(model: string, message: string) {
    super(`${model}: ${message}`, { status: 400, code: "model_input" });
  }
}

export interface LoadOptions {
  threads: number;
  isolation: Isolation;
  queue: { capacity: number; policy: DropPolicy; maxBatch: number };
  /** Class order the daemon's code assumes for this model (DEFECT_CLASSES), or undefined for "no classes". */
  expectClasses?: readonly string[];
  /** Warm-up runs after the golden check. Default 2. */
  warmupRuns?: number;
  onDrop?: (policy: DropPolicy) => void;
}

const ARRAY_OF: Record<string, { new (n: number): TypedData }> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

function dtypeOfArray(d: TypedData): string {
  if (d instanceof Float32Array) return "float32";
  if (d instanceof Float64Array) return "float64";
  if (d instanceof BigInt64Array) return "int64";
  if (d instanceof Int32Array) return "int32";
  return "uint8";
}

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/** Manifest shape vs a concrete shape: same rank, -1 matches anything. */
export function shapeFits(spec: readonly number[], dims: readonly number[]): boolean {
  return spec.length === dims.length && spec.every((d, i) => d === -1 || d === dims[i]);
}

/** Checks the manifest's declared I/O against what ONNX Runtime reads from the file; returns problems. */
export function ioProblems(ref: Pick<ModelRef, "inputs" | "outputs">, session: ModelSession["io"]): string[] {
  const out: string[] = [];
  const side = (kind: "input" | "output", want: IoSpec[], got: ModelSession["io"]["inputs"]) => {
    const names = got.map((g) => g.name);
    if (want.length !== got.length || want.some((w, i) => w.name !== names[i]))
      out.push(
        `${kind}s are [${names.join(", ")}] in the file, the manifest says [${want.map((w) => w.name).join(", ")}]`,
      );
    for (const w of want) {
      const g = got.find((x) => x.name === w.name);
      if (!g) continue;
      const dtype = w.dtype === "bool" ? "bool" : w.dtype;
      if (g.type !== dtype) out.push(`${kind} ${w.name} is ${g.type} in the file, the manifest says ${w.dtype}`);
      if (g.shape.length === 0) continue; // the file does not declare a shape
      const clash =
        g.shape.length !== w.shape.length || w.shape.some((d, i) => d !== -1 && g.shape[i] !== -1 && g.shape[i] !== d);
      if (clash) out.push(`${kind} ${w.name} has shape ${fmt(g.shape)} in the file, the manifest says ${fmt(w.shape)}`);
    }
  };
  side("input", ref.inputs, session.inputs);
  side("output", ref.outputs, session.outputs);
  return out;
}

/** Compares one output with its golden value: shape, then max |Δ| against abs + rel·|golden|. */
export function goldenCompare(
  got: TensorData,
  want: NpyArray,
  tol: { abs: number; rel: number },
): { ok: boolean; max_abs: number; detail?: string } {
  if (!shapeFits(want.shape, got.dims))
    return {
      ok: false,
      max_abs: Number.POSITIVE_INFINITY,
      detail: `shape ${fmt(got.dims)}, golden ${fmt(want.shape)}`,
    };
  let maxAbs = 0;
  let bad = -1;
  const a = got.data;
  const b = want.data;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    const d = Math.abs(x - y);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (!(d <= tol.abs + tol.rel * Math.abs(y)) && bad < 0) bad = i;
  }
  return bad < 0
    ? { ok: true, max_abs: maxAbs }
    : { ok: false, max_abs: maxAbs, detail: `element ${bad}: ${Number(a[bad])} vs golden ${Number(b[bad])}` };
}

function npyToTensor(a: NpyArray): TensorData {
  return { data: a.data as TypedData, dims: a.shape };
}

/** Batch-1 zero inputs of the manifest's shapes (dynamic dims = 1), for warm-up when there is no golden. */
function zeroFeeds(inputs: IoSpec[]): Feeds {
  const feeds: Feeds = {};
  for (const i of inputs) {
    const dims = i.shape.map((d) => (d === -1 ? 1 : d));
    feeds[i.name] = { data: new ARRAY_OF[i.dtype]!(dims.reduce((x, y) => x * y, 1)), dims };
  }
  return feeds;
}

/** The first row (dim 0) of every golden input: a realistic batch-1 warm-up input. */
function firstRows(g: Feeds): Feeds {
  const out: Feeds = {};
  for (const [k, t] of Object.entries(g)) {
    const rows = t.dims[0] ?? 1;
    const per = rows > 0 ? t.data.length / rows : 0;
    out[k] = { data: t.data.slice(0, per) as TypedData, dims: [1, ...t.dims.slice(1)] };
  }
  return out;
}

/**
 * One loaded, checked, warmed model version: its session behind a bounded queue, with latency figures. Created only
 * by {@link loadInstance}; closed by the registry once it is retired and drained.
 */
export class ModelInstance {
  readonly loadedAt = new Date().toISOString();
  /** Latency of runs since the version went live (warm-up and golden runs not counted). */
  latency = new LatencyWindow(1024);
  readonly queue: RunQueue;
  failures = 0;
  golden: { max_abs: Record<string, number>; tolerance: GoldenDoc["tolerance"] } | null = null;
  private closed: Promise<void> | undefined;

  constructor(
    readonly ref: ModelRef,
    readonly session: ModelSession,
    opts: LoadOptions,
  ) {
    const batchable = [...ref.inputs, ...ref.outputs].every((s) => s.shape[0] === -1);
    this.queue = new RunQueue(
      (feeds) => this.timedRun(feeds),
      {
        name: `${ref.name}@${ref.version}`,
        capacity: opts.queue.capacity,
        policy: opts.queue.policy,
        maxBatch: batchable ? opts.queue.maxBatch : 1,
      },
      opts.onDrop,
    );
  }

  get name(): string {
    return this.ref.name;
  }
  get version(): string {
    return this.ref.version;
  }
  /** Version and sha256: a rebuilt file under the same version is a different instance. */
  get key(): string {
    return `${this.ref.version}#${this.ref.sha256}`;
  }

  /** Checks the inputs against the manifest (names, dtypes, shapes) and queues the call. */
  run(feeds: Feeds): Promise<Feeds> {
    for (const spec of this.ref.inputs) {
      const t = feeds[spec.name];
      if (!t) return Promise.reject(new ModelInputError(this.name, `input ${spec.name} is missing`));
      const dt = dtypeOfArray(t.data);
      if (dt !== spec.dtype && !(spec.dtype === "bool" && dt === "uint8"))
        return Promise.reject(new ModelInputError(this.name, `input ${spec.name} must be ${spec.dtype}, got ${dt}`));
      if (!shapeFits(spec.shape, t.dims))
        return Promise.reject(
          new ModelInputError(this.name, `input ${spec.name} must have shape ${fmt(spec.shape)}, got ${fmt(t.dims)}`),
        );
      const n = t.dims.reduce((x, y) => x * y, 1);
      if (n !== t.data.length)
        return Promise.reject(
          new ModelInputError(
            this.name,
            `input ${spec.name}: shape ${fmt(t.dims)} holds ${n} values, got ${t.data.length}`,
          ),
        );
    }
    for (const k of Object.keys(feeds))
      if (!this.ref.inputs.some((s) => s.name === k))
        return Promise.reject(new ModelInputError(this.name, `unknown input ${k}`));
    return this.queue.submit(feeds);
  }

  private async timedRun(feeds: Feeds): Promise<Feeds> {
    const t0 = performance.now();
    try {
      const out = await this.session.run(feeds);
      this.latency.observe(performance.now() - t0);
      return out;
    } catch (err) {
      this.failures++;
      throw err;
    }
  }

  /** Waits for queued calls, then releases the session (and its worker). Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.queue.drain().then(() => this.session.close());
    return this.closed;
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Loads one version: reads the file, checks size and sha256 against the manifest, creates the session from those
 * same bytes, checks input/output names, dtypes and shapes, the class order, reproduces the factory's golden
 * outputs within its tolerance, and warms the session up. Any failure closes what was opened and throws a
 * ModelLoadError naming the check.
 */
export async function loadInstance(ref: ModelRef, opts: LoadOptions): Promise<ModelInstance> {
  const fail = (stage: ModelLoadError["stage"], msg: string) => new ModelLoadError(ref.name, ref.version, stage, msg);
  if (opts.expectClasses) {
    const want = opts.expectClasses;
    const got = ref.classes;
    if (!got || got.length !== want.length || got.some((c, i) => c !== want[i]))
      throw fail(
        "classes",
        `class order [${(got ?? []).join(", ")}] differs from the daemon's [${want.join(", ")}]; refusing the model`,
      );
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(ref.path);
  } catch (err) {
    throw fail("missing", `cannot read ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (bytes.length !== ref.bytes)
    throw fail("sha256", `${ref.path} has ${bytes.length} bytes, the manifest says ${ref.bytes}`);
  const sha = sha256Hex(bytes);
  if (sha !== ref.sha256) throw fail("sha256", `sha256 of ${ref.path} is ${sha}, the manifest says ${ref.sha256}`);
  let session: ModelSession;
  try {
    session = await openSession(bytes, { threads: opts.threads, isolation: opts.isolation });
  } catch (err) {
    throw fail("onnxruntime", `onnxruntime refused ${ref.path}: ${(err as Error).message}`);
  }
  const inst = new ModelInstance(ref, session, opts);
  try {
    const problems = ioProblems(ref, session.io);
    if (problems.length) throw fail("io", problems.join("; "));
    let warm: Feeds = zeroFeeds(ref.inputs);
    if (ref.goldenPath) {
      let doc: GoldenDoc;
      let ins: Feeds;
      let outs: Record<string, NpyArray>;
      try {
        doc = readGoldenDoc(ref.goldenPath);
        const base = dirname(ref.goldenPath);
        ins = Object.fromEntries(doc.inputs.map((i) => [i.name, npyToTensor(readNpy(join(base, i.file)))]));
        outs = Object.fromEntries(doc.outputs.map((o) => [o.name, readNpy(join(base, o.file))]));
      } catch (err) {
        throw fail("golden", `golden I/O unreadable: ${(err as Error).message}`);
      }
      let got: Feeds;
      try {
        got = await inst.run(ins);
      } catch (err) {
        throw fail("golden", `golden inputs do not run: ${(err as Error).message}`);
      }
      const maxAbs: Record<string, number> = {};
      for (const [name, want] of Object.entries(outs)) {
        const g = got[name];
        if (!g) throw fail("golden", `output ${name} of the golden file is not produced`);
        const c = goldenCompare(g, want, doc.tolerance);
        maxAbs[name] = c.max_abs;
        if (!c.ok)
          throw fail(
            "golden",
            `output ${name} differs from the factory's golden output beyond abs ${doc.tolerance.abs} + rel ${doc.tolerance.rel} (${c.detail}; max |Δ| ${c.max_abs})`,
          );
      }
      inst.golden = { max_abs: maxAbs, tolerance: doc.tolerance };
      warm = firstRows(ins);
    }
    try {
      for (let i = 0; i < (opts.warmupRuns ?? 2); i++) await inst.run(warm);
    } catch (err) {
      throw fail("warmup", `warm-up run failed: ${(err as Error).message}`);
    }
    inst.latency = new LatencyWindow(1024);
    return inst;
  } catch (err) {
    await inst.close().catch(() => {});
    throw err;
  }
}
