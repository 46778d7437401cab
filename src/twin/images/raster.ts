/*
 * Pixel-level building blocks of the MIK-1 renderer: Gaussian blur of a patch, edge profiles, counter-based noise.
 * Everything works on Float32Array buffers in grey levels (0..255 before quantisation).
 */
import type { Rng } from "../rng.js";

/** A rectangle of the frame, half-open: x0 ≤ x < x1, y0 ≤ y < y1. */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export function clipRect(r: Rect, w: number, h: number): Rect {
  return {
    x0: Math.max(0, Math.floor(r.x0)),
    y0: Math.max(0, Math.floor(r.y0)),
    x1: Math.min(w, Math.ceil(r.x1)),
    y1: Math.min(h, Math.ceil(r.y1)),
  };
}

export function smoothstep(e0: number, e1: number, x: number): number {
  const t = (x - e0) / (e1 - e0);
  if (t <= 0) return 0;
  if (t >= 1) return 1;
  return t * t * (3 - 2 * t);
}

/** exp(−((x − c)/w)²): a smooth ridge of half-width ≈ w at c. */
export function ridge(x: number, c: number, w: number): number {
  const t = (x - c) / w;
  return t * t > 16 ? 0 : Math.exp(-t * t);
}

/**
 * Standard normal CDF Φ(z) (tanh approximation, |error| < 2e-4): the profile of a straight edge seen through a
 * Gaussian blur. Exactly 0 / 1 beyond ±4, so pixels far from an edge are untouched bit for bit.
 */
export function phi(z: number): number {
  if (z <= -4) return 0;
  if (z >= 4) return 1;
  return 0.5 * (1 + Math.tanh(0.7978845608 * (z + 0.044715 * z * z * z)));
}

/** Normalised Gaussian kernel of radius ⌈3σ⌉ (length 1 for σ = 0: no blur). */
export function gaussianKernel(sigma: number): Float32Array {
  if (sigma <= 0) return Float32Array.of(1);
  const r = Math.ceil(3 * sigma);
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + r] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i] = (k[i] as number) / sum;
  return k;
}

let tmp = new Float32Array(0);

/**
 * Separable Gaussian blur of a w×h patch in place, with zeros outside it. The renderer blurs *differences* from the
 * clean scene, which are zero around each patch by construction, so zero padding is exact, not an approximation.
 */
export function blurPatch(buf: Float32Array, w: number, h: number, kernel: Float32Array): void {
  const r = (kernel.length - 1) >> 1;
  if (r === 0) return;
  if (tmp.length < w * h) tmp = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let s = 0;
      const a = Math.max(-r, -x);
      const b = Math.min(r, w - 1 - x);
      for (let k = a; k <= b; k++) s += (kernel[k + r] as number) * (buf[row + x + k] as number);
      tmp[row + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    const a = Math.max(-r, -y);
    const b = Math.min(r, h - 1 - y);
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = a; k <= b; k++) s += (kernel[k + r] as number) * (tmp[(y + k) * w + x] as number);
      buf[y * w + x] = s;
    }
  }
}

/** lowbias32 (C. Wellons): a fast bijective 32-bit integer hash. */
export function hash32(x: number): number {
  let z = x >>> 0;
  z ^= z >>> 16;
  z = Math.imul(z, 0x7feb352d);
  z ^= z >>> 15;
  z = Math.imul(z, 0x846ca68b);
  z ^= z >>> 16;
  return z >>> 0;
}

/** Standard deviation of the sum of four independent uniform bytes. */
const IRWIN_HALL_SD = Math.sqrt((4 * (256 * 256 - 1)) / 12);

/**
 * Approximately standard-normal value for counter `i` of the noise stream `seed`: the four bytes of a hash summed
 * (Irwin–Hall, n = 4, tails cut at ±3.5σ). Counter-based rather than a stream, so pixel i's noise does not depend on
 * what was drawn elsewhere, and a clean render gets the very same noise field as the defect render.
 */
export function hashGauss(seed: number, i: number): number {
  const h = hash32((i ^ seed) + Math.imul(seed, 0x9e3779b1));
  return ((h & 255) + ((h >>> 8) & 255) + ((h >>> 16) & 255) + (h >>> 24) - 510) / IRWIN_HALL_SD;
}

const NOISE_BITS = 20;
/** Mask of an index into the noise table. */
export const NOISE_MASK = (1 << NOISE_BITS) - 1;
let noiseTable: Float32Array | undefined;

/**
 * 2^20 standard-normal values (hashGauss of a fixed seed), built once per process. Sensor noise reads a row of the
 * image as a run of this table from a per-row offset hashed from the image's noise seed: as random-looking as a
 * hash per pixel at a fraction of the cost, and still a pure function of (noise seed, pixel).
 */
export function gaussTable(): Float32Array {
  if (!noiseTable) {
    noiseTable = new Float32Array(NOISE_MASK + 1);
    for (let i = 0; i <= NOISE_MASK; i++) noiseTable[i] = hashGauss(0x6a55, i);
  }
  return noiseTable;
}

/** Smooth 2-D value noise in [−1, 1] on a grid of `cell` px, smoothstep-interpolated. */
export class ValueNoise {
  private readonly gw: number;
  private readonly grid: Float32Array;
  private readonly inv: number;

  constructor(rng: Rng, width: number, height: number, cell: number) {
    this.inv = 1 / cell;
    this.gw = Math.ceil(width / cell) + 2;
    const gh = Math.ceil(height / cell) + 2;
    this.grid = new Float32Array(this.gw * gh);
    for (let i = 0; i < this.grid.length; i++) this.grid[i] = rng.next() * 2 - 1;
  }

  at(x: number, y: number): number {
    const fx = x * this.inv;
    const fy = y * this.inv;
    const ix = Math.floor(fx);
    const iy = Math.floor(fy);
    let tx = fx - ix;
    let ty = fy - iy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const g = this.grid;
    const i = iy * this.gw + ix;
    const a = g[i] as number;
    const b = g[i + 1] as number;
    const c = g[i + this.gw] as number;
    const d = g[i + this.gw + 1] as number;
    return a + (b - a) * tx + (c - a + (a - b - c + d) * tx) * ty;
  }
}

/** Distance from (px, py) to segment a–b, and the position t ∈ [0, 1] of the nearest point along it. */
export function segmentDistance(
  px: number,
  py: number,
  ax: number,
  ay: number,
  bx: number,
  by: number,
): { d: number; t: number } {
  const vx = bx - ax;
  const vy = by - ay;
  const l2 = vx * vx + vy * vy;
  let t = l2 > 0 ? ((px - ax) * vx + (py - ay) * vy) / l2 : 0;
  t = Math.min(1, Math.max(0, t));
  const dx = px - ax - t * vx;
  const dy = py - ay - t * vy;
  return { d: Math.sqrt(dx * dx + dy * dy), t };
}

/** Coverage of a pixel by a line of width `w` at distance `d` from its centre line (box-filtered, thin lines fade). */
export function lineCoverage(d: number, w: number): number {
  const c = w / 2 + 0.5 - d;
  if (c <= 0) return 0;
  return Math.min(1, c) * Math.min(1, w);
}
