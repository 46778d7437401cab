import type { IClientOptions, MqttClient } from "mqtt";
import { nextSparkplugSeq, REBIRTH_METRIC, sparkplug, sparkplugTopic, type UMetric } from "../core/sparkplug.js";
import type { Encoder, Outgoing } from "./publisher.js";
import type { QueueEntry } from "./queue.js";

/*
 * The two outbound dialects.
 *
 * Plain JSON: one topic per kind; the payload object as JSON with `is_historical` added (a non-object payload is
 * sent as {"value": …}). An empty topic switches a kind off (its entries are acknowledged without publishing).
 *
 * Sparkplug B edge node: NBIRTH (seq 0, bdSeq, Node Control/Rebirth, every metric known so far), NDATA per entry,
 * NDEATH with the same bdSeq as the will. Each entry is flattened into metrics "<kind>/<path>" (numbers → Double,
 * booleans → Boolean, strings → String; arrays by index; at most MAX_METRICS per entry); a metric name not yet
 * born triggers a new NBIRTH first. A replayed entry's metrics carry `is_historical`. bdSeq advances on every new
 * connection and is persisted by the caller. NDATA go with QoS 1 (Sparkplug says 0): the queue deletes an entry
 * only after a PUBACK, and QoS 0 has none.
 */

export class JsonEncoder implements Encoder {
  constructor(
    private readonly topics: Record<string, string>,
    private readonly retain: boolean,
    private readonly status?: { topic: string },
  ) {}

  connectOptions(): Partial<IClientOptions> {
    return this.status
      ? { will: { topic: this.status.topic, payload: Buffer.from("offline"), qos: 1, retain: true } }
      : {};
  }

  onConnect(client: MqttClient): void {
    if (this.status) client.publish(this.status.topic, "online", { qos: 1, retain: true });
  }

  lastWords(): Outgoing | undefined {
    return this.status ? { topic: this.status.topic, payload: Buffer.from("offline"), retain: true } : undefined;
  }

  encode(entry: QueueEntry, historical: boolean): Outgoing[] {
    const topic = this.topics[entry.kind];
    if (!topic) return [];
    const p = entry.payload;
    const body =
      typeof p === "object" && p !== null && !Array.isArray(p)
        ? { ...(p as object), is_historical: historical }
        : { value: p, is_historical: historical };
    return [{ topic, payload: Buffer.from(JSON.stringify(body)), retain: this.retain }];
  }
}

const MAX_METRICS = 256;
const MAX_DEPTH = 6;

interface MetricDef {
  alias: number;
  type: "Double" | "Boolean" | "String";
  last: number | boolean | string;
  ts: number;
}

export class SparkplugEncoder implements Encoder {
  private readonly metrics = new Map<string, MetricDef>();
  private seq = 0;
  private nextAlias = 2;
  /** Connections so far in this process; the bdSeq of a connection is (base + connects) mod 256. */
  private bdSeq: number;
  private readonly topic: (type: "NBIRTH" | "NDATA" | "NDEATH" | "NCMD") => string;
  births = 0;

  constructor(
    group: string,
    node: string,
    lastBdSeq: number | undefined,
    private readonly persistBdSeq: (bdSeq: number) => void,
    private readonly now: () => number,
  ) {
    this.topic = (type) => sparkplugTopic(group, type, node);
    this.bdSeq = lastBdSeq === undefined ? 255 : lastBdSeq;
  }

  get currentBdSeq(): number {
    return this.bdSeq;
  }

  connectOptions(): Partial<IClientOptions> {
    // A new connection, a new bdSeq: never the one of an NDEATH already announced.
    this.bdSeq = nextSparkplugSeq(this.bdSeq);
    this.persistBdSeq(this.bdSeq);
    return {
      clean: true,
      will: { topic: this.topic("NDEATH"), payload: this.death(), qos: 1, retain: false },
    };
  }

  onConnect(client: MqttClient): void {
    client.subscribe(this.topic("NCMD"), { qos: 1 });
    client.publish(this.topic("NBIRTH"), this.birth(), { qos: 1 });
  }

  onMessage(client: MqttClient, topic: string, payload: Buffer): void {
    if (topic !== this.topic("NCMD")) return;
    try {
      const m = sparkplug.decodePayload(payload).metrics ?? [];
      if (m.some((x) => (x.name === REBIRTH_METRIC || Number(x.alias) === 1) && x.value === true))
        client.publish(this.topic("NBIRTH"), this.birth(), { qos: 1 });
    } catch {
      // Not Sparkplug: nothing to do.
    }
  }

  lastWords(): Outgoing {
    return { topic: this.topic("NDEATH"), payload: this.death() };
  }

  encode(entry: QueueEntry, historical: boolean): Outgoing[] {
    const flat: Array<[string, number | boolean | string]> = [];
    flatten(entry.kind, entry.payload, flat, 0);
    const out: Outgoing[] = [];
    let fresh = false;
    for (const [name, v] of flat) {
      const type = typeof v === "number" ? "Double" : typeof v === "boolean" ? "Boolean" : "String";
      const def = this.metrics.get(name);
      if (!def || def.type !== type) {
        this.metrics.set(name, { alias: def?.alias ?? this.nextAlias++, type, last: v, ts: entry.enqueued_at });
        fresh = true;
      }
    }
    if (fresh) out.push({ topic: this.topic("NBIRTH"), payload: this.birth() });
    const metrics: UMetric[] = flat.map(([name, v]) => {
      const def = this.metrics.get(name)!;
      def.last = v;
      def.ts = entry.enqueued_at;
      return {
        alias: def.alias,
        timestamp: entry.enqueued_at,
        type: def.type,
        value: v,
        ...(historical ? { isHistorical: true } : {}),
      };
    });
    this.seq = nextSparkplugSeq(this.seq);
    out.push({
      topic: this.topic("NDATA"),
      payload: Buffer.from(sparkplug.encodePayload({ timestamp: this.now(), seq: this.seq, metrics })),
    });
    return out;
  }

  private birth(): Buffer {
    this.seq = 0;
    this.births++;
    const ts = this.now();
    const metrics: UMetric[] = [
      { name: "bdSeq", timestamp: ts, type: "Int64", value: this.bdSeq },
      { name: REBIRTH_METRIC, alias: 1, timestamp: ts, type: "Boolean", value: false },
      ...[...this.metrics].map(([name, d]) => ({ name, alias: d.alias, timestamp: d.ts, type: d.type, value: d.last })),
    ];
    return Buffer.from(sparkplug.encodePayload({ timestamp: ts, seq: 0, metrics }));
  }

  private death(): Buffer {
    return Buffer.from(
      sparkplug.encodePayload({
        timestamp: this.now(),
        metrics: [{ name: "bdSeq", type: "Int64", value: this.bdSeq }],
      }),
    );
  }
}

function flatten(prefix: string, v: unknown, out: Array<[string, number | boolean | string]>, depth: number): void {
  if (out.length >= MAX_METRICS) return;
  if (typeof v === "number") {
    if (Number.isFinite(v)) out.push([prefix, v]);
  } else if (typeof v === "boolean" || typeof v === "string") out.push([prefix, v]);
  else if (typeof v === "object" && v !== null && depth < MAX_DEPTH) {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [k, x] of entries) flatten(`${prefix}/${k}`, x, out, depth + 1);
  }
}
