import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { Clock } from "../../core/clock.js";
import { AuthError } from "./errors.js";
import { isRole, type Role } from "./roles.js";

/*
 * Login tokens are standard compact JWS (HS256 JWT), so any JWT tool can read them, but they are signed and checked
 * here with node:crypto HMAC rather than hono/jwt because:
 *  - expiry must follow an injected Clock (tests and the twin run on simulated time; hono/jwt reads Date.now());
 *  - each way a token can be wrong needs its own reason (expired vs forged vs retired key vs alg "none"), and
 *    hono/jwt folds some of these together;
 *  - the algorithm is pinned by this code, never taken from the token header, and verification is synchronous
 *    (no WebCrypto key import per request on the WebSocket upgrade path).
 * `kid` is derived from the secret, so replacing the secret (rotation) retires every token signed with the old one
 * with the reason `token_key_retired` instead of a confusing "bad signature".
 */

/** Claims of a glassd login token. Times are seconds since the Unix epoch (JWT NumericDate). */
export interface TokenClaims {
  sub: string;
  role: Role;
  iat: number;
  exp: number;
}

const MAX_TOKEN_CHARS = 4096;
/** Tolerated clock difference for `iat` in the future (another node, or NTP stepping). */
const IAT_SKEW_S = 60;
const B64URL = /^[A-Za-z0-9_-]*$/;

const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export class TokenSigner {
  /** Identifies the signing key without revealing it. */
  readonly kid: string;

  constructor(
    private readonly secret: Buffer,
    private readonly clock: Clock,
  ) {
    if (secret.length < 32) throw new RangeError("token secret must be at least 32 bytes");
    this.kid = createHash("sha256").update("glassd-token-kid\0").update(secret).digest("base64url").slice(0, 16);
  }

  /** Signs a token for `sub` valid `ttlS` seconds from now. */
  sign(sub: string, role: Role, ttlS: number): { token: string; claims: TokenClaims } {
    const iat = Math.floor(this.clock.now() / 1000);
    const claims: TokenClaims = { sub, role, iat, exp: iat + ttlS };
    const input = `${b64json({ alg: "HS256", typ: "JWT", kid: this.kid })}.${b64json(claims)}`;
    return { token: `${input}.${this.mac(input).toString("base64url")}`, claims };
  }

  /** Verifies `token` and returns its claims, or throws an {@link AuthError} whose reason says what is wrong. */
  verify(token: string): TokenClaims {
    if (token.length > MAX_TOKEN_CHARS)
      throw new AuthError("token_malformed", "token is too long to be a glassd token");
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((p) => B64URL.test(p)) || !parts[0] || !parts[1])
      throw new AuthError(
        "token_malformed",
        "token is malformed: expected three base64url parts (header.payload.signature)",
      );
    const [h, p, s] = parts as [string, string, string];
    const header = decodeJson(h);
    if (!isObject(header)) throw new AuthError("token_malformed", "token header is not a JSON object");
    if (header.alg !== "HS256")
      throw new AuthError(
        "token_alg_unsupported",
        `token algorithm ${JSON.stringify(header.alg ?? null)} is not accepted; glassd tokens are HS256`,
      );
    if (header.typ !== undefined && header.typ !== "JWT")
      throw new AuthError("token_malformed", `token type ${JSON.stringify(header.typ)} is not JWT`);
    if (header.kid !== this.kid)
      throw new AuthError(
        "token_key_retired",
        "token was signed with a key this server no longer uses (the signing key was rotated); log in again",
      );
    const given = Buffer.from(s, "base64url");
    const expected = this.mac(`${h}.${p}`);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new AuthError("token_signature_invalid", "token signature is invalid (forged or altered); log in again");
    // Only claims of a genuine token are looked at: nothing below runs for forged input.
    const c = decodeJson(p);
    if (
      !isObject(c) ||
      typeof c.sub !== "string" ||
      !c.sub ||
      !isRole(c.role) ||
      !Number.isInteger(c.iat) ||
      !Number.isInteger(c.exp)
    )
      throw new AuthError("token_claims_invalid", "token claims are incomplete (sub, role, iat, exp); log in again");
    const now = this.clock.now() / 1000;
    if (now >= (c.exp as number))
      throw new AuthError(
        "token_expired",
        `token expired at ${new Date((c.exp as number) * 1000).toISOString()}; log in again`,
      );
    if ((c.iat as number) > now + IAT_SKEW_S)
      throw new AuthError("token_not_yet_valid", "token was issued in the future; check this server's clock (NTP)");
    return { sub: c.sub, role: c.role, iat: c.iat as number, exp: c.exp as number };
  }

  private mac(input: string): Buffer {
    return createHmac("sha256", this.secret).update(input).digest();
  }
}
