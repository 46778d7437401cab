import { randomBytes } from "node:crypto";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../../config/schema.js";
import { type Clock, realClock } from "../../core/clock.js";
import { GlassdError, NotFoundError } from "../../core/errors.js";
import {
  createFileExclusive,
  ensureDir,
  JsonFileStore,
  loosePermissionWarning,
  readSecretFile,
  writeFileAtomic,
} from "../../core/files.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { type ApiKeyInfo, ApiKeyStore, isApiKeyShaped } from "./api-keys.js";
import { AuthError } from "./errors.js";
import { checkPasswordPolicy, hashPassword, isPasswordHash, verifyPassword } from "./password.js";
import { FailureLimiter, type RateLimitOptions } from "./rate-limit.js";
import { isRole, type Role, roleAtLeast } from "./roles.js";
import { TokenSigner } from "./tokens.js";

/** Who is calling, as established by {@link Auth.authenticate}. */
export interface Principal {
  /** Username for `user`; `api_key:<name>` for `api_key`. */
  subject: string;
  role: Role;
  kind: "user" | "api_key";
  /** When the token stops working (ms since the Unix epoch); tokens only. */
  expires_at?: number;
  /** Id of the API key; API keys only. */
  key_id?: string;
}

/** The one method the HTTP middleware and the WebSocket hub need; lets them take a test double or the real Auth. */
export interface Authenticator {
  /**
   * `credential` is an `Authorization` header value (`Bearer …`), a bare token, or a bare API key (`gk_…`).
   * Throws a 401 {@link AuthError} naming the reason.
   */
  authenticate(credential: string | undefined | null): Promise<Principal>;
}

export interface LoginResult {
  token: string;
  /** ISO 8601 time when the token stops working. */
  expires_at: string;
  role: Role;
}

export interface UserInfo {
  username: string;
  role: Role;
  created_at: string;
}

/** What `init()` did. Safe to log as is: it holds paths, never a password or secret. */
export interface AuthInitInfo {
  users_file: string;
  api_keys_file: string;
  /** True when this start created the first admin. */
  admin_created: boolean;
  admin_password_source?: "file" | "credentials" | "generated";
  /** Set when the admin password was generated: tell the operator this PATH (it is mode 0600). */
  generated_password_file?: string;
  token_secret_source: "file" | "credentials" | "data_dir";
  /** True when this start generated the token secret in data_dir. */
  token_secret_generated: boolean;
  /** Things an operator should fix (loose file permissions). */
  warnings: string[];
}

export interface AuthOptions {
  config: { data_dir: string; auth: Config["auth"] };
  logger?: Logger;
  clock?: Clock;
  /** Where `CREDENTIALS_DIRECTORY` is read from; process.env by default. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Failed logins per username+IP (default 10 per 5 min) and per IP over all usernames (default 50 per 5 min). */
  rateLimit?: { perUser?: Partial<RateLimitOptions>; perIp?: Partial<RateLimitOptions> };
  /** How often the users/API-key files are checked for edits by other processes (ms, default 1000). */
  refreshMs?: number;
}

interface UserRecord {
  username: string;
  role: Role;
  /** scrypt PHC string, see password.ts. */
  password: string;
  created_at: string;
}

interface UsersFile {
  users: UserRecord[];
}

const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
const BOOTSTRAP_ADMIN = "admin";
const INITIAL_PASSWORD_FILE = "initial-admin-password";
const TOKEN_SECRET_FILE = "token-secret";
const LOGIN_FAILED = "invalid username or password";

function parseUsers(raw: unknown): UsersFile {
  const users = (raw as { users?: unknown })?.users;
  if (!Array.isArray(users)) throw new Error('expected {"users": [...]}');
  const seen = new Set<string>();
  users.forEach((u, i) => {
    const r = u as Partial<UserRecord>;
    if (!r || typeof r.username !== "string" || !USERNAME_RE.test(r.username))
      throw new Error(`users[${i}].username is invalid`);
    if (seen.has(r.username)) throw new Error(`users[${i}]: duplicate username "${r.username}"`);
    seen.add(r.username);
    if (!isRole(r.role)) throw new Error(`users[${i}].role must be one of viewer, operator, engineer, admin`);
    if (!isPasswordHash(r.password)) throw new Error(`users[${i}].password is not a scrypt hash`);
  });
  return { users: users as UserRecord[] };
}

function checkUsername(username: unknown): asserts username is string {
  if (typeof username !== "string" || !USERNAME_RE.test(username))
    throw new GlassdError(
      "username must be 1-64 characters: letters, digits, _ . @ - (starting with a letter or digit)",
      {
        status: 400,
        code: "bad_username",
      },
    );
}

function checkRole(role: unknown): asserts role is Role {
  if (!isRole(role))
    throw new GlassdError(`unknown role ${JSON.stringify(role)}; use viewer, operator, engineer or admin`, {
      status: 400,
      code: "bad_role",
    });
}

const publicUser = ({ username, role, created_at }: UserRecord): UserInfo => ({ username, role, created_at });

/**
 * Users (scrypt passwords), login tokens (HS256) and API keys, with first-start bootstrap of the admin and the token
 * secret. Call {@link init} once before anything else; the CLI does the same in its own process (the daemon notices
 * the edited files within `refreshMs`).
 */
export class Auth implements Authenticator {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly users: JsonFileStore<UsersFile>;
  private readonly apiKeys: ApiKeyStore;
  private readonly perUser: FailureLimiter;
  private readonly perIp: FailureLimiter;
  private signer: TokenSigner | undefined;
  private secretSource: AuthInitInfo["token_secret_source"] = "data_dir";
  private dummyHash = "";

  constructor(private readonly opts: AuthOptions) {
    const { data_dir, auth } = opts.config;
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? realClock;
    this.env = opts.env ?? process.env;
    const storeOpts = {
      refreshMs: opts.refreshMs,
      onReloadError: (err: GlassdError) => this.log.error({ err: err.message }, "kept the last good copy"),
    };
    this.users = new JsonFileStore(
      auth.users_file ?? join(data_dir, "users.json"),
      parseUsers,
      () => ({ users: [] }),
      storeOpts,
    );
    this.apiKeys = new ApiKeyStore(auth.api_keys_file ?? join(data_dir, "api-keys.json"), this.clock, storeOpts);
    const window = 5 * 60_000;
    this.perUser = new FailureLimiter(
      { maxFailures: 10, windowMs: window, maxEntries: 10_000, ...opts.rateLimit?.perUser },
      this.clock,
    );
    this.perIp = new FailureLimiter(
      { maxFailures: 50, windowMs: window, maxEntries: 10_000, ...opts.rateLimit?.perIp },
      this.clock,
    );
  }

  /**
   * Loads or creates the token secret, creates the first admin when there is none (password from
   * `auth.admin_password_file`, else `$CREDENTIALS_DIRECTORY/admin-password`, else generated once into
   * `<data_dir>/initial-admin-password`), and checks file permissions. Idempotent.
   */
  async init(): Promise<AuthInitInfo> {
    const warnings: string[] = [];
    await ensureDir(this.opts.config.data_dir);
    const secret = await this.loadSecret();
    this.signer = new TokenSigner(secret.key, this.clock);
    this.secretSource = secret.source;
    if (secret.source === "data_dir" && secret.path) {
      const w = await loosePermissionWarning(secret.path);
      if (w) warnings.push(w);
    }
    // A hash to verify against for unknown users, so "no such user" costs the same time as "wrong password".
    this.dummyHash ||= await hashPassword(randomBytes(16).toString("hex"));

    const boot = await this.bootstrapAdmin();
    for (const p of [this.users.path, this.apiKeys.path]) {
      const w = await loosePermissionWarning(p);
      if (w) warnings.push(w);
    }
    for (const w of warnings) this.log.warn(w);
    return {
      users_file: this.users.path,
      api_keys_file: this.apiKeys.path,
      ...boot,
      token_secret_source: secret.source,
      token_secret_generated: secret.generated,
      warnings,
    };
  }

  /**
   * Checks a username and password and returns a token. Unknown user and wrong password fail the same way, in the
   * same time. Failures are rate limited per username+`ip` and per `ip` (429 with Retry-After).
   */
  async login(username: string, password: string, ip = "unknown"): Promise<LoginResult> {
    const signer = this.ready();
    const name = typeof username === "string" ? username.slice(0, 64) : "";
    const userKey = `${ip}\0${name}`;
    this.perIp.check(ip);
    this.perUser.check(userKey);
    // Count the attempt before the (async) scrypt and give it back on success: otherwise a burst of concurrent
    // guesses would all pass the check above before the first failure is recorded.
    this.perIp.fail(ip);
    this.perUser.fail(userKey);
    let user: UserRecord | undefined;
    let ok = false;
    try {
      user = (await this.users.get()).users.find((u) => u.username === name);
      ok =
        (await verifyPassword(typeof password === "string" ? password : "", user?.password ?? this.dummyHash)) &&
        user !== undefined;
    } finally {
      if (ok) {
        this.perIp.forgive(ip);
        this.perUser.reset(userKey);
      }
    }
    if (!ok || !user) {
      this.log.info({ username: name, ip }, "login failed");
      throw new GlassdError(LOGIN_FAILED, { status: 401, code: "invalid_credentials" });
    }
    const { token, claims } = signer.sign(user.username, user.role, this.opts.config.auth.token_ttl_s);
    this.log.info({ username: user.username, role: user.role, ip }, "login");
    return { token, expires_at: new Date(claims.exp * 1000).toISOString(), role: user.role };
  }

  async authenticate(credential: string | undefined | null): Promise<Principal> {
    const signer = this.ready();
    const raw = (credential ?? "").trim();
    if (!raw) throw new AuthError("credentials_missing", "authentication required: send Authorization: Bearer <token>");
    let value = raw;
    const m = /^(\S+)\s+(\S+)$/.exec(raw);
    if (m) {
      if (m[1]!.toLowerCase() !== "bearer")
        throw new AuthError("scheme_unsupported", `authorization scheme "${m[1]}" is not supported; use Bearer`);
      value = m[2]!;
    }
    if (isApiKeyShaped(value)) {
      const k = await this.apiKeys.verify(value);
      return { subject: `api_key:${k.name}`, role: k.role, kind: "api_key", key_id: k.id };
    }
    const claims = signer.verify(value);
    const user = (await this.users.get()).users.find((u) => u.username === claims.sub);
    if (!user) throw new AuthError("user_unknown", `user "${claims.sub}" no longer exists`);
    // The lower of the token's role and the stored one: a demotion or removal applies at once, a promotion at the
    // next login.
    const role = roleAtLeast(user.role, claims.role) ? claims.role : user.role;
    return { subject: user.username, role, kind: "user", expires_at: claims.exp * 1000 };
  }

  async addUser(username: string, password: string, role: Role): Promise<UserInfo> {
    this.ready();
    checkUsername(username);
    checkPasswordPolicy(password);
    checkRole(role);
    const rec: UserRecord = {
      username,
      role,
      password: await hashPassword(password),
      created_at: new Date(this.clock.now()).toISOString(),
    };
    await this.users.update((cur) => {
      if (cur.users.some((u) => u.username === username))
        throw new GlassdError(`user "${username}" already exists`, { status: 409, code: "conflict" });
      return { next: { users: [...cur.users, rec] }, result: null };
    });
    this.log.info({ username, role }, "user added");
    return publicUser(rec);
  }

  /** Changes a password. Changing the bootstrap admin's removes the now stale initial-admin-password file. */
  async setPassword(username: string, password: string): Promise<void> {
    this.ready();
    checkPasswordPolicy(password);
    const hash = await hashPassword(password);
    await this.users.update((cur) => {
      const u = cur.users.find((x) => x.username === username);
      if (!u) throw new NotFoundError(`no user "${username}"`);
      return { next: { users: cur.users.map((x) => (x === u ? { ...u, password: hash } : x)) }, result: null };
    });
    if (username === BOOTSTRAP_ADMIN)
      await unlink(join(this.opts.config.data_dir, INITIAL_PASSWORD_FILE)).catch(() => {});
    this.log.info({ username }, "password changed");
  }

  async setRole(username: string, role: Role): Promise<void> {
    this.ready();
    checkRole(role);
    await this.users.update((cur) => {
      const u = cur.users.find((x) => x.username === username);
      if (!u) throw new NotFoundError(`no user "${username}"`);
      const next = cur.users.map((x) => (x === u ? { ...u, role } : x));
      if (!next.some((x) => x.role === "admin"))
        throw new GlassdError("cannot demote the last admin; make another user admin first", {
          status: 409,
          code: "conflict",
        });
      return { next: { users: next }, result: null };
    });
    this.log.info({ username, role }, "role changed");
  }

  async removeUser(username: string): Promise<void> {
    this.ready();
    await this.users.update((cur) => {
      const next = cur.users.filter((x) => x.username !== username);
      if (next.length === cur.users.length) throw new NotFoundError(`no user "${username}"`);
      if (!next.some((x) => x.role === "admin"))
        throw new GlassdError("cannot remove the last admin; make another user admin first", {
          status: 409,
          code: "conflict",
        });
      return { next: { users: next }, result: null };
    });
    this.log.info({ username }, "user removed");
  }

  async listUsers(): Promise<UserInfo[]> {
    this.ready();
    return (await this.users.get()).users.map(publicUser);
  }

  /** Creates an API key; the clear `key` is in the result only, once. */
  async createApiKey(name: string, role: Role): Promise<ApiKeyInfo & { key: string }> {
    this.ready();
    const k = await this.apiKeys.create(name, role);
    this.log.info({ name, role, id: k.id }, "API key created");
    return k;
  }

  async listApiKeys(): Promise<ApiKeyInfo[]> {
    this.ready();
    return this.apiKeys.list();
  }

  async revokeApiKey(idOrName: string): Promise<void> {
    this.ready();
    await this.apiKeys.revoke(idOrName);
    this.log.info({ key: idOrName }, "API key revoked");
  }

  /**
   * Replaces a generated token secret with a new one: every issued token stops working (reason
   * `token_key_retired`). A secret from a file or systemd credential is managed outside: replace it there and restart.
   */
  async rotateTokenSecret(): Promise<void> {
    this.ready();
    if (this.secretSource !== "data_dir")
      throw new GlassdError(
        `the token secret comes from ${this.secretSource === "file" ? "auth.token_secret_file" : "$CREDENTIALS_DIRECTORY"}; replace it there and restart`,
        { status: 409, code: "conflict" },
      );
    const key = randomBytes(32).toString("hex");
    await writeFileAtomic(join(this.opts.config.data_dir, TOKEN_SECRET_FILE), `${key}\n`);
    this.signer = new TokenSigner(Buffer.from(key), this.clock);
    this.log.warn("token secret rotated; every issued token is now invalid");
  }

  private ready(): TokenSigner {
    if (!this.signer) throw new Error("Auth.init() must complete before use");
    return this.signer;
  }

  private async loadSecret(): Promise<{
    key: Buffer;
    source: AuthInitInfo["token_secret_source"];
    path?: string;
    generated: boolean;
  }> {
    const check = (key: Buffer, path: string) => {
      if (key.length < 32)
        throw new GlassdError(
          `token secret ${path} is ${key.length} bytes; use at least 32 random bytes (e.g. openssl rand -hex 32 > ${path})`,
          { code: "secret_too_short" },
        );
      return key;
    };
    const configured = this.opts.config.auth.token_secret_file;
    if (configured) {
      const key = await readSecretFile(configured);
      if (!key)
        throw new GlassdError(`auth.token_secret_file ${configured} does not exist; create it or remove the setting`, {
          code: "secret_missing",
        });
      return { key: check(key, configured), source: "file", generated: false };
    }
    const credDir = this.env.CREDENTIALS_DIRECTORY;
    if (credDir) {
      const p = join(credDir, TOKEN_SECRET_FILE);
      const key = await readSecretFile(p);
      if (key) return { key: check(key, p), source: "credentials", generated: false };
    }
    const p = join(this.opts.config.data_dir, TOKEN_SECRET_FILE);
    let generated = false;
    let key = await readSecretFile(p);
    if (!key) {
      // Hex text, so an operator can inspect or replace it with ordinary tools.
      generated = await createFileExclusive(p, `${randomBytes(32).toString("hex")}\n`);
      key = await readSecretFile(p);
      if (!key) throw new GlassdError(`could not create the token secret ${p}`, { code: "secret_missing" });
      if (generated) this.log.info({ file: p }, "generated token secret");
    }
    return { key: check(key, p), source: "data_dir", path: p, generated };
  }

  private async bootstrapAdmin(): Promise<
    Pick<AuthInitInfo, "admin_created" | "admin_password_source" | "generated_password_file">
  > {
    const hasAdmin = (f: UsersFile) => f.users.some((u) => u.role === "admin");
    const current = await this.users.get();
    if (hasAdmin(current)) return { admin_created: false };
    const taken = current.users.find((u) => u.username === BOOTSTRAP_ADMIN);
    if (taken)
      throw new GlassdError(
        `no user has role admin and the name "${BOOTSTRAP_ADMIN}" is taken by a ${taken.role}; promote a user with the CLI (glassd user role <name> admin)`,
        { code: "no_admin" },
      );
    const { password, source, path } = await this.initialAdminPassword();
    checkPasswordPolicy(password, `admin password from ${path}`);
    const rec: UserRecord = {
      username: BOOTSTRAP_ADMIN,
      role: "admin",
      password: await hashPassword(password),
      created_at: new Date(this.clock.now()).toISOString(),
    };
    const created = await this.users.update((cur) => {
      // Another process (CLI, second daemon) may have created an admin meanwhile.
      if (hasAdmin(cur) || cur.users.some((u) => u.username === BOOTSTRAP_ADMIN)) return { next: cur, result: false };
      return { next: { users: [...cur.users, rec] }, result: true };
    });
    if (!created) return { admin_created: false };
    this.log.info({ username: BOOTSTRAP_ADMIN, password_source: source }, "created the first admin user");
    return {
      admin_created: true,
      admin_password_source: source,
      ...(source === "generated" ? { generated_password_file: path } : {}),
    };
  }

  private async initialAdminPassword(): Promise<{
    password: string;
    source: NonNullable<AuthInitInfo["admin_password_source"]>;
    path: string;
  }> {
    const configured = this.opts.config.auth.admin_password_file;
    if (configured) {
      const buf = await readSecretFile(configured);
      if (!buf)
        throw new GlassdError(
          `auth.admin_password_file ${configured} does not exist; create it or remove the setting`,
          {
            code: "secret_missing",
          },
        );
      return { password: buf.toString("utf8"), source: "file", path: configured };
    }
    const credDir = this.env.CREDENTIALS_DIRECTORY;
    if (credDir) {
      const p = join(credDir, "admin-password");
      const buf = await readSecretFile(p);
      if (buf) return { password: buf.toString("utf8"), source: "credentials", path: p };
    }
    const p = join(this.opts.config.data_dir, INITIAL_PASSWORD_FILE);
    // Generated once: a restart before anyone logged in reuses the file instead of changing the password under them.
    if (!(await readSecretFile(p))) await createFileExclusive(p, `${randomBytes(18).toString("base64url")}\n`);
    const buf = await readSecretFile(p);
    if (!buf) throw new GlassdError(`could not create ${p}`, { code: "secret_missing" });
    return { password: buf.toString("utf8"), source: "generated", path: p };
  }
}
