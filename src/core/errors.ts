/** Base of every error glassd throws on purpose. `status` maps it to HTTP in the API's one onError. */
export class GlassdError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(message: string, opts: { status?: number; code?: string; details?: unknown; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.status = opts.status ?? 500;
    this.code = opts.code ?? "internal_error";
    this.details = opts.details;
  }
}

/** One problem with a value: where (a JSON pointer like `/server/port` or a field name) and why. */
export interface Issue {
  path: string;
  message: string;
}

export class ValidationError extends GlassdError {
  readonly issues: Issue[];
  constructor(message: string, issues: Issue[], status = 400) {
    super(message, { status, code: "validation_error", details: issues });
    this.issues = issues;
  }
}

export class ConfigError extends GlassdError {
  readonly issues: Issue[];
  constructor(issues: Issue[], cause?: unknown) {
    super(`invalid configuration: ${issues.map((i) => `${i.path || "/"}: ${i.message}`).join("; ")}`, {
      status: 500,
      code: "config_error",
      details: issues,
      cause,
    });
    this.issues = issues;
  }
}

/** A capability that exists in the API but cannot answer yet (e.g. no model loaded). Maps to 503. */
export class UnavailableError extends GlassdError {
  constructor(message: string, code = "unavailable") {
    super(message, { status: 503, code });
  }
}

export class NotFoundError extends GlassdError {
  constructor(message: string) {
    super(message, { status: 404, code: "not_found" });
  }
}
