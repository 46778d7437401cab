import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MiddlewareHandler } from "hono";
import type { ApiDeps } from "./api/app.js";
import { Auth, accessGuard } from "./api/auth/index.js";
import { WsHub } from "./api/ws-hub.js";
import type { Config } from "./config/index.js";
import { type Clock, realClock } from "./core/clock.js";
import type { createLogger } from "./core/logger.js";
import type { Service } from "./core/service.js";
import { DEFECT_CLASSES } from "./core/types.js";
import { FeatureStage } from "./features/index.js";
import type { Metrics } from "./health/metrics.js";
import { PredictionLog } from "./inference/prediction-log.js";
import type { ModelRegistry } from "./inference/registry.js";
import type { ModelPredictions } from "./inference/stage.js";
import type { FrameIntake } from "./ingest/frames/index.js";
import type { InspectionSource, SampleSource } from "./ingest/ports.js";
import { type Adapter, buildAdapters } from "./ingest/sources.js";
import { REJECT_REASONS, Validator } from "./ingest/validate.js";
import type { PipelinePorts } from "./pipeline/ports.js";
import { MAX_RANGE_LIMIT, Store } from "./storage/index.js";
import { TwinLine, twinOptionsFromConfig } from "./twin/index.js";

/** Everything the daemon builds from config, before the pipeline and the HTTP server. */
export interface Parts {
  clock: Clock;
  /** Already started here (in this order); the daemon stops them in reverse, after the pipeline. */
  started: Service[];
  ports: PipelinePorts;
  /** Line sources (the twin, or the enabled plant adapters); the daemon attaches and starts them after the pipeline. */
  sources: SampleSource[];
  inspections: InspectionSource | undefined;
  /** MIK-1 frame intake (watched directory + HTTP push) when frames.enabled; already started. */
  frames: FrameIntake | undefined;
  /** The model registry when inference.enabled (for /api/models); already started. */
  models: ModelRegistry | undefined;
  /** Stored predictions when inference.enabled. */
  predictions: PredictionLog | undefined;
  auth: ApiDeps["auth"];
  quarantine: ApiDeps["quarantine"];
  samples: ApiDeps["samples"];
  storageStats(): Record<string, unknown>;
  hub: WsHub;
  checks(): Record<string, { ok: boolean; detail?: string }>;
}

interface WireContext {
  logs: ReturnType<typeof createLogger>;
  metrics: Metrics;
  safeMode: boolean;
  signal: AbortSignal;
}

/**
 * Builds the line source, storage, validation, features, auth and the WebSocket hub from config, and registers
 * their counters with the metrics registry. The only place that knows which implementation backs each port
 * (the twin, or the plant adapters of src/ingest/sources.ts, switched on `source.type`).
 */
export async function wireParts(config: Config, ctx: WireContext): Promise<Parts> {
  // Line time is the twin's simulated time when the twin is the line (it may run faster than real time):
  // validation, features and retention all use it, so a fast twin is not "from the future".
  const line: { twin?: TwinLine } = {};
  const clock: Clock = { now: () => (line.twin ? line.twin.simClock.now() : realClock.now()) };
  const store = new Store({
    dataDir: config.data_dir,
    storage: config.storage,
    clock,
    logger: ctx.logs.child("storage"),
  });
  // The store opens before the twin is built: the twin continues its sequence from what is stored.
  await store.start(ctx.signal);
  try {
    return await buildOnStore(config, ctx, store, clock, line);
  } catch (err) {
    // Whatever failed after the store opened (an unreadable secret, an abort), the store is closed, not leaked.
    await store.stop();
    throw err;
  }
}

async function buildOnStore(
  config: Config,
  ctx: WireContext,
  store: Store,
  clock: Clock,
  line: { twin?: TwinLine },
): Promise<Parts> {
  const { logs, metrics } = ctx;
  const started: Service[] = [store];
  if (!ctx.safeMode && config.source.type === "twin") {
    line.twin = new TwinLine(
      twinOptionsFromConfig(config, { logger: logs.child("twin"), startSeq: store.lastSeq("twin") ?? 0 }),
    );
  }
  const twin = line.twin;
  if (twin && config.twin.scenario) {
    // A scenario that does not load is a config error: loadScenario names the file, event and field.
    const { loadScenario, ScenarioRunner } = await import("./twin/scenario/index.js");
    const scenario = loadScenario(config.twin.scenario, config.tags);
    new ScenarioRunner(scenario, { loop: config.twin.scenario_loop && (scenario.duration_hours ?? 0) > 0 }).attach(
      twin,
    );
    logs.child("twin").info({ scenario: scenario.name, loop: config.twin.scenario_loop }, "scenario attached");
  }
  const adapters: Adapter[] =
    !ctx.safeMode && config.source.type === "plant" ? await buildAdapters({ config, store, clock, logs }) : [];
  if (config.source.type === "plant" && adapters.length === 0 && !ctx.safeMode)
    logs.child("ingest").warn("source.type is plant but no adapter is enabled: only API input will arrive");
  const validator = new Validator(config.tags, config.validation, clock);
  for (const t of config.tags) {
    const last = store.latest(t.id);
    if (last) validator.seed(last);
  }
  const features = FeatureStage.fromConfig(config);
  // A restart refills the feature windows from storage (newest window's worth per tag, whatever its length).
  features.refill((tag, from, to) => store.range(tag, from, to, MAX_RANGE_LIMIT), clock.now());

  const auth = new Auth({ config, logger: logs.child("auth") });
  const info = await auth.init();
  const authLog = logs.child("auth");
  if (info.generated_password_file)
    authLog.warn(
      { file: info.generated_password_file },
      "created user admin with a generated password; read it from this file (mode 0600) and change it",
    );
  else if (info.admin_created) authLog.info({ source: info.admin_password_source }, "created user admin");
  for (const w of info.warnings) authLog.warn(w);

  const hub = new WsHub({
    authenticate: (credential) => auth.authenticate(credential),
    limits: config.websocket,
    allowedOrigins: config.server.allowed_origins,
    logger: logs.child("ws"),
  });

  // Outbound MQTT (durable store-and-forward): results leave the box even while the broker is away.
  let outbound: import("./outbound/index.js").Outbound | undefined;
  if (config.outbound.mqtt.enabled && !ctx.safeMode) {
    const { Outbound } = await import("./outbound/index.js");
    outbound = new Outbound({
      config: config.outbound.mqtt,
      lineId: config.line.id,
      store,
      logger: logs.child("outbound"),
    });
    await outbound.start(ctx.signal);
    started.push(outbound);
  }
  const outLog = logs.child("outbound");
  const send = (kind: "prediction" | "alarm" | "recommendation" | "pipeline_result", data: unknown) => {
    if (!outbound) return;
    outbound.publish(kind, data).catch((err) => outLog.warn({ err, kind }, "outbound publish failed"));
  };
  const predictionLog =
    ctx.safeMode || !config.inference.enabled
      ? undefined
      : new PredictionLog(store, {
          retentionMs: config.storage.retention_hours * 3_600_000,
          logger: logs.child("models"),
        });
  const publish = (type: string, data: unknown) => {
    hub.broadcast(type, data);
    if (type === "pipeline_result" && predictionLog) {
      const r = data as { ts: number; predictions: ModelPredictions | { status: "unavailable" } };
      if (r.predictions.status === "ok") void predictionLog.record(r.ts, r.predictions as ModelPredictions);
    }
    if (!outbound) return;
    if (type === "pipeline_result") {
      const r = data as { timestamp: string; line_id: string; predictions: { status?: string }; stages: unknown };
      send("pipeline_result", { timestamp: r.timestamp, line_id: r.line_id, stages: r.stages });
      if (r.predictions && r.predictions.status !== "unavailable") send("prediction", r.predictions);
    } else if (type.endsWith("_alarm")) send("alarm", { type, ...(data as object) });
  };

  const models =
    ctx.safeMode || !config.inference.enabled
      ? undefined
      : await buildModels(config, features, publish, twin, logs, metrics, ctx.signal);
  if (models) {
    started.push(models.registry);
    const reg = models.registry;
    metrics.gaugeFrom(
      "glassd_model_latency_ms",
      "Call latency of each live model version (worker hop included), p50/p99 over its recent calls.",
      ["model", "quantile"],
      () =>
        reg.names().flatMap((name) => {
          const l = reg.statusOf(name).latency_ms;
          const rows: Array<[Record<string, string>, number]> = [];
          if (l?.p50 != null) rows.push([{ model: name, quantile: "0.5" }, l.p50]);
          if (l?.p99 != null) rows.push([{ model: name, quantile: "0.99" }, l.p99]);
          return rows;
        }),
    );
  }

  // MIK-1 frames: the intake (watched directory, HTTP push) when frames.enabled, and on the twin its rendered camera.
  const twinCamera = Boolean(twin && config.twin.frames.enabled);
  let frames: FrameIntake | undefined;
  if ((config.frames.enabled || twinCamera) && !ctx.safeMode) {
    const { FrameIntake } = await import("./ingest/frames/index.js");
    frames = new FrameIntake({
      config: { ...config.frames, model_input: visionInput(config, models?.registry, logs.child("frames")) },
      dataDir: config.data_dir,
      store,
      clock,
      logger: logs.child("frames"),
    });
    await frames.start(ctx.signal);
    started.push(frames);
    if (models) {
      const stage = models.stage;
      frames.onFrame((f) =>
        stage.onFrame(f).then(
          () => {},
          (err) => logs.child("models").warn({ err }, "vision failed on a frame"),
        ),
      );
    }
    if (twin && twinCamera) {
      const camera = await twinCameraService(config, twin, frames, logs);
      await camera.start(ctx.signal);
      started.push(camera);
    }
  }

  registerMetrics(metrics, validator, store, hub, twin, adapters);
  if (frames) {
    const f = frames;
    metrics.counterFrom("glassd_frames_rejected_total", "MIK-1 frames rejected, by reason.", ["reason"], () =>
      Object.entries(f.stats().rejected).map(([reason, n]) => [{ reason }, n]),
    );
    metrics.counterFrom("glassd_frames_received_total", "MIK-1 frames received.", [], () => [[{}, f.stats().received]]);
  }

  const guard = accessGuard(auth);
  let lastFailed = 0;
  let lastBatches = 0;
  let lastSamples = 0;
  let lastSampleAt = 0;
  return {
    clock,
    started,
    ports: {
      validator,
      store,
      features,
      publish,
      ...(models ? { models: { run: (ts, v) => models.stage.run(ts, v, features.windows) } } : {}),
    },
    sources: twin ? [twin] : adapters.map((a) => a.source),
    inspections: twin,
    frames,
    models: models?.registry,
    predictions: predictionLog,
    auth: {
      guard: (access) => guard(access) as unknown as MiddlewareHandler,
      login: (u, p, ip) => auth.login(u, p, ip),
    },
    quarantine: {
      query: (q) => store.quarantine(q),
      countsByReason: () => store.quarantineCounts(),
    },
    samples: store,
    storageStats: () => store.stats() as unknown as Record<string, unknown>,
    hub,
    checks: () => {
      const s = store.stats();
      const w = s.writes;
      // Writable = the most recent batch did not fail (a failure followed by successes heals the check).
      const failedRecently = w.failed_total > lastFailed && w.batches_total === lastBatches;
      lastFailed = w.failed_total;
      lastBatches = w.batches_total;
      const out: Record<string, { ok: boolean; detail?: string }> = {
        storage: { ok: !failedRecently, detail: `${s.samples.entries} samples, ${w.failed_total} failed writes` },
      };
      if (twin) {
        const t = twin.stats();
        const now = Date.now();
        if (t.samples !== lastSamples) {
          lastSamples = t.samples;
          lastSampleAt = now;
        }
        // Ready only once the line has delivered data (lastSampleAt starts at 0), stale when it stops delivering.
        out.source = {
          ok: now - lastSampleAt < 30_000,
          detail: `twin at ${new Date(t.simTs).toISOString()}, ${t.samples} samples, ${t.sinkErrors} sink errors`,
        };
      }
      for (const a of adapters) out[`source:${a.source.id}`] = a.check();
      return out;
    },
  };
}

function registerMetrics(
  metrics: Metrics,
  validator: Validator,
  store: Store,
  hub: WsHub,
  twin: TwinLine | undefined,
  adapters: readonly Adapter[],
): void {
  metrics.counterFrom(
    "glassd_samples_validated_total",
    "Samples through validation, by outcome (accepted or the reject reason).",
    ["outcome"],
    () => {
      const c = validator.counters();
      return [["accepted", c.accepted], ...REJECT_REASONS.map((r) => [r, c[r]] as const)].map(([k, v]) => [
        { outcome: String(k) },
        Number(v),
      ]);
    },
  );
  metrics.counterFrom(
    "glassd_samples_quarantined_total",
    "Samples in the quarantine by reason (since the store was created).",
    ["reason"],
    () => Object.entries(store.quarantineCounts()).map(([reason, n]) => [{ reason }, n]),
  );
  metrics.gaugeFrom("glassd_storage_samples", "Samples in the LMDB ring.", [], () => [
    [{}, store.stats().samples.entries],
  ]);
  metrics.gaugeFrom(
    "glassd_storage_sample_bytes",
    "Bytes of the sample ring counted against storage.max_sample_bytes.",
    [],
    () => [[{}, store.stats().samples.bytes]],
  );
  metrics.counterFrom("glassd_ws_dropped_total", "WebSocket clients dropped, by policy.", ["policy"], () => {
    const s = hub.stats();
    return [
      [{ policy: "slow_consumer" }, s.dropped_slow_total],
      [{ policy: "unresponsive" }, s.dropped_unresponsive_total],
      [{ policy: "abusive" }, s.closed_abusive_total],
    ];
  });
  metrics.gaugeFrom("glassd_ws_clients", "WebSocket clients connected.", [], () => [[{}, hub.stats().clients]]);
  metrics.counterFrom("glassd_ws_messages_sent_total", "WebSocket messages handed to client sockets.", [], () => [
    [{}, hub.stats().messages_sent_total],
  ]);
  if (twin)
    metrics.counterFrom("glassd_twin_samples_total", "Samples emitted by the digital twin.", [], () => [
      [{}, twin.stats().samples],
    ]);
  if (adapters.length)
    metrics.gaugeFrom(
      "glassd_source_counter",
      "Plant adapter counters (connection state, frames, gaps, reconnects…), by source and counter name.",
      ["source", "counter"],
      () =>
        adapters.flatMap((a) =>
          Object.entries(a.counters()).map(
            ([counter, v]) => [{ source: a.source.id, counter }, v] as [Record<string, string>, number],
          ),
        ),
    );
}

/** The model registry (loads, verifies and warms the shipped models) and the tick's model stage. */
async function buildModels(
  config: Config,
  features: FeatureStage,
  publish: (type: string, data: unknown) => void,
  inspections: InspectionSource | undefined,
  logs: WireContext["logs"],
  metrics: Metrics,
  signal: AbortSignal,
) {
  const { ModelRegistry } = await import("./inference/registry.js");
  const { ModelStage } = await import("./inference/stage.js");
  const { RecentDefectRates } = await import("./inference/recent.js");
  const ci = config.inference;
  const registry = new ModelRegistry({
    // The shipped models (repo models/, beside src/ and dist/), then the field-update directory (wins ties).
    dirs: [fileURLToPath(new URL("../models", import.meta.url)), ...(ci.models_dir ? [ci.models_dir] : [])],
    statePath: join(config.data_dir, "models-active.json"),
    threads: ci.threads,
    threadsByModel: { vision: ci.vision_threads },
    isolation: ci.isolation,
    isolationByModel: { vision: ci.vision_isolation },
    queue: { ...ci.queue, max_batch: 1 },
    queueByModel: { vision: ci.vision_queue },
    expectClasses: { forecaster: DEFECT_CLASSES, vision: DEFECT_CLASSES, ensemble: DEFECT_CLASSES },
    watchIntervalMs: ci.watch_interval_ms,
    onUpdate: ci.on_update,
    latencyAlarmMs: ci.latency_alarm_ms,
    shadowAgreementAbs: ci.shadow_agreement_abs,
    allowRejected: ci.allow_rejected,
    log: logs.child("models"),
    onDrop: (queue, policy) => metrics.queueDropsTotal.inc({ queue, policy }),
  });
  registry.onAlarm((a) => publish("model_alarm", a));
  // The forecaster's `recent` input: MIK-1 per-class defect rates over its horizons (up to 4 h).
  const recent = new RecentDefectRates(4 * 3_600_000);
  inspections?.onInspection((ev) => recent.add(ev));
  await registry.start(signal);
  const stage = new ModelStage({
    registry,
    tags: config.tags,
    featureNames: features.names,
    classes: DEFECT_CLASSES,
    pixelSizeMm: ci.pixel_size_mm,
    vision: {
      maskThreshold: ci.vision.mask_threshold,
      scoreThreshold: ci.vision.score_threshold,
      minPixels: ci.vision.min_pixels,
      windowS: ci.vision.window_s,
    },
    risk: { thresholds: ci.risk_thresholds, hysteresis: ci.risk_hysteresis },
    onRiskAlarm: (a) => publish("risk_alarm", a),
    onFrameResult: (r) => publish("frame_result", r),
    ...(inspections ? { recent: (ts: number, h: readonly number[]) => recent.rates(ts, h) } : {}),
  });
  return { registry, stage };
}

/**
 * The frame preprocessing the live vision model needs, from its manifest entry (size, channels, mean/std; the
 * factory resizes the whole frame without keeping the aspect): the model's requirement wins over frames.model_input.
 * Without a vision model, frames.model_input as configured.
 */
function visionInput(
  config: Config,
  registry: ModelRegistry | undefined,
  log: ReturnType<WireContext["logs"]["child"]>,
): Config["frames"]["model_input"] {
  const ref = registry?.snapshot().get("vision")?.ref;
  const dims = ref?.inputs[0]?.shape;
  const norm = ref?.normalisation as { mean?: number[]; std?: number[] } | null | undefined;
  if (!ref || !dims || dims.length !== 4 || !norm?.mean || !norm.std) return config.frames.model_input;
  const [, channels, height, width] = dims as [number, number, number, number];
  if (!(channels === 1 || channels === 3) || !(height > 0 && width > 0)) return config.frames.model_input;
  const input = { width, height, channels: channels as 1 | 3, mean: norm.mean, std: norm.std, fit: "fill" as const };
  log.info({ model: `vision@${ref.version}`, input }, "frames preprocessed for the live vision model");
  return input;
}

/** The embedded twin's MIK-1: every inspected item rendered (sharp) and submitted to the frame intake. */
async function twinCameraService(
  config: Config,
  twin: TwinLine,
  intake: FrameIntake,
  logs: WireContext["logs"],
): Promise<Service> {
  const { renderInspection } = await import("./twin/images/index.js");
  const { PlantFrames } = await import("./twin/plant/frames.js");
  const f = config.twin.frames;
  let listening = true;
  const source = {
    addListener(l: { onInspection?(e: import("./core/types.js").InspectionEvent): void }) {
      listening = true;
      twin.onInspection((e) => {
        if (listening) l.onInspection?.(e);
      });
      return () => {
        listening = false;
      };
    },
  };
  const camera = new PlantFrames(
    source,
    {
      name: "twin-camera",
      async onItem(e) {
        const r = await renderInspection(e, {
          width: f.width,
          height: f.height,
          format: f.format,
          seed: config.twin.seed,
        });
        await intake.submit(r.image, { camera: config.frames.camera_id, item_id: e.item_id, ts: e.ts }, f.format);
      },
    },
    { maxQueue: 8, logger: logs.child("twin") },
  );
  return {
    name: "twin-camera",
    start: async () => camera.start(),
    stop: () => camera.stop(),
  };
}
