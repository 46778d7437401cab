import type { RawSample, Sample } from "../core/types.js";

/** A sample refused by validation, as quarantined. */
export interface Rejection {
  tag: string;
  ts: number;
  source: string;
  seq: number;
  reason: string;
  detail: string;
  raw: string;
  received_at: number;
}

export interface FeatureVector {
  names: readonly string[];
  values: Float32Array;
}

/** What the orchestrator needs from the other rooms; the daemon wires the real implementations in. */
export interface PipelinePorts {
  validator: {
    split(batch: RawSample[]): { accepted: Sample[]; rejected: Rejection[] };
    rejectionOf(s: Sample): Rejection;
  };
  store: {
    appendBatch(accepted: Sample[], rejected: Rejection[]): Promise<void>;
    putState(key: string, value: unknown): Promise<void>;
  };
  features: {
    push(samples: Sample[]): void;
    compute(ts: number): FeatureVector;
  };
  publish(type: string, data: unknown): void;
}
