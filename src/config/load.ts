import { existsSync, readFileSync } from "node:fs";
import { extname, resolve } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import { parse as parseDotenv } from "dotenv";
import { parse as parseYaml } from "yaml";
import { type Issue, ValidationError } from "../core/errors.js";
import { framesConfigIssues } from "../ingest/frames/config.js";
import { modbusConfigIssues } from "../ingest/modbus/config.js";
import { checkSettings, nodeIdSyntaxOk, settingsFromConfig } from "../ingest/opcua/config.js";
import { loadScenario, ScenarioError } from "../twin/scenario/index.js";
import { type Config, ConfigSchema } from "./schema.js";
import { defaultConfig, validateConfig } from "./validate.js";

/** Where a value came from; used to say which source is wrong. */
export type Origin = "default" | "file" | "dotenv" | "env" | "cli";

export interface LoadOptions {
  /** `--config PATH` (or GLASSD_CONFIG). YAML (.yaml/.yml) or JSON (.json). */
  configFile?: string;
  /** `.env` file; default `./.env` when it exists (GLASSD_ENV_FILE overrides). */
  envFile?: string;
  /** Process environment; only GLASSD_* keys are read. */
  env?: NodeJS.ProcessEnv;
  /** Command-line overrides as dotted paths, e.g. `{ "server.port": "8080" }`. */
  cli?: Record<string, string>;
  cwd?: string;
}

export interface LoadResult {
  /** The config in force: the loaded one when valid, otherwise the safe-mode config. */
  config: Config;
  /** Empty when the configuration is valid. Each issue names the path, the reason and the source. */
  issues: Issue[];
  /** true when `issues` is non-empty: API up, read-only, no sources, no actuation. */
  safeMode: boolean;
  /** Files that were read, for `check-config` and the log. */
  files: string[];
}

/** Environment variables that steer loading itself rather than set a config path. */
const META_ENV = new Set(["GLASSD_CONFIG", "GLASSD_ENV_FILE"]);
/** Short aliases, for the flags people type most. Anything else: GLASSD_<SECTION>__<KEY>. */
const ENV_ALIASES: Record<string, string> = {
  GLASSD_PORT: "server.port",
  GLASSD_HOST: "server.host",
  GLASSD_DATA_DIR: "data_dir",
  GLASSD_LOG_LEVEL: "log.level",
  GLASSD_ADMIN_PASSWORD_FILE: "auth.admin_password_file",
};

/**
 * Loads the configuration. Precedence, lowest to highest: defaults → config file → .env → GLASSD_* environment →
 * command-line flags. Never throws for a bad configuration: it returns the issues and a safe-mode config.
 */
export function loadConfig(opts: LoadOptions = {}): LoadResult {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const issues: Issue[] = [];
  const files: string[] = [];
  const layers: Array<{ origin: Origin; value: Record<string, unknown> }> = [];

  const configFile = opts.configFile ?? env.GLASSD_CONFIG;
  if (configFile) {
    const path = resolve(cwd, configFile);
    try {
      layers.push({ origin: "file", value: readConfigFile(path) });
      files.push(path);
    } catch (err) {
      issues.push({ path: "/", message: `config file ${path}: ${(err as Error).message}` });
    }
  }

  const envFile = opts.envFile ?? env.GLASSD_ENV_FILE ?? (existsSync(resolve(cwd, ".env")) ? ".env" : undefined);
  if (envFile) {
    const path = resolve(cwd, envFile);
    try {
      const parsed = parseDotenv(readFileSync(path));
      layers.push({ origin: "dotenv", value: fromEnv(parsed, issues, ".env") });
      files.push(path);
    } catch (err) {
      issues.push({ path: "/", message: `.env file ${path}: ${(err as Error).message}` });
    }
  }
  layers.push({ origin: "env", value: fromEnv(env, issues, "environment") });
  const cli: Record<string, unknown> = {};
  for (const [dotted, raw] of Object.entries(opts.cli ?? {}))
    setPath(cli, dotted, coerce(dotted, raw, issues, "command line"));
  layers.push({ origin: "cli", value: cli });

  const merged: Record<string, unknown> = {};
  const origins = new Map<string, Origin>();
  for (const layer of layers) deepMerge(merged, layer.value, "", origins, layer.origin);

  if (issues.length === 0) {
    const r = validateConfig(merged);
    if (r.ok) {
      const semantic = crossChecks(r.config, cwd);
      if (semantic.length === 0) return { config: r.config, issues: [], safeMode: false, files };
      issues.push(...semantic.map((i) => ({ path: i.path, message: `${i.message}${originNote(i.path, origins)}` })));
      return { config: safeModeConfig(merged), issues, safeMode: true, files };
    }
    for (const i of r.issues) issues.push({ path: i.path, message: `${i.message}${originNote(i.path, origins)}` });
  }
  return { config: safeModeConfig(merged), issues, safeMode: true, files };
}

function readConfigFile(path: string): Record<string, unknown> {
  const text = readFileSync(path, "utf8");
  const ext = extname(path).toLowerCase();
  let value: unknown;
  if (ext === ".json") value = JSON.parse(text);
  else if (ext === ".yaml" || ext === ".yml") value = parseYaml(text, { uniqueKeys: true }) ?? {};
  else throw new Error(`unsupported extension "${ext}": use .yaml, .yml or .json`);
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error("must contain an object at the top level");
  return value as Record<string, unknown>;
}

/** GLASSD_SERVER__PORT=8080 → server.port; aliases from ENV_ALIASES. Unknown GLASSD_ keys are errors. */
function fromEnv(
  env: NodeJS.ProcessEnv | Record<string, string>,
  issues: Issue[],
  where: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(env)) {
    if (!key.startsWith("GLASSD_") || META_ENV.has(key) || raw === undefined) continue;
    const dotted = ENV_ALIASES[key] ?? key.slice("GLASSD_".length).toLowerCase().split("__").join(".");
    if (!schemaAt(dotted)) {
      issues.push({ path: `/${dotted.split(".").join("/")}`, message: `unknown key (from ${where} ${key})` });
      continue;
    }
    setPath(out, dotted, coerce(dotted, raw, issues, `${where} ${key}`));
  }
  return out;
}

/** Finds the sub-schema at a dotted path (objects and records only), or undefined when the path is unknown. */
function schemaAt(dotted: string): TSchema | undefined {
  let s: TSchema | undefined = ConfigSchema;
  for (const part of dotted.split(".")) {
    if (!s) return undefined;
    if (s.type === "object" && s.properties && part in s.properties) s = s.properties[part] as TSchema;
    else if (s.type === "object" && s.patternProperties) s = Object.values(s.patternProperties)[0] as TSchema;
    else return undefined;
  }
  return s;
}

/** Strings from env/CLI become the type the schema wants, so `8080` is a number; bad text stays text and fails validation with its path. */
function coerce(dotted: string, raw: string, issues: Issue[], where: string): unknown {
  const s = schemaAt(dotted);
  if (!s) {
    issues.push({ path: `/${dotted.split(".").join("/")}`, message: `unknown key (from ${where})` });
    return raw;
  }
  const t = raw.trim();
  switch (s.type) {
    case "integer":
    case "number":
      return t !== "" && Number.isFinite(Number(t)) ? Number(t) : raw;
    case "boolean":
      return t === "true" ? true : t === "false" ? false : raw;
    case "array":
    case "object":
      if (t.startsWith("[") || t.startsWith("{")) {
        try {
          return JSON.parse(t);
        } catch {
          return raw;
        }
      }
      return s.type === "array" ? (t === "" ? [] : t.split(",").map((x) => x.trim())) : raw;
    default:
      return raw;
  }
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== "object" || o[p] === null || Array.isArray(o[p])) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1] as string] = value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Objects merge key by key; arrays and scalars replace. Records which layer set each leaf. */
function deepMerge(
  target: Record<string, unknown>,
  src: Record<string, unknown>,
  prefix: string,
  origins: Map<string, Origin>,
  origin: Origin,
): void {
  for (const [k, v] of Object.entries(src)) {
    const path = `${prefix}/${k}`;
    if (isPlainObject(v) && isPlainObject(target[k]))
      deepMerge(target[k] as Record<string, unknown>, v, path, origins, origin);
    else {
      target[k] = structuredClone(v);
      origins.set(path, origin);
    }
  }
}

function originNote(path: string, origins: Map<string, Origin>): string {
  for (let p = path; p.length > 0; p = p.slice(0, p.lastIndexOf("/"))) {
    const o = origins.get(p);
    if (o)
      return ` (set in ${o === "file" ? "the config file" : o === "dotenv" ? ".env" : o === "env" ? "the environment" : "the command line"})`;
  }
  return "";
}

/**
 * The config safe mode runs on: defaults, keeping only the settings needed to reach the daemon and log in
 * (server, data_dir, auth, log) when they are valid on their own. Sources and actuation stay off regardless.
 */
function safeModeConfig(merged: Record<string, unknown>): Config {
  const keep = ["server", "data_dir", "auth", "log", "line"];
  let candidate: Record<string, unknown> = {};
  for (const k of keep) if (k in merged) candidate[k] = merged[k];
  let r = validateConfig(candidate);
  if (!r.ok) {
    candidate = {};
    for (const k of keep) {
      if (!(k in merged)) continue;
      if (validateConfig({ ...candidate, [k]: merged[k] }).ok) candidate[k] = merged[k];
    }
    r = validateConfig(candidate);
  }
  const config = r.ok ? r.config : defaultConfig();
  config.source.type = "none";
  return config;
}

/**
 * Checks a schema-valid config cannot express in JSON Schema: the twin's scenario must load against this tag
 * dictionary (a broken scenario file is a config error and starts safe mode, naming the scenario's own field).
 */
function crossChecks(config: Config, cwd: string): Issue[] {
  const out: Issue[] = [];
  const ref = config.twin.scenario;
  if (ref && config.source.type === "twin") {
    const looksLikePath = ref.includes("/") || ref.includes("\\") || extname(ref) !== "";
    try {
      // Relative paths are taken from the working directory, like every other path in the config.
      loadScenario(looksLikePath ? resolve(cwd, ref) : ref, config.tags);
      if (looksLikePath) config.twin.scenario = resolve(cwd, ref);
    } catch (err) {
      const issues = err instanceof ScenarioError ? err.issues : [{ path: "/", message: (err as Error).message }];
      for (const i of issues) out.push({ path: "/twin/scenario", message: `scenario ${ref}: ${i.path} ${i.message}` });
    }
  }
  if (config.frames.enabled) out.push(...framesConfigIssues(config.frames));
  const modbus = config.source.modbus;
  if (config.source.type === "plant" && modbus?.enabled) {
    out.push(...modbusConfigIssues(modbus));
    const known = new Set(config.tags.map((t) => t.id));
    modbus.tags.forEach((t, i) => {
      if (!known.has(t.tag))
        out.push({ path: `/source/modbus/tags/${i}/tag`, message: `"${t.tag}" is not in the tag dictionary` });
    });
  }
  if (config.source.type === "plant" && config.source.opcua.enabled) {
    try {
      checkSettings(settingsFromConfig(config.source.opcua, config.data_dir), config.tags, nodeIdSyntaxOk);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      out.push(...err.issues);
    }
  }
  return out;
}
