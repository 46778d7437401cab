import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono, type MiddlewareHandler } from "hono";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { AuthError, accessGuard, isRole, type Principal } from "../src/api/auth/index.js";
import { createModelsApp } from "../src/api/models-routes.js";
import { GlassdError } from "../src/core/errors.js";
import { ModelRegistry } from "../src/inference/registry.js";
import { copyModel, modelsDir, registryOptions, smallModel, writeManifest } from "./inference-fixtures.js";

/*
 * /api/models routes through the daemon's real role guard (accessGuard) and an authenticator that maps test tokens
 * to roles: viewers read, engineers activate / roll back / shadow / promote; a refused version is a 422 naming the
 * check; the OpenAPI declarations say who may call what.
 */

const SRC = modelsDir();
const dir = mkdtempSync(join(tmpdir(), "glassd-inf-routes-"));
const e = smallModel(SRC);
const v1 = copyModel(e, SRC, dir, "1.0.0");
const v2 = copyModel(e, SRC, dir, "1.1.0");
const broken = copyModel(e, SRC, dir, "1.2.0", { keepSha: true, mutate: (b) => b.subarray(1) });
writeManifest(dir, [v1, v2, broken]);
const registry = new ModelRegistry(registryOptions([dir]));

const auth = {
  async authenticate(credential: string | undefined | null): Promise<Principal> {
    const role = credential?.replace(/^Bearer /, "") ?? "";
    if (!credential) throw new AuthError("credentials_missing", "no credentials");
    if (!isRole(role)) throw new AuthError("credentials_invalid", "bad token");
    return { subject: role, role, kind: "user" };
  },
};
const guard = accessGuard(auth);
const app = new Hono();
app.onError((err, c) => {
  if (err instanceof GlassdError) return c.json({ error: err.code, message: err.message }, err.status as 400);
  return c.json({ error: "internal_error", message: String(err) }, 500);
});
const models = createModelsApp({
  registry,
  guard: (a) => guard(a) as unknown as MiddlewareHandler,
  maxBodyBytes: 4096,
});
app.route("/", models.app);

const call = async (method: string, path: string, role?: string, body?: unknown) => {
  const res = await app.request(path, {
    method,
    headers: {
      ...(role ? { Authorization: `Bearer ${role}` } : {}),
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

test.before(async () => {
  await registry.start();
});
test.after(async () => {
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("GET /api/models: viewer sees status, versions, latency; anonymous gets 401", async () => {
  assert.is((await call("GET", "/api/models")).status, 401);
  const r = await call("GET", "/api/models", "viewer");
  assert.is(r.status, 200);
  const m = (r.body.models as Record<string, unknown>[]).find((x) => x.name === e.name)!;
  assert.is(m.status, "loaded");
  assert.is(m.version, "1.1.0", "the newest version that loads (1.2.0 is corrupt)");
  assert.is(m.variant, e.variant);
  assert.ok(m.latency_ms && m.loaded_at && m.metrics);
  const states = Object.fromEntries(
    (m.versions as { version: string; state: string }[]).map((v) => [v.version, v.state]),
  );
  assert.equal(states, { "1.0.0": "available", "1.1.0": "active", "1.2.0": "failed" });
  assert.ok((r.body.alarms as { code: string }[]).some((a) => a.code === "load_failed"));
  assert.is((await call("GET", `/api/models/${e.name}`, "viewer")).body.name, e.name);
  assert.is((await call("GET", "/api/models/nope", "viewer")).status, 404);
});

test("activate / rollback need role engineer", async () => {
  const path = `/api/models/${e.name}/activate`;
  assert.is((await call("POST", path, "operator", { version: "1.0.0" })).status, 403);
  assert.is((await call("POST", path, "engineer", { versión: "1.0.0" })).status, 400);
  const ok = await call("POST", path, "engineer", { version: "1.0.0" });
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.is(ok.body.version, "1.0.0");
  assert.is((ok.body.previous as { version: string }).version, "1.1.0");
  const refused = await call("POST", path, "engineer", { version: "1.2.0" });
  assert.is(refused.status, 422);
  assert.match(String(refused.body.message), /sha256|bytes/);
  assert.is((await call("GET", `/api/models/${e.name}`, "viewer")).body.version, "1.0.0", "still serving");
  assert.is((await call("POST", path, "engineer", { version: "9.9.9" })).status, 404);
  assert.is((await call("POST", `/api/models/${e.name}/rollback`, "operator")).status, 403);
  const back = await call("POST", `/api/models/${e.name}/rollback`, "engineer");
  assert.is(back.status, 200);
  assert.is(back.body.version, "1.1.0");
});

test("shadow / promote / stop shadow", async () => {
  const base = `/api/models/${e.name}`;
  assert.is((await call("POST", `${base}/promote`, "engineer")).status, 409);
  assert.is((await call("POST", `${base}/shadow`, "viewer", { version: "1.0.0" })).status, 403);
  const s = await call("POST", `${base}/shadow`, "engineer", { version: "1.0.0" });
  assert.is(s.status, 200, JSON.stringify(s.body));
  assert.is((s.body.candidate as { version: string }).version, "1.0.0");
  assert.is(s.body.version, "1.1.0");
  assert.is((await call("DELETE", `${base}/shadow`, "engineer")).body.candidate, null);
  await call("POST", `${base}/shadow`, "engineer", { version: "1.0.0" });
  const p = await call("POST", `${base}/promote`, "engineer");
  assert.is(p.body.version, "1.0.0");
});

test("OpenAPI declarations carry the roles", () => {
  const byKey = Object.fromEntries(models.specs.map((s) => [`${s.method} ${s.path}`, s.access]));
  assert.is(byKey["get /api/models"], "viewer");
  assert.is(byKey["post /api/models/{name}/activate"], "engineer");
  assert.is(byKey["post /api/models/{name}/rollback"], "engineer");
  assert.is(byKey["post /api/models/{name}/promote"], "engineer");
});

test.run();
