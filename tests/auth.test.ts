import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  Auth,
  type AuthEnv,
  type AuthOptions,
  accessGuard,
  hashPassword,
  loginHandler,
  ROLES,
  requireRole,
  roleAtLeast,
  verifyPassword,
  type WithHeaders,
} from "../src/api/auth/index.js";
import { FailureLimiter } from "../src/api/auth/rate-limit.js";
import { SimClock } from "../src/core/clock.js";
import { GlassdError } from "../src/core/errors.js";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "glassd-auth-"));
  dirs.push(d);
  return d;
}
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const ADMIN_PW = "correct horse battery";

/** An Auth over a fresh data dir whose first admin password comes from a file (no CREDENTIALS_DIRECTORY). */
async function setup(
  opts: Partial<AuthOptions> & { auth?: Partial<AuthOptions["config"]["auth"]>; dir?: string } = {},
): Promise<{ auth: Auth; dir: string; clock: SimClock }> {
  const dir = opts.dir ?? tmp();
  const pwFile = join(dir, "admin-pw");
  if (!existsSync(pwFile)) writeFileSync(pwFile, `${ADMIN_PW}\n`, { mode: 0o600 });
  const clock = (opts.clock as SimClock | undefined) ?? new SimClock(Date.UTC(2026, 0, 1));
  const auth = new Auth({
    env: {},
    refreshMs: 0,
    ...opts,
    clock,
    config: { data_dir: join(dir, "data"), auth: { token_ttl_s: 900, admin_password_file: pwFile, ...opts.auth } },
  });
  await auth.init();
  return { auth, dir, clock };
}

async function rejects(p: Promise<unknown>): Promise<GlassdError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, GlassdError);
    return err as GlassdError;
  }
  assert.unreachable("expected the promise to reject");
  throw new Error("unreachable");
}

const mode = (p: string) => statSync(p).mode & 0o777;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const parts = (token: string) => token.split(".") as [string, string, string];

// ── roles and passwords ────────────────────────────────────────────────────────────────────────────────────────

test("roles are ordered viewer < operator < engineer < admin", () => {
  assert.equal([...ROLES], ["viewer", "operator", "engineer", "admin"]);
  for (const [i, have] of ROLES.entries())
    for (const [j, need] of ROLES.entries()) assert.is(roleAtLeast(have, need), i >= j, `${have} vs ${need}`);
});

test("password hashes are salted scrypt (N >= 2^14, r=8, p=1) and verify in constant time", async () => {
  const a = await hashPassword("s3cret-pass");
  const b = await hashPassword("s3cret-pass");
  assert.not.equal(a, b, "fresh salt per hash");
  const m = /^\$scrypt\$ln=(\d+),r=8,p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(a);
  assert.ok(m, a);
  assert.ok(Number(m[1]) >= 14);
  assert.is(Buffer.from(m[2]!, "base64").length, 16);
  assert.is(Buffer.from(m[3]!, "base64").length, 32);
  assert.ok(await verifyPassword("s3cret-pass", a));
  assert.not.ok(await verifyPassword("s3cret-pasS", a));
  assert.not.ok(await verifyPassword("s3cret-pass", "not a hash"));
});

// ── bootstrap ──────────────────────────────────────────────────────────────────────────────────────────────────

test("bootstrap from admin_password_file: trailing newline trimmed, users file 0600 without the password", async () => {
  const dir = tmp();
  const pwFile = join(dir, "pw");
  writeFileSync(pwFile, `${ADMIN_PW}\n`);
  const auth = new Auth({
    env: {},
    config: { data_dir: join(dir, "data"), auth: { token_ttl_s: 900, admin_password_file: pwFile } },
  });
  const info = await auth.init();
  assert.is(info.admin_created, true);
  assert.is(info.admin_password_source, "file");
  assert.is(info.generated_password_file, undefined);
  assert.is(info.token_secret_source, "data_dir");
  assert.is(info.token_secret_generated, true);
  const usersFile = join(dir, "data", "users.json");
  assert.is(info.users_file, usersFile);
  assert.is(mode(usersFile), 0o600);
  assert.is(mode(join(dir, "data", "token-secret")), 0o600);
  const text = readFileSync(usersFile, "utf8");
  assert.not.ok(text.includes(ADMIN_PW), "users file must not hold the password");
  const users = JSON.parse(text).users;
  assert.is(users.length, 1);
  assert.is(users[0].username, "admin");
  assert.is(users[0].role, "admin");
  assert.match(users[0].password, /^\$scrypt\$/);
  assert.ok(Date.parse(users[0].created_at) > 0);

  const ok = await auth.login("admin", ADMIN_PW);
  assert.is(ok.role, "admin");
  const withNewline = await rejects(auth.login("admin", `${ADMIN_PW}\n`));
  assert.is(withNewline.status, 401);

  // A second start finds the admin and changes nothing.
  const again = await new Auth({
    env: {},
    config: { data_dir: join(dir, "data"), auth: { token_ttl_s: 900, admin_password_file: pwFile } },
  }).init();
  assert.is(again.admin_created, false);
  assert.is(again.token_secret_generated, false);
  assert.is(readFileSync(usersFile, "utf8"), text);
});

test("bootstrap from $CREDENTIALS_DIRECTORY: admin-password and token-secret (systemd LoadCredential)", async () => {
  const dir = tmp();
  const creds = join(dir, "creds");
  const data = join(dir, "data");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(creds);
  writeFileSync(join(creds, "admin-password"), "from-systemd-credential\n");
  writeFileSync(join(creds, "token-secret"), `${"ab".repeat(32)}\n`);
  const auth = new Auth({
    env: { CREDENTIALS_DIRECTORY: creds },
    config: { data_dir: data, auth: { token_ttl_s: 900 } },
  });
  const info = await auth.init();
  assert.is(info.admin_password_source, "credentials");
  assert.is(info.token_secret_source, "credentials");
  assert.not.ok(existsSync(join(data, "token-secret")), "no secret generated when systemd provides one");
  assert.not.ok(existsSync(join(data, "initial-admin-password")));
  assert.is((await auth.login("admin", "from-systemd-credential")).role, "admin");
});

test("bootstrap without any password source generates one once into data_dir (0600) and returns only its path", async () => {
  const dir = tmp();
  const data = join(dir, "data");
  const make = () => new Auth({ env: {}, refreshMs: 0, config: { data_dir: data, auth: { token_ttl_s: 900 } } });
  const auth = make();
  const info = await auth.init();
  assert.is(info.admin_password_source, "generated");
  const file = join(data, "initial-admin-password");
  assert.is(info.generated_password_file, file);
  assert.is(mode(file), 0o600);
  const password = readFileSync(file, "utf8").trim();
  assert.ok(password.length >= 16, "a strong generated password");
  assert.not.ok(JSON.stringify(info).includes(password), "init info is safe to log: the path, never the password");
  assert.is((await auth.login("admin", password)).role, "admin");

  // The users file lost (or never written): the same generated password is reused, not regenerated.
  rmSync(join(data, "users.json"));
  const again = await make().init();
  assert.is(again.admin_created, true);
  assert.is(readFileSync(file, "utf8").trim(), password);

  // Changing the admin's password retires the file.
  await auth.setPassword("admin", "a-brand-new-password");
  assert.not.ok(existsSync(file));
  assert.is((await auth.login("admin", "a-brand-new-password")).role, "admin");
});

test("bootstrap refuses a password shorter than 8 characters and a missing configured file, clearly", async () => {
  const dir = tmp();
  writeFileSync(join(dir, "short"), "abc1234\n");
  const short = await rejects(
    new Auth({
      env: {},
      config: { data_dir: join(dir, "d1"), auth: { token_ttl_s: 900, admin_password_file: join(dir, "short") } },
    }).init(),
  );
  assert.match(short.message, /too short \(7 characters\); use at least 8/);
  assert.match(short.message, /short/, "names the file");
  assert.not.ok(existsSync(join(dir, "d1", "users.json")), "no admin created with a weak password");

  const missing = await rejects(
    new Auth({
      env: {},
      config: { data_dir: join(dir, "d2"), auth: { token_ttl_s: 900, admin_password_file: join(dir, "nope") } },
    }).init(),
  );
  assert.match(missing.message, /admin_password_file .*nope does not exist/);

  writeFileSync(join(dir, "weak-secret"), "short\n");
  const weak = await rejects(
    new Auth({
      env: {},
      config: { data_dir: join(dir, "d3"), auth: { token_ttl_s: 900, token_secret_file: join(dir, "weak-secret") } },
    }).init(),
  );
  assert.match(weak.message, /at least 32 random bytes/);
});

test("a corrupt users file stops init with its path and is left untouched", async () => {
  const dir = tmp();
  const data = join(dir, "data");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(data);
  writeFileSync(join(data, "users.json"), '{"users": [{"username": "x"');
  const err = await rejects(new Auth({ env: {}, config: { data_dir: data, auth: { token_ttl_s: 900 } } }).init());
  assert.match(err.message, /users\.json is not valid JSON/);
  assert.is(readFileSync(join(data, "users.json"), "utf8"), '{"users": [{"username": "x"');
});

test("a users file broken while running keeps the last good copy (reported once) and is never overwritten", async () => {
  const lines: string[] = [];
  const logger = pino({ level: "error" }, { write: (l: string) => lines.push(l) });
  const { auth, dir } = await setup({ logger });
  const file = join(dir, "data", "users.json");
  writeFileSync(file, "{ oops");
  assert.is((await auth.login("admin", ADMIN_PW)).role, "admin");
  assert.is((await auth.login("admin", ADMIN_PW)).role, "admin");
  assert.is(lines.length, 1, "reported once, not per request");
  assert.match(lines[0]!, /users\.json is not valid JSON/);
  assert.match((await rejects(auth.addUser("newbie", "long-enough", "viewer"))).message, /not valid JSON/);
  assert.is(readFileSync(file, "utf8"), "{ oops");
});

// ── login and tokens ───────────────────────────────────────────────────────────────────────────────────────────

test("login: wrong password and unknown user fail identically (message, code, and both pay for scrypt)", async () => {
  const { auth } = await setup();
  const wrong = await rejects(auth.login("admin", "wrong password"));
  const unknown = await rejects(auth.login("nobody", "wrong password"));
  assert.is(wrong.status, 401);
  assert.is(unknown.status, 401);
  assert.is(wrong.message, unknown.message);
  assert.is(wrong.code, unknown.code);
  assert.is(wrong.message, "invalid username or password");

  // Timing: the unknown user must be verified against a dummy hash, not answered at once.
  const time = async (u: string) => {
    const t0 = performance.now();
    await auth.login(u, "wrong password").catch(() => {});
    return performance.now() - t0;
  };
  const known: number[] = [];
  const nobody: number[] = [];
  for (let i = 0; i < 3; i++) {
    known.push(await time("admin"));
    nobody.push(await time(`nobody${i}`));
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[1]!;
  assert.ok(
    med(nobody) > 0.4 * med(known),
    `unknown ${med(nobody).toFixed(1)} ms vs known ${med(known).toFixed(1)} ms`,
  );
});

test("login returns a token that authenticates to a user principal; ttl from config", async () => {
  const { auth, clock } = await setup({ auth: { token_ttl_s: 60 } });
  const r = await auth.login("admin", ADMIN_PW);
  assert.is(r.role, "admin");
  assert.is(Date.parse(r.expires_at), clock.now() + 60_000);
  const [h, p] = parts(r.token);
  const header = JSON.parse(Buffer.from(h, "base64url").toString());
  const claims = JSON.parse(Buffer.from(p, "base64url").toString());
  assert.is(header.alg, "HS256");
  assert.type(header.kid, "string");
  assert.equal(Object.keys(claims).sort(), ["exp", "iat", "role", "sub"]);
  const who = await auth.authenticate(`Bearer ${r.token}`);
  assert.equal(who, { subject: "admin", role: "admin", kind: "user", expires_at: clock.now() + 60_000 });
  assert.equal(await auth.authenticate(r.token), who, "a bare token works too");
});

test("token expiry follows the injected clock", async () => {
  const { auth, clock } = await setup({ auth: { token_ttl_s: 60 } });
  const { token } = await auth.login("admin", ADMIN_PW);
  clock.advance(59_000);
  assert.is((await auth.authenticate(token)).subject, "admin");
  clock.advance(1_000);
  const err = await rejects(auth.authenticate(token));
  assert.is(err.status, 401);
  assert.is(err.code, "token_expired");
  assert.match(err.message, /expired at 2026-01-01T00:01:00\.000Z; log in again/);
});

test("forged, altered, alg none, other algs and malformed tokens are refused with distinct reasons", async () => {
  const { auth } = await setup();
  await auth.addUser("vera", "viewer-password", "viewer");
  const { token } = await auth.login("vera", "viewer-password");
  const [h, p, s] = parts(token);
  const claims = JSON.parse(Buffer.from(p, "base64url").toString());
  const header = JSON.parse(Buffer.from(h, "base64url").toString());
  const code = async (t: string) => (await rejects(auth.authenticate(t))).code;

  // Privilege escalation attempt: same header and signature, role rewritten.
  assert.is(await code(`${h}.${b64({ ...claims, role: "admin" })}.${s}`), "token_signature_invalid");
  // Signature bytes altered in the middle (the last base64url char may only carry padding bits).
  const mid = Math.floor(s.length / 2);
  const flipped = s.slice(0, mid) + (s[mid] === "A" ? "B" : "A") + s.slice(mid + 1);
  assert.is(await code(`${h}.${p}.${flipped}`), "token_signature_invalid");
  assert.is(await code(`${h}.${p}.`), "token_signature_invalid");
  // alg none, with and without the same kid.
  assert.is(
    await code(`${b64({ ...header, alg: "none" })}.${b64({ ...claims, role: "admin" })}.`),
    "token_alg_unsupported",
  );
  assert.is(await code(`${b64({ alg: "none" })}.${p}.`), "token_alg_unsupported");
  assert.is(await code(`${b64({ ...header, alg: "HS512" })}.${p}.${s}`), "token_alg_unsupported");
  const none = await rejects(auth.authenticate(`${b64({ alg: "none" })}.${p}.`));
  assert.match(none.message, /"none" is not accepted/);
  // Signed with another key.
  const other = await setup();
  const foreign = (await other.auth.login("admin", ADMIN_PW)).token;
  assert.is(await code(foreign), "token_key_retired");
  // Structure.
  for (const bad of ["abc", "a.b", "a.b.c.d", "!!.x.y", `${b64("x")}.${p}.${s}`, `.${p}.${s}`, "x".repeat(5000)])
    assert.is(await code(bad), "token_malformed", bad.slice(0, 20));
  assert.is(await code(""), "credentials_missing");
  assert.is(await code(`Basic ${Buffer.from("admin:x").toString("base64")}`), "scheme_unsupported");
  // And the genuine one still works.
  assert.is((await auth.authenticate(token)).role, "viewer");
});

test("rotating the token secret retires every issued token (token_key_retired)", async () => {
  const { auth } = await setup();
  const { token } = await auth.login("admin", ADMIN_PW);
  await auth.rotateTokenSecret();
  assert.is((await rejects(auth.authenticate(token))).code, "token_key_retired");
  const fresh = await auth.login("admin", ADMIN_PW);
  assert.is((await auth.authenticate(fresh.token)).subject, "admin");
});

test("removal and demotion apply to issued tokens at once", async () => {
  const { auth } = await setup();
  await auth.addUser("erin", "engineer-password", "engineer");
  const { token } = await auth.login("erin", "engineer-password");
  assert.is((await auth.authenticate(token)).role, "engineer");
  await auth.setRole("erin", "viewer");
  assert.is((await auth.authenticate(token)).role, "viewer");
  await auth.removeUser("erin");
  assert.is((await rejects(auth.authenticate(token))).code, "user_unknown");
  assert.is((await rejects(auth.removeUser("admin"))).status, 409, "the last admin cannot be removed");
  assert.is((await rejects(auth.setRole("admin", "viewer"))).status, 409, "nor demoted");
});

test("addUser validates name, password and role, and refuses duplicates", async () => {
  const { auth } = await setup();
  assert.equal((await auth.addUser("op.1", "operator-pw", "operator")).role, "operator");
  assert.is((await rejects(auth.addUser("op.1", "operator-pw", "operator"))).status, 409);
  assert.match((await rejects(auth.addUser("op2", "short", "operator"))).message, /too short/);
  assert.is((await rejects(auth.addUser("bad name", "long-enough", "viewer"))).status, 400);
  assert.is((await rejects(auth.addUser("op3", "long-enough", "root" as never))).status, 400);
  assert.equal(
    (await auth.listUsers()).map((u) => u.username),
    ["admin", "op.1"],
  );
});

test("a user added by another process (the CLI) can log in without a restart", async () => {
  const { auth, dir } = await setup();
  const cli = await setup({ dir });
  await cli.auth.addUser("late", "added-by-cli", "operator");
  assert.is((await auth.login("late", "added-by-cli")).role, "operator");
});

// ── API keys ───────────────────────────────────────────────────────────────────────────────────────────────────

test("API keys: shown once, stored as sha256 only (0600), verified, wrong key and revoked key refused", async () => {
  const { auth, dir } = await setup();
  const k = await auth.createApiKey("scada-gw", "operator");
  assert.match(k.key, /^gk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const file = join(dir, "data", "api-keys.json");
  assert.is(mode(file), 0o600);
  const text = readFileSync(file, "utf8");
  assert.not.ok(text.includes(k.key.split("_").slice(2).join("_")), "the secret is not stored");
  assert.match(text, /"hash": "sha256:[0-9a-f]{64}"/);

  const who = await auth.authenticate(`Bearer ${k.key}`);
  assert.equal(who, { subject: "api_key:scada-gw", role: "operator", kind: "api_key", key_id: k.id });
  assert.equal(await auth.authenticate(k.key), who);

  const last = k.key.at(-1) === "A" ? "B" : "A";
  assert.is((await rejects(auth.authenticate(k.key.slice(0, -1) + last))).code, "api_key_invalid");
  assert.is((await rejects(auth.authenticate(`gk_${"0".repeat(16)}_${"A".repeat(43)}`))).code, "api_key_invalid");
  assert.is((await rejects(auth.authenticate("gk_123_abc"))).code, "api_key_malformed");
  assert.is((await rejects(auth.createApiKey("scada-gw", "viewer"))).status, 409);
  assert.equal(
    (await auth.listApiKeys()).map((x) => [x.name, x.role]),
    [["scada-gw", "operator"]],
  );

  await auth.revokeApiKey("scada-gw");
  assert.is((await rejects(auth.authenticate(k.key))).code, "api_key_invalid");
});

// ── Hono middleware ────────────────────────────────────────────────────────────────────────────────────────────

/** A small app shaped like the daemon's: one onError rendering GlassdError, copying headers the error carries. */
function app(auth: Auth, copyHeaders = true) {
  const a = new Hono<AuthEnv>();
  a.onError((err, c) => {
    if (err instanceof GlassdError) {
      const headers = copyHeaders && "headers" in err ? { ...(err as unknown as WithHeaders).headers } : {};
      return c.json({ error: err.code, message: err.message }, err.status as 400, headers);
    }
    return c.json({ error: "internal_error", message: String(err) }, 500);
  });
  a.post("/api/auth/login", loginHandler(auth));
  a.get("/api/eng", requireRole(auth, "engineer"), (c) => c.json({ who: c.get("principal") }));
  a.get("/api/view", requireRole(auth, "viewer"), (c) => c.json({ who: c.get("principal").subject }));
  const guard = accessGuard(auth);
  a.get("/api/public", guard("public"), (c) => c.json({ ok: true }));
  a.get("/api/admin", guard("admin"), (c) => c.json({ ok: true }));
  return a;
}

/** The JSON bodies these routes answer with. */
interface Body {
  error: string;
  message: string;
  token: string;
  who: unknown;
}
const json = async (r: Response | Promise<Response>) => (await (await r).json()) as Body;

const login = (a: Hono<AuthEnv>, username: string, password: string) =>
  a.request("/api/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });

test("requireRole: 401 with WWW-Authenticate without a token, 403 naming the role, 200 when allowed", async () => {
  const { auth, clock } = await setup({ auth: { token_ttl_s: 60 } });
  await auth.addUser("vera", "viewer-password", "viewer");
  await auth.addUser("erin", "engineer-password", "engineer");
  for (const copy of [true, false]) {
    const a = app(auth, copy);
    const none = await a.request("/api/eng");
    assert.is(none.status, 401);
    assert.is(none.headers.get("www-authenticate"), 'Bearer realm="glassd"', `copyHeaders=${copy}`);
    assert.is((await json(none)).error, "credentials_missing");

    const viewer = (await json(login(a, "vera", "viewer-password"))).token;
    const forbidden = await a.request("/api/eng", { headers: { Authorization: `Bearer ${viewer}` } });
    assert.is(forbidden.status, 403);
    const fb = await json(forbidden);
    assert.is(fb.error, "forbidden");
    assert.match(fb.message, /needs role "engineer"/);
    assert.is((await a.request("/api/view", { headers: { Authorization: `Bearer ${viewer}` } })).status, 200);

    const engRes = await login(a, "erin", "engineer-password");
    assert.is(engRes.status, 200);
    assert.is(engRes.headers.get("cache-control"), "no-store");
    const eng = (await json(engRes)).token;
    const ok = await a.request("/api/eng", { headers: { Authorization: `Bearer ${eng}` } });
    assert.is(ok.status, 200);
    assert.equal((await json(ok)).who, {
      subject: "erin",
      role: "engineer",
      kind: "user",
      expires_at: clock.now() + 60_000,
    });

    const bad = await a.request("/api/eng", { headers: { Authorization: `Bearer ${eng}x` } });
    assert.is(bad.status, 401);
    assert.match(bad.headers.get("www-authenticate") ?? "", /^Bearer realm="glassd", error="invalid_token"/);

    assert.is((await a.request("/api/public")).status, 200);
    assert.is((await a.request("/api/admin", { headers: { Authorization: `Bearer ${eng}` } })).status, 403);
  }

  // An expired token says so through the middleware.
  const a = app(auth);
  const eng = (await json(login(a, "erin", "engineer-password"))).token;
  clock.advance(61_000);
  const expired = await a.request("/api/eng", { headers: { Authorization: `Bearer ${eng}` } });
  assert.is(expired.status, 401);
  assert.is((await json(expired)).error, "token_expired");
});

test("requireRole accepts API keys as Bearer and as X-API-Key", async () => {
  const { auth } = await setup();
  const a = app(auth);
  const eng = await auth.createApiKey("mes-bridge", "engineer");
  const view = await auth.createApiKey("wallboard", "viewer");
  assert.is((await a.request("/api/eng", { headers: { "X-API-Key": eng.key } })).status, 200);
  assert.is((await a.request("/api/eng", { headers: { Authorization: `Bearer ${eng.key}` } })).status, 200);
  assert.is((await a.request("/api/eng", { headers: { "X-API-Key": view.key } })).status, 403);
  const wrong = await a.request("/api/eng", { headers: { "X-API-Key": `${eng.key.slice(0, -2)}zz` } });
  assert.is(wrong.status, 401);
  assert.is((await json(wrong)).error, "api_key_invalid");
});

test("login is rate limited per username+IP: 10 failures in 5 min → 429 with Retry-After, even for the right password", async () => {
  const { auth, clock } = await setup();
  const a = app(auth);
  for (let i = 0; i < 10; i++) assert.is((await login(a, "admin", `wrong-${i}`)).status, 401, `attempt ${i + 1}`);
  const limited = await login(a, "admin", ADMIN_PW);
  assert.is(limited.status, 429);
  assert.is(limited.headers.get("retry-after"), "300");
  assert.is((await json(limited)).error, "too_many_attempts");
  // Another username from the same client is a separate window.
  await auth.addUser("oscar", "operator-password", "operator");
  assert.is((await login(a, "oscar", "operator-password")).status, 200);
  clock.advance(200_000);
  assert.is((await login(a, "admin", ADMIN_PW)).headers.get("retry-after"), "100");
  clock.advance(100_000);
  assert.is((await login(a, "admin", ADMIN_PW)).status, 200, "the window has passed");
  assert.is((await login(a, "admin", "")).status, 400, "an empty password is a bad request, not a failed login");
});

test("concurrent wrong logins cannot outrun the limiter (attempts are counted before scrypt)", async () => {
  const { auth } = await setup();
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) => auth.login("admin", `w${i}`, "10.1.1.1")),
  );
  const status = results.map((r) => (r.status === "rejected" ? (r.reason as GlassdError).status : 200));
  assert.is(status.filter((s) => s === 401).length, 10);
  assert.is(status.filter((s) => s === 429).length, 10);
});

test("a successful login does not use up the per-IP budget", async () => {
  const { auth } = await setup({ rateLimit: { perIp: { maxFailures: 2 } } });
  for (let i = 0; i < 4; i++) await auth.login("admin", ADMIN_PW, "10.2.2.2");
  await rejects(auth.login("admin", "wrong-one", "10.2.2.2"));
  assert.is((await auth.login("admin", ADMIN_PW, "10.2.2.2")).role, "admin");
});

test("login is also rate limited per IP across usernames (password spraying)", async () => {
  const { auth } = await setup({ rateLimit: { perIp: { maxFailures: 3 } } });
  for (const u of ["a1", "a2", "a3"]) await rejects(auth.login(u, "guess-guess", "10.0.0.9"));
  assert.is((await rejects(auth.login("a4", "guess-guess", "10.0.0.9"))).status, 429);
  assert.is((await rejects(auth.login("a4", "guess-guess", "10.0.0.10"))).status, 401, "other clients unaffected");
});

test("the failure limiter's map stays bounded (evict oldest)", () => {
  const clock = new SimClock(0);
  const l = new FailureLimiter({ maxFailures: 2, windowMs: 1000, maxEntries: 3 }, clock);
  for (let i = 0; i < 50; i++) l.fail(`k${i}`);
  assert.is(l.size, 3);
  assert.is(l.evicted, 47);
  l.fail("k49");
  assert.throws(() => l.check("k49"), /too many failed logins/);
  clock.advance(1000);
  l.check("k49");
});

test.run();
