/** Quality of a sample as reported by its source (OPC UA status, MQTT payload, serial flags, twin). */
export type Quality = "good" | "uncertain" | "bad";

/**
 * A sample as it arrives from an adapter, before validation. `value` is `unknown` on purpose: validation
 * decides whether it is a finite number and quarantines it with a reason if not.
 */
export interface RawSample {
  tag: string;
  /** Source timestamp, ms since the Unix epoch. */
  ts: number;
  value: unknown;
  quality?: Quality;
  /** Adapter id, e.g. "twin", "opcua:plc1", "mqtt", "api". */
  source: string;
  /** Per-source monotonically increasing sequence number (gaps and duplicates are detected from it). */
  seq: number;
}

/** A validated sample (the house contract `Sample`). */
export interface Sample {
  tag: string;
  ts: number;
  value: number;
  quality: Quality;
  source: string;
  seq: number;
}

/** Fixed ML class order of the MIK-1 defect taxonomy (DOMAIN.md). Never reorder: models depend on it. */
export const DEFECT_CLASSES = [
  "crack",
  "bubble",
  "chip",
  "cloudiness",
  "deformation",
  "stain",
  "stone",
  "scratch",
] as const;
export type DefectClass = (typeof DEFECT_CLASSES)[number];

export type Severity = "critical" | "major" | "minor";
export const DEFECT_SEVERITY: Record<DefectClass, Severity> = {
  crack: "critical",
  bubble: "major",
  chip: "major",
  cloudiness: "minor",
  deformation: "critical",
  stain: "minor",
  stone: "critical",
  scratch: "minor",
};

export interface InspectedDefect {
  class: DefectClass;
  size_mm: number;
  /** Position on the item image, normalised 0..1. */
  x: number;
  y: number;
  severity: Severity;
}

/** One MIK-1 inspection result: one item seen by the camera. */
export interface InspectionEvent {
  item_id: number;
  ts: number;
  defects: InspectedDefect[];
  /** true when the item has no defect. */
  ok: boolean;
}
