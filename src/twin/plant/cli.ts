import { isAbsolute, join, resolve } from "node:path";
import { format, parseArgs } from "node:util";
import { type Config, loadConfig } from "../../config/index.js";
import { createLogger, type Logger } from "../../core/logger.js";
import { isLoose, PlantUsers, readMqttCredentials, readUserFile } from "./credentials.js";
import { PlantUsageError } from "./errors.js";
import { DirectoryFrameSink, PlantFrames } from "./frames.js";
import type { MqttBrokerOptions } from "./mqtt-connection.js";
import { checkBrokerUrl } from "./mqtt-connection.js";
import { PlantMqttJson } from "./mqtt-json.js";
import { type OpcuaSecurityMode, PlantOpcuaServer } from "./opcua-server.js";
import { Plant } from "./plant.js";
import { SPARKPLUG_ID, SparkplugEdgeNode, type SparkplugLayout } from "./sparkplug.js";

/** `glassd twin serve --help`. */
export const SERVE_HELP = `glassd twin serve — the digital twin as a plant: an OPC UA server (what the PLC would be) and MQTT
publishers (plain JSON and Sparkplug B), running the line in real time (or faster) until SIGTERM/SIGINT.

Usage: glassd twin serve [options]

Twin:
  --config PATH              glassd config: tag dictionary, line id, twin seed/speed/step (default: glassd's)
  --seed N                   random seed (default: config twin.seed)
  --speed X                  simulated seconds per real second (default: config twin.speed)
  --step-ms N                simulation step in ms (default: config twin.step_ms)
  --heartbeat-timeout-s S    LOCAL mode when glassd's heartbeat stops for this long (default 10)
  --data-dir DIR             plant state: PKI, Sparkplug bdSeq (default: <config data_dir>/twin-plant)
  --log-level LEVEL          fatal|error|warn|info|debug|trace|silent (default info)

OPC UA (ns=1;s=<line>.<tag>, setpoints <tag>_sp, ns=1;s=<line>.glassd_heartbeat, ns=1;s=<line>.remote_mode):
  --opcua-port N             TCP port, 0 = any free one (default 4840)
  --opcua-host ADDR          address to bind (default: all interfaces)
  --opcua-hostname NAME      host name in endpoint URLs and the certificate (default: this machine's FQDN)
  --opcua-security MODES     comma list of none|sign|encrypt, or all (default sign,encrypt); policies
                             Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss
  --user-file F              users allowed to log in: {"users":[{"name","password","role"}]}, role
                             viewer|operator|engineer|admin (operator and up may write setpoints)
  --opcua-anonymous MODE     off (default) | read (anonymous sessions, read-only)
  --pki-dir DIR              PKI: own certificate (self-signed on first start), trusted/ and rejected/
                             client certificates (default <data-dir>/pki)
  --user-pki-dir DIR         PKI for X.509 user tokens (default <data-dir>/user-pki)
  --opcua-auto-accept-clients  trust every client certificate on first sight (development only); otherwise
                             a client's certificate lands in <pki>/rejected/ on its first attempt: move it to
                             <pki>/trusted/certs/ to trust it. Clients trust <pki>/own/certs/certificate.pem.

MQTT (JSON: glass/<line>/sensors/<tag>, glass/<line>/inspection, glass/<line>/status;
      Sparkplug B: spBv1.0/<group>/NBIRTH|NDATA|NDEATH/<node>, DBIRTH|DDATA per stage device):
  --mqtt-url URL             broker, e.g. mqtt://127.0.0.1:1883 or mqtts://broker:8883 (MQTT off without it)
  --mqtt-user-file F         broker credentials: {"username":"…","password":"…"}
  --mqtt-ca F                CA bundle (PEM) for mqtts/wss
  --mqtt-cert F --mqtt-key F client certificate and key (PEM)
  --sparkplug-group G        Sparkplug group id (default glass)
  --sparkplug-node N         Sparkplug edge node id (default: the line id)
  --sparkplug-layout L       devices (default: a device per stage) | node (every metric on the node)
  --no-sparkplug             plain JSON only
  --no-mqtt-json             Sparkplug B only

MIK-1 frames (one image per inspected item, <line>_<item>.png|jpg + a .json sidecar with its defects,
written as *.tmp, fsynced, then renamed):
  --frames-dir DIR           write frames here (off without it)
  --frame-width N            64..1920 (default 512)
  --frame-height N           64..1920, at most 1920×1080 pixels in all (default 512)
  --frame-format F           png (default) | jpeg

Passwords come only from files, never from the command line.`;

/** Everything `glassd twin serve` was asked to do. */
export interface ServeConfig {
  lineId: string;
  config: Config;
  seed: number;
  speed: number;
  stepMs: number;
  heartbeatTimeoutMs: number;
  dataDir: string;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  opcua: {
    port: number;
    host?: string;
    hostname?: string;
    security: OpcuaSecurityMode[];
    anonymous: "off" | "read";
    users: PlantUsers;
    userFile?: string;
    pkiDir: string;
    userPkiDir: string;
    autoAcceptClients: boolean;
  };
  mqtt?: {
    broker: MqttBrokerOptions;
    json: boolean;
    sparkplug?: { groupId: string; nodeId: string; layout: SparkplugLayout };
  };
  /** MIK-1 frames rendered per inspected item into a directory (write-then-rename). */
  frames?: { dir: string; width: number; height: number; format: "png" | "jpeg" };
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

function num(flag: string, raw: string | undefined, o: { min: number; max: number; integer?: boolean }) {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(v) || (o.integer && !Number.isInteger(v)) || v < o.min || v > o.max) {
    throw new PlantUsageError(
      flag,
      `expects ${o.integer ? "an integer" : "a number"} from ${o.min} to ${o.max}, got ${JSON.stringify(raw)}`,
    );
  }
  return v;
}

function oneOf<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[], dflt: T): T {
  if (raw === undefined) return dflt;
  if (!allowed.includes(raw as T)) {
    throw new PlantUsageError(flag, `expects one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/**
 * Parses `glassd twin serve` arguments and reads the files they name.
 * @throws PlantUsageError naming the flag for any bad argument.
 */
export function parseServeArgs(argv: string[], cwd = process.cwd()): ServeConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        config: { type: "string" },
        seed: { type: "string" },
        speed: { type: "string" },
        "step-ms": { type: "string" },
        "heartbeat-timeout-s": { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
        "opcua-port": { type: "string" },
        "opcua-host": { type: "string" },
        "opcua-hostname": { type: "string" },
        "opcua-security": { type: "string" },
        "opcua-anonymous": { type: "string" },
        "opcua-auto-accept-clients": { type: "boolean" },
        "user-file": { type: "string" },
        "pki-dir": { type: "string" },
        "user-pki-dir": { type: "string" },
        "mqtt-url": { type: "string" },
        "mqtt-user-file": { type: "string" },
        "mqtt-ca": { type: "string" },
        "mqtt-cert": { type: "string" },
        "mqtt-key": { type: "string" },
        "sparkplug-group": { type: "string" },
        "sparkplug-node": { type: "string" },
        "sparkplug-layout": { type: "string" },
        "no-sparkplug": { type: "boolean" },
        "no-mqtt-json": { type: "boolean" },
        "frames-dir": { type: "string" },
        "frame-width": { type: "string" },
        "frame-height": { type: "string" },
        "frame-format": { type: "string" },
      },
    }));
  } catch (err) {
    const m = /'(--?[A-Za-z0-9-]+)/.exec((err as Error).message);
    throw new PlantUsageError(m?.[1] ?? "argument", (err as Error).message.replace(/\. To specify.*$/s, ""), err);
  }
  const s = (k: string) => values[k] as string | undefined;
  const b = (k: string) => values[k] === true;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));

  const load = loadConfig({ configFile: s("config"), cwd });
  if (load.issues.length) {
    throw new PlantUsageError(
      "--config",
      `the configuration is invalid: ${load.issues.map((i) => `${i.path || "/"}: ${i.message}`).join("; ")}`,
    );
  }
  const config = load.config;
  const lineId = config.line.id;

  const seed = num("--seed", s("seed"), { min: -(2 ** 31), max: 2 ** 31 - 1, integer: true }) ?? config.twin.seed;
  const speed = num("--speed", s("speed"), { min: 0.01, max: 100_000 }) ?? config.twin.speed;
  const stepMs = num("--step-ms", s("step-ms"), { min: 10, max: 60_000, integer: true }) ?? config.twin.step_ms;
  const heartbeatTimeoutS = num("--heartbeat-timeout-s", s("heartbeat-timeout-s"), { min: 0.1, max: 3600 }) ?? 10;
  const dataDir = abs(s("data-dir") ?? join(config.data_dir, "twin-plant"));
  const logLevel = oneOf("--log-level", s("log-level"), LOG_LEVELS, "info");

  const port = num("--opcua-port", s("opcua-port"), { min: 0, max: 65_535, integer: true }) ?? 4840;
  const security = parseSecurity(s("opcua-security") ?? "sign,encrypt");
  const anonymous = oneOf("--opcua-anonymous", s("opcua-anonymous"), ["off", "read"] as const, "off");
  const userFile = s("user-file");
  const users = userFile ? readUserFile(abs(userFile)) : new PlantUsers();
  if (users.size === 0 && anonymous === "off") {
    throw new PlantUsageError(
      "--user-file",
      "nobody could open an OPC UA session: give users with --user-file F, or allow read-only --opcua-anonymous read",
    );
  }
  for (const [flag, v] of [
    ["--opcua-host", s("opcua-host")],
    ["--opcua-hostname", s("opcua-hostname")],
  ] as const) {
    if (v !== undefined && !/^[A-Za-z0-9.:_-]{1,253}$/.test(v)) {
      throw new PlantUsageError(flag, `expects a host name or address, got ${JSON.stringify(v)}`);
    }
  }

  const mqttUrl = s("mqtt-url");
  let mqtt: ServeConfig["mqtt"];
  const mqttOnly = ["mqtt-user-file", "mqtt-ca", "mqtt-cert", "mqtt-key", "sparkplug-group", "sparkplug-node"];
  if (!mqttUrl) {
    const stray = mqttOnly.find((k) => s(k) !== undefined) ?? ["no-sparkplug", "no-mqtt-json"].find((k) => b(k));
    if (stray) throw new PlantUsageError(`--${stray}`, "needs --mqtt-url");
  } else {
    checkBrokerUrl(mqttUrl);
    if (s("mqtt-cert") !== undefined && s("mqtt-key") === undefined) {
      throw new PlantUsageError("--mqtt-cert", "needs --mqtt-key (the client certificate's private key)");
    }
    if (s("mqtt-key") !== undefined && s("mqtt-cert") === undefined) {
      throw new PlantUsageError("--mqtt-key", "needs --mqtt-cert");
    }
    const creds = s("mqtt-user-file") ? readMqttCredentials(abs(s("mqtt-user-file")!)) : undefined;
    const json = !b("no-mqtt-json");
    const sparkplugOn = !b("no-sparkplug");
    if (!json && !sparkplugOn) throw new PlantUsageError("--no-mqtt-json", "with --no-sparkplug nothing is published");
    const groupId = s("sparkplug-group") ?? "glass";
    const nodeId = s("sparkplug-node") ?? lineId;
    for (const [flag, v] of [
      ["--sparkplug-group", groupId],
      ["--sparkplug-node", nodeId],
    ] as const) {
      if (!SPARKPLUG_ID.test(v))
        throw new PlantUsageError(flag, `must be 1–64 characters without / + #, got ${JSON.stringify(v)}`);
    }
    const layout = oneOf("--sparkplug-layout", s("sparkplug-layout"), ["devices", "node"] as const, "devices");
    mqtt = {
      broker: {
        url: mqttUrl,
        ...(creds ?? {}),
        ...(s("mqtt-ca") ? { caFile: abs(s("mqtt-ca")!) } : {}),
        ...(s("mqtt-cert") ? { certFile: abs(s("mqtt-cert")!), keyFile: abs(s("mqtt-key")!) } : {}),
      },
      json,
      ...(sparkplugOn ? { sparkplug: { groupId, nodeId, layout } } : {}),
    };
  }

  let frames: ServeConfig["frames"];
  const framesDir = s("frames-dir");
  if (framesDir === undefined) {
    const stray = ["frame-width", "frame-height", "frame-format"].find((k) => s(k) !== undefined);
    if (stray) throw new PlantUsageError(`--${stray}`, "needs --frames-dir");
  } else {
    const width = num("--frame-width", s("frame-width"), { min: 64, max: 1920, integer: true }) ?? 512;
    const height = num("--frame-height", s("frame-height"), { min: 64, max: 1920, integer: true }) ?? 512;
    if (width * height > 1920 * 1080) {
      throw new PlantUsageError("--frame-width", `${width}×${height} is more than the MIK-1's 1920×1080 pixels`);
    }
    const format = oneOf("--frame-format", s("frame-format"), ["png", "jpeg"] as const, "png");
    frames = { dir: abs(framesDir), width, height, format };
  }

  return {
    lineId,
    config,
    seed,
    speed,
    stepMs,
    heartbeatTimeoutMs: heartbeatTimeoutS * 1000,
    dataDir,
    logLevel,
    opcua: {
      port,
      ...(s("opcua-host") ? { host: s("opcua-host") } : {}),
      ...(s("opcua-hostname") ? { hostname: s("opcua-hostname") } : {}),
      security,
      anonymous,
      users,
      ...(userFile ? { userFile: abs(userFile) } : {}),
      pkiDir: abs(s("pki-dir") ?? join(dataDir, "pki")),
      userPkiDir: abs(s("user-pki-dir") ?? join(dataDir, "user-pki")),
      autoAcceptClients: b("opcua-auto-accept-clients"),
    },
    ...(mqtt ? { mqtt } : {}),
    ...(frames ? { frames } : {}),
  };
}

function parseSecurity(raw: string): OpcuaSecurityMode[] {
  if (raw === "all") return ["none", "sign", "encrypt"];
  const modes = raw.split(",").map((m) => m.trim());
  const out: OpcuaSecurityMode[] = [];
  for (const m of modes) {
    if (m !== "none" && m !== "sign" && m !== "encrypt") {
      throw new PlantUsageError(
        "--opcua-security",
        `expects a comma list of none, sign, encrypt (or all), got ${JSON.stringify(raw)}`,
      );
    }
    if (!out.includes(m)) out.push(m);
  }
  return out;
}

/** A running plant with its protocol fronts; `stop()` takes it down in reverse order. */
export interface RunningPlant {
  plant: Plant;
  opcua: PlantOpcuaServer;
  frames?: PlantFrames;
  json?: PlantMqttJson;
  sparkplug?: SparkplugEdgeNode;
  stop(): Promise<void>;
}

/** Starts the plant and its fronts: OPC UA, then MQTT, then the simulation. On failure stops what started. */
export async function startPlant(cfg: ServeConfig, log: Logger, signal: AbortSignal): Promise<RunningPlant> {
  const plant = new Plant({
    lineId: cfg.lineId,
    tags: cfg.config.tags,
    seed: cfg.seed,
    speed: cfg.speed,
    stepMs: cfg.stepMs,
    itemsPerMin: cfg.config.twin.items_per_min,
    heartbeatTimeoutMs: cfg.heartbeatTimeoutMs,
    logger: log.child({ part: "twin" }),
  });
  const opcua = new PlantOpcuaServer(plant, { ...cfg.opcua, logger: log.child({ part: "opcua" }) });
  let json: PlantMqttJson | undefined;
  let sparkplug: SparkplugEdgeNode | undefined;
  let frames: PlantFrames | undefined;
  const stop = async () => {
    const steps: [string, () => Promise<void>][] = [
      ["twin", () => plant.stop()],
      ["frames", async () => frames?.stop()],
      ["sparkplug", async () => sparkplug?.stop()],
      ["mqtt-json", async () => json?.stop()],
      ["opcua", () => opcua.stop(1000)],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (err) {
        log.warn({ err, part: name }, "error while stopping; continuing");
      }
    }
  };
  try {
    try {
      await opcua.start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE" || /EADDRINUSE/.test(String(err))) {
        throw new PlantUsageError("--opcua-port", `port ${cfg.opcua.port} is already in use`, err);
      }
      throw err;
    }
    signal.throwIfAborted();
    if (cfg.mqtt?.json) {
      json = new PlantMqttJson(plant, { broker: cfg.mqtt.broker, logger: log.child({ part: "mqtt-json" }) });
      await json.start();
      signal.throwIfAborted();
    }
    if (cfg.mqtt?.sparkplug) {
      sparkplug = new SparkplugEdgeNode(plant, {
        broker: cfg.mqtt.broker,
        ...cfg.mqtt.sparkplug,
        bdSeqFile: join(cfg.dataDir, "sparkplug-bdseq.json"),
        logger: log.child({ part: "sparkplug" }),
      });
      await sparkplug.start();
      signal.throwIfAborted();
    }
    if (cfg.frames) {
      const f = cfg.frames;
      // Loaded only when asked for: the renderer brings sharp along.
      const images = await import("../images/index.js");
      const sink = new DirectoryFrameSink(
        f.dir,
        cfg.lineId,
        async (e) => {
          const r = await images.renderInspection(e, {
            width: f.width,
            height: f.height,
            format: f.format,
            seed: cfg.seed,
          });
          return { data: r.image, format: r.format === "jpeg" ? "jpg" : "png" };
        },
        { sidecar: true },
      );
      frames = new PlantFrames(plant, sink, { logger: log.child({ part: "frames" }) });
      frames.start();
    }
    await plant.start(signal);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    plant,
    opcua,
    ...(json ? { json } : {}),
    ...(sparkplug ? { sparkplug } : {}),
    ...(frames ? { frames } : {}),
    stop,
  };
}

/** node-opcua's warnings and errors into the plant's JSON log instead of bare console lines. */
async function routeOpcuaLogs(log: Logger): Promise<void> {
  const { setErrorLogger, setWarningLogger } = await import("node-opcua");
  // node-opcua passes its call site first ({filename, callerline}), then console-style arguments.
  const route =
    (level: "warn" | "error") =>
    (first?: unknown, ...rest: unknown[]) => {
      const site = first as { filename?: unknown; callerline?: unknown } | undefined;
      const hasSite = typeof site === "object" && site !== null && "filename" in site;
      const args = hasSite ? rest : [first, ...rest];
      // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
      const msg = format(...args).replace(/\u001b\[[0-9;]*m/g, "");
      log[level](hasSite ? { src: `${site.filename}:${site.callerline}` } : {}, msg);
    };
  setWarningLogger(route("warn"));
  setErrorLogger(route("error"));
}

/** `glassd twin serve [options]`: serves until SIGTERM/SIGINT; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  let cfg: ServeConfig;
  try {
    cfg = parseServeArgs(argv);
  } catch (err) {
    process.stderr.write(`glassd twin serve: ${(err as Error).message}\nTry 'glassd twin serve --help'.\n`);
    return 2;
  }
  const log = createLogger({ level: cfg.logLevel }).child("twin-plant");
  await routeOpcuaLogs(log.child({ part: "node-opcua" }));
  for (const f of [cfg.opcua.userFile].filter((x): x is string => x !== undefined)) {
    if (isLoose(f)) log.warn({ file: f }, "secret file is readable by group or others; chmod 600 it");
  }

  const ac = new AbortController();
  let onStop: () => void = () => {};
  const stopRequested = new Promise<void>((r) => {
    onStop = r;
  });
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal: sig }, "second signal: exiting now");
      process.exit(130);
    }
    signalled = true;
    log.info({ signal: sig }, "stopping the plant");
    ac.abort(new Error(`${sig} during start`));
    onStop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    let running: RunningPlant;
    try {
      running = await startPlant(cfg, log, ac.signal);
    } catch (err) {
      if (signalled) {
        log.info("stopped during start");
        return 0;
      }
      if (err instanceof PlantUsageError) {
        process.stderr.write(`glassd twin serve: ${err.message}\n`);
        return 2;
      }
      log.fatal({ err }, "the plant failed to start");
      return 1;
    }
    log.info(
      {
        opcua: running.opcua.endpointUrl,
        opcua_port: running.opcua.port,
        security: cfg.opcua.security,
        certificate: running.opcua.certificateFile,
        mqtt: cfg.mqtt?.broker.url ?? null,
        frames: cfg.frames?.dir ?? null,
        sparkplug: running.sparkplug
          ? {
              group: cfg.mqtt?.sparkplug?.groupId,
              node: cfg.mqtt?.sparkplug?.nodeId,
              bdSeq: running.sparkplug.currentBdSeq,
            }
          : null,
        speed: cfg.speed,
        seed: cfg.seed,
        heartbeat_timeout_s: cfg.heartbeatTimeoutMs / 1000,
      },
      "twin plant ready",
    );
    await stopRequested;
    const guard = setTimeout(() => {
      log.error("shutdown took longer than 15 s; exiting");
      process.exit(1);
    }, 15_000);
    guard.unref();
    await running.stop();
    clearTimeout(guard);
    log.info(
      {
        twin: running.plant.stats(),
        opcua: running.opcua.stats(),
        json: running.json?.stats() ?? null,
        sparkplug: running.sparkplug?.stats() ?? null,
        frames: running.frames?.stats() ?? null,
      },
      "twin plant stopped",
    );
    return 0;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
