import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { InferenceSectionSchema } from "../inference/config.js";
import { FramesConfigSchema } from "../ingest/frames/config.js";
import { ModbusConfigSchema } from "../ingest/modbus/config.js";
import { MqttSourceSchema, OutboundMqttSchema } from "../ingest/mqtt/config.js";
import { OpcuaSectionSchema } from "../ingest/opcua/config.js";

/*
 * The one configuration schema. It gives the TypeScript type (`Config`), the JSON Schema written to
 * config/schema.json (`npm run gen:schema`) and, through `default` keywords, the defaults. Every object is closed
 * (`additionalProperties: false`) so an unknown key is an error that names its path. Every field says whether
 * changing it needs a restart; today all of them do (there is no hot reload yet).
 */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });

const Range = (description: string) =>
  Type.Object(
    { min: Type.Number(), max: Type.Number() },
    { ...closed, ...d(`${description} Closed interval in the tag's unit.`) },
  );

export const TagSchema = Type.Object(
  {
    id: Type.String({
      pattern: "^[a-z][a-z0-9_]{0,63}$",
      ...d("Tag id, snake_case; the name used everywhere (API, features, models)."),
    }),
    unit: Type.String({ ...d("Engineering unit, e.g. °C, kPa, m/min.") }),
    stage: Type.Union(
      (["batch", "furnace", "forming", "annealing", "environment", "inspection"] as const).map((s) => Type.Literal(s)),
      d("Process stage the tag belongs to."),
    ),
    description: Type.String({ default: "", ...d("Human description shown on dashboards.") }),
    normal: Range("Normal operating band (alarm band)."),
    limits: Range("Hard limits: a value outside is physically impossible and is quarantined."),
    period_ms: Type.Integer({ minimum: 10, maximum: 86_400_000, ...d("Expected sampling period in ms.") }),
    max_rate_per_s: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        ...d("Largest credible rate of change in unit/s; faster jumps are quarantined."),
      }),
    ),
    stale_after_ms: Type.Optional(
      Type.Integer({
        minimum: 1,
        ...d("A sample older than this when it arrives is stale. Default: validation.stale_factor × period_ms."),
      }),
    ),
    actuator: Type.Optional(
      Type.Object(
        {
          min: Type.Number({ description: "Lowest setpoint the actuator accepts." }),
          max: Type.Number({ description: "Highest setpoint the actuator accepts." }),
          max_step: Type.Number({ exclusiveMinimum: 0, description: "Largest single setpoint change." }),
        },
        { ...closed, ...d("This tag is a lever with a writable setpoint.") },
      ),
    ),
    sources: Type.Object(
      {
        opcua: Type.Optional(
          Type.Object(
            { node_id: Type.Optional(Type.String()), browse_path: Type.Optional(Type.String()) },
            { ...closed, description: "OPC UA address: a node id or a browse path." },
          ),
        ),
        mqtt: Type.Optional(
          Type.Object(
            {
              topic: Type.String(),
              path: Type.Optional(Type.String({ description: "Dotted path of the value inside a JSON payload." })),
            },
            { ...closed, description: "MQTT topic carrying this tag." },
          ),
        ),
        serial: Type.Optional(
          Type.Object(
            { channel: Type.Integer({ minimum: 0, maximum: 255 }) },
            { ...closed, description: "Firmware-bridge channel id." },
          ),
        ),
      },
      { ...closed, default: {}, ...d("Per-source addresses used by the ingest adapters.") },
    ),
  },
  { ...closed, description: "One entry of the tag dictionary." },
);
export type TagConfig = Static<typeof TagSchema>;

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const LogLevel = (opts: object = {}) =>
  Type.Union(
    LEVELS.map((l) => Type.Literal(l)),
    { description: "pino log level.", ...opts },
  );

function section<T extends Record<string, TSchema>>(props: T, description: string) {
  return Type.Object(props, { ...closed, default: {}, description });
}

export const ConfigSchema = Type.Object(
  {
    line: section(
      {
        id: Type.String({
          default: "Line_A",
          pattern: "^[A-Za-z0-9_.-]{1,64}$",
          ...d("Line identifier, used in topics and the API."),
        }),
      },
      "The production line this daemon serves.",
    ),
    data_dir: Type.String({
      default: "./data",
      minLength: 1,
      ...d("Directory for the LMDB environment and generated secrets. /var/lib/glassd under systemd."),
    }),
    server: section(
      {
        host: Type.String({ default: "0.0.0.0", minLength: 1, ...d("Address the HTTP/WebSocket server binds.") }),
        port: Type.Integer({
          default: 8000,
          minimum: 0,
          maximum: 65535,
          ...d("TCP port of the HTTP/WebSocket server (0 = any free port)."),
        }),
        tls_cert_file: Type.Optional(
          Type.String({ ...d("PEM certificate chain; with tls_key_file, serve HTTPS/WSS.") }),
        ),
        tls_key_file: Type.Optional(Type.String({ ...d("PEM private key for TLS.") })),
        max_body_bytes: Type.Integer({
          default: 1_048_576,
          minimum: 1024,
          maximum: 104_857_600,
          ...d("Largest accepted request body; larger gets 413."),
        }),
        allowed_origins: Type.Array(Type.String(), {
          default: [],
          ...d("Origins allowed to open the WebSocket (besides same-host origins and clients without Origin)."),
        }),
      },
      "HTTP/WebSocket API server.",
    ),
    websocket: section(
      {
        max_clients: Type.Integer({
          default: 64,
          minimum: 1,
          maximum: 10_000,
          ...d("Most WebSocket clients at once; more are refused."),
        }),
        max_payload_bytes: Type.Integer({ default: 65_536, minimum: 256, ...d("Largest message a client may send.") }),
        send_buffer_bytes: Type.Integer({
          default: 4_194_304,
          minimum: 1024,
          ...d("Per-client send buffer; a client above it is dropped as slow."),
        }),
      },
      "WebSocket hub limits.",
    ),
    auth: section(
      {
        token_ttl_s: Type.Integer({ default: 900, minimum: 30, maximum: 86_400, ...d("Lifetime of a login token.") }),
        users_file: Type.Optional(Type.String({ ...d("Users file (scrypt hashes). Default: <data_dir>/users.json.") })),
        admin_password_file: Type.Optional(
          Type.String({
            ...d(
              "File holding the first admin's password. Default: $CREDENTIALS_DIRECTORY/admin-password, else generated once.",
            ),
          }),
        ),
        token_secret_file: Type.Optional(
          Type.String({
            ...d(
              "File holding the token signing key. Default: $CREDENTIALS_DIRECTORY/token-secret, else generated once in data_dir.",
            ),
          }),
        ),
        api_keys_file: Type.Optional(
          Type.String({ ...d("API keys for machine clients (hashed). Default: <data_dir>/api-keys.json.") }),
        ),
      },
      "Authentication. Secrets come only from files, never from this config.",
    ),
    log: section(
      {
        level: LogLevel({ default: "info", ...d("Default log level.") }),
        levels: Type.Record(Type.String(), LogLevel(), {
          default: {},
          ...d("Per-namespace levels, e.g. {twin: debug}."),
        }),
      },
      "Logging (JSON lines to stdout/journald).",
    ),
    source: section(
      {
        type: Type.Union([Type.Literal("twin"), Type.Literal("plant"), Type.Literal("none")], {
          default: "twin",
          ...d(
            "Where line data comes from: the embedded digital twin; plant (the adapters below whose enabled is true, on real time); or none (API input only).",
          ),
        }),
        serial: section(
          {
            enabled: Type.Boolean({ default: false, ...d("Read the firmware bridge (firmware-bridge/PROTOCOL.md).") }),
            path: Type.String({
              default: "/dev/ttyACM0",
              minLength: 1,
              ...d("Serial device; prefer a stable /dev/serial/by-id/… path."),
            }),
            baud: Type.Integer({ default: 115_200, minimum: 1200, maximum: 4_000_000, ...d("Baud rate.") }),
            device_id: Type.String({
              default: "",
              pattern: "^[A-Za-z0-9_.-]{0,32}$",
              ...d("Expected device id; a device announcing another id is refused. Empty: accept the first seen."),
            }),
            handshake_timeout_ms: Type.Integer({ default: 1000, minimum: 50, maximum: 60_000, ...d("HELLO wait.") }),
            command_timeout_ms: Type.Integer({
              default: 1000,
              minimum: 10,
              maximum: 60_000,
              ...d("Command ACK wait."),
            }),
            watchdog_factor: Type.Number({
              default: 3,
              minimum: 1.5,
              maximum: 100,
              ...d("The link is dead after this many heartbeat periods without a frame."),
            }),
            time_sync_interval_ms: Type.Integer({
              default: 30_000,
              minimum: 1000,
              maximum: 3_600_000,
              ...d("TIME_SYNC period."),
            }),
            retry: section(
              {
                initial_delay_ms: Type.Integer({ default: 250, minimum: 10, ...d("First reconnect delay.") }),
                max_delay_ms: Type.Integer({ default: 10_000, minimum: 10, ...d("Longest reconnect delay.") }),
                jitter: Type.Number({ default: 0.2, minimum: 0, maximum: 1, ...d("Random ± fraction of each delay.") }),
              },
              "Reconnect backoff (exponential with jitter).",
            ),
          },
          "Serial firmware bridge (source.type plant). Tags map through tags[].sources.serial.channel.",
        ),
        opcua: OpcuaSectionSchema,
        mqtt: MqttSourceSchema,
        modbus: Type.Optional(ModbusConfigSchema),
      },
      "Line data source.",
    ),
    frames: FramesConfigSchema,
    inference: InferenceSectionSchema,
    outbound: section({ mqtt: OutboundMqttSchema }, "Outbound publishing of glassd's results."),
    twin: section(
      {
        seed: Type.Integer({ default: 42, ...d("Random seed; the same seed gives the same line.") }),
        speed: Type.Number({ default: 1, minimum: 0.01, maximum: 100_000, ...d("Simulated seconds per real second.") }),
        step_ms: Type.Integer({ default: 1000, minimum: 10, maximum: 60_000, ...d("Simulation step.") }),
        items_per_min: Type.Number({
          default: 15,
          minimum: 1,
          maximum: 600,
          ...d("Items inspected per minute at nominal belt speed."),
        }),
        scenario: Type.String({
          default: "",
          ...d(
            "Scenario the twin plays: a built-in name (glassd twin scenario list) or a YAML/JSON file. Empty: steady state.",
          ),
        }),
        frames: section(
          {
            enabled: Type.Boolean({
              default: true,
              ...d(
                "The twin's MIK-1: render every inspected item (sharp) and hand it to the frame intake, so the vision model sees frames on the demo line.",
              ),
            }),
            width: Type.Integer({ default: 640, minimum: 64, maximum: 1920, ...d("Frame width, px.") }),
            height: Type.Integer({ default: 480, minimum: 64, maximum: 1080, ...d("Frame height, px.") }),
            format: Type.Union([Type.Literal("jpeg"), Type.Literal("png")], {
              default: "jpeg",
              ...d("Encoding of the rendered frames."),
            }),
          },
          "Rendered MIK-1 frames of the embedded twin.",
        ),
        scenario_loop: Type.Boolean({
          default: true,
          ...d("Start the scenario over after its duration_hours (a demo that runs for days)."),
        }),
      },
      "Digital twin used as the line when source.type is twin.",
    ),
    pipeline: section(
      {
        tick_interval_ms: Type.Integer({
          default: 1000,
          minimum: 50,
          maximum: 3_600_000,
          ...d("Pipeline tick period."),
        }),
        window_s: Type.Integer({ default: 600, minimum: 10, maximum: 86_400, ...d("Feature window length.") }),
      },
      "Pipeline orchestration.",
    ),
    storage: section(
      {
        retention_hours: Type.Number({
          default: 168,
          exclusiveMinimum: 0,
          ...d("Samples older than this are deleted."),
        }),
        max_sample_bytes: Type.Integer({
          default: 1_073_741_824,
          minimum: 1_048_576,
          ...d("Byte budget of the sample ring; oldest removed first."),
        }),
        map_size_bytes: Type.Integer({
          default: 4_294_967_296,
          minimum: 16_777_216,
          ...d("LMDB map size (virtual; grows on demand)."),
        }),
        quarantine_max_entries: Type.Integer({
          default: 100_000,
          minimum: 100,
          ...d("Most quarantined samples kept; oldest removed first."),
        }),
      },
      "LMDB storage.",
    ),
    validation: section(
      {
        stale_factor: Type.Number({
          default: 3,
          minimum: 1,
          ...d("A sample older than stale_factor × period_ms when it arrives is stale."),
        }),
        future_tolerance_ms: Type.Integer({
          default: 5000,
          minimum: 0,
          ...d("Largest accepted clock skew into the future."),
        }),
      },
      "Sample validation.",
    ),
    tags: Type.Optional(Type.Array(TagSchema, { ...d("Tag dictionary. Default: DOMAIN.md's tags for Line_A.") })),
  },
  { ...closed, $id: "https://glassd.local/config.schema.json", title: "glassd configuration" },
);

export type Config = Omit<Static<typeof ConfigSchema>, "tags"> & { tags: TagConfig[] };
