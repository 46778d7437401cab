import { Type } from "@sinclair/typebox";
import type { Issue } from "../core/errors.js";

/**
 * Body of `POST /api/pipeline/process`, as the original spec sends it: flat `{furnace_temperature: 1500, …}` or
 * nested `{sensors: {furnace: {temperature: 1500}}}`, with an optional `timestamp` (ISO 8601 or epoch ms).
 * The schema only fixes the shape; which keys are tags and which values are valid is decided per reading by the
 * validator, so a bad reading is quarantined with its reason instead of vanishing in a schema error.
 */
export const SensorPayload = Type.Object(
  {
    timestamp: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Number()])),
    sensors: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Type.Unknown()))),
  },
  {
    additionalProperties: true,
    maxProperties: 512,
    description: "Tag readings, flat and/or nested under sensors.<stage>.",
  },
);

/**
 * Flattens a sensor payload into readings. A nested `sensors.<group>.<field>` maps to the tag `<group>_<field>`
 * when that tag exists (furnace.temperature → furnace_temperature), else to `<field>` when that exists
 * (forming.belt_speed → belt_speed), else to `<group>_<field>`, which validation then rejects as unknown.
 */
export function toReadings(
  body: Record<string, unknown>,
  now: number,
  knownTags: ReadonlySet<string>,
): { readings: Array<{ tag: string; value: unknown }>; ts: number; issues: Issue[] } {
  const issues: Issue[] = [];
  let ts = now;
  if (body.timestamp !== undefined) {
    const raw = body.timestamp;
    // An ISO time without a zone would be read in the server's local time: ambiguous on a plant network, refused.
    const zoned = typeof raw !== "string" || /(Z|[+-]\d{2}:?\d{2})$/i.test(raw.trim());
    const t = typeof raw === "number" ? raw : Date.parse(raw as string);
    if (!Number.isFinite(t))
      issues.push({ path: "/timestamp", message: "must be an ISO 8601 date-time or epoch milliseconds" });
    else if (!zoned)
      issues.push({ path: "/timestamp", message: "an ISO 8601 date-time needs a time zone (Z or ±hh:mm)" });
    else ts = t;
  }
  const readings: Array<{ tag: string; value: unknown }> = [];
  for (const [k, v] of Object.entries(body)) {
    if (k === "timestamp" || k === "sensors") continue;
    readings.push({ tag: k, value: v });
  }
  const sensors = (body.sensors ?? {}) as Record<string, Record<string, unknown>>;
  for (const [group, fields] of Object.entries(sensors)) {
    for (const [field, v] of Object.entries(fields)) {
      const prefixed = `${group}_${field}`;
      const tag = knownTags.has(prefixed) ? prefixed : knownTags.has(field) ? field : prefixed;
      readings.push({ tag, value: v });
    }
  }
  if (readings.length === 0 && issues.length === 0)
    issues.push({ path: "/", message: "no sensor readings in the body" });
  const seen = new Set<string>();
  for (const r of readings) {
    if (seen.has(r.tag)) issues.push({ path: `/${r.tag}`, message: "given twice (flat and nested)" });
    seen.add(r.tag);
  }
  return { readings, ts, issues };
}
