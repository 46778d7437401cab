import { join } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import type { TagConfig } from "../../config/schema.js";
import { type Issue, ValidationError } from "../../core/errors.js";
import { DEFAULT_RETRY, type RetryPolicy } from "../../core/retry.js";

/*
 * The `source.opcua` config section (what the lead pastes into src/config/schema.ts, or imports from here) and its
 * translation into OpcuaSourceOptions, with the cross-field checks a JSON Schema cannot express.
 */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });

export const SECURITY_MODES = ["None", "Sign", "SignAndEncrypt"] as const;
export const SECURITY_POLICIES = ["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] as const;
export type SecurityModeName = (typeof SECURITY_MODES)[number];
export type SecurityPolicyName = (typeof SECURITY_POLICIES)[number];

export const OpcuaSectionSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      ...d("Read the line from an OPC UA server (a PLC) when source.type is plant."),
    }),
    endpoint: Type.String({
      default: "opc.tcp://127.0.0.1:4840",
      pattern: "^opc\\.tcp://[^\\s/]+(:[0-9]{1,5})?(/.*)?$",
      ...d("Server endpoint URL, e.g. opc.tcp://plc1.line-a:4840."),
    }),
    name: Type.String({
      default: "plc",
      pattern: "^[A-Za-z0-9_.-]{1,64}$",
      ...d("Source name: samples carry source id opcua:<name>; its seq continues across restarts."),
    }),
    security_mode: Type.Union(
      SECURITY_MODES.map((m) => Type.Literal(m)),
      { default: "SignAndEncrypt", ...d("Message security mode. None only with security_policy None.") },
    ),
    security_policy: Type.Union(
      SECURITY_POLICIES.map((p) => Type.Literal(p)),
      { default: "Basic256Sha256", ...d("Security policy. None only with security_mode None.") },
    ),
    identity: Type.Union(
      [
        Type.Object({ type: Type.Literal("anonymous") }, { ...closed, description: "Anonymous session." }),
        Type.Object(
          {
            type: Type.Literal("username"),
            username: Type.String({ minLength: 1, description: "User name." }),
            password_file: Type.String({
              minLength: 1,
              description:
                "File holding the password (one line, mode 0600; e.g. $CREDENTIALS_DIRECTORY/opcua). Never logged.",
            }),
          },
          { ...closed, description: "User name and password." },
        ),
        Type.Object(
          {
            type: Type.Literal("certificate"),
            cert_file: Type.String({ minLength: 1, description: "X.509 user certificate (PEM or DER)." }),
            key_file: Type.String({ minLength: 1, description: "Its private key (PEM)." }),
          },
          { ...closed, description: "X.509 user certificate." },
        ),
      ],
      { default: { type: "anonymous" }, ...d("User identity of the session.") },
    ),
    pki_dir: Type.Optional(
      Type.String({
        minLength: 1,
        ...d(
          "PKI folder: own certificate (created on first start), trusted/ and rejected/ server certificates. Default: <data_dir>/pki. Manage with 'glassd pki'.",
        ),
      }),
    ),
    application_uri: Type.Optional(
      Type.String({
        minLength: 1,
        ...d("Application URI of glassd's client certificate. Default: urn:<hostname>:glassd:opcua-client."),
      }),
    ),
    batch_ms: Type.Integer({
      default: 100,
      minimum: 10,
      maximum: 10_000,
      ...d(
        "Publishing interval of the subscription = batch window: notifications go to storage in batches this often.",
      ),
    }),
    session_timeout_ms: Type.Integer({
      default: 60_000,
      minimum: 5_000,
      maximum: 3_600_000,
      ...d("Requested session timeout: how long the server keeps the session (and subscriptions) through a break."),
    }),
    request_timeout_ms: Type.Integer({
      default: 10_000,
      minimum: 500,
      maximum: 600_000,
      ...d("Timeout of one OPC UA request (read, write, browse)."),
    }),
    retry: Type.Object(
      {
        initial_delay_ms: Type.Integer({ default: 250, minimum: 10, maximum: 60_000, description: "First delay." }),
        max_delay_ms: Type.Integer({ default: 10_000, minimum: 10, maximum: 600_000, description: "Delay cap." }),
        max_retry: Type.Optional(
          Type.Integer({ minimum: 0, description: "Attempts before giving up; absent = never give up." }),
        ),
        jitter: Type.Number({ default: 0.2, minimum: 0, maximum: 1, description: "Relative spread of each delay." }),
      },
      { ...closed, default: {}, ...d("Reconnect backoff (doubling, jittered).") },
    ),
    repair_timeout_ms: Type.Integer({
      default: 30_000,
      minimum: 1_000,
      maximum: 3_600_000,
      ...d("A broken connection node-opcua has not repaired within this long is dropped and rebuilt from scratch."),
    }),
    watchdog_factor: Type.Number({
      default: 3,
      minimum: 1.5,
      maximum: 1000,
      ...d(
        "An item is stalled after watchdog_factor × its period (plus the publishing interval) without a fresh value while connected.",
      ),
    }),
    setpoint_suffix: Type.String({
      default: "_sp",
      minLength: 1,
      pattern: "^[A-Za-z0-9_.-]+$",
      ...d("Setpoint node of a lever = its tag's node id (or last browse-path element) + this suffix."),
    }),
  },
  {
    ...closed,
    default: {},
    description:
      "OPC UA client source (source.type plant). Tags map through tags[].sources.opcua.node_id or browse_path.",
  },
);
export type OpcuaSection = Static<typeof OpcuaSectionSchema>;

export type OpcuaIdentity =
  | { type: "anonymous" }
  | { type: "username"; username: string; passwordFile: string }
  | { type: "certificate"; certFile: string; keyFile: string };

/** Everything the source needs that is not a collaborator (logger, clock, store). */
export interface OpcuaSettings {
  endpoint: string;
  name: string;
  securityMode: SecurityModeName;
  securityPolicy: SecurityPolicyName;
  identity: OpcuaIdentity;
  pkiDir: string;
  applicationUri?: string;
  batchMs: number;
  sessionTimeoutMs: number;
  requestTimeoutMs: number;
  retry: RetryPolicy;
  repairTimeoutMs: number;
  watchdogFactor: number;
  setpointSuffix: string;
}

export const DEFAULT_SETTINGS = {
  name: "plc",
  securityMode: "SignAndEncrypt",
  securityPolicy: "Basic256Sha256",
  identity: { type: "anonymous" },
  batchMs: 100,
  sessionTimeoutMs: 60_000,
  requestTimeoutMs: 10_000,
  retry: DEFAULT_RETRY,
  repairTimeoutMs: 30_000,
  watchdogFactor: 3,
  setpointSuffix: "_sp",
} as const satisfies Partial<OpcuaSettings>;

/** The config section (already schema-valid, defaults applied) as settings; relative paths resolved by the loader. */
export function settingsFromConfig(s: OpcuaSection, dataDir: string): OpcuaSettings {
  const id = s.identity;
  return {
    endpoint: s.endpoint,
    name: s.name,
    securityMode: s.security_mode,
    securityPolicy: s.security_policy,
    identity:
      id.type === "username"
        ? { type: "username", username: id.username, passwordFile: id.password_file }
        : id.type === "certificate"
          ? { type: "certificate", certFile: id.cert_file, keyFile: id.key_file }
          : { type: "anonymous" },
    pkiDir: s.pki_dir ?? join(dataDir, "pki"),
    ...(s.application_uri ? { applicationUri: s.application_uri } : {}),
    batchMs: s.batch_ms,
    sessionTimeoutMs: s.session_timeout_ms,
    requestTimeoutMs: s.request_timeout_ms,
    retry: {
      initialDelayMs: s.retry.initial_delay_ms,
      maxDelayMs: s.retry.max_delay_ms,
      maxRetry: s.retry.max_retry ?? Number.POSITIVE_INFINITY,
      jitter: s.retry.jitter,
    },
    repairTimeoutMs: s.repair_timeout_ms,
    watchdogFactor: s.watchdog_factor,
    setpointSuffix: s.setpoint_suffix,
  };
}

/** Syntax of an OPC UA node id string (ns=…;i=|s=|g=|b=, or nsu=…;…), checked without loading node-opcua. */
export function nodeIdSyntaxOk(id: string): boolean {
  return (
    /^(ns=\d+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$/.test(id) || /^nsu=[^;]+;(i|s|g|b)=.+$/.test(id)
  );
}

/**
 * Checks the settings and the tag mapping; every problem names its field (`/source/opcua/…` or `/tags/<i>/…`).
 * @throws ValidationError listing every issue found.
 */
export function checkSettings(s: OpcuaSettings, tags: readonly TagConfig[], nodeIdValid: (id: string) => boolean) {
  const issues: Issue[] = [];
  const at = (f: string) => `/source/opcua/${f}`;
  if (!/^opc\.tcp:\/\/[^\s/:]+(:\d{1,5})?(\/.*)?$/.test(s.endpoint)) {
    issues.push({
      path: at("endpoint"),
      message: `must be opc.tcp://host[:port][/path], got ${JSON.stringify(s.endpoint)}`,
    });
  } else {
    const port = /:(\d+)(\/|$)/.exec(s.endpoint.slice("opc.tcp://".length))?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535))
      issues.push({ path: at("endpoint"), message: `port ${port} is not 1..65535` });
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(s.name))
    issues.push({ path: at("name"), message: "must be 1-64 of A-Z a-z 0-9 _ . -" });
  if (!(SECURITY_MODES as readonly string[]).includes(s.securityMode))
    issues.push({ path: at("security_mode"), message: `must be one of ${SECURITY_MODES.join(", ")}` });
  if (!(SECURITY_POLICIES as readonly string[]).includes(s.securityPolicy))
    issues.push({ path: at("security_policy"), message: `must be one of ${SECURITY_POLICIES.join(", ")}` });
  if ((s.securityMode === "None") !== (s.securityPolicy === "None"))
    issues.push({
      path: at("security_policy"),
      message: `security_mode ${s.securityMode} needs ${s.securityMode === "None" ? "security_policy None" : "a policy other than None"} (got ${s.securityPolicy})`,
    });
  const posInt = (v: number, f: string, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max)
      issues.push({ path: at(f), message: `must be an integer from ${min} to ${max}, got ${v}` });
  };
  posInt(s.batchMs, "batch_ms", 10, 10_000);
  posInt(s.sessionTimeoutMs, "session_timeout_ms", 5_000, 3_600_000);
  posInt(s.requestTimeoutMs, "request_timeout_ms", 500, 600_000);
  posInt(s.repairTimeoutMs, "repair_timeout_ms", 1_000, 3_600_000);
  posInt(s.retry.initialDelayMs, "retry/initial_delay_ms", 10, 60_000);
  posInt(s.retry.maxDelayMs, "retry/max_delay_ms", 10, 600_000);
  if (s.retry.maxDelayMs < s.retry.initialDelayMs)
    issues.push({ path: at("retry/max_delay_ms"), message: "must be at least retry.initial_delay_ms" });
  if (!(s.retry.jitter >= 0 && s.retry.jitter <= 1)) issues.push({ path: at("retry/jitter"), message: "must be 0..1" });
  if (!(s.retry.maxRetry >= 0)) issues.push({ path: at("retry/max_retry"), message: "must be >= 0" });
  if (!(s.watchdogFactor >= 1.5 && s.watchdogFactor <= 1000))
    issues.push({ path: at("watchdog_factor"), message: `must be 1.5..1000, got ${s.watchdogFactor}` });
  if (!/^[A-Za-z0-9_.-]+$/.test(s.setpointSuffix))
    issues.push({ path: at("setpoint_suffix"), message: "must be 1+ of A-Z a-z 0-9 _ . -" });
  const id = s.identity;
  if (id.type === "username") {
    if (!id.username) issues.push({ path: at("identity/username"), message: "must not be empty" });
    if (!id.passwordFile) issues.push({ path: at("identity/password_file"), message: "must name a file" });
  } else if (id.type === "certificate") {
    if (!id.certFile) issues.push({ path: at("identity/cert_file"), message: "must name a file" });
    if (!id.keyFile) issues.push({ path: at("identity/key_file"), message: "must name a file" });
  } else if (id.type !== "anonymous") {
    issues.push({ path: at("identity/type"), message: "must be anonymous, username or certificate" });
  }
  tags.forEach((t, i) => {
    const o = t.sources?.opcua;
    if (!o) return;
    if (o.node_id !== undefined && o.browse_path !== undefined)
      issues.push({ path: `/tags/${i}/sources/opcua`, message: `${t.id}: give node_id or browse_path, not both` });
    else if (o.node_id === undefined && o.browse_path === undefined)
      issues.push({ path: `/tags/${i}/sources/opcua`, message: `${t.id}: needs node_id or browse_path` });
    else if (o.node_id !== undefined && !nodeIdValid(o.node_id))
      issues.push({
        path: `/tags/${i}/sources/opcua/node_id`,
        message: `${t.id}: "${o.node_id}" is not an OPC UA node id (e.g. ns=1;s=Line_A.${t.id} or ns=2;i=1042)`,
      });
    else if (o.browse_path !== undefined && !/^(\/|\.|<)/.test(o.browse_path))
      issues.push({
        path: `/tags/${i}/sources/opcua/browse_path`,
        message: `${t.id}: "${o.browse_path}" must be a relative path from the Objects folder, e.g. /1:Line_A/1:furnace/1:${t.id}`,
      });
  });
  if (issues.length) {
    throw new ValidationError(
      `invalid OPC UA source configuration: ${issues.map((x) => `${x.path}: ${x.message}`).join("; ")}`,
      issues,
    );
  }
}
