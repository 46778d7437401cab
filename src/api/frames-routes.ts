import { readFile } from "node:fs/promises";
import type { TSchema } from "@sinclair/typebox";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { GlassdError, NotFoundError, UnavailableError, ValidationError } from "../core/errors.js";
import type { FrameIntake, FrameRecord } from "../ingest/frames/index.js";
import { FrameRejectedError } from "../ingest/frames/index.js";
import type { Principal } from "./auth/index.js";
import { roleAtLeast } from "./auth/index.js";
import { type Access, type RouteSpec, Type } from "./routes.js";

/*
 * MIK-1 frame routes as a Hono sub-app: mount with `app.route("/", createFramesApp({...}))` and add
 * FRAME_ROUTE_SPECS to the OpenAPI registry. Errors are thrown as GlassdError subclasses for the parent app's one
 * onError (a sub-app without its own onError lets them through to it).
 *
 * Who may push: role operator or above, or an API key named `camera:<camera_id>` (any role, viewer is enough),
 * which may push frames of that camera only: `glassd api-key create camera:mik1 --role viewer`.
 */

export interface FramesApiDeps {
  /** Undefined while frames are disabled: every route answers 503 saying so. */
  intake: FrameIntake | undefined;
  /** The daemon's access guard (ApiDeps.auth.guard); it sets `c.get("principal")`. */
  guard: (access: Access) => MiddlewareHandler;
}

/** Multipart overhead allowed on top of frames.max_bytes. */
const FORM_SLACK = 64 * 1024;
const CAMERA_KEY_PREFIX = "api_key:camera:";
const MEDIA: Record<string, "jpeg" | "png" | undefined> = {
  "image/jpeg": "jpeg",
  "image/jpg": "jpeg",
  "image/png": "png",
  "application/octet-stream": undefined,
};

const FrameMeta = Type.Object({
  id: Type.Integer(),
  camera: Type.String(),
  item_id: Type.Union([Type.Integer(), Type.Null()]),
  ts: Type.Integer({ description: "capture time, ms epoch" }),
  received_at: Type.Integer(),
  origin: Type.Union([Type.Literal("directory"), Type.Literal("http")]),
  name: Type.Union([Type.String(), Type.Null()]),
  format: Type.Union([Type.Literal("jpeg"), Type.Literal("png")]),
  width: Type.Integer(),
  height: Type.Integer(),
  bytes: Type.Integer(),
  thumbnail_url: Type.String(),
  original_url: Type.String(),
});

/** Declarations for /openapi.json (the registry's `specs`); the handlers live in createFramesApp. */
export const FRAME_ROUTE_SPECS: RouteSpec<TSchema | undefined, TSchema | undefined>[] = [
  {
    method: "post",
    path: "/api/frames",
    summary:
      "Push one MIK-1 frame: raw image body (image/jpeg, image/png, application/octet-stream; metadata in the query: camera, item_id, ts) or multipart/form-data (file field `image`, fields camera, item_id, ts). Role operator or a camera:<id> API key",
    // Declared as operator; an API key named camera:<id> is let through as well (see createFramesApp).
    access: "operator",
    tag: "frames",
    query: Type.Object({
      camera: Type.Optional(Type.String()),
      item_id: Type.Optional(Type.Integer({ minimum: 0 })),
      ts: Type.Optional(Type.String({ description: "ms epoch or ISO 8601 with a zone; default: arrival" })),
    }),
    response: FrameMeta,
    errors: {
      201: "stored; the body is its metadata",
      400: "empty or bad metadata (details.reason, details.field)",
      403: "needs role operator, or a camera:<camera_id> API key for this camera",
      413: "larger than frames.max_bytes (too_many_bytes)",
      415: "not an accepted image format (wrong_format)",
      422: "oversized, truncated, corrupt, or the ROI does not fit (details.reason)",
      503: "frames disabled, or every decoder busy (Retry-After)",
    },
  },
  {
    method: "get",
    path: "/api/frames/recent",
    summary: "Metadata of the newest stored frames",
    access: "viewer",
    tag: "frames",
    query: Type.Object({
      limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
      camera: Type.Optional(Type.String()),
    }),
  },
  { method: "get", path: "/api/frames/stats", summary: "Frame intake counters", access: "viewer", tag: "frames" },
  {
    method: "get",
    path: "/api/frames/{id}",
    summary: "Metadata of one stored frame",
    access: "viewer",
    tag: "frames",
    response: FrameMeta,
    errors: { 404: "no such frame (or evicted by retention)" },
  },
  {
    method: "get",
    path: "/api/frames/{id}/thumbnail",
    summary: "JPEG thumbnail of one stored frame",
    access: "viewer",
    tag: "frames",
    errors: { 404: "no such frame" },
  },
  {
    method: "get",
    path: "/api/frames/{id}/original",
    summary: "The original image as received",
    access: "viewer",
    tag: "frames",
    errors: { 404: "no such frame, or its file is gone" },
  },
];

export function createFramesApp(deps: FramesApiDeps): Hono {
  const app = new Hono();
  const intake = (): FrameIntake => {
    if (!deps.intake)
      throw new UnavailableError("frame intake is disabled (frames.enabled is false)", "frames_disabled");
    return deps.intake;
  };
  const viewer = deps.guard("viewer");
  const maxBytes = deps.intake?.config.max_bytes ?? 0;
  const limit = bodyLimit({
    maxSize: maxBytes + FORM_SLACK,
    onError: () => {
      deps.intake?.countRejection("too_many_bytes");
      throw new FrameRejectedError("too_many_bytes", `request body exceeds frames.max_bytes = ${maxBytes}`);
    },
  });

  app.post(
    "/api/frames",
    viewer,
    async (c, next) => {
      const i = intake();
      if (!i.config.http.enabled)
        throw new UnavailableError("HTTP frame push is disabled (frames.http.enabled)", "frames_http_disabled");
      return limit(c, next);
    },
    async (c) => {
      const i = intake();
      const principal = c.get("principal" as never) as Principal | undefined;
      const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      let data: Uint8Array;
      let declared: "jpeg" | "png" | undefined;
      let meta: Record<string, unknown>;
      if (type === "multipart/form-data") {
        let form: Record<string, unknown>;
        try {
          form = (await c.req.parseBody()) as Record<string, unknown>;
        } catch (err) {
          if (err instanceof GlassdError) throw err;
          i.countRejection("bad_metadata");
          throw new FrameRejectedError("bad_metadata", `unreadable multipart body: ${(err as Error).message}`, "body");
        }
        const file = form.image;
        if (!(file instanceof File)) {
          i.countRejection("empty");
          throw new FrameRejectedError("empty", "multipart body has no file field `image`", "image");
        }
        data = new Uint8Array(await file.arrayBuffer());
        const ft = (file.type || "application/octet-stream").toLowerCase();
        if (!(ft in MEDIA)) {
          i.countRejection("wrong_format");
          throw new FrameRejectedError(
            "wrong_format",
            `image part has type ${ft}; send image/jpeg or image/png`,
            "image",
          );
        }
        declared = MEDIA[ft];
        meta = { camera: form.camera, item_id: form.item_id, ts: form.ts };
      } else {
        if (!(type in MEDIA)) {
          i.countRejection("wrong_format");
          throw new FrameRejectedError(
            "wrong_format",
            `Content-Type ${type || "(none)"} is not taken; send image/jpeg, image/png, application/octet-stream or multipart/form-data`,
            "content-type",
          );
        }
        declared = MEDIA[type];
        data = new Uint8Array(await c.req.arrayBuffer());
        const q = c.req.query();
        meta = { camera: q.camera, item_id: q.item_id, ts: q.ts };
      }
      meta.camera = authorisedCamera(principal, meta.camera);
      const rec = await i.submit(data, meta, declared);
      return c.json(view(rec), 201, { Location: `/api/frames/${rec.id}` });
    },
  );

  app.get("/api/frames/recent", viewer, (c) => {
    const q = c.req.query();
    const n = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(n) || n < 1 || n > 500)
      throw new ValidationError("query parameters are invalid", [
        { path: "/limit", message: "must be an integer 1..500" },
      ]);
    return c.json({
      frames: intake()
        .recent(n, q.camera || undefined)
        .map(view),
    });
  });

  app.get("/api/frames/stats", viewer, (c) => c.json(intake().stats()));

  app.get("/api/frames/:id", viewer, (c) => c.json(view(record(intake(), c))));

  app.get("/api/frames/:id/thumbnail", viewer, (c) => {
    const i = intake();
    const rec = record(i, c);
    const t = i.thumbnail(rec.id);
    if (!t) throw new NotFoundError(`frame ${rec.id} has no thumbnail`);
    return c.body(new Uint8Array(t), 200, { "Content-Type": "image/jpeg", "Cache-Control": "private, max-age=86400" });
  });

  app.get("/api/frames/:id/original", viewer, async (c) => {
    const i = intake();
    const rec = record(i, c);
    let data: Buffer;
    try {
      data = await readFile(i.originalPath(rec));
    } catch {
      throw new NotFoundError(`the original of frame ${rec.id} is gone from disk (${rec.path})`);
    }
    return c.body(new Uint8Array(data), 200, {
      "Content-Type": `image/${rec.format}`,
      "Content-Disposition": `inline; filename="${rec.id}.${rec.format === "jpeg" ? "jpg" : "png"}"`,
      "Cache-Control": "private, max-age=86400",
    });
  });

  return app;
}

/** Operators push for any camera; a camera:<id> key only for its own camera (which is then the default). */
function authorisedCamera(p: Principal | undefined, camera: unknown): unknown {
  if (p && roleAtLeast(p.role, "operator")) return camera;
  if (p?.kind === "api_key" && p.subject.startsWith(CAMERA_KEY_PREFIX)) {
    const own = p.subject.slice(CAMERA_KEY_PREFIX.length);
    if (camera === undefined || camera === "" || camera === own) return own;
    throw new GlassdError(`this API key may push frames of camera ${own} only, not ${String(camera)}`, {
      status: 403,
      code: "forbidden",
    });
  }
  throw new GlassdError(
    "pushing frames needs role operator, or an API key named camera:<camera_id> (glassd api-key create camera:mik1 --role viewer)",
    { status: 403, code: "forbidden" },
  );
}

function record(i: FrameIntake, c: Context): FrameRecord {
  const raw = c.req.param("id") ?? "";
  const id = /^\d{1,15}$/.test(raw) ? Number(raw) : Number.NaN;
  const rec = Number.isSafeInteger(id) ? i.get(id) : undefined;
  if (!rec) throw new NotFoundError(`no frame ${raw} (ids are integers; unknown, or deleted by retention)`);
  return rec;
}

function view(r: FrameRecord) {
  return {
    id: r.id,
    camera: r.camera,
    item_id: r.item_id,
    ts: r.ts,
    received_at: r.received_at,
    origin: r.origin,
    name: r.name,
    format: r.format,
    width: r.width,
    height: r.height,
    bytes: r.bytes,
    thumbnail_url: `/api/frames/${r.id}/thumbnail`,
    original_url: `/api/frames/${r.id}/original`,
  };
}
