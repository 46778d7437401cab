import { GlassdError } from "../core/errors.js";
import type { Feeds, TensorData, TypedData } from "./host.js";

/**
 * What a full queue does with one more call:
 * - `drop_oldest`: the oldest waiting call is dropped (rejected with QueueDropError) and the new one queued — for
 *   streams where the newest input matters most (vision frames);
 * - `reject_newest`: the new call is rejected and the waiting ones kept — for callers that wait for their own
 *   answer and can say "unavailable" for one tick (forecaster, graph, ensemble).
 */
export type DropPolicy = "drop_oldest" | "reject_newest";
export const DROP_POLICIES: readonly DropPolicy[] = ["drop_oldest", "reject_newest"];

/** A call dropped by a bounded queue; the message names the queue and the policy. */
export class QueueDropError extends GlassdError {
  constructor(
    readonly queue: string,
    readonly policy: DropPolicy,
  ) {
    super(`model queue ${queue} is full; call dropped (${policy})`, { status: 503, code: "queue_full" });
  }
}

export interface RunQueueOptions {
  /** Name for errors and counters, e.g. "vision@1.0.0". */
  name: string;
  /** Calls that may wait (the running batch not counted). */
  capacity: number;
  policy: DropPolicy;
  /** Largest batch built from waiting calls (1 = no batching). Every input and output must have a batch dim 0. */
  maxBatch: number;
}

interface Job {
  feeds: Feeds;
  batch: number;
  resolve(out: Feeds): void;
  reject(err: Error): void;
}

export interface RunQueueStats {
  waiting: number;
  running: number;
  completed: number;
  failed: number;
  dropped: number;
  batches: number;
  batched_calls: number;
}

type Ctor = { new (n: number): TypedData };

/** Concatenates the same input of several calls along dim 0. */
function concat(parts: TensorData[]): TensorData {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  let n = 0;
  let rows = 0;
  for (const p of parts) {
    n += p.data.length;
    rows += p.dims[0]!;
  }
  const out = new (first.data.constructor as Ctor)(n);
  let o = 0;
  for (const p of parts) {
    (out as Float32Array).set(p.data as Float32Array, o);
    o += p.data.length;
  }
  return { data: out, dims: [rows, ...first.dims.slice(1)] };
}

/** Splits one output along dim 0 into `sizes` rows each (views: no copy). */
function split(t: TensorData, sizes: number[]): TensorData[] {
  const rows = t.dims[0]!;
  const per = rows > 0 ? t.data.length / rows : 0;
  const out: TensorData[] = [];
  let r = 0;
  for (const s of sizes) {
    out.push({ data: t.data.subarray(r * per, (r + s) * per) as TypedData, dims: [s, ...t.dims.slice(1)] });
    r += s;
  }
  return out;
}

/** Same input names and the same dims after dim 0: the calls can share one batch. */
function compatible(a: Feeds, b: Feeds): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    const x = a[k];
    const y = b[k];
    if (!x || !y || x.data.constructor !== y.data.constructor || x.dims.length !== y.dims.length) return false;
    for (let i = 1; i < x.dims.length; i++) if (x.dims[i] !== y.dims[i]) return false;
  }
  return true;
}

/**
 * A bounded FIFO in front of one session, one batch in flight at a time (ONNX Runtime already uses the intra-op
 * threads inside a run; overlapping runs on a 2-core box only adds contention). Waiting calls with the same input
 * shapes are run as one batch when `maxBatch` > 1 (vision bursts) and the outputs are split back per call.
 */
export class RunQueue {
  private readonly waiting: Job[] = [];
  private running = 0;
  private idle: Array<() => void> = [];
  private readonly counts = { completed: 0, failed: 0, dropped: 0, batches: 0, batched_calls: 0 };

  constructor(
    private readonly exec: (feeds: Feeds) => Promise<Feeds>,
    readonly opts: RunQueueOptions,
    private readonly onDrop: (policy: DropPolicy) => void = () => {},
  ) {
    if (!(opts.capacity >= 0)) throw new RangeError(`queue ${opts.name}: capacity must be ≥ 0`);
    if (!(opts.maxBatch >= 1)) throw new RangeError(`queue ${opts.name}: maxBatch must be ≥ 1`);
  }

  submit(feeds: Feeds): Promise<Feeds> {
    return new Promise<Feeds>((resolve, reject) => {
      const batch = Object.values(feeds)[0]?.dims[0] ?? 1;
      const job: Job = { feeds, batch, resolve, reject };
      if (this.running > 0 && this.waiting.length >= this.opts.capacity) {
        this.counts.dropped++;
        this.onDrop(this.opts.policy);
        if (this.opts.policy === "reject_newest" || this.waiting.length === 0) {
          reject(new QueueDropError(this.opts.name, this.opts.policy));
          return;
        }
        this.waiting.shift()!.reject(new QueueDropError(this.opts.name, this.opts.policy));
      }
      this.waiting.push(job);
      this.pump();
    });
  }

  /** Resolves once nothing waits or runs (used before a retired session is closed). */
  drain(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  stats(): RunQueueStats {
    return { waiting: this.waiting.length, running: this.running, ...this.counts };
  }

  private pump(): void {
    if (this.running > 0 || this.waiting.length === 0) return;
    const jobs = [this.waiting.shift()!];
    let rows = jobs[0]!.batch;
    while (
      this.opts.maxBatch > 1 &&
      this.waiting.length > 0 &&
      rows + this.waiting[0]!.batch <= this.opts.maxBatch &&
      compatible(jobs[0]!.feeds, this.waiting[0]!.feeds)
    ) {
      const j = this.waiting.shift()!;
      rows += j.batch;
      jobs.push(j);
    }
    this.running = 1;
    const feeds: Feeds =
      jobs.length === 1
        ? jobs[0]!.feeds
        : Object.fromEntries(Object.keys(jobs[0]!.feeds).map((k) => [k, concat(jobs.map((j) => j.feeds[k]!))]));
    if (jobs.length > 1) {
      this.counts.batches++;
      this.counts.batched_calls += jobs.length;
    }
    this.exec(feeds)
      .then(
        (out) => {
          if (jobs.length === 1) {
            this.counts.completed++;
            jobs[0]!.resolve(out);
            return;
          }
          const sizes = jobs.map((j) => j.batch);
          const parts = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, split(t, sizes)]));
          jobs.forEach((j, i) => {
            this.counts.completed++;
            j.resolve(Object.fromEntries(Object.entries(parts).map(([k, p]) => [k, p[i]!])));
          });
        },
        (err: Error) => {
          this.counts.failed += jobs.length;
          for (const j of jobs) j.reject(err);
        },
      )
      .finally(() => {
        this.running = 0;
        if (this.waiting.length > 0) this.pump();
        else if (this.idle.length) {
          const idle = this.idle;
          this.idle = [];
          for (const r of idle) r();
        }
      });
  }
}
