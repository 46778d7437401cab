import type { MqttClient } from "mqtt";
import { type Logger, silentLogger } from "../../core/logger.js";
import type { InspectionEvent, RawSample } from "../../core/types.js";
import { closeClient, connectBroker, firstConnect, type MqttBrokerOptions } from "./mqtt-connection.js";
import type { Plant, PlantListener } from "./plant.js";

/*
 * Plain JSON over MQTT, as an IoT gateway on the line would publish it:
 *   glass/<line>/sensors/<tag>   {"value": 1501.2, "ts": 1767225600000, "quality": "good", "seq": 42}   QoS 1
 *   glass/<line>/inspection      {"item_id": 7, "ts": …, "ok": false, "defects": [{class, size_mm, x, y, severity}],
 *                                 "seq": 7}                                                          QoS 1
 *   glass/<line>/status          "online" / "offline" (retained; "offline" is also the will)          QoS 1
 * `ts` is the twin's (simulated) time in ms since the epoch. `seq` counts per topic from 1 and restarts at 1
 * when the plant restarts, so a subscriber finds a gap on any topic it follows. A tag whose dictionary entry
 * names another topic (sources.mqtt.topic, with sources.mqtt.path for the value) is published there.
 * Every sample is published (no coalescing); if the broker cannot keep up, messages beyond `maxInflight`
 * unacknowledged ones are dropped and counted (the plant does not slow down for a broker).
 */

export interface PlantMqttJsonOptions {
  broker: MqttBrokerOptions;
  clientId?: string;
  /** Most unacknowledged QoS 1 messages; more are dropped (counted). Default 20 000. */
  maxInflight?: number;
  /** How long start() waits for the first connection before carrying on (retries continue). Default 5000 ms. */
  connectWaitMs?: number;
  logger?: Logger;
}

interface TopicOf {
  topic: string;
  path: string[];
}

export class PlantMqttJson implements PlantListener {
  private readonly plant: Plant;
  private readonly opts: PlantMqttJsonOptions;
  private readonly log: Logger;
  private client: MqttClient | undefined;
  private readonly topics = new Map<string, TopicOf>();
  private readonly seq = new Map<string, number>();
  private readonly statusTopic: string;
  private readonly inspectionTopic: string;
  private inflight = 0;
  private removeListener: (() => void) | undefined;
  private readonly counters = { published: 0, acked: 0, dropped: 0, errors: 0 };

  constructor(plant: Plant, opts: PlantMqttJsonOptions) {
    this.plant = plant;
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    const line = plant.lineId;
    for (const t of plant.tags) {
      const m = t.sources.mqtt;
      this.topics.set(t.id, {
        topic: m?.topic ?? `glass/${line}/sensors/${t.id}`,
        path: (m?.path ?? "value").split("."),
      });
    }
    this.statusTopic = `glass/${line}/status`;
    this.inspectionTopic = `glass/${line}/inspection`;
  }

  /** Topic of a tag's samples. */
  topicOf(tag: string): string | undefined {
    return this.topics.get(tag)?.topic;
  }

  async start(): Promise<void> {
    const client = connectBroker(
      this.opts.broker,
      this.opts.clientId ?? `glassd-twin-${this.plant.lineId}-json`,
      { will: { topic: this.statusTopic, payload: Buffer.from("offline"), qos: 1, retain: true } },
      this.log,
    );
    this.client = client;
    client.on("connect", () => {
      client.publish(this.statusTopic, "online", { qos: 1, retain: true });
      this.log.info({ url: this.opts.broker.url }, "MQTT JSON publisher connected");
    });
    this.removeListener = this.plant.addListener(this);
    if (!(await firstConnect(client, this.opts.connectWaitMs ?? 5000))) {
      this.log.warn({ url: this.opts.broker.url }, "MQTT broker not reachable yet; publishing once it is");
    }
  }

  /**
   * Publishes "offline" and disconnects, waiting (bounded) for in-flight messages; if the broker is too slow,
   * drops the connection so its will says "offline" instead. Messages still unacknowledged then are lost.
   * Idempotent.
   */
  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await closeClient(client, { topic: this.statusTopic, payload: Buffer.from("offline"), retain: true });
  }

  stats() {
    return { ...this.counters, inflight: this.inflight };
  }

  onSamples(batch: readonly RawSample[]): void {
    for (const s of batch) {
      const t = this.topics.get(s.tag);
      if (!t) continue;
      const body: Record<string, unknown> = { ts: s.ts, quality: s.quality ?? "good", seq: this.next(t.topic) };
      setPath(body, t.path, typeof s.value === "number" && Number.isFinite(s.value) ? s.value : null);
      this.publish(t.topic, body);
    }
  }

  onInspection(e: InspectionEvent): void {
    this.publish(this.inspectionTopic, {
      item_id: e.item_id,
      ts: e.ts,
      ok: e.ok,
      defects: e.defects,
      seq: this.next(this.inspectionTopic),
    });
  }

  private next(topic: string): number {
    const n = (this.seq.get(topic) ?? 0) + 1;
    this.seq.set(topic, n);
    return n;
  }

  private publish(topic: string, body: object): void {
    const client = this.client;
    if (!client || this.inflight >= (this.opts.maxInflight ?? 20_000)) {
      this.counters.dropped++;
      return;
    }
    this.inflight++;
    this.counters.published++;
    client.publish(topic, JSON.stringify(body), { qos: 1 }, (err) => {
      this.inflight--;
      if (err) this.counters.errors++;
      else this.counters.acked++;
    });
  }
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let o = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (typeof o[k] !== "object" || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
}
