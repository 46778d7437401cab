/*
 * Plain-text tables and number formats for bench output: fixed-width columns, first column left-aligned and the
 * figures right-aligned, so rounds and baselines line up when read in a terminal or a CI log.
 */

export type Cell = string | number;

export interface TableOptions {
  /** Prefix of every line. Default two spaces. */
  indent?: string;
  /** Per column: "l" or "r". Default: first column left, the rest right. */
  align?: readonly ("l" | "r")[];
  /** Spaces between columns. Default 2. */
  gap?: number;
}

/** Renders a header row, a rule and the rows; returns the text with a trailing newline. */
export function table(header: readonly Cell[], rows: readonly (readonly Cell[])[], opts: TableOptions = {}): string {
  const indent = opts.indent ?? "  ";
  const gap = " ".repeat(opts.gap ?? 2);
  const all = [header, ...rows].map((r) => r.map(String));
  const cols = Math.max(...all.map((r) => r.length));
  const width = Array.from({ length: cols }, (_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]) =>
    indent +
    width
      .map((w, c) => {
        const s = r[c] ?? "";
        return (opts.align?.[c] ?? (c === 0 ? "l" : "r")) === "l" ? s.padEnd(w) : s.padStart(w);
      })
      .join(gap)
      .trimEnd();
  const rule = indent + width.map((w) => "-".repeat(w)).join(gap);
  return `${[line(all[0] ?? []), rule, ...all.slice(1).map(line)].join("\n")}\n`;
}

/** Milliseconds with a fixed number of decimals ("1.234"); "–" for NaN. */
export function ms(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

/** Milliseconds shown as microseconds ("137.4 µs"). */
export function us(msValue: number, digits = 1): string {
  return Number.isFinite(msValue) ? `${(msValue * 1000).toFixed(digits)} µs` : "–";
}

/** A rate with thousands separators ("12,345/s"). */
export function rate(perS: number, unit = "/s"): string {
  return Number.isFinite(perS) ? `${Math.round(perS).toLocaleString("en-US")}${unit}` : "–";
}

/** A fraction as a percentage ("87 %"). */
export function pct(fraction: number, digits = 0): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(digits)} %` : "–";
}
