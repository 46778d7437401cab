import { createRequire } from "node:module";

/**
 * sd_notify(3) for Type=notify services. Node has no unix datagram sockets, so this uses the `unix-dgram`
 * native addon (an optional dependency, as zigbee2mqtt does). Without NOTIFY_SOCKET (not under systemd) every
 * call is a no-op. If the addon is missing under systemd, `available` is false and the caller logs it once.
 */
export interface Notifier {
  readonly enabled: boolean;
  ready(status?: string): void;
  watchdog(): void;
  stopping(): void;
  status(text: string): void;
  /** Watchdog interval systemd asked for (half of WATCHDOG_USEC), or 0 when no watchdog is configured. */
  readonly watchdogIntervalMs: number;
  close(): void;
}

interface UnixDgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
  close(): void;
  on(ev: "error", cb: (err: Error) => void): void;
}

export function createNotifier(
  env: NodeJS.ProcessEnv = process.env,
  onError: (err: Error) => void = () => {},
): Notifier {
  let socketPath = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  const watchdogPid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : process.pid;
  const watchdogIntervalMs = usec > 0 && watchdogPid === process.pid ? Math.max(1, Math.floor(usec / 2000)) : 0;
  if (!socketPath) return noopNotifier;
  // Abstract-namespace sockets are given with a leading "@".
  if (socketPath.startsWith("@")) socketPath = `\0${socketPath.slice(1)}`;
  let sock: UnixDgramSocket;
  try {
    const require = createRequire(import.meta.url);
    const dgram = require("unix-dgram") as { createSocket(type: "unix_dgram"): UnixDgramSocket };
    sock = dgram.createSocket("unix_dgram");
    sock.on("error", onError);
  } catch (err) {
    onError(
      new Error("NOTIFY_SOCKET is set but the unix-dgram addon could not be loaded; systemd will not see READY=1", {
        cause: err,
      }),
    );
    return noopNotifier;
  }
  const path = socketPath;
  const send = (msg: string) => {
    const buf = Buffer.from(msg);
    sock.send(buf, 0, buf.length, path, (err) => err && onError(err));
  };
  return {
    enabled: true,
    watchdogIntervalMs,
    ready: (status) => send(`READY=1\nMAINPID=${process.pid}${status ? `\nSTATUS=${status}` : ""}`),
    watchdog: () => send("WATCHDOG=1"),
    stopping: () => send("STOPPING=1"),
    status: (text) => send(`STATUS=${text}`),
    close: () => sock.close(),
  };
}

const noopNotifier: Notifier = {
  enabled: false,
  watchdogIntervalMs: 0,
  ready() {},
  watchdog() {},
  stopping() {},
  status() {},
  close() {},
};
