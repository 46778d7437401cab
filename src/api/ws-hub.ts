import { type Server as HttpServer, type IncomingMessage, STATUS_CODES } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { type Clock, realClock } from "../core/clock.js";
import { GlassdError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";

/** What the hub sends: the house WebSocket contract. `ts` is ms since the Unix epoch. */
export interface WsMessage<T = unknown> {
  type: string;
  ts: number;
  data: T;
}

/** The least the hub needs to know about an authenticated client. */
export interface WsPrincipal {
  subject: string;
}

/** Why an upgrade was refused; each is counted in {@link WsHubStats.rejected_total}. */
export type WsRejectReason =
  | "not_found"
  | "bad_request"
  | "forbidden_origin"
  | "unauthorized"
  | "full"
  | "shutting_down"
  | "error";

export interface WsHubStats {
  /** Clients connected now. */
  clients: number;
  connected_total: number;
  /** Clients whose send buffer went above `send_buffer_bytes` (named drop policy: disconnect-slow-consumer). */
  dropped_slow_total: number;
  /** Clients that did not answer a heartbeat ping in time. */
  dropped_unresponsive_total: number;
  /** Clients closed (1008) for flooding the hub with messages or errors. */
  closed_abusive_total: number;
  rejected_total: Record<WsRejectReason, number>;
  /** Client messages that were not valid JSON `{type}` or had an unknown type. */
  malformed_total: number;
  broadcasts_total: number;
  /** Messages handed to client sockets (each client counts once per message). */
  messages_sent_total: number;
  /** Payload bytes handed to client sockets (without WebSocket framing). */
  bytes_sent_total: number;
}

/** One connected client, as {@link WsHub.connections} reports it. */
export interface WsConnectionInfo {
  subject: string;
  ip: string;
  connected_at: number;
  buffered_bytes: number;
}

export interface WsHubOptions<P extends WsPrincipal = WsPrincipal> {
  /**
   * Checks the credential from the upgrade request (bare token or API key, without "Bearer "). Throws to refuse:
   * a GlassdError with status 401/403 is answered with that status and message; anything else with 500.
   */
  authenticate(credential: string, req: IncomingMessage): P | Promise<P>;
  /** `config.websocket`. */
  limits: { max_clients: number; max_payload_bytes: number; send_buffer_bytes: number };
  /** `config.server.allowed_origins`: browser origins allowed besides the server's own host. */
  allowedOrigins?: readonly string[];
  /** Upgrade path; default `/ws`. */
  path?: string;
  /** Ping period; a client that has not ponged by the next ping is terminated. Default 30 000 ms. */
  heartbeatMs?: number;
  /** Client message flood limits per `window_ms`; default 100 messages and 10 errors per 10 s. */
  clientLimits?: { window_ms?: number; max_messages?: number; max_errors?: number };
  clock?: Clock;
  logger?: Logger;
}

interface Client<P> {
  ws: WebSocket;
  principal: P;
  ip: string;
  connectedAt: number;
  alive: boolean;
  windowStart: number;
  windowMessages: number;
  windowErrors: number;
}

/** Subprotocol a browser offers, followed by the token, to authenticate without a query string: `["bearer", token]`. */
export const WS_BEARER_PROTOCOL = "bearer";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function normaliseOrigin(origin: string): string {
  try {
    const u = new URL(origin);
    // URL.origin lowercases the host and drops default ports; it is "null" for opaque origins.
    return u.origin === "null" ? origin.toLowerCase() : u.origin;
  } catch {
    return origin.trim().toLowerCase();
  }
}

/**
 * Fans out `{type, ts, data}` messages to authenticated WebSocket clients over ws 8 (noServer mode, sharing the
 * API's HTTP(S) server). Bounded everywhere: client count, client message size, per-client send buffer (a slow
 * client is disconnected rather than buffered without end), client message rate. A new client first receives the
 * latest retained message of each type, then live broadcasts.
 */
export class WsHub<P extends WsPrincipal = WsPrincipal> {
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client<P>>();
  private readonly retained = new Map<string, Buffer>();
  private readonly servers = new Set<HttpServer | HttpsServer>();
  private readonly allowedOrigins: Set<string>;
  private readonly path: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly clientLimits: { window_ms: number; max_messages: number; max_errors: number };
  private readonly heartbeat: NodeJS.Timeout;
  /** Upgrades between the capacity check and the handshake (authentication is async). */
  private pending = 0;
  private closing: Promise<void> | undefined;
  private readonly counters = {
    connected_total: 0,
    dropped_slow_total: 0,
    dropped_unresponsive_total: 0,
    closed_abusive_total: 0,
    malformed_total: 0,
    broadcasts_total: 0,
    messages_sent_total: 0,
    bytes_sent_total: 0,
  };
  private readonly rejected: Record<WsRejectReason, number> = {
    not_found: 0,
    bad_request: 0,
    forbidden_origin: 0,
    unauthorized: 0,
    full: 0,
    shutting_down: 0,
    error: 0,
  };

  constructor(private readonly opts: WsHubOptions<P>) {
    this.path = opts.path ?? "/ws";
    this.clock = opts.clock ?? realClock;
    this.log = opts.logger ?? silentLogger;
    this.allowedOrigins = new Set((opts.allowedOrigins ?? []).map(normaliseOrigin));
    this.clientLimits = { window_ms: 10_000, max_messages: 100, max_errors: 10, ...opts.clientLimits };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: opts.limits.max_payload_bytes,
      // No compression: it costs CPU and zlib memory per client on the edge PC, and on a plant LAN the bytes of a
      // ~10 KB result at 1-10 Hz are cheap. It would also defeat serialising each broadcast once for all clients.
      perMessageDeflate: false,
      // Answer the browser's ["bearer", token] offer with "bearer", never echoing the token back.
      handleProtocols: (protocols) => (protocols.has(WS_BEARER_PROTOCOL) ? WS_BEARER_PROTOCOL : false),
    });
    this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs ?? 30_000);
    // The HTTP server keeps the process alive while serving; the hub's timer alone should not.
    this.heartbeat.unref();
  }

  /**
   * Handles WebSocket upgrades on `server`. The hub owns every upgrade on that server: requests for other paths get
   * 404 and their socket is destroyed.
   */
  attach(server: HttpServer | HttpsServer): void {
    if (this.closing) throw new Error("WsHub is closed");
    if (this.servers.has(server)) return;
    this.servers.add(server);
    server.on("upgrade", this.onUpgrade);
  }

  /**
   * Sends `{type, ts, data}` to every client; serialised once for all of them. With `retain` (default true) the
   * message is also kept as the latest of its type and sent to clients that connect later. Returns the number of
   * clients it was handed to.
   */
  broadcast(type: string, data: unknown, opts: { retain?: boolean } = {}): number {
    if (typeof type !== "string" || !type) throw new TypeError("WsHub.broadcast: type must be a non-empty string");
    const msg: WsMessage = { type, ts: this.clock.now(), data };
    // One Buffer for all clients: ws frames a Buffer without copying it (server frames are not masked).
    const buf = Buffer.from(JSON.stringify(msg));
    if (opts.retain ?? true) this.retained.set(type, buf);
    this.counters.broadcasts_total++;
    let sent = 0;
    for (const c of this.clients) if (this.send(c, buf)) sent++;
    return sent;
  }

  /** Forgets the retained message of `type` (e.g. an alarm that cleared), so new clients do not get it. */
  forget(type: string): void {
    this.retained.delete(type);
  }

  stats(): WsHubStats {
    return { clients: this.clients.size, ...this.counters, rejected_total: { ...this.rejected } };
  }

  connections(): WsConnectionInfo[] {
    return [...this.clients].map((c) => ({
      subject: c.principal.subject,
      ip: c.ip,
      connected_at: c.connectedAt,
      buffered_bytes: c.ws.bufferedAmount,
    }));
  }

  /**
   * Stops accepting upgrades, closes every client with 1001 (going away), terminates those that have not finished
   * the closing handshake within `timeoutMs`, and releases the heartbeat timer. Idempotent.
   */
  close(timeoutMs = 2000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    clearInterval(this.heartbeat);
    for (const s of this.servers) s.off("upgrade", this.onUpgrade);
    this.servers.clear();
    const all = [...this.clients];
    const closed = all.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) resolve();
          else c.ws.once("close", () => resolve());
        }),
    );
    for (const c of all) c.ws.close(1001, "server shutting down");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    for (const c of all) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate();
    await Promise.all(closed);
    this.clients.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // An arrow so `off("upgrade")` removes exactly this listener.
  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.upgrade(req, socket, head).catch((err: unknown) => {
      this.log.error({ err }, "WebSocket upgrade failed");
      this.reject(socket, 500, "error", "internal error during WebSocket upgrade");
    });
  };

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Until ws owns the socket, a reset by the peer must not become an uncaught 'error'.
    const onError = (err: Error) => this.log.debug({ err: err.message }, "socket error before WebSocket handshake");
    socket.on("error", onError);
    if (this.closing) return this.reject(socket, 503, "shutting_down", "server is shutting down; reconnect later");
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== this.path)
      return this.reject(socket, 404, "not_found", `no WebSocket endpoint at ${url.pathname}; use ${this.path}`);
    if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket")
      return this.reject(socket, 400, "bad_request", "Upgrade header must be websocket");
    if (!this.originAllowed(req))
      return this.reject(
        socket,
        403,
        "forbidden_origin",
        `origin ${req.headers.origin} is not allowed; add it to server.allowed_origins`,
      );
    const credential = this.credential(req, url);
    if (!credential)
      return this.reject(
        socket,
        401,
        "unauthorized",
        "authentication required: send Authorization: Bearer <token>, the subprotocols [bearer, <token>], or ?token=",
      );
    if (this.clients.size + this.pending >= this.opts.limits.max_clients)
      return this.reject(socket, 503, "full", `WebSocket hub is full (${this.opts.limits.max_clients} clients)`, {
        "Retry-After": "10",
      });

    this.pending++;
    let principal: P;
    try {
      principal = await this.opts.authenticate(credential, req);
    } catch (err) {
      if (err instanceof GlassdError && (err.status === 401 || err.status === 403))
        return this.reject(socket, err.status, "unauthorized", err.message);
      this.log.error({ err }, "WebSocket authentication failed unexpectedly");
      return this.reject(socket, 500, "error", "could not check credentials; see the daemon log");
    } finally {
      this.pending--;
    }
    if (this.closing) return this.reject(socket, 503, "shutting_down", "server is shutting down; reconnect later");
    if (socket.destroyed) return;
    socket.off("error", onError);
    // Synchronous without verifyClient: the client joins `clients` before any other upgrade can pass the check.
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, principal, req));
  }

  private credential(req: IncomingMessage, url: URL): string | undefined {
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return m ? m[1] : auth; // a non-Bearer value goes to authenticate, which says why it is refused
    }
    const protocols = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((s) => s.trim());
    const i = protocols.indexOf(WS_BEARER_PROTOCOL);
    if (i >= 0 && protocols[i + 1]) return protocols[i + 1];
    const key = req.headers["x-api-key"];
    if (typeof key === "string" && key) return key;
    // Last: query strings end up in proxy and access logs; fine for tools on the plant LAN.
    return url.searchParams.get("token") || undefined;
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    // Browsers always send Origin; clients without one (SCADA gateways, scripts) are not subject to CSWSH.
    if (origin === undefined) return true;
    const o = normaliseOrigin(origin);
    if (this.allowedOrigins.has(o)) return true;
    const host = req.headers.host?.toLowerCase();
    if (!host || o === "null") return false;
    try {
      const u = new URL(o);
      return u.host === host || u.host === new URL(`${u.protocol}//${host}`).host;
    } catch {
      return false;
    }
  }

  private reject(
    socket: Duplex,
    status: number,
    reason: WsRejectReason,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    this.rejected[reason]++;
    this.log.debug({ status, reason, message }, "WebSocket upgrade refused");
    if (socket.destroyed) return;
    const body = JSON.stringify({ error: reason, message });
    const extra = status === 401 ? { "WWW-Authenticate": 'Bearer realm="glassd"', ...headers } : headers;
    const lines = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
      "Connection: close",
      "Content-Type: application/json",
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.once("finish", () => socket.destroy());
    socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  }

  private onConnection(ws: WebSocket, principal: P, req: IncomingMessage): void {
    const now = this.clock.now();
    const client: Client<P> = {
      ws,
      principal,
      ip: req.socket.remoteAddress ?? "unknown",
      connectedAt: now,
      alive: true,
      windowStart: now,
      windowMessages: 0,
      windowErrors: 0,
    };
    this.clients.add(client);
    this.counters.connected_total++;
    this.log.debug(
      { subject: principal.subject, ip: client.ip, clients: this.clients.size },
      "WebSocket client connected",
    );
    ws.on("pong", () => {
      client.alive = true;
    });
    ws.on("message", (data, isBinary) => this.onClientMessage(client, data, isBinary));
    ws.on("error", (err) => this.log.debug({ subject: principal.subject, err: err.message }, "WebSocket client error"));
    ws.on("close", (code) => {
      this.clients.delete(client);
      this.log.debug({ subject: principal.subject, code, clients: this.clients.size }, "WebSocket client disconnected");
    });
    // Runs before any later broadcast (single thread), so the snapshot always precedes live messages.
    for (const buf of this.retained.values()) if (!this.send(client, buf)) break;
  }

  /** Hands `buf` to the client's socket; drops the client when its unsent backlog exceeds the limit. */
  private send(c: Client<P>, buf: Buffer): boolean {
    if (c.ws.readyState !== WebSocket.OPEN) return false;
    c.ws.send(buf, { binary: false, compress: false, fin: true });
    this.counters.messages_sent_total++;
    this.counters.bytes_sent_total += buf.length;
    // What the kernel accepted is gone from bufferedAmount synchronously; what is left waits in user space.
    if (c.ws.bufferedAmount > this.opts.limits.send_buffer_bytes) {
      this.dropSlow(c);
      return false;
    }
    return true;
  }

  private dropSlow(c: Client<P>): void {
    this.clients.delete(c);
    this.counters.dropped_slow_total++;
    this.log.warn(
      {
        subject: c.principal.subject,
        ip: c.ip,
        buffered_bytes: c.ws.bufferedAmount,
        limit: this.opts.limits.send_buffer_bytes,
      },
      "dropping slow WebSocket client (send buffer full)",
    );
    // Terminate rather than close(1013): a close frame would queue behind the megabytes the client is not reading,
    // and the buffer would stay allocated until the 30 s closing timeout.
    c.ws.terminate();
  }

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        this.clients.delete(c);
        this.counters.dropped_unresponsive_total++;
        this.log.info({ subject: c.principal.subject, ip: c.ip }, "terminating unresponsive WebSocket client");
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  private onClientMessage(c: Client<P>, data: RawData, isBinary: boolean): void {
    c.alive = true;
    const now = this.clock.now();
    if (now - c.windowStart >= this.clientLimits.window_ms) {
      c.windowStart = now;
      c.windowMessages = 0;
      c.windowErrors = 0;
    }
    const { max_messages, max_errors, window_ms } = this.clientLimits;
    if (++c.windowMessages > max_messages) {
      this.closeAbusive(c, `more than ${max_messages} messages in ${window_ms} ms`);
      return;
    }
    const problem = this.answer(c, data, isBinary);
    if (problem === undefined) return;
    this.counters.malformed_total++;
    if (++c.windowErrors > max_errors) this.closeAbusive(c, `more than ${max_errors} bad messages in ${window_ms} ms`);
    else this.send(c, Buffer.from(JSON.stringify({ type: "error", ts: now, data: { message: problem } })));
  }

  /** Handles one client message; returns what was wrong with it, if anything. */
  private answer(c: Client<P>, data: RawData, isBinary: boolean): string | undefined {
    if (isBinary) return "binary messages are not supported; send JSON text";
    let msg: unknown;
    try {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      msg = JSON.parse(buf.toString("utf8"));
    } catch {
      return "message is not valid JSON";
    }
    if (!isObject(msg) || typeof msg.type !== "string") return 'message must be a JSON object with a string "type"';
    switch (msg.type) {
      case "ping":
        // Echo data so a client can match pongs to pings and measure round-trip time.
        this.send(c, Buffer.from(JSON.stringify({ type: "pong", ts: this.clock.now(), data: msg.data ?? null })));
        return undefined;
      default:
        return `unknown message type ${JSON.stringify(msg.type).slice(0, 80)}; supported: ping`;
    }
  }

  private closeAbusive(c: Client<P>, why: string): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    this.counters.closed_abusive_total++;
    // Stays in `clients` until its 'close' event so hub.close() still waits for it; send() skips it meanwhile.
    this.log.warn({ subject: c.principal.subject, ip: c.ip, why }, "closing abusive WebSocket client");
    c.ws.close(1008, why.slice(0, 120));
  }
}
