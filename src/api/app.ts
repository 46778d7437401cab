import { Type } from "@sinclair/typebox";
import { Hono, type MiddlewareHandler } from "hono";
import type { Config } from "../config/index.js";
import { GlassdError, NotFoundError, UnavailableError, ValidationError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../health/metrics.js";
import { type Pipeline, RejectedSamplesError } from "../pipeline/pipeline.js";
import { peerAddress } from "./auth/index.js";
import { DASHBOARD_HTML } from "./dashboard.js";
import { type Access, Routes } from "./routes.js";
import { SensorPayload, toReadings } from "./sensor-payload.js";

/** What the API reads from the rest of the daemon. Everything here is read-only except `pipeline.process`. */
export interface ApiDeps {
  config: Config;
  version: string;
  log: Logger;
  metrics: Metrics;
  pipeline: Pipeline;
  /** Liveness/readiness as the daemon sees it. */
  health(): HealthReport;
  auth: {
    guard(access: Access): MiddlewareHandler;
    login(username: string, password: string, ip: string): Promise<{ token: string; expires_at: string; role: string }>;
  };
  quarantine: {
    query(q: { reason?: string; tag?: string; limit: number }): unknown[];
    countsByReason(): Record<string, number>;
  };
  samples: {
    range(
      tag: string,
      fromTs: number,
      toTs: number,
      limit: number,
    ): Array<{ tag: string; ts: number; value: number; quality: string; source: string; seq: number }>;
  };
  storageStats(): Record<string, unknown>;
  wsStats(): Record<string, unknown>;
  /** Stored predictions in a time range, oldest first; absent when inference is off. */
  predictions?(from: number, to: number, limit: number): unknown[];
  /** Per-model call latency (ms) of the live versions; absent when inference is off. */
  modelLatency?(): Record<string, { p50: number | null; p99: number | null; mean: number | null; count: number }>;
}

export interface HealthReport {
  status: "ok" | "degraded" | "safe_mode" | "starting" | "stopping";
  live: boolean;
  ready: boolean;
  safe_mode: boolean;
  config_errors: Array<{ path: string; message: string }>;
  checks: Record<string, { ok: boolean; detail?: string }>;
  uptime_s: number;
  version: string;
}

export function createApp(deps: ApiDeps): { app: Hono; routes: Routes } {
  const app = new Hono();
  const startedAt = new Date().toISOString();

  app.onError((err, c) => {
    if (err instanceof GlassdError) {
      if (err.status >= 500 && err.status !== 503) deps.log.error({ err }, "request failed");
      // Auth errors carry their own headers (WWW-Authenticate, Retry-After).
      const own = (err as { headers?: Record<string, string> }).headers;
      const headers: Record<string, string> =
        own ?? (err.status === 401 ? { "WWW-Authenticate": 'Bearer realm="glassd"' } : {});
      return c.json(
        { error: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) },
        err.status as 400,
        headers,
      );
    }
    // Hono's own HTTPException (e.g. from middleware) carries its response.
    const maybe = err as { getResponse?: () => Response };
    if (typeof maybe.getResponse === "function") return maybe.getResponse();
    deps.log.error({ err }, "unhandled error in request");
    return c.json({ error: "internal_error", message: "internal error; see the daemon log" }, 500);
  });
  app.notFound((c) =>
    c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path}; see /openapi.json` }, 404),
  );

  const routes = new Routes(app, deps.auth.guard, deps.config.server.max_body_bytes);
  const p = deps.pipeline;
  const knownTags = new Set(deps.config.tags.map((t) => t.id));

  routes.add(
    {
      method: "get",
      path: "/",
      summary: "Built-in HMI page (logs in, then follows the WebSocket)",
      access: "public",
      tag: "dashboard",
    },
    (c) =>
      c.html(DASHBOARD_HTML, 200, {
        "Content-Security-Policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
      }),
  );

  routes.add(
    {
      method: "get",
      path: "/health",
      summary: "Liveness, safe mode and config errors",
      access: "public",
      tag: "health",
    },
    (c) => {
      const h = deps.health();
      return c.json(h, h.live ? 200 : 503);
    },
  );
  routes.add(
    {
      method: "get",
      path: "/ready",
      summary: "Readiness: 200 when serving live data",
      access: "public",
      tag: "health",
      errors: { 503: "not ready; the body says why" },
    },
    (c) => {
      const h = deps.health();
      return c.json({ ready: h.ready, status: h.status, checks: h.checks }, h.ready ? 200 : 503);
    },
  );
  routes.add(
    { method: "get", path: "/metrics", summary: "Prometheus metrics", access: "public", tag: "health" },
    async (c) => {
      return c.text(await deps.metrics.registry.metrics(), 200, { "Content-Type": deps.metrics.registry.contentType });
    },
  );
  routes.add(
    { method: "get", path: "/openapi.json", summary: "This API's OpenAPI document", access: "public", tag: "health" },
    (c) => c.json(routes.openapi({ title: "glassd API", version: deps.version }) as object),
  );

  routes.add(
    {
      method: "post",
      path: "/api/auth/login",
      summary: "Log in with username and password; returns a short-lived bearer token",
      access: "public",
      tag: "auth",
      body: Type.Object(
        {
          username: Type.String({ minLength: 1, maxLength: 64 }),
          password: Type.String({ minLength: 1, maxLength: 1024 }),
        },
        { additionalProperties: false },
      ),
      response: Type.Object({ token: Type.String(), expires_at: Type.String(), role: Type.String() }),
      errors: { 401: "wrong username or password", 429: "too many failed attempts" },
    },
    async (c, { body }) => {
      c.header("Cache-Control", "no-store");
      return c.json(await deps.auth.login(body.username, body.password, peerAddress(c)));
    },
  );

  routes.add(
    {
      method: "post",
      path: "/api/pipeline/process",
      summary: "Validate sensor readings (flat or nested), store them and run a pipeline tick on them",
      access: "operator",
      tag: "pipeline",
      body: SensorPayload,
      errors: {
        400: "a field is unknown, of the wrong type or out of range; all readings were quarantined",
        503: "safe mode: read-only",
      },
    },
    async (c, { body }) => {
      if (deps.health().safe_mode)
        throw new UnavailableError(
          "safe mode: the configuration is invalid, so the daemon is read-only (see /health)",
          "safe_mode",
        );
      const { readings, ts, issues } = toReadings(body, p.now(), knownTags);
      if (issues.length) throw new ValidationError("request body is invalid", issues);
      try {
        return c.json(await p.process(readings, ts));
      } catch (err) {
        if (err instanceof RejectedSamplesError) {
          throw new ValidationError(
            `${err.rejections.length} reading(s) rejected; every reading of this request was quarantined (GET /api/quarantine)`,
            err.rejections.map((r) => ({ path: `/${r.tag}`, message: `${r.reason}: ${r.detail}` })),
          );
        }
        throw err;
      }
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/pipeline/latest",
      summary: "The latest pipeline result",
      access: "viewer",
      tag: "pipeline",
      errors: { 503: "no tick has run yet" },
    },
    (c) => {
      const r = p.latestResult();
      if (!r) throw new UnavailableError("no pipeline tick has run yet", "no_result");
      return c.json(r);
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/features/latest",
      summary: "Latest engineered features",
      access: "viewer",
      tag: "features",
      errors: { 503: "no features yet" },
    },
    (c) => {
      // Serialised once per tick, on the first request after it: dashboards poll this route.
      const json = p.latestFeaturesJson();
      if (!json) throw new UnavailableError("no features computed yet: the first tick has not run", "no_features");
      return c.body(json, 200, { "Content-Type": "application/json" });
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/explainability/prediction",
      summary: "Explanation (SHAP/LIME) of the latest prediction",
      access: "viewer",
      tag: "explainability",
      query: Type.Object(
        {
          model_name: Type.Optional(
            Type.Union([Type.Literal("lstm"), Type.Literal("gnn"), Type.Literal("vit"), Type.Literal("ensemble")]),
          ),
        },
        { additionalProperties: false },
      ),
      errors: { 503: "no model loaded, so there is no prediction to explain" },
    },
    (_c, { query }) => {
      throw new UnavailableError(
        `no ${query.model_name ?? "ensemble"} model is loaded, so there is no prediction to explain`,
        "model_not_loaded",
      );
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/pipeline/metrics",
      summary: "Pipeline executions, failures and per-stage latency percentiles",
      access: "viewer",
      tag: "pipeline",
    },
    (c) => {
      const s = p.stats();
      return c.json({
        timestamp: new Date().toISOString(),
        pipeline_metrics: {
          pipeline_executions: s.executions,
          successful_predictions: s.successful_predictions,
          failed_predictions: s.failed_predictions,
          failed_ticks: s.failures,
          skipped_ticks: s.skipped,
          avg_latency_ms: s.stages.total?.mean_ms ?? null,
          feature_extraction_time_ms: s.stages.features?.mean_ms ?? null,
          prediction_time_ms: s.stages.models?.mean_ms ?? null,
          explanation_time_ms: null,
          feature_buffer_size: p.latestFeatures()?.names.length ?? 0,
          stage_latency_ms: s.stages,
          model_latency_ms: deps.modelLatency?.() ?? {},
        },
        system_metrics: { total_predictions: s.successful_predictions, total_alerts: 0, uptime_start: startedAt },
        ingest: { quarantined_by_reason: deps.quarantine.countsByReason(), storage: deps.storageStats() },
        websocket: deps.wsStats(),
      });
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/autonomy/status",
      summary: "Autonomy mode, counts and the envelope in force",
      access: "viewer",
      tag: "autonomy",
    },
    (c) =>
      c.json({
        timestamp: new Date().toISOString(),
        mode: "off",
        autonomy_enabled: false,
        autonomous_actions_count: 0,
        approval_required_count: 0,
        safety_checks_enabled: false,
        actions_to_execute: [],
        actions_requiring_approval: [],
        envelope: null,
        reason: "no actuation gate exists yet: glassd is advisory-only and writes nothing to the plant",
        read_only: deps.health().safe_mode,
      }),
  );

  routes.add(
    {
      method: "get",
      path: "/api/training/status",
      summary: "Continual-learning state",
      access: "viewer",
      tag: "training",
    },
    (c) =>
      c.json({
        timestamp: new Date().toISOString(),
        continual_learning_enabled: false,
        experience_buffer_size: 0,
        learning_cycles_completed: 0,
        status: "unavailable",
        reason: "continual learning is not built yet: no replay buffer, drift detection or adaptation runs",
      }),
  );

  routes.add(
    {
      method: "get",
      path: "/api/quarantine",
      summary: "Rejected samples with their reasons, newest first",
      access: "viewer",
      tag: "ingest",
      query: Type.Object(
        {
          reason: Type.Optional(Type.String({ maxLength: 64 })),
          tag: Type.Optional(Type.String({ maxLength: 64 })),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        },
        { additionalProperties: false },
      ),
    },
    (c, { query }) =>
      c.json({ counts_by_reason: deps.quarantine.countsByReason(), items: deps.quarantine.query(query) }),
  );

  routes.add(
    {
      method: "get",
      path: "/api/sensors/latest",
      summary: "Latest accepted value of every tag",
      access: "viewer",
      tag: "ingest",
    },
    (c) => c.json({ timestamp: new Date().toISOString(), samples: p.latestSamples() }),
  );

  routes.add(
    {
      method: "get",
      path: "/api/samples",
      summary: "Stored samples of one tag in a time range, oldest first (trends)",
      access: "viewer",
      tag: "ingest",
      query: Type.Object(
        {
          tag: Type.String({ minLength: 1, maxLength: 64 }),
          from: Type.Optional(Type.Number({ description: "ms epoch; default: an hour before `to`" })),
          to: Type.Optional(Type.Number({ description: "ms epoch; default: now (line time)" })),
          limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        },
        { additionalProperties: false },
      ),
      errors: { 404: "unknown tag" },
    },
    (c, { query }) => {
      if (!knownTags.has(query.tag)) throw new NotFoundError(`unknown tag "${query.tag}"; GET /api/tags lists them`);
      const to = query.to ?? p.now();
      const from = query.from ?? to - 3_600_000;
      const samples = deps.samples.range(query.tag, from, to, query.limit);
      return c.json({ tag: query.tag, from, to, count: samples.length, samples });
    },
  );

  routes.add(
    {
      method: "get",
      path: "/api/predictions",
      summary: "Stored model predictions (one a minute of line time), oldest first",
      access: "viewer",
      tag: "models",
      query: Type.Object(
        {
          from: Type.Optional(Type.Number({ description: "ms epoch; default: a day before `to`" })),
          to: Type.Optional(Type.Number({ description: "ms epoch; default: now (line time)" })),
          limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1440 }),
        },
        { additionalProperties: false },
      ),
      errors: { 503: "inference is disabled" },
    },
    (c, { query }) => {
      if (!deps.predictions)
        throw new UnavailableError("inference is disabled (inference.enabled is false)", "inference_disabled");
      const to = query.to ?? p.now();
      const from = query.from ?? to - 86_400_000;
      const items = deps.predictions(from, to, query.limit);
      return c.json({ from, to, count: items.length, predictions: items });
    },
  );

  routes.add(
    { method: "get", path: "/api/tags", summary: "The tag dictionary in force", access: "viewer", tag: "ingest" },
    (c) => c.json({ line_id: deps.config.line.id, tags: deps.config.tags }),
  );

  return { app, routes };
}
