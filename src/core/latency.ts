/**
 * Latency percentiles over the last `capacity` observations (a ring of Float64, sorted on read). Reads are rare
 * (API, metrics) and writes are per stage per tick, so sorting a copy on read is cheaper than a streaming sketch.
 */
export class LatencyWindow {
  private readonly ring: Float64Array;
  private n = 0;
  private i = 0;
  private total = 0;

  constructor(capacity = 1024) {
    this.ring = new Float64Array(capacity);
  }

  observe(ms: number): void {
    this.ring[this.i] = ms;
    this.i = (this.i + 1) % this.ring.length;
    if (this.n < this.ring.length) this.n++;
    this.total++;
  }

  /** Mean and percentiles (nearest-rank) over the window; `count` is the total ever observed; null when empty. */
  summary(): {
    count: number;
    mean_ms: number | null;
    p50_ms: number | null;
    p95_ms: number | null;
    p99_ms: number | null;
    max_ms: number | null;
  } {
    if (this.n === 0) return { count: 0, mean_ms: null, p50_ms: null, p95_ms: null, p99_ms: null, max_ms: null };
    const s = this.ring.slice(0, this.n).sort();
    let sum = 0;
    for (const x of s) sum += x;
    const q = (p: number) => round3(s[Math.min(this.n - 1, Math.max(0, Math.ceil(p * this.n) - 1))] as number);
    return {
      count: this.total,
      mean_ms: round3(sum / this.n),
      p50_ms: q(0.5),
      p95_ms: q(0.95),
      p99_ms: q(0.99),
      max_ms: round3(s[this.n - 1] as number),
    };
  }
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
