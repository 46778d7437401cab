import type { ErrorObject } from "ajv";
import type { Issue } from "./errors.js";

/** Turns ajv errors into issues that name the path and say what is wrong in words. */
export function ajvIssues(errors: ErrorObject[] | null | undefined): Issue[] {
  const out: Issue[] = [];
  for (const e of errors ?? []) {
    const path = e.instancePath || "/";
    switch (e.keyword) {
      case "additionalProperties":
        out.push({
          path: `${e.instancePath}/${(e.params as { additionalProperty: string }).additionalProperty}`,
          message: "unknown key",
        });
        break;
      case "anyOf":
        // Union of literals: the individual const errors already say more; keep one summary line.
        out.push({ path, message: "must be one of the allowed values" });
        break;
      case "const":
        break;
      default:
        out.push({ path, message: e.message ?? e.keyword });
    }
  }
  // A union of literals yields one const error per member plus one anyOf: keep unique lines.
  const seen = new Set<string>();
  return out.filter((i) => {
    const k = `${i.path} ${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
