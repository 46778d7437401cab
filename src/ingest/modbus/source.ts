import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { ModbusRTU } from "modbus-serial/ModbusRTU.js";
import { type Clock, realClock } from "../../core/clock.js";
import { ConfigError } from "../../core/errors.js";
import { TypedEvents } from "../../core/events.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { DEFAULT_RETRY, type RetryPolicy, retryDelay } from "../../core/retry.js";
import { throwIfAborted } from "../../core/service.js";
import type { RawSample } from "../../core/types.js";
import type { SampleSink, SampleSource } from "../ports.js";
import { type Block, engineeringValue, planBlocks } from "./blocks.js";
import { type ModbusConfig, modbusConfigIssues } from "./config.js";

/*
 * Modbus RTU master for off-the-shelf serial instruments (modbus-serial, RTU buffered port). One request at a time
 * on the line (RS-485 is half duplex): the block due soonest is read, its registers decoded into RawSamples that
 * share the reply's timestamp, and the batch handed to the sink; the next request waits until the sink resolved
 * (durable), so a slow store slows polling instead of piling up memory.
 *
 * Nothing on the line can throw out of here. Per request: an exception reply (function code | 0x80) is counted by
 * exception code, a missing reply is a timeout, a reply with a bad CRC or the wrong length (garbage, a collision, a
 * late reply to an earlier request) is counted; after any of those the line is left silent for a moment and the
 * receive buffer is emptied, so that a late reply can never be taken for the answer to the next request. A read
 * error on the port or its close event, or a device path that vanished (checked after `vanish_after_timeouts`
 * consecutive timeouts: a PTY or USB adapter that went away often just goes quiet), closes the link and the source
 * reconnects with jittered backoff (src/core/retry.ts), never giving up.
 */

export interface ModbusStateStore {
  lastSeq(source: string): number | undefined;
}

export interface ModbusRtuOptions {
  config: ModbusConfig;
  logger?: Logger;
  clock?: Clock;
  /** Where the last stored seq comes from (the daemon's Store), so seq keeps increasing across restarts. */
  state?: ModbusStateStore;
  /** Last stored seq when `state` is not given. Default 0. */
  startSeq?: number;
}

export interface ModbusSourceEvents {
  connected: { path: string };
  reestablished: { path: string; down_ms: number };
  connectionLost: { reason: string };
  backoff: { attempt: number; delay_ms: number; reason: string };
}

export interface ModbusSourceStats {
  connected: boolean;
  requests: number;
  replies_ok: number;
  timeouts: number;
  /** Exception replies by exception code (1 illegal function, 2 illegal data address, 3 illegal value, 4 device failure, …). */
  exceptions: Record<string, number>;
  exceptions_total: number;
  crc_errors: number;
  /** Replies of the wrong length, address or function (garbage on the line). */
  bad_frames: number;
  other_errors: number;
  samples: number;
  batches_durable: number;
  sink_errors: number;
  /** Samples read but not stored because the sink failed (a poll cannot be re-asked for the past). */
  lost_on_sink_error: number;
  /** Polls that started more than one period late (the line is too slow for the configured periods). */
  overruns: number;
  reconnects: number;
  connect_failures: number;
  path_vanished: number;
  blocks: number;
}

type Listener<K extends keyof ModbusSourceEvents> = (e: ModbusSourceEvents[K]) => void;

interface Scheduled {
  block: Block;
  due: number;
}

/** Modbus exception codes by name, for logs. */
const EXCEPTION_NAMES: Record<number, string> = {
  1: "illegal function",
  2: "illegal data address",
  3: "illegal data value",
  4: "server device failure",
  5: "acknowledge",
  6: "server device busy",
  10: "gateway path unavailable",
  11: "gateway target failed to respond",
};

const STOP_WAIT_MS = 5_000;

export class ModbusRtuSource implements SampleSource {
  readonly id: string;
  readonly name: string;
  private readonly c: ModbusConfig;
  private readonly log: Logger;
  private readonly events: TypedEvents<ModbusSourceEvents>;
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly schedule: Scheduled[];
  private sink: SampleSink | undefined;
  private seq = 0;
  private client: ModbusRTU | undefined;
  private linkDown: ((reason: string) => void) | undefined;
  private started = false;
  private stopped = false;
  private everConnected = false;
  private lostAt = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private consecutiveTimeouts = 0;
  private openedIdentity: string | undefined;
  private readonly exceptions: Record<string, number> = {};
  private readonly n = {
    requests: 0,
    replies_ok: 0,
    timeouts: 0,
    crc_errors: 0,
    bad_frames: 0,
    other_errors: 0,
    samples: 0,
    batches_durable: 0,
    sink_errors: 0,
    lost_on_sink_error: 0,
    overruns: 0,
    reconnects: 0,
    connect_failures: 0,
    path_vanished: 0,
  };

  constructor(private readonly opts: ModbusRtuOptions) {
    const c = opts.config;
    const issues = modbusConfigIssues(c);
    if (issues.length) throw new ConfigError(issues);
    this.c = c;
    this.id = `modbus:${c.id ?? basename(c.path)}`;
    this.name = this.id;
    this.log = opts.logger ?? silentLogger;
    this.events = new TypedEvents<ModbusSourceEvents>(this.log, "Modbus");
    this.clock = opts.clock ?? realClock;
    this.retry = {
      ...DEFAULT_RETRY,
      initialDelayMs: c.retry.initial_delay_ms,
      maxDelayMs: c.retry.max_delay_ms,
      jitter: c.retry.jitter,
    };
    this.schedule = planBlocks(c.tags, c.max_block_registers, c.max_gap_registers).map((block) => ({ block, due: 0 }));
  }

  attach(sink: SampleSink): void {
    this.sink = sink;
  }

  on<K extends keyof ModbusSourceEvents>(event: K, fn: Listener<K>): () => void {
    return this.events.on(event, fn);
  }

  /** Starts polling in the background; a missing device does not hold up the daemon's start (it keeps retrying). */
  async start(signal: AbortSignal): Promise<void> {
    if (this.started) return;
    throwIfAborted(signal);
    this.started = true;
    this.seq = this.opts.state?.lastSeq(this.id) ?? this.opts.startSeq ?? 0;
    // modbus-serial is CommonJS whose typings declare `export default`: under NodeNext the class is `.default` of
    // the default import (at run time module.exports.default is module.exports, the class, so both agree).
    const Driver = (await import("modbus-serial")).default.default;
    throwIfAborted(signal);
    this.loop = this.run(Driver);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    this.linkDown?.("source stopped");
    await withTimeout(this.loop ?? Promise.resolve(), STOP_WAIT_MS);
  }

  stats(): ModbusSourceStats {
    let total = 0;
    for (const v of Object.values(this.exceptions)) total += v;
    return {
      connected: this.client !== undefined,
      ...this.n,
      exceptions: { ...this.exceptions },
      exceptions_total: total,
      blocks: this.schedule.length,
    };
  }

  // ── connection ─────────────────────────────────────────────────────────────────────────────────────────────────

  private async run(Driver: typeof ModbusRTU): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let reason: string;
      try {
        reason = await this.connectOnce(Driver);
        attempt = 0;
      } catch (err) {
        reason = (err as Error).message;
        this.n.connect_failures++;
        this.log[attempt === 0 ? "warn" : "debug"](
          { path: this.c.path, err: reason, attempt },
          "Modbus serial port not reachable",
        );
      }
      if (this.stopped) break;
      const delay = retryDelay(this.retry, attempt++);
      this.emit("backoff", { attempt, delay_ms: delay, reason });
      await this.sleep(delay);
    }
  }

  /** Opens the port and polls until the link goes down; returns why. Throws when the port cannot be opened. */
  private async connectOnce(Driver: typeof ModbusRTU): Promise<string> {
    const client = new Driver();
    // Without an 'error' listener a port error would be thrown from the emitter and take the daemon down.
    client.on("error", (err: unknown) => this.linkDown?.(`serial port error: ${(err as Error).message}`));
    await client.connectRTUBuffered(this.c.path, {
      baudRate: this.c.baud_rate,
      parity: this.c.parity,
      dataBits: this.c.data_bits,
      stopBits: this.c.stop_bits,
    });
    client.setTimeout(this.c.timeout_ms);
    this.openedIdentity = await deviceIdentity(this.c.path).catch(() => undefined);
    // Set by the port's close/error events; the poll loop sees it at its next step (a request in flight ends at
    // its timeout at the latest), so there is never more than one loop using the line.
    let downReason: string | undefined;
    this.linkDown = (reason) => {
      if (downReason !== undefined) return;
      downReason = reason;
      this.wake?.();
    };
    client.on("close", () => this.linkDown?.("serial port closed"));
    this.client = client;
    this.consecutiveTimeouts = 0;
    const now = this.clock.now();
    if (this.everConnected) {
      this.n.reconnects++;
      this.emit("reestablished", { path: this.c.path, down_ms: now - this.lostAt });
      this.log.info({ path: this.c.path, down_ms: now - this.lostAt }, "Modbus serial link re-established");
    } else {
      this.everConnected = true;
      this.emit("connected", { path: this.c.path });
      this.log.info({ path: this.c.path, blocks: this.schedule.length }, "Modbus serial link up");
    }
    for (const s of this.schedule) s.due = now;
    let reason: string;
    try {
      const ended = await this.pollLoop(() => downReason !== undefined);
      reason = downReason ?? ended;
    } finally {
      this.client = undefined;
      this.linkDown = undefined;
      this.lostAt = this.clock.now();
      await closeQuietly(client);
    }
    if (!this.stopped) {
      this.emit("connectionLost", { reason });
      this.log.warn({ path: this.c.path, reason }, "Modbus serial link lost; reconnecting");
    }
    return reason;
  }

  // ── polling ────────────────────────────────────────────────────────────────────────────────────────────────────

  private async pollLoop(isDown: () => boolean): Promise<string> {
    const client = this.client!;
    while (!this.stopped && !isDown()) {
      let next = this.schedule[0]!;
      for (const s of this.schedule) if (s.due < next.due) next = s;
      const wait = next.due - this.clock.now();
      if (wait > 0) {
        await this.sleep(wait);
        continue; // re-pick: the link may be down or the source stopped meanwhile
      }
      const b = next.block;
      const now = this.clock.now();
      if (now - next.due > b.periodMs) this.n.overruns++;
      next.due = Math.max(next.due + b.periodMs, now);
      const outcome = await this.readBlock(client, b);
      if (outcome === "link_down") return "serial port not open";
      if (outcome === "vanished") return "serial device path vanished";
      if (this.c.inter_request_delay_ms > 0) await this.sleep(this.c.inter_request_delay_ms);
    }
    return this.stopped ? "source stopped" : "link down";
  }

  private async readBlock(client: ModbusRTU, b: Block): Promise<"ok" | "error" | "link_down" | "vanished"> {
    this.n.requests++;
    let regs: Buffer;
    try {
      client.setID(b.unit);
      const res =
        b.table === "holding"
          ? await client.readHoldingRegisters(b.start, b.count)
          : await client.readInputRegisters(b.start, b.count);
      regs = res.buffer;
      if (regs.length !== b.count * 2)
        throw new Error(`Data length error: ${regs.length} bytes for ${b.count} registers`);
    } catch (err) {
      return this.onRequestError(client, b, err as Error & { modbusCode?: number; errno?: string });
    }
    this.n.replies_ok++;
    this.consecutiveTimeouts = 0;
    const ts = this.clock.now();
    const batch: RawSample[] = new Array(b.tags.length);
    for (let i = 0; i < b.tags.length; i++) {
      const t = b.tags[i]!;
      batch[i] = {
        tag: t.tag,
        ts,
        value: engineeringValue(regs, t),
        quality: "good",
        source: this.id,
        seq: ++this.seq,
      };
    }
    this.n.samples += batch.length;
    try {
      if (!this.sink) throw new Error("no sink attached to the Modbus source");
      await this.sink(batch);
      this.n.batches_durable++;
    } catch (err) {
      this.n.sink_errors++;
      this.n.lost_on_sink_error += batch.length;
      this.log.error({ err, samples: batch.length }, "Modbus samples not stored");
    }
    return "ok";
  }

  private async onRequestError(
    client: ModbusRTU,
    b: Block,
    err: Error & { modbusCode?: number; errno?: string },
  ): Promise<"error" | "link_down" | "vanished"> {
    const where = { unit: b.unit, table: b.table, start: b.start, count: b.count };
    if (typeof err.modbusCode === "number") {
      // A well-formed answer: the device is there and says no (wrong address, unsupported function, busy).
      this.consecutiveTimeouts = 0;
      const k = String(err.modbusCode);
      this.exceptions[k] = (this.exceptions[k] ?? 0) + 1;
      this.log.debug({ ...where, code: err.modbusCode, name: EXCEPTION_NAMES[err.modbusCode] }, "Modbus exception");
      return "error";
    }
    if (!client.isOpen || err.errno === "ECONNREFUSED") return "link_down";
    if (err.errno === "ETIMEDOUT") {
      this.n.timeouts++;
      this.consecutiveTimeouts++;
      this.log.debug(where, "Modbus request timed out");
      if (this.consecutiveTimeouts >= this.c.vanish_after_timeouts) {
        this.consecutiveTimeouts = 0;
        const now = await deviceIdentity(this.c.path).catch(() => undefined);
        if (now === undefined || now !== this.openedIdentity) {
          this.n.path_vanished++;
          return "vanished";
        }
      }
    } else if (/CRC error/.test(err.message)) this.n.crc_errors++;
    else if (/Data length error|Unexpected data error/.test(err.message)) this.n.bad_frames++;
    else {
      this.n.other_errors++;
      this.log.debug({ ...where, err: err.message }, "Modbus request failed");
    }
    await this.quietAndFlush(client);
    return client.isOpen ? "error" : "link_down";
  }

  /**
   * After a failed exchange: let the line go silent (a late or long reply finishes arriving), then drop whatever is
   * buffered, so the next request's answer is matched against its own bytes only. modbus-serial's RTU buffered port
   * keeps its receive buffer across requests and has no public way to clear it; `_buffer` is that buffer.
   */
  private async quietAndFlush(client: ModbusRTU): Promise<void> {
    await this.sleep(Math.max(20, this.c.inter_request_delay_ms));
    const port = (client as unknown as { _port?: { _buffer?: Buffer } })._port;
    if (port && Buffer.isBuffer(port._buffer)) port._buffer = Buffer.alloc(0);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private emit<K extends keyof ModbusSourceEvents>(event: K, e: ModbusSourceEvents[K]): void {
    this.events.emit(event, e);
  }
}

/** What the path names now: device and inode of the file it resolves to (a replugged adapter gets another). */
async function deviceIdentity(path: string): Promise<string> {
  const st = await stat(path);
  return `${st.dev}:${st.ino}:${st.rdev}`;
}

function closeQuietly(client: ModbusRTU): Promise<void> {
  return new Promise((resolve) => {
    try {
      if (!client.isOpen) return resolve();
      client.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}
