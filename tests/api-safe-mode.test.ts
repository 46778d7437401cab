import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { HealthReport } from "../src/api/app.js";
import { type Json, TestDaemon } from "./helpers/daemon.js";

/*
 * A daemon started with an invalid configuration (twin.speed -1 on the command line) runs in safe mode: the API is up
 * on the chosen address, read-only, with no line source; /health names the bad field, /ready is 503 and the only
 * writing route refuses with 503.
 */

let d: TestDaemon;

const safe = suite("safe mode (invalid config)");

safe.before(async () => {
  d = await TestDaemon.start({ source: "twin", cli: { "twin.speed": "-1" } });
});
safe.after(async () => {
  await d?.stop();
});

safe("the harness really produced an invalid config, keeping the server, data_dir and auth settings", () => {
  assert.is(d.load.safeMode, true);
  assert.is(d.config.server.host, "127.0.0.1");
  assert.is(d.config.data_dir, d.dataDir);
  assert.is(d.config.source.type, "none");
});

safe("GET /health → 200, status safe_mode, config_errors naming /twin/speed and where it was set", async () => {
  const r = await d.get<HealthReport>("/health");
  assert.is(r.status, 200);
  assert.is(r.body.status, "safe_mode");
  assert.is(r.body.safe_mode, true);
  assert.is(r.body.live, true);
  assert.is(r.body.ready, false);
  const err = r.body.config_errors.find((e) => e.path === "/twin/speed");
  assert.ok(err, JSON.stringify(r.body.config_errors));
  assert.match(err?.message ?? "", />= 0\.01/);
  assert.match(err?.message ?? "", /command line/);
  assert.is(r.body.checks.pipeline, undefined, "no pipeline runs, so there is no tick to check");
  assert.is(r.body.checks.source, undefined, "no line source in safe mode");
});

safe("GET /ready → 503 with the status", async () => {
  const r = await d.get("/ready");
  assert.is(r.status, 503);
  assert.is(r.body.ready, false);
  assert.is(r.body.status, "safe_mode");
});

safe("POST /api/pipeline/process → 503 safe_mode for an operator; roles and auth still apply", async () => {
  const operator = await d.tokenFor("operator");
  const r = await d.request("/api/pipeline/process", { token: operator, json: { furnace_temperature: 1500 } });
  assert.is(r.status, 503);
  assert.is(r.body.error, "safe_mode");
  assert.match(String(r.body.message), /read-only/);
  const viewer = await d.request("/api/pipeline/process", {
    token: await d.tokenFor("viewer"),
    json: { furnace_temperature: 1500 },
  });
  assert.is(viewer.status, 403);
  assert.is((await d.request("/api/pipeline/process", { json: { furnace_temperature: 1500 } })).status, 401);
  assert.is((await d.get("/api/tags")).status, 401);
  // Nothing was written.
  assert.equal((await d.get("/api/sensors/latest", operator)).body.samples, []);
  assert.equal((await d.get("/api/quarantine", operator)).body.items, []);
});

safe("GET routes still answer with auth; nothing ticks and no line data arrives", async () => {
  const viewer = await d.tokenFor("viewer");
  const tags = await d.get("/api/tags", viewer);
  assert.is(tags.status, 200);
  assert.ok((tags.body.tags as unknown[]).length > 0);
  for (const p of ["/api/quarantine", "/api/pipeline/metrics", "/api/training/status", "/openapi.json", "/metrics"])
    assert.is((await d.get(p, viewer)).status, 200, p);
  const autonomy = await d.get("/api/autonomy/status", viewer);
  assert.is(autonomy.status, 200);
  assert.is(autonomy.body.read_only, true);
  assert.is(autonomy.body.autonomy_enabled, false);
  assert.is((await d.get("/api/explainability/prediction", viewer)).status, 503);
  assert.is((await d.get("/api/samples?tag=furnace_temperature", viewer)).status, 200);

  // Longer than several default ticks (1 s) and twin steps: still nothing.
  await new Promise((r) => setTimeout(r, 1_200));
  const latest = await d.get("/api/pipeline/latest", viewer);
  assert.is(latest.status, 503);
  assert.is(latest.body.error, "no_result");
  assert.is((await d.get("/api/features/latest", viewer)).status, 503);
  assert.equal((await d.get("/api/sensors/latest", viewer)).body.samples, []);
  const pm = (await d.get("/api/pipeline/metrics", viewer)).body.pipeline_metrics as Json;
  assert.is(pm.pipeline_executions, 0);
});

safe.run();
