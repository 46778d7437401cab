/*
 * Test runner: every tests/**\/*.test.ts file in its own Node process (a crash or a leaked handle in one suite
 * cannot take the others down; a hung file is killed after a timeout), uvu's per-file totals summed, and one
 * closing line `N passed, N failed` that CI reads; then the model factory's pytest suite, its counts added in.
 * Usage: tsx tests/run.ts [filter-substring...]
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
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

// The model factory's pytest suite (quick mode) runs in the factory's own pinned venv, created on first use by
// models/factory/setup-venv.sh (a no-op once it matches requirements.lock). GLASSD_TEST_PYTHON=0 leaves it out.
const wantPython =
  process.env.GLASSD_TEST_PYTHON !== "0" && (filters.length === 0 || filters.some((x) => "models/factory".includes(x)));
if (wantPython) {
  const factory = join(root, "models", "factory");
  const junit = join(tmpdir(), `glassd-pytest-${process.pid}.xml`);
  process.stdout.write("\n── models/factory (pytest)\n");
  const res = await runChild("bash", [join(factory, "setup-venv.sh")], root).then((setup) =>
    setup.code !== 0
      ? { code: setup.code, out: `${setup.out}\n[run] setup-venv.sh failed\n` }
      : runChild(
          join(factory, ".venv", "bin", "python"),
          ["-m", "pytest", "-q", "--color=no", "-p", "no:cacheprovider", `--junitxml=${junit}`, "tests"],
          factory,
        ),
  );
  // Counts from pytest's JUnit XML report (its console summary line varies between versions and verbosity).
  const xml = existsSync(junit) ? readFileSync(junit, "utf8") : "";
  const attr = (name: string) => Number(new RegExp(`<testsuite [^>]*\\b${name}="(\\d+)"`).exec(xml)?.[1] ?? 0);
  const count = (word: "passed" | "failed" | "error" | "skipped") =>
    word === "passed"
      ? attr("tests") - attr("failures") - attr("errors") - attr("skipped")
      : attr(word === "failed" ? "failures" : word === "error" ? "errors" : "skipped");
  rmSync(junit, { force: true });
  passed += count("passed");
  skipped += count("skipped");
  failed += count("failed") + count("error");
  if (res.code !== 0 || count("passed") === 0) {
    broken.push("models/factory (pytest)");
    if (count("failed") + count("error") === 0) failed += 1;
  }
}

function runChild(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // pytest takes FORCE_COLOR (any value) as "force colour"; --color=no above is what turns it off.
    const { FORCE_COLOR: _, ...env } = process.env;
    const child = spawn(cmd, args, { cwd, env });
    let out = "";
    const onData = (b: Buffer) => {
      out += b.toString();
      process.stdout.write(b);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const timer = setTimeout(() => {
      out += `\n[run] ${cmd} timed out after ${FILE_TIMEOUT_MS * 4} ms\n`;
      child.kill("SIGKILL");
    }, FILE_TIMEOUT_MS * 4);
    child.on("error", (err) => {
      out += `\n[run] cannot start ${cmd}: ${err.message}\n`;
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

if (broken.length) process.stdout.write(`\nFailing files:\n${broken.map((b) => `  ${b}`).join("\n")}\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exit(failed > 0 || broken.length > 0 || (files.length === 0 && !wantPython) ? 1 : 0);
