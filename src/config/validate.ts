import { Ajv } from "ajv";
import { ajvIssues } from "../core/ajv-issues.js";
import type { Issue } from "../core/errors.js";
import { DEFAULT_TAGS } from "./default-tags.js";
import { type Config, ConfigSchema } from "./schema.js";

export { ajvIssues };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const check = ajv.compile(ConfigSchema);

/**
 * Validates `raw` against the schema, filling defaults in place, and checks cross-field rules the schema cannot
 * express. Returns the typed config or the list of issues.
 */
export function validateConfig(raw: unknown): { ok: true; config: Config } | { ok: false; issues: Issue[] } {
  const value = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof value !== "object" || Array.isArray(value))
    return { ok: false, issues: [{ path: "/", message: "must be an object" }] };
  if (!check(value)) return { ok: false, issues: ajvIssues(check.errors) };
  const config = value as unknown as Config;
  if (config.tags === undefined) config.tags = structuredClone(DEFAULT_TAGS);
  const issues = crossChecks(config);
  return issues.length ? { ok: false, issues } : { ok: true, config };
}

function crossChecks(c: Config): Issue[] {
  const issues: Issue[] = [];
  const ids = new Set<string>();
  c.tags.forEach((t, i) => {
    const p = `/tags/${i}`;
    if (ids.has(t.id)) issues.push({ path: `${p}/id`, message: `duplicate tag id "${t.id}"` });
    ids.add(t.id);
    if (!(t.limits.min < t.limits.max)) issues.push({ path: `${p}/limits`, message: "min must be below max" });
    if (!(t.normal.min <= t.normal.max)) issues.push({ path: `${p}/normal`, message: "min must not exceed max" });
    if (t.normal.min < t.limits.min || t.normal.max > t.limits.max)
      issues.push({ path: `${p}/normal`, message: "normal band must lie within the hard limits" });
    if (
      t.actuator &&
      (t.actuator.min < t.limits.min || t.actuator.max > t.limits.max || !(t.actuator.min < t.actuator.max))
    )
      issues.push({
        path: `${p}/actuator`,
        message: "actuator range must be a non-empty interval within the hard limits",
      });
  });
  if ((c.server.tls_cert_file === undefined) !== (c.server.tls_key_file === undefined))
    issues.push({ path: "/server", message: "tls_cert_file and tls_key_file must be given together" });
  return issues;
}

/** The built-in defaults: the digital twin as the line, DOMAIN.md's tags. */
export function defaultConfig(): Config {
  const r = validateConfig({});
  if (!r.ok) throw new Error(`built-in defaults are invalid: ${JSON.stringify(r.issues)}`);
  return r.config;
}
