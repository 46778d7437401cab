import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { loadConfig } from "../src/config/index.js";
import { Daemon } from "../src/daemon.js";

// A self-signed certificate for 127.0.0.1, made for this run with the openssl CLI.
const dir = mkdtempSync(join(tmpdir(), "glassd-tls-"));
const cert = join(dir, "cert.pem");
const key = join(dir, "key.pem");
execFileSync(
  "openssl",
  [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ],
  { stdio: "ignore" },
);
const ca = readFileSync(cert);
const pwFile = join(dir, "admin-pw");
writeFileSync(pwFile, "tls-test-password\n");

const daemon = new Daemon({
  load: loadConfig({
    env: {},
    cwd: dir,
    cli: {
      "server.host": "127.0.0.1",
      "server.port": "0",
      data_dir: join(dir, "data"),
      "source.type": "none",
      "server.tls_cert_file": cert,
      "server.tls_key_file": key,
      "auth.admin_password_file": pwFile,
    },
  }),
  logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
});

function httpsJson(
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown }> {
  const port = daemon.address()?.port;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: init.method ?? "GET", ca, headers: init.headers },
      (res) => {
        let text = "";
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

test.before(async () => {
  await daemon.start();
});

test("serves HTTPS with the configured certificate; login works over TLS", async () => {
  const h = await httpsJson("/health");
  assert.is(h.status, 200);
  assert.is((h.body as { live: boolean }).live, true);
  const login = await httpsJson("/api/auth/login", {
    method: "POST",
    body: JSON.stringify({ username: "admin", password: "tls-test-password" }),
    headers: { "content-type": "application/json" },
  });
  assert.is(login.status, 200);
  assert.type((login.body as { token: string }).token, "string");
});

test("an untrusted client (no CA) is refused by certificate verification", async () => {
  const port = daemon.address()?.port;
  const err = await new Promise<Error>((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/health" }, () => resolve(new Error("connected")));
    req.on("error", resolve);
    req.end();
  });
  assert.match(err.message, /self.signed|certificate/i);
});

test("plain HTTP on the TLS port gets no HTTP answer", async () => {
  const port = daemon.address()?.port;
  const outcome = await new Promise<string>((resolve) => {
    const req = httpGet({ host: "127.0.0.1", port, path: "/health", timeout: 3000 }, (res) =>
      resolve(`status ${res.statusCode}`),
    );
    req.on("error", () => resolve("error"));
    req.on("timeout", () => {
      req.destroy();
      resolve("timeout");
    });
  });
  assert.ok(outcome === "error" || outcome === "timeout" || outcome === "status 400", outcome);
});

test("WSS: the WebSocket runs over the same TLS server and needs a token", async () => {
  const login = await httpsJson("/api/auth/login", {
    method: "POST",
    body: JSON.stringify({ username: "admin", password: "tls-test-password" }),
    headers: { "content-type": "application/json" },
  });
  const token = (login.body as { token: string }).token;
  const port = daemon.address()?.port;
  const opened = await new Promise<string>((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}`, { ca });
    ws.on("open", () => {
      ws.close();
      resolve("open");
    });
    ws.on("error", (e) => resolve(`error ${e.message}`));
  });
  assert.is(opened, "open");
  const refused = await new Promise<string>((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca });
    ws.on("unexpected-response", (_req, res) => {
      resolve(`status ${res.statusCode}`);
      ws.terminate();
    });
    ws.on("open", () => resolve("open"));
    ws.on("error", () => {});
  });
  assert.is(refused, "status 401");
});

test.after(async () => {
  await daemon.stop("test done");
  rmSync(dir, { recursive: true, force: true });
});

test.run();
