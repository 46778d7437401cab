import { type Static, Type } from "@sinclair/typebox";
import { Ajv } from "ajv";
import { ajvIssues } from "../../core/ajv-issues.js";
import { ConfigError, type Issue } from "../../core/errors.js";

/*
 * The `source.modbus` config section (Modbus RTU instruments on one serial line), in the style of
 * src/config/schema.ts so that it can be pasted there or imported as `modbus: Type.Optional(ModbusConfigSchema)`.
 */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });

export const MODBUS_VALUE_TYPES = ["int16", "uint16", "int32", "uint32", "float32"] as const;
export type ModbusValueType = (typeof MODBUS_VALUE_TYPES)[number];

export const ModbusTagSchema = Type.Object(
  {
    tag: Type.String({ pattern: "^[a-z][a-z0-9_]{0,63}$", ...d("Tag id of the tag dictionary this register feeds.") }),
    unit_id: Type.Integer({ minimum: 1, maximum: 247, ...d("Modbus slave address of the instrument.") }),
    table: Type.Union([Type.Literal("holding"), Type.Literal("input")], {
      default: "holding",
      ...d("Holding registers (FC 3) or input registers (FC 4)."),
    }),
    register: Type.Integer({
      minimum: 0,
      maximum: 65535,
      ...d("0-based protocol address of the (first) register (register 40001 in 1-based notation is 0)."),
    }),
    type: Type.Union(
      MODBUS_VALUE_TYPES.map((t) => Type.Literal(t)),
      { default: "uint16", ...d("Value type; 32-bit types take two registers.") },
    ),
    word_order: Type.Union([Type.Literal("big"), Type.Literal("little")], {
      default: "big",
      ...d("32-bit types: big = high word in the first register (AB CD), little = low word first (CD AB)."),
    }),
    scale: Type.Number({ default: 1, ...d("value = raw × scale + offset.") }),
    offset: Type.Number({ default: 0, ...d("value = raw × scale + offset.") }),
    period_ms: Type.Integer({ default: 1000, minimum: 50, maximum: 3_600_000, ...d("Poll period of this register.") }),
  },
  { ...closed, description: "One register (or register pair) mapped to a tag." },
);
export type ModbusTagConfig = Static<typeof ModbusTagSchema>;

export const ModbusConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      ...d("Poll this line when source.type is plant (false keeps the section, off)."),
    }),
    path: Type.String({ minLength: 1, ...d("Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/….") }),
    id: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z0-9_.-]{1,64}$",
        ...d("Source id suffix: samples carry source modbus:<id>. Default: the device file name."),
      }),
    ),
    baud_rate: Type.Integer({ default: 9600, minimum: 300, maximum: 921_600, ...d("Line speed.") }),
    parity: Type.Union([Type.Literal("none"), Type.Literal("even"), Type.Literal("odd")], {
      default: "even",
      ...d("Parity (Modbus RTU's default is even)."),
    }),
    data_bits: Type.Union([Type.Literal(7), Type.Literal(8)], { default: 8, ...d("Data bits.") }),
    stop_bits: Type.Union([Type.Literal(1), Type.Literal(2)], { default: 1, ...d("Stop bits.") }),
    timeout_ms: Type.Integer({ default: 500, minimum: 20, maximum: 60_000, ...d("Reply timeout of one request.") }),
    inter_request_delay_ms: Type.Integer({
      default: 10,
      minimum: 0,
      maximum: 10_000,
      ...d("Silence between requests (≥ 3.5 character times: 4 ms at 9600 baud)."),
    }),
    max_block_registers: Type.Integer({
      default: 64,
      minimum: 1,
      maximum: 125,
      ...d("Most registers read in one request; registers of one unit, table and period are read together."),
    }),
    max_gap_registers: Type.Integer({
      default: 8,
      minimum: 0,
      maximum: 100,
      ...d("Unmapped registers a block may span to join two mapped ones."),
    }),
    vanish_after_timeouts: Type.Integer({
      default: 3,
      minimum: 1,
      ...d("Consecutive timeouts after which the device path is checked (unplugged adapter → reconnect)."),
    }),
    retry: Type.Object(
      {
        initial_delay_ms: Type.Integer({ default: 250, minimum: 10, ...d("First reconnect delay.") }),
        max_delay_ms: Type.Integer({ default: 10_000, minimum: 10, ...d("Reconnect delays double up to this.") }),
        jitter: Type.Number({ default: 0.2, minimum: 0, maximum: 1, ...d("Relative spread of each delay.") }),
      },
      { ...closed, default: {}, description: "Reconnect policy (never gives up)." },
    ),
    tags: Type.Array(ModbusTagSchema, { minItems: 1, ...d("Registers to poll.") }),
  },
  {
    ...closed,
    description: "Modbus RTU master on one serial line (source.type plant; present = on unless enabled is false).",
  },
);
export type ModbusConfig = Static<typeof ModbusConfigSchema>;

/** Cross-field rules: each tag mapped once; no two mappings overlap on the same unit and table. */
export function modbusConfigIssues(c: ModbusConfig, prefix = "/source/modbus"): Issue[] {
  const issues: Issue[] = [];
  const seen = new Map<string, number>();
  const used = new Map<string, number>();
  c.tags.forEach((t, i) => {
    const prev = seen.get(t.tag);
    if (prev !== undefined)
      issues.push({ path: `${prefix}/tags/${i}/tag`, message: `tag ${t.tag} is mapped twice (also tags/${prev})` });
    seen.set(t.tag, i);
    const width = registerWidth(t.type);
    if (t.register + width > 65536)
      issues.push({ path: `${prefix}/tags/${i}/register`, message: `${t.type} at ${t.register} runs past 65535` });
    for (let k = 0; k < width; k++) {
      const key = `${t.unit_id}:${t.table}:${t.register + k}`;
      const other = used.get(key);
      if (other !== undefined && other !== i)
        issues.push({
          path: `${prefix}/tags/${i}/register`,
          message: `register ${t.register + k} of unit ${t.unit_id} (${t.table}) is already mapped by tags/${other}`,
        });
      used.set(key, i);
    }
  });
  return issues;
}

export function registerWidth(type: ModbusValueType): 1 | 2 {
  return type === "int16" || type === "uint16" ? 1 : 2;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const check = ajv.compile(ModbusConfigSchema);

/** Validates a `source.modbus` section (filling defaults) or throws a ConfigError naming every wrong field. */
export function resolveModbusConfig(raw: unknown): ModbusConfig {
  const value = structuredClone(raw ?? {});
  if (!check(value))
    throw new ConfigError(
      ajvIssues(check.errors).map((i) => ({ ...i, path: `/source/modbus${i.path === "/" ? "" : i.path}` })),
    );
  const c = value as ModbusConfig;
  const issues = modbusConfigIssues(c);
  if (issues.length) throw new ConfigError(issues);
  return c;
}
