import type { FeatureStage } from "../features/index.js";
import type { ModelPredictions } from "../inference/stage.js";
import type { Validator } from "../ingest/validate.js";
import type { Rejected, Store } from "../storage/index.js";

export type { FeatureVector } from "../features/index.js";
/** A quarantined sample: a validation rejection, or a valid reading refused with its request. */
export type Rejection = Rejected;

/** What the orchestrator uses from the other rooms; the daemon wires them in. */
export interface PipelinePorts {
  validator: Pick<Validator, "validateBatch">;
  store: Pick<Store, "appendBatch" | "putState" | "lastSeq">;
  features: Pick<FeatureStage, "push" | "compute">;
  publish(type: string, data: unknown): void;
  /**
   * The models stage (src/inference: ModelStage.run bound to the FeatureStage's windows). Absent: the stage reports
   * `unavailable`. A model that cannot answer reports its own reason inside the predictions.
   */
  models?: { run(ts: number, values: ArrayLike<number>): Promise<ModelPredictions> };
}
