import type { TSchema } from "@sinclair/typebox";
import { Hono, type MiddlewareHandler } from "hono";
import { NotFoundError, UnavailableError } from "../core/errors.js";
import type { ModelRegistry } from "../inference/registry.js";
import { type Access, type RouteSpec, Routes, Type } from "./routes.js";

/*
 * Model registry routes as a Hono sub-app: mount with `app.route("/", createModelsApp({...}).app)` and add its
 * `specs` to the OpenAPI registry (`routes.specs.push(...specs)`). Reading is for viewers; changing what runs
 * (activate, rollback, shadow, promote, reload) needs role engineer. Errors are GlassdError subclasses for the
 * parent app's onError: 404 unknown model/version, 409 nothing to roll back/promote, 422 the version was refused
 * by a load check (the body names the check; the live version keeps serving), 503 registry disabled.
 */

export interface ModelsApiDeps {
  /** Undefined while inference is disabled: every route answers 503 saying so. */
  registry: ModelRegistry | undefined;
  guard: (access: Access) => MiddlewareHandler;
  maxBodyBytes: number;
}

const Version = Type.Object(
  { version: Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.+-]+$" }) },
  { additionalProperties: false },
);
const NameParam = "{name}";

export function createModelsApp(deps: ModelsApiDeps): {
  app: Hono;
  specs: RouteSpec<TSchema | undefined, TSchema | undefined>[];
} {
  const app = new Hono();
  const routes = new Routes(app, deps.guard, deps.maxBodyBytes);
  const reg = (): ModelRegistry => {
    if (!deps.registry)
      throw new UnavailableError("inference is disabled (inference.enabled is false)", "inference_disabled");
    return deps.registry;
  };
  const known = (name: string | undefined): string => {
    const r = reg();
    if (!name || !r.names().includes(name))
      throw new NotFoundError(`no model ${name ?? ""}; known: ${r.names().join(", ") || "(none)"}`);
    return name;
  };
  const refused = {
    404: "unknown model or version",
    409: "the model is in no state for this (nothing to roll back, no candidate …)",
    422: "the version was refused by a load check (sha256, I/O names/shapes, class order, golden outputs); the live version keeps serving",
    503: "inference disabled",
  };

  routes.add(
    {
      method: "get",
      path: "/api/models",
      summary:
        "Every model: live version, status (loaded | unavailable | failed with the reason), variant, metrics, latency p50/p99, loaded_at, queue, previous and shadow candidate with agreement; recent alarms",
      access: "viewer",
      tag: "models",
      errors: { 503: "inference disabled" },
    },
    (c) => c.json({ timestamp: new Date().toISOString(), ...reg().status() }),
  );
  routes.add(
    {
      method: "get",
      path: `/api/models/${NameParam}`,
      summary: "One model's status and the versions on disk",
      access: "viewer",
      tag: "models",
      errors: { 404: "unknown model", 503: "inference disabled" },
    },
    (c) => c.json(reg().statusOf(known(c.req.param("name")))),
  );
  routes.add(
    {
      method: "post",
      path: `/api/models/${NameParam}/activate`,
      summary: "Load, check and warm a version, then swap it live between ticks (the live one is kept for rollback)",
      access: "engineer",
      tag: "models",
      body: Version,
      errors: refused,
    },
    async (c, { body }) => c.json(await reg().activate(known(c.req.param("name")), body.version)),
  );
  routes.add(
    {
      method: "post",
      path: `/api/models/${NameParam}/rollback`,
      summary: "Swap the previous version live again (it stayed loaded)",
      access: "engineer",
      tag: "models",
      errors: refused,
    },
    async (c) => c.json(await reg().rollback(known(c.req.param("name")))),
  );
  routes.add(
    {
      method: "post",
      path: `/api/models/${NameParam}/shadow`,
      summary:
        "Run a version as shadow candidate beside the live one on the same inputs (agreement in GET /api/models)",
      access: "engineer",
      tag: "models",
      body: Version,
      errors: refused,
    },
    async (c, { body }) => c.json(await reg().shadow(known(c.req.param("name")), body.version)),
  );
  routes.add(
    {
      method: "delete",
      path: `/api/models/${NameParam}/shadow`,
      summary: "Stop and unload the shadow candidate",
      access: "engineer",
      tag: "models",
      errors: refused,
    },
    async (c) => c.json(await reg().stopShadow(known(c.req.param("name")))),
  );
  routes.add(
    {
      method: "post",
      path: `/api/models/${NameParam}/promote`,
      summary: "Make the shadow candidate the live version (explicit; never automatic)",
      access: "engineer",
      tag: "models",
      errors: refused,
    },
    async (c) => c.json(await reg().promote(known(c.req.param("name")))),
  );
  routes.add(
    {
      method: "post",
      path: "/api/models/reload",
      summary: "Re-read the manifests now (the file watch does this on its own) and apply new versions",
      access: "engineer",
      tag: "models",
      errors: { 503: "inference disabled" },
    },
    async (c) => {
      await reg().reload();
      return c.json({ timestamp: new Date().toISOString(), ...reg().status() });
    },
  );
  return { app, specs: routes.specs };
}
