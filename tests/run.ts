/*
 * Test runner: every tests/**\/*.test.ts file in its own Node process (a crash or a leaked handle in one suite
 * cannot take the others down; a hung file is killed after a timeout), uvu's per-file totals summed, and one
 * closing line `N passed, N failed` that CI reads. Usage: tsx tests/run.ts [filter-substring...]
 */
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 300_000);

function find(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const files = find(join(root, "tests")).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
let passed = 0;
let failed = 0;
let skipped = 0;
const broken: string[] = [];

for (const file of files) {
  const rel = relative(root, file);
  process.stdout.write(`\n── ${rel}\n`);
  const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let out = "";
    const onData = (b: Buffer) => {
      out += b.toString();
      process.stdout.write(b);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = setTimeout(() => {
      out += `\n[run] ${rel} timed out after ${FILE_TIMEOUT_MS} ms\n`;
      child.kill("SIGKILL");
    }, FILE_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
  const total = Number(/Total:\s+(\d+)/.exec(res.out)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(res.out)?.[1] ?? 0);
  const sk = Number(/Skipped:\s+(\d+)/.exec(res.out)?.[1] ?? 0);
  // uvu's Total does not include skipped tests, so every test in Total that did not pass failed.
  passed += ok;
  skipped += sk;
  failed += total - ok;
  if (res.code !== 0 || total === 0) {
    broken.push(rel);
    if (total === ok) failed += 1; // the file itself failed (crash, timeout, no tests)
  }
}

if (broken.length) process.stdout.write(`\nFailing files:\n${broken.map((b) => `  ${b}`).join("\n")}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exit(failed > 0 || broken.length > 0 || files.length === 0 ? 1 : 0);
