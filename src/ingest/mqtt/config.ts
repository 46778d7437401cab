import { type Static, Type } from "@sinclair/typebox";
import { Ajv, type ErrorObject } from "ajv";
import { ConfigError, type Issue } from "../../core/errors.js";

/*
 * Config schemas of the MQTT adapter (`source.mqtt`) and of the outbound publishers (`outbound.mqtt`), meant to be
 * mounted into src/config/schema.ts. Closed objects, defaults, descriptions, like the rest of the schema.
 */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });

/** How to reach and log in to the broker; shared by the source and the outbound publishers. */
export const MqttBrokerSchema = Type.Object(
  {
    url: Type.String({
      pattern: "^(mqtts?|wss?|tcp|ssl|tls)://",
      default: "mqtt://127.0.0.1:1883",
      ...d("Broker URL: mqtt://host:1883, mqtts://host:8883 (TLS), ws:// or wss://. No credentials in the URL."),
    }),
    client_id: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z0-9_.:-]{1,64}$",
        ...d("Fixed MQTT client id (the persistent session is bound to it). Default: glassd-<line id>[-suffix]."),
      }),
    ),
    username: Type.Optional(Type.String({ minLength: 1, ...d("MQTT user name.") })),
    password_file: Type.Optional(
      Type.String({ minLength: 1, ...d("File holding the MQTT password (trailing newline ignored). Never logged.") }),
    ),
    ca_file: Type.Optional(Type.String({ minLength: 1, ...d("PEM CA bundle that signed the broker's certificate.") })),
    cert_file: Type.Optional(Type.String({ minLength: 1, ...d("PEM client certificate (with key_file).") })),
    key_file: Type.Optional(Type.String({ minLength: 1, ...d("PEM private key of the client certificate.") })),
    reject_unauthorized: Type.Boolean({
      default: true,
      ...d("Verify the broker's certificate and host name. Turn off only for a lab broker."),
    }),
    keepalive_s: Type.Integer({ default: 30, minimum: 5, maximum: 3600, ...d("MQTT keepalive.") }),
    reconnect_ms: Type.Integer({
      default: 2000,
      minimum: 100,
      maximum: 300_000,
      ...d("Wait between reconnect attempts after the broker is lost."),
    }),
    connect_timeout_ms: Type.Integer({ default: 10_000, minimum: 500, maximum: 120_000, ...d("CONNACK timeout.") }),
  },
  { ...closed, default: {}, ...d("MQTT broker connection.") },
);
export type MqttBrokerConfig = Static<typeof MqttBrokerSchema>;

export const JsonTopicSchema = Type.Object(
  {
    filter: Type.String({
      minLength: 1,
      ...d("Topic filter; may use + and #. {line} is replaced by line.id."),
    }),
    tag: Type.Optional(Type.String({ ...d("Fixed tag id for every message on this filter.") })),
    tag_level: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 32, ...d("The tag id is this topic level (0-based), e.g. the + level.") }),
    ),
    tag_path: Type.Optional(Type.String({ minLength: 1, ...d("Dotted path of the tag id inside the JSON payload.") })),
    value_path: Type.String({ default: "value", minLength: 1, ...d("Dotted path of the numeric value.") }),
    ts_path: Type.String({
      default: "ts",
      minLength: 1,
      ...d("Dotted path of the source timestamp (ms epoch, or an ISO-8601 string). Absent: the receive time."),
    }),
    ts_unit: Type.Union([Type.Literal("ms"), Type.Literal("s")], {
      default: "ms",
      ...d("Unit of a numeric timestamp."),
    }),
    quality_path: Type.String({
      default: "quality",
      minLength: 1,
      ...d("Dotted path of the quality (good | uncertain | bad). Absent: good."),
    }),
  },
  { ...closed, ...d("A JSON topic rule: which tag a message is, and where its value and timestamp are.") },
);
export type JsonTopicRule = Static<typeof JsonTopicSchema>;

export const MqttSourceSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      ...d("Read the line from an MQTT broker (JSON and/or Sparkplug B) when source.type is plant."),
    }),
    id: Type.String({
      default: "mqtt",
      pattern: "^[a-z][a-z0-9_:.-]{0,63}$",
      ...d("Source id stamped on the samples (RawSample.source); its seq continues across restarts."),
    }),
    broker: MqttBrokerSchema,
    status_topic: Type.String({
      default: "glassd/{line}/status",
      minLength: 1,
      ...d("glassd's retained status: 'online' on every connect, 'offline' as the last will. {line} = line.id."),
    }),
    json: Type.Object(
      {
        enabled: Type.Boolean({ default: true, ...d("Subscribe to plain JSON topics.") }),
        qos: Type.Union([Type.Literal(0), Type.Literal(1)], {
          default: 1,
          ...d("Subscription QoS. With 1 a message is acknowledged only once its samples are durable."),
        }),
        topics: Type.Array(JsonTopicSchema, {
          default: [{ filter: "glass/{line}/sensors/+", tag_level: 3 }],
          ...d(
            "Topic rules besides the tag dictionary's sources.mqtt entries. Default: the twin's glass/<line>/sensors/<tag>.",
          ),
        }),
      },
      { ...closed, default: {}, ...d("Plain JSON topics (persistent session, fixed client id).") },
    ),
    sparkplug: Type.Object(
      {
        enabled: Type.Boolean({ default: false, ...d("Act as a Sparkplug B host application.") }),
        host_id: Type.String({
          default: "glassd",
          pattern: "^[^/+#]{1,64}$",
          ...d("Host application id: STATE is published retained on spBv1.0/STATE/<host_id>."),
        }),
        group_ids: Type.Array(Type.String({ pattern: "^[^/+#]{1,64}$" }), {
          default: [],
          ...d("Sparkplug groups to follow; empty = all."),
        }),
        metric_tags: Type.Record(Type.String(), Type.String(), {
          default: {},
          ...d(
            "Metric name → tag id. Default: a metric named like a tag is that tag; so is '<prefix>/<tag id>'. Keys may be qualified '<node>/<device>/<metric>' or '<device>/<metric>'.",
          ),
        }),
        rebirth_interval_ms: Type.Integer({
          default: 5000,
          minimum: 0,
          maximum: 600_000,
          ...d("Least time between two rebirth requests to the same edge node."),
        }),
      },
      { ...closed, default: {}, ...d("Sparkplug B host application (own clean-session connection).") },
    ),
    max_batch: Type.Integer({
      default: 2000,
      minimum: 1,
      maximum: 100_000,
      ...d("Most messages made durable in one LMDB transaction."),
    }),
    receive_maximum: Type.Integer({
      default: 1000,
      minimum: 1,
      maximum: 65_535,
      ...d("QoS 1 messages the broker may send before glassd acknowledges (MQTT 5 Receive Maximum)."),
    }),
  },
  { ...closed, default: {}, ...d("MQTT source (source.type = mqtt).") },
);
export type MqttSourceConfig = Static<typeof MqttSourceSchema>;

export const OUTBOUND_KINDS = ["prediction", "alarm", "recommendation", "pipeline_result"] as const;
export type OutboundKind = (typeof OUTBOUND_KINDS)[number];

export const OutboundMqttSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, ...d("Publish glassd's results over MQTT.") }),
    broker: MqttBrokerSchema,
    status_topic: Type.Optional(
      Type.String({
        minLength: 1,
        ...d("Retained online/offline status of the publisher connection (will = offline). {line} = line.id."),
      }),
    ),
    topics: Type.Object(
      {
        prediction: Type.String({ default: "glassd/{line}/prediction", ...d("Topic of predictions.") }),
        alarm: Type.String({ default: "glassd/{line}/alarm", ...d("Topic of alarms.") }),
        recommendation: Type.String({ default: "glassd/{line}/recommendation", ...d("Topic of recommendations.") }),
        pipeline_result: Type.String({
          default: "glassd/{line}/pipeline_result",
          ...d("Topic of pipeline result summaries."),
        }),
      },
      { ...closed, default: {}, ...d("Plain JSON topic per result kind; an empty string switches a kind off.") },
    ),
    retain: Type.Boolean({ default: false, ...d("Publish plain topics retained.") }),
    sparkplug: Type.Object(
      {
        enabled: Type.Boolean({ default: false, ...d("Also publish results as a Sparkplug B edge node.") }),
        group_id: Type.String({ default: "glassd", pattern: "^[^/+#]{1,64}$", ...d("Sparkplug group id.") }),
        node_id: Type.String({
          default: "{line}",
          pattern: "^[^/+#]{1,64}$",
          ...d("Sparkplug edge node id. {line} = line.id."),
        }),
      },
      { ...closed, default: {}, ...d("glassd as a Sparkplug B edge node (NBIRTH/NDATA, NDEATH as will).") },
    ),
    queue_max_bytes: Type.Integer({
      default: 67_108_864,
      minimum: 65_536,
      ...d("Byte budget of each durable outbound queue in LMDB; beyond it the oldest messages are dropped."),
    }),
    max_inflight: Type.Integer({
      default: 100,
      minimum: 1,
      maximum: 10_000,
      ...d("Unacknowledged QoS 1 messages per publisher."),
    }),
  },
  { ...closed, default: {}, ...d("Outbound MQTT publishing through a durable store-and-forward queue.") },
);
export type OutboundMqttConfig = Static<typeof OutboundMqttSchema>;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const checkSource = ajv.compile(MqttSourceSchema);
const checkOutbound = ajv.compile(OutboundMqttSchema);

function parse<T>(check: ReturnType<typeof ajv.compile>, raw: unknown, root: string): T {
  const value = structuredClone(raw ?? {});
  if (!check(value)) throw new ConfigError(issues(check.errors, root));
  return value as T;
}

/** Ajv errors as issues (this module does not import config/validate: schema.ts imports this module). */
function issues(errors: ErrorObject[] | null | undefined, root: string): Issue[] {
  const out = new Map<string, Issue>();
  for (const e of errors ?? []) {
    if (e.keyword === "const") continue;
    const extra =
      e.keyword === "additionalProperties" ? `/${(e.params as { additionalProperty: string }).additionalProperty}` : "";
    const message =
      e.keyword === "additionalProperties"
        ? "unknown key"
        : e.keyword === "anyOf"
          ? "must be one of the allowed values"
          : (e.message ?? e.keyword);
    const path = root + e.instancePath + extra;
    out.set(`${path} ${message}`, { path, message });
  }
  return [...out.values()];
}

/** A `source.mqtt` section with defaults filled in; throws ConfigError naming the field. */
export function parseMqttSourceConfig(raw: unknown): MqttSourceConfig {
  return parse(checkSource, raw, "/source/mqtt");
}

/** An `outbound.mqtt` section with defaults filled in; throws ConfigError naming the field. */
export function parseOutboundMqttConfig(raw: unknown): OutboundMqttConfig {
  return parse(checkOutbound, raw, "/outbound/mqtt");
}

/** Replaces `{line}` in a configured topic or id. */
export function withLine(s: string, lineId: string): string {
  return s.replaceAll("{line}", lineId);
}
