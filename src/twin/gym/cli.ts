import { parseArgs } from "node:util";
import type { TagConfig } from "../../config/schema.js";
import { createLogger } from "../../core/logger.js";
import { VERSION } from "../../version.js";
import { DEFAULT_MAX_ENVS, GYM_PROTOCOL, GYM_PROTOCOL_VERSION, GymServer, serveGym } from "./server.js";

const HELP = `glassd twin gym — vectorised RL environments of the twin over stdin/stdout

Usage: glassd twin gym [--config PATH] [--log-level LEVEL] [--max-envs N]

Speaks ${GYM_PROTOCOL} v${GYM_PROTOCOL_VERSION} (src/twin/gym/PROTOCOL.md): length-prefixed frames with a JSON header
and raw little-endian arrays on stdin/stdout; logs go to stderr. A client sends hello, reset, step… and close (or
just closes stdin); the server exits 0.

Options:
  --config PATH      take the tag dictionary (levers, bands, limits) from a glassd config file; default: the
                     built-in dictionary (DOMAIN.md)
  --log-level LEVEL  fatal|error|warn|info|debug|trace|silent (stderr; default info)
  --max-envs N       largest n_envs a reset may ask for (default ${DEFAULT_MAX_ENVS})
  -h, --help         this text`;

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** `glassd twin gym`: serves until close or EOF; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const err = (s: string) => process.stderr.write(`${s}\n`);
  let values: { help?: boolean; config?: string; "log-level"?: string; "max-envs"?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        config: { type: "string" },
        "log-level": { type: "string" },
        "max-envs": { type: "string" },
      },
    }));
  } catch (e) {
    err(`glassd twin gym: ${(e as Error).message}\nTry 'glassd twin gym --help'.`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const level = values["log-level"] ?? "info";
  if (!(LEVELS as readonly string[]).includes(level)) {
    err(`glassd twin gym: --log-level must be one of ${LEVELS.join(", ")}, got "${level}"`);
    return 2;
  }
  const maxEnvs = values["max-envs"] === undefined ? DEFAULT_MAX_ENVS : Number(values["max-envs"]);
  if (!Number.isInteger(maxEnvs) || maxEnvs < 1 || maxEnvs > 65_536) {
    err(`glassd twin gym: --max-envs must be an integer in 1..65536, got "${values["max-envs"]}"`);
    return 2;
  }

  let tags: TagConfig[];
  if (values.config !== undefined) {
    const { loadConfig } = await import("../../config/index.js");
    const load = loadConfig({ configFile: values.config });
    if (load.issues.length) {
      err(`glassd twin gym: configuration is invalid (run 'glassd check-config --config ${values.config}'):`);
      for (const i of load.issues) err(`  ${i.path || "/"}: ${i.message}`);
      return 2;
    }
    tags = load.config.tags;
  } else {
    tags = (await import("../../config/default-tags.js")).DEFAULT_TAGS;
  }

  // stdout carries the protocol: the logger writes to stderr only.
  const log = createLogger({ level: level as (typeof LEVELS)[number], destination: process.stderr }).child("twin.gym");
  let server: GymServer;
  try {
    server = new GymServer({ tags, log, maxEnvs });
  } catch (e) {
    err(`glassd twin gym: ${(e as Error).message}`);
    return 2;
  }
  log.info(
    {
      version: VERSION,
      protocol_version: GYM_PROTOCOL_VERSION,
      obs_dim: server.spec.obsDim,
      act_dim: server.spec.actDim,
    },
    "gym serving on stdin/stdout",
  );
  return serveGym(process.stdin, process.stdout, server, log);
}
