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

/** Resolves on the first CONNACK, or after `timeoutMs` (false: still trying in the background). */
export function firstConnect(client: MqttClient, timeoutMs: number): Promise<boolean> {
  if (client.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off("connect", onConnect);
      resolve(ok);
    };
    const onConnect = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.on("connect", onConnect);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Ends a publisher's session. With `lastWords` (the same message as the will) it publishes them first (QoS 1) and,
 * once the broker acknowledged them, disconnects cleanly, waiting at most `timeoutMs` for in-flight messages.
 * If the broker does not acknowledge in time, the connection is dropped instead, so the broker publishes the will:
 * either way subscribers learn that the plant is gone (at worst twice), never not at all.
 */
export async function closeClient(
  client: MqttClient,
  lastWords: { topic: string; payload: Buffer; retain: boolean } | undefined,
  timeoutMs = 2000,
): Promise<void> {
  let clean = !lastWords;
  if (lastWords && client.connected) {
    clean = await Promise.race([
      client.publishAsync(lastWords.topic, lastWords.payload, { qos: 1, retain: lastWords.retain }).then(
        () => true,
        () => false,
      ),
      sleep(timeoutMs).then(() => false),
    ]);
  }
  if (clean) {
    const ended = await Promise.race([client.endAsync().then(() => true), sleep(timeoutMs).then(() => false)]);
    if (ended) return;
  }
  // Drop the socket without DISCONNECT: the broker then publishes the will.
  if (client.disconnecting) client.stream?.destroy();
  else client.end(true);
}
