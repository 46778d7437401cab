import { createRequire } from "node:module";
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { ChannelViews, DATA_OFFSET, dataBytes, FAULT, H, OP, STATE, STATUS } from "./channel.js";
import type { Feeds, ModelSession, SessionIo } from "./host.js";
import { WORKER_SOURCE } from "./worker-source.js";

/*
 * A session in its own worker thread, called through the shared-memory channel (channel.ts). One call is in flight
 * at a time (later ones wait here in order); the main thread never blocks: it waits with Atomics.waitAsync.
 * A worker that crashes or exits fails the call in flight and every later one with `dead`; one that does not answer
 * within `hangMs` is ended the same way (the registry then reloads the version in a fresh worker).
 */

interface Call {
  /** undefined: release the session and stop (OP.CLOSE). */
  feeds: Feeds | undefined;
  resolve(out: Feeds): void;
  reject(err: Error): void;
  /** performance.now() when posted to the worker. */
  since: number;
  seq: number;
}

const require = createRequire(import.meta.url);
/** Atomics.waitAsync (Node ≥ 16; not in the ES2023 lib this project compiles against). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;
let ortPath: string | undefined;

/** Bytes of one batch-1 input set (dynamic dims counted as 1); sizes the channel. */
function inputBytes(io: SessionIo): number {
  const size: Record<string, number> = { float32: 4, float64: 8, int64: 8, int32: 4, uint8: 1, bool: 1 };
  let n = 0;
  for (const i of io.inputs) n += i.shape.reduce((a, d) => a * (d > 0 ? d : 1), 1) * (size[i.type] ?? 8);
  return n;
}

export class WorkerSession implements ModelSession {
  readonly isolation = "worker" as const;
  dead: Error | undefined;
  /** Calls by path: inputs through shared memory or by message; outputs likewise. */
  readonly counts = { calls: 0, shared_in: 0, port_in: 0, shared_out: 0, port_out: 0, errors: 0 };
  /** Whether the worker runs onnxruntime's native session synchronously (else the public API's fallback). */
  direct = false;
  private ch!: ChannelViews;
  private port!: MessagePort;
  private inputIndex = new Map<string, number>();
  private outputNames: string[] = [];
  private seq = 0;
  private current: Call | undefined;
  /** Moving average of the worker's own run time (session.run alone), µs. */
  runUs = 0;
  private readonly waiting: Call[] = [];
  private closing: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly io: SessionIo,
    private readonly hangMs: number,
  ) {}

  /** Starts the worker, loads the session there and opens the channel. */
  static async open(bytes: Uint8Array, options: object, hangMs: number, publicApi = false): Promise<WorkerSession> {
    ortPath ??= require.resolve("onnxruntime-node");
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, bytes, options, publicApi } });
    let loaded: { io: SessionIo; direct: boolean };
    try {
      loaded = await new Promise((resolve, reject) => {
        worker.once("message", (m: { io?: SessionIo; direct?: boolean; error?: string }) =>
          m.io ? resolve({ io: m.io, direct: !!m.direct }) : reject(new Error(m.error ?? "model worker failed")),
        );
        worker.once("error", (err) => reject(new Error(`model worker crashed: ${err.message}`)));
        worker.once("exit", (code) => reject(new Error(`model worker exited (code ${code})`)));
      });
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    worker.removeAllListeners();
    const s = new WorkerSession(worker, loaded.io, hangMs);
    s.direct = loaded.direct;
    s.start();
    return s;
  }

  private start(): void {
    const sab = new SharedArrayBuffer(DATA_OFFSET + dataBytes(inputBytes(this.io)));
    this.ch = new ChannelViews(sab);
    this.inputIndex = new Map(this.io.inputs.map((i, k) => [i.name, k]));
    this.outputNames = this.io.outputs.map((o) => o.name);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker.postMessage({ sab, port: port2 }, [port2]);
    this.worker.on("error", (err) => this.die(new Error(`model worker crashed: ${err.message}`)));
    this.worker.on("exit", (code) => this.die(new Error(`model worker exited (code ${code})`)));
    this.watchdog = setInterval(() => this.checkHang(), Math.max(50, Math.min(1000, this.hangMs / 4)));
    this.watchdog.unref();
  }

  run(feeds: Feeds): Promise<Feeds> {
    if (this.closing) return Promise.reject(new Error("session is closed"));
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<Feeds>((resolve, reject) => {
      const call: Call = { feeds, resolve, reject, since: 0, seq: 0 };
      if (this.current) this.waiting.push(call);
      else this.exec(call);
    });
  }

  /** Posts the call to the worker; its answer is read when STATE says DONE. */
  private exec(call: Call): void {
    this.current = call;
    call.since = performance.now();
    const hdr = this.ch.header;
    call.seq = this.seq = (this.seq + 1) | 0;
    try {
      if (!call.feeds) hdr[H.OP] = OP.CLOSE;
      else if (this.ch.writeFeeds(call.feeds, this.inputIndex)) {
        hdr[H.OP] = OP.RUN;
        this.counts.shared_in++;
      } else {
        hdr[H.OP] = OP.RUN_PORT;
        this.port.postMessage({ seq: call.seq, feeds: call.feeds });
        this.counts.port_in++;
      }
    } catch (err) {
      this.finish(call, undefined, new Error(`inputs cannot be sent to the model worker: ${(err as Error).message}`));
      return;
    }
    hdr[H.SEQ] = call.seq;
    Atomics.store(hdr, H.STATE, STATE.REQUEST);
    Atomics.notify(hdr, H.STATE);
    void this.waitAnswer(call);
  }

  private async waitAnswer(call: Call): Promise<void> {
    const hdr = this.ch.header;
    while (Atomics.load(hdr, H.STATE) === STATE.REQUEST && this.current === call) {
      const w = waitAsync(hdr, H.STATE, STATE.REQUEST);
      if (w.async) await w.value;
    }
    if (this.current === call) this.answer(call); // else failed by die()
  }

  /** Reads the worker's answer to `call` (STATE is DONE). */
  private answer(call: Call): void {
    const hdr = this.ch.header;
    if (hdr[H.RSEQ] !== call.seq) {
      this.finish(call, undefined, new Error(`model worker answered call ${hdr[H.RSEQ]} for call ${call.seq}`));
      return;
    }
    const status = hdr[H.STATUS];
    if (status === STATUS.ERROR) {
      this.finish(call, undefined, new Error(this.ch.readError()));
      return;
    }
    if (!call.feeds) {
      this.finish(call, {});
      return;
    }
    const runUs = hdr[H.RUN_US]!;
    this.runUs = this.runUs === 0 ? runUs : 0.9 * this.runUs + 0.1 * runUs;
    this.counts.calls++;
    if (status === STATUS.OK) {
      this.counts.shared_out++;
      this.finish(call, this.ch.readOutputs(this.outputNames));
      return;
    }
    const m = receiveMessageOnPort(this.port)?.message as { seq: number; out: Feeds } | undefined;
    if (m?.seq !== call.seq) {
      this.finish(call, undefined, new Error(`model worker: outputs of call ${call.seq} missing on the port`));
      return;
    }
    this.counts.port_out++;
    this.finish(call, m.out);
  }

  private finish(call: Call, out: Feeds | undefined, err?: Error): void {
    this.current = undefined;
    if (out) call.resolve(out);
    else {
      this.counts.errors++;
      call.reject(err!);
    }
    const next = this.waiting.shift();
    if (next) this.exec(next);
  }

  private checkHang(): void {
    const cur = this.current;
    if (!cur || this.dead || performance.now() - cur.since < this.hangMs) return;
    this.die(new Error(`model worker did not answer within ${this.hangMs} ms; ended`));
    void this.worker.terminate();
  }

  private die(err: Error): void {
    this.dead ??= err;
    clearInterval(this.watchdog);
    const cur = this.current;
    this.current = undefined;
    cur?.reject(this.dead);
    for (const c of this.waiting.splice(0)) c.reject(this.dead);
    // releases the pending Atomics.waitAsync of the failed call
    if (this.ch) Atomics.notify(this.ch.header, H.STATE);
  }

  /** Test hook: the worker crashes (uncaught error) or hangs at its next call. */
  injectFault(kind: "crash" | "hang"): void {
    Atomics.store(this.ch.header, H.FAULT, kind === "crash" ? FAULT.CRASH : FAULT.HANG);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.dead) {
        // after the calls already queued: release the session in the worker, then end the thread
        await new Promise<void>((resolve) => {
          const call: Call = { feeds: undefined, resolve: () => resolve(), reject: () => resolve(), since: 0, seq: 0 };
          if (this.current) this.waiting.push(call);
          else this.exec(call);
        });
      }
      this.dead ??= new Error("session is closed");
      clearInterval(this.watchdog);
      this.port?.close();
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
