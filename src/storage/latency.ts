import type { LatencyHistogram } from "./types.js";

/** Upper bounds in seconds; an fsync'd LMDB commit is typically 0.1–10 ms on an SSD, far more on an SD card. */
const BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** Fixed-bucket latency histogram: O(buckets) memory whatever the number of observations. */
export class Latency {
  private readonly counts = new Array<number>(BUCKETS_S.length).fill(0);
  private count = 0;
  private sum = 0;
  private max = 0;
  private last = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    this.last = seconds;
    if (seconds > this.max) this.max = seconds;
    for (let i = 0; i < BUCKETS_S.length; i++) if (seconds <= (BUCKETS_S[i] as number)) this.counts[i]!++;
  }

  snapshot(): LatencyHistogram {
    return {
      buckets_s: BUCKETS_S,
      counts: [...this.counts],
      count: this.count,
      sum_s: this.sum,
      max_s: this.max,
      last_s: this.last,
    };
  }
}
