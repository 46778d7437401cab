import { type LevelWithSilent, type Logger, pino } from "pino";

export type { Logger };

export interface LogOptions {
  /** Default level for every namespace. */
  level: LevelWithSilent;
  /** Per-namespace overrides, e.g. `{ "twin": "debug", "api": "warn" }`. */
  levels?: Record<string, LevelWithSilent>;
  /** Where to write; defaults to stdout (journald under systemd). */
  destination?: NodeJS.WritableStream;
}

/**
 * One root logger; modules take a child with `ns` and their own level from config. Secrets and full frames are
 * redacted by path as a second line of defence — the first is never passing them to a logger.
 */
export function createLogger(opts: LogOptions): { root: Logger; child(ns: string): Logger } {
  const root = pino(
    {
      level: "trace",
      base: { pid: process.pid },
      redact: {
        paths: ["password", "token", "secret", "*.password", "*.token", "*.secret", "authorization"],
        censor: "[redacted]",
      },
    },
    // Synchronous stdout: a daemon logs little, and every line (the last ones before exit included) reaches
    // journald whole and in order; an async destination can drop or reorder the final lines at process.exit.
    (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ fd: 1, sync: true }),
  );
  root.level = opts.level;
  return {
    root,
    child(ns: string): Logger {
      const child = root.child({ ns });
      child.level = opts.levels?.[ns] ?? opts.level;
      return child;
    },
  };
}

/** A logger that discards everything; for tests and tools. */
export const silentLogger: Logger = pino({ level: "silent" });
