import { readFileSync } from "node:fs";
import type { IClientOptions } from "mqtt";
import { ConfigError } from "../../core/errors.js";
import type { MqttBrokerConfig } from "./config.js";

/**
 * MQTT.js client options from a broker config section: TLS material and the password read from their files (an
 * unreadable file is a ConfigError naming the field; the password itself never appears in an error or a log).
 * `root` is the config path of the section, e.g. "/source/mqtt/broker".
 */
export function brokerClientOptions(b: MqttBrokerConfig, clientId: string, root: string): IClientOptions {
  let url: URL;
  try {
    url = new URL(b.url);
  } catch {
    throw new ConfigError([{ path: `${root}/url`, message: `"${b.url}" is not a URL` }]);
  }
  if (url.username || url.password)
    throw new ConfigError([
      { path: `${root}/url`, message: "credentials do not belong in the URL; use username and password_file" },
    ]);
  if ((b.cert_file === undefined) !== (b.key_file === undefined))
    throw new ConfigError([{ path: root, message: "cert_file and key_file must be given together" }]);
  if (b.password_file !== undefined && b.username === undefined)
    throw new ConfigError([{ path: `${root}/username`, message: "password_file needs a username" }]);
  const read = (file: string | undefined, field: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
      throw new ConfigError([{ path: `${root}/${field}`, message: `cannot read ${file} (${code})` }]);
    }
  };
  const password = read(b.password_file, "password_file")
    ?.toString("utf8")
    .replace(/\r?\n$/, "");
  const ca = read(b.ca_file, "ca_file");
  const cert = read(b.cert_file, "cert_file");
  const key = read(b.key_file, "key_file");
  return {
    clientId,
    protocolVersion: 5,
    keepalive: b.keepalive_s,
    connectTimeout: b.connect_timeout_ms,
    reconnectPeriod: b.reconnect_ms,
    rejectUnauthorized: b.reject_unauthorized,
    ...(b.username !== undefined ? { username: b.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
}

/** The broker URL without anything secret, for logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "<invalid url>";
  }
}
