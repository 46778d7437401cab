import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";
import { GlassdError } from "../../core/errors.js";

/*
 * Password hashes are PHC-style strings: `$scrypt$ln=15,r=8,p=1$<salt>$<key>` (salt and key base64, no padding).
 * The parameters travel with the hash, so raising the cost later only affects new hashes and old ones still verify.
 * N = 2^15 with r = 8 costs 32 MiB and tens of ms per hash on a small industrial PC: well above the 2^14 floor,
 * below OWASP's 2^17 (128 MiB) which would let a few concurrent logins exhaust an edge box's memory. scrypt runs on
 * the libuv thread pool, so it never blocks the event loop.
 */

export const MIN_PASSWORD_LENGTH = 8;
/** Long enough for any passphrase; bounds the work an unauthenticated request can ask for. */
export const MAX_PASSWORD_LENGTH = 1024;

const DEFAULT_LOG_N = 15;
const R = 8;
const P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// A hash read from disk decides the cost of verifying it; cap it so a corrupt file cannot ask for gigabytes.
const MAX_LOG_N = 20;

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{40,})$/;

interface Parsed {
  logN: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function scryptAsync(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function costOptions(logN: number, r: number, p: number): ScryptOptions {
  const N = 2 ** logN;
  // Node's default maxmem (32 MiB) is exactly 128·N·r at N=2^15, r=8, which it refuses; allow twice the need.
  return { N, r, p, maxmem: 256 * N * r };
}

function parse(hash: string): Parsed | undefined {
  const m = PHC.exec(hash);
  if (!m) return undefined;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 14 || logN > MAX_LOG_N || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const salt = Buffer.from(m[4]!, "base64");
  const key = Buffer.from(m[5]!, "base64");
  if (salt.length < 16 || (key.length !== 32 && key.length !== 64)) return undefined;
  return { logN, r, p, salt, key };
}

/** True when `hash` is a password hash this module can verify. */
export function isPasswordHash(hash: unknown): hash is string {
  return typeof hash === "string" && parse(hash) !== undefined;
}

/** Throws a 400 that says what to do when `password` cannot be used. */
export function checkPasswordPolicy(password: unknown, what = "password"): asserts password is string {
  if (typeof password !== "string")
    throw new GlassdError(`${what} must be a string`, { status: 400, code: "bad_password" });
  const n = [...password].length;
  if (n < MIN_PASSWORD_LENGTH)
    throw new GlassdError(`${what} is too short (${n} characters); use at least ${MIN_PASSWORD_LENGTH}`, {
      status: 400,
      code: "bad_password",
    });
  if (password.length > MAX_PASSWORD_LENGTH)
    throw new GlassdError(`${what} is too long; use at most ${MAX_PASSWORD_LENGTH} characters`, {
      status: 400,
      code: "bad_password",
    });
}

// NFC so the same passphrase typed on two keyboards (composed vs decomposed accents) hashes the same.
const norm = (s: string) => s.normalize("NFC");

/** Hashes `password` with a fresh 16-byte salt. Does not apply the length policy; callers do. */
export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(norm(password), salt, KEY_BYTES, costOptions(logN, R, P));
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `$scrypt$ln=${logN},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

/**
 * Constant-time check of `password` against `hash`. An unparseable hash never matches, but still costs one scrypt
 * with default parameters so the caller's timing does not reveal that the stored hash was bad.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parse(hash);
  const p = parsed ?? { logN: DEFAULT_LOG_N, r: R, p: P, salt: randomBytes(SALT_BYTES), key: randomBytes(KEY_BYTES) };
  const candidate = await scryptAsync(
    norm(password.slice(0, MAX_PASSWORD_LENGTH + 1)),
    p.salt,
    p.key.length,
    costOptions(p.logN, p.r, p.p),
  );
  return timingSafeEqual(candidate, p.key) && parsed !== undefined;
}
