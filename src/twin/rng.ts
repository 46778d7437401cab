/*
 * Seeded pseudo-random numbers for the twin. Math.random is never used: the same seed must give the same line,
 * sample for sample, so datasets and tests are reproducible. mulberry32 is small, fast and good enough for
 * simulation noise (it is not a cryptographic generator).
 */

const TWO_POW_32 = 4_294_967_296;

/** splitmix32 finaliser: spreads a 32-bit input over all output bits; used to derive independent stream seeds. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** A deterministic random stream (mulberry32 uniform, Box–Muller gaussian). */
export class Rng {
  private s: number;
  /** Box–Muller yields two normals per draw; the second is kept for the next call. */
  private spare = 0;
  private hasSpare = false;

  /** `seed` may be any integer (or a float, which is truncated); bits above 2^32 are folded in, not dropped. */
  constructor(seed: number) {
    const n = Math.trunc(Number.isFinite(seed) ? seed : 0);
    const lo = n >>> 0;
    const hi = Math.floor(n / TWO_POW_32) >>> 0;
    this.s = splitmix32(lo ^ splitmix32(hi));
  }

  /**
   * A stream derived from `seed` and a stream number. Each consumer (process noise, sensor noise, items) gets its
   * own stream so that drawing more numbers in one (e.g. more items at a higher belt speed) never shifts another.
   */
  static derive(seed: number, stream: number): Rng {
    const r = new Rng(seed);
    r.s = splitmix32(r.s ^ splitmix32(stream >>> 0));
    return r;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = Math.imul(this.s ^ (this.s >>> 15), 1 | this.s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / TWO_POW_32;
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Standard normal N(0, 1). */
  gaussian(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    // 1 - next() is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const phi = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(phi);
    this.hasSpare = true;
    return r * Math.cos(phi);
  }
}
