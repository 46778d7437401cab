/*
 * Percentiles for the benches. One convention for all of them, nearest rank rounded down:
 * q-quantile of n ascending values = sorted[min(n − 1, ⌊q·n⌋)]. It is what each bench used before sharing this file,
 * so their figures did not change when they moved here. (The daemon's own LatencyWindow uses ⌈q·n⌉ − 1; the two
 * differ by at most one rank, which is noise next to run-to-run variation on a shared machine.)
 */

/** The q-quantile (0..1) of an ascending array; NaN when it is empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  return n ? (sorted[Math.min(n - 1, Math.floor(q * n))] as number) : Number.NaN;
}

/** An ascending copy (numeric order, not the default string order of Array.prototype.sort). */
export function sortedCopy(xs: ArrayLike<number>): Float64Array {
  return Float64Array.from(xs).sort();
}

/** Percentiles of one series, in the series' unit. */
export interface Summary {
  n: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function summarize(xs: ArrayLike<number>): Summary {
  const s = sortedCopy(xs);
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum += s[i] as number;
  return {
    n: s.length,
    mean: s.length ? sum / s.length : Number.NaN,
    min: s.length ? (s[0] as number) : Number.NaN,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    p999: quantile(s, 0.999),
    max: s.length ? (s[s.length - 1] as number) : Number.NaN,
  };
}

/** Median of a few per-round figures (the lower middle one for an even count, so it is always a measured value). */
export function median(xs: readonly number[]): number {
  return quantile(sortedCopy(xs), 0.5 - 1e-9);
}

/** Smallest value (best latency), or largest with `higherIsBetter` (best throughput). */
export function best(xs: readonly number[], higherIsBetter = false): number {
  return xs.length ? (higherIsBetter ? Math.max(...xs) : Math.min(...xs)) : Number.NaN;
}
