/*
 * The command line as an operator meets it: `glassd` run as a real process (node --import tsx src/main.ts), exit
 * codes 0 (ok) / 1 (invalid configuration) / 2 (usage error), and no secret in any output.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  ADMIN_PASSWORD,
  type CliResult,
  ROOT,
  removeTempDirs,
  runCli,
  workspace,
} from "./fixtures/lifecycle-harness.js";

const cli = suite("cli");
const PKG_VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** Every output of every command run here, checked for the admin password at the end. */
const outputs: Array<{ args: string[]; out: string }> = [];

async function glassd(args: string[]): Promise<CliResult> {
  const r = await runCli(args);
  outputs.push({ args, out: r.stdout + r.stderr });
  return r;
}

const show = (r: CliResult) => `exit ${r.code}/${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

cli.after(() => removeTempDirs());

cli("--help exits 0 and documents run, check-config and --port", async () => {
  const r = await glassd(["--help"]);
  assert.is(r.code, 0, show(r));
  assert.match(r.stdout, /\brun\b/);
  assert.match(r.stdout, /check-config/);
  assert.match(r.stdout, /--port/);
  assert.match(r.stdout, /--data-dir/);
});

cli("--version prints package.json's version and exits 0", async () => {
  const r = await glassd(["--version"]);
  assert.is(r.code, 0, show(r));
  assert.is(r.stdout.trim(), PKG_VERSION);
});

cli("an unknown flag is a usage error: exit 2 and a message naming it", async () => {
  const r = await glassd(["run", "--no-such-flag"]);
  assert.is(r.code, 2, show(r));
  assert.match(r.stderr, /--no-such-flag/);
  assert.match(r.stderr, /--help/, "points at --help");
  assert.not.match(r.stdout, /glassd ready/, "the daemon did not start");
});

cli("an unknown command is a usage error: exit 2 and a message naming it", async () => {
  const r = await glassd(["frobnicate"]);
  assert.is(r.code, 2, show(r));
  assert.match(r.stderr, /unknown command/);
  assert.match(r.stderr, /frobnicate/);
  assert.match(r.stderr, /check-config/, "lists the valid commands");
});

cli("a bad --shutdown-timeout is a usage error (exit 2), not a shutdown bound of ~1 ms", async () => {
  const ws = workspace();
  const base = ["run", "--host", "127.0.0.1", "--port", "0", "--data-dir", ws.dataDir, "--env-file", ws.envFile];
  for (const bad of ["abc", "0", "-5", "2.5", "99999999999"]) {
    const r = await glassd([...base, "--admin-password-file", ws.passwordFile, "--shutdown-timeout", bad]);
    assert.is(r.code, 2, `--shutdown-timeout ${bad}: ${show(r)}`);
    assert.match(r.stderr, /--shutdown-timeout/);
    assert.not.match(r.stdout, /glassd starting/, "the daemon did not start");
  }
});

cli("check-config with the defaults is valid: exit 0", async () => {
  const ws = workspace();
  const r = await glassd(["check-config", "--env-file", ws.envFile, "--admin-password-file", ws.passwordFile]);
  assert.is(r.code, 0, show(r));
  assert.match(r.stdout, /configuration is valid/);
  assert.is(r.stderr, "");
});

cli("check-config with a bad config file: exit 1, naming /server/port and the unknown key's path", async () => {
  const ws = workspace();
  const file = join(ws.dir, "bad.yaml");
  writeFileSync(file, "server:\n  port: 70000\ntwin:\n  sped: 60\n");
  const r = await glassd(["check-config", "--config", file, "--env-file", ws.envFile]);
  assert.is(r.code, 1, show(r));
  assert.match(r.stderr, /INVALID/);
  assert.match(r.stderr, /\/server\/port: .*65535/, "the port error names its path and the limit");
  assert.match(r.stderr, /\/twin\/sped: unknown key/, "the unknown key is named by its full path");
  assert.match(r.stderr, /config file/, "says where the bad value was set");
  assert.not.match(r.stdout, /configuration is valid/);
});

cli("check-config --print shows the effective configuration (valid JSON, flags applied)", async () => {
  const ws = workspace();
  const r = await glassd([
    "check-config",
    "--print",
    "--env-file",
    ws.envFile,
    "--port",
    "8123",
    "--data-dir",
    ws.dataDir,
    "--admin-password-file",
    ws.passwordFile,
  ]);
  assert.is(r.code, 0, show(r));
  const start = r.stdout.indexOf("{");
  assert.ok(start > 0, "a status line, then the JSON");
  const printed = JSON.parse(r.stdout.slice(start)) as {
    server: { port: number };
    data_dir: string;
    auth: { admin_password_file?: string };
    tags: unknown[];
  };
  assert.is(printed.server.port, 8123);
  assert.is(printed.data_dir, ws.dataDir);
  // The path of the secret is configuration; its content is not.
  assert.is(printed.auth.admin_password_file, ws.passwordFile);
  assert.ok(printed.tags.length > 0);
});

cli("no command ever prints the admin password (the file's content)", async () => {
  assert.ok(outputs.length >= 6, "the commands above ran");
  for (const { args, out } of outputs)
    assert.not.ok(out.includes(ADMIN_PASSWORD), `glassd ${args.join(" ")} printed the admin password`);
});

cli.run();
