import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Ajv } from "ajv";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ajvIssues } from "../core/ajv-issues.js";
import { ValidationError } from "../core/errors.js";

export type Role = "viewer" | "operator" | "engineer" | "admin";
export type Access = Role | "public";

/** One route's declaration: the same schemas validate requests and produce /openapi.json. */
export interface RouteSpec<B extends TSchema | undefined = undefined, Q extends TSchema | undefined = undefined> {
  method: "get" | "post" | "put" | "delete";
  path: string;
  summary: string;
  access: Access;
  tag: string;
  body?: B;
  query?: Q;
  /** Response schema for 200 (documentation). */
  response?: TSchema;
  /** Other documented statuses, e.g. {503: "no model loaded"}. */
  errors?: Record<number, string>;
}

type In<T> = T extends TSchema ? Static<T> : undefined;

const ajv = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: true, strict: false });
const queryAjv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });

/**
 * Route registry: registers handlers on the Hono app with the access guard and request validation, and keeps
 * the declarations for the OpenAPI document.
 */
export class Routes {
  readonly specs: RouteSpec<TSchema | undefined, TSchema | undefined>[] = [];

  private readonly limitBody: MiddlewareHandler;

  constructor(
    private readonly app: Hono,
    private readonly guard: (access: Access) => MiddlewareHandler,
    maxBodyBytes: number,
  ) {
    // Only on routes that take a body: reading the body stream on every GET costs a third of REST throughput.
    this.limitBody = bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) =>
        c.json(
          { error: "payload_too_large", message: `request body exceeds ${maxBodyBytes} bytes (server.max_body_bytes)` },
          413,
        ),
    });
  }

  add<B extends TSchema | undefined = undefined, Q extends TSchema | undefined = undefined>(
    spec: RouteSpec<B, Q>,
    handler: (c: Context, input: { body: In<B>; query: In<Q> }) => Response | Promise<Response>,
  ): void {
    this.specs.push(spec as RouteSpec<TSchema | undefined, TSchema | undefined>);
    const checkBody = spec.body ? ajv.compile(spec.body) : undefined;
    const checkQuery = spec.query ? queryAjv.compile(spec.query) : undefined;
    const honoPath = spec.path.replace(/\{(\w+)\}/g, ":$1");
    const middleware = spec.body ? [this.limitBody, this.guard(spec.access)] : [this.guard(spec.access)];
    this.app.on(spec.method.toUpperCase(), [honoPath], ...middleware, async (c: Context) => {
      let body: unknown;
      if (checkBody) {
        const text = await c.req.text();
        try {
          body = JSON.parse(text);
        } catch (err) {
          throw new ValidationError("request body is not valid JSON", [{ path: "/", message: (err as Error).message }]);
        }
        if (!checkBody(body)) throw new ValidationError("request body is invalid", ajvIssues(checkBody.errors));
      }
      let query: unknown;
      if (checkQuery) {
        query = { ...c.req.query() };
        if (!checkQuery(query)) throw new ValidationError("query parameters are invalid", ajvIssues(checkQuery.errors));
      }
      return handler(c, { body: body as In<B>, query: query as In<Q> });
    });
  }

  /** OpenAPI 3.1 document built from the registered declarations. */
  openapi(info: { title: string; version: string }): unknown {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const s of this.specs) {
      const op: Record<string, unknown> = {
        summary: s.summary,
        tags: [s.tag],
        "x-required-role": s.access,
        responses: {
          200: {
            description: "OK",
            ...(s.response ? { content: { "application/json": { schema: s.response } } } : {}),
          },
          ...(s.body
            ? {
                400: { description: "Invalid request (the body names the field)" },
                413: { description: "Body too large" },
              }
            : {}),
          ...(s.access !== "public"
            ? { 401: { description: "Missing or invalid token" }, 403: { description: `Needs role ${s.access}` } }
            : {}),
          ...Object.fromEntries(Object.entries(s.errors ?? {}).map(([k, v]) => [k, { description: v }])),
        },
      };
      if (s.access !== "public") op.security = [{ bearer: [] }, { apiKey: [] }];
      if (s.body) op.requestBody = { required: true, content: { "application/json": { schema: s.body } } };
      if (s.query?.properties) {
        op.parameters = Object.entries(s.query.properties as Record<string, TSchema>).map(([name, schema]) => ({
          name,
          in: "query",
          required: (s.query?.required as string[] | undefined)?.includes(name) ?? false,
          schema,
        }));
      }
      paths[s.path] ??= {};
      (paths[s.path] as Record<string, unknown>)[s.method] = op;
    }
    return {
      openapi: "3.1.0",
      info,
      paths,
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
        },
      },
    };
  }
}

export { Type };
