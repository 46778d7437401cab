import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { PipelineResult } from "../src/pipeline/pipeline.js";
import { type Json, type Res, TestDaemon } from "./helpers/daemon.js";

/*
 * POST /api/pipeline/process end to end on a daemon with no line source (`source.type: none`), so the only data is
 * what the tests post and line time is real time. The timer tick is set to an hour: every tick here is the request's.
 */

interface Issue {
  path: string;
  message: string;
}
interface QuarantineItem {
  id: number;
  tag: string;
  ts: number | null;
  received_at: number;
  reason: string;
  detail: string;
  raw_value: string;
  source: string;
}

const SEED_KEYS = [
  "timestamp",
  "sensor_data",
  "engineered_features",
  "predictions",
  "explanations",
  "recommendations",
  "autonomous_actions",
  "performance_metrics",
];

let d: TestDaemon;
let operator = "";

const proc = suite("POST /api/pipeline/process (source none)");

proc.before(async () => {
  d = await TestDaemon.start({
    source: "none",
    tickIntervalMs: 3_600_000,
    cli: { "server.max_body_bytes": "2048" },
  });
  operator = await d.tokenFor("operator");
});
proc.after(async () => {
  await d?.stop();
});

const post = (body: unknown) =>
  d.request<PipelineResult & Json>("/api/pipeline/process", { token: operator, json: body });
const postRaw = (raw: string | ReadableStream<Uint8Array>) =>
  d.request("/api/pipeline/process", { token: operator, raw });
const issues = (r: Res) => (r.body.details ?? []) as Issue[];
const quarantine = async (query: string) =>
  (await d.get(`/api/quarantine?${query}`, operator)).body as {
    counts_by_reason: Record<string, number>;
    items: QuarantineItem[];
  };
const storedCount = async (tag: string) =>
  (await d.get(`/api/samples?tag=${tag}&to=${Date.now() + 60_000}`, operator)).body.count as number;

/** Asserts a 400 whose details name `path` with a message starting with `reason`. */
function assertRejected(r: Res, path: string, reason: RegExp | string, what = "") {
  assert.is(r.status, 400, `${what} ${r.text.slice(0, 300)}`);
  assert.is(r.body.error, "validation_error", what);
  const hit = issues(r).find((i) => i.path === path);
  assert.ok(hit, `${what}: details name ${path}: ${JSON.stringify(issues(r))}`);
  if (typeof reason === "string") assert.ok(hit?.message.startsWith(`${reason}:`), `${what}: ${hit?.message}`);
  else assert.match(hit?.message ?? "", reason, what);
}

proc("before any tick: latest result and features are 503, no samples", async () => {
  const latest = await d.get("/api/pipeline/latest", operator);
  assert.is(latest.status, 503);
  assert.is(latest.body.error, "no_result");
  const features = await d.get("/api/features/latest", operator);
  assert.is(features.status, 503);
  assert.is(features.body.error, "no_features");
  assert.equal((await d.get("/api/sensors/latest", operator)).body.samples, []);
});

proc("flat body → 200 with the seed keys; models honestly unavailable; latency measured", async () => {
  const before = Date.now();
  const r = await post({ furnace_temperature: 1500, belt_speed: 150 });
  assert.is(r.status, 200, r.text.slice(0, 300));
  const p = r.body;
  for (const k of [...SEED_KEYS, "stages", "inspection"]) assert.ok(k in p, `result has ${k}`);
  assert.is(p.trigger, "api");
  assert.ok(p.ts >= before && p.ts <= Date.now(), "line time is real time without a source");
  assert.is(p.sensor_data.furnace_temperature, 1500);
  assert.is(p.sensor_data.belt_speed, 150);
  assert.is(p.sensor_data.mold_temperature, null);
  assert.equal(p.ingest, { accepted: 2, rejected: 0, rejected_by_reason: {} });
  assert.is(p.predictions.status, "unavailable");
  assert.type(p.predictions.reason, "string");
  assert.ok(p.predictions.reason.length > 0);
  assert.is(p.stages.models.status, "unavailable");
  assert.is(p.stages.validate.status, "ok");
  assert.is(p.stages.features.status, "ok");
  assert.equal(p.recommendations, []);
  assert.is(p.autonomous_actions.enabled, false);
  assert.equal(p.autonomous_actions.actions_to_execute, []);
  const pm = p.performance_metrics;
  assert.type(pm.total_latency_ms, "number");
  assert.ok(pm.total_latency_ms >= 0);
  for (const k of ["feature_extraction_ms", "prediction_ms", "explanation_ms", "validation_ms"] as const)
    assert.ok(typeof pm[k] === "number" && pm[k] >= 0, k);
  assert.is(p.engineered_features["furnace_temperature.last"], 1500);
  assert.is(p.engineered_features["belt_speed.count"], 1);
});

proc("the request's tick is the latest result; its samples are stored and latest", async () => {
  const r = await post({ furnace_temperature: 1500, belt_speed: 150 });
  assert.is(r.status, 200);
  const latest = await d.get<PipelineResult>("/api/pipeline/latest", operator);
  assert.is(latest.status, 200);
  assert.is(latest.body.tick, r.body.tick);
  assert.equal(latest.body.sensor_data, r.body.sensor_data);
  const features = await d.get("/api/features/latest", operator);
  assert.is(features.status, 200);
  assert.is(features.body.timestamp, r.body.timestamp);
  assert.is(features.body.feature_count, 266);
  const samples = (await d.get("/api/sensors/latest", operator)).body.samples as Array<Json>;
  assert.equal(samples.map((s) => s.tag).sort(), ["belt_speed", "furnace_temperature"]);
  for (const s of samples) assert.is(s.source, "api");
  assert.is(await storedCount("furnace_temperature"), 2);
});

proc("nested body {sensors: {furnace: {temperature}, forming: {belt_speed}}} → the same tags", async () => {
  const r = await post({ sensors: { furnace: { temperature: 1500 }, forming: { belt_speed: 150 } } });
  assert.is(r.status, 200, r.text.slice(0, 300));
  assert.is(r.body.sensor_data.furnace_temperature, 1500);
  assert.is(r.body.sensor_data.belt_speed, 150);
  assert.equal(r.body.ingest, { accepted: 2, rejected: 0, rejected_by_reason: {} });
  // Flat and nested together.
  const mixed = await post({ belt_speed: 150, sensors: { furnace: { temperature: 1500 } } });
  assert.is(mixed.status, 200);
  assert.is(mixed.body.ingest.accepted, 2);
  // The same tag given both ways is ambiguous.
  assertRejected(
    await post({ furnace_temperature: 1500, sensors: { furnace: { temperature: 1500 } } }),
    "/furnace_temperature",
    /given twice/,
  );
  // A nested group that is not an object of readings is a schema error naming the path.
  assertRejected(await post({ sensors: { furnace: 1500 } }), "/sensors/furnace", /object/);
  // A nested field that maps to no tag is an unknown tag.
  assertRejected(await post({ sensors: { furnace: { colour: 3 } } }), "/furnace_colour", "unknown_tag");
});

proc("out of range → 400 naming the field; the whole request is quarantined, nothing stored", async () => {
  const furnaceBefore = await storedCount("furnace_temperature");
  const beltBefore = await storedCount("belt_speed");
  const r = await post({ furnace_temperature: 2500, belt_speed: 150 });
  assertRejected(r, "/furnace_temperature", "out_of_range");
  assert.match(String(r.body.message), /quarantine/);
  assert.equal(
    issues(r).map((i) => i.path),
    ["/furnace_temperature"],
    "only the bad reading is an issue",
  );

  const oor = await quarantine("reason=out_of_range");
  const bad = oor.items.find((i) => i.tag === "furnace_temperature" && i.raw_value === "2500");
  assert.ok(bad, JSON.stringify(oor.items));
  assert.is(bad?.source, "api");
  assert.match(bad?.detail ?? "", /hard limits \[1000, 1800\]/);
  assert.ok((oor.counts_by_reason.out_of_range ?? 0) >= 1);
  for (const i of oor.items) assert.is(i.reason, "out_of_range");

  const withBatch = await quarantine("reason=rejected_with_batch");
  const good = withBatch.items.find((i) => i.tag === "belt_speed" && i.raw_value === "150");
  assert.ok(good, JSON.stringify(withBatch.items));
  assert.is(good?.ts, bad?.ts);
  assert.is(good?.received_at, bad?.received_at);
  const byTag = await quarantine("tag=belt_speed&reason=rejected_with_batch&limit=1");
  assert.is(byTag.items.length, 1);
  assert.is(byTag.items[0]?.id, good?.id);

  assert.is(await storedCount("furnace_temperature"), furnaceBefore);
  assert.is(await storedCount("belt_speed"), beltBefore, "the valid reading of a refused request is not stored");
});

proc("unknown field → 400 naming it (unknown_tag), quarantined", async () => {
  const r = await post({ furnace_temperature: 1500, bogus_sensor: 1 });
  assertRejected(r, "/bogus_sensor", "unknown_tag");
  assert.match(issues(r).find((i) => i.path === "/bogus_sensor")?.message ?? "", /bogus_sensor/);
  const q = await quarantine("reason=unknown_tag");
  assert.ok(q.items.some((i) => i.tag === "bogus_sensor"));
});

proc("wrong type (string, numeric string, null, boolean, object, array) → 400 wrong_type", async () => {
  for (const v of ["hot", "1500", null, true, {}, []]) {
    const r = await post({ furnace_temperature: v });
    assertRejected(r, "/furnace_temperature", "wrong_type", JSON.stringify(v));
  }
  const q = await quarantine("reason=wrong_type&tag=furnace_temperature");
  assert.equal(
    q.items.map((i) => i.raw_value),
    ["[]", "{}", "true", "null", '"1500"', '"hot"'],
    "newest first, raw values kept distinguishable",
  );
});

proc("malformed JSON, an empty body and a non-object body → 400 naming JSON", async () => {
  for (const raw of ['{"furnace_temperature": 15', "", "furnace_temperature=1500"]) {
    const r = await postRaw(raw);
    assert.is(r.status, 400, raw);
    assert.is(r.body.error, "validation_error");
    assert.match(String(r.body.message), /JSON/, raw);
  }
  for (const body of [[1500], 1500, "x", null]) {
    const r = await post(body);
    assert.is(r.status, 400, JSON.stringify(body));
  }
});

proc("no readings ({} or {sensors: {}} or a timestamp alone) → 400", async () => {
  for (const body of [{}, { sensors: {} }, { timestamp: Date.now() }, { sensors: { furnace: {} } }]) {
    const r = await post(body);
    assertRejected(r, "/", /no sensor readings/, JSON.stringify(body));
  }
});

proc("bad timestamps → 400: not a date, seconds instead of ms, in the future, stale", async () => {
  assertRejected(await post({ timestamp: "yesterday", furnace_temperature: 1500 }), "/timestamp", /ISO 8601/);
  // Regression: a zone-less ISO time used to be read in the server's local time.
  assertRejected(
    await post({ timestamp: "2026-11-25T10:00:00", furnace_temperature: 1500 }),
    "/timestamp",
    /time zone/,
  );
  assertRejected(await post({ timestamp: { at: 1 }, furnace_temperature: 1500 }), "/timestamp", /./);
  assertRejected(
    await post({ timestamp: Math.floor(Date.now() / 1000), furnace_temperature: 1500 }),
    "/furnace_temperature",
    "bad_timestamp",
  );
  assertRejected(
    await post({ timestamp: Date.now() + 3_600_000, furnace_temperature: 1500 }),
    "/furnace_temperature",
    "future",
  );
  assertRejected(
    await post({ timestamp: new Date(Date.now() - 60_000).toISOString(), furnace_temperature: 1500 }),
    "/furnace_temperature",
    "stale",
  );
  // An ISO timestamp that is current is fine.
  const ok = await post({ timestamp: new Date().toISOString(), furnace_temperature: 1500 });
  assert.is(ok.status, 200, ok.text.slice(0, 300));
});

proc("body over server.max_body_bytes → 413 (with Content-Length and streamed), nothing stored", async () => {
  const before = await storedCount("furnace_temperature");
  const big = JSON.stringify({ furnace_temperature: 1500, note: "x".repeat(3000) });
  const r = await postRaw(big);
  assert.is(r.status, 413);
  assert.is(r.body.error, "payload_too_large");
  assert.match(String(r.body.message), /max_body_bytes/);
  const enc = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(enc.encode('{"furnace_temperature": 1500, "note": "'));
      for (let i = 0; i < 4; i++) c.enqueue(enc.encode("x".repeat(1000)));
      c.enqueue(enc.encode('"}'));
      c.close();
    },
  });
  const chunked = await postRaw(stream);
  assert.is(chunked.status, 413, "a body without Content-Length is counted too");
  assert.is(await storedCount("furnace_temperature"), before);
  // The limit is exact: a valid body padded with whitespace to 2048 bytes passes, one byte more does not.
  const pad = (n: number) => {
    const core = '{"furnace_temperature": 1500}';
    return core + " ".repeat(n - core.length);
  };
  assert.is((await postRaw(pad(2048))).status, 200);
  assert.is((await postRaw(pad(2049))).status, 413);
});

proc("after all of that the daemon still answers, and counts every rejection", async () => {
  const h = await d.get("/health");
  assert.is(h.status, 200);
  assert.is(h.body.live, true);
  const ok = await post({ furnace_temperature: 1500, belt_speed: 150 });
  assert.is(ok.status, 200);
  const metrics = (await d.get("/metrics")).text;
  for (const reason of ["out_of_range", "rejected_with_batch", "unknown_tag", "wrong_type"])
    assert.match(metrics, new RegExp(`^glassd_samples_quarantined_total\\{reason="${reason}"\\} [1-9]`, "m"), reason);
  const pm = (await d.get("/api/pipeline/metrics", operator)).body;
  const counts = (pm.ingest as Json).quarantined_by_reason as Record<string, number>;
  assert.ok((counts.wrong_type ?? 0) >= 6);
  // Refused requests run no tick: the tick count equals the accepted requests.
  assert.is((pm.pipeline_metrics as Json).failed_ticks, 0);
});

proc.run();

/*
 * Features from posted data: a fresh daemon, three posts with rising timestamps, and the window statistics
 * checked against values computed by hand.
 */
const features = suite("features built from successive posts");
let f: TestDaemon;

features.before(async () => {
  f = await TestDaemon.start({ source: "none", tickIntervalMs: 3_600_000 });
});
features.after(async () => {
  await f?.stop();
});

features("three posts 0.5 s apart: mean, min, max, std, count, last and slope as computed by hand", async () => {
  const token = await f.tokenFor("operator");
  // Timestamps in the recent past (furnace_temperature is stale after 3 × 1 s, so the first post has ~1.9 s to get
  // through) and a rise of 1 °C/s (limit 2).
  const t0 = Date.now() - 1_100;
  const values = [1500, 1500.5, 1501];
  let last: Res<PipelineResult & Json> | undefined;
  for (let i = 0; i < values.length; i++) {
    last = await f.request<PipelineResult & Json>("/api/pipeline/process", {
      token,
      json: { timestamp: t0 + i * 500, furnace_temperature: values[i] },
    });
    assert.is(last.status, 200, last.text.slice(0, 300));
  }
  const ef = last?.body.engineered_features as Record<string, number | null>;
  const close = (name: string, want: number) => {
    const got = ef[name];
    assert.ok(typeof got === "number" && Math.abs(got - want) < 1e-3, `${name}: got ${got}, want ${want}`);
  };
  close("furnace_temperature.mean", (1500 + 1500.5 + 1501) / 3);
  close("furnace_temperature.min", 1500);
  close("furnace_temperature.max", 1501);
  close("furnace_temperature.count", 3);
  close("furnace_temperature.last", 1501);
  close("furnace_temperature.p50", 1500.5);
  // Population std: sqrt(((-0.5)² + 0 + 0.5²) / 3).
  close("furnace_temperature.std", Math.sqrt(0.5 / 3));
  close("furnace_temperature.slope", 1);
  close("furnace_temperature.roc", 1);
  assert.type(ef["domain.viscosity_log10"], "number");
  assert.is(ef["belt_speed.count"], 0);

  const latest = await f.get("/api/features/latest", token);
  assert.equal(latest.body.features, ef);
  const stored = await f.get(`/api/samples?tag=furnace_temperature&to=${Date.now()}`, token);
  assert.equal(
    (stored.body.samples as Array<{ ts: number; value: number }>).map((s) => [s.ts - t0, s.value]),
    [
      [0, 1500],
      [500, 1500.5],
      [1000, 1501],
    ],
  );
});

features.run();
