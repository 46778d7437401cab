import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Auth, ROLES, type Role } from "../src/api/auth/index.js";
import { type Json, TestDaemon, USERS } from "./helpers/daemon.js";

/*
 * Authentication and roles at the HTTP edge of a real daemon (source none): every protected route refuses a request
 * without a valid credential, roles are enforced with 403 naming the role needed, login failures are uniform and rate
 * limited. Token-level details (expiry arithmetic, alg, rotation) are unit-tested in auth.test.ts.
 */

let d: TestDaemon;
/** Every route of the OpenAPI document with the access it declares. */
let routes: Array<{ method: string; path: string; access: string }> = [];

const VALID_READING = { furnace_temperature: 1500 };

const auth = suite("api auth and roles");

auth.before(async () => {
  d = await TestDaemon.start({ source: "none", tickIntervalMs: 200 });
  const doc = (await d.get("/openapi.json")).body as { paths: Record<string, Record<string, Json>> };
  routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ method, path, access: String(op["x-required-role"]) })),
  );
});
auth.after(async () => {
  await d?.stop();
});

/** A request to `route` that passes validation, so only authentication and roles decide the outcome. */
function call(route: { method: string; path: string }, opts: { token?: string; headers?: Record<string, string> }) {
  // Path parameters get real values: a model that exists, a frame id (frames are off here: 503).
  const concrete = route.path.replace("{name}", "forecaster").replace("{id}", "1");
  const path = concrete === "/api/samples" ? `${concrete}?tag=furnace_temperature` : concrete;
  if (route.method === "post")
    return d.request(path, {
      ...opts,
      json: route.path === "/api/auth/login" ? { username: "x", password: "y" } : VALID_READING,
    });
  return d.request(path, { ...opts, method: route.method.toUpperCase() });
}

auth("every protected route: 401 without a credential, with a Bearer challenge", async () => {
  const protectedRoutes = routes.filter((r) => r.access !== "public");
  assert.ok(protectedRoutes.length >= 11, `found ${protectedRoutes.length} protected routes`);
  for (const r of protectedRoutes) {
    const x = await call(r, {});
    assert.is(x.status, 401, `${r.method} ${r.path}`);
    assert.is(x.body.error, "credentials_missing", `${r.method} ${r.path}`);
    assert.is(x.headers.get("www-authenticate"), 'Bearer realm="glassd"', `${r.method} ${r.path}`);
  }
  // Public routes need nothing.
  for (const p of ["/health", "/ready", "/metrics", "/openapi.json"]) assert.not.equal((await d.get(p)).status, 401, p);
});

auth("401 for garbage, forged, alg-none, wrong-scheme and unknown-API-key credentials", async () => {
  const genuine = await d.tokenFor("viewer");
  const [h, p, s] = genuine.split(".") as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Json;
  const elevated = Buffer.from(JSON.stringify({ ...claims, role: "admin" })).toString("base64url");
  const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
  const cases: Array<[string, Record<string, string>, string]> = [
    ["garbage", { authorization: "Bearer garbage" }, "token_malformed"],
    ["forged claims", { authorization: `Bearer ${h}.${elevated}.${s}` }, "token_signature_invalid"],
    ["flipped signature", { authorization: `Bearer ${h}.${p}.${s.slice(0, -2)}AA` }, "token_signature_invalid"],
    ["alg none", { authorization: `Bearer ${none}.${elevated}.` }, "token_alg_unsupported"],
    ["basic scheme", { authorization: `Basic ${Buffer.from("admin:x").toString("base64")}` }, "scheme_unsupported"],
    ["unknown API key", { "x-api-key": `gk_${"a".repeat(40)}` }, ""],
  ];
  for (const [name, headers, code] of cases) {
    const x = await d.request("/api/tags", { headers });
    assert.is(x.status, 401, name);
    if (code) assert.is(x.body.error, code, name);
    assert.match(x.headers.get("www-authenticate") ?? "", /^Bearer realm="glassd", error="invalid_token"/, name);
    // A refused credential must not reach the handler.
    assert.is(x.body.tags, undefined, name);
  }
});

auth("401 token_expired for a genuinely signed token past its exp", async () => {
  const expired = await d.expiredToken("operator");
  const x = await d.request("/api/pipeline/process", { token: expired, json: VALID_READING });
  assert.is(x.status, 401);
  assert.is(x.body.error, "token_expired");
  assert.match(String(x.body.message), /log in again/);
});

auth(
  "a viewer reads every viewer route but gets 403 naming the operator role on POST /api/pipeline/process",
  async () => {
    const viewer = await d.tokenFor("viewer");
    for (const r of routes.filter((x) => x.access === "viewer")) {
      const x = await call(r, { token: viewer });
      assert.ok([200, 503].includes(x.status), `${r.method} ${r.path} → ${x.status}`);
    }
    const x = await d.request("/api/pipeline/process", { token: viewer, json: VALID_READING });
    assert.is(x.status, 403);
    assert.is(x.body.error, "forbidden");
    assert.match(String(x.body.message), /needs role "operator"/);
    assert.equal(x.body.details, { need: "operator", have: "viewer" });
    assert.match(x.headers.get("www-authenticate") ?? "", /insufficient_scope/);
    // Refused before anything was read: nothing stored, nothing quarantined.
    const latest = await d.get("/api/sensors/latest", viewer);
    assert.equal(latest.body.samples, []);
    assert.equal((await d.get("/api/quarantine", viewer)).body.items, []);
  },
);

auth("operator, engineer and admin may POST /api/pipeline/process", async () => {
  for (const role of ["operator", "engineer", "admin"] as const) {
    const x = await d.request("/api/pipeline/process", { token: await d.tokenFor(role), json: VALID_READING });
    assert.is(x.status, 200, `${role}: ${x.text.slice(0, 200)}`);
    assert.is((x.body.sensor_data as Json).furnace_temperature, 1500);
  }
});

auth("login: token, expiry and role; no-store; body validated", async () => {
  for (const role of ROLES) {
    const before = Date.now();
    const r = await d.loginResponse(USERS[role].username, USERS[role].password);
    assert.is(r.status, 200, role);
    assert.is(r.body.role, role);
    assert.type(r.body.token, "string");
    const exp = Date.parse(String(r.body.expires_at));
    const ttl = d.config.auth.token_ttl_s * 1000;
    assert.ok(exp >= before + ttl - 2_000 && exp <= Date.now() + ttl + 1_000, `expires_at ${r.body.expires_at}`);
    assert.is(r.headers.get("cache-control"), "no-store");
  }
  for (const body of [
    { username: "vera" },
    { username: "", password: "x" },
    { username: "vera", password: "x", x: 1 },
  ]) {
    const r = await d.post("/api/auth/login", body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.is(r.body.error, "validation_error");
  }
});

auth("login: wrong password and unknown user fail the same way (401, same code and message)", async () => {
  const wrong = await d.loginResponse(USERS.viewer.username, "not-the-password");
  const unknown = await d.loginResponse("nobody-here", "not-the-password");
  assert.is(wrong.status, 401);
  assert.is(unknown.status, 401);
  assert.is(wrong.body.error, "invalid_credentials");
  assert.equal(unknown.body, wrong.body);
  assert.is(wrong.body.token, undefined);
});

auth("an API key works as Bearer gk_… and as X-API-Key, with its role", async () => {
  // A second Auth on the same data dir, as the CLI would; the daemon picks the key file up within ~1 s.
  const cli = new Auth({ env: {}, config: { data_dir: d.dataDir, auth: d.config.auth } });
  await cli.init();
  const { key } = await cli.createApiKey("scada-gateway", "viewer" as Role);
  await d.until("the daemon to load the API key", async () => (await d.get("/api/tags", key)).status === 200, 5_000);
  const viaHeader = await d.request("/api/tags", { headers: { "x-api-key": key } });
  assert.is(viaHeader.status, 200);
  const post = await d.request("/api/pipeline/process", { headers: { "x-api-key": key }, json: VALID_READING });
  assert.is(post.status, 403);
  assert.equal(post.body.details, { need: "operator", have: "viewer" });
});

// Last: it locks this username out of this daemon for the rest of the rate-limit window.
auth(
  "login: 429 with Retry-After after repeated failures, even for the right password; others unaffected",
  async () => {
    const { username, password } = USERS.engineer;
    let limited: Awaited<ReturnType<typeof d.loginResponse>> | undefined;
    for (let i = 0; i < 15 && !limited; i++) {
      const r = await d.loginResponse(username, `wrong-password-${i}`);
      if (r.status === 429) limited = r;
      else assert.is(r.status, 401, `attempt ${i + 1}`);
    }
    assert.ok(limited, "rate limited within 15 attempts");
    assert.is(limited?.body.error, "too_many_attempts");
    const retry = Number(limited?.headers.get("retry-after"));
    assert.ok(Number.isInteger(retry) && retry > 0 && retry <= 300, `Retry-After ${retry}`);
    const right = await d.loginResponse(username, password);
    assert.is(right.status, 429, "the right password is refused while locked out");
    assert.is(right.body.token, undefined);
    assert.is((await d.loginResponse(USERS.viewer.username, USERS.viewer.password)).status, 200);
  },
);

auth.run();
