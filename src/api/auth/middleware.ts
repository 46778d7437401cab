import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, Handler, MiddlewareHandler } from "hono";
import { ValidationError } from "../../core/errors.js";
import type { Auth, Authenticator, Principal } from "./auth.js";
import { AuthError, ForbiddenError } from "./errors.js";
import { type Role, roleAtLeast } from "./roles.js";

/** Hono env for routes behind {@link requireRole}: `c.get("principal")` is the authenticated caller. */
export type AuthEnv = { Variables: { principal: Principal } };

/**
 * The credential of a request: `Authorization` (any scheme; the authenticator refuses non-Bearer with a reason) or,
 * for machine clients that cannot set Authorization, `X-API-Key`.
 */
export function requestCredential(c: Context): string | undefined {
  return c.req.header("authorization") ?? c.req.header("x-api-key") ?? undefined;
}

function withHeaders(c: Context, err: AuthError | ForbiddenError): never {
  // Set on the context as well as carried on the error: the app's onError builds its response from `c`, so the
  // challenge survives even if onError does not copy `err.headers`.
  for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
  throw err;
}

/**
 * Middleware that lets a request through only when it carries a valid token or API key whose role is at least
 * `role`. Sets `c.get("principal")`. Throws {@link AuthError} (401, WWW-Authenticate: Bearer) or
 * {@link ForbiddenError} (403 naming the needed role) for the app's onError to render.
 */
export function requireRole(auth: Authenticator, role: Role): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    let principal: Principal;
    try {
      principal = await auth.authenticate(requestCredential(c));
    } catch (err) {
      if (err instanceof AuthError) withHeaders(c, err);
      throw err;
    }
    if (!roleAtLeast(principal.role, role)) withHeaders(c, new ForbiddenError(role, principal.role));
    c.set("principal", principal);
    await next();
  };
}

/**
 * `requireRole` keyed by the route registry's access level; `"public"` passes every request through untouched.
 * Wire it as `new Routes(app, accessGuard(auth))`.
 */
export function accessGuard(auth: Authenticator): (access: Role | "public") => MiddlewareHandler<AuthEnv> {
  const guards = new Map<Role, MiddlewareHandler<AuthEnv>>();
  const open: MiddlewareHandler<AuthEnv> = async (_c, next) => {
    await next();
  };
  return (access) => {
    if (access === "public") return open;
    let g = guards.get(access);
    if (!g) {
      g = requireRole(auth, access);
      guards.set(access, g);
    }
    return g;
  };
}

/**
 * The client address used for login rate limiting: the TCP peer from @hono/node-server. X-Forwarded-For is ignored
 * on purpose (any client can send it); behind a reverse proxy pass your own `clientIp`.
 */
export function peerAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // app.request() in tests has no socket.
    return "unknown";
  }
}

/**
 * `POST /api/auth/login` handler: body `{username, password}` → `{token, expires_at, role}`. 400 on a malformed
 * body, 401 on bad credentials, 429 when rate limited.
 */
export function loginHandler(auth: Pick<Auth, "login">, opts: { clientIp?: (c: Context) => string } = {}): Handler {
  const clientIp = opts.clientIp ?? peerAddress;
  return async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ValidationError("request body must be JSON: {username, password}", [
        { path: "/", message: "not JSON" },
      ]);
    }
    const b = (body ?? {}) as { username?: unknown; password?: unknown };
    const issues = (["username", "password"] as const)
      .filter((k) => typeof b[k] !== "string" || !(b[k] as string))
      .map((k) => ({ path: `/${k}`, message: "required string" }));
    if (issues.length) throw new ValidationError("login needs username and password", issues);
    const result = await auth.login(b.username as string, b.password as string, clientIp(c));
    c.header("Cache-Control", "no-store");
    return c.json(result);
  };
}
