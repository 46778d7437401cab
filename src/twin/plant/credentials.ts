import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { PlantUsageError } from "./errors.js";

/**
 * Plant users (OPC UA user tokens). Roles follow glassd's: viewer reads; operator, engineer and admin may also
 * write setpoints and the heartbeat. The same name also authorises an X.509 user token whose certificate is
 * trusted in the user PKI and whose subject CN is that name.
 */
export const PLANT_ROLES = ["viewer", "operator", "engineer", "admin"] as const;
export type PlantRole = (typeof PLANT_ROLES)[number];

export interface PlantUser {
  name: string;
  role: PlantRole;
}

/** The plant's users, with their passwords held as SHA-256 digests for a constant-time compare. */
export class PlantUsers {
  private readonly users = new Map<string, { role: PlantRole; digest: Buffer }>();

  constructor(entries: readonly { name: string; password: string; role: PlantRole }[] = []) {
    for (const e of entries) this.users.set(e.name, { role: e.role, digest: digest(e.password) });
  }

  get size(): number {
    return this.users.size;
  }

  list(): PlantUser[] {
    return [...this.users].map(([name, u]) => ({ name, role: u.role }));
  }

  role(name: string): PlantRole | undefined {
    return this.users.get(name)?.role;
  }

  /** Checks a password without revealing through timing whether the user exists. */
  verify(name: string, password: string): boolean {
    const u = this.users.get(name);
    const ok = timingSafeEqual(digest(password), u?.digest ?? DUMMY);
    return ok && u !== undefined;
  }
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();
const DUMMY = digest("\u0000no such user\u0000");

/**
 * Reads a plant user file (`--user-file`):
 * `{"users": [{"name": "glassd", "password": "…", "role": "operator"}]}`. `role` defaults to operator.
 * Passwords live only in this file (mode 0600 recommended), never in argv.
 * @throws PlantUsageError naming the flag and the field.
 */
export function readUserFile(path: string, flag = "--user-file"): PlantUsers {
  const raw = readJson(path, flag);
  const list = (raw as { users?: unknown }).users;
  if (!Array.isArray(list)) throw new PlantUsageError(flag, `${path}: expected {"users": [{name, password, role}]}`);
  const seen = new Set<string>();
  const entries = list.map((u, i) => {
    const at = `${path}: users[${i}]`;
    if (typeof u !== "object" || u === null) throw new PlantUsageError(flag, `${at} must be an object`);
    const { name, password, role = "operator", ...rest } = u as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length) throw new PlantUsageError(flag, `${at}: unknown field "${extra[0]}" (name, password, role)`);
    if (typeof name !== "string" || !/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) {
      throw new PlantUsageError(flag, `${at}.name must be 1–64 characters of A-Z a-z 0-9 _ . @ -`);
    }
    if (name === "anonymous") throw new PlantUsageError(flag, `${at}.name "anonymous" is reserved`);
    if (seen.has(name)) throw new PlantUsageError(flag, `${at}.name "${name}" appears twice`);
    seen.add(name);
    if (typeof password !== "string" || password.length < 8) {
      throw new PlantUsageError(flag, `${at}.password must be a string of at least 8 characters`);
    }
    if (!PLANT_ROLES.includes(role as PlantRole)) {
      throw new PlantUsageError(flag, `${at}.role must be one of ${PLANT_ROLES.join(", ")}`);
    }
    return { name, password, role: role as PlantRole };
  });
  return new PlantUsers(entries);
}

/** MQTT broker credentials (`--mqtt-user-file`): `{"username": "…", "password": "…"}`. */
export function readMqttCredentials(path: string, flag = "--mqtt-user-file"): { username: string; password: string } {
  const raw = readJson(path, flag) as Record<string, unknown>;
  const { username, password, ...rest } = raw;
  const extra = Object.keys(rest);
  if (extra.length) throw new PlantUsageError(flag, `${path}: unknown field "${extra[0]}" (username, password)`);
  if (typeof username !== "string" || username.length === 0) {
    throw new PlantUsageError(flag, `${path}: "username" must be a non-empty string`);
  }
  if (typeof password !== "string") throw new PlantUsageError(flag, `${path}: "password" must be a string`);
  return { username, password };
}

/** true when a secret file is readable by group or others (worth a warning, not an error). */
export function isLoose(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

function readJson(path: string, flag: string): object {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new PlantUsageError(flag, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PlantUsageError(flag, `${path} is not valid JSON: ${(err as Error).message}`, err);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new PlantUsageError(flag, `${path} must hold a JSON object`);
  }
  return raw;
}
