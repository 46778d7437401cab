import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { type ApiDeps, createApp, type HealthReport } from "./api/app.js";
import { createFramesApp, FRAME_ROUTE_SPECS } from "./api/frames-routes.js";
import { createModelsApp } from "./api/models-routes.js";
import type { LoadResult } from "./config/index.js";
import type { Issue } from "./core/errors.js";
import { createLogger, type Logger } from "./core/logger.js";
import { type Service, throwIfAborted } from "./core/service.js";
import { Metrics } from "./health/metrics.js";
import { createNotifier, type Notifier } from "./health/sd-notify.js";
import type { ModelRegistry } from "./inference/registry.js";
import { Pipeline } from "./pipeline/pipeline.js";
import { VERSION } from "./version.js";
import { type Parts, wireParts } from "./wiring.js";

export interface DaemonOptions {
  load: LoadResult;
  env?: NodeJS.ProcessEnv;
  /** Bound on the whole shutdown; past it the process exits anyway (systemd's TimeoutStopSec is above it). */
  shutdownTimeoutMs?: number;
  logDestination?: NodeJS.WritableStream;
}

type Phase = "created" | "starting" | "running" | "stopping" | "stopped";

/**
 * Composition root: builds every service, starts them in order, stops them in reverse (each in its own
 * try/catch, within a bound), and speaks sd_notify. A bad config still starts the API in safe mode.
 */
export class Daemon {
  readonly log: Logger;
  private readonly logs: ReturnType<typeof createLogger>;
  private readonly notifier: Notifier;
  private readonly metrics = new Metrics();
  private readonly started: Service[] = [];
  private readonly abort = new AbortController();
  private phase: Phase = "created";
  private parts: Parts | undefined;
  private pipeline: Pipeline | undefined;
  private server: ServerType | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private stopping: Promise<void> | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly opts: DaemonOptions) {
    const { config } = opts.load;
    this.logs = createLogger({ level: config.log.level, levels: config.log.levels, destination: opts.logDestination });
    this.log = this.logs.child("daemon");
    this.notifier = createNotifier(opts.env ?? process.env, (err) => this.log.warn({ err }, "sd_notify failed"));
  }

  get safeMode(): boolean {
    return this.opts.load.safeMode;
  }

  /** The bound address once listening. */
  address(): AddressInfo | undefined {
    return this.server?.address() as AddressInfo | undefined;
  }

  /** Aborts a start in progress (a signal during start). */
  abortStart(reason = "shutdown requested during start"): void {
    this.abort.abort(new Error(reason));
  }

  /** Starts every service in order; a stop meanwhile aborts it (see `stop`). Idempotent. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const signal = this.abort.signal;
    const { config, issues, safeMode } = this.opts.load;
    this.phase = "starting";
    if (safeMode) {
      this.log.error(
        { config_errors: issues },
        "invalid configuration: starting in SAFE MODE (API up, read-only, no sources, no actuation)",
      );
      this.notifier.status("safe mode: invalid configuration");
    }
    this.log.info(
      { version: VERSION, data_dir: config.data_dir, source: config.source.type, safe_mode: safeMode },
      "glassd starting",
    );

    const parts = await wireParts(config, { logs: this.logs, metrics: this.metrics, safeMode, signal });
    this.parts = parts;
    this.started.push(...parts.started);
    throwIfAborted(signal);

    const pipeline = new Pipeline(
      config,
      parts.ports,
      parts.clock,
      this.metrics,
      this.logs.child("pipeline"),
      safeMode,
    );
    this.pipeline = pipeline;
    for (const source of parts.sources) source.attach(pipeline.sink);
    parts.inspections?.onInspection(pipeline.onInspection);
    await pipeline.start(signal);
    this.started.push(pipeline);
    for (const source of parts.sources) {
      await source.start(signal);
      this.started.push(source);
      throwIfAborted(signal);
    }

    const deps: ApiDeps = {
      config,
      version: VERSION,
      log: this.logs.child("api"),
      metrics: this.metrics,
      pipeline,
      health: () => this.health(),
      auth: parts.auth,
      quarantine: parts.quarantine,
      storageStats: parts.storageStats,
      wsStats: () => parts.hub.stats() as unknown as Record<string, unknown>,
      ...(parts.models ? { modelLatency: () => modelLatency(parts.models as ModelRegistry) } : {}),
      ...(parts.predictions
        ? { predictions: (from: number, to: number, limit: number) => parts.predictions!.range(from, to, limit) }
        : {}),
      samples: parts.samples,
    };
    const { app, routes } = createApp(deps);
    app.route("/", createFramesApp({ intake: parts.frames, guard: parts.auth.guard }));
    routes.specs.push(...FRAME_ROUTE_SPECS);
    const modelsApi = createModelsApp({
      registry: parts.models,
      guard: parts.auth.guard,
      maxBodyBytes: config.server.max_body_bytes,
    });
    app.route("/", modelsApi.app);
    routes.specs.push(...modelsApi.specs);
    this.server = await listen(app.fetch, config.server, signal);
    parts.hub.attach(this.server as Server);
    throwIfAborted(signal);

    this.phase = "running";
    const addr = this.address();
    this.log.info({ host: addr?.address, port: addr?.port, tls: Boolean(config.server.tls_cert_file) }, "glassd ready");
    this.notifier.ready(safeMode ? "safe mode: invalid configuration, read-only" : `serving on port ${addr?.port}`);
    if (this.notifier.watchdogIntervalMs > 0) {
      this.watchdogTimer = setInterval(() => {
        if (this.health().status === "ok" || this.safeMode) this.notifier.watchdog();
      }, this.notifier.watchdogIntervalMs);
    }
  }

  /** Stops everything in reverse order within the shutdown bound. Idempotent. */
  stop(reason = "stop requested"): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    const bound = this.opts.shutdownTimeoutMs ?? 10_000;
    this.phase = "stopping";
    this.abort.abort(new Error(reason));
    this.notifier.stopping();
    this.log.info({ reason, bound_ms: bound }, "glassd stopping");
    clearInterval(this.watchdogTimer);
    const work = (async () => {
      // A stop during start (a signal) first lets the aborted start give up at its next check, so everything it
      // had already opened is in `started` and is stopped below rather than cut off by the exit.
      await this.starting?.catch(() => {});
      try {
        await this.parts?.hub.close();
      } catch (err) {
        this.log.error({ err }, "closing the WebSocket hub failed");
      }
      if (this.server) {
        const srv = this.server;
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          (srv as { closeAllConnections?: () => void }).closeAllConnections?.();
        });
      }
      for (const s of [...this.started].reverse()) {
        try {
          await s.stop();
        } catch (err) {
          this.log.error({ err, service: s.name }, "service failed to stop cleanly");
        }
      }
    })();
    const timedOut = await Promise.race([
      work.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), bound).unref()),
    ]);
    if (timedOut) this.log.error({ bound_ms: bound }, "shutdown bound exceeded; exiting anyway");
    this.metrics.close();
    this.phase = "stopped";
    this.log.info("glassd stopped");
    this.notifier.close();
    await new Promise<void>((resolve) => this.logs.root.flush(() => resolve()));
  }

  health(): HealthReport {
    const { safeMode, issues } = this.opts.load;
    const checks: HealthReport["checks"] = {};
    const loopMs = this.metrics.eventLoopP99Ms();
    checks.event_loop = { ok: loopMs < 1000, detail: `p99 delay ${loopMs.toFixed(1)} ms` };
    if (this.parts) Object.assign(checks, this.parts.checks());
    const cfg = this.opts.load.config;
    if (!safeMode && this.pipeline) {
      const last = this.pipeline.lastTickWallTs();
      const age = last === undefined ? Number.POSITIVE_INFINITY : Date.now() - last;
      const limit = Math.max(5_000, cfg.pipeline.tick_interval_ms * 5);
      checks.pipeline = {
        ok: age <= limit,
        detail: last === undefined ? "no tick yet" : `last tick ${Math.round(age)} ms ago`,
      };
    }
    const running = this.phase === "running";
    const allOk = Object.values(checks).every((c) => c.ok);
    const status: HealthReport["status"] =
      this.phase === "starting" || this.phase === "created"
        ? "starting"
        : this.phase !== "running"
          ? "stopping"
          : safeMode
            ? "safe_mode"
            : allOk
              ? "ok"
              : "degraded";
    return {
      status,
      live: this.phase !== "stopped",
      ready: running && !safeMode && allOk,
      safe_mode: safeMode,
      config_errors: issues as Issue[],
      checks,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      version: VERSION,
    };
  }
}

async function listen(
  fetch: (req: Request) => Response | Promise<Response>,
  server: { host: string; port: number; tls_cert_file?: string; tls_key_file?: string },
  signal: AbortSignal,
): Promise<ServerType> {
  throwIfAborted(signal);
  const tls = server.tls_cert_file && server.tls_key_file;
  return await new Promise<ServerType>((resolve, reject) => {
    const srv = serve(
      {
        fetch,
        hostname: server.host,
        port: server.port,
        ...(tls
          ? {
              createServer: createHttpsServer,
              serverOptions: {
                cert: readFileSync(server.tls_cert_file as string),
                key: readFileSync(server.tls_key_file as string),
              },
            }
          : {}),
      },
      () => resolve(srv),
    );
    srv.once("error", reject);
  });
}

/** Latency of each live model, for /api/pipeline/metrics. */
function modelLatency(registry: ModelRegistry) {
  const out: Record<string, { p50: number | null; p99: number | null; mean: number | null; count: number }> = {};
  for (const name of registry.names()) {
    const l = registry.statusOf(name).latency_ms;
    if (l) out[name] = { p50: l.p50, p99: l.p99, mean: l.mean, count: l.count };
  }
  return out;
}
