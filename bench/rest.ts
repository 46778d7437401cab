/*
 * REST benchmark: `GET /api/features/latest` through the real daemon — `Daemon` from src/daemon.ts (wireParts,
 * Pipeline, createApp, @hono/node-server on 127.0.0.1:0), with the twin running in real time and the pipeline
 * ticking every second, and a real bearer token from `POST /api/auth/login` — next to a bare Hono app on
 * @hono/node-server in the same process answering the same path with the very bytes glassd returned, pre-serialised
 * (same bytes, no middleware, no auth). Before the daemon starts, the data dir
 * is prefilled with the last `window_s` (600 s) of twin samples (validated, stored as the daemon stores them), so the
 * daemon refills its feature windows at start and serves a steady-state feature vector, not a mostly-null one.
 *
 * The load generator is a separate Node process (child_process.fork of this file with `--client`), so the servers'
 * event loop is measured alone: node:http with a keep-alive Agent, C connections each running a closed loop of
 * GET requests for a fixed time after a short warm-up. Both targets get the same client, the same headers
 * (Authorization included) and the same concurrency, alternating glassd and bare within each round.
 *
 * Usage: npx tsx bench/rest.ts [--seconds 4] [--rounds 3] [--concurrency 16,32]
 * Prints figures; asserts nothing. Target (stated, not enforced): glassd ≥ 70 % of bare Hono req/s.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type ServerType, serve } from "@hono/node-server";
import { Hono } from "hono";
import { loadConfig } from "../src/config/index.js";
import type { Sample } from "../src/core/types.js";
import { Daemon } from "../src/daemon.js";
import { Validator } from "../src/ingest/validate.js";
import { type Rejected, Store } from "../src/storage/index.js";
import { TwinLine, twinOptionsFromConfig } from "../src/twin/index.js";
import { best, median, ms, pct, rate, summarize, table } from "./lib/index.js";

const PATH = "/api/features/latest";
const TARGET_RATIO = 0.7;

interface RunSpec {
  port: number;
  path: string;
  headers: Record<string, string>;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

interface RunResult {
  requests: number;
  errors: number;
  /** Responses whose status was not 200, by status. */
  badStatus: Record<string, number>;
  bytes: number;
  elapsedS: number;
  p50: number;
  p99: number;
  max: number;
  /** Client process CPU over the measured part, ms. */
  cpuMs: number;
}

// ── client (child process) ──────────────────────────────────────────────────────────────────────────────────────

function get(agent: Agent, spec: RunSpec): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: "127.0.0.1", port: spec.port, path: spec.path, method: "GET", headers: spec.headers },
      (res) => {
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function runLoad(spec: RunSpec): Promise<RunResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency });
  const lat: number[] = [];
  const badStatus: Record<string, number> = {};
  let errors = 0;
  let bytes = 0;
  let lastDone = 0;
  const measureFrom = performance.now() + spec.warmupMs;
  const end = measureFrom + spec.durationMs;
  let cpu0: NodeJS.CpuUsage | undefined;
  const loop = async () => {
    for (let start = performance.now(); start < end; start = performance.now()) {
      if (cpu0 === undefined && start >= measureFrom) cpu0 = process.cpuUsage();
      try {
        const r = await get(agent, spec);
        const done = performance.now();
        if (start < measureFrom) continue;
        lastDone = Math.max(lastDone, done);
        if (r.status === 200) {
          lat.push(done - start);
          bytes += r.bytes;
        } else badStatus[r.status] = (badStatus[r.status] ?? 0) + 1;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, loop));
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  const s = summarize(lat);
  return {
    requests: lat.length,
    errors,
    badStatus,
    bytes,
    elapsedS: (lastDone - measureFrom) / 1000,
    p50: s.p50,
    p99: s.p99,
    max: s.max,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

function client(): void {
  process.on("message", (m: { run?: RunSpec; quit?: boolean }) => {
    if (m.quit) {
      process.disconnect();
      return;
    }
    if (m.run)
      runLoad(m.run).then(
        (r) => process.send?.({ result: r }),
        (err: Error) => process.send?.({ error: err.message }),
      );
  });
  process.send?.({ ready: true });
}

// ── servers and driver (main process) ───────────────────────────────────────────────────────────────────────────

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? String(process.argv[i + 1]) : dflt;
}

function runOnClient(kid: ChildProcess, spec: RunSpec): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { result?: RunResult; error?: string }) => {
      kid.off("exit", onExit);
      if (m.result) resolve(m.result);
      else reject(new Error(`load generator failed: ${m.error}`));
    };
    const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
    kid.once("message", onMsg);
    kid.once("exit", onExit);
    kid.send({ run: spec });
  });
}

/** Stores the last `window_s` seconds of twin samples (ending now) in the daemon's data dir, as the daemon would. */
async function prefill(config: ReturnType<typeof loadConfig>["config"]): Promise<void> {
  const windowMs = config.pipeline.window_s * 1000;
  const twin = new TwinLine(
    twinOptionsFromConfig(config, { startTs: Math.floor(Date.now() / 1000) * 1000 - windowMs }),
  );
  const store = new Store({
    dataDir: config.data_dir,
    storage: config.storage,
    clock: twin.simClock,
    autoRetention: false,
  });
  await store.open();
  try {
    const validator = new Validator(config.tags, config.validation, twin.simClock);
    // Validated second by second against the twin's clock (as they would arrive), stored a minute per commit.
    for (let minute = 0; minute < windowMs / 60_000; minute++) {
      const accepted: Sample[] = [];
      const rejected: Rejected[] = [];
      for (let s = 0; s < 60; s++) {
        const v = validator.validateBatch(twin.advance(1000).samples);
        accepted.push(...v.accepted);
        rejected.push(...v.rejected);
      }
      await store.appendBatch(accepted, rejected);
    }
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const seconds = Number(arg("seconds", "4"));
  const rounds = Number(arg("rounds", "3"));
  const concurrencies = arg("concurrency", "16,32").split(",").map(Number);
  if (!(seconds > 0) || !(rounds >= 1) || !concurrencies.every((c) => c >= 1))
    throw new RangeError("--seconds, --rounds and --concurrency must be positive");
  /** No new round when the last round would end past this (the bench stays within about a minute). */
  const budgetMs = 58_000;
  const t0 = performance.now();

  const dir = mkdtempSync(join(tmpdir(), "glassd-bench-rest-"));
  const pwFile = join(dir, "admin-password");
  const password = `bench-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  writeFileSync(pwFile, password, { mode: 0o600 });
  const load = loadConfig({
    env: {},
    cwd: dir,
    cli: {
      data_dir: join(dir, "data"),
      "server.host": "127.0.0.1",
      "server.port": "0",
      "log.level": "silent",
      "auth.admin_password_file": pwFile,
    },
  });
  if (load.safeMode) throw new Error(`bench config invalid: ${JSON.stringify(load.issues)}`);
  await prefill(load.config);
  const daemon = new Daemon({ load, env: {}, shutdownTimeoutMs: 5_000 });
  let bare: ServerType | undefined;
  let kid: ChildProcess | undefined;
  try {
    await daemon.start();
    const port = (daemon.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${port}`;
    const login = await fetch(`${base}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password }),
    });
    if (login.status !== 200) throw new Error(`login failed: HTTP ${login.status} ${await login.text()}`);
    const { token } = (await login.json()) as { token: string };
    const headers = { authorization: `Bearer ${token}`, accept: "application/json" };

    // The first tick runs a second after start; wait for it.
    let body = "";
    for (let i = 0; i < 100 && !body; i++) {
      const r = await fetch(`${base}${PATH}`, { headers });
      if (r.status === 200) body = await r.text();
      else {
        await r.arrayBuffer();
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    if (!body) throw new Error(`${PATH} never answered 200 (no tick ran?)`);
    const sample = JSON.parse(body) as { feature_count: number; features: Record<string, number | null> };
    const nulls = Object.values(sample.features).filter((v) => v === null).length;

    const app = new Hono();
    // The bare handler sends the very bytes glassd sent, already serialised: the least any Hono route can do for
    // this response. (glassd also serialises once per tick, so a c.json() baseline would not be a floor.)
    const bytes = body;
    app.get(PATH, (c) => c.body(bytes, 200, { "Content-Type": "application/json" }));
    bare = await new Promise<ServerType>((resolve) => {
      const srv = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(srv));
    });
    const barePort = (bare.address() as AddressInfo).port;
    const bareLen = (await (await fetch(`http://127.0.0.1:${barePort}${PATH}`, { headers })).text()).length;

    kid = fork(fileURLToPath(import.meta.url), ["--client"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const k = kid;
    await new Promise<void>((resolve, reject) => {
      k.once("message", () => resolve());
      k.once("exit", (code) => reject(new Error(`load generator exited (${code}) before it was ready`)));
    });

    process.stdout.write(
      `glassd REST bench — node ${process.version}, GET ${PATH}: ${body.length} bytes JSON from glassd ` +
        `(${sample.feature_count} features, ${nulls} null), bare Hono ${bareLen} bytes\n` +
        `load generator: a forked Node process (node:http, keep-alive Agent, closed loop per connection), ` +
        `${seconds} s per run after 0.3 s warm-up (1 s per target before round 1); servers in this process; ` +
        `loopback; set-up took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
    );

    interface Row {
      round: number;
      c: number;
      target: "glassd" | "bare";
      r: RunResult;
      rps: number;
      srvCpu: number;
      elu: number;
    }
    const rows: Row[] = [];
    // One unmeasured second per target first (JIT, connections), so round 1 is not the cold one.
    for (const p of [port, barePort])
      await runOnClient(k, {
        port: p,
        path: PATH,
        headers,
        concurrency: Math.max(...concurrencies),
        warmupMs: 1000,
        durationMs: 1,
      });
    let roundsRun = 0;
    let lastRoundMs = 0;
    for (let round = 1; round <= rounds; round++) {
      if (performance.now() - t0 + lastRoundMs > budgetMs) {
        process.stdout.write(`(time budget: ${round - 1} of ${rounds} rounds run)\n`);
        break;
      }
      const roundStart = performance.now();
      for (const c of concurrencies) {
        // Alternate which target goes first, so drift in the machine's state does not favour one.
        const order: Row["target"][] = round % 2 ? ["glassd", "bare"] : ["bare", "glassd"];
        for (const target of order) {
          const spec: RunSpec = {
            port: target === "glassd" ? port : barePort,
            path: PATH,
            headers,
            concurrency: c,
            warmupMs: 300,
            durationMs: seconds * 1000,
          };
          const cpu0 = process.cpuUsage();
          const elu0 = performance.eventLoopUtilization();
          const r = await runOnClient(k, spec);
          const cpu = process.cpuUsage(cpu0);
          const elu = performance.eventLoopUtilization(elu0);
          const wallS = elu.idle / 1000 + elu.active / 1000;
          rows.push({
            round,
            c,
            target,
            r,
            rps: r.requests / r.elapsedS,
            srvCpu: (cpu.user + cpu.system) / 1000 / 1000 / wallS,
            elu: elu.utilization,
          });
        }
      }
      roundsRun = round;
      lastRoundMs = performance.now() - roundStart;
    }

    process.stdout.write(
      `\nruns (server CPU and event-loop utilisation over warm-up + run, the daemon's own 1 s ticks included)\n`,
    );
    process.stdout.write(
      table(
        [
          "round",
          "conc",
          "target",
          "req/s",
          "p50 ms",
          "p99 ms",
          "max ms",
          "non-200",
          "errors",
          "srv CPU",
          "srv ELU",
          "client CPU",
        ],
        rows.map((x) => [
          x.round,
          x.c,
          x.target,
          rate(x.rps, ""),
          ms(x.r.p50, 2),
          ms(x.r.p99, 2),
          ms(x.r.max, 2),
          Object.values(x.r.badStatus).reduce((a, b) => a + b, 0),
          x.r.errors,
          pct(x.srvCpu),
          pct(x.elu),
          pct(x.r.cpuMs / 1000 / x.r.elapsedS),
        ]),
        { align: ["r", "r", "l"] },
      ),
    );

    process.stdout.write(`\nsummary over ${roundsRun} round(s): best / median\n`);
    const sumRows: string[][] = [];
    let worstMedianRatio = Number.POSITIVE_INFINITY;
    for (const c of concurrencies) {
      const of = (t: Row["target"]) => rows.filter((x) => x.c === c && x.target === t);
      const g = of("glassd");
      const b = of("bare");
      const ratios = g.map((x) => x.rps / (b.find((y) => y.round === x.round)?.rps ?? Number.NaN));
      const medRatio = median(ratios);
      worstMedianRatio = Math.min(worstMedianRatio, medRatio);
      for (const [name, list] of [
        ["bare Hono", b],
        ["glassd", g],
      ] as const) {
        sumRows.push([
          `c=${c}`,
          name,
          `${rate(
            best(
              list.map((x) => x.rps),
              true,
            ),
            "",
          )} / ${rate(median(list.map((x) => x.rps)), "")}`,
          `${ms(best(list.map((x) => x.r.p50)), 2)} / ${ms(median(list.map((x) => x.r.p50)), 2)}`,
          `${ms(best(list.map((x) => x.r.p99)), 2)} / ${ms(median(list.map((x) => x.r.p99)), 2)}`,
          name === "glassd" ? `${pct(best(ratios, true))} / ${pct(medRatio)}` : "",
        ]);
      }
    }
    process.stdout.write(
      table(["conc", "target", "req/s", "p50 ms", "p99 ms", "glassd / bare (same round)"], sumRows, {
        align: ["l", "l"],
      }),
    );
    const bareElu = median(rows.filter((x) => x.target === "bare").map((x) => x.elu));
    process.stdout.write(
      `ratio target ≥ ${pct(TARGET_RATIO)} of bare Hono: worst median ratio ${pct(worstMedianRatio)} → ` +
        `${worstMedianRatio >= TARGET_RATIO ? "OK" : "BELOW TARGET"}\n` +
        (bareElu < 0.9
          ? `note: the bare server's event loop was busy only ${pct(bareElu)} of the time (median), so the load ` +
            `generator or other processes on this shared ${availableParallelism()}-core machine held the bare figure ` +
            `down: the ratio is an upper bound\n`
          : `bare server's event loop ${pct(bareElu)} busy (median): the server, not the load generator, was the ` +
            `bottleneck\n`),
    );
  } finally {
    if (kid && kid.exitCode === null) {
      const k = kid;
      const exited = new Promise<void>((r) => k.once("exit", () => r()));
      if (k.connected) k.send({ quit: true });
      const timer = setTimeout(() => k.kill(), 2_000);
      await exited;
      clearTimeout(timer);
    }
    if (bare) {
      const srv = bare;
      await new Promise<void>((r) => {
        srv.close(() => r());
        (srv as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    }
    await daemon.stop("bench done");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--client") client();
else await main();
