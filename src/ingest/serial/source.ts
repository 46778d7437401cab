import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { SerialPort } from "serialport";
import type { TagConfig } from "../../config/schema.js";
import { type Clock, realClock } from "../../core/clock.js";
import { GlassdError } from "../../core/errors.js";
import { TypedEvents } from "../../core/events.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { DEFAULT_RETRY, type RetryPolicy, retryDelay } from "../../core/retry.js";
import { startLoop, throwIfAborted } from "../../core/service.js";
import type { RawSample, Quality as SampleQuality } from "../../core/types.js";
import type { SampleSink, SampleSource } from "../ports.js";
import { encodeFrame, FrameParser } from "./frame-parser.js";
import {
  Capability,
  Command,
  type CommandMessage,
  decodeMessage,
  encodeMessage,
  errorName,
  type HeartbeatMessage,
  type HelloMessage,
  Lamp,
  MalformedPacketError,
  type Message,
  MessageType,
  PROTOCOL_VERSION,
  SamplesView,
  ValueType,
} from "./messages.js";
import { RequestQueue, SerialRequestError } from "./requests.js";
import { type Cursor, type EpochRecord, type Gap, SequenceMapper } from "./sequence.js";

/*
 * The firmware bridge as a SampleSource: opens the serial port, does the HELLO handshake, turns SAMPLES into
 * RawSamples (tags from the tag dictionary's `sources.serial.channel`, one monotonic seq per source across device
 * reboots), hands them to the sink and acknowledges each batch to the device only after the sink resolved (the batch
 * is durable). Heartbeat watchdog, jittered reconnect when the device vanishes and returns, commands with
 * acknowledgement. Nothing received on the line can throw out of here: garbage is counted, never fatal.
 */

/** The part of the Store the source needs; `Store` satisfies it. */
export interface SerialStateStore {
  lastSeq(source: string): number | undefined;
  getState<T = unknown>(key: string): T | undefined;
  putState(key: string, value: unknown): Promise<void>;
}

export interface SerialBridgeOptions {
  /** Serial device path, e.g. /dev/ttyACM0 or /dev/serial/by-id/… */
  path: string;
  /** Default 115200. */
  baudRate?: number;
  /** Expected device id; the source id is `serial:<deviceId>` and a device announcing another id is refused. */
  deviceId?: string;
  /** Tag dictionary; tags with `sources.serial.channel` are mapped. */
  tags: readonly TagConfig[];
  logger?: Logger;
  clock?: Clock;
  /**
   * Where the sequence mapping and the last stored seq come from (the daemon's Store). Without it the source starts
   * at `startSeq` and a daemon restart may store samples of unacknowledged batches twice (at-least-once).
   */
  state?: SerialStateStore;
  /** Last stored seq when `state` is not given. Default 0. */
  startSeq?: number;
  retry?: Partial<RetryPolicy>;
  /** Wait for HELLO per attempt. Default 1000 ms. */
  handshakeTimeoutMs?: number;
  /** HOST_HELLO attempts per connection. Default 3. */
  handshakeAttempts?: number;
  /** Default timeout of a command. Default 1000 ms. */
  commandTimeoutMs?: number;
  /** The link is dead after this many heartbeat periods without a frame. Default 3. */
  watchdogFactor?: number;
  /** TIME_SYNC period. Default 30 000 ms. */
  timeSyncIntervalMs?: number;
  /** Batches received and waiting for the sink; beyond, batches are left to the device's resend. Default 64. */
  maxPendingBatches?: number;
  /** Most samples per sink call (pending batches are coalesced). Default 5000. */
  maxSinkSamples?: number;
  /** Requests waiting for the wire. Default 16. */
  requestQueueCapacity?: number;
}

export type LampState = keyof typeof Lamp;

/** A command for the device. Only the autonomy layer's actuation gate may send one. */
export type SerialCommand =
  | { command: "reject_pulse"; duration_ms: number }
  | { command: "light_tower"; red: LampState; amber: LampState; green: LampState; buzzer?: LampState }
  | { command: "set_period"; channel: number; period_ms: number };

export interface CommandResult {
  command: SerialCommand["command"];
  /** Device clock when it executed the command. */
  device_us: number;
  rtt_ms: number;
}

export interface DeviceInfo {
  device_id: string;
  boot_id: number;
  firmware: string;
  protocol_version: number;
  capabilities: number;
  channels: Array<{ id: number; name: string; unit: string; period_us: number; tag: string | null }>;
}

export interface SerialSourceEvents {
  connected: DeviceInfo;
  reestablished: DeviceInfo & { down_ms: number };
  connectionLost: { reason: string };
  backoff: { attempt: number; delay_ms: number; reason: string };
  deviceReset: { old_boot_id: number; boot_id: number; lost_samples_lower_bound: number };
  gap: Gap & { source: string };
  heartbeat: HeartbeatMessage;
  /** An ACK went to the device: every batch up to `seq` of boot `boot_id` is durable. */
  ack: { seq: number; boot_id: number };
}

type Listener<K extends keyof SerialSourceEvents> = (e: SerialSourceEvents[K]) => void;

/** Counters for health and metrics (snake_case, flat numbers). */
export interface SerialSourceStats {
  connected: boolean;
  frames_ok: number;
  bad_crc: number;
  malformed: number;
  oversize: number;
  resyncs: number;
  unknown_types: number;
  bytes_in: number;
  bytes_discarded: number;
  batches_received: number;
  samples_received: number;
  batches_durable: number;
  samples_durable: number;
  duplicate_batches: number;
  duplicate_samples: number;
  held_batches: number;
  gaps: number;
  missing_samples: number;
  missing_batches: number;
  device_resets: number;
  /** Samples the device produced (and dropped) before glassd first heard from its current boot. */
  unseen_at_first_contact: number;
  reconnects: number;
  /** Unsolicited HELLOs during a session (device reset or port reopened without the link dropping). */
  announces: number;
  /** TIME_SYNC exchanges completed. */
  time_syncs: number;
  connect_failures: number;
  handshake_failures: number;
  watchdog_timeouts: number;
  /** The device path disappeared or was replaced while connected (unplugged). */
  path_vanished: number;
  sink_errors: number;
  lost_on_sink_error: number;
  unmapped_samples: number;
  backpressure_holds: number;
  samples_without_session: number;
  acks_sent: number;
  commands_sent: number;
  commands_ok: number;
  commands_failed: number;
  request_timeouts: number;
  request_queue_full: number;
  pending_batches: number;
  /** ms since the last HEARTBEAT, or -1 before the first one. */
  last_heartbeat_age_ms: number;
  /** The device's own counters from its last HEARTBEAT (-1 before the first one). */
  device_ring_used: number;
  device_dropped_batches: number;
  device_dropped_samples: number;
  device_rx_bad_crc: number;
  device_rx_errors: number;
}

interface ChannelMap {
  tag: string;
  valueType: number;
}

interface Pending {
  samples: RawSample[];
  gen: number;
  after: Cursor;
  wireSeq: number;
  boot: number;
}

interface Session {
  hello: HelloMessage;
  boot: number;
  startedAt: number;
}

const QUALITY: readonly SampleQuality[] = ["good", "uncertain", "bad"];
const HOST_MIN_VERSION = PROTOCOL_VERSION;
const HOST_MAX_VERSION = PROTOCOL_VERSION;
const STOP_WAIT_MS = 5_000;

/** Thrown for a device that answers but cannot be used (wrong id, no common version); the source keeps retrying. */
export class SerialDeviceError extends GlassdError {
  constructor(message: string) {
    super(message, { status: 503, code: "serial_device_unusable" });
  }
}

export class SerialBridgeSource implements SampleSource {
  readonly id: string;
  readonly name: string;
  private readonly log: Logger;
  private readonly events: TypedEvents<SerialSourceEvents>;
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly o: Required<
    Pick<
      SerialBridgeOptions,
      | "baudRate"
      | "handshakeTimeoutMs"
      | "handshakeAttempts"
      | "commandTimeoutMs"
      | "watchdogFactor"
      | "timeSyncIntervalMs"
      | "maxPendingBatches"
      | "maxSinkSamples"
    >
  >;
  private readonly tagByChannel = new Map<number, TagConfig>();
  private readonly stateKey: string;
  private sink: SampleSink | undefined;
  private driver: typeof SerialPort | undefined;
  private port: SerialPort | undefined;
  private readonly parser: FrameParser;
  private readonly requests: RequestQueue;
  private readonly view = new SamplesView();
  private mapper: SequenceMapper | undefined;
  private session: Session | undefined;
  private helloProblem: string | undefined;
  private channels: (ChannelMap | undefined)[] = [];
  private offsetMs = 0;
  private syncs: Array<{ rtt: number; offset: number }> = [];
  private lastFrameAt = 0;
  private lastHeartbeat: (HeartbeatMessage & { boot_id: number; at: number }) | undefined;
  private durableWireSeq: { boot: number; seq: number } | undefined;
  private readonly pending: Pending[] = [];
  private sinkRunning: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private everConnected = false;
  private lostAt: number | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private timeSync: NodeJS.Timeout | undefined;
  private rehandshaking = false;
  private openedIdentity: string | undefined;
  private readonly counters = {
    malformed_packets: 0,
    unknown_types: 0,
    batches_received: 0,
    samples_received: 0,
    batches_durable: 0,
    samples_durable: 0,
    reconnects: 0,
    announces: 0,
    time_syncs: 0,
    connect_failures: 0,
    handshake_failures: 0,
    watchdog_timeouts: 0,
    path_vanished: 0,
    sink_errors: 0,
    lost_on_sink_error: 0,
    unmapped_samples: 0,
    backpressure_holds: 0,
    samples_without_session: 0,
    acks_sent: 0,
    commands_sent: 0,
    commands_ok: 0,
    commands_failed: 0,
  };

  constructor(private readonly opts: SerialBridgeOptions) {
    if (!opts.path) throw new RangeError("serial path is required");
    this.id = `serial:${opts.deviceId ?? basename(opts.path)}`;
    this.name = this.id;
    this.stateKey = `serial_epoch:${this.id}`;
    this.log = opts.logger ?? silentLogger;
    this.events = new TypedEvents<SerialSourceEvents>(this.log, "serial");
    this.clock = opts.clock ?? realClock;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.o = {
      baudRate: opts.baudRate ?? 115_200,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 1000,
      handshakeAttempts: opts.handshakeAttempts ?? 3,
      commandTimeoutMs: opts.commandTimeoutMs ?? 1000,
      watchdogFactor: opts.watchdogFactor ?? 3,
      timeSyncIntervalMs: opts.timeSyncIntervalMs ?? 30_000,
      maxPendingBatches: opts.maxPendingBatches ?? 64,
      maxSinkSamples: opts.maxSinkSamples ?? 5000,
    };
    for (const t of opts.tags) {
      const ch = t.sources?.serial?.channel;
      if (ch === undefined) continue;
      const other = this.tagByChannel.get(ch);
      if (other) throw new RangeError(`serial channel ${ch} is mapped twice: tags ${other.id} and ${t.id}`);
      this.tagByChannel.set(ch, t);
    }
    this.parser = new FrameParser((p) => this.onPacket(p));
    this.requests = new RequestQueue({
      send: (m) => this.write(m),
      capacity: opts.requestQueueCapacity ?? 16,
      now: () => this.clock.now(),
    });
  }

  attach(sink: SampleSink): void {
    this.sink = sink;
  }

  on<K extends keyof SerialSourceEvents>(event: K, fn: Listener<K>): () => void {
    return this.events.on(event, fn);
  }

  /**
   * Loads the driver, then tries to connect once: resolves when the handshake succeeded or the first attempt failed
   * (the source keeps retrying in the background; a missing device does not stop the daemon from starting).
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) return;
    throwIfAborted(signal);
    this.started = true;
    this.driver = (await import("serialport")).SerialPort;
    throwIfAborted(signal);
    const st = this.opts.state;
    const last = st ? (st.lastSeq(this.id) ?? 0) : (this.opts.startSeq ?? 0);
    const epoch = st?.getState<EpochRecord>(this.stateKey);
    this.mapper = new SequenceMapper(last, isEpoch(epoch) ? epoch : undefined);
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
    this.stopTimers();
    this.requests.failAll(new SerialRequestError("serial source stopped", "serial_not_connected"));
    await this.closePort();
    await withTimeout(this.loop ?? Promise.resolve(), STOP_WAIT_MS);
    // A batch already at the sink may still become durable; it is not acknowledged (the port is closed), so the
    // device resends it to the next run, which recognises it as a duplicate.
    await withTimeout(this.sinkRunning ?? Promise.resolve(), STOP_WAIT_MS);
  }

  /** Device identity and channels of the current session, if connected. */
  device(): DeviceInfo | undefined {
    return this.session ? this.deviceInfo(this.session.hello) : undefined;
  }

  stats(): SerialSourceStats {
    const p = this.parser.stats;
    const q = this.requests.stats;
    const m = this.mapper?.stats;
    const hb = this.lastHeartbeat;
    const c = this.counters;
    return {
      connected: this.session !== undefined,
      frames_ok: p.frames_ok,
      bad_crc: p.bad_crc,
      malformed: p.malformed + c.malformed_packets,
      oversize: p.oversize,
      resyncs: p.resyncs,
      unknown_types: c.unknown_types,
      bytes_in: p.bytes_in,
      bytes_discarded: p.bytes_discarded,
      batches_received: c.batches_received,
      samples_received: c.samples_received,
      batches_durable: c.batches_durable,
      samples_durable: c.samples_durable,
      duplicate_batches: m?.duplicate_batches ?? 0,
      duplicate_samples: m?.duplicate_samples ?? 0,
      held_batches: m?.held_batches ?? 0,
      gaps: m?.gaps ?? 0,
      missing_samples: m?.missing_samples ?? 0,
      missing_batches: m?.missing_batches ?? 0,
      device_resets: m?.device_resets ?? 0,
      unseen_at_first_contact: m?.unseen_at_first_contact ?? 0,
      reconnects: c.reconnects,
      announces: c.announces,
      time_syncs: c.time_syncs,
      connect_failures: c.connect_failures,
      handshake_failures: c.handshake_failures,
      watchdog_timeouts: c.watchdog_timeouts,
      path_vanished: c.path_vanished,
      sink_errors: c.sink_errors,
      lost_on_sink_error: c.lost_on_sink_error,
      unmapped_samples: c.unmapped_samples,
      backpressure_holds: c.backpressure_holds,
      samples_without_session: c.samples_without_session,
      acks_sent: c.acks_sent,
      commands_sent: c.commands_sent,
      commands_ok: c.commands_ok,
      commands_failed: c.commands_failed,
      request_timeouts: q.timeouts,
      request_queue_full: q.queue_full,
      pending_batches: this.pending.length,
      last_heartbeat_age_ms: hb ? Math.max(0, this.clock.now() - hb.at) : -1,
      device_ring_used: hb?.ring_used ?? -1,
      device_dropped_batches: hb?.dropped_batches ?? -1,
      device_dropped_samples: hb?.dropped_samples ?? -1,
      device_rx_bad_crc: hb?.rx_bad_crc ?? -1,
      device_rx_errors: hb?.rx_errors ?? -1,
    };
  }

  /**
   * Sends a command and resolves when the device acknowledged it as executed. Rejects with SerialRequestError:
   * `serial_not_connected`, `serial_timeout`, `serial_queue_full`, `serial_refused` (the device refused the message)
   * or `serial_rejected` (the device understood it and did not execute it: BUSY, HARDWARE, BAD_ARGUMENT, …).
   * Only the autonomy layer's actuation gate may call this.
   */
  async command(cmd: SerialCommand, opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const s = this.session;
    if (!s)
      throw new SerialRequestError(
        `serial device ${this.id} is not connected; ${cmd.command} was not sent`,
        "serial_not_connected",
      );
    const cap = {
      reject_pulse: Capability.reject_pulse,
      light_tower: Capability.light_tower,
      set_period: Capability.set_period,
    }[cmd.command];
    if ((s.hello.capabilities & cap) === 0)
      throw new SerialRequestError(
        `device ${s.hello.device_id} has no ${cmd.command} capability`,
        "serial_rejected",
        "UNSUPPORTED",
      );
    this.counters.commands_sent++;
    try {
      const ex = await this.requests.request(
        "command",
        (req_id) => commandMessage(cmd, req_id),
        opts.timeoutMs ?? this.o.commandTimeoutMs,
      );
      if (ex.reply.status !== 0) {
        const name = errorName(ex.reply.status);
        throw new SerialRequestError(`device did not execute ${cmd.command}: ${name}`, "serial_rejected", name);
      }
      this.counters.commands_ok++;
      return { command: cmd.command, device_us: ex.reply.device_us, rtt_ms: ex.receivedAt - ex.sentAt };
    } catch (err) {
      this.counters.commands_failed++;
      throw err;
    }
  }

  // ── connection lifecycle ────────────────────────────────────────────────────────────────────────────────────────

  private async run(firstDone: () => void): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let reason: string;
      try {
        const hadSession = await this.connectOnce(firstDone);
        reason = "connection closed";
        if (hadSession) attempt = 0;
      } catch (err) {
        reason = (err as Error).message;
        this.counters.connect_failures++;
        const level = attempt === 0 ? "warn" : "debug";
        this.log[level]({ path: this.opts.path, err: (err as Error).message, attempt }, "serial device not reachable");
      }
      firstDone();
      if (this.stopped) break;
      if (attempt >= this.retry.maxRetry) {
        this.log.error({ path: this.opts.path, attempts: attempt }, "serial device: giving up after maxRetry attempts");
        break;
      }
      const delay = retryDelay(this.retry, attempt++);
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

  /** Opens, handshakes and runs one connection; resolves when it closes. Returns whether a session was established. */
  private async connectOnce(firstDone: () => void): Promise<boolean> {
    const Driver = this.driver!;
    const port = new Driver({ path: this.opts.path, baudRate: this.o.baudRate, autoOpen: false });
    // Without an 'error' listener an emitter error would throw and take the daemon down. A read or write error on an
    // open port means the link is gone (serialport reports a vanished PTY or USB adapter as EIO without closing the
    // port itself): close it, and the reconnect loop takes over.
    port.on("error", (err: NodeJS.ErrnoException) => {
      this.log.debug({ err: err.message, code: err.code }, "serial port error: closing the link");
      if (port.isOpen) void closeQuietly(port);
    });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    const closed = new Promise<void>((resolve) =>
      port.once("close", () => {
        // Settle what waits for the device now (a handshake in progress included) rather than at its timeout.
        this.requests.failAll(new SerialRequestError(`serial link to ${this.id} closed`, "serial_not_connected"));
        resolve();
      }),
    );
    this.openedIdentity = await deviceIdentity(this.opts.path).catch(() => undefined);
    if (this.stopped || !port.isOpen) {
      await closeQuietly(port);
      if (this.stopped) return false;
      throw new Error(`serial port ${this.opts.path} closed right after opening`);
    }
    this.parser.reset();
    this.port = port;
    port.on("data", (chunk: Buffer) => this.onData(chunk));
    let hadSession = false;
    try {
      await this.handshake();
      hadSession = true;
      this.onSessionUp();
      firstDone();
      await closed;
    } catch (err) {
      if (!this.stopped) {
        this.counters.handshake_failures++;
        this.log.warn({ path: this.opts.path, err: (err as Error).message }, "serial handshake failed");
      }
      await closeQuietly(port);
      throw err;
    } finally {
      this.port = undefined;
      this.stopTimers();
      const wasUp = this.session !== undefined || hadSession;
      this.session = undefined;
      this.requests.failAll(new SerialRequestError(`serial link to ${this.id} closed`, "serial_not_connected"));
      if (wasUp && !this.stopped) {
        this.lostAt = this.clock.now();
        this.log.warn({ path: this.opts.path }, "serial device connection lost");
        this.emit("connectionLost", { reason: "port closed" });
      }
    }
    return hadSession;
  }

  private async handshake(): Promise<void> {
    this.session = undefined;
    let lastErr: Error | undefined;
    for (let i = 0; i < this.o.handshakeAttempts && !this.stopped; i++) {
      this.helloProblem = undefined;
      try {
        await this.requests.request(
          "host_hello",
          (req_id) => ({
            type: "host_hello",
            req_id,
            min_version: HOST_MIN_VERSION,
            max_version: HOST_MAX_VERSION,
            host_unix_ms: Math.round(this.clock.now()),
          }),
          this.o.handshakeTimeoutMs,
        );
      } catch (err) {
        lastErr = err as Error;
        if (err instanceof SerialRequestError && err.code === "serial_timeout") continue;
        if (err instanceof SerialRequestError && err.deviceError === "VERSION")
          throw new SerialDeviceError(`${err.message}; this glassd speaks ${HOST_MIN_VERSION}-${HOST_MAX_VERSION}`);
        throw err;
      }
      // The HELLO was applied synchronously when it arrived (applyHello), so that samples right behind it count.
      if (this.helloProblem) throw new SerialDeviceError(this.helloProblem);
      if (this.session) return;
    }
    throw new SerialDeviceError(
      `no HELLO from the device on ${this.opts.path} after ${this.o.handshakeAttempts} attempts (${lastErr?.message ?? "stopped"}); is the firmware running and the baud rate right?`,
    );
  }

  private onSessionUp(sameLink = false): void {
    const s = this.session!;
    const info = this.deviceInfo(s.hello);
    this.lastFrameAt = this.clock.now();
    if (sameLink) {
      this.log.info(info, "serial session re-established on the same link");
    } else if (!this.everConnected) {
      this.everConnected = true;
      this.log.info(info, "serial device connected");
      this.emit("connected", info);
    } else {
      this.counters.reconnects++;
      const down_ms = this.lostAt === undefined ? 0 : this.clock.now() - this.lostAt;
      this.log.info({ ...info, down_ms }, "serial device connection re-established");
      this.emit("reestablished", { ...info, down_ms });
    }
    this.startTimers(s.hello.heartbeat_ms);
  }

  private startTimers(heartbeatMs: number): void {
    this.stopTimers();
    const limit = Math.max(50, heartbeatMs) * this.o.watchdogFactor;
    let checking = false;
    this.watchdog = setInterval(
      () => {
        if (!this.session) return;
        if (this.clock.now() - this.lastFrameAt > limit) {
          this.counters.watchdog_timeouts++;
          this.log.warn({ silent_ms: this.clock.now() - this.lastFrameAt }, "serial device silent: reconnecting");
          void this.closePort();
          return;
        }
        // serialport does not always notice a vanished device (a PTY removed, a USB adapter unplugged: the pending
        // read is never woken), so check that the path still names the device that was opened.
        if (checking) return;
        checking = true;
        const opened = this.openedIdentity;
        void deviceIdentity(this.opts.path)
          .then((id) => id === opened)
          .catch(() => false)
          .then((same) => {
            checking = false;
            if (same || !this.session || opened !== this.openedIdentity) return;
            this.counters.path_vanished++;
            this.log.warn(
              { path: this.opts.path },
              "serial device path vanished or now names another device: reconnecting",
            );
            void this.closePort();
          });
      },
      Math.max(20, Math.min(250, heartbeatMs / 2)),
    );
    this.timeSync = setInterval(() => void this.syncTime(), this.o.timeSyncIntervalMs);
  }

  private stopTimers(): void {
    clearInterval(this.watchdog);
    clearInterval(this.timeSync);
    this.watchdog = undefined;
    this.timeSync = undefined;
  }

  private async syncTime(): Promise<void> {
    if (!this.session) return;
    try {
      const ex = await this.requests.request(
        "time_sync",
        (req_id) => ({ type: "time_sync", req_id, host_unix_ms: Math.round(this.clock.now()) }),
        this.o.handshakeTimeoutMs,
      );
      this.addTimeSample(ex.sentAt, ex.receivedAt, ex.reply.device_us);
      this.counters.time_syncs++;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "time sync failed");
    }
  }

  /** Keeps the offset of the exchange with the smallest round trip among the last few (least queueing delay). */
  private addTimeSample(sentAt: number, receivedAt: number, deviceUs: number): void {
    const rtt = receivedAt - sentAt;
    this.syncs.push({ rtt, offset: (sentAt + receivedAt) / 2 - deviceUs / 1000 });
    if (this.syncs.length > 8) this.syncs.shift();
    let best = this.syncs[0]!;
    for (const s of this.syncs) if (s.rtt < best.rtt) best = s;
    this.offsetMs = best.offset;
  }

  private async closePort(): Promise<void> {
    const p = this.port;
    if (p) await closeQuietly(p);
  }

  // ── receiving ───────────────────────────────────────────────────────────────────────────────────────────────────

  private onData(chunk: Buffer): void {
    try {
      this.parser.push(chunk);
    } catch (err) {
      // Only a bug can get here (the parser and handlers catch what the line can cause); keep the link alive.
      this.counters.malformed_packets++;
      this.log.error({ err }, "serial receive handler failed");
    }
  }

  private onPacket(packet: Uint8Array): void {
    this.lastFrameAt = this.clock.now();
    if (packet[0] === MessageType.samples) {
      this.onSamples(packet);
      return;
    }
    let m: Message;
    try {
      m = decodeMessage(packet);
    } catch (err) {
      if (err instanceof MalformedPacketError && err.reason === "unknown_type") this.counters.unknown_types++;
      else this.counters.malformed_packets++;
      this.log.debug({ err: (err as Error).message, type: packet[0] }, "serial packet dropped");
      return;
    }
    switch (m.type) {
      case "hello":
        if (m.req_id !== 0 && this.requests.isPending(m.req_id, "host_hello")) {
          const sentAt = this.requests.sentAt(m.req_id)!;
          this.applyHello(m, sentAt);
          this.requests.handle(m);
        } else if (m.req_id === 0) this.onAnnounce(m);
        else this.requests.handle(m); // a late answer: counted as unmatched
        return;
      case "heartbeat":
        if (this.session) {
          this.lastHeartbeat = { ...m, boot_id: this.session.boot, at: this.clock.now() };
          this.emit("heartbeat", m);
        }
        return;
      case "time_sync_reply":
      case "cmd_ack":
      case "error":
        if (!this.requests.handle(m) && m.type === "error")
          this.log.warn(
            { code: errorName(m.code), ref_type: m.ref_type, detail: m.detail },
            "device reported an error",
          );
        return;
      case "samples": // handled above
      case "host_hello":
      case "ack":
      case "time_sync":
      case "command":
        // Host-to-device types coming back: a loopback or a misconfigured link, not a device.
        this.counters.unknown_types++;
        return;
      default: {
        const never: never = m;
        this.log.debug({ message: never }, "unhandled serial message");
      }
    }
  }

  /** An unsolicited HELLO: the device booted or reopened its port. Start a new session on the same link. */
  private onAnnounce(m: HelloMessage): void {
    if (!this.session || this.rehandshaking) return; // during a handshake our own HOST_HELLO will be answered
    this.counters.announces++;
    this.log.info({ device_id: m.device_id, boot_id: m.boot_id }, "serial device announced itself: new handshake");
    this.session = undefined;
    this.rehandshaking = true;
    void this.handshake()
      .then(() => this.onSessionUp(true))
      .catch((err: Error) => {
        this.counters.handshake_failures++;
        this.log.warn({ err: err.message }, "serial re-handshake failed: reconnecting");
        void this.closePort();
      })
      .finally(() => {
        this.rehandshaking = false;
      });
  }

  /** Applies a HELLO answering our HOST_HELLO: checks, time offset, sequence epoch, channel map. */
  private applyHello(h: HelloMessage, sentAt: number): void {
    if (h.version < HOST_MIN_VERSION || h.version > HOST_MAX_VERSION) {
      this.helloProblem = `device chose protocol version ${h.version}; this glassd speaks ${HOST_MIN_VERSION}-${HOST_MAX_VERSION}`;
      return;
    }
    if (this.opts.deviceId !== undefined && h.device_id !== this.opts.deviceId) {
      this.helloProblem = `device on ${this.opts.path} is ${h.device_id}, expected ${this.opts.deviceId}; check the serial path or the configured device id`;
      return;
    }
    const now = this.clock.now();
    const prevBoot = this.mapper!.bootId;
    if (prevBoot !== h.boot_id) this.syncs = [];
    this.addTimeSample(sentAt, now, h.device_us);
    const hb = this.lastHeartbeat;
    const res = this.mapper!.session(h.boot_id, hb);
    if (res.reset) {
      this.durableWireSeq = undefined;
      this.log.warn(
        {
          device_id: h.device_id,
          old_boot_id: prevBoot,
          boot_id: h.boot_id,
          lost_samples_lower_bound: res.lostSamples,
        },
        "serial device rebooted: its sequence restarted",
      );
      this.emit("deviceReset", {
        old_boot_id: prevBoot ?? 0,
        boot_id: h.boot_id,
        lost_samples_lower_bound: res.lostSamples,
      });
    }
    if (prevBoot !== h.boot_id) this.lastHeartbeat = undefined;
    this.channels = [];
    for (const c of h.channels) {
      const tag = this.tagByChannel.get(c.id);
      this.channels[c.id] = tag ? { tag: tag.id, valueType: c.value_type } : undefined;
      if (!tag)
        this.log.warn(
          { channel: c.id, name: c.name },
          "serial channel has no tag (sources.serial.channel); its samples are quarantined as unknown_tag",
        );
      else if (c.unit !== "" && c.unit !== tag.unit)
        this.log.warn(
          { channel: c.id, tag: tag.id, device_unit: c.unit, tag_unit: tag.unit },
          "serial channel unit differs from its tag's unit",
        );
    }
    for (const [ch, tag] of this.tagByChannel)
      if (!h.channels.some((c) => c.id === ch))
        this.log.warn({ channel: ch, tag: tag.id }, "tag expects a serial channel the device does not announce");
    this.session = { hello: h, boot: h.boot_id, startedAt: now };
  }

  private onSamples(packet: Uint8Array): void {
    const s = this.session;
    if (!s) {
      this.counters.samples_without_session++;
      return;
    }
    let v: SamplesView;
    try {
      v = this.view.wrap(packet);
    } catch (err) {
      this.counters.malformed_packets++;
      this.log.debug({ err: (err as Error).message }, "malformed SAMPLES dropped");
      return;
    }
    this.counters.batches_received++;
    if (this.pending.length >= this.o.maxPendingBatches) {
      // Not accepted, not acknowledged: the device keeps the batch and resends it.
      this.counters.backpressure_holds++;
      return;
    }
    const verdict = this.mapper!.classify(v.seq, v.oldest, v.first_sample, v.count);
    if (verdict.kind === "hold") return;
    if (verdict.kind === "duplicate") {
      if (verdict.durable) this.ackDuplicate(s.boot, v.seq);
      return;
    }
    if (verdict.gap) {
      const g = { ...verdict.gap, source: this.id };
      this.log.warn(g, "serial sequence gap: samples lost on the device");
      this.emit("gap", g);
    }
    const n = v.count - verdict.skip;
    const samples: RawSample[] = new Array(n);
    const base = v.base_us;
    const offset = this.offsetMs;
    for (let k = 0; k < n; k++) {
      const i = k + verdict.skip;
      const ch = v.channel(i);
      const map = this.channels[ch];
      let tag: string;
      let vt: number;
      if (map) {
        tag = map.tag;
        vt = map.valueType;
      } else {
        tag = `${this.id}/ch${ch}`;
        vt = ValueType.u32;
        this.counters.unmapped_samples++;
      }
      samples[k] = {
        tag,
        ts: Math.round(offset + (base + v.offsetUs(i)) / 1000),
        value: v.value(i, vt),
        quality: QUALITY[v.quality(i)] ?? "bad",
        source: this.id,
        seq: verdict.hostFirst + k,
      };
    }
    this.counters.samples_received += n;
    this.pending.push({ samples, gen: verdict.gen, after: verdict.after, wireSeq: v.seq, boot: s.boot });
    if (!this.sinkRunning) this.sinkRunning = this.drain();
  }

  /** Feeds pending batches to the sink one call at a time; acknowledges each call's last batch once it resolved. */
  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const take: Pending[] = [];
        let n = 0;
        while (
          this.pending.length > 0 &&
          (take.length === 0 || n + this.pending[0]!.samples.length <= this.o.maxSinkSamples)
        ) {
          const p = this.pending.shift()!;
          take.push(p);
          n += p.samples.length;
        }
        const batch = take.length === 1 ? take[0]!.samples : take.flatMap((p) => p.samples);
        try {
          if (!this.sink) throw new GlassdError("no sink attached to the serial source", { code: "no_sink" });
          await this.persistEpoch();
          await this.sink(batch);
        } catch (err) {
          this.counters.sink_errors++;
          // Everything after the failed call is past the durable point too: forget it, the device resends it all.
          this.pending.length = 0;
          if (!this.mapper!.rewind(take[0]!.gen)) this.counters.lost_on_sink_error += n;
          this.log.error({ err, samples: n }, "serial batch not stored: not acknowledged, the device will resend it");
          return;
        }
        for (const p of take) this.mapper!.durable(p.gen, p.after);
        this.counters.batches_durable += take.length;
        this.counters.samples_durable += n;
        const s = this.session;
        let ackable: Pending | undefined;
        for (const p of take) if (s && p.boot === s.boot) ackable = p;
        if (ackable) this.sendAck(ackable.boot, ackable.wireSeq);
      }
    } finally {
      this.sinkRunning = undefined;
    }
  }

  private async persistEpoch(): Promise<void> {
    const m = this.mapper!;
    if (!m.epochDirty) return;
    const ep = m.epoch;
    if (ep && this.opts.state) await this.opts.state.putState(this.stateKey, ep);
    m.epochDirty = false;
  }

  private ackDuplicate(boot: number, seq: number): void {
    const d = this.durableWireSeq;
    // The duplicate is durable and so is every batch before it: acknowledging up to it is safe.
    const ackSeq = d && d.boot === boot && ((d.seq - seq) | 0) > 0 ? d.seq : seq;
    this.sendAck(boot, ackSeq);
  }

  private sendAck(boot: number, seq: number): void {
    const s = this.session;
    if (!s || s.boot !== boot || !this.port) return;
    this.durableWireSeq = { boot, seq };
    try {
      this.write({ type: "ack", seq });
      this.counters.acks_sent++;
      this.emit("ack", { seq, boot_id: boot });
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, "ACK not written");
    }
  }

  private write(m: Message): void {
    const port = this.port;
    if (!port?.isOpen) throw new Error("serial port is not open");
    port.write(Buffer.from(encodeFrame(encodeMessage(m))), (err) => {
      if (err) this.log.debug({ err: err.message, type: m.type }, "serial write failed");
    });
  }

  private deviceInfo(h: HelloMessage): DeviceInfo {
    return {
      device_id: h.device_id,
      boot_id: h.boot_id,
      firmware: `${h.fw_major}.${h.fw_minor}.${h.fw_patch}`,
      protocol_version: h.version,
      capabilities: h.capabilities,
      channels: h.channels.map((c) => ({
        id: c.id,
        name: c.name,
        unit: c.unit,
        period_us: c.period_us,
        tag: this.tagByChannel.get(c.id)?.id ?? null,
      })),
    };
  }

  private emit<K extends keyof SerialSourceEvents>(event: K, e: SerialSourceEvents[K]): void {
    this.events.emit(event, e);
  }
}

function commandMessage(cmd: SerialCommand, req_id: number): CommandMessage {
  switch (cmd.command) {
    case "reject_pulse":
      return { type: "command", req_id, command: Command.reject_pulse, duration_ms: cmd.duration_ms };
    case "light_tower":
      return {
        type: "command",
        req_id,
        command: Command.light_tower,
        red: Lamp[cmd.red],
        amber: Lamp[cmd.amber],
        green: Lamp[cmd.green],
        buzzer: Lamp[cmd.buzzer ?? "off"],
      };
    case "set_period":
      return {
        type: "command",
        req_id,
        command: Command.set_period,
        channel: cmd.channel,
        period_us: Math.round(cmd.period_ms * 1000),
      };
    default: {
      const never: never = cmd;
      throw new RangeError(`unknown serial command ${JSON.stringify(never)}`);
    }
  }
}

function isEpoch(x: unknown): x is EpochRecord {
  const e = x as EpochRecord | undefined;
  return typeof e === "object" && e !== null && Number.isSafeInteger(e.boot_id) && Number.isSafeInteger(e.base);
}

/** What the path names now: device and inode of the file it resolves to (a replugged adapter gets another). */
async function deviceIdentity(path: string): Promise<string> {
  const st = await stat(path);
  return `${st.dev}:${st.ino}:${st.rdev}`;
}

function closeQuietly(port: SerialPort): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) return resolve();
    port.close(() => resolve());
  });
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
