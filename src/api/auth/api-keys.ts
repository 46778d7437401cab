import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Clock } from "../../core/clock.js";
import { GlassdError, NotFoundError } from "../../core/errors.js";
import { JsonFileStore } from "../../core/files.js";
import { AuthError } from "./errors.js";
import { isRole, type Role } from "./roles.js";

/*
 * API keys for machine clients (SCADA gateways, MES bridges, scripts). A key is `gk_<id>_<secret>`: the id (64 bits,
 * hex) finds the record without scanning, the secret is 256 random bits. Only sha256(key) is stored. A fast hash is
 * enough here, unlike passwords: a key has 256 bits of entropy, so nobody can guess it back from a stolen file, and
 * scrypt on every machine request would burn 32 MiB and tens of ms for no gain.
 */

/** Stored record of an API key: never the key itself. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  role: Role;
  /** `sha256:<hex>` of the full key. */
  hash: string;
  created_at: string;
}

/** What callers may see about a key. */
export type ApiKeyInfo = Omit<ApiKeyRecord, "hash">;

interface ApiKeysFile {
  keys: ApiKeyRecord[];
}

const KEY_RE = /^gk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.:@-]{0,63}$/;
const HASH_RE = /^sha256:[0-9a-f]{64}$/;

const sha256 = (s: string) => createHash("sha256").update(s).digest();

function parseFile(raw: unknown): ApiKeysFile {
  const keys = (raw as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new Error('expected {"keys": [...]}');
  keys.forEach((k, i) => {
    const r = k as Partial<ApiKeyRecord>;
    if (!r || typeof r.id !== "string" || !/^[0-9a-f]{16}$/.test(r.id)) throw new Error(`keys[${i}].id is invalid`);
    if (typeof r.name !== "string") throw new Error(`keys[${i}].name is missing`);
    if (!isRole(r.role)) throw new Error(`keys[${i}].role is not a role`);
    if (typeof r.hash !== "string" || !HASH_RE.test(r.hash)) throw new Error(`keys[${i}].hash is invalid`);
  });
  return { keys: keys as ApiKeyRecord[] };
}

/** True when `credential` looks like a glassd API key (so it should not be treated as a JWT). */
export function isApiKeyShaped(credential: string): boolean {
  return credential.startsWith("gk_");
}

export class ApiKeyStore {
  private readonly store: JsonFileStore<ApiKeysFile>;
  private readonly dummy = sha256(randomBytes(32).toString("hex"));

  constructor(
    path: string,
    private readonly clock: Clock,
    storeOpts: ConstructorParameters<typeof JsonFileStore>[3] = {},
  ) {
    this.store = new JsonFileStore(path, parseFile, () => ({ keys: [] }), storeOpts);
  }

  get path(): string {
    return this.store.path;
  }

  /** Creates a key; the returned `key` is shown once and cannot be recovered later. */
  async create(name: string, role: Role): Promise<ApiKeyInfo & { key: string }> {
    if (typeof name !== "string" || !NAME_RE.test(name))
      throw new GlassdError("API key name must be 1-64 characters: letters, digits, space, _ . : @ -", {
        status: 400,
        code: "bad_api_key_name",
      });
    if (!isRole(role)) throw new GlassdError(`unknown role ${JSON.stringify(role)}`, { status: 400, code: "bad_role" });
    const id = randomBytes(8).toString("hex");
    const key = `gk_${id}_${randomBytes(32).toString("base64url")}`;
    const info: ApiKeyInfo = { id, name, role, created_at: new Date(this.clock.now()).toISOString() };
    await this.store.update((cur) => {
      if (cur.keys.some((k) => k.name === name))
        throw new GlassdError(`an API key named "${name}" already exists; revoke it first or pick another name`, {
          status: 409,
          code: "conflict",
        });
      return {
        next: { keys: [...cur.keys, { ...info, hash: `sha256:${sha256(key).toString("hex")}` }] },
        result: null,
      };
    });
    return { ...info, key };
  }

  /** Returns the key's record or throws a 401 {@link AuthError}. */
  async verify(key: string): Promise<ApiKeyInfo> {
    const m = KEY_RE.exec(key);
    if (!m) throw new AuthError("api_key_malformed", "API key is malformed: expected gk_<16 hex>_<43 base64url>");
    const { keys } = await this.store.get();
    const rec = keys.find((k) => k.id === m[1]);
    const stored = rec ? Buffer.from(rec.hash.slice(7), "hex") : this.dummy;
    // Compare even for an unknown id so the timing does not say which ids exist.
    const ok = timingSafeEqual(sha256(key), stored) && rec !== undefined;
    if (!ok || !rec) throw new AuthError("api_key_invalid", "API key is not valid (unknown or revoked)");
    const { hash: _hash, ...info } = rec;
    return info;
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.store.get()).keys.map(({ hash: _hash, ...info }) => info);
  }

  /** Deletes the key with this id or name; throws 404 when there is none. */
  async revoke(idOrName: string): Promise<void> {
    await this.store.update((cur) => {
      const keys = cur.keys.filter((k) => k.id !== idOrName && k.name !== idOrName);
      if (keys.length === cur.keys.length) throw new NotFoundError(`no API key with id or name "${idOrName}"`);
      return { next: { keys }, result: null };
    });
  }
}
