import type { IncomingMessage } from "node:http";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type ClientOptions, WebSocket } from "ws";
import type { WsMessage } from "../src/api/ws-hub.js";
import type { PipelineResult } from "../src/pipeline/pipeline.js";
import { type Json, TestDaemon } from "./helpers/daemon.js";

/*
 * The WebSocket end to end: a real `ws` client on loopback, a real login token, the daemon running the twin with a
 * 200 ms tick. Every client opened here is closed (or terminated) before the daemon stops.
 */

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
let viewer = "";
const opened: WebSocket[] = [];

interface Client {
  ws: WebSocket;
  messages: WsMessage<PipelineResult>[];
  /** Resolves with the first message (already received or to come) that matches. */
  next(match: (m: WsMessage<PipelineResult>) => boolean, timeoutMs?: number): Promise<WsMessage<PipelineResult>>;
}

function connect(url: string, opts: ClientOptions = {}): Promise<Client> {
  const ws = new WebSocket(url, opts);
  opened.push(ws);
  const messages: WsMessage<PipelineResult>[] = [];
  const waiters = new Set<() => void>();
  ws.on("message", (data) => {
    messages.push(JSON.parse(data.toString()) as WsMessage<PipelineResult>);
    for (const w of waiters) w();
  });
  const client: Client = {
    ws,
    messages,
    next: (match, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = messages.find(match);
          if (!m) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching message within ${timeoutMs} ms (got ${messages.length})`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      }),
  };
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error("refused"), { res })));
    ws.once("error", reject);
  });
}

/** Attempts a connection that the server must refuse; returns the HTTP status, headers and JSON body. */
async function refused(
  url: string,
  opts: ClientOptions = {},
): Promise<{ status: number; res: IncomingMessage; body: Json }> {
  try {
    await connect(url, opts);
  } catch (err) {
    const res = (err as { res?: IncomingMessage }).res;
    if (!res) throw err;
    let text = "";
    for await (const chunk of res) text += chunk;
    return { status: res.statusCode ?? 0, res, body: JSON.parse(text) as Json };
  }
  throw new Error("the connection was accepted");
}

function close(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => ws.terminate(), 1_000);
    ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(1000, "test done");
  });
}

/**
 * Regression: the broadcast was serialised before performance_metrics was filled in, so dashboards received
 * `performance_metrics: {}`. SEED-API.md says the broadcast carries the same figures as the HTTP result.
 */
function assertSeedPerformance(data: PipelineResult): void {
  const pm = data.performance_metrics as unknown as Record<string, unknown>;
  for (const k of ["total_latency_ms", "feature_extraction_ms", "prediction_ms", "explanation_ms"])
    assert.ok(typeof pm[k] === "number" && (pm[k] as number) >= 0, `broadcast performance_metrics.${k} = ${pm[k]}`);
  assert.ok((pm.total_latency_ms as number) >= (pm.feature_extraction_ms as number));
  assert.is(data.stages.features.status, "ok");
}

const ws = suite("WebSocket /ws end to end (twin, 200 ms tick)");

ws.before(async () => {
  d = await TestDaemon.start({ source: "twin", tickIntervalMs: 200 });
  viewer = await d.tokenFor("viewer");
});
ws.after(async () => {
  await Promise.all(opened.map(close));
  await d?.stop();
});

ws("?token= → pipeline_result messages {type, ts, data} with the seed keys, live every tick", async () => {
  const c = await connect(`${d.wsUrl}?token=${encodeURIComponent(viewer)}`);
  const first = await c.next((m) => m.type === "pipeline_result");
  assert.equal(Object.keys(first).sort(), ["data", "ts", "type"]);
  assert.type(first.ts, "number");
  assert.ok(Math.abs(first.ts - Date.now()) < 60_000, "ts is ms since the epoch (line time ≈ real time at speed 1)");
  for (const k of [...SEED_KEYS, "stages", "tick"]) assert.ok(k in first.data, `data has ${k}`);
  assert.is(first.data.predictions.status, "unavailable");
  assertSeedPerformance(first.data);
  assert.is(first.data.trigger, "timer");
  // Live: a later tick arrives within a few tick periods.
  const later = await c.next((m) => m.type === "pipeline_result" && m.data.tick > first.data.tick, 3_000);
  assert.ok(later.data.tick > first.data.tick);
  assert.ok(later.ts >= first.ts);
  // The hub reports the client while it is connected.
  const stats = (await d.get("/api/pipeline/metrics", viewer)).body.websocket as Json;
  assert.ok((stats.clients as number) >= 1);
  await close(c.ws);
  await d.until("the hub to forget the client", async () => {
    const s = (await d.get("/api/pipeline/metrics", viewer)).body.websocket as Json;
    return s.clients === 0;
  });
});

ws("without a token → 401 with a Bearer challenge (unexpected-response)", async () => {
  const r = await refused(d.wsUrl);
  assert.is(r.status, 401);
  assert.match(String(r.res.headers["www-authenticate"]), /^Bearer/);
  assert.is(r.body.error, "unauthorized");
});

ws("with a garbage or expired token → 401", async () => {
  assert.is((await refused(`${d.wsUrl}?token=garbage`)).status, 401);
  const expired = await d.expiredToken("viewer");
  const r = await refused(`${d.wsUrl}?token=${encodeURIComponent(expired)}`);
  assert.is(r.status, 401);
  assert.match(String(r.body.message), /expired/);
});

ws("a foreign browser Origin → 403; the server's own origin is allowed", async () => {
  const url = `${d.wsUrl}?token=${encodeURIComponent(viewer)}`;
  const r = await refused(url, { origin: "https://evil.example" });
  assert.is(r.status, 403);
  assert.is(r.body.error, "forbidden_origin");
  const same = await connect(url, { origin: d.base });
  await same.next((m) => m.type === "pipeline_result");
  await close(same.ws);
});

ws("another path on the server is not a WebSocket endpoint → 404", async () => {
  const r = await refused(`ws://127.0.0.1:${d.port}/api/ws?token=${encodeURIComponent(viewer)}`);
  assert.is(r.status, 404);
});

ws.run();

/*
 * Retention and API broadcasts on a daemon with no source and an hour-long tick: the only messages are the ones the
 * test causes, so "received at once" cannot be a timer tick arriving by chance.
 */
const quiet = suite("WebSocket /ws: latest result on connect, API ticks broadcast (no timer ticks)");
let q: TestDaemon;

quiet.before(async () => {
  q = await TestDaemon.start({ source: "none", tickIntervalMs: 3_600_000 });
});
quiet.after(async () => {
  await Promise.all(opened.map(close));
  await q?.stop();
});

quiet("an API post is broadcast to connected clients; a client connecting later gets it at once", async () => {
  const token = await q.tokenFor("viewer");
  const early = await connect(`${q.wsUrl}?token=${encodeURIComponent(token)}`);
  const r = await q.request<PipelineResult>("/api/pipeline/process", {
    token: await q.tokenFor("operator"),
    json: { humidity: 50 },
  });
  assert.is(r.status, 200, r.text.slice(0, 300));
  const live = await early.next((m) => m.type === "pipeline_result");
  assert.is(live.data.trigger, "api");
  assert.is(live.data.tick, r.body.tick);
  assert.is(live.data.sensor_data.humidity, 50);
  // The broadcast is the HTTP response, except the timings of publish itself and of the store after it.
  const { stages, performance_metrics, ...rest } = live.data;
  const { stages: httpStages, performance_metrics: httpPerf, ...httpRest } = r.body;
  assert.equal(rest, httpRest);
  assert.equal(Object.keys(httpStages).sort(), [...Object.keys(stages), "publish", "store"].sort());
  assert.is(performance_metrics.feature_extraction_ms, httpPerf.feature_extraction_ms);
  assert.ok(performance_metrics.total_latency_ms <= httpPerf.total_latency_ms);

  const late = await connect(q.wsUrl, { headers: { authorization: `Bearer ${token}` } });
  const retained = await late.next((m) => m.type === "pipeline_result", 1_000);
  assert.is(retained.data.tick, r.body.tick);
  // Nothing else is sent without a new tick. (Besides results, the latest alarm of each kind is retained too: the
  // shipped models the factory rejected raise a model_alarm at start.)
  await new Promise((res) => setTimeout(res, 300));
  const results = (c: { messages: Array<{ type: string }> }) => c.messages.filter((m) => m.type === "pipeline_result");
  assert.is(results(late).length, 1);
  assert.is(results(early).length, 1);
  for (const m of [...late.messages, ...early.messages])
    assert.ok(["pipeline_result", "model_alarm"].includes(m.type), m.type);
  await Promise.all([close(early.ws), close(late.ws)]);
});
quiet.run();
