/*
 * Runs every bench (bench/*.ts except this file; bench/lib/ holds helpers) one after another, each in its own
 * process (`node --import tsx <file>`) so one bench's heap, JIT state and leftover handles cannot colour the next,
 * streaming their output as it comes, then prints how each one ended.
 *
 * Usage: npm run bench [-- name ...]      e.g. `npm run bench -- tick rest` runs bench/tick.ts and bench/rest.ts
 * Each bench is stopped (SIGTERM, then SIGKILL) if it runs longer than --timeout seconds (default 180).
 * Exit code 1 when a bench failed or timed out.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { table } from "./lib/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const self = basename(fileURLToPath(import.meta.url));

const argv = process.argv.slice(2);
const ti = argv.indexOf("--timeout");
const timeoutS = ti >= 0 ? Number(argv[ti + 1]) : 180;
if (!(timeoutS > 0)) throw new RangeError("--timeout must be a positive number of seconds");
const only = argv.filter((a, i) => !a.startsWith("--") && !(ti >= 0 && i === ti + 1));

const all = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== self && !f.endsWith(".d.ts"))
  .sort();
const files = only.length ? all.filter((f) => only.some((o) => f === o || f === `${o}.ts`)) : all;
if (only.length && files.length !== only.length) {
  process.stderr.write(
    `unknown bench in ${JSON.stringify(only)}; available: ${all.map((f) => f.slice(0, -3)).join(", ")}\n`,
  );
  process.exit(2);
}

interface Outcome {
  name: string;
  status: string;
  seconds: number;
}

let current: ChildProcess | undefined;
let interrupted = false;
const onSignal = (sig: NodeJS.Signals) => {
  interrupted = true;
  current?.kill(sig);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

function runOne(file: string): Promise<Outcome> {
  const name = file.slice(0, -3);
  const started = performance.now();
  process.stdout.write(`\n━━ bench/${file} ${"━".repeat(Math.max(0, 100 - file.length))}\n`);
  return new Promise((resolve) => {
    const kid = spawn(process.execPath, ["--import", "tsx", relative(root, join(here, file))], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: process.env,
    });
    current = kid;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      kid.kill("SIGTERM");
      setTimeout(() => kid.exitCode === null && kid.kill("SIGKILL"), 5_000).unref();
    }, timeoutS * 1000);
    const finish = (status: string) => {
      clearTimeout(timer);
      current = undefined;
      resolve({ name, status, seconds: (performance.now() - started) / 1000 });
    };
    kid.once("error", (err) => finish(`failed to start: ${err.message}`));
    kid.once("exit", (code, signal) =>
      finish(
        timedOut
          ? `timed out after ${timeoutS} s`
          : code === 0
            ? "ok"
            : signal
              ? `killed by ${signal}`
              : `exit code ${code}`,
      ),
    );
  });
}

process.stdout.write(
  `glassd benches — node ${process.version}, ${files.length} of them: ${files.map((f) => f.slice(0, -3)).join(", ")}\n`,
);
const outcomes: Outcome[] = [];
for (const f of files) {
  if (interrupted) break;
  outcomes.push(await runOne(f));
}
process.stdout.write(`\n━━ summary ${"━".repeat(97)}\n`);
process.stdout.write(
  table(
    ["bench", "status", "wall s"],
    outcomes.map((o) => [o.name, o.status, o.seconds.toFixed(1)]),
    { align: ["l", "l", "r"] },
  ),
);
if (interrupted) process.stdout.write("interrupted: the remaining benches did not run\n");
process.exitCode = interrupted || outcomes.some((o) => o.status !== "ok") ? 1 : 0;
