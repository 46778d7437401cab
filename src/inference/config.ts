import { type Static, Type } from "@sinclair/typebox";

/* The `inference` config section: where the models come from, how they run on a 2-core box, alarms. */

const R = " Changing it needs a restart.";
const closed = { additionalProperties: false } as const;
const d = (description: string) => ({ description: description + R });
const Policy = (def: "reject_newest" | "drop_oldest") =>
  Type.Union([Type.Literal("reject_newest"), Type.Literal("drop_oldest")], {
    default: def,
    ...d("What a full queue does: refuse the newest call, or drop the oldest waiting one."),
  });

export const InferenceSectionSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, ...d("Load the trained models and run them in every tick.") }),
    models_dir: Type.String({
      default: "",
      ...d(
        "Field-update models directory (manifest.json + <name>/<version>/, as the repo's models/); its versions win ties. Empty: the shipped models/ only.",
      ),
    }),
    isolation: Type.Union([Type.Literal("worker"), Type.Literal("inline")], {
      default: "inline",
      ...d(
        "Where the tabular models' sessions run (forecaster, sensor graph, ensemble, policy). inline: in the main thread; their calls take 13–64 µs, and a worker's two thread wake-ups (≈10 µs) would add 35–75 %; over 100 swaps gnn, ensemble and policy stay within 2 MB, the forecaster creeps ≈ 0.06 MB/swap (bench/inference.ts). worker: each loaded version in its own worker thread, ended on retirement.",
      ),
    }),
    vision_isolation: Type.Union([Type.Literal("worker"), Type.Literal("inline")], {
      default: "worker",
      ...d(
        "Where the vision model's sessions run. worker: a worker thread per loaded version, ended on retirement: onnxruntime-node keeps native memory of released image-size sessions (onnxruntime#25325; inline +33…66 MB over 100 swaps, worker flat), and a millisecond-scale call does not notice the wake-ups.",
      ),
    }),
    threads: Type.Integer({ default: 1, minimum: 1, maximum: 8, ...d("Intra-op threads per session.") }),
    vision_threads: Type.Integer({
      default: 1,
      minimum: 1,
      maximum: 8,
      ...d("Intra-op threads of the vision session."),
    }),
    watch_interval_ms: Type.Integer({ default: 2000, minimum: 0, ...d("Manifest poll interval; 0 = no watch.") }),
    on_update: Type.Union([Type.Literal("activate"), Type.Literal("shadow"), Type.Literal("ignore")], {
      default: "activate",
      ...d("What a new or changed manifest entry does."),
    }),
    queue: Type.Object(
      { capacity: Type.Integer({ default: 4, minimum: 0, ...d("Waiting calls.") }), policy: Policy("reject_newest") },
      { ...closed, default: {}, ...d("Per tick model: waiting calls and drop policy.") },
    ),
    vision_queue: Type.Object(
      {
        capacity: Type.Integer({ default: 8, minimum: 0, ...d("Waiting frames.") }),
        policy: Policy("drop_oldest"),
        max_batch: Type.Integer({ default: 4, minimum: 1, maximum: 32, ...d("Largest burst batch.") }),
      },
      { ...closed, default: {}, ...d("Vision: waiting frames, drop policy, largest burst batch.") },
    ),
    pixel_size_mm: Type.Number({
      default: 0.1,
      exclusiveMinimum: 0,
      ...d("Size of one original camera pixel on the glass, mm (defect areas in mm²)."),
    }),
    vision: Type.Object(
      {
        mask_threshold: Type.Number({ default: 0.5, minimum: 0, maximum: 1, ...d("Pixel probability of a mask.") }),
        score_threshold: Type.Number({ default: 0.5, minimum: 0, maximum: 1, ...d("Image class score reported.") }),
        min_pixels: Type.Integer({ default: 4, minimum: 1, ...d("Smallest connected component reported.") }),
        window_s: Type.Integer({
          default: 900,
          minimum: 1,
          ...d("Window of the per-class frame defect rate fed to the ensemble."),
        }),
      },
      { ...closed, default: {}, ...d("Vision postprocessing.") },
    ),
    risk_thresholds: Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 1 }), {
      default: {},
      ...d("Per-class calibrated risk that raises an alarm, e.g. {crack: 0.05}."),
    }),
    risk_hysteresis: Type.Number({ default: 0.01, minimum: 0, ...d("An alarm clears below threshold − hysteresis.") }),
    latency_alarm_ms: Type.Record(Type.String(), Type.Number({ exclusiveMinimum: 0 }), {
      default: { forecaster: 20, gnn: 20, ensemble: 5, vision: 100 },
      ...d("p99 per model above which an alarm is raised (cleared below 80 %)."),
    }),
    allow_rejected: Type.Array(Type.String({ pattern: "^[A-Za-z0-9_.-]+$" }), {
      default: [],
      ...d(
        "Models that may serve although the factory rejected them (manifest acceptance.ok false: worse than a baseline, parity or size failed). By default a rejected model is refused and its part of the result says why.",
      ),
    }),
    shadow_agreement_abs: Type.Number({
      default: 0.02,
      minimum: 0,
      ...d("Shadow outputs agree when |live − candidate| ≤ this."),
    }),
  },
  { ...closed, default: {}, description: "Models in the daemon: registry, hot swap, execution, alarms." },
);
export type InferenceConfig = Static<typeof InferenceSectionSchema>;
