import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type {
  ClientMonitoredItemGroup,
  ClientSession,
  ClientSubscription,
  DataValue,
  OPCUACertificateManager,
  OPCUAClient,
  UserIdentityInfo,
} from "node-opcua";
import type { TagConfig } from "../../config/schema.js";
import { type Clock, realClock } from "../../core/clock.js";
import { GlassdError } from "../../core/errors.js";
import { TypedEvents } from "../../core/events.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { type RetryPolicy, retryDelay } from "../../core/retry.js";
import { startLoop, throwIfAborted } from "../../core/service.js";
import type { RawSample } from "../../core/types.js";
import type { SampleSink, SampleSource } from "../ports.js";
import { checkSettings, DEFAULT_SETTINGS, nodeIdSyntaxOk, type OpcuaSettings } from "./config.js";
import { defaultApplicationUri, openPki, type PkiPaths, thumbprintOf, toDer } from "./pki.js";
import { qualityOf, sampleValue } from "./quality.js";

/*
 * The OPC UA client as a SampleSource (one server, one session, one subscription).
 *
 * Tags: every tag of the dictionary with `sources.opcua` — a node id as given, or a browse path (relative to the
 * Objects folder) resolved with TranslateBrowsePathsToNodeIds on every full connect; tags that do not resolve, or
 * whose node the server refuses to monitor, are reported by name (stats().unresolved_tags, a warning) and the others
 * are read. Levers (tags with `actuator`) also get their setpoint node (node id or last browse-path element +
 * setpoint_suffix) monitored, for OpcuaActuator's read-back cache; setpoints are not samples.
 *
 * Subscription: publishing interval = batch_ms (the batch window); one monitored item per tag with
 * samplingInterval = the tag's period_ms and queueSize = enough for one publishing interval
 * (ceil(batch_ms / period_ms) + 1); DataChangeFilter trigger StatusValueTimestamp and no deadband. Source
 * timestamps become RawSample.ts (server timestamp, then receipt time, when a server sends none); the status code's
 * severity becomes the quality (GoodClamped is good). Every notification gets the next seq of this source, which
 * continues from Store.lastSeq(id) after a daemon restart. Each publishing interval's notifications go to the sink as
 * one batch; they count as delivered only after the sink resolved (durable). A failing sink is retried with the same
 * samples and seqs; if the in-memory backlog overflows, the oldest samples are dropped and counted (lost_samples), and
 * the store sees the seq gap.
 *
 * Reconnection, in two layers:
 *  1. node-opcua's own repair, for a broken connection: a new secure channel, then ActivateSession on the old session
 *     (the server kept it: nothing lost, Republish fetches what was queued), else a new session and
 *     TransferSubscriptions, and when the transfer fails (a restarted server knows no subscription) the subscription
 *     and its monitored items are recreated on the same ClientSubscription objects. We switch it on only after the
 *     first full connect and jitter its first delay per loss (node-opcua's own reconnection backoff is not jittered).
 *  2. glassd's loop (core/retry.ts, doubling delay with jitter): the first connect, and a full rebuild (new client,
 *     session, browse paths resolved again, new subscription) when node-opcua has not repaired the connection within
 *     repair_timeout_ms, when the subscription dies, or when no publish response (data or keep-alive) arrived for
 *     three keep-alive periods while connected.
 * After any recovery where data could have been lost (subscription recreated, or a rebuild), current values are read
 * again (duplicates of what was already delivered are dropped) and the gap — wall time from the last notification
 * before the break to the re-read — is reported in stats (gaps, gap_ms_total, last_gap_ms), in the log with the tags'
 * largest source-time gap, and as a `gap` event.
 *
 * Data-age watchdog: OPC UA reports on change only, so silence alone cannot tell a constant value from a stalled one.
 * Two measures: (a) the StatusValueTimestamp trigger makes a server report a new source timestamp even when the value
 * is unchanged, so a live input that the PLC refreshes every scan keeps notifying; (b) an item silent for
 * watchdog_factor × max(period, revised sampling interval) + the publishing interval while the subscription is alive
 * is read directly (MaxAge 0): a newer source timestamp means the server has data it did not notify (e.g. it ignores
 * the timestamp trigger) and the value is delivered as a sample; the same old timestamp means the source stopped
 * updating: the item is stalled (stats().stalled_tags, a warning, a `stall` event) until a fresh value arrives.
 * Periodic reads of every item were rejected: they cost a round trip per period for all items, where reads of
 * suspects only cost something when something is wrong.
 */

type Ua = typeof import("node-opcua");

/** The part of the Store the source needs; `Store` satisfies it. */
export interface OpcuaStateStore {
  lastSeq(source: string): number | undefined;
}

export interface OpcuaSourceOptions extends Partial<Omit<OpcuaSettings, "endpoint" | "pkiDir" | "retry">> {
  endpoint: string;
  retry?: Partial<RetryPolicy>;
  pkiDir: string;
  tags: readonly TagConfig[];
  logger?: Logger;
  clock?: Clock;
  /** Where the last stored seq comes from (the daemon's Store). */
  state?: OpcuaStateStore;
  /** Last stored seq when `state` is not given. Default 0. */
  startSeq?: number;
  /** Samples held in memory while the sink is slow or failing; beyond, the oldest are dropped. Default 200 000. */
  maxPendingSamples?: number;
  /** Most samples per sink call. Default 10 000. */
  maxSinkSamples?: number;
}

export interface OpcuaGap {
  source: string;
  /** Wall time of the last notification before the break, ms since the epoch. */
  from: number;
  /** Wall time of the re-read after recovery. */
  to: number;
  ms: number;
  /** Largest source-timestamp gap over the tags (first value after − last before), ms; -1 when unknown. */
  max_source_gap_ms: number;
  how: "recreated" | "rebuilt";
}

export interface OpcuaSourceEvents {
  connected: { endpoint: string; monitored_items: number; unresolved_tags: string[] };
  connectionLost: { reason: string };
  backoff: { attempt: number; delay_ms: number; reason: string };
  reestablished: { how: "reactivated" | "transferred" | "recreated" | "rebuilt"; down_ms: number };
  gap: OpcuaGap;
  stall: { tag: string; silent_ms: number; last_source_ts: number };
  stallCleared: { tag: string; stalled_ms: number };
}
type Listener<K extends keyof OpcuaSourceEvents> = (e: OpcuaSourceEvents[K]) => void;

/** Counters and state for /health and /metrics (snake_case). */
export interface OpcuaSourceStats {
  connected: boolean;
  /** Sessions open now (0 or 1). */
  sessions: number;
  sessions_created: number;
  connect_attempts: number;
  connect_failures: number;
  connection_losses: number;
  /** Connections re-established after a loss (by node-opcua's repair or a full rebuild). */
  reconnects: number;
  session_reactivations: number;
  subscription_transfers: number;
  subscription_recreations: number;
  full_rebuilds: number;
  gaps: number;
  gap_ms_total: number;
  last_gap_ms: number;
  /** Tags monitored (value items that the server accepted). */
  monitored_items: number;
  /** Setpoint nodes of levers monitored for the actuator's read-back cache. */
  setpoint_items: number;
  unresolved_tags: string[];
  /** Tags of the dictionary without sources.opcua. */
  unmapped_tags: number;
  stalled_items: number;
  stalled_tags: string[];
  stalls_total: number;
  stall_checks: number;
  notifications: number;
  good_quality: number;
  uncertain_quality: number;
  bad_quality: number;
  missing_source_timestamps: number;
  duplicates_dropped: number;
  samples_received: number;
  samples_durable: number;
  batches_durable: number;
  sink_errors: number;
  pending_samples: number;
  lost_samples: number;
  last_seq: number;
  last_error: string | null;
  last_error_at: number | null;
  /** Thumbprint of a server certificate refused as untrusted (cleared once connected). */
  untrusted_server_certificate: string | null;
}

/** A connection problem with a message that says what to do next. */
export class OpcuaConnectError extends GlassdError {
  constructor(message: string, code: string, cause?: unknown) {
    super(message, { status: 503, code, cause });
  }
}

interface Item {
  tag: string;
  kind: "value" | "setpoint";
  periodMs: number;
  nodeId: string;
  /** Index into the tag dictionary subset. */
  limitMs: number;
  lastRecvAt: number;
  lastTs: number;
  lastValue: unknown;
  lastStatus: number;
  stalled: boolean;
  stalledAt: number;
  checkedAt: number;
  ok: boolean;
}

interface Address {
  nodeId?: string;
  browsePath?: string;
}

interface Mapped {
  tag: TagConfig;
  value: Address;
  setpoint?: Address;
}

interface Generation {
  client: OPCUAClient;
  session?: ClientSession;
  subscription?: ClientSubscription;
  groups: ClientMonitoredItemGroup[];
  kill: (reason: string) => void;
  dead: Promise<string>;
  up: boolean;
  recreated: boolean;
  lostAt?: number;
  repairTimer?: NodeJS.Timeout;
  keepAliveMs: number;
  publishingMs: number;
  /** Session id before a break: a different one after the repair means a new session. */
  sessionIdBefore?: string;
}

const STOP_WAIT_MS = 5_000;
const CLOSE_WAIT_MS = 2_000;

export class OpcuaSource implements SampleSource {
  readonly id: string;
  readonly name: string;
  readonly settings: OpcuaSettings;
  private readonly log: Logger;
  private readonly events: TypedEvents<OpcuaSourceEvents>;
  private readonly clock: Clock;
  private readonly mapped: Mapped[] = [];
  private readonly unmapped: number;
  private readonly maxPending: number;
  private readonly maxSinkSamples: number;
  private ua: Ua | undefined;
  private cm: OPCUACertificateManager | undefined;
  private pki: PkiPaths | undefined;
  private sink: SampleSink | undefined;
  private gen: Generation | undefined;
  private items: Item[] = [];
  private readonly lastByTag = new Map<string, { ts: number; value: unknown; status: number }>();
  private readonly setpoints = new Map<string, { nodeId: string; value?: number; ts?: number }>();
  private unresolved: string[] = [];
  private seq = 0;
  private pending: RawSample[] = [];
  private flushScheduled = false;
  private draining: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private everConnected = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastPublishAt = 0;
  private lastDataAt = 0;
  /** Wall time of the break that is not yet followed by a re-read (for the gap). */
  private brokenAt: number | undefined;
  private checking = false;
  private lostOverflowLogged = false;
  private readonly c = {
    sessions_created: 0,
    connect_attempts: 0,
    connect_failures: 0,
    connection_losses: 0,
    reconnects: 0,
    session_reactivations: 0,
    subscription_transfers: 0,
    subscription_recreations: 0,
    full_rebuilds: 0,
    gaps: 0,
    gap_ms_total: 0,
    last_gap_ms: 0,
    stalls_total: 0,
    stall_checks: 0,
    notifications: 0,
    good_quality: 0,
    uncertain_quality: 0,
    bad_quality: 0,
    missing_source_timestamps: 0,
    duplicates_dropped: 0,
    samples_received: 0,
    samples_durable: 0,
    batches_durable: 0,
    sink_errors: 0,
    lost_samples: 0,
  };
  private lastError: { message: string; at: number } | undefined;
  private untrustedServer: string | null = null;

  constructor(private readonly opts: OpcuaSourceOptions) {
    const { tags, logger, clock, state, startSeq, maxPendingSamples, maxSinkSamples, ...rest } = opts;
    this.settings = {
      ...DEFAULT_SETTINGS,
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      retry: { ...DEFAULT_SETTINGS.retry, ...opts.retry },
    } as OpcuaSettings;
    checkSettings(this.settings, tags, nodeIdSyntaxOk);
    this.id = `opcua:${this.settings.name}`;
    this.name = this.id;
    this.log = logger ?? silentLogger;
    this.events = new TypedEvents<OpcuaSourceEvents>(this.log, "OPC UA");
    this.clock = clock ?? realClock;
    this.maxPending = maxPendingSamples ?? 200_000;
    this.maxSinkSamples = maxSinkSamples ?? 10_000;
    const suffix = this.settings.setpointSuffix;
    let unmapped = 0;
    for (const t of tags) {
      const o = t.sources?.opcua;
      if (!o) {
        unmapped++;
        continue;
      }
      const value: Address = o.node_id !== undefined ? { nodeId: o.node_id } : { browsePath: o.browse_path! };
      const setpoint: Address | undefined = t.actuator
        ? value.nodeId !== undefined
          ? { nodeId: value.nodeId + suffix }
          : { browsePath: value.browsePath + suffix }
        : undefined;
      this.mapped.push({ tag: t, value, ...(setpoint ? { setpoint } : {}) });
    }
    this.unmapped = unmapped;
  }

  attach(sink: SampleSink): void {
    this.sink = sink;
  }

  on<K extends keyof OpcuaSourceEvents>(event: K, fn: Listener<K>): () => void {
    return this.events.on(event, fn);
  }

  /**
   * Loads node-opcua, opens the PKI (creating glassd's certificate on first start), then tries to connect once:
   * resolves when connected or when the first attempt failed (the source keeps retrying in the background, so an
   * unreachable PLC does not keep the daemon from starting).
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) return;
    throwIfAborted(signal);
    this.started = true;
    this.ua = await import("node-opcua");
    throwIfAborted(signal);
    const pki = await openPki(this.settings.pkiDir, {
      applicationUri: this.settings.applicationUri ?? defaultApplicationUri(),
    });
    this.cm = pki.cm;
    this.pki = pki.paths;
    if (pki.created)
      this.log.info(
        { file: pki.paths.ownCert },
        "created glassd's OPC UA application certificate; the server must trust it",
      );
    throwIfAborted(signal);
    const st = this.opts.state;
    this.seq = st ? (st.lastSeq(this.id) ?? 0) : (this.opts.startSeq ?? 0);
    const { loop, first } = startLoop((firstDone) => this.run(firstDone), signal);
    this.loop = loop;
    await first;
    if (signal.aborted) {
      await this.stop();
      throwIfAborted(signal);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    this.gen?.kill("stopped");
    await withTimeout(this.loop ?? Promise.resolve(), STOP_WAIT_MS);
    this.flush();
    await withTimeout(this.draining ?? Promise.resolve(), STOP_WAIT_MS);
    await this.cm?.dispose().catch(() => {});
    this.cm = undefined;
  }

  stats(): OpcuaSourceStats {
    const stalled = this.items.filter((i) => i.stalled).map((i) => i.tag);
    const le = this.lastError;
    return {
      connected: this.gen?.up === true,
      sessions: this.gen?.session && this.gen.up ? 1 : 0,
      ...this.c,
      monitored_items: this.items.filter((i) => i.ok && i.kind === "value").length,
      setpoint_items: this.items.filter((i) => i.ok && i.kind === "setpoint").length,
      unresolved_tags: [...this.unresolved],
      unmapped_tags: this.unmapped,
      stalled_items: stalled.length,
      stalled_tags: stalled,
      pending_samples: this.pending.length,
      last_seq: this.seq,
      last_error: le?.message ?? null,
      last_error_at: le?.at ?? null,
      untrusted_server_certificate: this.untrustedServer,
    };
  }

  /** glassd's application certificate (PEM file), for the server's trust list. */
  get certificateFile(): string {
    if (!this.pki) throw new Error("OpcuaSource: not started");
    return this.pki.ownCert;
  }

  // ── for OpcuaActuator ────────────────────────────────────────────────────────────────────────────────────────

  /** @internal The live session, when connected. */
  liveSession(): ClientSession | undefined {
    const g = this.gen;
    return g?.up ? g.session : undefined;
  }

  /** @internal Levers (tags with an actuator and OPC UA mapping). */
  leverTags(): string[] {
    return this.mapped.filter((m) => m.setpoint).map((m) => m.tag.id);
  }

  /** @internal Setpoint node and last known value of a lever, if resolved. */
  setpointState(tag: string): { nodeId: string; value?: number; ts?: number } | undefined {
    return this.setpoints.get(tag);
  }

  /** @internal */
  noteSetpoint(tag: string, value: number, ts: number): void {
    const s = this.setpoints.get(tag);
    if (s) {
      s.value = value;
      s.ts = ts;
    }
  }

  /** @internal node-opcua, once started. */
  uaModule(): Ua {
    if (!this.ua) throw new Error("OpcuaSource: not started");
    return this.ua;
  }

  get requestTimeoutMs(): number {
    return this.settings.requestTimeoutMs;
  }

  // ── connection lifecycle ─────────────────────────────────────────────────────────────────────────────────────

  private async run(firstDone: () => void): Promise<void> {
    let attempt = 0;
    const retry = this.settings.retry;
    while (!this.stopped) {
      let reason: string;
      try {
        reason = await this.connectOnce(firstDone);
        attempt = 0;
      } catch (err) {
        reason = (err as Error).message;
        this.c.connect_failures++;
        this.noteError(reason);
        const level = attempt === 0 ? "warn" : "debug";
        this.log[level]({ endpoint: this.settings.endpoint, err: reason, attempt }, "OPC UA connect failed");
      }
      firstDone();
      if (this.stopped) break;
      if (attempt >= retry.maxRetry) {
        this.log.error({ attempts: attempt }, "OPC UA: giving up after retry.max_retry attempts");
        break;
      }
      const delay = retryDelay(retry, attempt++);
      this.emit("backoff", { attempt, delay_ms: delay, reason });
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private identity(ua: Ua): UserIdentityInfo {
    const id = this.settings.identity;
    if (id.type === "anonymous") return { type: ua.UserTokenType.Anonymous };
    if (id.type === "username") {
      let password: string;
      try {
        password = readFileSync(id.passwordFile, "utf8").replace(/\r?\n$/, "");
      } catch (err) {
        throw new OpcuaConnectError(
          `cannot read source.opcua.identity.password_file ${id.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
          "opcua_identity",
          err,
        );
      }
      return { type: ua.UserTokenType.UserName, userName: id.username, password };
    }
    let cert: Buffer;
    let key: string;
    try {
      cert = toDer(readFileSync(id.certFile));
    } catch (err) {
      throw new OpcuaConnectError(
        `cannot read source.opcua.identity.cert_file ${id.certFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        "opcua_identity",
        err,
      );
    }
    try {
      key = readFileSync(id.keyFile, "utf8");
    } catch (err) {
      throw new OpcuaConnectError(
        `cannot read source.opcua.identity.key_file ${id.keyFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        "opcua_identity",
        err,
      );
    }
    return {
      type: ua.UserTokenType.Certificate,
      certificateData: cert,
      privateKey: key,
    } as UserIdentityInfo;
  }

  /** One full connection: returns (the reason it ended) when it is dead for good; throws when it never came up. */
  private async connectOnce(firstDone: () => void): Promise<string> {
    const ua = this.ua!;
    const s = this.settings;
    this.c.connect_attempts++;
    // After a refusal, re-read trusted/ (an operator may have run `glassd pki trust` since).
    if (this.untrustedServer !== null) await this.cm!.reloadCertificates().catch(() => {});
    const identity = this.identity(ua);
    const r = s.retry;
    const client = ua.OPCUAClient.create({
      applicationName: "glassd",
      applicationUri: s.applicationUri ?? defaultApplicationUri(),
      clientName: this.id,
      securityMode: ua.MessageSecurityMode[s.securityMode],
      securityPolicy: ua.SecurityPolicy[s.securityPolicy],
      clientCertificateManager: this.cm!,
      certificateFile: this.pki!.ownCert,
      privateKeyFile: this.pki!.ownKey,
      endpointMustExist: false,
      keepSessionAlive: true,
      requestedSessionTimeout: s.sessionTimeoutMs,
      defaultTransactionTimeout: s.requestTimeoutMs,
      // The first attempt fails fast (glassd's loop retries with jitter); repair is switched on once connected.
      connectionStrategy: {
        maxRetry: 0,
        initialDelay: r.initialDelayMs,
        maxDelay: r.maxDelayMs,
        randomisationFactor: r.jitter,
      },
    });
    let kill: (reason: string) => void = () => {};
    const dead = new Promise<string>((res) => {
      kill = res;
    });
    const publishingMs = s.batchMs;
    const g: Generation = {
      client,
      groups: [],
      kill: (reason) => kill(reason),
      dead,
      up: false,
      recreated: false,
      keepAliveMs: Math.max(1000, 2 * publishingMs),
      publishingMs,
    };
    this.gen = g;
    if (this.stopped) throw new Error("stopped");
    try {
      try {
        await client.connect(s.endpoint);
      } catch (err) {
        throw this.explainConnectError(err as Error, client);
      }
      try {
        g.session = await client.createSession(identity);
        this.c.sessions_created++;
      } catch (err) {
        throw this.explainSessionError(err as Error);
      }
      await this.setUp(ua, g);
    } catch (err) {
      await closeQuietly(g);
      if (this.gen === g) this.gen = undefined;
      throw err;
    }
    this.untrustedServer = null;
    this.wire(ua, g);
    client.connectionStrategy.maxRetry = -1;
    g.up = true;
    this.lastPublishAt = this.clock.now();
    const wasBroken = this.brokenAt !== undefined;
    if (this.everConnected) {
      this.c.reconnects++;
      this.c.full_rebuilds++;
    }
    this.everConnected = true;
    const info = {
      endpoint: s.endpoint,
      monitored_items: this.items.filter((i) => i.ok && i.kind === "value").length,
      unresolved_tags: [...this.unresolved],
    };
    this.log.info(
      { ...info, security: `${s.securityMode}/${s.securityPolicy}`, identity: s.identity.type },
      wasBroken ? "OPC UA connection rebuilt" : "OPC UA connected",
    );
    this.emit("connected", info);
    if (wasBroken) {
      this.emit("reestablished", { how: "rebuilt", down_ms: this.clock.now() - (this.brokenAt ?? 0) });
      void this.reread("rebuilt");
    }
    this.startWatchdog(g);
    firstDone();
    const reason = await dead;
    this.stopWatchdog();
    clearTimeout(g.repairTimer);
    if (g.up && !this.stopped) this.markBroken(reason);
    g.up = false;
    await closeQuietly(g);
    if (this.gen === g) this.gen = undefined;
    if (!this.stopped) this.log.warn({ reason }, "OPC UA connection dropped: rebuilding it");
    return reason;
  }

  /** Resolves tags, creates the subscription and the monitored items. */
  private async setUp(ua: Ua, g: Generation): Promise<void> {
    const session = g.session!;
    const unresolved: string[] = [];
    // 1. Addresses → node ids (browse paths through one TranslateBrowsePathsToNodeIds call).
    const wanted: { m: Mapped; kind: "value" | "setpoint"; addr: Address }[] = [];
    for (const m of this.mapped) {
      wanted.push({ m, kind: "value", addr: m.value });
      if (m.setpoint) wanted.push({ m, kind: "setpoint", addr: m.setpoint });
    }
    const nodeIds: (string | undefined)[] = wanted.map((w) => w.addr.nodeId);
    const byPath = wanted.map((w, i) => ({ w, i })).filter((x) => x.w.addr.browsePath !== undefined);
    if (byPath.length) {
      const paths: ReturnType<Ua["makeBrowsePath"]>[] = [];
      const idx: number[] = [];
      for (const { w, i } of byPath) {
        try {
          paths.push(ua.makeBrowsePath(ua.ObjectIds.ObjectsFolder, w.addr.browsePath!));
          idx.push(i);
        } catch (err) {
          if (w.kind === "value")
            unresolved.push(`${w.m.tag.id} (browse path ${w.addr.browsePath}: ${(err as Error).message})`);
        }
      }
      const results = paths.length ? await session.translateBrowsePath(paths) : [];
      results.forEach((res, k) => {
        const i = idx[k]!;
        const w = wanted[i]!;
        const target = res.statusCode.isGood() ? res.targets?.[0]?.targetId : undefined;
        if (target) nodeIds[i] = target.toString();
        else if (w.kind === "value")
          unresolved.push(`${w.m.tag.id} (browse path ${w.addr.browsePath}: ${res.statusCode.name})`);
      });
    }
    // 2. One subscription; monitored items grouped by (sampling interval, queue size).
    const publishingMs = g.publishingMs;
    const keepAliveCount = Math.max(1, Math.ceil(g.keepAliveMs / publishingMs));
    const subscription = await session.createSubscription2({
      requestedPublishingInterval: publishingMs,
      requestedMaxKeepAliveCount: keepAliveCount,
      requestedLifetimeCount: Math.max(3 * keepAliveCount, Math.ceil(this.settings.sessionTimeoutMs / publishingMs)),
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 10,
    });
    g.subscription = subscription;
    const revisedPublishing = subscription.publishingInterval || publishingMs;
    g.publishingMs = revisedPublishing;
    g.keepAliveMs = revisedPublishing * (subscription.maxKeepAliveCount || keepAliveCount);
    const items: Item[] = [];
    const now = this.clock.now();
    wanted.forEach((w, i) => {
      const nodeId = nodeIds[i];
      if (!nodeId) return;
      items.push({
        tag: w.m.tag.id,
        kind: w.kind,
        periodMs: w.m.tag.period_ms,
        nodeId,
        limitMs: 0,
        lastRecvAt: now,
        lastTs: this.lastByTag.get(w.m.tag.id)?.ts ?? Number.NEGATIVE_INFINITY,
        lastValue: undefined,
        lastStatus: 0,
        stalled: false,
        stalledAt: 0,
        checkedAt: 0,
        ok: false,
      });
    });
    const groups = new Map<string, Item[]>();
    for (const it of items) {
      const queueSize = Math.min(1000, Math.ceil(revisedPublishing / it.periodMs) + 1);
      const key = `${it.periodMs}:${queueSize}`;
      let list = groups.get(key);
      if (!list) {
        list = [];
        groups.set(key, list);
      }
      list.push(it);
    }
    const filter = new ua.DataChangeFilter({
      trigger: ua.DataChangeTrigger.StatusValueTimestamp,
      deadbandType: ua.DeadbandType.None,
      deadbandValue: 0,
    });
    for (const [key, list] of groups) {
      const [period, queueSize] = key.split(":").map(Number) as [number, number];
      const group = await subscription.monitorItems(
        list.map((it) => ({ nodeId: it.nodeId, attributeId: ua.AttributeIds.Value })),
        { samplingInterval: period, queueSize, discardOldest: true, filter },
        ua.TimestampsToReturn.Both,
      );
      g.groups.push(group);
      group.monitoredItems.forEach((mi, k) => {
        const it = list[k]!;
        it.ok = mi.statusCode.isGood();
        const revised = mi.result?.revisedSamplingInterval ?? period;
        it.limitMs = this.settings.watchdogFactor * Math.max(it.periodMs, revised) + revisedPublishing;
        if (!it.ok && it.kind === "value") unresolved.push(`${it.tag} (${it.nodeId}: ${mi.statusCode.name})`);
        if (!it.ok && it.kind === "setpoint")
          this.log.warn({ tag: it.tag, node_id: it.nodeId, status: mi.statusCode.name }, "setpoint node not usable");
      });
      group.on("changed", (_mi, dv, index) => {
        const it = list[index];
        if (it && this.gen === g) this.onValue(it, dv);
      });
    }
    this.items = items;
    this.setpoints.clear();
    for (const it of items) if (it.kind === "setpoint" && it.ok) this.setpoints.set(it.tag, { nodeId: it.nodeId });
    this.unresolved = unresolved;
    if (unresolved.length)
      this.log.warn(
        { tags: unresolved },
        `${unresolved.length} OPC UA tag(s) not resolved or not monitorable: they are not read (check sources.opcua in the tag dictionary)`,
      );
  }

  /** node-opcua's repair events → glassd's state, counters, logs. */
  private wire(ua: Ua, g: Generation): void {
    const client = g.client;
    const sub = g.subscription!;
    const session = g.session!;
    void ua;
    client.on("connection_lost", () => {
      if (this.gen !== g || !g.up) return;
      g.up = false;
      g.recreated = false;
      g.lostAt = this.clock.now();
      this.markBroken("connection lost");
      // node-opcua waits initialDelay before its first reconnection attempt and does not jitter it: we do.
      client.connectionStrategy.initialDelay = retryDelay(this.settings.retry, 0);
      clearTimeout(g.repairTimer);
      g.repairTimer = setTimeout(() => {
        if (!g.up) g.kill(`not repaired within ${this.settings.repairTimeoutMs} ms`);
      }, this.settings.repairTimeoutMs);
    });
    client.on("backoff", (count: number, delay: number) => {
      this.emit("backoff", { attempt: count + 1, delay_ms: delay, reason: "reconnecting the secure channel" });
    });
    client.on("connection_reestablished", () => {
      if (this.gen !== g || g.up) return;
      clearTimeout(g.repairTimer);
      g.up = true;
      this.c.reconnects++;
      this.lastPublishAt = this.clock.now();
      const down = this.clock.now() - (g.lostAt ?? this.clock.now());
      let how: "reactivated" | "transferred" | "recreated";
      if (g.recreated) {
        how = "recreated";
        this.c.subscription_recreations++;
      } else if (session.sessionId && g.sessionIdBefore !== session.sessionId.toString()) {
        how = "transferred";
        this.c.subscription_transfers++;
      } else {
        how = "reactivated";
        this.c.session_reactivations++;
      }
      g.sessionIdBefore = session.sessionId?.toString();
      this.log.info({ how, down_ms: down }, "OPC UA connection re-established");
      this.emit("reestablished", { how, down_ms: down });
      if (how !== "reactivated") this.c.sessions_created++;
      if (how === "recreated") void this.reread("recreated");
      else {
        // Session or subscriptions kept by the server: Republish delivered what it queued; no gap to report.
        this.brokenAt = undefined;
      }
    });
    client.on("close", (err?: Error | null) => {
      if (this.gen === g) g.kill(err ? `connection closed: ${err.message}` : "connection closed");
    });
    session.on("session_closed", () => {
      if (this.gen === g && !this.stopped) g.kill("session closed by the server");
    });
    g.sessionIdBefore = session.sessionId?.toString();
    sub.on("subscriptionId_changed", () => {
      g.recreated = true;
    });
    sub.on("keepalive", () => {
      this.lastPublishAt = this.clock.now();
    });
    sub.on("terminated", () => {
      if (this.gen === g && !this.stopped) g.kill("subscription terminated");
    });
    sub.on("internal_error", (err: Error) => {
      if (this.gen === g && !this.stopped) g.kill(`subscription failed: ${err.message}`);
    });
  }

  private markBroken(reason: string): void {
    if (this.brokenAt === undefined) this.brokenAt = this.lastDataAt || this.clock.now();
    this.c.connection_losses++;
    this.noteError(reason);
    this.log.warn({ reason, endpoint: this.settings.endpoint }, "OPC UA connection lost");
    this.emit("connectionLost", { reason });
  }

  /** Reads every value item after a recovery that may have lost data, delivers what is new and reports the gap. */
  private async reread(how: "recreated" | "rebuilt"): Promise<void> {
    const g = this.gen;
    const from = this.brokenAt;
    this.brokenAt = undefined;
    if (!g?.session) return;
    const ua = this.ua!;
    const before = new Map([...this.lastByTag].map(([k, v]) => [k, v.ts]));
    const values = this.items.filter((i) => i.kind === "value" && i.ok);
    try {
      const dvs = await g.session.read(
        values.map((i) => ({ nodeId: i.nodeId, attributeId: ua.AttributeIds.Value })),
        0,
      );
      dvs.forEach((dv, k) => {
        this.onValue(values[k]!, dv, false);
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "re-reading current values after the recovery failed");
    }
    if (from === undefined) return;
    const to = this.clock.now();
    let maxSource = -1;
    for (const it of values) {
      const b = before.get(it.tag);
      const a = this.lastByTag.get(it.tag)?.ts;
      if (b !== undefined && a !== undefined && a > b) maxSource = Math.max(maxSource, a - b);
    }
    const gap: OpcuaGap = { source: this.id, from, to, ms: Math.max(0, to - from), max_source_gap_ms: maxSource, how };
    this.c.gaps++;
    this.c.gap_ms_total += gap.ms;
    this.c.last_gap_ms = gap.ms;
    this.log.warn(gap, "OPC UA data gap: no data during the outage; current values read again");
    this.emit("gap", gap);
  }

  // ── data ───────────────────────────────────────────────────────────────────────────────────────────────────────

  private onValue(it: Item, dv: DataValue, notified = true): void {
    const now = this.clock.now();
    if (notified) {
      this.lastPublishAt = now;
      this.c.notifications++;
    }
    it.lastRecvAt = now;
    if (it.stalled) {
      it.stalled = false;
      this.log.info({ tag: it.tag, stalled_ms: now - it.stalledAt }, "OPC UA item delivers again");
      this.emit("stallCleared", { tag: it.tag, stalled_ms: now - it.stalledAt });
    }
    const status = dv.statusCode?.value ?? 0;
    let ts = dv.sourceTimestamp?.getTime();
    if (ts === undefined || !Number.isFinite(ts) || ts <= 0) {
      this.c.missing_source_timestamps++;
      ts = dv.serverTimestamp?.getTime() ?? now;
    }
    const value = sampleValue(dv.value?.value);
    if (it.kind === "setpoint") {
      if (typeof value === "number") this.noteSetpoint(it.tag, value, ts);
      return;
    }
    const last = this.lastByTag.get(it.tag);
    if (last && last.ts === ts && last.status === status && sameValue(last.value, value)) {
      this.c.duplicates_dropped++;
      return;
    }
    this.lastByTag.set(it.tag, { ts, value, status });
    it.lastTs = Math.max(it.lastTs, ts);
    this.lastDataAt = now;
    const quality = qualityOf(status);
    this.c[`${quality}_quality`]++;
    this.c.samples_received++;
    this.pending.push({ tag: it.tag, ts, value, quality, source: this.id, seq: ++this.seq });
    if (this.pending.length > this.maxPending) {
      const drop = this.pending.length - this.maxPending;
      this.pending.splice(0, drop);
      this.c.lost_samples += drop;
      if (!this.lostOverflowLogged) {
        this.lostOverflowLogged = true;
        this.log.error(
          { dropped: drop, backlog: this.maxPending },
          "OPC UA backlog full (storage not keeping up): oldest samples dropped; the store reports the seq gap",
        );
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // One publish response is delivered synchronously: flushing on the next turn sends it as one batch.
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (!this.draining && this.pending.length) this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    let failures = 0;
    try {
      while (this.pending.length) {
        const batch =
          this.pending.length <= this.maxSinkSamples ? this.pending : this.pending.slice(0, this.maxSinkSamples);
        if (batch === this.pending) this.pending = [];
        else this.pending = this.pending.slice(batch.length);
        try {
          if (!this.sink) throw new GlassdError("no sink attached to the OPC UA source", { code: "no_sink" });
          await this.sink(batch);
        } catch (err) {
          this.c.sink_errors++;
          // Not delivered: back to the head of the backlog with the same seqs, retried after a delay.
          this.pending = batch.concat(this.pending);
          this.log.error({ err, samples: batch.length }, "OPC UA batch not stored: kept in memory and retried");
          if (this.stopped) return;
          await sleep(retryDelay(this.settings.retry, failures++));
          continue;
        }
        failures = 0;
        this.lostOverflowLogged = false;
        this.c.batches_durable++;
        this.c.samples_durable += batch.length;
      }
    } finally {
      this.draining = undefined;
    }
  }

  // ── watchdog ────────────────────────────────────────────────────────────────────────────────────────────────

  private startWatchdog(g: Generation): void {
    this.stopWatchdog();
    const minLimit = Math.min(...this.items.filter((i) => i.ok).map((i) => i.limitMs), g.keepAliveMs);
    const every = Math.max(50, Math.min(1000, Math.round(minLimit / 4)));
    this.watchdog = setInterval(() => this.tick(g), every);
  }

  private stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  private tick(g: Generation): void {
    if (!g.up || this.gen !== g) return;
    const now = this.clock.now();
    const silentLimit = 3 * g.keepAliveMs + this.settings.requestTimeoutMs;
    if (now - this.lastPublishAt > silentLimit) {
      g.kill(`no publish response (data or keep-alive) for ${now - this.lastPublishAt} ms`);
      return;
    }
    if (this.checking) return;
    const suspects = this.items.filter(
      (i) =>
        i.ok && i.kind === "value" && now - i.lastRecvAt > i.limitMs && (!i.stalled || now - i.checkedAt > i.limitMs),
    );
    if (suspects.length) void this.checkStale(g, suspects);
  }

  private async checkStale(g: Generation, suspects: Item[]): Promise<void> {
    this.checking = true;
    this.c.stall_checks++;
    const ua = this.ua!;
    try {
      const dvs = await g.session!.read(
        suspects.map((i) => ({ nodeId: i.nodeId, attributeId: ua.AttributeIds.Value })),
        0,
      );
      if (!g.up || this.gen !== g) return;
      const now = this.clock.now();
      dvs.forEach((dv, k) => {
        const it = suspects[k]!;
        it.checkedAt = now;
        if (now - it.lastRecvAt <= it.limitMs) return; // a notification came meanwhile
        const ts = dv.sourceTimestamp?.getTime() ?? Number.NEGATIVE_INFINITY;
        if (ts > it.lastTs || (dv.statusCode?.value ?? 0) !== (this.lastByTag.get(it.tag)?.status ?? 0)) {
          // Fresh data the server did not notify: deliver it; not a stall.
          this.onValue(it, dv, false);
          return;
        }
        if (it.stalled) return;
        it.stalled = true;
        it.stalledAt = now;
        this.c.stalls_total++;
        const e = { tag: it.tag, silent_ms: now - it.lastRecvAt, last_source_ts: it.lastTs };
        this.log.warn(e, "OPC UA item stalled: no fresh value from the server while connected");
        this.emit("stall", e);
      });
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "stall check read failed");
    } finally {
      this.checking = false;
    }
  }

  // ── errors ──────────────────────────────────────────────────────────────────────────────────────────────────

  private explainConnectError(err: Error, client: OPCUAClient): Error {
    const m = err.message;
    const s = this.settings;
    if (/server Certificate verification failed|BadCertificateUntrusted/i.test(m)) {
      const thumb = serverThumbprint(client) ?? newestRejected(this.pki!.rejected);
      this.untrustedServer = thumb ?? "unknown";
      return new OpcuaConnectError(
        `server certificate untrusted: run glassd pki trust ${thumb ?? "<thumbprint from 'glassd pki list'>"} (it is in ${this.pki!.rejected})`,
        "opcua_server_untrusted",
        err,
      );
    }
    if (/BadCertificate(Invalid|TimeInvalid|UriInvalid|HostNameInvalid)/.test(m)) {
      return new OpcuaConnectError(
        `server certificate invalid (${/BadCertificate\w+/.exec(m)?.[0]}): check the server's certificate`,
        "opcua_server_certificate_invalid",
        err,
      );
    }
    if (/cannot find endpoint|no endpoint|endpoint.*not found/i.test(m)) {
      return new OpcuaConnectError(
        `the server at ${s.endpoint} offers no endpoint with security ${s.securityMode}/${s.securityPolicy}: change source.opcua.security_mode/security_policy`,
        "opcua_no_endpoint",
        err,
      );
    }
    if (/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|ECONNRESET/.test(m)) {
      return new OpcuaConnectError(
        `OPC UA server ${s.endpoint} not reachable (${m.split("\n")[0]})`,
        "opcua_unreachable",
        err,
      );
    }
    if (/BadSecurityChecksFailed|BadCertificate|socket has been disconnected|closed by server|premature/i.test(m)) {
      return new OpcuaConnectError(
        `the server refused the secure channel (${m.split("\n")[0]}); it may not trust glassd's certificate ${this.pki!.ownCert} (thumbprint ${ownThumbprint(this.pki!.ownCert)}): trust it on the server`,
        "opcua_channel_refused",
        err,
      );
    }
    return new OpcuaConnectError(
      `OPC UA connect to ${s.endpoint} failed: ${m.split("\n")[0]}`,
      "opcua_connect_failed",
      err,
    );
  }

  private explainSessionError(err: Error): Error {
    const m = err.message;
    const id = this.settings.identity;
    if (/End point must exist|cannot find endpoint/i.test(m)) {
      const s = this.settings;
      return new OpcuaConnectError(
        `the server at ${s.endpoint} offers no endpoint with security ${s.securityMode}/${s.securityPolicy}: change source.opcua.security_mode/security_policy`,
        "opcua_no_endpoint",
        err,
      );
    }
    if (
      /BadUserAccessDenied|BadIdentityToken(Rejected|Invalid)|BadUserSignatureInvalid|Cannot find \w+ user token policy/.test(
        m,
      )
    ) {
      const who =
        id.type === "username"
          ? `user "${id.username}": wrong user name or password (source.opcua.identity.password_file)`
          : id.type === "certificate"
            ? `the X.509 user certificate ${id.certFile}: not trusted or not mapped to a user on the server`
            : "anonymous access: the server requires a user (source.opcua.identity)";
      return new OpcuaConnectError(`the OPC UA server refused ${who}`, "opcua_identity_rejected", err);
    }
    return new OpcuaConnectError(`OPC UA session not created: ${m.split("\n")[0]}`, "opcua_session_failed", err);
  }

  private noteError(message: string): void {
    this.lastError = { message, at: this.clock.now() };
  }

  private emit<K extends keyof OpcuaSourceEvents>(event: K, e: OpcuaSourceEvents[K]): void {
    this.events.emit(event, e);
  }
}

/** Syntax check of a node id string (no server needed). */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "number" && typeof b === "number" && Number.isNaN(a) && Number.isNaN(b));
}

function serverThumbprint(client: OPCUAClient): string | undefined {
  const cert = (client as unknown as { serverCertificate?: Buffer }).serverCertificate;
  return cert && cert.length > 0 ? thumbprintOf(Buffer.from(cert)) : undefined;
}

function newestRejected(dir: string): string | undefined {
  try {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith(".pem"))
      .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    const m = files[0] ? /\[([0-9a-f]{40})\]/.exec(files[0].f) : null;
    return m?.[1];
  } catch {
    return undefined;
  }
}

function ownThumbprint(file: string): string {
  try {
    return thumbprintOf(toDer(readFileSync(file)));
  } catch {
    return "?";
  }
}

async function closeQuietly(g: Generation): Promise<void> {
  const { client, session, subscription } = g;
  if (g.up) {
    await withTimeout(subscription?.terminate() ?? Promise.resolve(), CLOSE_WAIT_MS);
    await withTimeout(session?.close(true) ?? Promise.resolve(), CLOSE_WAIT_MS);
  }
  await withTimeout(client.disconnect(), CLOSE_WAIT_MS);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
