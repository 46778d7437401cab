import type { Config } from "../config/index.js";
import type { Clock } from "../core/clock.js";
import type { createLogger } from "../core/logger.js";
import type { Store } from "../storage/index.js";
import type { ModbusConfig } from "./modbus/config.js";
import type { SampleSource } from "./ports.js";

/*
 * The plant adapters glassd reads when `source.type` is `plant`: each enabled section of `source.*` becomes one
 * SampleSource. Adapters are imported lazily so a daemon on the twin never loads serialport or node-opcua.
 */

/** One running adapter with what health and metrics need from it. */
export interface Adapter {
  source: SampleSource;
  /** `ok` false while the adapter cannot deliver (disconnected, handshake failing); `detail` says why. */
  check(): { ok: boolean; detail: string };
  /** Flat numeric counters (snake_case) exported as `glassd_source_counter{source,counter}`. */
  counters(): Record<string, number>;
}

interface AdapterContext {
  config: Config;
  store: Store;
  clock: Clock;
  logs: ReturnType<typeof createLogger>;
}

/** Builds the adapters enabled in `config.source`. Throws a GlassdError when an adapter cannot be built. */
export async function buildAdapters(ctx: AdapterContext): Promise<Adapter[]> {
  const { config } = ctx;
  const out: Adapter[] = [];
  if (config.source.opcua.enabled) out.push(await opcuaAdapter(ctx));
  if (config.source.mqtt.enabled) out.push(await mqttAdapter(ctx));
  if (config.source.serial.enabled) out.push(await serialAdapter(ctx));
  if (config.source.modbus?.enabled) out.push(await modbusAdapter(ctx, config.source.modbus));
  return out;
}

function numericCounters(stats: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) {
    if (typeof v === "number" && Number.isFinite(v)) out[k] = v;
    else if (typeof v === "boolean") out[k] = v ? 1 : 0;
  }
  return out;
}

async function opcuaAdapter(ctx: AdapterContext): Promise<Adapter> {
  const { OpcuaSource, settingsFromConfig } = await import("./opcua/index.js");
  const source = new OpcuaSource({
    ...settingsFromConfig(ctx.config.source.opcua, ctx.config.data_dir),
    tags: ctx.config.tags,
    logger: ctx.logs.child("opcua"),
    clock: ctx.clock,
    state: ctx.store,
  });
  return {
    source,
    counters: () => numericCounters(source.stats()),
    check: () => {
      const st = source.stats();
      const stalled = st.stalled_items ? ` (${st.stalled_tags.join(", ")})` : "";
      return {
        ok: st.connected,
        detail: st.connected
          ? `${st.monitored_items} items, ${st.stalled_items} stalled${stalled}, ${st.gaps} gaps`
          : `not connected: ${st.last_error ?? "connecting"}`,
      };
    },
  };
}

async function mqttAdapter(ctx: AdapterContext): Promise<Adapter> {
  const { MqttSource } = await import("./mqtt/index.js");
  const { store } = ctx;
  const source = new MqttSource({
    config: ctx.config.source.mqtt,
    lineId: ctx.config.line.id,
    tags: ctx.config.tags,
    state: store,
    // What never became a sample (bad JSON, a missing path, a Sparkplug protocol error) is quarantined with its reason.
    quarantine: (rejected) => store.appendBatch([], rejected),
    logger: ctx.logs.child("mqtt"),
    clock: ctx.clock,
  });
  return {
    source,
    counters: () => numericCounters(source.stats()),
    check: () => {
      const st = source.stats();
      const sp = ctx.config.source.mqtt.sparkplug.enabled;
      const ok = st.connected && (!sp || st.sparkplug_connected);
      return {
        ok,
        detail: `${st.connected ? "connected" : "not connected"}${sp ? `, sparkplug ${st.sparkplug_connected ? "connected" : "not connected"}` : ""}; ${st.samples_out} samples, ${st.quarantined} quarantined, ${st.reconnects} reconnects`,
      };
    },
  };
}

async function modbusAdapter(ctx: AdapterContext, config: ModbusConfig): Promise<Adapter> {
  const { ModbusRtuSource } = await import("./modbus/index.js");
  const source = new ModbusRtuSource({ config, state: ctx.store, clock: ctx.clock, logger: ctx.logs.child("modbus") });
  return {
    source,
    counters: () => numericCounters(source.stats()),
    check: () => {
      const st = source.stats();
      return {
        ok: st.connected,
        detail: st.connected
          ? `${config.path}: ${st.blocks} register blocks, ${st.exceptions_total} exceptions`
          : `${config.path}: not connected`,
      };
    },
  };
}

async function serialAdapter(ctx: AdapterContext): Promise<Adapter> {
  const s = ctx.config.source.serial;
  const { SerialBridgeSource } = await import("./serial/index.js");
  const source = new SerialBridgeSource({
    path: s.path,
    baudRate: s.baud,
    ...(s.device_id ? { deviceId: s.device_id } : {}),
    tags: ctx.config.tags,
    logger: ctx.logs.child("serial"),
    clock: ctx.clock,
    state: ctx.store,
    retry: { initialDelayMs: s.retry.initial_delay_ms, maxDelayMs: s.retry.max_delay_ms, jitter: s.retry.jitter },
    handshakeTimeoutMs: s.handshake_timeout_ms,
    commandTimeoutMs: s.command_timeout_ms,
    watchdogFactor: s.watchdog_factor,
    timeSyncIntervalMs: s.time_sync_interval_ms,
  });
  return {
    source,
    check: () => {
      const st = source.stats();
      return {
        ok: st.connected,
        detail: st.connected
          ? `${s.path}: ${st.samples_durable} samples durable, ${st.gaps} gaps, ${st.bad_crc} bad CRC`
          : `${s.path}: not connected (${st.connect_failures} connect failures, ${st.handshake_failures} handshake failures)`,
      };
    },
    counters: () => numericCounters(source.stats()),
  };
}
