/*
 * In-process harness for API tests: a real Daemon (LMDB store, pipeline, auth, WebSocket hub, HTTP server) on
 * 127.0.0.1 with an OS-chosen port, over a fresh temp data dir, with its logs collected in memory instead of stdout.
 * Tests talk to it over loopback with fetch and `ws`, as a dashboard would.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Auth, type Role } from "../../src/api/auth/index.js";
import { type Config, type LoadResult, loadConfig } from "../../src/config/index.js";
import { SimClock } from "../../src/core/clock.js";
import { Daemon } from "../../src/daemon.js";

export const ADMIN_PASSWORD = "harness-admin-password";

/** One user per role; `admin` is the bootstrap admin created from the admin password file. */
export const USERS: Readonly<Record<Role, { username: string; password: string }>> = Object.freeze({
  viewer: { username: "vera", password: "viewer-password-1" },
  operator: { username: "otto", password: "operator-password-1" },
  engineer: { username: "erin", password: "engineer-password-1" },
  admin: { username: "admin", password: ADMIN_PASSWORD },
});

export interface HarnessOptions {
  /** Line source; `none` means the only data is what a test posts (and line time is real time). Default `none`. */
  source?: "twin" | "plant" | "none";
  /** A config file (YAML or JSON) loaded below the `cli` settings, e.g. for a tag dictionary. */
  configFile?: string;
  /** `pipeline.tick_interval_ms`; default 200. */
  tickIntervalMs?: number;
  /** More `--set` style settings (dotted path → text), applied last; may make the config invalid (safe mode). */
  cli?: Record<string, string>;
  /** Create the viewer, operator and engineer of {@link USERS} before start. Default true. */
  users?: boolean;
}

/** A response read once: status, headers, text and (when the body is JSON) the parsed body. */
export interface Res<T = Json> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

/** A JSON object as a test reads it; narrow it with a cast to the documented shape. */
export type Json = Record<string, unknown>;

export interface RequestOptions {
  token?: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as is (malformed JSON, oversized bodies, streams). */
  raw?: string | ReadableStream<Uint8Array>;
  method?: string;
}

/** Discards log lines but keeps the last few hundred, so a failing test can print what the daemon said. */
class LogCollector extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    for (const line of chunk.toString().split("\n")) if (line) this.lines.push(line);
    if (this.lines.length > 500) this.lines.splice(0, this.lines.length - 500);
    cb();
  }
}

export class TestDaemon {
  private readonly tokens = new Map<string, string>();
  private stopped: Promise<void> | undefined;

  private constructor(
    readonly daemon: Daemon,
    readonly load: LoadResult,
    /** Temp directory holding the data dir and the admin password file; removed by {@link stop}. */
    readonly dir: string,
    readonly dataDir: string,
    readonly port: number,
    private readonly logs: LogCollector,
  ) {}

  static async start(opts: HarnessOptions = {}): Promise<TestDaemon> {
    const dir = mkdtempSync(join(tmpdir(), "glassd-api-"));
    try {
      const dataDir = join(dir, "data");
      const pwFile = join(dir, "admin-password");
      writeFileSync(pwFile, `${ADMIN_PASSWORD}\n`, { mode: 0o600 });
      const load = loadConfig({
        env: {},
        ...(opts.configFile ? { configFile: opts.configFile } : {}),
        // No ./.env of the repo (or of whoever runs the tests) may leak into the test config.
        cwd: dir,
        cli: {
          "server.port": "0",
          "server.host": "127.0.0.1",
          data_dir: dataDir,
          "auth.admin_password_file": pwFile,
          "source.type": opts.source ?? "none",
          "pipeline.tick_interval_ms": String(opts.tickIntervalMs ?? 200),
          "log.level": "info",
          ...opts.cli,
        },
      });
      if (opts.users ?? true) await createUsers(load.config);
      const logs = new LogCollector();
      const daemon = new Daemon({ load, env: {}, logDestination: logs, shutdownTimeoutMs: 5_000 });
      try {
        await daemon.start();
      } catch (err) {
        await daemon.stop("start failed").catch(() => {});
        throw new Error(`daemon failed to start: ${(err as Error).message}\n${logs.lines.slice(-20).join("\n")}`, {
          cause: err,
        });
      }
      const port = daemon.address()?.port;
      if (!port) throw new Error("daemon is not listening");
      return new TestDaemon(daemon, load, dir, dataDir, port, logs);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get config(): Config {
    return this.load.config;
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** The last `n` log lines (JSON), for failure messages. */
  logTail(n = 20): string {
    return this.logs.lines.slice(-n).join("\n");
  }

  async request<T = Json>(path: string, opts: RequestOptions = {}): Promise<Res<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | ReadableStream<Uint8Array> | undefined;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["content-type"] ??= "application/json";
    } else if (opts.raw !== undefined) {
      body = opts.raw;
      headers["content-type"] ??= "application/json";
    }
    const init: RequestInit & { duplex?: "half" } = {
      method: opts.method ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
    };
    if (body instanceof ReadableStream) init.duplex = "half";
    const r = await fetch(`${this.base}${path}`, init);
    const text = await r.text();
    let parsed: unknown = text;
    if ((r.headers.get("content-type") ?? "").includes("json")) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: r.status, headers: r.headers, text, body: parsed as T };
  }

  get<T = Json>(path: string, token?: string): Promise<Res<T>> {
    return this.request<T>(path, { token });
  }

  post<T = Json>(path: string, json: unknown, token?: string): Promise<Res<T>> {
    return this.request<T>(path, { json, token });
  }

  /** `POST /api/auth/login` as is. */
  loginResponse(username: string, password: string): Promise<Res> {
    return this.post("/api/auth/login", { username, password });
  }

  /** Logs in and returns the token; throws (with the response) when the login is refused. */
  async login(username: string, password: string): Promise<string> {
    const r = await this.loginResponse(username, password);
    if (r.status !== 200 || typeof r.body.token !== "string")
      throw new Error(`login as ${username} failed: ${r.status} ${r.text}`);
    return r.body.token;
  }

  /** A token for the {@link USERS} entry of `role`, logged in once per daemon and cached. */
  async tokenFor(role: Role): Promise<string> {
    let t = this.tokens.get(role);
    if (!t) {
      t = await this.login(USERS[role].username, USERS[role].password);
      this.tokens.set(role, t);
    }
    return t;
  }

  /**
   * A genuine token (signed with this daemon's secret, read from `<data_dir>/token-secret` by a second Auth on the
   * same data dir) that was issued `agoS` seconds ago and so has expired when agoS > auth.token_ttl_s.
   */
  async expiredToken(role: Role = "viewer", agoS = 3_600): Promise<string> {
    const past = new Auth({
      env: {},
      clock: new SimClock(Date.now() - agoS * 1000),
      config: { data_dir: this.dataDir, auth: this.config.auth },
    });
    await past.init();
    return (await past.login(USERS[role].username, USERS[role].password)).token;
  }

  /** Polls `check` every `everyMs` until it returns a truthy value; throws with `what` after `timeoutMs`. */
  async until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 50) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** Stops the daemon and removes the temp dir. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      try {
        await this.daemon.stop("test finished");
      } finally {
        rmSync(this.dir, { recursive: true, force: true });
      }
    })();
    return this.stopped;
  }
}

/**
 * Creates the users of {@link USERS} (other than the bootstrap admin) through a separate Auth on the daemon's data
 * dir before it starts; it also bootstraps the admin and the token secret, which the daemon then reuses.
 */
async function createUsers(config: Config): Promise<void> {
  const auth = new Auth({ env: {}, config: { data_dir: config.data_dir, auth: config.auth } });
  await auth.init();
  for (const role of ["viewer", "operator", "engineer"] as const)
    await auth.addUser(USERS[role].username, USERS[role].password, role);
}
