import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { HealthReport } from "../src/api/app.js";
import { DEFAULT_TAGS } from "../src/config/index.js";
import { DOMAIN_FEATURES, PER_TAG_FEATURES } from "../src/features/feature-extractor.js";
import { type PipelineResult, STAGES } from "../src/pipeline/pipeline.js";
import { type Json, TestDaemon } from "./helpers/daemon.js";

/*
 * Contract of every HTTP route, over a real socket, against a daemon running the digital twin with a 200 ms tick.
 * Shapes follow README's API table and SEED-API.md's field names (the ones dashboards already read).
 */

const TAG_IDS = DEFAULT_TAGS.map((t) => t.id);
const SEED_RESULT_KEYS = [
  "timestamp",
  "sensor_data",
  "engineered_features",
  "predictions",
  "explanations",
  "recommendations",
  "autonomous_actions",
  "performance_metrics",
];

/** Every route the API documents, with the role it needs. A route added or removed must update this list. */
const ROUTES: Record<string, Record<string, string>> = {
  "/": { get: "public" },
  "/health": { get: "public" },
  "/ready": { get: "public" },
  "/metrics": { get: "public" },
  "/openapi.json": { get: "public" },
  "/api/auth/login": { post: "public" },
  "/api/pipeline/process": { post: "operator" },
  "/api/pipeline/latest": { get: "viewer" },
  "/api/features/latest": { get: "viewer" },
  "/api/explainability/prediction": { get: "viewer" },
  "/api/pipeline/metrics": { get: "viewer" },
  "/api/autonomy/status": { get: "viewer" },
  "/api/training/status": { get: "viewer" },
  "/api/quarantine": { get: "viewer" },
  "/api/sensors/latest": { get: "viewer" },
  "/api/samples": { get: "viewer" },
  "/api/tags": { get: "viewer" },
  "/api/frames": { post: "operator" },
  "/api/frames/recent": { get: "viewer" },
  "/api/frames/stats": { get: "viewer" },
  "/api/frames/{id}": { get: "viewer" },
  "/api/frames/{id}/thumbnail": { get: "viewer" },
  "/api/frames/{id}/original": { get: "viewer" },
  "/api/models": { get: "viewer" },
  "/api/models/{name}": { get: "viewer" },
  "/api/models/{name}/activate": { post: "engineer" },
  "/api/models/{name}/rollback": { post: "engineer" },
  "/api/models/{name}/shadow": { post: "engineer", delete: "engineer" },
  "/api/models/{name}/promote": { post: "engineer" },
  "/api/models/reload": { post: "engineer" },
  "/api/predictions": { get: "viewer" },
};

const isIso = (s: unknown) => typeof s === "string" && !Number.isNaN(Date.parse(s)) && s.includes("T");
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

let d: TestDaemon;
let viewer = "";

const api = suite("api routes (twin line, 200 ms tick)");

api.before(async () => {
  d = await TestDaemon.start({ source: "twin", tickIntervalMs: 200 });
  viewer = await d.tokenFor("viewer");
  // /ready turns 200 at the first tick, which may precede the twin's first samples: wait for a tick that has data.
  await d.until("a tick with twin data", async () => {
    const r = await d.get<PipelineResult>("/api/pipeline/latest", viewer);
    return r.status === 200 && r.body.sensor_data.furnace_temperature !== null;
  });
});
api.after(async () => {
  await d?.stop();
});

api("GET /ready answers 200 once the pipeline ticks on the twin", async () => {
  const r = await d.until(
    "/ready 200",
    async () => {
      const x = await d.get("/ready");
      return x.status === 200 ? x : undefined;
    },
    10_000,
  );
  assert.is(r.body.ready, true);
  assert.is(r.body.status, "ok");
  const checks = r.body.checks as HealthReport["checks"];
  for (const k of ["event_loop", "storage", "source", "pipeline"]) assert.is(checks[k]?.ok, true, `check ${k}`);
});

api("GET /health: live, status ok, no config errors, named checks with details", async () => {
  const r = await d.get<HealthReport>("/health");
  assert.is(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /application\/json/);
  const h = r.body;
  assert.is(h.status, "ok");
  assert.is(h.live, true);
  assert.is(h.ready, true);
  assert.is(h.safe_mode, false);
  assert.equal(h.config_errors, []);
  for (const k of ["event_loop", "storage", "source", "pipeline"]) {
    assert.type(h.checks[k]?.ok, "boolean", `check ${k}`);
    assert.type(h.checks[k]?.detail, "string", `check ${k} detail`);
  }
  assert.match(h.checks.source?.detail ?? "", /twin at/);
  assert.ok(isNum(h.uptime_s) && h.uptime_s >= 0);
  assert.type(h.version, "string");
});

api("GET /metrics: Prometheus text with stage histograms, validation counts, event loop and RSS", async () => {
  const r = await d.get("/metrics");
  assert.is(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
  const text = r.text;
  for (const name of [
    "glassd_pipeline_stage_duration_seconds",
    "glassd_samples_validated_total",
    "glassd_event_loop_delay_p99_seconds",
    "glassd_process_resident_memory_bytes",
  ])
    assert.ok(text.includes(`# TYPE ${name} `), `${name} declared`);
  const value = (re: RegExp) => {
    const m = re.exec(text);
    assert.ok(m, `${re} present`);
    return Number(m?.[1]);
  };
  assert.ok(value(/^glassd_pipeline_stage_duration_seconds_count\{stage="features"\} (\S+)$/m) >= 1);
  assert.ok(value(/^glassd_pipeline_stage_duration_seconds_bucket\{le="\+Inf",stage="features"\} (\S+)$/m) >= 1);
  // Stages that do not exist yet are not timed: no invented latencies.
  assert.not.match(text, /glassd_pipeline_stage_duration_seconds_count\{stage="models"\}/);
  assert.ok(value(/^glassd_samples_validated_total\{outcome="accepted"\} (\S+)$/m) >= 1);
  assert.ok(value(/^glassd_samples_validated_total\{outcome="out_of_range"\} (\S+)$/m) >= 0);
  assert.ok(value(/^glassd_event_loop_delay_p99_seconds (\S+)$/m) >= 0);
  assert.ok(value(/^glassd_process_resident_memory_bytes (\S+)$/m) > 1_000_000);
});

api("GET /openapi.json: OpenAPI 3.1 listing every route with x-required-role", async () => {
  const r = await d.get("/openapi.json");
  assert.is(r.status, 200);
  const doc = r.body as { openapi: string; info: Json; paths: Record<string, Record<string, Json>>; components: Json };
  assert.is(doc.openapi, "3.1.0");
  assert.type(doc.info.version, "string");
  assert.equal(Object.keys(doc.paths).sort(), Object.keys(ROUTES).sort());
  for (const [path, methods] of Object.entries(ROUTES)) {
    assert.equal(Object.keys(doc.paths[path] ?? {}), Object.keys(methods), `methods of ${path}`);
    for (const [method, role] of Object.entries(methods)) {
      const op = doc.paths[path]?.[method] as Json;
      assert.is(op["x-required-role"], role, `${method} ${path}`);
      assert.type(op.summary, "string");
      const responses = op.responses as Json;
      assert.ok(responses["200"] ?? responses["201"], `${method} ${path} documents 200 (or 201)`);
      if (role === "public") assert.is(op.security, undefined, `${path} has no security`);
      else {
        assert.equal(op.security, [{ bearer: [] }, { apiKey: [] }], `${path} security`);
        assert.ok(responses["401"] && responses["403"], `${path} documents 401 and 403`);
      }
    }
  }
  const schemes = (doc.components.securitySchemes ?? {}) as Json;
  assert.equal(schemes.bearer, { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  assert.equal(schemes.apiKey, { type: "apiKey", in: "header", name: "X-API-Key" });
});

api(
  "GET /openapi.json: request schemas are the ones that validate (process body, login body, query params)",
  async () => {
    const doc = (await d.get("/openapi.json")).body as { paths: Record<string, Record<string, Json>> };
    const op = (path: string, method: string): Json => {
      const o = doc.paths[path]?.[method];
      assert.ok(o, `${method} ${path} documented`);
      return o as Json;
    };
    const processOp = op("/api/pipeline/process", "post");
    const body = processOp.requestBody as { required: boolean; content: Record<string, { schema: Json }> };
    assert.is(body.required, true);
    const schema = body.content["application/json"]?.schema as Json;
    assert.is(schema.type, "object");
    assert.is(schema.additionalProperties, true);
    const props = schema.properties as Json;
    assert.ok(props.timestamp && props.sensors, "timestamp and sensors documented");
    const responses = processOp.responses as Json;
    for (const s of ["400", "413", "503"]) assert.ok(responses[s], `process documents ${s}`);

    const login = op("/api/auth/login", "post").requestBody as {
      content: Record<string, { schema: Json }>;
    };
    const loginSchema = login.content["application/json"]?.schema as Json;
    assert.equal([...(loginSchema.required as string[])].sort(), ["password", "username"]);
    assert.is(loginSchema.additionalProperties, false);

    const params = op("/api/quarantine", "get").parameters as Array<{
      name: string;
      in: string;
      required: boolean;
      schema: Json;
    }>;
    const limit = params.find((p) => p.name === "limit");
    assert.ok(limit);
    assert.is(limit?.in, "query");
    assert.is(limit?.schema.minimum, 1);
    assert.is(limit?.schema.maximum, 1000);
    assert.equal(params.map((p) => p.name).sort(), ["limit", "reason", "tag"]);
    const samples = op("/api/samples", "get").parameters as Array<{ name: string; required: boolean }>;
    assert.is(samples.find((p) => p.name === "tag")?.required, true);
  },
);

api("every documented GET route is served (documentation and router agree)", async () => {
  const admin = await d.tokenFor("admin");
  for (const [path, methods] of Object.entries(ROUTES)) {
    if (!methods.get) continue;
    const concrete = path.replace("{name}", "forecaster").replace("{id}", "1");
    const r = await d.get(path === "/api/samples" ? `${concrete}?tag=furnace_temperature` : concrete, admin);
    // A path parameter names one item: a frame id that may not exist (yet) is a clean 404.
    const ok = path.includes("{id}") ? [200, 404, 503] : [200, 503];
    assert.ok(ok.includes(r.status), `GET ${path} → ${r.status} ${r.text.slice(0, 200)}`);
  }
});

api("unknown route → 404 JSON pointing at /openapi.json", async () => {
  const r = await d.get("/api/no-such-thing", viewer);
  assert.is(r.status, 404);
  assert.is(r.body.error, "not_found");
  assert.match(String(r.body.message), /openapi\.json/);
});

api("GET /api/pipeline/latest: the latest timer tick in the seed shape, unavailable stages said so", async () => {
  const r = await d.get<PipelineResult>("/api/pipeline/latest", viewer);
  assert.is(r.status, 200);
  const p = r.body;
  for (const k of [...SEED_RESULT_KEYS, "stages", "inspection", "ingest", "tick", "trigger", "line_id"])
    assert.ok(k in p, `result has ${k}`);
  assert.ok(isIso(p.timestamp));
  assert.is(p.trigger, "timer");
  assert.is(p.line_id, "Line_A");
  assert.ok(Number.isInteger(p.tick) && p.tick >= 1);
  assert.equal(Object.keys(p.sensor_data).sort(), [...TAG_IDS].sort());
  const ft = p.sensor_data.furnace_temperature;
  assert.ok(isNum(ft) && ft >= 1000 && ft <= 1800, `furnace_temperature ${ft}`);
  assert.is(p.predictions.status, "unavailable");
  assert.ok(p.predictions.reason.length > 0);
  assert.is(p.explanations.status, "unavailable");
  assert.ok(p.explanations.reason.length > 0);
  assert.equal(p.recommendations, []);
  const a = p.autonomous_actions;
  assert.is(a.enabled, false);
  assert.equal(a.actions_to_execute, []);
  assert.equal(a.actions_requiring_approval, []);
  assert.is(a.risk_assessment.status, "unavailable");
  assert.type(a.safety_checks_passed, "boolean");
  assert.equal(Object.keys(p.stages).sort(), [...STAGES].sort());
  for (const s of ["models", "explain", "recommend", "autonomy"] as const) {
    assert.is(p.stages[s].status, "unavailable", `stage ${s}`);
    assert.ok((p.stages[s].reason ?? "").length > 0, `stage ${s} reason`);
  }
  for (const s of ["validate", "features", "publish", "store"] as const) assert.is(p.stages[s].status, "ok", s);
  const pm = p.performance_metrics;
  for (const k of ["total_latency_ms", "feature_extraction_ms", "prediction_ms", "explanation_ms"] as const)
    assert.ok(isNum(pm[k]) && pm[k] >= 0, `performance_metrics.${k}`);
  assert.ok(pm.total_latency_ms >= pm.feature_extraction_ms);
  assert.is(Object.keys(p.engineered_features).length, 266);
  assert.type(p.inspection.items_inspected, "number");
});

api("GET /api/features/latest: 266 named features (per tag × 17, then domain.*), numbers or null", async () => {
  const r = await d.get("/api/features/latest", viewer);
  assert.is(r.status, 200);
  assert.ok(isIso(r.body.timestamp));
  assert.is(r.body.feature_count, 266);
  const f = r.body.features as Record<string, number | null>;
  const names = Object.keys(f);
  const expected = [
    ...TAG_IDS.flatMap((t) => PER_TAG_FEATURES.map((x) => `${t}.${x}`)),
    ...DOMAIN_FEATURES.map((x) => `domain.${x}`),
  ];
  assert.is(expected.length, 266);
  assert.equal(names, expected);
  for (const [n, v] of Object.entries(f)) assert.ok(v === null || isNum(v), `${n} = ${v}`);
  const mean = f["furnace_temperature.mean"];
  assert.ok(isNum(mean) && mean > 1000 && mean < 1800, `furnace_temperature.mean ${mean}`);
  const visc = f["domain.viscosity_log10"];
  // Soda-lime melt near 1500 °C: log10 η ≈ 1-2 Pa·s.
  assert.ok(isNum(visc) && visc > 0.5 && visc < 3, `domain.viscosity_log10 ${visc}`);
  assert.ok(isNum(f["furnace_temperature.count"]) && (f["furnace_temperature.count"] as number) >= 1);
});

api("GET /api/explainability/prediction: 503 model_not_loaded; model_name validated", async () => {
  const r = await d.get("/api/explainability/prediction", viewer);
  assert.is(r.status, 503);
  assert.is(r.body.error, "model_not_loaded");
  for (const m of ["lstm", "gnn", "vit", "ensemble"]) {
    const x = await d.get(`/api/explainability/prediction?model_name=${m}`, viewer);
    assert.is(x.status, 503, m);
    assert.is(x.body.error, "model_not_loaded");
    assert.match(String(x.body.message), m);
  }
  const bad = await d.get("/api/explainability/prediction?model_name=bogus", viewer);
  assert.is(bad.status, 400);
  assert.is(bad.body.error, "validation_error");
  assert.equal(
    (bad.body.details as Array<{ path: string }>).map((i) => i.path),
    ["/model_name"],
  );
  const extra = await d.get("/api/explainability/prediction?model=lstm", viewer);
  assert.is(extra.status, 400);
});

api("GET /api/pipeline/metrics: SEED-API field names with measured values and stage percentiles", async () => {
  const r = await d.get("/api/pipeline/metrics", viewer);
  assert.is(r.status, 200);
  assert.ok(isIso(r.body.timestamp));
  const pm = r.body.pipeline_metrics as Json;
  for (const k of [
    "pipeline_executions",
    "successful_predictions",
    "failed_predictions",
    "avg_latency_ms",
    "feature_extraction_time_ms",
    "prediction_time_ms",
    "explanation_time_ms",
    "feature_buffer_size",
    "stage_latency_ms",
  ])
    assert.ok(k in pm, `pipeline_metrics.${k}`);
  assert.ok(Number.isInteger(pm.pipeline_executions) && (pm.pipeline_executions as number) >= 1);
  // No model exists: nothing may claim a prediction or its latency.
  assert.is(pm.successful_predictions, 0);
  assert.is(pm.failed_predictions, 0);
  assert.is(pm.prediction_time_ms, null);
  assert.is(pm.explanation_time_ms, null);
  assert.ok(isNum(pm.avg_latency_ms) && pm.avg_latency_ms >= 0);
  assert.ok(isNum(pm.feature_extraction_time_ms));
  assert.is(pm.feature_buffer_size, 266);
  const stages = pm.stage_latency_ms as Record<string, Record<string, number | null>>;
  for (const s of [...STAGES, "total"]) assert.ok(stages[s], `stage_latency_ms.${s}`);
  for (const s of ["features", "publish", "store", "total"]) {
    const w = stages[s] as Record<string, number>;
    assert.ok((w.count as number) >= 1, `${s} observed`);
    for (const q of ["p50_ms", "p95_ms", "p99_ms", "max_ms"]) assert.ok(isNum(w[q]) && (w[q] as number) >= 0, q);
    assert.ok((w.p50_ms as number) <= (w.p95_ms as number) && (w.p95_ms as number) <= (w.p99_ms as number));
    assert.ok((w.p99_ms as number) <= (w.max_ms as number));
  }
  assert.equal(stages.models, { count: 0, mean_ms: null, p50_ms: null, p95_ms: null, p99_ms: null, max_ms: null });
  const sys = r.body.system_metrics as Json;
  assert.is(sys.total_predictions, 0);
  assert.is(sys.total_alerts, 0);
  assert.ok(isIso(sys.uptime_start));
  assert.type((r.body.ingest as Json).quarantined_by_reason, "object");
  assert.type((r.body.ingest as Json).storage, "object");
  assert.type((r.body.websocket as Json).clients, "number");
});

api("GET /api/autonomy/status: off, advisory only, seed fields present", async () => {
  const r = await d.get("/api/autonomy/status", viewer);
  assert.is(r.status, 200);
  const b = r.body;
  assert.ok(isIso(b.timestamp));
  assert.is(b.mode, "off");
  assert.is(b.autonomy_enabled, false);
  assert.is(b.autonomous_actions_count, 0);
  assert.is(b.approval_required_count, 0);
  assert.is(b.safety_checks_enabled, false);
  assert.equal(b.actions_to_execute, []);
  assert.equal(b.actions_requiring_approval, []);
  assert.is(b.envelope, null);
  assert.is(b.read_only, false);
  assert.type(b.reason, "string");
});

api("GET /api/training/status: honest 'unavailable' with the reason, nothing learnt", async () => {
  const r = await d.get("/api/training/status", viewer);
  assert.is(r.status, 200);
  const b = r.body;
  assert.ok(isIso(b.timestamp));
  assert.is(b.status, "unavailable");
  assert.ok(typeof b.reason === "string" && b.reason.length > 0);
  assert.is(b.continual_learning_enabled, false);
  assert.is(b.experience_buffer_size, 0);
  assert.is(b.learning_cycles_completed, 0);
});

api("GET /api/quarantine: items and counts; query by reason; limit bounds and unknown keys → 400", async () => {
  const r = await d.get("/api/quarantine", viewer);
  assert.is(r.status, 200);
  assert.type(r.body.counts_by_reason, "object");
  assert.ok(Array.isArray(r.body.items));
  const byReason = await d.get("/api/quarantine?reason=out_of_range&limit=1000", viewer);
  assert.is(byReason.status, 200);
  for (const it of byReason.body.items as Json[]) assert.is(it.reason, "out_of_range");
  assert.is((await d.get("/api/quarantine?tag=furnace_temperature&limit=1", viewer)).status, 200);
  for (const q of ["limit=0", "limit=5000", "limit=1001", "limit=-1", "limit=abc", "limit=1.5", "bogus=1"]) {
    const x = await d.get(`/api/quarantine?${q}`, viewer);
    assert.is(x.status, 400, q);
    assert.is(x.body.error, "validation_error", q);
    const path = `/${q.split("=")[0]}`;
    assert.ok(
      (x.body.details as Array<{ path: string }>).some((i) => i.path === path),
      `${q} names ${path}: ${x.text}`,
    );
  }
});

api("GET /api/sensors/latest: the newest accepted sample of each tag from the twin", async () => {
  const r = await d.get("/api/sensors/latest", viewer);
  assert.is(r.status, 200);
  assert.ok(isIso(r.body.timestamp));
  const samples = r.body.samples as Array<{
    tag: string;
    ts: number;
    value: number;
    quality: string;
    source: string;
    seq: number;
  }>;
  assert.ok(samples.length >= 1);
  const tags = samples.map((s) => s.tag);
  assert.is(new Set(tags).size, tags.length, "one sample per tag");
  assert.ok(tags.includes("furnace_temperature"));
  for (const s of samples) {
    assert.ok(TAG_IDS.includes(s.tag), s.tag);
    assert.ok(isNum(s.ts) && isNum(s.value) && Number.isInteger(s.seq));
    assert.is(s.source, "twin");
    assert.is(s.quality, "good");
  }
});

api("GET /api/samples?tag=: stored samples oldest first; unknown tag 404; tag required; bounds checked", async () => {
  const r = await d.get("/api/samples?tag=furnace_temperature", viewer);
  assert.is(r.status, 200);
  assert.is(r.body.tag, "furnace_temperature");
  const samples = r.body.samples as Array<{ tag: string; ts: number; value: number; source: string }>;
  assert.is(r.body.count, samples.length);
  assert.ok(samples.length >= 1);
  assert.ok((r.body.from as number) < (r.body.to as number));
  for (let i = 1; i < samples.length; i++) assert.ok(samples[i - 1]!.ts <= samples[i]!.ts, "oldest first");
  for (const s of samples) {
    assert.is(s.tag, "furnace_temperature");
    assert.ok(s.ts >= (r.body.from as number) && s.ts <= (r.body.to as number));
  }
  const one = await d.get("/api/samples?tag=furnace_temperature&limit=1", viewer);
  assert.is(one.body.count, 1);
  assert.equal((one.body.samples as unknown[])[0], samples[0]);
  const window = await d.get(
    `/api/samples?tag=furnace_temperature&from=${samples[0]!.ts}&to=${samples[0]!.ts}`,
    viewer,
  );
  assert.is(window.status, 200);
  assert.equal(window.body.samples, [samples[0]]);

  const unknown = await d.get("/api/samples?tag=no_such_tag", viewer);
  assert.is(unknown.status, 404);
  assert.is(unknown.body.error, "not_found");
  assert.match(String(unknown.body.message), /no_such_tag/);
  assert.is((await d.get("/api/samples", viewer)).status, 400);
  assert.is((await d.get("/api/samples?tag=furnace_temperature&limit=0", viewer)).status, 400);
  assert.is((await d.get("/api/samples?tag=furnace_temperature&from=yesterday", viewer)).status, 400);
});

api("GET /api/tags: the tag dictionary in force", async () => {
  const r = await d.get("/api/tags", viewer);
  assert.is(r.status, 200);
  assert.is(r.body.line_id, "Line_A");
  const tags = r.body.tags as Array<{ id: string; unit: string; limits: { min: number; max: number } }>;
  assert.equal(
    tags.map((t) => t.id),
    TAG_IDS,
  );
  const ft = tags.find((t) => t.id === "furnace_temperature");
  assert.is(ft?.unit, "°C");
  assert.equal(ft?.limits, { min: 1000, max: 1800 });
});

api.run();
