import type { TagConfig } from "../config/index.js";
import { round3 } from "../core/latency.js";
import type { GraphWindowSource } from "../features/graph.js";
import type { Feeds, TensorData } from "./host.js";
import { FeatureRing, GraphInput, InputSpecError, namedVector, stackingFeeds } from "./inputs.js";
import type { ModelInstance } from "./instance.js";
import type { ModelRegistry } from "./registry.js";
import { postprocess, type VisionResult } from "./vision.js";

/*
 * The "models" stage of a tick: forecaster on the feature window, sensor graph on the node features, the ensemble
 * over both plus the recent vision defect rates; vision runs per frame, outside the tick (frames arrive at the
 * camera's rate). Every model that cannot answer says why (`status: "unavailable"`, `reason`); nothing is filled in.
 */

export interface Unavailable {
  status: "unavailable";
  reason: string;
}

export interface ForecastOut {
  status: "ok";
  model: string;
  horizons_min: number[];
  /** probability[horizon][class] */
  probability: Record<string, Record<string, number>>;
  uncertainty: Record<string, Record<string, number>> | null;
  attention: number[] | null;
}

export interface GraphOut {
  status: "ok";
  model: string;
  /**
   * Line time of the snapshot the scores are about: the newest time the samples have reached, at or before the
   * tick (see GraphSnapshot in inputs.ts: the node features are computed as the factory's snapshots were).
   */
  snapshot_ts: number;
  node_scores: Record<string, number> | null;
  graph_score: number | null;
}

export interface VisionSummary {
  status: "ok";
  model: string;
  window_s: number;
  frames: number;
  /** Share of frames in the window with ≥ 1 defect of the class. */
  rate: Record<string, number>;
}

export interface RiskOut {
  status: "ok";
  model: string;
  calibrated: true;
  per_class: Record<string, number>;
  alarms: string[];
}

export interface ModelPredictions {
  status: "ok" | "unavailable";
  /** Reasons of the parts that did not answer ("" when all did); status is "unavailable" when none did. */
  reason: string;
  forecast: ForecastOut | Unavailable;
  sensor_graph: GraphOut | Unavailable;
  vision: VisionSummary | Unavailable;
  risk: RiskOut | Unavailable;
  latency_ms: Record<string, number>;
}

export interface FrameResult {
  frame_id: number;
  camera: string;
  item_id: number | null;
  ts: number;
  model: string;
  latency_ms: number;
  result: VisionResult;
}

export interface RiskAlarm {
  ts: number;
  class: string;
  risk: number;
  threshold: number;
  state: "raised" | "cleared";
  model: string;
}

/** A frame as the vision stage needs it (FrameIntake's IntakeFrame fits). */
export interface VisionFrame {
  id: number;
  camera: string;
  item_id: number | null;
  ts: number;
  original: { width: number; height: number };
  tensor: { data: Float32Array; shape: readonly number[] };
}

export interface ModelStageOptions {
  registry: Pick<ModelRegistry, "snapshot" | "run" | "unavailableReason" | "names">;
  tags: readonly TagConfig[];
  /** FeatureStage.names (daemon order of the feature vector). */
  featureNames: readonly string[];
  classes: readonly string[];
  pixelSizeMm: number;
  vision: { maskThreshold: number; scoreThreshold: number; minPixels: number; windowS: number };
  /** Risk alarms: raised at `threshold[class]`, cleared below threshold − hysteresis. */
  risk: { thresholds: Record<string, number>; hysteresis: number };
  /** Model names in the manifest. */
  names?: { forecaster?: string; vision?: string; graph?: string[]; ensemble?: string };
  onRiskAlarm?: (a: RiskAlarm) => void;
  onFrameResult?: (r: FrameResult) => void;
  /**
   * Recent MIK-1 per-class defect rates [H × C] at `ts` over the given horizons (the forecaster's `recent` input;
   * see RecentDefectRates). Without it a forecaster that takes `recent` reports unavailable.
   */
  recent?: (ts: number, horizonsMin: readonly number[]) => Float32Array;
}

const unavailable = (reason: string): Unavailable => ({ status: "unavailable", reason });

type Built<T> = { key: string; value: T } | { key: string; error: string };

export class ModelStage {
  private readonly n: { forecaster: string; vision: string; graph: string[]; ensemble: string };
  private ring: Built<FeatureRing> | undefined;
  private graph: Built<GraphInput> | undefined;
  private readonly frames: { ts: number; present: Set<string> }[] = [];
  private readonly raised = new Set<string>();
  private lastVisionModel: string | undefined;
  private graphSince: number | undefined;

  constructor(private readonly o: ModelStageOptions) {
    this.n = {
      forecaster: o.names?.forecaster ?? "forecaster",
      vision: o.names?.vision ?? "vision",
      graph: o.names?.graph ?? ["sensor-graph", "gnn"],
      ensemble: o.names?.ensemble ?? "ensemble",
    };
  }

  /** Builders are rebuilt when the live version changes (a new manifest entry may change T or the features). */
  private build<T>(cache: Built<T> | undefined, inst: ModelInstance, make: () => T): Built<T> {
    if (cache && cache.key === inst.key) return cache;
    try {
      return { key: inst.key, value: make() };
    } catch (err) {
      if (err instanceof InputSpecError) return { key: inst.key, error: err.message };
      throw err;
    }
  }

  /**
   * One tick: `values` is this tick's feature vector (daemon order), `windows` the FeatureStage's windows.
   * Takes the live versions once (a swap during the tick lands on the next one).
   */
  async run(ts: number, values: ArrayLike<number>, windows: GraphWindowSource): Promise<ModelPredictions> {
    const snap = this.o.registry.snapshot();
    const latency: Record<string, number> = {};
    const named = new Map<string, number>();
    const reasonOf = (name: string) => this.o.registry.unavailableReason(name) ?? `${name} is not loaded`;
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        latency[name] = round3(performance.now() - t0);
      }
    };

    // --- forecaster ---
    let forecast: ForecastOut | Unavailable;
    const f = snap.get(this.n.forecaster);
    if (!f) forecast = unavailable(reasonOf(this.n.forecaster));
    else {
      this.ring = this.build(this.ring, f, () => new FeatureRing(f.ref, this.o.featureNames));
      if ("error" in this.ring) forecast = unavailable(this.ring.error);
      else {
        const ring = this.ring.value;
        ring.offer(ts, values);
        if (!ring.ready) {
          const s = ring.status();
          forecast = unavailable(
            `forecaster window filling: ${s.rows} of ${s.needed} rows (one every ${s.stride_s} s)`,
          );
        } else {
          try {
            const feeds = { ...ring.feeds(f.ref.inputs[0]!.name), ...this.forecastExtras(f, ts) };
            const out = await timed(f.name, () => this.o.registry.run(f.name, feeds, f));
            forecast = this.forecastOut(f, out, named);
          } catch (err) {
            forecast = unavailable(`forecaster failed: ${(err as Error).message}`);
          }
        }
      }
    }

    // --- sensor graph ---
    let sensorGraph: GraphOut | Unavailable;
    const gName = this.n.graph.find((n) => snap.has(n));
    const g = gName ? snap.get(gName) : undefined;
    if (!g) sensorGraph = unavailable(this.n.graph.map(reasonOf).join("; "));
    else {
      this.graph = this.build(this.graph, g, () => new GraphInput(g.ref, this.o.tags));
      // Until every node's window is full (the slowest tag's is 3 of its periods: humidity 45 min) its missing
      // fraction looks like a dropout to the model (the dataset's first rows have it, rarely: the model flags them),
      // so the graph waits for the longest node window.
      this.graphSince ??= ts;
      const warmMs = graphWarmupMs(g);
      if ("error" in this.graph) sensorGraph = unavailable(this.graph.error);
      else if (ts - this.graphSince < warmMs)
        sensorGraph = unavailable(
          `sensor-graph window filling: ${Math.floor((ts - this.graphSince) / 1000)} of ${warmMs / 1000} s`,
        );
      else {
        const gi = this.graph.value;
        try {
          const input = gi.feeds(windows, ts);
          const out = await timed(g.name, () => this.o.registry.run(g.name, input.feeds, g));
          sensorGraph = this.graphOut(g, gi, out, named, input.ts);
        } catch (err) {
          sensorGraph = unavailable(`${g.name} failed: ${(err as Error).message}`);
        }
      }
    }

    // --- vision summary (frames arrive separately) ---
    const vision = this.visionSummary(ts, named);

    // --- ensemble ---
    let risk: RiskOut | Unavailable;
    const e = snap.get(this.n.ensemble);
    if (!e) risk = unavailable(reasonOf(this.n.ensemble));
    else {
      let nv: ReturnType<typeof namedVector>;
      try {
        nv = e.ref.feature_order?.length
          ? namedVector(e.ref, named)
          : stackingFeeds(e.ref, named, this.n.forecaster, this.o.classes);
      } catch (err) {
        nv = { missing: [(err as Error).message] };
      }
      if ("missing" in nv)
        risk = unavailable(
          `ensemble inputs not available this tick: ${nv.missing.slice(0, 6).join(", ")}${nv.missing.length > 6 ? ", …" : ""}`,
        );
      else {
        const feeds = nv.feeds;
        try {
          const out = await timed(e.name, () => this.o.registry.run(e.name, feeds, e));
          risk = this.riskOut(e, out, ts);
        } catch (err) {
          risk = unavailable(`ensemble failed: ${(err as Error).message}`);
        }
      }
    }
    const parts = [forecast, sensorGraph, vision, risk];
    return {
      status: parts.some((x) => x.status === "ok") ? "ok" : "unavailable",
      reason: parts
        .filter((x): x is Unavailable => x.status === "unavailable")
        .map((x) => x.reason)
        .join(" | "),
      forecast,
      sensor_graph: sensorGraph,
      vision,
      risk,
      latency_ms: latency,
    };
  }

  /** Runs the vision model on one preprocessed frame; the result goes to `onFrameResult` and the rate window. */
  async onFrame(frame: VisionFrame): Promise<FrameResult | Unavailable> {
    const inst = this.o.registry.snapshot().get(this.n.vision);
    if (!inst) return unavailable(this.o.registry.unavailableReason(this.n.vision) ?? "vision is not loaded");
    const spec = inst.ref.inputs[0]!;
    const dims = [...frame.tensor.shape];
    if (dims.length !== spec.shape.length || spec.shape.some((d, i) => d !== -1 && d !== dims[i]))
      return unavailable(
        `frame tensor [${dims.join(", ")}] does not fit ${inst.name} input [${spec.shape.join(", ")}]; set frames.model_input to the manifest's size, channels, mean and std`,
      );
    const t0 = performance.now();
    const out = await this.o.registry.run(inst.name, { [spec.name]: { data: frame.tensor.data, dims } }, inst);
    const masks = out.masks ?? Object.values(out).find((t) => t.dims.length >= 3);
    const scores = out.scores ?? Object.values(out).find((t) => t.dims.length <= 2);
    if (!masks) return unavailable(`${inst.name} produced no [C, H, W] mask output`);
    const extra = inst.ref.extra;
    const num = (v: unknown, d: number) => (typeof v === "number" && Number.isFinite(v) ? v : d);
    const result = postprocess(masks, scores, {
      classes: inst.ref.classes ?? this.o.classes,
      maskThreshold: num(extra.mask_threshold, this.o.vision.maskThreshold),
      scoreThreshold: num(extra.score_threshold, this.o.vision.scoreThreshold),
      minPixels: this.o.vision.minPixels,
      pixelSizeMm: this.o.pixelSizeMm,
      originalWidth: frame.original.width,
      originalHeight: frame.original.height,
    });
    this.frames.push({ ts: frame.ts, present: new Set(result.present) });
    this.lastVisionModel = `${inst.name}@${inst.version}`;
    const r: FrameResult = {
      frame_id: frame.id,
      camera: frame.camera,
      item_id: frame.item_id,
      ts: frame.ts,
      model: this.lastVisionModel,
      latency_ms: round3(performance.now() - t0),
      result,
    };
    this.o.onFrameResult?.(r);
    return r;
  }

  private visionSummary(ts: number, named: Map<string, number>): VisionSummary | Unavailable {
    const windowMs = this.o.vision.windowS * 1000;
    while (this.frames.length && this.frames[0]!.ts < ts - windowMs) this.frames.shift();
    if (!this.lastVisionModel)
      return unavailable(this.o.registry.unavailableReason(this.n.vision) ?? "no frame seen yet");
    if (this.frames.length === 0) return unavailable(`no frame in the last ${this.o.vision.windowS} s`);
    const rate: Record<string, number> = {};
    for (const c of this.o.classes) {
      let k = 0;
      for (const f of this.frames) if (f.present.has(c)) k++;
      rate[c] = k / this.frames.length;
      named.set(`vision.rate.${c}`, rate[c]);
    }
    named.set("vision.frames", this.frames.length);
    return {
      status: "ok",
      model: this.lastVisionModel,
      window_s: this.o.vision.windowS,
      frames: this.frames.length,
      rate,
    };
  }

  /** Inputs of the forecaster besides the feature window: `recent` (MIK-1 rates per horizon and class). */
  private forecastExtras(f: ModelInstance, ts: number): Feeds {
    const out: Feeds = {};
    for (const inp of f.ref.inputs.slice(1)) {
      if (inp.name !== "recent") throw new Error(`input ${inp.name} of the forecaster is unknown to the daemon`);
      if (!this.o.recent)
        throw new Error("input recent needs MIK-1 inspection results, and no inspection source is wired");
      const horizons = (f.ref.extra.horizons_min as number[] | undefined) ?? [];
      const C = (f.ref.classes ?? this.o.classes).length;
      out.recent = { data: this.o.recent(ts, horizons), dims: [1, horizons.length, C] };
    }
    return out;
  }

  private forecastOut(f: ModelInstance, out: Record<string, TensorData>, named: Map<string, number>): ForecastOut {
    const classes = f.ref.classes ?? this.o.classes;
    const horizons = (f.ref.extra.horizons_min as number[] | undefined) ?? [];
    const grid = (t: TensorData | undefined, key: string) => {
      if (!t) return null;
      const r: Record<string, Record<string, number>> = {};
      horizons.forEach((h, hi) => {
        const row: Record<string, number> = {};
        classes.forEach((c, ci) => {
          const v = Number(t.data[hi * classes.length + ci]);
          row[c] = v;
          named.set(`${f.name}.${key}.${h}min.${c}`, v);
        });
        r[String(h)] = row;
      });
      return r;
    };
    const prob = out.probability ?? Object.values(out)[0]!;
    return {
      status: "ok",
      model: `${f.name}@${f.version}`,
      horizons_min: horizons,
      probability: grid(prob, "probability")!,
      uncertainty: grid(out.uncertainty, "uncertainty"),
      attention: out.attention ? Array.from(out.attention.data as Float32Array) : null,
    };
  }

  private graphOut(
    g: ModelInstance,
    gi: GraphInput,
    out: Record<string, TensorData>,
    named: Map<string, number>,
    snapshotTs: number,
  ): GraphOut {
    const N = gi.nodeIds.length;
    const entries = Object.entries(out);
    const node =
      entries.find(([k, t]) => /node/i.test(k) && t.data.length === N) ?? entries.find(([, t]) => t.data.length === N);
    const graph =
      entries.find(([k, t]) => /graph/i.test(k) && t.data.length === 1) ?? entries.find(([, t]) => t.data.length === 1);
    let node_scores: Record<string, number> | null = null;
    if (node) {
      node_scores = {};
      let max = Number.NEGATIVE_INFINITY;
      gi.nodeIds.forEach((id, i) => {
        const v = Number(node[1].data[i]);
        node_scores![id] = v;
        if (v > max) max = v;
      });
      named.set(`${g.name}.node_max`, max);
    }
    const graph_score = graph ? Number(graph[1].data[0]) : null;
    if (graph_score !== null) named.set(`${g.name}.graph_score`, graph_score);
    return { status: "ok", model: `${g.name}@${g.version}`, snapshot_ts: snapshotTs, node_scores, graph_score };
  }

  private riskOut(e: ModelInstance, out: Record<string, TensorData>, ts: number): RiskOut | Unavailable {
    const classes = e.ref.classes ?? this.o.classes;
    const t = out.risk ?? Object.values(out).find((x) => x.data.length === classes.length);
    if (!t) return unavailable(`${e.name} has no output with one value per class (${classes.length})`);
    const per: Record<string, number> = {};
    const alarms: string[] = [];
    const model = `${e.name}@${e.version}`;
    classes.forEach((c, i) => {
      const r = Number(t.data[i]);
      per[c] = r;
      const thr = this.o.risk.thresholds[c];
      if (thr === undefined) return;
      if (!this.raised.has(c) && r >= thr) {
        this.raised.add(c);
        this.o.onRiskAlarm?.({ ts, class: c, risk: r, threshold: thr, state: "raised", model });
      } else if (this.raised.has(c) && r < thr - this.o.risk.hysteresis) {
        this.raised.delete(c);
        this.o.onRiskAlarm?.({ ts, class: c, risk: r, threshold: thr, state: "cleared", model });
      }
      if (this.raised.has(c)) alarms.push(c);
    });
    return { status: "ok", model, calibrated: true, per_class: per, alarms };
  }
}

/** Line time the sensor graph waits after the first tick: the longest node window of the manifest (default 600 s). */
function graphWarmupMs(g: ModelInstance): number {
  const w = g.ref.extra.node_window_s;
  const s = Array.isArray(w) && w.length ? Math.max(...(w as number[])) : 600;
  return Number.isFinite(s) && s > 0 ? s * 1000 : 600_000;
}
