import { connect, type IClientOptions, type MqttClient } from "mqtt";
import { type Clock, realClock } from "../core/clock.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { closeClient } from "../core/mqtt.js";
import { retryDelay } from "../core/retry.js";
import type { OutboundQueue, QueueEntry } from "./queue.js";

/*
 * Drains one OutboundQueue to a broker: QoS 1, in queue order, at most `maxInflight` unacknowledged, an entry
 * deleted only after its PUBACK. One MQTT.js client per connection (no MQTT.js auto-reconnect): when a connection
 * is lost, its client is discarded with whatever it had in flight, and everything not acknowledged is published
 * again on the next connection, in order, as historical. An entry is historical when it was queued before the
 * current connection was established (it waited for the broker, or for a restart of glassd).
 */

export interface Outgoing {
  topic: string;
  payload: Buffer;
  retain?: boolean;
}

/** What a publisher speaks: plain JSON topics or Sparkplug B. */
export interface Encoder {
  /** Client options of a new connection (the will, e.g. NDEATH with the next bdSeq). */
  connectOptions(): Partial<IClientOptions>;
  /** Called once the connection is up, before any entry is published (e.g. NBIRTH). */
  onConnect?(client: MqttClient): void;
  /** Messages that carry `entry` (more than one when a rebirth must go first); none to skip it. */
  encode(entry: QueueEntry, historical: boolean): Outgoing[];
  /** Last words on a clean stop (e.g. NDEATH, "offline"). */
  lastWords?(): Outgoing | undefined;
  onMessage?(client: MqttClient, topic: string, payload: Buffer): void;
}

export interface PublisherStats {
  connected: boolean;
  connects: number;
  reconnects: number;
  messages_out: number;
  acked: number;
  replayed: number;
  publish_errors: number;
  inflight: number;
}

export class QueuePublisher {
  private client: MqttClient | undefined;
  private connectedAt = 0;
  /** Highest key handed to the current client. */
  private cursor = 0;
  private readonly inflight = new Set<number>();
  private readonly ackedKeys: number[] = [];
  /** Acknowledged, deletion not yet committed: never republished. */
  private readonly deleting = new Set<number>();
  private removing: Promise<void> | undefined;
  private pumping = false;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly c = { connects: 0, messages_out: 0, acked: 0, replayed: 0, publish_errors: 0 };
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly queue: OutboundQueue,
    private readonly encoder: Encoder,
    private readonly o: {
      url: string;
      base: IClientOptions;
      maxInflight: number;
      reconnectMs: number;
      logger?: Logger;
      clock?: Clock;
    },
  ) {
    this.clock = o.clock ?? realClock;
    this.log = o.logger ?? silentLogger;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  /** Wakes the pump (a new entry was queued). */
  kick(): void {
    if (this.client?.connected) this.pump();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      const w = this.encoder.lastWords?.();
      await closeClient(client, w && { topic: w.topic, payload: w.payload, retain: w.retain ?? false });
    }
    await this.removing;
  }

  stats(): PublisherStats {
    return {
      connected: this.client?.connected ?? false,
      connects: this.c.connects,
      reconnects: Math.max(0, this.c.connects - 1),
      messages_out: this.c.messages_out,
      acked: this.c.acked,
      replayed: this.c.replayed,
      publish_errors: this.c.publish_errors,
      inflight: this.inflight.size,
    };
  }

  private open(): void {
    if (this.stopped) return;
    const client = connect(this.o.url, { ...this.o.base, ...this.encoder.connectOptions(), reconnectPeriod: 0 });
    this.client = client;
    client.on("error", (err) => this.log.warn({ err: err.message }, "outbound MQTT client error"));
    client.on("connect", () => {
      if (this.client !== client) return;
      this.c.connects++;
      this.attempt = 0;
      this.connectedAt = this.clock.now();
      this.cursor = 0;
      this.inflight.clear();
      this.encoder.onConnect?.(client);
      this.pump();
    });
    client.on("message", (topic, payload) => this.encoder.onMessage?.(client, topic, payload));
    client.on("close", () => {
      if (this.client !== client) return;
      // Discard this connection and what it had in flight: it is all republished on the next one.
      this.client = undefined;
      this.inflight.clear();
      client.end(true);
      if (this.stopped) return;
      const delay = retryDelay(
        { initialDelayMs: this.o.reconnectMs, maxDelayMs: 30_000, maxRetry: Infinity, jitter: 0.2 },
        this.attempt++,
      );
      this.timer = setTimeout(() => this.open(), delay);
    });
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const client = this.client;
      while (client?.connected && this.client === client && this.inflight.size < this.o.maxInflight) {
        const batch = this.queue.peek(this.cursor, this.o.maxInflight - this.inflight.size);
        if (batch.length === 0) break;
        for (const { key, entry } of batch) {
          this.cursor = key;
          if (this.deleting.has(key)) continue;
          const historical = entry.enqueued_at < this.connectedAt;
          const msgs = this.encoder.encode(entry, historical);
          if (msgs.length === 0) {
            this.acked(key);
            continue;
          }
          if (historical) this.c.replayed++;
          this.inflight.add(key);
          let left = msgs.length;
          for (const m of msgs) {
            this.c.messages_out++;
            client.publish(m.topic, m.payload, { qos: 1, retain: m.retain ?? false }, (err) => {
              if (this.client !== client) return;
              if (err) {
                this.c.publish_errors++;
                return;
              }
              if (--left === 0) {
                this.inflight.delete(key);
                this.acked(key);
                this.pump();
              }
            });
          }
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private acked(key: number): void {
    this.c.acked++;
    this.ackedKeys.push(key);
    this.deleting.add(key);
    if (!this.removing) this.removing = this.flushRemovals();
  }

  /** Deletes acknowledged entries in batches (one transaction per batch). */
  private async flushRemovals(): Promise<void> {
    try {
      while (this.ackedKeys.length) {
        const keys = this.ackedKeys.splice(0);
        try {
          await this.queue.remove(keys);
        } finally {
          for (const k of keys) this.deleting.delete(k);
        }
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, "outbound: could not delete acknowledged entries");
    } finally {
      this.removing = undefined;
    }
  }
}
