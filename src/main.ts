#!/usr/bin/env node
/*
 * glassd command line: a thin shell around the daemon — argv, signals, exit codes.
 *   glassd run           start the daemon (default command)
 *   glassd check-config  validate the configuration and exit 0 (valid) or 1 (invalid)
 */
import { parseArgs } from "node:util";
import { ACCOUNTS_HELP, runAccountCommand } from "./cli/accounts.js";
import { PKI_HELP, runPkiCommand } from "./cli/pki.js";
import { runTwinCommand, twinHelp } from "./cli/twin.js";
import { loadConfig } from "./config/index.js";
import { Daemon } from "./daemon.js";
import { VERSION } from "./version.js";

const HELP = `glassd ${VERSION} — Glass AI Edge daemon

Usage:
  glassd [run] [options]        start the daemon (the digital twin is the line by default)
  glassd check-config [options] validate the configuration; exit 0 when valid, 1 when not
  glassd user|api-key ...       manage accounts (below)
  glassd twin COMMAND ...       digital-twin tools (below; 'glassd twin COMMAND --help')
  glassd --help | --version

Options:
  --config PATH            config file (YAML or JSON); also GLASSD_CONFIG
  --env-file PATH          .env file (default ./.env when present); also GLASSD_ENV_FILE
  --port N                 HTTP/WebSocket port (default 8000)
  --host ADDR              bind address (default 0.0.0.0)
  --data-dir DIR           data directory (default ./data; /var/lib/glassd under systemd)
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent
  --admin-password-file F  file with the first admin's password
  --set KEY=VALUE          any config key by dotted path, e.g. --set twin.speed=60 (repeatable)
  --print                  check-config: print the effective configuration
  --shutdown-timeout MS    bound on a clean shutdown (default 10000)

${ACCOUNTS_HELP}
${PKI_HELP}

Digital twin:
${twinHelp()}

Sources, lowest to highest: defaults, config file, .env, GLASSD_* environment (GLASSD_SECTION__KEY), flags.
Docs: README.md; config schema: config/schema.json; API: GET /openapi.json.`;

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
      config: { type: "string", short: "c" },
      "env-file": { type: "string" },
      port: { type: "string", short: "p" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      "log-level": { type: "string" },
      "admin-password-file": { type: "string" },
      set: { type: "string", multiple: true },
      print: { type: "boolean" },
      "shutdown-timeout": { type: "string" },
      role: { type: "string" },
      "password-file": { type: "string" },
      "password-stdin": { type: "boolean" },
    },
  });
  const cli: Record<string, string> = {};
  if (values.port !== undefined) cli["server.port"] = values.port;
  if (values.host !== undefined) cli["server.host"] = values.host;
  if (values["data-dir"] !== undefined) cli.data_dir = values["data-dir"];
  if (values["log-level"] !== undefined) cli["log.level"] = values["log-level"];
  if (values["admin-password-file"] !== undefined) cli["auth.admin_password_file"] = values["admin-password-file"];
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`--set expects KEY=VALUE, got "${kv}"`);
    cli[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { values, command: positionals[0] ?? "run", extra: positionals.slice(1), cli };
}

async function main(argv: string[]): Promise<number> {
  // Twin tools have their own options; they parse their own arguments.
  if (argv[0] === "twin") return runTwinCommand(argv.slice(1), (s) => process.stderr.write(`${s}\n`));
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`glassd: ${(err as Error).message}\nTry 'glassd --help'.\n`);
    return 2;
  }
  const { values, command, cli } = args;
  if (values.help || values.version) {
    process.stdout.write(`${values.help ? HELP : VERSION}\n`);
    return 0;
  }
  const accounts = command === "user" || command === "api-key";
  if (args.extra.length && !accounts && command !== "pki") {
    process.stderr.write(`glassd: unexpected argument "${args.extra[0]}"\n`);
    return 2;
  }
  // setTimeout fires at once for NaN (a typo) or more than 2^31-1 ms, which would cut every shutdown short.
  const shutdownTimeout = values["shutdown-timeout"];
  const shutdownTimeoutMs = shutdownTimeout === undefined ? undefined : Number(shutdownTimeout);
  if (
    shutdownTimeoutMs !== undefined &&
    !(Number.isInteger(shutdownTimeoutMs) && shutdownTimeoutMs > 0 && shutdownTimeoutMs <= 2_147_483_647)
  ) {
    process.stderr.write(
      `glassd: --shutdown-timeout expects milliseconds > 0 (e.g. 10000), got "${shutdownTimeout}"\n`,
    );
    return 2;
  }
  const load = loadConfig({ configFile: values.config, envFile: values["env-file"], cli });

  switch (command) {
    case "check-config": {
      if (load.issues.length) {
        process.stderr.write(`configuration is INVALID (${load.issues.length} problem(s)):\n`);
        for (const i of load.issues) process.stderr.write(`  ${i.path || "/"}: ${i.message}\n`);
        return 1;
      }
      process.stdout.write(
        `configuration is valid${load.files.length ? ` (read ${load.files.join(", ")})` : " (defaults)"}\n`,
      );
      if (values.print) process.stdout.write(`${JSON.stringify(load.config, null, 2)}\n`);
      return 0;
    }
    case "user":
    case "api-key":
      if (load.issues.length) {
        process.stderr.write(`configuration is invalid; run 'glassd check-config'\n`);
        return 1;
      }
      return runAccountCommand(
        load.config,
        {
          group: command,
          words: args.extra,
          role: values.role,
          passwordFile: values["password-file"],
          passwordStdin: values["password-stdin"],
        },
        (s) => process.stdout.write(`${s}\n`),
        (s) => process.stderr.write(`${s}\n`),
      );
    case "pki":
      if (load.issues.length) {
        process.stderr.write(`configuration is invalid; run 'glassd check-config'\n`);
        return 1;
      }
      return runPkiCommand(
        { dataDir: load.config.data_dir, pkiDir: load.config.source.opcua.pki_dir, words: args.extra },
        (s) => process.stdout.write(`${s}\n`),
        (s) => process.stderr.write(`${s}\n`),
      );
    case "run":
      return run(load, shutdownTimeoutMs);
    default:
      process.stderr.write(
        `glassd: unknown command "${command}" (valid: run, check-config, user, api-key, pki, twin)\n`,
      );
      return 2;
  }
}

async function run(load: ReturnType<typeof loadConfig>, shutdownTimeoutMs: number | undefined): Promise<number> {
  const daemon = new Daemon({ load, shutdownTimeoutMs });
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      daemon.log.warn({ signal: sig }, "second signal: exiting now");
      process.exit(130);
    }
    signalled = true;
    daemon.abortStart(`${sig} during start`);
    daemon
      .stop(sig)
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await daemon.start();
    return -1; // keep running; exit happens from the signal handler
  } catch (err) {
    if (signalled) return -1;
    daemon.log.fatal({ err }, "start failed");
    await daemon.stop("start failed");
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Pipes and files are written synchronously on Linux, so exiting here loses no output.
    if (code >= 0) process.exit(code);
  },
  (err) => {
    process.stderr.write(`glassd: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  },
);
