import { type ChildProcess, spawn } from "node:child_process";
import { decodeArrays, encodeFrame, FrameReader, type TypedArray, type WireArray } from "./frame.js";

/*
 * A TypeScript client of the gym protocol: what the Python client does, for the bench and the contract tests.
 * Requests are answered in order, so replies are matched to requests by position.
 */

export interface GymReply {
  header: Record<string, unknown>;
  arrays: Map<string, { shape: number[]; data: TypedArray }>;
}

export interface SpawnGymOptions {
  /** Executable and arguments; default: this Node with tsx running src/main.ts from `cwd`. */
  command?: string;
  args?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the server's stderr (its logs) goes: "inherit", "ignore" or "pipe" (then read `child.stderr`). */
  stderr?: "inherit" | "ignore" | "pipe";
  /** A reply that takes longer than this fails the client (and kills the server). Default: wait forever. */
  replyTimeoutMs?: number;
}

export class GymClient {
  readonly child: ChildProcess;
  /** Resolves when the server exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly reader = new FrameReader();
  private readonly waiting: { resolve(r: GymReply): void; reject(e: Error): void }[] = [];
  private readonly early: GymReply[] = [];
  private failure: Error | undefined;
  private readonly replyTimeoutMs: number | undefined;

  static spawn(opts: SpawnGymOptions = {}): GymClient {
    const child = spawn(
      opts.command ?? process.execPath,
      opts.args ?? ["--import", "tsx", "src/main.ts", "twin", "gym", "--log-level", "warn"],
      { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", opts.stderr ?? "inherit"] },
    );
    return new GymClient(child, opts.replyTimeoutMs);
  }

  constructor(child: ChildProcess, replyTimeoutMs?: number) {
    this.child = child;
    this.replyTimeoutMs = replyTimeoutMs;
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.fail(new Error(`gym server exited (code ${code}, signal ${signal})`));
        resolve({ code, signal });
      });
    });
    child.on("error", (err) => this.fail(err));
    child.stdin!.on("error", () => {}); // EPIPE when the server is gone; the exit handler reports it
    child.stdout!.on("data", (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let r = this.reader.next(); r; r = this.reader.next()) {
        if ("error" in r) {
          this.fail(new Error(`unreadable reply from the gym server: ${r.error.message}`));
          return;
        }
        const arrays = new Map<string, { shape: number[]; data: TypedArray }>();
        for (const [name, a] of decodeArrays(r.frame)) arrays.set(name, { shape: a.shape, data: a.data });
        const reply = { header: r.frame.header, arrays };
        const w = this.waiting.shift();
        if (w) w.resolve(reply);
        else this.early.push(reply);
      }
    });
  }

  /** Sends a request and waits for its reply (an `error` reply resolves too: check `header.type`). */
  request(header: Record<string, unknown>, arrays: readonly WireArray[] = []): Promise<GymReply> {
    return this.sendRaw(encodeFrame(header, arrays));
  }

  /** Sends bytes as they are (malformed frames in tests) and waits for the next reply. */
  sendRaw(bytes: Buffer): Promise<GymReply> {
    this.child.stdin!.write(bytes);
    return this.nextReply();
  }

  /** The next reply not yet claimed. */
  nextReply(): Promise<GymReply> {
    const ready = this.early.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    const ms = this.replyTimeoutMs;
    if (ms === undefined) return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Replies are matched by position: after a lost one nothing lines up any more, so the client is done.
        this.fail(new Error(`no reply from the gym server within ${ms} ms`));
        this.child.kill("SIGKILL");
      }, ms);
      this.waiting.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** `step` with a flat row-major [n, actDim] batch. */
  step(actions: Float32Array, n: number, actDim: number): Promise<GymReply> {
    return this.request({ type: "step" }, [{ name: "actions", dtype: "<f4", shape: [n, actDim], data: actions }]);
  }

  /** Closes stdin (EOF) and waits for the exit; kills the server if it has not exited within `timeoutMs`. */
  async end(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    return this.exited;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
