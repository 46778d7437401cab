import { readFileSync } from "node:fs";
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../core/logger.js";
import { PlantUsageError } from "./errors.js";

/** How to reach the broker (shared by the JSON publisher and the Sparkplug edge node). */
export interface MqttBrokerOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL. */
  url: string;
  username?: string;
  password?: string;
  /** PEM CA bundle to verify the broker's certificate (mqtts/wss). */
  caFile?: string;
  /** PEM client certificate and key for brokers that require one. */
  certFile?: string;
  keyFile?: string;
  /** Reconnect every this many ms after the connection is lost. Default 2000. */
  reconnectPeriodMs?: number;
}

export const MQTT_PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:", "tcp:", "ssl:", "tls:"];

/** Checks a broker URL; throws naming the flag. */
export function checkBrokerUrl(url: string, flag = "--mqtt-url"): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PlantUsageError(flag, `"${url}" is not a URL; e.g. mqtt://127.0.0.1:1883 or mqtts://broker:8883`);
  }
  if (!MQTT_PROTOCOLS.includes(u.protocol)) {
    throw new PlantUsageError(flag, `unsupported scheme "${u.protocol}" (use mqtt:, mqtts:, ws: or wss:)`);
  }
  if (u.username || u.password) {
    throw new PlantUsageError(flag, "put credentials in --mqtt-user-file, not in the URL (argv is visible in ps)");
  }
  return u;
}

/**
 * Connects an MQTT 5 client with a clean start (no broker-side session: the plant publishes, it keeps no
 * subscriptions worth resuming) and the given will. Returns at once; the client connects and reconnects on its own.
 */
export function connectBroker(
  b: MqttBrokerOptions,
  clientId: string,
  extra: Partial<IClientOptions>,
  log: Logger,
): MqttClient {
  const read = (f: string | undefined, flag: string) => {
    if (!f) return undefined;
    try {
      return readFileSync(f);
    } catch (err) {
      throw new PlantUsageError(flag, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? err}`, err);
    }
  };
  const opts: IClientOptions = {
    clientId,
    protocolVersion: 5,
    clean: true,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: b.reconnectPeriodMs ?? 2000,
    ...(b.username !== undefined ? { username: b.username, password: b.password } : {}),
    ...(b.caFile ? { ca: read(b.caFile, "--mqtt-ca") } : {}),
    ...(b.certFile ? { cert: read(b.certFile, "--mqtt-cert") } : {}),
    ...(b.keyFile ? { key: read(b.keyFile, "--mqtt-key") } : {}),
    ...extra,
  };
  const client = connect(b.url, opts);
  client.on("error", (err) => log.warn({ err: err.message, client_id: clientId }, "MQTT client error"));
  client.on("offline", () => log.warn({ client_id: clientId }, "MQTT broker unreachable; retrying"));
  return client;
}

export { closeClient, firstConnect } from "../../core/mqtt.js";
