/*
 * The daemon's lifecycle end to end, as systemd and an operator see it: glassd runs as a real child process
 * (node --import tsx src/main.ts run) on loopback with a temp data dir; signals, exit codes, sd_notify over a real
 * unix datagram socket, safe mode, and a kill -9 in the middle of acknowledged ingest. Deadlines are generous and
 * only keep a broken daemon from hanging the suite.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/validate.js";
import { Store } from "../src/storage/index.js";
import {
  ADMIN_PASSWORD,
  httpJson,
  type Proc,
  pollStatus,
  removeTempDirs,
  sleep,
  spawnDaemon,
  stopWith,
  tempDir,
  waitListening,
  workspace,
} from "./fixtures/lifecycle-harness.js";

const life = suite("lifecycle");
life.after(() => removeTempDirs());

const TAGS = defaultConfig().tags.map((t) => t.id);

/** Opens the daemon's LMDB store directly (the daemon must be stopped), runs `fn`, always closes it. */
async function withStore<T>(dataDir: string, fn: (store: Store) => T | Promise<T>): Promise<T> {
  const store = new Store({ dataDir, storage: defaultConfig().storage, autoRetention: false });
  await store.open();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function samplesFrom(store: Store, source: string): number {
  let n = 0;
  for (const tag of TAGS)
    for (const s of store.range(tag, 0, Number.MAX_SAFE_INTEGER, 1_000_000)) if (s.source === source) n++;
  return n;
}

function assertNoPassword(p: Proc): void {
  assert.not.ok(p.stdout.includes(ADMIN_PASSWORD), "the admin password appears on stdout");
  assert.not.ok(p.stderr.includes(ADMIN_PASSWORD), "the admin password appears on stderr");
}

/** Sends `sig` and asserts a clean exit (code 0, within the bound) with "glassd stopped" logged. */
async function stopCleanly(p: Proc, sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
  const exit = await stopWith(p, sig);
  assert.ok(exit, `glassd did not exit within the shutdown bound after ${sig}\n${p.tail()}`);
  assert.equal(exit, { code: 0, signal: null }, `exit after ${sig}\n${p.tail()}`);
  assert.ok(p.hasMsg("glassd stopping"), `"glassd stopping" logged\n${p.tail()}`);
  assert.ok(p.hasMsg("glassd stopped"), `"glassd stopped" logged\n${p.tail()}`);
  // Regression: the logger is drained before exit, so the journal ends with this line, in order.
  assert.is(p.lines.at(-1)?.msg, "glassd stopped", `the last log line\n${p.tail()}`);
  assert.not.ok(p.hasMsg("shutdown bound exceeded; exiting anyway"), `stopped within its bound\n${p.tail()}`);
  assert.not.ok(p.hasMsg("service failed to stop cleanly"), `every service stopped cleanly\n${p.tail()}`);
  if (p.hasMsg("storage open"))
    assert.ok(p.hasMsg("storage closed"), `the store was closed, not abandoned\n${p.tail()}`);
  assert.is(p.stderr, "", "nothing on stderr");
}

/** Waits until the twin has emitted samples (public /metrics), so a stop after it has something to commit. */
async function waitTwinSamples(base: string, p: Proc): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const m = /^glassd_twin_samples_total (\d+)/m.exec(text);
    if (m && Number(m[1]) > 0) return;
    if (Date.now() > deadline) throw new Error(`the twin emitted no samples within 20 s\n${p.tail()}`);
    await sleep(200);
  }
}

life("start → /health and /ready 200 → SIGTERM: exit 0 within the bound, store intact with twin samples", async () => {
  const ws = workspace();
  const p = spawnDaemon(ws);
  try {
    const { base } = await waitListening(p);
    const health = await httpJson(`${base}/health`);
    assert.is(health.status, 200, JSON.stringify(health.body));
    assert.is(health.body.live, true);
    assert.is(health.body.safe_mode, false);
    const ready = await pollStatus(`${base}/ready`, 200);
    assert.is(ready.status, 200, `/ready never became 200: ${JSON.stringify(ready.body)}`);
    assert.is(ready.body.ready, true);
    const after = await httpJson(`${base}/health`);
    assert.is(after.body.status, "ok", JSON.stringify(after.body));
    await waitTwinSamples(base, p);
    await stopCleanly(p, "SIGTERM");
    assertNoPassword(p);
  } finally {
    await p.kill();
  }
  await withStore(ws.dataDir, (store) => {
    const integrity = store.checkIntegrity();
    assert.ok(integrity.ok, JSON.stringify(integrity));
    assert.ok(samplesFrom(store, "twin") > 0, "twin samples were stored");
    assert.ok((store.lastSeq("twin") ?? 0) > 0, "the twin's sequence was recorded");
  });
});

life("a restart on the same data dir continues: the twin's sequence resumes, no duplicates", async () => {
  const ws = workspace();
  const runOnce = async () => {
    const p = spawnDaemon(ws);
    try {
      const { base } = await waitListening(p);
      const ready = await pollStatus(`${base}/ready`, 200);
      assert.is(ready.status, 200, `/ready: ${JSON.stringify(ready.body)}`);
      await waitTwinSamples(base, p);
      await stopCleanly(p);
    } finally {
      await p.kill();
    }
    return await withStore(ws.dataDir, (store) => ({
      seq: store.lastSeq("twin") ?? 0,
      samples: samplesFrom(store, "twin"),
      twin: store.stats().sources.twin,
      ok: store.checkIntegrity().ok,
    }));
  };
  const first = await runOnce();
  assert.ok(first.seq > 0 && first.samples > 0, JSON.stringify(first));
  const second = await runOnce();
  assert.ok(second.ok, "integrity after the second run");
  assert.ok(second.seq > first.seq, `lastSeq("twin") ${first.seq} → ${second.seq}`);
  assert.ok(second.samples > first.samples, `twin samples ${first.samples} → ${second.samples}`);
  assert.ok(second.twin, "per-source stats for twin");
  assert.is(second.twin?.duplicates_total, 0, "a restarted twin's samples must not be counted as duplicates");
});

life("SIGINT stops cleanly too (exit 0), within the bound given by --shutdown-timeout", async () => {
  const ws = workspace();
  const p = spawnDaemon({ ...ws, set: ["source.type=none"], extraArgs: ["--shutdown-timeout", "5000"] });
  try {
    const { base } = await waitListening(p);
    assert.is((await httpJson(`${base}/health`)).status, 200);
    await stopCleanly(p, "SIGINT");
    const stopping = p.lines.find((l) => l.msg === "glassd stopping");
    assert.is(stopping?.bound_ms, 5000, "--shutdown-timeout sets the bound");
    assert.is(stopping?.reason, "SIGINT");
  } finally {
    await p.kill();
  }
});

life("abortable start: SIGTERM before ready exits promptly, the data dir stays usable", async () => {
  const ws = workspace();
  // 1. Right after spawn: usually before main.ts has even installed its handlers (then the default action ends
  // the process, which is fine: nothing was opened yet); either way it must not hang.
  const early = spawnDaemon(ws);
  try {
    early.signal("SIGTERM");
    const exit = await early.waitExit(10_000);
    assert.ok(exit, `no exit within 10 s of an immediate SIGTERM\n${early.tail()}`);
    assert.ok(
      exit.code === 0 || exit.code === 1 || (exit.code === null && exit.signal === "SIGTERM"),
      `exit ${JSON.stringify(exit)}`,
    );
  } finally {
    await early.kill();
  }
  // 2. In the middle of start (handlers installed, services being opened): the daemon's own abort path.
  const mid = spawnDaemon(ws);
  try {
    await mid.waitForLine((l) => l.msg === "glassd starting", '"glassd starting"');
    mid.signal("SIGTERM");
    const exit = await mid.waitExit(10_000);
    assert.ok(exit, `no exit within 10 s of SIGTERM during start\n${mid.tail()}`);
    assert.ok(exit.code === 0 || exit.code === 1, `exit ${JSON.stringify(exit)}\n${mid.tail()}`);
    assert.not.ok(mid.hasMsg("glassd ready"), "SIGTERM arrived before ready");
  } finally {
    await mid.kill();
  }
  await withStore(ws.dataDir, (store) => {
    const integrity = store.checkIntegrity();
    assert.ok(integrity.ok, JSON.stringify(integrity));
  });
  // The aborted start left nothing half-made (token secret, users file, LMDB): a normal start works.
  const p = spawnDaemon(ws);
  try {
    const { base } = await waitListening(p);
    const ready = await pollStatus(`${base}/ready`, 200);
    assert.is(ready.status, 200, `/ready after an aborted start: ${JSON.stringify(ready.body)}`);
    await stopCleanly(p);
  } finally {
    await p.kill();
  }
});

life(
  "a SIGTERM during start still closes the storage start had opened (stop waits for the aborted start)",
  async () => {
    const ws = workspace();
    const p = spawnDaemon(ws);
    try {
      // Storage opens first; auth (scrypt), the pipeline, the twin and the listener come after it.
      await p.waitForLine((l) => l.ns === "storage" && l.msg === "storage open", '"storage open"');
      p.signal("SIGTERM");
      const exit = await p.waitExit(10_000);
      assert.ok(exit, `no exit within 10 s of SIGTERM during start\n${p.tail()}`);
      assert.equal(exit, { code: 0, signal: null }, p.tail());
      assert.ok(p.hasMsg("storage closed"), `the storage opened during start was closed\n${p.tail()}`);
      assert.is(p.lines.at(-1)?.msg, "glassd stopped", p.tail());
    } finally {
      await p.kill();
    }
    await withStore(ws.dataDir, (store) => assert.ok(store.checkIntegrity().ok));
  },
);

interface DgramSocket {
  bind(path: string): void;
  close(): void;
  on(ev: "error", cb: (err: Error) => void): void;
}

life("sd_notify: READY=1 with MAINPID, WATCHDOG=1 while healthy, STOPPING=1 on SIGTERM", async () => {
  const ws = workspace();
  const socketPath = join(tempDir("glassd-notify-"), "notify.sock");
  const require = createRequire(import.meta.url);
  const dgram = require("unix-dgram") as {
    createSocket(type: "unix_dgram", cb: (buf: Buffer) => void): DgramSocket;
  };
  const messages: Array<{ at: number; text: string }> = [];
  const sock = dgram.createSocket("unix_dgram", (buf) => messages.push({ at: Date.now(), text: buf.toString() }));
  const errors: Error[] = [];
  sock.on("error", (err) => errors.push(err));
  sock.bind(socketPath);
  assert.equal(errors, [], "bound the notify socket");
  const waitMessage = async (pred: (text: string) => boolean, what: string, p: Proc) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const i = messages.findIndex((m) => pred(m.text));
      if (i >= 0) return i;
      if (Date.now() > deadline || !p.running)
        throw new Error(`no ${what} on NOTIFY_SOCKET; got ${JSON.stringify(messages)}\n${p.tail()}`);
      await sleep(50);
    }
  };
  try {
    // WATCHDOG_USEC = 1 s: the daemon pings every 500 ms, but only while its health is ok (pipeline ticking).
    const p = spawnDaemon({ ...ws, env: { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: "1000000" } });
    try {
      await waitListening(p);
      const ready = await waitMessage((t) => t.split("\n").includes("READY=1"), "READY=1", p);
      const readyText = messages[ready]!.text;
      assert.ok(readyText.split("\n").includes(`MAINPID=${p.pid}`), `READY carries MAINPID=${p.pid}: ${readyText}`);
      const watchdog = await waitMessage((t) => t === "WATCHDOG=1", "WATCHDOG=1", p);
      assert.ok(watchdog > ready, "the first WATCHDOG=1 comes after READY=1");
      assert.not.ok(
        messages.slice(0, ready).some((m) => m.text.includes("STOPPING=1")),
        "no STOPPING=1 before READY=1",
      );
      await stopCleanly(p);
      const stopping = messages.findIndex((m) => m.text.split("\n").includes("STOPPING=1"));
      assert.ok(stopping > watchdog, `STOPPING=1 after the watchdog pings: ${JSON.stringify(messages)}`);
      assert.not.ok(
        messages.slice(stopping + 1).some((m) => m.text === "WATCHDOG=1" || m.text.includes("READY=1")),
        "nothing but status after STOPPING=1",
      );
      assert.not.ok(p.hasMsg("sd_notify failed"), "no sd_notify errors logged");
    } finally {
      await p.kill();
    }
  } finally {
    sock.close();
  }
});

life(
  "safe mode: an invalid value still starts the API; /health names the path, /ready 503; SIGTERM exits 0",
  async () => {
    const ws = workspace();
    const p = spawnDaemon({ ...ws, set: ["twin.speed=-1"] });
    try {
      const { base } = await waitListening(p);
      const health = await httpJson(`${base}/health`);
      assert.is(health.status, 200, "alive in safe mode");
      assert.is(health.body.status, "safe_mode");
      assert.is(health.body.safe_mode, true);
      const errors = health.body.config_errors as Array<{ path: string; message: string }>;
      assert.ok(
        errors.some((e) => e.path === "/twin/speed"),
        `config_errors names /twin/speed: ${JSON.stringify(errors)}`,
      );
      const ready = await httpJson(`${base}/ready`);
      assert.is(ready.status, 503);
      assert.is(ready.body.ready, false);
      // Still 503 a little later: safe mode never becomes ready on its own.
      await sleep(1_500);
      assert.is((await httpJson(`${base}/ready`)).status, 503);
      await stopCleanly(p);
      assertNoPassword(p);
    } finally {
      await p.kill();
    }
  },
);

life("kill -9 during ingest: every acknowledged reading is on disk, and the restarted daemon serves it", async () => {
  const ws = workspace();
  const set = ["source.type=none"];
  const acked: number[] = [];
  const p = spawnDaemon({ ...ws, set });
  let base = "";
  try {
    ({ base } = await waitListening(p));
    const login = await httpJson(`${base}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    assert.is(login.status, 200, JSON.stringify(login.body));
    const token = login.body.token as string;
    // Timestamps are the daemon's "now" (same machine clock) so nothing is stale or future; the furnace warms at
    // 1 °C/s of timestamp, under its 2 °C/s rate-of-change limit, so every reading is valid.
    const t0 = Date.now();
    let lastTs = 0;
    const post = (ts: number) =>
      fetch(`${base}/api/pipeline/process`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ timestamp: ts, furnace_temperature: 1500 + (ts - t0) / 1000, belt_speed: 150 }),
        signal: AbortSignal.timeout(10_000),
      });
    const nextTs = () => {
      lastTs = Math.max(Date.now(), lastTs + 1);
      return lastTs;
    };
    for (let i = 0; i < 1000 && acked.length < 40; i++) {
      const ts = nextTs();
      const res = await post(ts);
      const body = (await res.json()) as Record<string, unknown>;
      assert.is(res.status, 200, `request ${i} refused: ${JSON.stringify(body)}`);
      acked.push(ts);
    }
    assert.is(acked.length, 40);
    // One more in flight when the process dies; it may or may not have been committed, it was not acknowledged.
    const inFlight = post(nextTs()).then(
      (r) => r.status,
      () => "failed",
    );
    await sleep(2);
    p.signal("SIGKILL");
    const exit = await p.waitExit(10_000);
    assert.equal(exit, { code: null, signal: "SIGKILL" });
    await inFlight;
    assert.not.ok(p.hasMsg("glassd stopped"), "it really was killed, not stopped");
    assertNoPassword(p);
  } finally {
    await p.kill();
  }

  await withStore(ws.dataDir, (store) => {
    const integrity = store.checkIntegrity();
    assert.ok(integrity.ok, JSON.stringify(integrity));
    for (const ts of acked) {
      for (const tag of ["furnace_temperature", "belt_speed"]) {
        const got = store.range(tag, ts, ts);
        assert.ok(
          got.some((s) => s.source === "api"),
          `acknowledged ${tag}@${ts} is missing after kill -9`,
        );
      }
    }
  });

  const again = spawnDaemon({ ...ws, set });
  try {
    ({ base } = await waitListening(again));
    const ready = await pollStatus(`${base}/ready`, 200);
    assert.is(ready.status, 200, `/ready after the crash: ${JSON.stringify(ready.body)}`);
    const login = await httpJson(`${base}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    assert.is(login.status, 200);
    const from = acked[0]!;
    const to = acked[acked.length - 1]!;
    const res = await httpJson(`${base}/api/samples?tag=furnace_temperature&from=${from}&to=${to}&limit=10000`, {
      headers: { authorization: `Bearer ${login.body.token as string}` },
    });
    assert.is(res.status, 200, JSON.stringify(res.body));
    const served = new Set((res.body.samples as Array<{ ts: number }>).map((s) => s.ts));
    for (const ts of acked) assert.ok(served.has(ts), `GET /api/samples lacks the acknowledged reading at ${ts}`);
    await stopCleanly(again);
    assertNoPassword(again);
  } finally {
    await again.kill();
  }
});

life.run();
