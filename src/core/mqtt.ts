import type { MqttClient } from "mqtt";

/* MQTT.js session helpers shared by the twin's plant publishers, glassd's MQTT source and its outbound publishers. */

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
