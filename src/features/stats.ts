/*
 * Window statistics over the first `n` entries of Float64Arrays, so the extractor can reuse preallocated scratch
 * buffers without slicing. Conventions (the feature contract documents them too):
 * - moments are population moments (divide by n), computed in two passes around the mean for stability;
 * - std needs n ≥ 2, skewness n ≥ 3, kurtosis n ≥ 4; below that, NaN (a lone point carries no spread);
 * - a constant window (max = min) has std 0 and NaN skewness/kurtosis (0/0: shape is undefined);
 * - timestamps are ms, rates are per second.
 */

/** Central moments of a window; `mean` is NaN when the window is empty. */
export interface Moments {
  n: number;
  mean: number;
  min: number;
  max: number;
  /** Population central moments Σ(x − mean)^k / n, k = 2, 3, 4. */
  m2: number;
  m3: number;
  m4: number;
}

/** A fresh Moments to reuse across calls. */
export function newMoments(): Moments {
  return { n: 0, mean: Number.NaN, min: Number.NaN, max: Number.NaN, m2: Number.NaN, m3: Number.NaN, m4: Number.NaN };
}

/** Fills `out` with the moments of v[0..n). */
export function moments(v: Float64Array, n: number, out: Moments): Moments {
  out.n = n;
  if (n <= 0) {
    out.mean = out.min = out.max = out.m2 = out.m3 = out.m4 = Number.NaN;
    return out;
  }
  let sum = 0;
  let min = v[0]!;
  let max = min;
  for (let i = 0; i < n; i++) {
    const x = v[i]!;
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const mean = sum / n;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  if (max !== min) {
    for (let i = 0; i < n; i++) {
      const d = v[i]! - mean;
      const d2 = d * d;
      s2 += d2;
      s3 += d2 * d;
      s4 += d2 * d2;
    }
  }
  out.mean = max === min ? min : mean;
  out.min = min;
  out.max = max;
  out.m2 = s2 / n;
  out.m3 = s3 / n;
  out.m4 = s4 / n;
  return out;
}

/** Population standard deviation sqrt(m2); NaN when n < 2. */
export function stdOf(m: Moments): number {
  return m.n >= 2 ? Math.sqrt(m.m2) : Number.NaN;
}

/** Population skewness g1 = m3 / m2^1.5; NaN when n < 3 or the window is constant. */
export function skewnessOf(m: Moments): number {
  return m.n >= 3 && m.max !== m.min && m.m2 > 0 ? m.m3 / (m.m2 * Math.sqrt(m.m2)) : Number.NaN;
}

/** Population excess kurtosis g2 = m4 / m2² − 3 (0 for a normal distribution); NaN when n < 4 or constant. */
export function excessKurtosisOf(m: Moments): number {
  return m.n >= 4 && m.max !== m.min && m.m2 > 0 ? m.m4 / (m.m2 * m.m2) - 3 : Number.NaN;
}

/**
 * Quantiles of a[0..n), Hyndman–Fan type 7 (the default of R and NumPy): with h = (n − 1)·p, interpolate linearly
 * between the ⌊h⌋-th and (⌊h⌋ + 1)-th smallest values. `ps` must be ascending in 0..1; `out[i]` gets quantile
 * `ps[i]`. n = 1 gives that value for every p; NaN when n is 0.
 *
 * `a` is scratch and is reordered: quickselect finds each order statistic in expected O(n) instead of sorting
 * (a sort of 600 points per tag was three quarters of the per-tick cost).
 */
export function quantilesInPlace(a: Float64Array, n: number, ps: readonly number[], out: Float64Array): void {
  if (n <= 0) {
    out.fill(Number.NaN, 0, ps.length);
    return;
  }
  // After selecting rank k, everything left of k is ≤ a[k] and everything right is ≥ it, so later (larger) ranks
  // only need searching to the right of the previous one.
  let from = 0;
  let prevK = -1;
  for (let q = 0; q < ps.length; q++) {
    const h = (n - 1) * ps[q]!;
    const k = Math.floor(h);
    if (k !== prevK) {
      select(a, k >= from ? from : 0, n, k);
      from = k + 1;
      prevK = k;
    }
    const lo = a[k]!;
    const frac = h - k;
    if (frac > 0 && k + 1 < n) {
      let hi = a[k + 1]!;
      for (let i = k + 2; i < n; i++) if (a[i]! < hi) hi = a[i]!;
      out[q] = lo + frac * (hi - lo);
    } else {
      out[q] = lo;
    }
  }
}

/** Reorders a[lo..hi) so a[k] holds the value of rank k in that range (Hoare partition, median-of-three pivot). */
function select(a: Float64Array, lo: number, hi: number, k: number): void {
  let l = lo;
  let r = hi - 1;
  while (r > l) {
    const m = (l + r) >>> 1;
    if (a[m]! < a[l]!) swap(a, l, m);
    if (a[r]! < a[l]!) swap(a, l, r);
    if (a[r]! < a[m]!) swap(a, m, r);
    const pivot = a[m]!;
    let i = l;
    let j = r;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    // [l..j] ≤ pivot ≤ [i..r]; anything strictly between j and i equals the pivot.
    if (k <= j) r = j;
    else if (k >= i) l = i;
    else return;
  }
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/**
 * Ordinary least-squares slope of value against time, in value units per second. Times are taken relative to
 * `originTs` (ms) so epoch-sized timestamps do not eat the precision. NaN when n < 2 or all timestamps are equal.
 */
export function lsSlopePerS(ts: Float64Array, v: Float64Array, n: number, originTs: number): number {
  if (n < 2) return Number.NaN;
  let st = 0;
  let sv = 0;
  for (let i = 0; i < n; i++) {
    st += (ts[i]! - originTs) / 1000;
    sv += v[i]!;
  }
  const mt = st / n;
  const mv = sv / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const dt = (ts[i]! - originTs) / 1000 - mt;
    sxx += dt * dt;
    sxy += dt * (v[i]! - mv);
  }
  return sxx > 0 ? sxy / sxx : Number.NaN;
}

/** (last − first) / elapsed seconds over the window; NaN when n < 2 or no time elapsed. */
export function rateOfChangePerS(ts: Float64Array, v: Float64Array, n: number): number {
  if (n < 2) return Number.NaN;
  const dt = (ts[n - 1]! - ts[0]!) / 1000;
  return dt > 0 ? (v[n - 1]! - v[0]!) / dt : Number.NaN;
}

/**
 * Volatility: population std of the sample-to-sample first differences v[i] − v[i−1], in value units (per sample
 * step, not per second). NaN when there are fewer than 2 differences (n < 3).
 */
export function volatility(v: Float64Array, n: number): number {
  if (n < 3) return Number.NaN;
  const k = n - 1;
  // The differences telescope, so their mean needs no pass of its own.
  const md = (v[n - 1]! - v[0]!) / k;
  let s = 0;
  for (let i = 1; i < n; i++) {
    const d = v[i]! - v[i - 1]! - md;
    s += d * d;
  }
  return Math.sqrt(s / k);
}

/**
 * Time-aware exponentially weighted moving average over the window, seeded with the first point:
 * e ← e + α·(x − e) with α = 1 − 2^(−Δt / halfLife) for the time Δt since the previous point, so irregular sampling
 * weighs by time, not by count (Δt = halfLife gives α = ½). Stateless: computed from the window alone each call.
 * NaN when the window is empty.
 */
export function ewma(ts: Float64Array, v: Float64Array, n: number, halfLifeS: number): number {
  if (n <= 0) return Number.NaN;
  const k = -Math.LN2 / (halfLifeS * 1000);
  let e = v[0]!;
  // Sampling is usually regular: recompute α only when the step changes.
  let lastDt = Number.NaN;
  let alpha = 0;
  for (let i = 1; i < n; i++) {
    const dt = ts[i]! - ts[i - 1]!;
    if (dt !== lastDt) {
      alpha = 1 - Math.exp(k * dt);
      lastDt = dt;
    }
    e += alpha * (v[i]! - e);
  }
  return e;
}
