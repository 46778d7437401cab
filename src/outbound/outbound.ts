import { type Clock, realClock } from "../core/clock.js";
import { ValidationError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";
import type { Service } from "../core/service.js";
import { throwIfAborted } from "../core/service.js";
import { OUTBOUND_KINDS, type OutboundKind, type OutboundMqttConfig, withLine } from "../ingest/mqtt/config.js";
import { brokerClientOptions } from "../ingest/mqtt/connection.js";
import type { Store } from "../storage/index.js";
import { JsonEncoder, SparkplugEncoder } from "./encoders.js";
import { type PublisherStats, QueuePublisher } from "./publisher.js";
import { OutboundQueue, type QueueStats } from "./queue.js";

/*
 * glassd's results out over MQTT, store-and-forward: `publish(kind, payload)` puts the message in a durable LMDB
 * queue per target (plain JSON topics, Sparkplug B edge node) in one transaction and resolves once that is
 * committed; each target's publisher drains its queue in order with QoS 1 and deletes an entry only after the
 * broker's PUBACK. While the broker is away the queues fill (oldest dropped beyond `queue_max_bytes`, counted);
 * when it returns they are replayed in order, flagged as historical.
 */

export interface OutboundOptions {
  config: OutboundMqttConfig;
  lineId: string;
  store: Pick<Store, "openDatabase" | "transaction">;
  logger?: Logger;
  clock?: Clock;
}

export interface OutboundStats {
  enabled: boolean;
  published: number;
  dropped_total: number;
  targets: Record<string, PublisherStats & { queue: QueueStats }>;
}

interface Target {
  name: string;
  queue: OutboundQueue;
  publisher: QueuePublisher;
}

const MAX_PAYLOAD_BYTES = 1_048_576;

export class Outbound implements Service {
  readonly name = "outbound";
  private readonly targets: Target[] = [];
  private readonly clock: Clock;
  private readonly log: Logger;
  private published = 0;
  private started = false;
  private spEncoder: SparkplugEncoder | undefined;

  constructor(private readonly o: OutboundOptions) {
    this.clock = o.clock ?? realClock;
    this.log = o.logger ?? silentLogger;
  }

  async start(signal: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const cfg = this.o.config;
    if (!cfg.enabled || this.started) return;
    this.started = true;
    const line = this.o.lineId;
    const b = cfg.broker;
    const baseId = b.client_id ?? `glassd-${line}-out`.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 60);
    const root = "/outbound/mqtt/broker";
    const topics: Record<string, string> = {};
    for (const k of OUTBOUND_KINDS) topics[k] = withLine(cfg.topics[k], line);
    const common = {
      url: b.url,
      maxInflight: cfg.max_inflight,
      reconnectMs: b.reconnect_ms,
      logger: this.log,
      clock: this.clock,
    };
    const jsonQueue = new OutboundQueue(this.o.store, "json", cfg.queue_max_bytes);
    const status = cfg.status_topic ? { topic: withLine(cfg.status_topic, line) } : undefined;
    this.targets.push({
      name: "json",
      queue: jsonQueue,
      publisher: new QueuePublisher(jsonQueue, new JsonEncoder(topics, cfg.retain, status), {
        ...common,
        base: { ...brokerClientOptions(b, baseId, root), clean: true },
      }),
    });
    if (cfg.sparkplug.enabled) {
      const sq = new OutboundQueue(this.o.store, "sparkplug", cfg.queue_max_bytes);
      const stateDb = this.o.store.openDatabase<number, string>("outbound.sparkplug.state");
      const enc = new SparkplugEncoder(
        cfg.sparkplug.group_id,
        withLine(cfg.sparkplug.node_id, line),
        stateDb.get("bdSeq"),
        (bdSeq) => void this.o.store.transaction(() => stateDb.putSync("bdSeq", bdSeq)),
        () => this.clock.now(),
      );
      this.spEncoder = enc;
      this.targets.push({
        name: "sparkplug",
        queue: sq,
        publisher: new QueuePublisher(sq, enc, {
          ...common,
          base: brokerClientOptions(b, `${baseId}-spb`.slice(0, 64), root),
        }),
      });
    }
    for (const t of this.targets) t.publisher.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.publisher.stop()));
  }

  /**
   * Queues a result for every target; resolves once it is durable in LMDB (not when it is delivered). Rejects with
   * ValidationError for an unknown kind or a payload that is not JSON or larger than 1 MiB.
   */
  async publish(kind: OutboundKind, payload: unknown): Promise<void> {
    if (!(OUTBOUND_KINDS as readonly string[]).includes(kind))
      throw new ValidationError("unknown outbound kind", [
        { path: "kind", message: `must be one of ${OUTBOUND_KINDS.join(", ")}` },
      ]);
    let text: string | undefined;
    try {
      text = JSON.stringify(payload);
    } catch (e) {
      throw new ValidationError("outbound payload is not JSON", [{ path: "payload", message: (e as Error).message }]);
    }
    if (text === undefined)
      throw new ValidationError("outbound payload is not JSON", [{ path: "payload", message: "undefined" }]);
    if (text.length > MAX_PAYLOAD_BYTES)
      throw new ValidationError("outbound payload too large", [
        { path: "payload", message: `${text.length} bytes > 1 MiB` },
      ]);
    if (!this.started) return;
    const body = JSON.parse(text) as unknown;
    const now = this.clock.now();
    let dropped = 0;
    await this.o.store.transaction(() => {
      for (const t of this.targets) dropped += t.queue.stageSync(kind, body, now);
    });
    this.published++;
    if (dropped) this.log.warn({ dropped }, "outbound queue over its byte budget: oldest messages dropped");
    for (const t of this.targets) t.publisher.kick();
  }

  stats(): OutboundStats {
    const targets: OutboundStats["targets"] = {};
    let dropped = 0;
    for (const t of this.targets) {
      const q = t.queue.stats();
      dropped += q.dropped;
      targets[t.name] = { ...t.publisher.stats(), queue: q };
    }
    return { enabled: this.o.config.enabled, published: this.published, dropped_total: dropped, targets };
  }

  /** bdSeq of glassd's Sparkplug edge node session (undefined when Sparkplug is off). */
  get sparkplugBdSeq(): number | undefined {
    return this.spEncoder?.currentBdSeq;
  }
}
