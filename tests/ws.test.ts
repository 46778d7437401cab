import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type ClientOptions, WebSocket } from "ws";
import { Auth, type Principal } from "../src/api/auth/index.js";
import { WsHub, type WsHubOptions, type WsMessage } from "../src/api/ws-hub.js";
import { GlassdError } from "../src/core/errors.js";

/*
 * Real peers only: an http.Server on 127.0.0.1:0, the real Auth over a temp data dir, real `ws` clients.
 */

const dir = mkdtempSync(join(tmpdir(), "glassd-ws-"));
writeFileSync(join(dir, "admin-pw"), "ws-test-admin-password\n");
const auth = new Auth({
  env: {},
  config: { data_dir: join(dir, "data"), auth: { token_ttl_s: 900, admin_password_file: join(dir, "admin-pw") } },
});
let token = "";

test.before(async () => {
  await auth.init();
  await auth.addUser("vera", "viewer-password", "viewer");
  token = (await auth.login("vera", "viewer-password")).token;
});
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const LIMITS = { max_clients: 8, max_payload_bytes: 4096, send_buffer_bytes: 1_048_576 };

interface Rig {
  hub: WsHub<Principal>;
  server: Server;
  url: string;
  host: string;
  stop(): Promise<void>;
}

const opened: WebSocket[] = [];

async function rig(opts: Partial<WsHubOptions<Principal>> = {}): Promise<Rig> {
  const server = createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hub = new WsHub<Principal>({
    authenticate: (t) => auth.authenticate(t),
    limits: LIMITS,
    allowedOrigins: ["https://hmi.plant.example"],
    ...opts,
  });
  hub.attach(server);
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    hub,
    server,
    host,
    url: `ws://${host}/ws`,
    async stop() {
      await hub.close(500);
      for (const ws of opened) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      opened.length = 0;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Opens a client and collects every message it receives. */
function client(url: string, opts: ClientOptions & { protocols?: string[] } = {}) {
  const { protocols, ...rest } = opts;
  const ws = new WebSocket(url, protocols, rest);
  opened.push(ws);
  const messages: WsMessage[] = [];
  const waiters: Array<() => void> = [];
  let binaryFrames = 0;
  ws.on("message", (d, isBinary) => {
    if (isBinary) binaryFrames++;
    messages.push(JSON.parse(d.toString()));
    for (const w of waiters.splice(0)) w();
  });
  const closedP = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on("error", () => {});
  return {
    ws,
    messages,
    /** Frames that arrived as binary; browsers would see a Blob instead of text. */
    binaryFrames: () => binaryFrames,
    /** Resolves with the close code and reason; fails if the client is still open after `ms`. */
    closed: (ms = 5000) => within(closedP, "the client to close", ms),
    open: new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }),
    /** Resolves once `n` messages have arrived. */
    async count(n: number, timeoutMs = 3000): Promise<WsMessage[]> {
      const until = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > until) throw new Error(`expected ${n} messages, got ${messages.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return messages;
    },
  };
}

/** Attempts an upgrade and returns the HTTP status and body of the refusal. */
function refused(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: { error: string; message: string }; headers: Record<string, unknown> }>(
    (resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.on("open", () => {
        ws.terminate();
        reject(new Error("upgrade was accepted"));
      });
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body), headers: res.headers }));
      });
      ws.on("error", () => {});
    },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a failure naming `what` after `ms`: a broken feature must fail the test, not hang the file. */
function within<T>(p: Promise<T>, what: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

test("upgrade without a token → 401 with WWW-Authenticate; bad token → 401 with the reason", async () => {
  const r = await rig();
  try {
    const none = await refused(r.url);
    assert.is(none.status, 401);
    assert.is(none.headers["www-authenticate"], 'Bearer realm="glassd"');
    assert.match(none.body.message, /authentication required/);
    const bad = await refused(`${r.url}?token=not.a.token`);
    assert.is(bad.status, 401);
    assert.match(bad.body.message, /token is malformed|token header/);
    const forged = await refused(r.url, { Authorization: `Bearer ${token.slice(0, -6)}AAAAAA` });
    assert.is(forged.status, 401);
    assert.match(forged.body.message, /signature is invalid/);
    assert.is(r.hub.stats().rejected_total.unauthorized, 3);
    assert.is(r.hub.stats().connected_total, 0);
  } finally {
    await r.stop();
  }
});

test("other paths get 404 and the socket is destroyed", async () => {
  const r = await rig();
  try {
    const res = await refused(`ws://${r.host}/not-ws?token=${token}`);
    assert.is(res.status, 404);
    assert.is(r.hub.stats().rejected_total.not_found, 1);
  } finally {
    await r.stop();
  }
});

test("Origin: absent, same host or listed → allowed; any other → 403", async () => {
  const r = await rig();
  try {
    const evil = await refused(`${r.url}?token=${token}`, { Origin: "https://evil.example" });
    assert.is(evil.status, 403);
    assert.match(evil.body.message, /allowed_origins/);
    assert.is((await refused(`${r.url}?token=${token}`, { Origin: "null" })).status, 403);
    // A different port on the same host name is a different origin.
    assert.is((await refused(`${r.url}?token=${token}`, { Origin: "http://127.0.0.1:1" })).status, 403);
    assert.is(r.hub.stats().rejected_total.forbidden_origin, 3);
    for (const origin of [undefined, `http://${r.host}`, "https://HMI.plant.example:443"]) {
      const c = client(`${r.url}?token=${token}`, origin ? { origin } : {});
      await c.open;
      c.ws.close();
      await c.closed();
    }
    assert.is(r.hub.stats().connected_total, 3);
  } finally {
    await r.stop();
  }
});

test("a valid client gets the snapshot (latest per type), then {type, ts, data} broadcasts", async () => {
  const r = await rig();
  try {
    r.hub.broadcast("model_status", { version: 1 });
    r.hub.broadcast("pipeline_result", { tick: 1 });
    r.hub.broadcast("pipeline_result", { tick: 2 }); // replaces tick 1 in the snapshot
    r.hub.broadcast("alarm", { id: "a1" }, { retain: false });
    const c = client(`${r.url}?token=${token}`);
    await c.open;
    const before = Date.now();
    r.hub.broadcast("pipeline_result", { tick: 3, defects: [] });
    const msgs = await c.count(3);
    assert.equal(
      msgs.map((m) => [m.type, m.data]),
      [
        ["model_status", { version: 1 }],
        ["pipeline_result", { tick: 2 }],
        ["pipeline_result", { tick: 3, defects: [] }],
      ],
    );
    const live = msgs[2]!;
    assert.equal(Object.keys(live), ["type", "ts", "data"]);
    assert.ok(live.ts >= before - 5 && live.ts <= Date.now(), "ts is ms epoch at broadcast");
    await sleep(50);
    assert.is(c.messages.length, 3, "nothing else: the non-retained alarm was not replayed");
    assert.is(c.binaryFrames(), 0, "text frames, so browsers get strings");
    const s = r.hub.stats();
    assert.is(s.clients, 1);
    assert.is(s.messages_sent_total, 3);
    assert.is(s.broadcasts_total, 5);
  } finally {
    await r.stop();
  }
});

test("token in Authorization header, in the [bearer, token] subprotocol offer, and API key in X-API-Key", async () => {
  const r = await rig();
  try {
    const key = await auth.createApiKey("ws-test-gw", "viewer");
    const h = client(r.url, { headers: { Authorization: `Bearer ${token}` } });
    const p = client(r.url, { protocols: ["bearer", token] });
    const k = client(r.url, { headers: { "X-API-Key": key.key } });
    await Promise.all([h.open, p.open, k.open]);
    assert.is(p.ws.protocol, "bearer", "the server selects 'bearer' and never echoes the token");
    assert.equal(
      r.hub
        .connections()
        .map((c) => c.subject)
        .sort(),
      ["api_key:ws-test-gw", "vera", "vera"],
    );
    await auth.revokeApiKey("ws-test-gw");
  } finally {
    await r.stop();
  }
});

test("broadcast serialises once for all clients", async () => {
  const r = await rig();
  try {
    const cs = [
      client(`${r.url}?token=${token}`),
      client(`${r.url}?token=${token}`),
      client(`${r.url}?token=${token}`),
    ];
    await Promise.all(cs.map((c) => c.open));
    let calls = 0;
    const data = {
      toJSON() {
        calls++;
        return { big: "x".repeat(1000) };
      },
    };
    assert.is(r.hub.broadcast("pipeline_result", data, { retain: false }), 3);
    assert.is(calls, 1);
    for (const c of cs) assert.equal((await c.count(1))[0]!.data, { big: "x".repeat(1000) });
    assert.is(r.hub.stats().bytes_sent_total, 3 * Buffer.byteLength(JSON.stringify(cs[0]!.messages[0])));
  } finally {
    await r.stop();
  }
});

test("client cap: max_clients then 503; a slot frees when a client leaves", async () => {
  const r = await rig({ limits: { ...LIMITS, max_clients: 2 } });
  try {
    const a = client(`${r.url}?token=${token}`);
    const b = client(`${r.url}?token=${token}`);
    await Promise.all([a.open, b.open]);
    const full = await refused(`${r.url}?token=${token}`);
    assert.is(full.status, 503);
    assert.is(full.headers["retry-after"], "10");
    assert.is(r.hub.stats().rejected_total.full, 1);
    a.ws.close();
    await a.closed();
    await sleep(20);
    const c = client(`${r.url}?token=${token}`);
    await c.open;
    assert.is(r.hub.stats().clients, 2);
  } finally {
    await r.stop();
  }
});

test("concurrent upgrades cannot overshoot max_clients while authentication is pending", async () => {
  const r = await rig({
    limits: { ...LIMITS, max_clients: 3 },
    authenticate: async (t) => {
      await sleep(30);
      return auth.authenticate(t);
    },
  });
  try {
    const cs = Array.from({ length: 8 }, () => client(`${r.url}?token=${token}`));
    const results = await Promise.allSettled(cs.map((c) => c.open));
    assert.is(results.filter((x) => x.status === "fulfilled").length, 3);
    assert.is(r.hub.stats().rejected_total.full, 5);
  } finally {
    await r.stop();
  }
});

test("a slow client (socket not read) is dropped when its send buffer passes the limit; others keep receiving", async () => {
  const r = await rig({ limits: { ...LIMITS, send_buffer_bytes: 262_144 } });
  try {
    const slow = client(`${r.url}?token=${token}`);
    const fast = client(`${r.url}?token=${token}`);
    await Promise.all([slow.open, fast.open]);
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const payload = { blob: "x".repeat(64 * 1024) };
    let sent = 0;
    while (r.hub.stats().dropped_slow_total === 0 && sent < 2000) {
      r.hub.broadcast("pipeline_result", payload, { retain: false });
      sent++;
      await sleep(1);
    }
    assert.is(r.hub.stats().dropped_slow_total, 1, `dropped after ${sent} broadcasts`);
    assert.is(r.hub.stats().clients, 1);
    assert.equal(
      r.hub.connections().map((c) => c.subject),
      ["vera"],
    );
    await fast.count(sent, 10_000);
    assert.is(fast.ws.readyState, WebSocket.OPEN, "the fast client is unaffected");
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    assert.is((await slow.closed()).code, 1006, "terminated");
    assert.ok(slow.messages.length < sent);
  } finally {
    await r.stop();
  }
});

test("malformed client messages get an error reply without closing; ping gets pong; floods are closed (1008)", async () => {
  const r = await rig({ clientLimits: { max_errors: 3, max_messages: 50, window_ms: 60_000 } });
  try {
    const c = client(`${r.url}?token=${token}`);
    await c.open;
    c.ws.send("{not json");
    c.ws.send(JSON.stringify({ hello: 1 }));
    c.ws.send(JSON.stringify({ type: "subscribe" }));
    c.ws.send(JSON.stringify({ type: "ping", data: { n: 7 } }));
    const msgs = await c.count(4);
    assert.equal(
      msgs.map((m) => m.type),
      ["error", "error", "error", "pong"],
    );
    assert.match((msgs[0]!.data as { message: string }).message, /not valid JSON/);
    assert.match((msgs[1]!.data as { message: string }).message, /string "type"/);
    assert.match((msgs[2]!.data as { message: string }).message, /unknown message type "subscribe"/);
    assert.equal(msgs[3]!.data, { n: 7 });
    assert.is(c.ws.readyState, WebSocket.OPEN);
    assert.is(r.hub.stats().malformed_total, 3);

    c.ws.send(Buffer.from([1, 2, 3]), { binary: true }); // 4th bad message in the window: abusive
    const closed = await c.closed();
    assert.is(closed.code, 1008);
    assert.match(closed.reason, /bad messages/);
    assert.is(r.hub.stats().closed_abusive_total, 1);
  } finally {
    await r.stop();
  }
});

test("a message above max_payload_bytes closes the client with 1009", async () => {
  const r = await rig();
  try {
    const c = client(`${r.url}?token=${token}`);
    await c.open;
    c.ws.send(JSON.stringify({ type: "ping", data: "x".repeat(LIMITS.max_payload_bytes) }));
    assert.is((await c.closed()).code, 1009);
  } finally {
    await r.stop();
  }
});

test("heartbeat terminates a client that does not answer pings; a live one stays", async () => {
  const r = await rig({ heartbeatMs: 60 });
  try {
    const dead = client(`${r.url}?token=${token}`, { autoPong: false });
    const live = client(`${r.url}?token=${token}`);
    await Promise.all([dead.open, live.open]);
    assert.is((await dead.closed()).code, 1006);
    assert.is(r.hub.stats().dropped_unresponsive_total, 1);
    await sleep(200);
    assert.is(live.ws.readyState, WebSocket.OPEN);
  } finally {
    await r.stop();
  }
});

test("an authenticate() that fails unexpectedly answers 500, not 401", async () => {
  const r = await rig({
    authenticate: () => {
      throw new Error("users file unreadable");
    },
  });
  try {
    assert.is((await refused(`${r.url}?token=${token}`)).status, 500);
    assert.is(r.hub.stats().rejected_total.error, 1);
    const r2 = await rig({
      authenticate: () => {
        throw new GlassdError("nope", { status: 403, code: "forbidden" });
      },
    });
    assert.is((await refused(`${r2.url}?token=${token}`)).status, 403);
    await r2.stop();
  } finally {
    await r.stop();
  }
});

test("close() closes every client with 1001, stops upgrades and lets the server close", async () => {
  const r = await rig({ heartbeatMs: 20 });
  const cs = [client(`${r.url}?token=${token}`), client(`${r.url}?token=${token}`)];
  await Promise.all(cs.map((c) => c.open));
  await r.hub.close();
  for (const c of cs) assert.is((await c.closed()).code, 1001);
  assert.is(r.hub.stats().clients, 0);
  assert.is(r.server.listenerCount("upgrade"), 0);
  assert.is(r.hub.broadcast("pipeline_result", {}), 0);
  await r.hub.close(); // idempotent
  // No upgraded socket keeps the HTTP server open.
  const closed = await Promise.race([
    new Promise<boolean>((res) => r.server.close(() => res(true))),
    sleep(2000).then(() => false),
  ]);
  assert.ok(closed, "server.close() completed");
});

test.run();
