import { createHash } from "node:crypto";
import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { TagConfig } from "../../config/schema.js";
import { type Clock, realClock } from "../../core/clock.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { closeClient, firstConnect } from "../../core/mqtt.js";
import { DEFAULT_RETRY, retryDelay } from "../../core/retry.js";
import { throwIfAborted } from "../../core/service.js";
import { SPARKPLUG_NAMESPACE, sparkplugTopic, stateTopic } from "../../core/sparkplug.js";
import type { RawSample } from "../../core/types.js";
import type { Rejected } from "../../storage/index.js";
import type { SampleSink, SampleSource } from "../ports.js";
import { type MqttSourceConfig, withLine } from "./config.js";
import { brokerClientOptions, safeUrl } from "./connection.js";
import { type DecodedRejection, type DecodedSample, JsonTopicMapper } from "./json.js";
import {
  emptySparkplugHostStats,
  rebirthPayload,
  SparkplugHost,
  type SparkplugHostStats,
  type SparkplugResult,
} from "./sparkplug-host.js";

/*
 * MQTT as a SampleSource: plain JSON topics on a persistent session (fixed client id, clean start off, QoS 1) and,
 * optionally, Sparkplug B as a host application on a second, clean-session connection (Sparkplug 3.0 requires clean
 * sessions for hosts; its STATE will is that connection's will, glassd's status will the first one's).
 *
 * Delivery guarantee: a QoS 1 message is acknowledged (PUBACK) only after every sample and rejection made from it
 * is durable in LMDB (the sink and the quarantine resolved). MQTT.js acknowledges a message when the callback of
 * `handleMessage` is called, and processes one message at a time while that callback is pending — that is its
 * documented backpressure route, but it means one LMDB commit (fsync) per message. So by default the source takes
 * each message in `handleMessage`, releases MQTT.js with a sentinel error (MQTT.js then sends no PUBACK and reads
 * on), batches what arrives while the previous commit runs (group commit) and sends the PUBACKs itself, in arrival
 * order, once the batch is durable. The broker's in-flight window (MQTT 5 Receive Maximum) bounds what is
 * unacknowledged; `maxPending` bounds the queue (beyond it the `handleMessage` callback is held, i.e. TCP
 * backpressure). `serialAcks: true` selects the plain documented route (one message per commit).
 *
 * A PUBACK whose connection has gone is not sent (the broker redelivers the message on the next connection, marked
 * DUP). A redelivered message whose exact bytes were made durable recently is acknowledged without storing it again;
 * after a restart of glassd it is stored again (at-least-once: duplicates are possible, losses are not).
 *
 * Sequence numbers: one per sample, per source, continuing from `state.lastSeq(id)` across restarts. Rejections
 * (bad JSON, missing path, …) are stored in the quarantine without a seq, through `quarantine` (normally
 * `(r) => store.appendBatch([], r)`); without it they go to the sink as raw samples the validator rejects.
 */

export interface MqttSourceOptions {
  config: MqttSourceConfig;
  lineId: string;
  tags: readonly TagConfig[];
  /** Where the last stored seq comes from (the Store). */
  state?: { lastSeq(source: string): number | undefined };
  /** Last stored seq when `state` is not given. Default 0. */
  startSeq?: number;
  /** Durable quarantine for what never became a sample. Resolves once committed. */
  quarantine?: (rejected: Rejected[]) => Promise<unknown>;
  logger?: Logger;
  clock?: Clock;
  /** How long start() waits for the first connection (retries continue in the background). Default 5000 ms. */
  connectWaitMs?: number;
  /** Acknowledge through MQTT.js's handleMessage callback, one message per commit. Default false (batched). */
  serialAcks?: boolean;
  /** Messages queued for the sink before MQTT.js is held back. Default 4 × max_batch. */
  maxPending?: number;
}

export interface MqttSourceStats {
  connected: boolean;
  sparkplug_connected: boolean;
  connects: number;
  reconnects: number;
  connection_losses: number;
  messages_in: number;
  messages_qos1: number;
  /** Messages on a subscribed topic that no rule covers (e.g. a retained status). */
  messages_unrouted: number;
  /** QoS 1 messages whose PUBACK waited for the LMDB commit. */
  acks_delayed: number;
  /** PUBACKs not sent because the connection was lost before the batch was durable (broker redelivers). */
  acks_abandoned: number;
  redelivered_duplicates: number;
  samples_out: number;
  batches: number;
  /** Largest batch (messages) made durable in one go. */
  max_batch_seen: number;
  quarantined: number;
  quarantined_by_reason: Record<string, number>;
  sink_errors: number;
  pending: number;
  backpressure_holds: number;
  last_seq: number;
  sparkplug: SparkplugHostStats & { rebirth_ncmd_sent: number };
}

interface Conn {
  kind: "json" | "sparkplug";
  client: MqttClient;
  /** Bumped on every 'close': a PUBACK belongs to the connection that delivered the message. */
  gen: number;
}

interface Entry {
  conn: Conn;
  gen: number;
  topic: string;
  payload: Buffer;
  qos: number;
  messageId: number | undefined;
  dup: boolean;
  receivedAt: number;
  /** Serial mode: MQTT.js's own callback (sends the PUBACK). */
  release?: () => void;
}

/** Tells MQTT.js "handled elsewhere": it then neither acknowledges nor waits, and reads the next packet. */
const DEFERRED = Object.freeze(new Error("glassd: PUBACK deferred until the sample is durable"));
const RECENT_DIGESTS = 8192;
const STOP_WAIT_MS = 5_000;
const SESSION_EXPIRY_S = 7 * 24 * 3600;

export class MqttSource implements SampleSource {
  readonly id: string;
  readonly name: string;
  private readonly cfg: MqttSourceConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly mapper: JsonTopicMapper | undefined;
  private readonly host: SparkplugHost | undefined;
  private readonly statusTopic: string;
  private readonly maxPending: number;
  private sink: SampleSink | undefined;
  private json: Conn | undefined;
  private spb: Conn | undefined;
  private seq = 0;
  private readonly pending: Entry[] = [];
  private readonly held: Array<() => void> = [];
  private draining: Promise<void> | undefined;
  private running = false;
  private started = false;
  private stopped = false;
  private readonly recent = new Set<string>();
  private readonly c = {
    connects: 0,
    connection_losses: 0,
    messages_in: 0,
    messages_qos1: 0,
    messages_unrouted: 0,
    acks_delayed: 0,
    acks_abandoned: 0,
    redelivered_duplicates: 0,
    samples_out: 0,
    batches: 0,
    max_batch_seen: 0,
    quarantined: 0,
    sink_errors: 0,
    backpressure_holds: 0,
    rebirth_ncmd_sent: 0,
  };
  private readonly byReason: Record<string, number> = {};

  constructor(private readonly opts: MqttSourceOptions) {
    this.cfg = opts.config;
    this.id = this.cfg.id;
    this.name = `mqtt source ${this.id}`;
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? realClock;
    this.statusTopic = withLine(this.cfg.status_topic, opts.lineId);
    this.maxPending = opts.maxPending ?? 4 * this.cfg.max_batch;
    if (this.cfg.json.enabled) {
      const rules = this.cfg.json.topics.map((r) => ({ ...r, filter: withLine(r.filter, opts.lineId) }));
      this.mapper = new JsonTopicMapper(rules, opts.tags);
    }
    if (this.cfg.sparkplug.enabled) {
      const tagIds = new Set(opts.tags.map((t) => t.id));
      const map = this.cfg.sparkplug.metric_tags;
      for (const [k, tag] of Object.entries(map))
        if (!tagIds.has(tag))
          throw new RangeError(`source.mqtt.sparkplug.metric_tags["${k}"]: "${tag}" is not in the tag dictionary`);
      const get = (k: string) => (Object.hasOwn(map, k) ? map[k] : undefined);
      this.host = new SparkplugHost({
        groups: this.cfg.sparkplug.group_ids,
        rebirthIntervalMs: this.cfg.sparkplug.rebirth_interval_ms,
        tagOf: (metric, node, device) => {
          const mapped =
            (device !== undefined ? (get(`${node}/${device}/${metric}`) ?? get(`${device}/${metric}`)) : undefined) ??
            get(`${node}/${metric}`) ??
            get(metric);
          if (mapped !== undefined) return mapped;
          if (tagIds.has(metric)) return metric;
          const last = metric.slice(metric.lastIndexOf("/") + 1);
          return tagIds.has(last) ? last : undefined;
        },
      });
    }
  }

  attach(sink: SampleSink): void {
    this.sink = sink;
  }

  /** Connects; resolves on the first CONNACK(s) or after connectWaitMs (retrying in the background). */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) return;
    throwIfAborted(signal);
    if (!this.sink) throw new RangeError("MqttSource: attach a sink before start");
    this.started = true;
    this.seq = this.opts.state ? (this.opts.state.lastSeq(this.id) ?? 0) : (this.opts.startSeq ?? 0);
    const b = this.cfg.broker;
    const baseId = b.client_id ?? `glassd-${this.opts.lineId}`.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 64);
    const root = "/source/mqtt/broker";
    const jsonOpts = brokerClientOptions(b, baseId, root);
    this.json = this.open("json", {
      ...jsonOpts,
      clean: false,
      resubscribe: false,
      properties: { sessionExpiryInterval: SESSION_EXPIRY_S, receiveMaximum: this.cfg.receive_maximum },
      will: { topic: this.statusTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    if (this.host) {
      const spOpts = brokerClientOptions(b, `${baseId}-spb`.slice(0, 64), root);
      const hostState = (online: boolean, ts: number) => Buffer.from(JSON.stringify({ online, timestamp: ts }));
      let birthTs = this.clock.now();
      const topic = stateTopic(this.cfg.sparkplug.host_id);
      this.spb = this.open("sparkplug", {
        ...spOpts,
        clean: true,
        resubscribe: false,
        properties: { sessionExpiryInterval: 0, receiveMaximum: this.cfg.receive_maximum },
        will: { topic, payload: hostState(false, birthTs), qos: 1, retain: true },
      });
      const client = this.spb.client;
      // Before every new CONNECT: a fresh timestamp, the same in the will and in the birth that follows.
      client.on("reconnect", () => {
        birthTs = this.clock.now();
        client.options.will = { topic, payload: hostState(false, birthTs), qos: 1, retain: true };
      });
      client.on("connect", () => {
        const groups = this.cfg.sparkplug.group_ids;
        const filters = groups.length
          ? groups.map((g) => `${SPARKPLUG_NAMESPACE}/${g}/#`)
          : [`${SPARKPLUG_NAMESPACE}/#`];
        client.subscribe(filters, { qos: 1 }, (err) => {
          if (err) {
            this.log.error({ err: err.message }, "Sparkplug subscription failed");
            return;
          }
          client.publish(topic, hostState(true, birthTs), { qos: 1, retain: true });
        });
      });
      client.on("close", () => this.host?.reset());
    }
    const waits = [this.json, this.spb]
      .filter((c): c is Conn => c !== undefined)
      .map((c) => firstConnect(c.client, this.opts.connectWaitMs ?? 5000));
    const onAbort = () => undefined;
    signal.addEventListener("abort", onAbort, { once: true });
    const ok = await Promise.all(waits);
    signal.removeEventListener("abort", onAbort);
    if (signal.aborted) {
      await this.stop();
      throwIfAborted(signal);
    }
    if (ok.some((x) => !x))
      this.log.warn({ url: safeUrl(b.url) }, "MQTT broker not reachable yet; ingesting once it is (retrying)");
  }

  private open(kind: Conn["kind"], options: IClientOptions): Conn {
    const client = connect(this.cfg.broker.url, options);
    const conn: Conn = { kind, client, gen: 0 };
    client.handleMessage = (packet, cb) => this.onPublish(conn, packet, cb);
    client.on("error", (err) => this.log.warn({ err: err.message, connection: kind }, "MQTT client error"));
    client.on("close", () => {
      conn.gen++;
    });
    client.on("offline", () => {
      this.c.connection_losses++;
      this.log.warn({ url: safeUrl(this.cfg.broker.url), connection: kind }, "MQTT broker unreachable; retrying");
    });
    client.on("connect", (connack) => {
      this.c.connects++;
      this.log.info(
        { url: safeUrl(this.cfg.broker.url), connection: kind, session_present: connack.sessionPresent },
        "MQTT connected",
      );
      if (kind !== "json") return;
      client.publish(this.statusTopic, "online", { qos: 1, retain: true });
      const filters = this.mapper?.filters ?? [];
      if (filters.length)
        client.subscribe(
          Object.fromEntries(filters.map((f) => [f, { qos: this.cfg.json.qos, rh: 1 }])),
          (err) => err && this.log.error({ err: err.message, filters }, "MQTT subscription failed"),
        );
    });
    return conn;
  }

  /** Publishes the offline status (and the Sparkplug STATE offline) and disconnects. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // A batch at the sink may still become durable; acknowledged or not, the broker redelivers what is not.
    await withTimeout(this.draining ?? Promise.resolve(), STOP_WAIT_MS);
    const closes: Promise<void>[] = [];
    if (this.json)
      closes.push(
        closeClient(this.json.client, { topic: this.statusTopic, payload: Buffer.from("offline"), retain: true }),
      );
    if (this.spb) {
      const payload = Buffer.from(JSON.stringify({ online: false, timestamp: this.clock.now() }));
      closes.push(
        closeClient(this.spb.client, { topic: stateTopic(this.cfg.sparkplug.host_id), payload, retain: true }),
      );
    }
    await Promise.all(closes);
    for (const release of this.held.splice(0)) release();
  }

  stats(): MqttSourceStats {
    const c = this.c;
    const hs = this.host?.stats();
    return {
      connected: this.json?.client.connected ?? false,
      sparkplug_connected: this.spb?.client.connected ?? false,
      connects: c.connects,
      reconnects: Math.max(0, c.connects - (this.json ? 1 : 0) - (this.spb ? 1 : 0)),
      connection_losses: c.connection_losses,
      messages_in: c.messages_in,
      messages_qos1: c.messages_qos1,
      messages_unrouted: c.messages_unrouted,
      acks_delayed: c.acks_delayed,
      acks_abandoned: c.acks_abandoned,
      redelivered_duplicates: c.redelivered_duplicates,
      samples_out: c.samples_out,
      batches: c.batches,
      max_batch_seen: c.max_batch_seen,
      quarantined: c.quarantined,
      quarantined_by_reason: { ...this.byReason },
      sink_errors: c.sink_errors,
      pending: this.pending.length,
      backpressure_holds: c.backpressure_holds,
      last_seq: this.seq,
      sparkplug: {
        ...(hs ?? emptySparkplugHostStats()),
        rebirth_ncmd_sent: c.rebirth_ncmd_sent,
      },
    };
  }

  /** Live Sparkplug sessions (`group/node` → bdSeq, seq, devices). */
  sparkplugSessions() {
    return this.host?.sessions() ?? {};
  }

  // ── receiving ─────────────────────────────────────────────────────────────────────────────────────────────────

  private onPublish(conn: Conn, packet: IPublishPacket, cb: (err?: Error) => void): void {
    if (this.stopped) {
      // Not taken: no PUBACK, the broker redelivers to the next run.
      cb(DEFERRED);
      return;
    }
    this.c.messages_in++;
    const qos = packet.qos;
    const e: Entry = {
      conn,
      gen: conn.gen,
      topic: packet.topic,
      payload: typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload,
      qos,
      messageId: packet.messageId,
      dup: packet.dup,
      receivedAt: this.clock.now(),
    };
    if (qos > 0) this.c.messages_qos1++;
    this.pending.push(e);
    if (qos > 0 && this.opts.serialAcks) {
      // The documented route: MQTT.js sends the PUBACK when this is called, and reads the next packet only then.
      e.release = () => cb();
    } else {
      const release = () => cb(qos > 0 ? DEFERRED : undefined);
      if (this.pending.length >= this.maxPending) {
        this.c.backpressure_holds++;
        this.held.push(release);
      } else release();
    }
    if (!this.running) {
      this.running = true;
      this.draining = this.drain();
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length && !this.stopped) {
        const take = this.pending.slice(0, this.cfg.max_batch);
        const samples: RawSample[] = [];
        const rejected: Rejected[] = [];
        const rebirth: SparkplugResult["rebirth"] = [];
        const dupOnly: boolean[] = [];
        for (const e of take) dupOnly.push(this.decode(e, samples, rejected, rebirth));
        for (const r of rebirth) this.requestRebirth(r.group, r.node, r.reason);
        // Decoded once (Sparkplug session state moves on decode); the write is retried until it succeeds or stop.
        for (let attempt = 0; ; attempt++) {
          try {
            if (samples.length) await this.sink!(samples);
            if (rejected.length) await this.quarantine(rejected);
            break;
          } catch (err) {
            // Nothing of this batch is acknowledged: the broker keeps it until it is durable.
            this.c.sink_errors++;
            if (this.stopped) return;
            const delay = retryDelay(DEFAULT_RETRY, attempt);
            this.log.error({ err: (err as Error).message, retry_ms: delay }, "MQTT batch not stored; retrying");
            await sleep(delay);
          }
        }
        this.pending.splice(0, take.length);
        this.c.batches++;
        this.c.samples_out += samples.length;
        this.c.max_batch_seen = Math.max(this.c.max_batch_seen, take.length);
        for (const r of rejected) {
          this.c.quarantined++;
          this.byReason[r.reason] = (this.byReason[r.reason] ?? 0) + 1;
        }
        for (let i = 0; i < take.length; i++) this.ack(take[i]!, dupOnly[i]!);
        while (this.held.length && this.pending.length < this.maxPending) this.held.shift()!();
      }
    } finally {
      // Cleared here, synchronously with the loop's end (a drain may finish without awaiting anything).
      this.running = false;
    }
  }

  /** Turns one message into samples/rejections. Returns true when it is a redelivery already stored. */
  private decode(e: Entry, samples: RawSample[], rejected: Rejected[], rebirth: SparkplugResult["rebirth"]): boolean {
    if (e.dup && e.qos > 0 && this.recent.has(digest(e))) {
      this.c.redelivered_duplicates++;
      return true;
    }
    const out: { samples: DecodedSample[]; rejected: DecodedRejection[]; rebirth: SparkplugResult["rebirth"] } = {
      samples: [],
      rejected: [],
      rebirth,
    };
    let routed = 0;
    if (e.conn.kind === "sparkplug") {
      if (this.host?.follows(e.topic)) {
        this.host.handle(e.topic, e.payload, e.receivedAt, out);
        routed = 1;
      }
    } else if (this.mapper) routed = this.mapper.decode(e.topic, e.payload, e.receivedAt, out);
    if (!routed) this.c.messages_unrouted++;
    for (const s of out.samples) samples.push({ ...s, source: this.id, seq: ++this.seq });
    for (const r of out.rejected) rejected.push({ ...r, source: this.id, seq: null });
    return false;
  }

  private quarantine(rejected: Rejected[]): Promise<unknown> {
    if (this.opts.quarantine) return this.opts.quarantine(rejected);
    // No quarantine port: the validator quarantines these (as wrong_type / unknown_tag), with our detail lost.
    return this.sink!(
      rejected.map((r) => ({
        tag: r.tag,
        ts: r.ts ?? r.received_at,
        value: `${r.reason}: ${r.detail}`,
        source: this.id,
        seq: ++this.seq,
      })),
    );
  }

  private ack(e: Entry, wasDuplicate: boolean): void {
    if (e.qos === 0) return;
    if (!wasDuplicate) {
      const d = digest(e);
      this.recent.add(d);
      if (this.recent.size > RECENT_DIGESTS) this.recent.delete(this.recent.values().next().value!);
    }
    if (e.release) {
      this.c.acks_delayed++;
      e.release();
      return;
    }
    const client = e.conn.client;
    if (e.gen !== e.conn.gen || !client.connected || e.messageId === undefined) {
      this.c.acks_abandoned++;
      return;
    }
    this.c.acks_delayed++;
    sendPuback(client, e.messageId);
  }

  private requestRebirth(group: string, node: string, reason: string): void {
    const client = this.spb?.client;
    if (!client?.connected) return;
    this.log.info({ group, node, reason }, "Sparkplug: requesting rebirth");
    client.publish(sparkplugTopic(group, "NCMD", node), Buffer.from(rebirthPayload(this.clock.now())), { qos: 0 });
    this.c.rebirth_ncmd_sent++;
  }
}

/**
 * Sends a PUBACK for `messageId` on the client's current connection. MQTT.js has no public call for this (its
 * documented route acknowledges from handleMessage, one message at a time); `_sendPacket` is what that route uses.
 */
function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as { _sendPacket(p: object): void })._sendPacket({ cmd: "puback", messageId, reasonCode: 0 });
}

function digest(e: Entry): string {
  return createHash("sha1").update(e.topic).update("\0").update(e.payload).digest("base64");
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
