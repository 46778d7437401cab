import { get as sparkplugNamespace } from "sparkplug-payload";
import type { UMetric, UPayload } from "sparkplug-payload/lib/sparkplugbpayload.js";
import type { Quality } from "./types.js";

/*
 * Sparkplug B pieces shared by the twin's edge node (src/twin/plant/sparkplug.ts), glassd's host application
 * (src/ingest/mqtt) and glassd's own edge node (src/outbound). Eclipse Tahu's sparkplug-payload does the protobuf.
 */

export type { UMetric, UPayload };

export const SPARKPLUG_NAMESPACE = "spBv1.0";
/** The payload codec of the spBv1.0 namespace. */
export const sparkplug = sparkplugNamespace(SPARKPLUG_NAMESPACE)!;
/** Node control metric that asks an edge node to publish its births again. */
export const REBIRTH_METRIC = "Node Control/Rebirth";
/** Sparkplug ids (group, node, device, host): no '/', '+', '#'. */
export const SPARKPLUG_ID = /^[^/+#]{1,64}$/;

/** Sample quality as an OPC DA quality code, carried in a metric's "Quality" Int32 property. */
export const QUALITY_CODE: Record<Quality, number> = { good: 192, uncertain: 64, bad: 0 };

/** The inverse of QUALITY_CODE, by OPC DA quality bits (0xC0 good, 0x40 uncertain, else bad). */
export function qualityFromCode(code: number): Quality {
  const q = code & 0xc0;
  return q === 0xc0 ? "good" : q === 0x40 ? "uncertain" : "bad";
}

export type SparkplugMessageType =
  | "NBIRTH"
  | "NDEATH"
  | "NDATA"
  | "NCMD"
  | "DBIRTH"
  | "DDEATH"
  | "DDATA"
  | "DCMD"
  | "STATE";

export interface SparkplugTopic {
  group: string;
  type: Exclude<SparkplugMessageType, "STATE">;
  node: string;
  device: string | undefined;
}

const TYPES = new Set(["NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD"]);

/** `spBv1.0/<group>/<type>/<node>[/<device>]`. */
export function sparkplugTopic(group: string, type: SparkplugMessageType, node: string, device?: string): string {
  const base = `${SPARKPLUG_NAMESPACE}/${group}/${type}/${node}`;
  return device === undefined ? base : `${base}/${device}`;
}

/** Sparkplug 3.0 host application state topic. */
export function stateTopic(hostId: string): string {
  return `${SPARKPLUG_NAMESPACE}/STATE/${hostId}`;
}

/** Parses an edge-node topic; undefined for STATE and anything that is not a well-formed Sparkplug topic. */
export function parseSparkplugTopic(topic: string): SparkplugTopic | undefined {
  const p = topic.split("/");
  if (p[0] !== SPARKPLUG_NAMESPACE || p.length < 4 || p.length > 5) return undefined;
  const [, group, type, node, device] = p as [string, string, string, string, string | undefined];
  if (!TYPES.has(type) || !group || !node || device === "") return undefined;
  const isDevice = type.startsWith("D");
  if (isDevice !== (device !== undefined)) return undefined;
  return { group, type: type as SparkplugTopic["type"], node, device };
}

/** A protobuf integer (number or Long) as a JS number; undefined for anything else. */
export function sparkplugNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "object" && v !== null && typeof (v as { toNumber?: unknown }).toNumber === "function")
    return (v as { toNumber(): number }).toNumber();
  return undefined;
}

/** Next Sparkplug message seq (0..255, wrapping). */
export function nextSparkplugSeq(seq: number): number {
  return (seq + 1) % 256;
}
