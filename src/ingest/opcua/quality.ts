import type { Quality } from "../../core/types.js";

/*
 * OPC UA status codes → sample quality. The two top bits of a StatusCode are its severity (OPC 10000-4 §7.39):
 * 00 Good, 01 Uncertain, 10 Bad (11 reserved, treated as bad). So GoodClamped, GoodLocalOverride, … are good,
 * UncertainLastUsableValue is uncertain, BadSensorFailure or BadNodeIdUnknown are bad.
 */
export function qualityOf(statusValue: number): Quality {
  const severity = (statusValue >>> 30) & 3;
  return severity === 0 ? "good" : severity === 1 ? "uncertain" : "bad";
}

/**
 * A DataValue's variant as a sample value: numbers as they are, booleans as 0/1, 64-bit integers ([hi, lo] in
 * node-opcua) as a number when exact; anything else is passed on unchanged so validation quarantines it as
 * wrong_type with the raw value kept.
 */
export function sampleValue(v: unknown): unknown {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && typeof v[1] === "number") {
    const n = v[0] * 2 ** 32 + (v[1] >>> 0);
    return Number.isSafeInteger(n) ? n : v;
  }
  return v;
}
