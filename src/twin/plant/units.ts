/*
 * Engineering units as OPC UA EUInformation wants them: the UNECE Recommendation 20 common code (turned into
 * the unitId by the OPC UA rule in node-opcua's makeEUInformation) for the units the tag dictionary uses. A unit
 * without a common code gets unitId -1, as Part 8 prescribes, and keeps its symbol as the display name.
 */

/** Symbol in the tag dictionary → UNECE common code and long name. */
const UNECE: Record<string, { code: string; name: string }> = {
  "°C": { code: "CEL", name: "degree Celsius" },
  K: { code: "KEL", name: "kelvin" },
  kPa: { code: "KPA", name: "kilopascal" },
  MPa: { code: "MPA", name: "megapascal" },
  Pa: { code: "PAL", name: "pascal" },
  bar: { code: "BAR", name: "bar" },
  mm: { code: "MMT", name: "millimetre" },
  m: { code: "MTR", name: "metre" },
  "%": { code: "P1", name: "percent" },
  "kg/h": { code: "E93", name: "kilogram per hour" },
  "kg/s": { code: "KGS", name: "kilogram per second" },
  "m/min": { code: "2X", name: "metre per minute" },
  "m/s": { code: "MTS", name: "metre per second" },
  s: { code: "SEC", name: "second" },
  min: { code: "MIN", name: "minute" },
  count: { code: "C62", name: "one" },
};

export interface UnitInfo {
  /** UNECE common code, or undefined when the unit has none here (unitId -1). */
  code: string | undefined;
  symbol: string;
  name: string;
}

export function unitInfo(symbol: string): UnitInfo {
  const u = UNECE[symbol];
  return u ? { code: u.code, symbol, name: u.name } : { code: undefined, symbol, name: symbol };
}
