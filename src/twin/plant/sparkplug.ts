import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { MqttClient } from "mqtt";
import { type Logger, silentLogger } from "../../core/logger.js";
import {
  QUALITY_CODE,
  REBIRTH_METRIC as REBIRTH,
  sparkplug as sp,
  type UMetric,
  type UPayload,
} from "../../core/sparkplug.js";
import { DEFECT_CLASSES, type InspectionEvent, type RawSample } from "../../core/types.js";
import { closeClient, connectBroker, firstConnect, type MqttBrokerOptions } from "./mqtt-connection.js";
import type { Plant, PlantListener } from "./plant.js";

/*
 * The plant as a Sparkplug B edge node (Eclipse Tahu's sparkplug-payload does the protobuf encoding).
 *
 * Topics: spBv1.0/<group>/NBIRTH|NDATA|NDEATH|NCMD/<node> and, in the "devices" layout, DBIRTH|DDATA/<node>/<device>
 * with one device per process stage (batch, furnace, forming, annealing, environment) plus "mik_1". In the
 * "node" layout every metric belongs to the node itself and is named "<stage>/<tag>".
 *
 * Session rules (Sparkplug 3.0):
 *   - MQTT 5, clean start, NDEATH registered as the will (QoS 1, not retained) with the bdSeq of this connection;
 *     the NBIRTH that follows carries the same bdSeq. bdSeq goes up by one (mod 256) on every new CONNECT and is
 *     persisted (bdSeqFile), so a restarted plant does not reuse the bdSeq of the NDEATH that announced its death.
 *   - NBIRTH has seq 0; every later NDATA/DBIRTH/DDATA increments seq by one, wrapping 255 → 0.
 *   - NBIRTH carries bdSeq (Int64), "Node Control/Rebirth" (Boolean) and the node's metrics; each DBIRTH carries
 *     all of its device's metrics with their current values. Every metric has a name and an alias in births;
 *     data messages carry the alias only. Aliases are unique across the node and its devices.
 *   - NCMD "Node Control/Rebirth" = true → NBIRTH (seq 0, same bdSeq) and every DBIRTH again.
 *   - A clean stop publishes NDEATH itself before disconnecting (the will only fires on an unclean loss).
 *   - Births and data are sent only while connected (QoS 0, never queued offline), so a host never sees data
 *     of an old session after a new NBIRTH.
 * Metrics: process tags (Double, with engUnit/engLow/engHigh properties = unit and normal band; a sample of
 * uncertain or bad quality carries a "Quality" Int32 property, 64 or 0, as OPC DA quality codes), setpoints
 * "<tag>_sp", node metrics "Plant/remote_mode", "Plant/heartbeat_timeout_s", and the MIK-1 counters.
 */

export type SparkplugLayout = "devices" | "node";

export interface SparkplugOptions {
  broker: MqttBrokerOptions;
  groupId: string;
  nodeId: string;
  layout?: SparkplugLayout;
  /** Where the last bdSeq is kept between runs; none = start at 0 every run. */
  bdSeqFile?: string;
  clientId?: string;
  connectWaitMs?: number;
  /** Data messages are dropped (counted) while more than this many bytes wait in the socket. Default 8 MiB. */
  maxBufferedBytes?: number;
  logger?: Logger;
}

export { SPARKPLUG_ID } from "../../core/sparkplug.js";

interface MetricDef {
  name: string;
  alias: number;
  type: "Double" | "Boolean" | "UInt32";
  /** Device id, or undefined for a node metric. */
  device: string | undefined;
  properties?: UMetric["properties"];
  current: () => number | boolean;
}

export class SparkplugEdgeNode implements PlantListener {
  private readonly plant: Plant;
  private readonly opts: SparkplugOptions;
  private readonly log: Logger;
  private readonly layout: SparkplugLayout;
  private readonly maxBufferedBytes: number;
  private client: MqttClient | undefined;
  private readonly metrics: MetricDef[] = [];
  private readonly byName = new Map<string, MetricDef>();
  private readonly devices: string[] = [];
  private bdSeq = 0;
  private seq = 0;
  private born = false;
  private removeListener: (() => void) | undefined;
  private readonly counters = { births: 0, messages: 0, dropped: 0, rebirths: 0, connects: 0 };

  constructor(plant: Plant, opts: SparkplugOptions) {
    this.plant = plant;
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    this.layout = opts.layout ?? "devices";
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.defineMetrics();
    this.bdSeq = readBdSeq(opts.bdSeqFile);
  }

  private topic(type: string, device?: string): string {
    const base = `spBv1.0/${this.opts.groupId}/${type}/${this.opts.nodeId}`;
    return device === undefined ? base : `${base}/${device}`;
  }

  /** Current bdSeq (of this MQTT session). */
  get currentBdSeq(): number {
    return this.bdSeq;
  }

  /** Device ids in the order their DBIRTHs are sent (empty in the "node" layout). */
  deviceIds(): string[] {
    return this.devices.slice();
  }

  /** Metric names and aliases, as announced in the births. */
  aliases(): Map<string, number> {
    return new Map(this.metrics.map((m) => [m.device ? `${m.device}:${m.name}` : m.name, m.alias]));
  }

  async start(): Promise<void> {
    writeBdSeq(this.opts.bdSeqFile, this.bdSeq);
    const client = connectBroker(
      this.opts.broker,
      this.opts.clientId ?? `glassd-twin-${this.opts.groupId}-${this.opts.nodeId}`,
      { will: this.will(), queueQoSZero: false },
      this.log,
    );
    this.client = client;
    client.on("connect", () => {
      this.counters.connects++;
      client.subscribe(this.topic("NCMD"), { qos: 1 });
      this.births();
      this.log.info({ bdSeq: this.bdSeq, url: this.opts.broker.url }, "Sparkplug edge node born");
    });
    client.on("close", () => {
      this.born = false;
    });
    // Before every new CONNECT: a new bdSeq, and the will that announces this session's death.
    client.on("reconnect", () => {
      this.bdSeq = (this.bdSeq + 1) % 256;
      writeBdSeq(this.opts.bdSeqFile, this.bdSeq);
      client.options.will = this.will();
    });
    client.on("message", (topic, payload) => this.onMessage(topic, payload));
    this.removeListener = this.plant.addListener(this);
    if (!(await firstConnect(client, this.opts.connectWaitMs ?? 5000))) {
      this.log.warn({ url: this.opts.broker.url }, "MQTT broker not reachable yet; the node is born once it is");
    }
  }

  /**
   * Publishes NDEATH and disconnects; if the broker does not acknowledge it in time, drops the connection so the
   * will (the same NDEATH) is published instead. Idempotent.
   */
  async stop(): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    const client = this.client;
    this.client = undefined;
    this.born = false;
    if (!client) return;
    await closeClient(client, {
      topic: this.topic("NDEATH"),
      payload: Buffer.from(this.deathPayload()),
      retain: false,
    });
  }

  stats() {
    return { ...this.counters, bdSeq: this.bdSeq, seq: this.seq, born: this.born };
  }

  // --- PlantListener ---

  onSamples(batch: readonly RawSample[]): void {
    const groups = new Map<string | undefined, UMetric[]>();
    for (const s of batch) {
      const m = this.byName.get(this.key(s.tag));
      if (!m) continue;
      const value = typeof s.value === "number" && Number.isFinite(s.value) ? s.value : null;
      const q = s.quality ?? "good";
      const metric: UMetric = { alias: m.alias, timestamp: s.ts, type: "Double", value };
      if (value === null) metric.isNull = true;
      if (q !== "good" || value === null) {
        metric.properties = { Quality: { type: "Int32", value: value === null ? 0 : QUALITY_CODE[q] } };
      }
      const list = groups.get(m.device);
      if (list) list.push(metric);
      else groups.set(m.device, [metric]);
    }
    for (const [device, metrics] of groups) this.data(device, metrics);
  }

  onSetpoint(tag: string, value: number, ts: number): void {
    const m = this.byName.get(this.key(`${tag}_sp`));
    if (m) this.data(m.device, [{ alias: m.alias, timestamp: ts, type: "Double", value }]);
  }

  onRemoteMode(remote: boolean, ts: number): void {
    const m = this.byName.get("Plant/remote_mode")!;
    this.data(undefined, [{ alias: m.alias, timestamp: ts, type: "Boolean", value: remote }]);
  }

  onInspection(e: InspectionEvent): void {
    const changed = ["items_inspected", "quality_score", "last_item_id"];
    if (!e.ok) changed.push("defective_items");
    for (const d of e.defects) changed.push(`defects_per_class/${d.class}`);
    const metrics: UMetric[] = [];
    let device: string | undefined;
    for (const name of new Set(changed)) {
      const m = this.byName.get(this.key(name, "mik_1"));
      if (!m) continue;
      device = m.device;
      metrics.push({ alias: m.alias, timestamp: e.ts, type: m.type, value: m.current() });
    }
    if (metrics.length) this.data(device, metrics);
  }

  // --- internals ---

  /** Lookup key of a metric: the tag (or setpoint) id for stage metrics, "<group>/<name>" in the node layout. */
  private key(name: string, group?: string): string {
    if (group === undefined) {
      const t = this.plant.tag(name) ?? (name.endsWith("_sp") ? this.plant.tag(name.slice(0, -3)) : undefined);
      group = t?.stage;
    }
    return `${group}/${name}`;
  }

  private defineMetrics(): void {
    const plant = this.plant;
    let alias = 0;
    const add = (
      group: string | undefined,
      name: string,
      type: MetricDef["type"],
      current: () => number | boolean,
      properties?: UMetric["properties"],
    ) => {
      const device = group !== undefined && this.layout === "devices" ? group : undefined;
      const metricName = group === undefined || device !== undefined ? name : `${group}/${name}`;
      if (device !== undefined && !this.devices.includes(device)) this.devices.push(device);
      const def: MetricDef = { name: metricName, alias: ++alias, type, device, current, properties };
      this.metrics.push(def);
      this.byName.set(group === undefined ? name : `${group}/${name}`, def);
    };
    add(undefined, REBIRTH, "Boolean", () => false);
    add(undefined, "Plant/remote_mode", "Boolean", () => plant.remote.isRemote());
    add(undefined, "Plant/heartbeat_timeout_s", "Double", () => plant.remote.timeoutMs / 1000);
    for (const t of plant.tags) {
      const props: UMetric["properties"] = {
        engUnit: { type: "String", value: t.unit },
        engLow: { type: "Double", value: t.normal.min },
        engHigh: { type: "Double", value: t.normal.max },
      };
      add(t.stage, t.id, "Double", () => plant.reading(t.id)?.value ?? Number.NaN, props);
      if (t.actuator && plant.writableTags().includes(t.id)) {
        add(t.stage, `${t.id}_sp`, "Double", () => plant.setpoint(t.id).value, {
          ...props,
          engLow: { type: "Double", value: t.actuator.min },
          engHigh: { type: "Double", value: t.actuator.max },
        });
      }
    }
    const mik = plant.mikCounters();
    add("mik_1", "items_inspected", "UInt32", () => mik.itemsInspected >>> 0);
    add("mik_1", "defective_items", "UInt32", () => mik.defectiveItems >>> 0);
    add("mik_1", "quality_score", "Double", () => mik.qualityScore);
    add("mik_1", "last_item_id", "UInt32", () => mik.lastItemId >>> 0);
    for (const c of DEFECT_CLASSES)
      add("mik_1", `defects_per_class/${c}`, "UInt32", () => mik.defectsPerClass[c] >>> 0);
  }

  private will() {
    return { topic: this.topic("NDEATH"), payload: Buffer.from(this.deathPayload()), qos: 1 as const, retain: false };
  }

  private deathPayload(): Uint8Array {
    return sp.encodePayload({
      timestamp: this.plant.now(),
      metrics: [{ name: "bdSeq", type: "Int64", value: this.bdSeq }],
    });
  }

  /** NBIRTH (seq 0) and every DBIRTH, with the current value of every metric. */
  private births(): void {
    const client = this.client;
    if (!client?.connected) return;
    const ts = this.plant.now();
    const birthMetric = (m: MetricDef): UMetric => {
      const v = m.current();
      const nan = typeof v === "number" && !Number.isFinite(v);
      return {
        name: m.name,
        alias: m.alias,
        timestamp: ts,
        type: m.type,
        value: nan ? null : v,
        ...(nan ? { isNull: true } : {}),
        ...(m.properties ? { properties: m.properties } : {}),
      };
    };
    this.seq = 0;
    const nodeMetrics: UMetric[] = [
      { name: "bdSeq", timestamp: ts, type: "Int64", value: this.bdSeq },
      ...this.metrics.filter((m) => m.device === undefined).map(birthMetric),
    ];
    client.publish(
      this.topic("NBIRTH"),
      Buffer.from(sp.encodePayload({ timestamp: ts, seq: 0, metrics: nodeMetrics })),
      {
        qos: 0,
      },
    );
    this.counters.births++;
    this.counters.messages++;
    for (const d of this.devices) {
      const payload: UPayload = {
        timestamp: ts,
        seq: this.nextSeq(),
        metrics: this.metrics.filter((m) => m.device === d).map(birthMetric),
      };
      client.publish(this.topic("DBIRTH", d), Buffer.from(sp.encodePayload(payload)), { qos: 0 });
      this.counters.messages++;
    }
    this.born = true;
  }

  private data(device: string | undefined, metrics: UMetric[]): void {
    const client = this.client;
    // QoS 0 goes straight to the socket: when the broker reads slower than the plant publishes, shed data rather
    // than buffer without bound (births and NDEATH are never shed).
    if (!client?.connected || !this.born || (client.stream?.writableLength ?? 0) > this.maxBufferedBytes) {
      this.counters.dropped++;
      return;
    }
    const payload: UPayload = { timestamp: this.plant.now(), seq: this.nextSeq(), metrics };
    client.publish(
      device === undefined ? this.topic("NDATA") : this.topic("DDATA", device),
      Buffer.from(sp.encodePayload(payload)),
      { qos: 0 },
    );
    this.counters.messages++;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % 256;
    return this.seq;
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic !== this.topic("NCMD")) return;
    let decoded: UPayload;
    try {
      decoded = sp.decodePayload(payload);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "NCMD payload is not Sparkplug B; ignored");
      return;
    }
    const rebirthAlias = this.byName.get(REBIRTH)!.alias;
    for (const m of decoded.metrics ?? []) {
      const isRebirth = m.name === REBIRTH || (m.name == null && Number(m.alias) === rebirthAlias);
      if (isRebirth && m.value === true) {
        this.counters.rebirths++;
        this.log.info("NCMD Node Control/Rebirth: publishing the births again");
        this.births();
        return;
      }
    }
    this.log.warn({ metrics: decoded.metrics?.map((m) => m.name ?? m.alias) }, "NCMD not supported; ignored");
  }
}

function readBdSeq(file: string | undefined): number {
  if (!file) return 0;
  try {
    const last = (JSON.parse(readFileSync(file, "utf8")) as { bdSeq?: unknown }).bdSeq;
    // The next session uses the next number, so it never repeats the bdSeq of the last NDEATH.
    return typeof last === "number" && Number.isInteger(last) ? (last + 1) % 256 : 0;
  } catch {
    return 0;
  }
}

function writeBdSeq(file: string | undefined, bdSeq: number): void {
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ bdSeq })}\n`);
  renameSync(tmp, file);
}
