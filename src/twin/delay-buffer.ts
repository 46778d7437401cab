/**
 * A transport delay (dead time) over a vector signal: `read(t)` returns the values pushed at `t - delayMs`,
 * linearly interpolated between the two pushes around that time. Before the first push older than the delay it
 * holds the initial values (the line was in that state before the simulation began).
 *
 * Time-indexed rather than step-indexed so callers may step with any dt; the ring grows when a smaller step
 * needs more history. Reads must be made at non-decreasing times (history older than the last read is dropped).
 */
export class DelayBuffer {
  readonly width: number;
  private times: Float64Array;
  private vals: Float64Array;
  private cap: number;
  private head = 0;
  private size = 0;
  private readonly scratch = new Float64Array(1);

  constructor(
    readonly delayMs: number,
    t0: number,
    initial: ArrayLike<number>,
    capacity = 64,
  ) {
    if (!(delayMs >= 0)) throw new RangeError(`DelayBuffer: delayMs must be >= 0, got ${delayMs}`);
    this.width = initial.length;
    this.cap = Math.max(2, capacity);
    this.times = new Float64Array(this.cap);
    this.vals = new Float64Array(this.cap * this.width);
    this.push(t0, initial);
  }

  /** Appends the signal's values at time `t` (strictly after the previous push). */
  push(t: number, values: ArrayLike<number>): void {
    if (this.size === this.cap) this.grow();
    const slot = (this.head + this.size) % this.cap;
    this.times[slot] = t;
    const w = this.width;
    const base = slot * w;
    for (let k = 0; k < w; k++) this.vals[base + k] = values[k] as number;
    this.size++;
  }

  /** Writes the values the signal had at `t - delayMs` into `out`. */
  read(t: number, out: Float64Array): void {
    const target = t - this.delayMs;
    const cap = this.cap;
    const times = this.times;
    // Drop entries the cursor has passed, keeping the last one at or before the target for interpolation.
    while (this.size >= 2 && (times[(this.head + 1) % cap] as number) <= target) {
      this.head = (this.head + 1) % cap;
      this.size--;
    }
    const w = this.width;
    const a = this.head;
    const ta = times[a] as number;
    if (this.size < 2 || ta >= target) {
      for (let k = 0; k < w; k++) out[k] = this.vals[a * w + k] as number;
      return;
    }
    const b = (a + 1) % cap;
    const f = (target - ta) / ((times[b] as number) - ta);
    for (let k = 0; k < w; k++) {
      const va = this.vals[a * w + k] as number;
      out[k] = va + ((this.vals[b * w + k] as number) - va) * f;
    }
  }

  /** Convenience for scalar buffers. */
  readScalar(t: number): number {
    this.read(t, this.scratch);
    return this.scratch[0] as number;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const times = new Float64Array(cap);
    const vals = new Float64Array(cap * this.width);
    for (let i = 0; i < this.size; i++) {
      const src = (this.head + i) % this.cap;
      times[i] = this.times[src] as number;
      vals.set(this.vals.subarray(src * this.width, (src + 1) * this.width), i * this.width);
    }
    this.times = times;
    this.vals = vals;
    this.cap = cap;
    this.head = 0;
  }
}
