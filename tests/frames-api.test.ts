import type { MiddlewareHandler } from "hono";
import sharp from "sharp";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type ApiDeps, createApp } from "../src/api/app.js";
import { Auth, accessGuard } from "../src/api/auth/index.js";
import { createFramesApp, FRAME_ROUTE_SPECS } from "../src/api/frames-routes.js";
import type { Access } from "../src/api/routes.js";
import { defaultConfig } from "../src/config/validate.js";
import { silentLogger } from "../src/core/logger.js";
import {
  bombPng,
  type Harness,
  noiseImage,
  randomBytes,
  removeTempDirs,
  startIntake,
  tempDir,
  truncated,
} from "./frames-fixtures.js";

/*
 * The frame routes mounted on the daemon's real app (its one onError, its auth guard, a real Auth with API keys on
 * disk) exactly as the daemon is to mount them, driven through app.request(): who may push, raw and multipart
 * bodies, every rejection as an HTTP status with its reason, metadata / thumbnail / original reads.
 */

type Body = NonNullable<RequestInit["body"]>;

const test = suite("frames api");

let h: Harness;
let app: ReturnType<typeof createApp>["app"];
let disabledApp: ReturnType<typeof createApp>["app"];
const keys: Record<"operator" | "viewer" | "camera" | "otherCamera", string> = {
  operator: "",
  viewer: "",
  camera: "",
  otherCamera: "",
};

function parentApp(guard: (a: Access) => MiddlewareHandler) {
  const config = defaultConfig();
  const deps = {
    config,
    version: "test",
    log: silentLogger,
    health: () => ({ safe_mode: false }),
    auth: { guard, login: async () => ({ token: "", expires_at: "", role: "viewer" }) },
  } as unknown as ApiDeps;
  return createApp(deps);
}

test.before(async () => {
  h = await startIntake({ max_bytes: 2_000_000, model_input: { width: 32, height: 32 } });
  const config = defaultConfig();
  const auth = new Auth({ config: { data_dir: tempDir("glassd-frames-auth-"), auth: config.auth }, env: {} });
  await auth.init();
  keys.operator = (await auth.createApiKey("line-pc", "operator")).key;
  keys.viewer = (await auth.createApiKey("dashboard", "viewer")).key;
  keys.camera = (await auth.createApiKey("camera:mik1", "viewer")).key;
  keys.otherCamera = (await auth.createApiKey("camera:mik2", "viewer")).key;
  const g = accessGuard(auth);
  const guard = (a: Access) => g(a) as unknown as MiddlewareHandler;
  const parent = parentApp(guard);
  // The mount line the daemon uses:
  parent.app.route("/", createFramesApp({ intake: h.intake, guard }));
  parent.routes.specs.push(...FRAME_ROUTE_SPECS);
  app = parent.app;
  const off = parentApp(guard);
  off.app.route("/", createFramesApp({ intake: undefined, guard }));
  disabledApp = off.app;
});

test.after(async () => {
  await h?.stop();
  removeTempDirs();
});

function push(body: Body, opts: { key?: string; type?: string; query?: string } = {}) {
  const headers: Record<string, string> = {};
  if (opts.key) headers["x-api-key"] = opts.key;
  if (opts.type) headers["content-type"] = opts.type;
  return app.request(`/api/frames${opts.query ? `?${opts.query}` : ""}`, { method: "POST", body, headers });
}

const get = (path: string, key = keys.viewer, a = app) => a.request(path, { headers: { "x-api-key": key } });

test("who may push: 401 without a key, 403 for a viewer or another camera's key, 201 for operator and camera", async () => {
  const jpeg = await noiseImage(320, 240, "jpeg");
  assert.is((await push(jpeg, { type: "image/jpeg" })).status, 401);
  const v = await push(jpeg, { key: keys.viewer, type: "image/jpeg" });
  assert.is(v.status, 403);
  assert.match(((await v.json()) as { message: string }).message, /operator.*camera:<camera_id>/);
  const other = await push(jpeg, { key: keys.otherCamera, type: "image/jpeg", query: "camera=mik1" });
  assert.is(other.status, 403);

  const op = await push(jpeg, {
    key: keys.operator,
    type: "image/jpeg",
    query: "camera=mik7&item_id=11&ts=2026-03-01T10:00:00Z",
  });
  assert.is(op.status, 201, await op.clone().text());
  const rec = (await op.json()) as Record<string, unknown>;
  assert.equal(
    [rec.camera, rec.item_id, rec.ts, rec.width, rec.height, rec.format, rec.origin],
    ["mik7", 11, Date.parse("2026-03-01T10:00:00Z"), 320, 240, "jpeg", "http"],
  );
  assert.is(op.headers.get("location"), `/api/frames/${rec.id}`);

  // The camera key pushes for its own camera, which is the default.
  const form = new FormData();
  form.set("image", new Blob([await noiseImage(320, 240, "png")], { type: "image/png" }), "x.png");
  form.set("item_id", "12");
  const cam = await push(form, { key: keys.camera });
  assert.is(cam.status, 201, await cam.clone().text());
  const camRec = (await cam.json()) as Record<string, unknown>;
  assert.equal([camRec.camera, camRec.item_id, camRec.format], ["mik1", 12, "png"]);
  // Stored originals read back byte for byte.
  const orig = await get(`/api/frames/${rec.id}/original`);
  assert.is(orig.status, 200);
  assert.is(orig.headers.get("content-type"), "image/jpeg");
  assert.ok(Buffer.from(await orig.arrayBuffer()).equals(jpeg));
});

test("every rejection is a 4xx naming its reason, and counted", async () => {
  const jpeg = await noiseImage(640, 480, "jpeg");
  const png = await noiseImage(320, 240, "png");
  const before = h.intake.stats().rejected;
  const cases: Array<[string, Body, string, number, string, string?]> = [
    ["truncated JPEG", truncated(jpeg), "image/jpeg", 422, "truncated"],
    ["truncated PNG", truncated(png), "application/octet-stream", 422, "truncated"],
    ["random bytes", randomBytes(3000), "application/octet-stream", 415, "wrong_format"],
    ["bomb header", bombPng(), "image/png", 422, "oversized"],
    ["zero bytes", new Uint8Array(0), "image/png", 400, "empty"],
    ["PNG sent as image/jpeg", png, "image/jpeg", 415, "wrong_format"],
    ["text/plain", "hello", "text/plain", 415, "wrong_format"],
    ["body over max_bytes", new Uint8Array(2_100_000), "image/png", 413, "too_many_bytes"],
    ["bad ts", jpeg, "image/jpeg", 400, "bad_metadata", "ts=yesterday"],
    ["bad item id", jpeg, "image/jpeg", 400, "bad_metadata", "item_id=abc"],
  ];
  for (const [what, body, type, status, reason, query] of cases) {
    const r = await push(body, { key: keys.operator, type, ...(query ? { query } : {}) });
    const text = await r.text();
    assert.is(r.status, status, `${what}: ${text}`);
    const b = JSON.parse(text) as { error: string; details: { reason: string; detail: string } };
    assert.is(b.error, "frame_rejected", what);
    assert.is(b.details.reason, reason, what);
    assert.type(b.details.detail, "string");
  }
  const form = new FormData();
  form.set("item_id", "3");
  const noFile = await push(form, { key: keys.operator });
  assert.is(noFile.status, 400);
  assert.is(((await noFile.json()) as { details: { reason: string } }).details.reason, "empty");

  const after = h.intake.stats().rejected;
  const delta = Object.fromEntries(
    Object.entries(after)
      .map(([k, n]) => [k, n - before[k as keyof typeof before]])
      .filter(([, n]) => (n as number) > 0),
  );
  assert.equal(delta, { truncated: 2, wrong_format: 3, oversized: 1, empty: 2, too_many_bytes: 1, bad_metadata: 2 });
});

test("reads: recent newest first, metadata, thumbnail JPEG, 404s; disabled intake answers 503", async () => {
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await push(await noiseImage(480, 270, "jpeg", 3, 20 + i), {
      key: keys.operator,
      type: "image/jpeg",
      query: `item_id=${100 + i}`,
    });
    ids.push(((await r.json()) as { id: number }).id);
  }
  const recent = (await (await get("/api/frames/recent?limit=3")).json()) as { frames: Array<{ id: number }> };
  assert.equal(
    recent.frames.map((f) => f.id),
    [...ids].reverse(),
  );
  const one = (await (await get(`/api/frames/${ids[1]}`)).json()) as Record<string, unknown>;
  assert.is(one.item_id, 101);
  assert.is(one.thumbnail_url, `/api/frames/${ids[1]}/thumbnail`);
  const th = await get(`/api/frames/${ids[1]}/thumbnail`);
  assert.is(th.headers.get("content-type"), "image/jpeg");
  const m = await sharp(Buffer.from(await th.arrayBuffer())).metadata();
  assert.equal([m.format, m.width, m.height], ["jpeg", 160, 90]);
  assert.is((await get("/api/frames/999999")).status, 404);
  assert.is((await get("/api/frames/abc")).status, 404);
  assert.is((await get("/api/frames/recent?limit=0")).status, 400);
  assert.is((await app.request("/api/frames/recent")).status, 401);
  const stats = (await (await get("/api/frames/stats")).json()) as Record<string, unknown>;
  assert.ok((stats.accepted as number) >= 5);
  const off = await get("/api/frames/recent", keys.viewer, disabledApp);
  assert.is(off.status, 503);
  assert.is(((await off.json()) as { error: string }).error, "frames_disabled");
  // The OpenAPI document lists the frame routes.
  const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, unknown> };
  for (const p of ["/api/frames", "/api/frames/recent", "/api/frames/{id}", "/api/frames/{id}/original"])
    assert.ok(doc.paths[p], p);
});

test.run();
