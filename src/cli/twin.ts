/**
 * `glassd twin <command> …`: the digital twin's tools. Each command lives with its capability and is imported
 * lazily, so `glassd run` never loads the dataset writer, the gym or the plant servers.
 */
export interface TwinCommand {
  summary: string;
  load(): Promise<{ main(argv: string[]): Promise<number> }>;
}

const COMMANDS: Record<string, TwinCommand> = {
  serve: {
    summary: "run the twin as a plant: OPC UA server + MQTT (JSON, Sparkplug B)",
    load: () => import("../twin/plant/cli.js"),
  },
  render: {
    summary: "write synthetic MIK-1 images with masks (--out DIR --n N ...)",
    load: () => import("../twin/images/cli.js"),
  },
  gym: {
    summary: "vectorised RL environments over stdin/stdout (src/twin/gym/PROTOCOL.md)",
    load: () => import("../twin/gym/cli.js"),
  },
  dataset: {
    summary: "write training data: sensors, features + labels, graphs, items, images (--out DIR --hours H --seed S)",
    load: () => import("../twin/dataset/cli.js"),
  },
  scenario: {
    summary: "named event scripts for the twin: list | check FILE | run NAME|FILE --hours H [--seed S]",
    load: () => import("../twin/scenario/cli.js"),
  },
};

export function twinHelp(): string {
  const names = Object.keys(COMMANDS);
  if (names.length === 0) return "  (no twin commands built yet)";
  return names.map((n) => `  glassd twin ${n.padEnd(9)} ${COMMANDS[n]?.summary}`).join("\n");
}

/** Runs `glassd twin <command> [args]`; returns the exit code. */
export async function runTwinCommand(argv: string[], err: (s: string) => void): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : COMMANDS[name];
  if (!cmd) {
    err(
      `${name ? `glassd twin: unknown command "${name}"` : "glassd twin: a command is needed"}; valid:\n${twinHelp()}`,
    );
    return 2;
  }
  return (await cmd.load()).main(rest);
}
