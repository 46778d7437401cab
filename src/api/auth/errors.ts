import { GlassdError } from "../../core/errors.js";

/**
 * Why a credential was refused. Each one is a distinct `code` on the 401 so clients (and the people reading their
 * logs) can tell "log in again" from "this token was tampered with".
 */
export type AuthFailure =
  | "credentials_missing"
  | "credentials_invalid"
  | "scheme_unsupported"
  | "token_malformed"
  | "token_alg_unsupported"
  | "token_key_retired"
  | "token_signature_invalid"
  | "token_claims_invalid"
  | "token_expired"
  | "token_not_yet_valid"
  | "user_unknown"
  | "api_key_malformed"
  | "api_key_invalid";

/** Errors that carry response headers the API's onError should copy (WWW-Authenticate, Retry-After). */
export interface WithHeaders {
  readonly headers: Readonly<Record<string, string>>;
}

function bearerChallenge(error?: string, description?: string): string {
  // RFC 6750 §3: quotes and backslashes are not allowed inside the description.
  const clean = (s: string) => s.replace(/["\\]/g, "'");
  let v = 'Bearer realm="glassd"';
  if (error) v += `, error="${error}"`;
  if (description) v += `, error_description="${clean(description)}"`;
  return v;
}

/** 401: no credential, or one that does not prove who the caller is. `code` is the {@link AuthFailure}. */
export class AuthError extends GlassdError implements WithHeaders {
  readonly reason: AuthFailure;
  readonly headers: Readonly<Record<string, string>>;
  constructor(reason: AuthFailure, message: string, cause?: unknown) {
    super(message, { status: 401, code: reason, details: { reason }, cause });
    this.reason = reason;
    // RFC 6750: a request without credentials gets a bare challenge, a bad credential gets error="invalid_token".
    this.headers = {
      "WWW-Authenticate":
        reason === "credentials_missing" ? bearerChallenge() : bearerChallenge("invalid_token", message),
    };
  }
}

/** 403: the caller is known but its role is below what the action needs. */
export class ForbiddenError extends GlassdError implements WithHeaders {
  readonly headers: Readonly<Record<string, string>>;
  constructor(need: string, have: string) {
    super(`this action needs role "${need}" or higher; you are "${have}". Ask an admin for a higher role.`, {
      status: 403,
      code: "forbidden",
      details: { need, have },
    });
    this.headers = { "WWW-Authenticate": bearerChallenge("insufficient_scope", `needs role ${need}`) };
  }
}

/** 429: too many failed logins from this client; `retryAfterS` says when to try again. */
export class TooManyAttemptsError extends GlassdError implements WithHeaders {
  readonly retryAfterS: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(retryAfterS: number) {
    super(`too many failed logins; try again in ${retryAfterS} s`, {
      status: 429,
      code: "too_many_attempts",
      details: { retry_after_s: retryAfterS },
    });
    this.retryAfterS = retryAfterS;
    this.headers = { "Retry-After": String(retryAfterS) };
  }
}
