/*
 * WebSocket fan-out benchmark: the real WsHub on a loopback http.Server broadcasting a realistic ~6.5 KB
 * pipeline_result to N real `ws` clients at H Hz for S seconds. The clients live in a child process so the CPU
 * figure for the hub process is the hub's alone. Latency is measured on CLOCK_MONOTONIC (process.hrtime, shared by
 * all processes on a Linux host) from just before broadcast() to the client's 'message' event.
 *
 * Usage: npx tsx bench/ws.ts [--clients 50] [--hz 10] [--seconds 10]
 * Prints figures; asserts nothing.
 */
import { type ChildProcess, fork } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { WsHub } from "../src/api/ws-hub.js";
import { quantile } from "./lib/index.js";

interface ChildReport {
  received: number[];
  latencies_ms: number[];
  cpu: NodeJS.CpuUsage;
  errors: number;
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const CLASSES = ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"];
const TAGS = [
  ...["furnace_temp", "crown_temp", "bottom_temp", "batch_level", "gas_flow", "air_gas_ratio", "o2_pct", "pressure"],
  ...["forming_speed", "mold_temp_1", "mold_temp_2", "gob_weight", "gob_temp", "shear_time", "plunger_pressure"],
  ...["lehr_zone_1", "lehr_zone_2", "lehr_zone_3", "lehr_zone_4", "lehr_speed", "belt_speed", "ambient_temp"],
  ...["humidity", "cooling_air", "vibration_rms", "motor_current", "cullet_ratio", "sand_moisture", "redox"],
  ...["viscosity_idx", "throat_temp", "refiner_temp", "feeder_temp", "spout_temp", "orifice_temp", "needle_pos"],
];

/** A pipeline_result shaped like the daemon's tick result (sensors, prediction, explanation, vision, advice). */
function pipelineResult(tick: number, sentHrNs: bigint): unknown {
  const r = (scale = 1) => Math.round(Math.random() * scale * 1e4) / 1e4;
  const horizons = [5, 10, 15, 30, 60];
  return {
    tick,
    line_id: "Line_A",
    sent_hr_ns: sentHrNs.toString(),
    sensors: Object.fromEntries(TAGS.map((t) => [t, { value: r(1500), quality: "good", age_ms: Math.round(r(900)) }])),
    data_quality: { good: TAGS.length - 1, quarantined: 1, stale: 0 },
    prediction: {
      horizon_min: horizons,
      classes: CLASSES,
      probability: horizons.map(() => CLASSES.map(() => r())),
      uncertainty: horizons.map(() => CLASSES.map(() => r(0.2))),
      model_versions: { forecaster: "lstm-2026.01.3", sensor_graph: "gnn-2026.01.1", ensemble: "v4" },
    },
    explanation: {
      method: "kernel_shap",
      base_value: r(),
      contributions: TAGS.slice(0, 30).map((t) => ({ feature: `${t}_mean_5m`, value: r(1500), contribution: r(0.3) })),
    },
    vision: {
      defects: [0, 1].map((i) => ({
        class: CLASSES[i],
        score: r(),
        box: [r(1024), r(768), r(200), r(200)],
        mask_rle: "12x3,40x7,2x19,55x4,8x11,31x2,6x5",
      })),
      defect_classes: Object.fromEntries(CLASSES.map((c) => [c, r()])),
      model: "mik1-vision-2026.01.2",
      latency_ms: r(40),
    },
    recommendation: {
      id: `rec-${tick}`,
      changes: [
        { tag: "furnace_temp", from: 1482.5, to: 1478.0, unit: "°C" },
        { tag: "forming_speed", from: 42.0, to: 41.5, unit: "m/min" },
      ],
      expected_effect: { crack: -0.04, bubble: -0.02 },
      risk: r(0.1),
      confidence: r(),
      status: "proposed",
      by: "ppo-2026.01.2",
    },
    autonomy: { mode: "advisory", interlocks_ok: true, envelope_ok: true },
    latency_ms: { ingest: r(2), features: r(5), inference: r(20), explain: r(30), recommend: r(10), total: r(70) },
  };
}

async function child(url: string, token: string, n: number): Promise<void> {
  const received = new Array<number>(n).fill(0);
  const latencies: number[] = [];
  let errors = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
          ws.on("message", (d) => {
            const now = process.hrtime.bigint();
            const msg = JSON.parse(d.toString()) as { type: string; data: { sent_hr_ns?: string } };
            if (msg.type !== "pipeline_result" || !msg.data.sent_hr_ns) return;
            received[i]!++;
            latencies.push(Number(now - BigInt(msg.data.sent_hr_ns)) / 1e6);
          });
          ws.on("error", () => errors++);
          ws.once("open", () => resolve(ws));
          ws.once("unexpected-response", (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        }),
    ),
  );
  const cpu0 = process.cpuUsage();
  process.send?.({ ready: true });
  process.on("message", (m: { report?: boolean }) => {
    if (!m.report) return;
    const report: ChildReport = { received, latencies_ms: latencies, cpu: process.cpuUsage(cpu0), errors };
    process.send?.(report, () => {
      for (const ws of sockets) ws.terminate();
      process.disconnect();
    });
  });
}

async function main(): Promise<void> {
  const clients = arg("clients", 50);
  const hz = arg("hz", 10);
  const seconds = arg("seconds", 10);
  const TOKEN = "bench-token";

  const server = createServer((_q, res) => res.writeHead(404).end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const hub = new WsHub({
    authenticate: (t) => {
      if (t !== TOKEN) throw new Error("bad token");
      return { subject: "bench" };
    },
    // config.websocket defaults
    limits: { max_clients: Math.max(64, clients), max_payload_bytes: 65_536, send_buffer_bytes: 4_194_304 },
  });
  hub.attach(server);
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`;

  const kid: ChildProcess = fork(fileURLToPath(import.meta.url), ["--child", url, TOKEN, String(clients)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  await new Promise<void>((resolve, reject) => {
    kid.once("message", () => resolve());
    kid.once("exit", (code) => reject(new Error(`client process exited (${code}) before connecting`)));
  });

  const sample = JSON.stringify(pipelineResult(0, process.hrtime.bigint()));
  const total = hz * seconds;
  const broadcastMs: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  await new Promise<void>((resolve) => {
    let tick = 0;
    const timer = setInterval(() => {
      tick++;
      const data = pipelineResult(tick, 0n) as { sent_hr_ns: string };
      data.sent_hr_ns = process.hrtime.bigint().toString();
      const b0 = performance.now();
      hub.broadcast("pipeline_result", data);
      broadcastMs.push(performance.now() - b0);
      if (tick >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1000 / hz);
  });
  const sendSpanS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000)); // let the last messages land
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const wallS = (performance.now() - t0) / 1000;

  const report = await new Promise<ChildReport>((resolve) => {
    kid.once("message", (m) => resolve(m as ChildReport));
    kid.send({ report: true });
  });
  await new Promise<void>((r) => (kid.exitCode === null ? kid.once("exit", () => r()) : r()));
  const stats = hub.stats();
  await hub.close();
  await new Promise<void>((r) => server.close(() => r()));

  const lat = report.latencies_ms.sort((a, b) => a - b);
  const bms = broadcastMs.sort((a, b) => a - b);
  const delivered = report.received.reduce((a, b) => a + b, 0);
  const perClient = report.received.map((n) => n / sendSpanS);
  const f = (x: number, d = 2) => x.toFixed(d);
  const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

  console.log(`ws fan-out: ${clients} clients, ${hz} Hz, ${seconds} s, pipeline_result ${sample.length} bytes JSON`);
  console.log(`  broadcasts            ${total} in ${f(sendSpanS)} s`);
  console.log(
    `  delivered             ${delivered} / ${total * clients} (${f((100 * delivered) / (total * clients), 2)} %)`,
  );
  console.log(
    `  rate per client       mean ${f(perClient.reduce((a, b) => a + b, 0) / clients)} msg/s, min ${f(Math.min(...perClient))} msg/s`,
  );
  console.log(
    `  rate total            ${f(delivered / sendSpanS, 1)} msg/s, ${f(stats.bytes_sent_total / sendSpanS / 1e6)} MB/s`,
  );
  console.log(
    `  latency (ms)          p50 ${f(quantile(lat, 0.5))}  p90 ${f(quantile(lat, 0.9))}  p99 ${f(quantile(lat, 0.99))}  max ${f(lat.at(-1) ?? Number.NaN)}`,
  );
  console.log(
    `  broadcast() (ms)      p50 ${f(quantile(bms, 0.5), 3)}  p99 ${f(quantile(bms, 0.99), 3)}  max ${f(bms.at(-1) ?? Number.NaN, 3)} (one JSON.stringify + ${clients} socket writes)`,
  );
  console.log(
    `  hub process CPU       ${f(cpuMs(cpu), 0)} ms over ${f(wallS)} s = ${f(cpuMs(cpu) / 10 / wallS, 1)} % of one core (user ${f(cpu.user / 1000, 0)} ms, sys ${f(cpu.system / 1000, 0)} ms); event loop utilisation ${f(100 * elu.utilization, 1)} %`,
  );
  console.log(`  client process CPU    ${f(cpuMs(report.cpu), 0)} ms (${clients} clients parsing every message)`);
  console.log(
    `  hub stats             sent ${stats.messages_sent_total} msgs, ${stats.bytes_sent_total} bytes, dropped_slow ${stats.dropped_slow_total}, client errors ${report.errors}`,
  );
}

if (process.argv[2] === "--child") {
  await child(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
} else {
  await main();
}
