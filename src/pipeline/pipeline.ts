import type { Config } from "../config/index.js";
import type { Clock } from "../core/clock.js";
import { LatencyWindow, round3 } from "../core/latency.js";
import type { Logger } from "../core/logger.js";
import type { Service } from "../core/service.js";
import type { DefectClass, InspectionEvent, RawSample, Sample } from "../core/types.js";
import type { Metrics } from "../health/metrics.js";
import type { ModelPredictions } from "../inference/stage.js";
import type { SampleSink } from "../ingest/ports.js";
import { InspectionWindow } from "./inspection-window.js";
import type { FeatureVector, PipelinePorts, Rejection } from "./ports.js";

const TICK_RECORD_EVERY_MS = 10_000;

/**
 * Feature vector as a JSON-ready record. Values are float32, so they are written with 7 significant digits
 * (what float32 holds) instead of the 17 of a double; NaN (no data) becomes null.
 */
function featureRecord(fv: FeatureVector): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const { names, values } = fv;
  for (let i = 0; i < names.length; i++) {
    const v = values[i] as number;
    out[names[i] as string] = Number.isFinite(v) ? Number(v.toPrecision(7)) : null;
  }
  return out;
}

/** Stages of one tick, in order (ARCHITECTURE.md §1). */
export const STAGES = [
  "validate",
  "features",
  "models",
  "explain",
  "recommend",
  "autonomy",
  "publish",
  "store",
] as const;
export type StageName = (typeof STAGES)[number];

export interface StageReport {
  status: "ok" | "unavailable" | "error";
  latency_ms: number;
  reason?: string;
}

export type Trigger = "timer" | "api";

/** Honest placeholder for a capability that does not exist yet: says so instead of inventing a number. */
export interface Unavailable {
  status: "unavailable";
  reason: string;
}

/** One tick's result: the seed API's `pipeline_result` shape, extended (SEED-API.md). */
export interface PipelineResult {
  timestamp: string;
  ts: number;
  tick: number;
  trigger: Trigger;
  line_id: string;
  sensor_data: Record<string, number | null>;
  sensor_age_s: Record<string, number | null>;
  inspection: InspectionSummary;
  engineered_features: Record<string, number | null>;
  predictions: Unavailable | ModelPredictions;
  explanations: Unavailable;
  recommendations: never[];
  autonomous_actions: {
    enabled: boolean;
    mode: "off";
    actions_to_execute: never[];
    actions_requiring_approval: never[];
    risk_assessment: Unavailable;
    safety_checks_passed: boolean;
  };
  ingest: { accepted: number; rejected: number; rejected_by_reason: Record<string, number> };
  stages: Record<StageName, StageReport>;
  performance_metrics: {
    total_latency_ms: number;
    validation_ms: number;
    feature_extraction_ms: number;
    prediction_ms: number;
    explanation_ms: number;
    recommendation_ms: number;
    autonomy_ms: number;
    publish_ms: number;
    store_ms: number;
  };
}

export interface InspectionSummary {
  window_s: number;
  items_inspected: number;
  defective_items: number;
  defect_rate: number | null;
  quality_score: number | null;
  defects_per_class: Record<DefectClass, number>;
  last_item_ts: number | null;
}

const REASONS = {
  models: "no forecaster, vision, graph or ensemble model is loaded yet (models are built by models/factory)",
  explain: "explainers need a loaded model; none is loaded yet",
  recommend: "the PPO policy is not loaded yet, so no recommendation is made",
  autonomy: "autonomy is off: no actuation gate exists yet, nothing is written to the plant",
} as const;

/** Raised for a request whose samples failed validation: everything in it was quarantined, nothing ingested. */
export class RejectedSamplesError extends Error {
  constructor(readonly rejections: Rejection[]) {
    super(`${rejections.length} sample(s) rejected`);
  }
}

/**
 * The pipeline orchestrator. Samples from sources arrive through `sink` (validated, made durable, then added to
 * the feature windows); a tick runs on a timer and on `process()`, timing every stage. Ticks never overlap: a
 * timer tick that finds one running is skipped and counted.
 */
export class Pipeline implements Service {
  readonly name = "pipeline";
  private timer: NodeJS.Timeout | undefined;
  private tickNo = 0;
  private busy: Promise<unknown> = Promise.resolve();
  private running = false;
  private last: PipelineResult | undefined;
  private lastFeatures: (FeatureVector & { ts: number }) | undefined;
  private readonly latest = new Map<string, Sample>();
  private readonly inspection: InspectionWindow;
  private readonly stageWindows = new Map<StageName | "total", LatencyWindow>();
  private counts = { executions: 0, failures: 0, skipped: 0, successful_predictions: 0, failed_predictions: 0 };
  private sinceTick = { accepted: 0, rejected: 0, byReason: {} as Record<string, number> };
  private apiSeq = 0;
  private lastWall: number | undefined;
  private featuresJson: string | undefined;
  private lastPersistWall = 0;

  constructor(
    private readonly config: Config,
    private readonly ports: PipelinePorts,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly readOnly = false,
  ) {
    this.inspection = new InspectionWindow(3_600_000);
    for (const s of [...STAGES, "total"] as const) this.stageWindows.set(s, new LatencyWindow());
  }

  /** Where sources deliver samples. Resolves once the batch is durable: sources acknowledge upstream only then. */
  readonly sink: SampleSink = async (batch) => {
    const { accepted, rejected, commit } = this.ports.validator.validateBatch(batch, { defer: true });
    await this.ports.store.appendBatch(accepted, rejected);
    commit();
    this.absorb(accepted, rejected);
  };

  /** Per-item MIK-1 results (from the twin or the camera adapter). */
  readonly onInspection = (ev: InspectionEvent): void => {
    this.inspection.add(ev);
  };

  async start(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    // Continue the API's sequence across restarts, or the store would count new requests as duplicates.
    this.apiSeq = this.ports.store.lastSeq("api") ?? 0;
    if (this.readOnly) return;
    this.timer = setInterval(() => {
      if (this.running) {
        this.counts.skipped++;
        this.metrics.queueDropsTotal.inc({ queue: "tick", policy: "skip_if_busy" });
        return;
      }
      this.tick("timer").catch((err) => this.log.error({ err }, "tick failed"));
    }, this.config.pipeline.tick_interval_ms);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.busy.catch(() => {});
  }

  /**
   * `POST /api/pipeline/process`: validates the given readings; when any is bad, all of them are quarantined
   * with their reasons and RejectedSamplesError is thrown (nothing was acknowledged, so nothing is lost). When all
   * are good they are made durable, joined to the windows, and a tick runs on them.
   */
  async process(readings: Array<{ tag: string; value: unknown }>, ts: number): Promise<PipelineResult> {
    const batch: RawSample[] = readings.map((r) => ({
      tag: r.tag,
      value: r.value,
      ts,
      quality: "good",
      source: "api",
      seq: ++this.apiSeq,
    }));
    const t0 = performance.now();
    // Deferred: a refused request must not move the rate-of-change references of its valid readings.
    const { accepted, rejected, commit } = this.ports.validator.validateBatch(batch, { defer: true });
    if (rejected.length > 0) {
      // The request is all-or-nothing: quarantine every sample in it, the good ones marked as rejected with it.
      // the batch-mates share the receipt time the validator gave the rejected readings (one request, one time)
      const receivedAt = rejected[0]?.received_at ?? this.clock.now();
      const all: Rejection[] = [
        ...rejected,
        ...accepted.map(
          (s): Rejection => ({
            tag: s.tag,
            ts: s.ts,
            received_at: receivedAt,
            reason: "rejected_with_batch",
            detail: "valid, but another reading of the same request was invalid, so the request was refused whole",
            raw_value: String(s.value),
            source: s.source,
            seq: s.seq,
          }),
        ),
      ];
      await this.ports.store.appendBatch([], all);
      this.absorb([], all);
      throw new RejectedSamplesError(rejected);
    }
    await this.ports.store.appendBatch(accepted, []);
    commit();
    this.absorb(accepted, []);
    return this.tick("api", performance.now() - t0);
  }

  /** Runs one tick now (serialised with any running tick). */
  tick(trigger: Trigger, validateMs = 0): Promise<PipelineResult> {
    const run = this.busy.then(() => this.runTick(trigger, validateMs));
    this.busy = run.catch(() => {});
    return run;
  }

  /**
   * `{timestamp, feature_count, features}` of the latest tick as JSON text, serialised on first use after each tick
   * (dashboards poll it; one stringify per tick instead of one per request).
   */
  latestFeaturesJson(): string | undefined {
    const f = this.last;
    if (!f) return undefined;
    this.featuresJson ??= JSON.stringify({
      timestamp: f.timestamp,
      feature_count: Object.keys(f.engineered_features).length,
      features: f.engineered_features,
    });
    return this.featuresJson;
  }

  /** Wall-clock time of the last completed tick (health compares it with now; line time may run faster). */
  lastTickWallTs(): number | undefined {
    return this.lastWall;
  }

  latestResult(): PipelineResult | undefined {
    return this.last;
  }

  latestFeatures(): (FeatureVector & { ts: number }) | undefined {
    return this.lastFeatures;
  }

  /** The pipeline's notion of now (line time: the twin's clock when the twin is the line). */
  now(): number {
    return this.clock.now();
  }

  latestSamples(): Sample[] {
    return [...this.latest.values()];
  }

  /** Figures for `/api/pipeline/metrics`. */
  stats() {
    const stages: Record<string, ReturnType<LatencyWindow["summary"]>> = {};
    for (const [k, w] of this.stageWindows) stages[k] = w.summary();
    return { ...this.counts, stages, inspection_window_items: this.inspection.size() };
  }

  /** The models stage: ok when any model answered, else unavailable with the models' reasons; never throws. */
  private async runModels(
    now: number,
    values: ArrayLike<number>,
    stages: Record<StageName, StageReport>,
  ): Promise<Unavailable | ModelPredictions> {
    const s = performance.now();
    try {
      const p = await this.ports.models!.run(now, values);
      const latency_ms = round3(performance.now() - s);
      stages.models =
        p.status === "ok" ? { status: "ok", latency_ms } : { status: "unavailable", latency_ms, reason: p.reason };
      if (p.status === "ok") this.counts.successful_predictions++;
      return p;
    } catch (err) {
      const reason = `models stage failed: ${(err as Error).message}`;
      stages.models = { status: "error", latency_ms: round3(performance.now() - s), reason };
      this.counts.failed_predictions++;
      this.log.error({ err }, "models stage failed");
      return { status: "unavailable", reason };
    }
  }

  private absorb(accepted: Sample[], rejected: Rejection[]): void {
    for (const s of accepted) {
      const prev = this.latest.get(s.tag);
      if (!prev || prev.ts <= s.ts) this.latest.set(s.tag, s);
    }
    if (accepted.length) this.ports.features.push(accepted);
    this.sinceTick.accepted += accepted.length;
    this.sinceTick.rejected += rejected.length;
    for (const r of rejected) this.sinceTick.byReason[r.reason] = (this.sinceTick.byReason[r.reason] ?? 0) + 1;
  }

  private async runTick(trigger: Trigger, validateMs: number): Promise<PipelineResult> {
    this.running = true;
    const endTick = this.metrics.tickSeconds.startTimer({ trigger });
    const t0 = performance.now();
    const now = this.clock.now();
    const stages = {} as Record<StageName, StageReport>;
    const timed = <T>(stage: StageName, fn: () => T): T => {
      const s = performance.now();
      try {
        const out = fn();
        stages[stage] = { status: "ok", latency_ms: round3(performance.now() - s) };
        return out;
      } catch (err) {
        stages[stage] = { status: "error", latency_ms: round3(performance.now() - s), reason: (err as Error).message };
        throw err;
      }
    };
    const unavailable = (stage: StageName, reason: string): Unavailable => {
      stages[stage] = { status: "unavailable", latency_ms: 0, reason };
      return { status: "unavailable", reason };
    };
    try {
      this.counts.executions++;
      stages.validate = { status: "ok", latency_ms: round3(validateMs) };
      const ingest = {
        accepted: this.sinceTick.accepted,
        rejected: this.sinceTick.rejected,
        rejected_by_reason: this.sinceTick.byReason,
      };
      this.sinceTick = { accepted: 0, rejected: 0, byReason: {} };

      const fv = timed("features", () => this.ports.features.compute(now));
      this.lastFeatures = { ...fv, ts: now };
      const engineered = featureRecord(fv);
      this.featuresJson = undefined;

      const predictions = this.ports.models
        ? await this.runModels(now, fv.values, stages)
        : unavailable("models", REASONS.models);
      const explanations = unavailable("explain", REASONS.explain);
      unavailable("recommend", REASONS.recommend);
      const risk = unavailable("autonomy", REASONS.autonomy);

      const sensor_data: Record<string, number | null> = {};
      const sensor_age_s: Record<string, number | null> = {};
      for (const t of this.config.tags) {
        const s = this.latest.get(t.id);
        sensor_data[t.id] = s ? s.value : null;
        sensor_age_s[t.id] = s ? round3((now - s.ts) / 1000) : null;
      }
      const result: PipelineResult = {
        timestamp: new Date(now).toISOString(),
        ts: now,
        tick: ++this.tickNo,
        trigger,
        line_id: this.config.line.id,
        sensor_data,
        sensor_age_s,
        inspection: this.inspection.summary(now),
        engineered_features: engineered,
        predictions,
        explanations,
        recommendations: [],
        autonomous_actions: {
          enabled: false,
          mode: "off",
          actions_to_execute: [],
          actions_requiring_approval: [],
          risk_assessment: risk,
          safety_checks_passed: false,
        },
        ingest,
        stages,
        performance_metrics: {} as PipelineResult["performance_metrics"],
      };

      const ms = (s: StageName) => stages[s]?.latency_ms ?? 0;
      const measured = (): PipelineResult["performance_metrics"] => ({
        total_latency_ms: round3(performance.now() - t0 + validateMs),
        validation_ms: ms("validate"),
        feature_extraction_ms: ms("features"),
        prediction_ms: ms("models"),
        explanation_ms: ms("explain"),
        recommendation_ms: ms("recommend"),
        autonomy_ms: ms("autonomy"),
        publish_ms: ms("publish"),
        store_ms: ms("store"),
      });
      // The broadcast is serialised during publish, so it carries the figures measured up to it (publish and store
      // not yet: 0 there); the HTTP response and /latest get the final ones below.
      result.performance_metrics = measured();
      timed("publish", () => this.ports.publish("pipeline_result", result));
      const storeStart = performance.now();
      // The tick record is bookkeeping, not acknowledged data: written every 10 s and not awaited, so the tick
      // does not wait for an fsync (samples are made durable in the sink, before they are acknowledged).
      if (Date.now() - this.lastPersistWall >= TICK_RECORD_EVERY_MS) {
        this.lastPersistWall = Date.now();
        this.ports.store
          .putState("pipeline.last_tick", { tick: result.tick, ts: now, trigger, features: fv.names.length })
          .catch((err) => this.log.warn({ err }, "could not persist the tick record"));
      }
      stages.store = { status: "ok", latency_ms: round3(performance.now() - storeStart) };

      result.performance_metrics = measured();
      const total = result.performance_metrics.total_latency_ms;
      for (const s of STAGES) {
        const r = stages[s];
        if (r.status === "ok") {
          this.stageWindows.get(s)?.observe(r.latency_ms);
          this.metrics.stageSeconds.observe({ stage: s }, r.latency_ms / 1000);
        }
      }
      this.stageWindows.get("total")?.observe(total);
      this.last = result;
      this.lastWall = Date.now();
      this.metrics.ticksTotal.inc({ trigger, outcome: "ok" });
      return result;
    } catch (err) {
      this.counts.failures++;
      this.metrics.ticksTotal.inc({ trigger, outcome: "error" });
      throw err;
    } finally {
      endTick();
      this.running = false;
    }
  }
}
