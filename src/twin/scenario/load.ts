import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Type } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { parse as parseYaml } from "yaml";
import { DEFAULT_TAGS } from "../../config/default-tags.js";
import type { TagConfig } from "../../config/schema.js";
import { ajvIssues } from "../../core/ajv-issues.js";
import { type Issue, ValidationError } from "../../core/errors.js";
import { EVENT_SCHEMAS, EVENT_TYPES, type Scenario, ScenarioSchema, SENSOR_FAULT_EVENT_SCHEMAS } from "./schema.js";

/**
 * The built-in scenarios: `scenarios/*.yaml` at the package root. The same relative path works from the sources
 * (src/twin/scenario/) and from the build (dist/twin/scenario/); a deployment copies `scenarios/` beside `dist/`.
 */
export const BUILTIN_SCENARIO_DIR = fileURLToPath(new URL("../../../scenarios/", import.meta.url));

/** A scenario file that does not parse or validate; `issues` name each path (e.g. `/events/2/at_min`). */
export class ScenarioError extends ValidationError {
  readonly source: string;
  constructor(source: string, issues: Issue[]) {
    super(`invalid scenario ${source}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
    this.source = source;
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
// Events are checked one by one against the schema their `type` (and `fault`) selects, so an error names the
// event's own field instead of listing the failure of every member of the union.
const checkEnvelope = ajv.compile(
  Type.Object(
    { ...ScenarioSchema.properties, events: Type.Array(Type.Unknown(), { maxItems: 10_000 }) },
    { additionalProperties: false },
  ),
);
type Check = ValidateFunction<unknown>;
const checkEvent = new Map<string, Check>(Object.entries(EVENT_SCHEMAS).map(([k, s]) => [k, ajv.compile(s)]));
const checkFault = new Map<string, Check>(
  Object.entries(SENSOR_FAULT_EVENT_SCHEMAS).map(([k, s]) => [k, ajv.compile(s)]),
);
const FAULTS = Object.keys(SENSOR_FAULT_EVENT_SCHEMAS);

function issuesOf(errors: ErrorObject[] | null | undefined, prefix = ""): Issue[] {
  const out: Issue[] = [];
  const rest: ErrorObject[] = [];
  for (const e of errors ?? []) {
    if (e.keyword === "required") {
      out.push({
        path: `${prefix}${e.instancePath}/${(e.params as { missingProperty: string }).missingProperty}`,
        message: "is required",
      });
    } else rest.push(e);
  }
  for (const i of ajvIssues(rest))
    out.push({ path: i.path === "/" ? prefix || "/" : `${prefix}${i.path}`, message: i.message });
  return out;
}

/** NaN and ±Infinity (YAML's .nan and .inf) are numbers to JSON Schema; a scenario has no use for them. */
function nonFinite(v: unknown, path: string, out: Issue[]): void {
  if (typeof v === "number" && !Number.isFinite(v)) out.push({ path: path || "/", message: "must be a finite number" });
  else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) nonFinite(v[i], `${path}/${i}`, out);
  } else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) nonFinite(x, `${path}/${k}`, out);
}

/** Schema checks of a parsed document; returns the issues (empty when valid). */
export function scenarioSchemaIssues(doc: unknown): Issue[] {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return [{ path: "/", message: "must be an object" }];
  const issues: Issue[] = [];
  nonFinite(doc, "", issues);
  if (!checkEnvelope(doc)) issues.push(...issuesOf(checkEnvelope.errors));
  const events = (doc as { events?: unknown }).events;
  if (!Array.isArray(events)) return issues;
  events.forEach((ev, i) => {
    const p = `/events/${i}`;
    if (!ev || typeof ev !== "object" || Array.isArray(ev)) {
      issues.push({ path: p, message: "must be an object" });
      return;
    }
    const type = (ev as { type?: unknown }).type;
    if (type === undefined) {
      issues.push({ path: `${p}/type`, message: `is required (one of ${EVENT_TYPES.join(", ")})` });
      return;
    }
    let check = typeof type === "string" ? checkEvent.get(type) : undefined;
    if (type === "sensor_fault") {
      const fault = (ev as { fault?: unknown }).fault;
      check = typeof fault === "string" ? checkFault.get(fault) : undefined;
      if (!check) {
        issues.push({
          path: `${p}/fault`,
          message: `${fault === undefined ? "is required" : `unknown fault ${JSON.stringify(fault)}`}; one of ${FAULTS.join(", ")}`,
        });
        return;
      }
    }
    if (!check) {
      issues.push({
        path: `${p}/type`,
        message: `unknown event type ${JSON.stringify(type)}; one of ${EVENT_TYPES.join(", ")}`,
      });
      return;
    }
    if (!check(ev)) issues.push(...issuesOf(check.errors, p));
  });
  return issues;
}

/**
 * Checks a valid scenario against a tag dictionary: tags exist, setpoint tags are levers, setpoint values lie in
 * the actuator range (a PLC would clamp them: in a script that is a mistake, not an intent), events start within
 * `duration_hours`.
 */
export function scenarioTagIssues(scenario: Scenario, tags: readonly TagConfig[] = DEFAULT_TAGS): Issue[] {
  const issues: Issue[] = [];
  const byId = new Map(tags.map((t) => [t.id, t]));
  const known = tags.map((t) => t.id).join(", ");
  const writable = tags.filter((t) => t.actuator).map((t) => t.id);
  const endMin = scenario.duration_hours === undefined ? Number.POSITIVE_INFINITY : scenario.duration_hours * 60;
  scenario.events.forEach((ev, i) => {
    const p = `/events/${i}`;
    if (ev.at_min > endMin) {
      issues.push({
        path: `${p}/at_min`,
        message: `${ev.at_min} is after the end of the scenario (duration_hours ${scenario.duration_hours} = ${endMin} min)`,
      });
    }
    if (ev.type !== "setpoint" && ev.type !== "sensor_fault") return;
    const cfg = byId.get(ev.tag);
    if (!cfg) {
      issues.push({ path: `${p}/tag`, message: `unknown tag "${ev.tag}"; known tags: ${known}` });
      return;
    }
    if (ev.type !== "setpoint") return;
    if (!cfg.actuator) {
      issues.push({
        path: `${p}/tag`,
        message: `"${ev.tag}" is not writable (no actuator); writable: ${writable.join(", ")}`,
      });
      return;
    }
    const { min, max } = cfg.actuator;
    if (ev.value < min || ev.value > max) {
      issues.push({
        path: `${p}/value`,
        message: `${ev.value} ${cfg.unit} is outside ${ev.tag}'s actuator range ${min}..${max} ${cfg.unit}`,
      });
    }
  });
  return issues;
}

/**
 * Parses and validates scenario text (YAML or JSON; JSON is YAML). `source` names it in errors.
 * @throws ScenarioError with every issue found.
 */
export function parseScenario(text: string, source = "scenario", tags?: readonly TagConfig[]): Scenario {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0] ?? String(err);
    throw new ScenarioError(source, [{ path: "/", message: `not valid YAML/JSON: ${msg}` }]);
  }
  const issues = scenarioSchemaIssues(doc);
  if (issues.length) throw new ScenarioError(source, issues);
  const scenario = doc as Scenario;
  const tagIssues = scenarioTagIssues(scenario, tags);
  if (tagIssues.length) throw new ScenarioError(source, tagIssues);
  return scenario;
}

/** A built-in scenario: its name, what it shows, and its file. */
export interface BuiltinScenario {
  name: string;
  description: string;
  durationHours: number | undefined;
  file: string;
}

/** The built-in scenarios, by name. Files that do not parse are left out (the test suite checks they all do). */
export function builtinScenarios(dir = BUILTIN_SCENARIO_DIR): BuiltinScenario[] {
  if (!existsSync(dir)) return [];
  const out: BuiltinScenario[] = [];
  for (const f of readdirSync(dir).sort()) {
    if (!/\.(ya?ml|json)$/.test(f)) continue;
    const file = join(dir, f);
    try {
      const s = parseScenario(readFileSync(file, "utf8"), file);
      out.push({ name: s.name, description: s.description ?? "", durationHours: s.duration_hours, file });
    } catch {
      // Reported by `glassd twin scenario check` and the tests; a listing should not fail for it.
    }
  }
  return out;
}

/**
 * Loads a scenario by built-in name (`fan_failure`) or by file path (YAML or JSON), checked against `tags`
 * (default: DOMAIN.md's dictionary).
 * @throws ScenarioError when the file does not exist, does not parse or does not validate.
 */
export function loadScenario(ref: string, tags?: readonly TagConfig[]): Scenario {
  const looksLikePath = ref.includes("/") || ref.includes("\\") || extname(ref) !== "";
  let file = ref;
  if (!looksLikePath) {
    for (const ext of [".yaml", ".yml", ".json"]) {
      const candidate = join(BUILTIN_SCENARIO_DIR, `${ref}${ext}`);
      if (existsSync(candidate)) {
        file = candidate;
        break;
      }
    }
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const names = builtinScenarios().map((b) => b.name);
    const hint = looksLikePath ? "" : `; built-in scenarios: ${names.join(", ") || "(none found)"}`;
    throw new ScenarioError(basename(ref), [
      { path: "/", message: `cannot read "${ref}" (${code ?? (err as Error).message})${hint}` },
    ]);
  }
  return parseScenario(text, file, tags);
}
