import type { TSchema } from "@sinclair/typebox";
import { ConfigSchema } from "./schema.js";

/**
 * The JSON Schema text of the config, as committed in config/schema.json (editors use it for completion and
 * checking). Properties that have a default are not required in a config file, so they are dropped from
 * `required` here; the loader fills them in.
 */
export function configJsonSchema(): string {
  const schema = JSON.parse(JSON.stringify(ConfigSchema)) as TSchema;
  relaxRequired(schema);
  return `${JSON.stringify({ $schema: "http://json-schema.org/draft-07/schema#", ...schema }, null, 2)}\n`;
}

function relaxRequired(s: TSchema): void {
  if (!s || typeof s !== "object") return;
  if (s.properties && Array.isArray(s.required)) {
    s.required = (s.required as string[]).filter((k) => (s.properties[k] as TSchema).default === undefined);
    if (s.required.length === 0) delete s.required;
  }
  for (const v of Object.values(s)) {
    if (Array.isArray(v)) for (const x of v) relaxRequired(x as TSchema);
    else if (v && typeof v === "object") relaxRequired(v as TSchema);
  }
}
