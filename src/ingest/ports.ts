import type { Service } from "../core/service.js";
import type { InspectionEvent, RawSample } from "../core/types.js";

/**
 * Receives a batch of samples from a source. The returned promise resolves only once the batch is durable
 * (committed to LMDB, valid samples and quarantined ones alike); a source acknowledges upstream only then.
 */
export type SampleSink = (batch: RawSample[]) => Promise<void>;

/** A source of line samples: the twin, OPC UA, MQTT, serial. Same port for all of them. */
export interface SampleSource extends Service {
  /** Adapter id used as `RawSample.source`. */
  readonly id: string;
  /** Set where batches go; called once before `start`. */
  attach(sink: SampleSink): void;
}

/** Per-item inspection results from the MIK-1 (or the twin standing in for it). */
export interface InspectionSource extends Service {
  readonly id: string;
  onInspection(handler: (event: InspectionEvent) => void): void;
}

export interface WriteResult {
  tag: string;
  requested: number;
  /** Value the plant actually took (a PLC may clamp an out-of-range write). */
  applied: number;
  /** Value read back after the write. */
  readBack: number;
  ts: number;
}

/**
 * Writes setpoints to the plant. Only the autonomy layer's actuation gate may call this.
 */
export interface ActuatorSink {
  readonly id: string;
  /** Tags this sink can write (setpoint tag ids). */
  writableTags(): string[];
  write(tag: string, value: number): Promise<WriteResult>;
  /** Current setpoint of a writable tag. */
  readSetpoint(tag: string): number;
}
