import { parseArgs } from "node:util";
import { numberFlag } from "../../cli/flags.js";
import { GlassdError } from "../../core/errors.js";
import { builtinScenarios, loadScenario, ScenarioError } from "./load.js";
import { formatScenarioRun, runScenario } from "./summary.js";

/*
 * `glassd twin scenario list | check FILE… | run NAME|FILE --hours H [--seed S]`. Exit codes: 0 done, 1 a scenario
 * is invalid, 2 bad command line.
 */

const HELP = `Usage:
  glassd twin scenario list                       the built-in scenarios
  glassd twin scenario check FILE|NAME ...        validate scenario files (YAML or JSON) against the schema and
                                                  DOMAIN.md's tag dictionary; exit 1 when one is invalid
  glassd twin scenario run NAME|FILE [options]    run a scenario on a fresh twin (manual time, no daemon) and print
                                                  defect rates per class per hour and key tags
    --hours H           simulated hours (default: the scenario's duration_hours, else 8)
    --seed S            random seed (default: the scenario's seed, else 42)
    --step-ms MS        simulation step (default 1000)
    --items-per-min N   items inspected per minute at 150 m/min (default 15)
    --json              print the summary as JSON instead of a table`;

export interface ScenarioCliIo {
  out(s: string): void;
  err(s: string): void;
}

const stdio: ScenarioCliIo = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

class UsageError extends Error {}

const number = (name: string, raw: string | undefined, check: (n: number) => boolean, what: string) =>
  numberFlag(name, raw, check, what, (m) => new UsageError(m));

export async function main(argv: string[], io: ScenarioCliIo = stdio): Promise<number> {
  try {
    return run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`glassd twin scenario: ${err.message}\nTry 'glassd twin scenario --help'.`);
      return 2;
    }
    if (err instanceof ScenarioError) {
      io.err(`${err.source}: invalid scenario`);
      for (const i of err.issues) io.err(`  ${i.path}: ${i.message}`);
      return 1;
    }
    if (err instanceof GlassdError || err instanceof RangeError) {
      io.err(`glassd twin scenario: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

function run(argv: string[], io: ScenarioCliIo): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === "help") {
    io.out(HELP);
    return 0;
  }
  switch (command) {
    case "list": {
      if (rest.length) throw new UsageError(`list takes no argument, got "${rest[0]}"`);
      const all = builtinScenarios();
      if (all.length === 0) {
        io.err("no built-in scenarios found (the scenarios/ folder is missing beside dist/ or src/)");
        return 1;
      }
      const w = Math.max(...all.map((s) => s.name.length));
      for (const s of all) {
        const hours = s.durationHours === undefined ? "" : ` (${s.durationHours} h)`;
        io.out(`${s.name.padEnd(w)}  ${s.description.trim().split("\n")[0]}${hours}`);
      }
      return 0;
    }
    case "check": {
      if (rest.length === 0) throw new UsageError("check needs at least one FILE (or built-in name)");
      let bad = 0;
      for (const ref of rest) {
        try {
          const s = loadScenario(ref);
          io.out(`${ref}: ok (scenario "${s.name}", ${s.events.length} events)`);
        } catch (err) {
          if (!(err instanceof ScenarioError)) throw err;
          bad++;
          io.err(`${ref}: invalid scenario`);
          for (const i of err.issues) io.err(`  ${i.path}: ${i.message}`);
        }
      }
      return bad ? 1 : 0;
    }
    case "run": {
      if (rest.length !== 1) throw new UsageError("run needs exactly one NAME or FILE");
      const hoursArg = number("hours", values.hours, (n) => n > 0 && n <= 8760, "hours > 0 (at most 8760)");
      const seedArg = number("seed", values.seed, Number.isSafeInteger, "an integer");
      const stepMs = number(
        "step-ms",
        values["step-ms"],
        (n) => Number.isInteger(n) && n >= 10 && n <= 60_000,
        "an integer 10..60000",
      );
      const itemsPerMin = number(
        "items-per-min",
        values["items-per-min"],
        (n) => n > 0 && n <= 600,
        "a number in (0, 600]",
      );
      const scenario = loadScenario(rest[0]!);
      const hours = hoursArg ?? scenario.duration_hours ?? 8;
      const seed = seedArg ?? scenario.seed ?? 42;
      const result = runScenario(scenario, {
        hours,
        seed,
        ...(stepMs === undefined ? {} : { stepMs }),
        ...(itemsPerMin === undefined ? {} : { itemsPerMin }),
      });
      io.out(
        values.json
          ? JSON.stringify(result, (_k, v) => (Number.isNaN(v) ? null : v), 1)
          : formatScenarioRun(result, scenario),
      );
      return 0;
    }
    case undefined:
      throw new UsageError("a command is needed: list, check or run");
    default:
      throw new UsageError(`unknown command "${command}"; valid: list, check, run`);
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      hours: { type: "string" },
      seed: { type: "string" },
      "step-ms": { type: "string" },
      "items-per-min": { type: "string" },
      json: { type: "boolean" },
    },
  });
}
