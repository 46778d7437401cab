/*
 * The shipped models in the running daemon, on the twin: the forecaster's window fills one row a line-minute, then
 * every tick carries forecasts and the ensemble's calibrated risk; predictions are stored and served by
 * /api/predictions; per-model latency shows in /api/pipeline/metrics and /metrics; /api/models lists the manifest.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type Json, TestDaemon } from "./helpers/daemon.js";

let d: TestDaemon | undefined;
test.after(async () => {
  await d?.stop();
});

async function poll<T>(cond: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${d?.logTail(20)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Pred {
  status: string;
  reason: string;
  forecast: { status: string; horizons_min?: number[]; probability?: Record<string, Record<string, number>> };
  risk: { status: string; per_class?: Record<string, number>; reason?: string };
}

test("twin at 60×: forecasts and ensemble risk from the shipped models, stored and measured", async () => {
  // 60 line-seconds per second, a tick every 200 ms = a tick every 12 line-seconds (rows are 60 s apart).
  d = await TestDaemon.start({ source: "twin", tickIntervalMs: 200, cli: { "twin.speed": "60" } });
  const viewer = await d.tokenFor("viewer");
  const models = await d.request<{ models: Array<{ name: string; status: string }> }>("/api/models", {
    token: viewer,
  });
  assert.is(models.status, 200);
  const live = Object.fromEntries(models.body.models.map((m) => [m.name, m.status]));
  assert.is(live.forecaster, "loaded", JSON.stringify(models.body.models));

  const p = await poll(
    async () => {
      const r = await d!.request<{ predictions: Pred }>("/api/pipeline/latest", { token: viewer });
      const pr = r.body?.predictions;
      // the ensemble stacks the sensor graph's score too, which waits for its longest node window (45 line-min)
      const riskDone = live.ensemble !== "loaded" || pr?.risk?.status === "ok";
      return pr?.forecast?.status === "ok" && riskDone ? pr : undefined;
    },
    "a forecast (and, with the ensemble loaded, a risk) in /api/pipeline/latest",
    180_000,
  );
  assert.equal(p.forecast.horizons_min, [15, 60, 240]);
  for (const h of ["15", "60", "240"])
    for (const v of Object.values(p.forecast.probability?.[h] ?? {})) assert.ok(v >= 0 && v <= 1, `p ${v}`);
  // The ensemble answers when the factory accepted it; a rejected one says so instead of showing numbers.
  if (live.ensemble === "loaded") {
    assert.is(p.risk.status, "ok");
    for (const v of Object.values(p.risk.per_class ?? {})) assert.ok(v >= 0 && v <= 1, `risk ${v}`);
  } else assert.match(p.risk.reason ?? "", /rejected/);

  const stored = await poll(
    async () => {
      const r = await d!.request<{ predictions: Json[] }>("/api/predictions?limit=1000", { token: viewer });
      const withForecast = (r.body.predictions ?? []).filter((x) => (x.forecast as Json | undefined)?.status === "ok");
      return r.status === 200 && withForecast.length > 0 ? withForecast : undefined;
    },
    "a stored prediction with a forecast",
    60_000,
  );
  assert.type(stored[0]?.ts, "number");

  const pm = await d.request<{ pipeline_metrics: { model_latency_ms: Record<string, { count: number }> } }>(
    "/api/pipeline/metrics",
    { token: viewer },
  );
  assert.ok((pm.body.pipeline_metrics.model_latency_ms.forecaster?.count ?? 0) > 0);
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  assert.match(metrics, /glassd_model_latency_ms\{model="forecaster",quantile="0.99"\} [0-9.]+/);
});

test.run();
