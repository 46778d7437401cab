import { GlassdError } from "../../core/errors.js";
import {
  type CmdAckMessage,
  type CommandMessage,
  type ErrorMessage,
  errorName,
  type HelloMessage,
  type HostHelloMessage,
  type Message,
  type TimeSyncMessage,
  type TimeSyncReplyMessage,
} from "./messages.js";

/*
 * Layer (c) of the serial protocol: request/response matching. A request (HOST_HELLO, TIME_SYNC, COMMAND) gets a
 * fresh req_id, waits in a small bounded queue while `maxInFlight` others are on the wire, and settles with the
 * device's answer carrying the same req_id (or its ERROR), a timeout, or the link going down. The timeout covers
 * the wait in the queue too: a caller never waits longer than it asked for.
 */

export type RequestMessage = HostHelloMessage | TimeSyncMessage | CommandMessage;
type ReplyFor<R extends RequestMessage> = R extends HostHelloMessage
  ? HelloMessage
  : R extends TimeSyncMessage
    ? TimeSyncReplyMessage
    : CmdAckMessage;

const REPLY_TYPE: Record<RequestMessage["type"], Message["type"]> = {
  host_hello: "hello",
  time_sync: "time_sync_reply",
  command: "cmd_ack",
};

/** A settled request: the reply and when it went out and came back (ms, the queue's clock). */
export interface Exchange<T> {
  reply: T;
  sentAt: number;
  receivedAt: number;
}

export type SerialErrorCode =
  | "serial_not_connected"
  | "serial_timeout"
  | "serial_queue_full"
  | "serial_refused"
  | "serial_rejected";

/** Why a serial request failed. `code` says what to do next (see the messages). */
export class SerialRequestError extends GlassdError {
  /** The device's error code name for `serial_refused` / `serial_rejected` (e.g. "BUSY"). */
  readonly deviceError: string | undefined;
  constructor(message: string, code: SerialErrorCode, deviceError?: string, cause?: unknown) {
    super(message, {
      status: code === "serial_timeout" ? 504 : 503,
      code,
      details: { device_error: deviceError },
      cause,
    });
    this.deviceError = deviceError;
  }
}

export interface RequestQueueOptions {
  /** Writes a message to the link; throws when it cannot. */
  send(m: Message): void;
  /** Requests waiting for a slot on the wire. Default 16. */
  capacity?: number;
  /** Requests on the wire at once. Default 4. */
  maxInFlight?: number;
  now?: () => number;
}

export interface RequestQueueStats {
  sent: number;
  answered: number;
  refused: number;
  timeouts: number;
  queue_full: number;
  /** Answers that matched no pending request (late after a timeout, or duplicated on the wire). */
  unmatched: number;
}

interface Entry {
  build: (reqId: number) => RequestMessage;
  replyType: Message["type"];
  timer: NodeJS.Timeout;
  resolve: (e: Exchange<Message>) => void;
  reject: (err: Error) => void;
  reqId: number;
  sentAt: number;
  what: string;
}

export class RequestQueue {
  readonly stats: RequestQueueStats = { sent: 0, answered: 0, refused: 0, timeouts: 0, queue_full: 0, unmatched: 0 };
  private readonly waiting: Entry[] = [];
  private readonly inFlight = new Map<number, Entry>();
  private lastId = 0;
  private readonly capacity: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;

  constructor(private readonly opts: RequestQueueOptions) {
    this.capacity = opts.capacity ?? 16;
    this.maxInFlight = opts.maxInFlight ?? 4;
    this.now = opts.now ?? Date.now;
  }

  /** Requests waiting plus on the wire. */
  get pending(): number {
    return this.waiting.length + this.inFlight.size;
  }

  /**
   * Sends the request `build(reqId)` and resolves with the device's answer. Rejects with SerialRequestError:
   * `serial_queue_full` at once when the queue is full, `serial_timeout` after `timeoutMs`, `serial_refused` when
   * the device answered ERROR, `serial_not_connected` when the link went down (see `failAll`).
   */
  request<R extends RequestMessage>(
    type: R["type"],
    build: (reqId: number) => R,
    timeoutMs: number,
  ): Promise<Exchange<ReplyFor<R>>> {
    if (this.waiting.length >= this.capacity) {
      this.stats.queue_full++;
      return Promise.reject(
        new SerialRequestError(
          `serial request queue full (${this.capacity} waiting); the device is slow or gone, try again later`,
          "serial_queue_full",
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const entry: Entry = {
        build,
        replyType: REPLY_TYPE[type],
        reqId: 0,
        sentAt: 0,
        what: type,
        resolve: resolve as (e: Exchange<Message>) => void,
        reject,
        timer: setTimeout(() => this.timeout(entry, timeoutMs), timeoutMs),
      };
      this.waiting.push(entry);
      this.pump();
    });
  }

  /** When the request with `reqId` went out (ms), if it is on the wire. */
  sentAt(reqId: number): number | undefined {
    return this.inFlight.get(reqId)?.sentAt;
  }

  /** Whether `reqId` is a HOST_HELLO on the wire (its HELLO must be applied before later frames are read). */
  isPending(reqId: number, type: RequestMessage["type"]): boolean {
    return this.inFlight.get(reqId)?.what === type;
  }

  /** Offers a device message; returns true when it answered a pending request (which then settles). */
  handle(m: Message): boolean {
    if (m.type !== "hello" && m.type !== "time_sync_reply" && m.type !== "cmd_ack" && m.type !== "error") return false;
    if (m.req_id === 0) return false; // unsolicited
    const e = this.inFlight.get(m.req_id);
    if (!e || (m.type !== "error" && m.type !== e.replyType)) {
      this.stats.unmatched++;
      return false;
    }
    this.settle(e);
    if (m.type === "error") {
      this.stats.refused++;
      e.reject(refusal(e.what, m));
    } else {
      this.stats.answered++;
      e.resolve({ reply: m, sentAt: e.sentAt, receivedAt: this.now() });
    }
    this.pump();
    return true;
  }

  /** Rejects everything waiting or on the wire (the link went down, or the owner stops). */
  failAll(err: Error): void {
    const all = [...this.waiting, ...this.inFlight.values()];
    this.waiting.length = 0;
    this.inFlight.clear();
    for (const e of all) {
      clearTimeout(e.timer);
      e.reject(err);
    }
  }

  private settle(e: Entry): void {
    clearTimeout(e.timer);
    this.inFlight.delete(e.reqId);
  }

  private timeout(e: Entry, ms: number): void {
    const i = this.waiting.indexOf(e);
    if (i >= 0) this.waiting.splice(i, 1);
    else this.inFlight.delete(e.reqId);
    this.stats.timeouts++;
    e.reject(
      new SerialRequestError(
        `${e.what} got no answer from the device within ${ms} ms${i >= 0 ? " (still queued behind other requests)" : ""}; the device may be busy, hung or disconnected`,
        "serial_timeout",
      ),
    );
    this.pump();
  }

  private nextId(): number {
    for (;;) {
      this.lastId = (this.lastId % 0xffff) + 1;
      if (!this.inFlight.has(this.lastId)) return this.lastId;
    }
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.waiting.length > 0) {
      const e = this.waiting.shift()!;
      e.reqId = this.nextId();
      e.sentAt = this.now();
      this.inFlight.set(e.reqId, e);
      try {
        this.opts.send(e.build(e.reqId));
        this.stats.sent++;
      } catch (err) {
        this.settle(e);
        e.reject(
          new SerialRequestError(
            `${e.what} could not be written to the serial port (${(err as Error).message})`,
            "serial_not_connected",
            undefined,
            err,
          ),
        );
      }
    }
  }
}

function refusal(what: string, m: ErrorMessage): SerialRequestError {
  const name = errorName(m.code);
  const hint =
    name === "NO_SESSION"
      ? "the device lost the session; it will be re-established"
      : name === "VERSION"
        ? `the device speaks protocol versions ${m.detail & 0xff}-${m.detail >> 8}`
        : "see PROTOCOL.md §5";
  return new SerialRequestError(`device refused ${what}: ${name} (${hint})`, "serial_refused", name);
}
