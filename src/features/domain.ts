/*
 * Domain features: pure functions of the line's physics (DOMAIN.md, "Physics the twin and the features should
 * respect"). Every function is total: a NaN or out-of-model input gives NaN, never a throw or ±Infinity, so the
 * extractor can call them with whatever the windows hold.
 */

/** Vogel–Fulcher–Tammann constants: log10 η [Pa·s] = A + B / (T − T0), T and T0 in °C, B in °C. */
export interface VftConstants {
  A: number;
  B: number;
  T0: number;
}

/**
 * VFT constants for soda-lime glass, least-squares fitted to DOMAIN.md's five reference points (melting point taken
 * at 1475 °C, the middle of 1450–1500). Predicted log10 η and residual (prediction − reference):
 *
 * | T °C | reference | predicted | residual |
 * |---|---|---|---|
 * | 1450 / 1475 / 1500 | 1 | 0.94 / 0.86 / 0.78 | −0.06 / −0.14 / −0.22 |
 * | 1000 (working) | 3 | 3.20 | +0.20 |
 * | 720 (softening) | 6.6 | 6.64 | +0.04 |
 * | 545 (annealing) | 12 | 11.70 | −0.30 (worst) |
 * | 505 (strain) | 13.5 | 13.70 | +0.20 |
 *
 * All within ±0.31 decades. The annealing and strain points fit worst: three parameters cannot follow the
 * curvature of the real curve near T0 and at the melt end at once, and the reference values are themselves
 * "about" figures. Treat the curve as valid from ~500 to ~1600 °C.
 */
export const VFT_SODA_LIME: Readonly<VftConstants> = Object.freeze({ A: -3.04, B: 4930, T0: 210.5 });

/**
 * Viscosity of the melt, log10 of η in Pa·s, from the VFT equation at `tempC` (°C). NaN at or below T0, where the
 * equation has no meaning, and for a NaN input.
 */
export function viscosityLog10(tempC: number, c: Readonly<VftConstants> = VFT_SODA_LIME): number {
  const d = tempC - c.T0;
  if (!(d > 0)) return Number.NaN;
  const v = c.A + c.B / d;
  return Number.isFinite(v) ? v : Number.NaN;
}

/**
 * Thermal gradient between two stages in °C: `upstreamC − downstreamC` (e.g. furnace melt − mold ≈ 1500 − 320 =
 * 1180 °C at nominal). Positive when the upstream stage is hotter.
 */
export function thermalGradientC(upstreamC: number, downstreamC: number): number {
  return upstreamC - downstreamC;
}

/** Nominal annealing lehr profile, zones 1..3, °C (DOMAIN.md: 600 / 550 / 500 ± 5). */
export const ANNEALING_NOMINAL_C: readonly [number, number, number] = Object.freeze([600, 550, 500] as const);

/**
 * RMS deviation of the three lehr zones from the nominal profile, in °C: sqrt(mean((zᵢ − nominalᵢ)²)). 0 on
 * profile; 5 when every zone sits at the edge of its ±5 °C band. NaN when a zone is NaN.
 */
export function annealingRmsDeviationC(
  z1: number,
  z2: number,
  z3: number,
  nominal: readonly [number, number, number] = ANNEALING_NOMINAL_C,
): number {
  const d1 = z1 - nominal[0];
  const d2 = z2 - nominal[1];
  const d3 = z3 - nominal[2];
  return Math.sqrt((d1 * d1 + d2 * d2 + d3 * d3) / 3);
}

/**
 * 1 when the lehr profile strictly decreases zone by zone (z1 > z2 > z3), as annealing requires; 0 when it does
 * not; NaN when a zone is NaN.
 */
export function annealingMonotonic(z1: number, z2: number, z3: number): number {
  if (Number.isNaN(z1) || Number.isNaN(z2) || Number.isNaN(z3)) return Number.NaN;
  return z1 > z2 && z2 > z3 ? 1 : 0;
}

/** RMS deviation (°C) at which the annealing score reaches 0: five times the ±5 °C band. */
export const ANNEALING_SCORE_SCALE_C = 25;

/**
 * Annealing profile consistency score in 0..1: `monotonic × max(0, 1 − rmsDevC / scaleC)`. 1 on the nominal
 * profile, 0.8 with every zone at the band edge (5 °C RMS), 0 at ≥ 25 °C RMS or when the zones do not decrease.
 */
export function annealingScore(rmsDevC: number, monotonic: number, scaleC = ANNEALING_SCORE_SCALE_C): number {
  if (Number.isNaN(rmsDevC) || Number.isNaN(monotonic)) return Number.NaN;
  return monotonic * Math.max(0, 1 - rmsDevC / scaleC);
}

/** Soda-lime glass properties from DOMAIN.md, SI units. */
export const SODA_LIME = Object.freeze({
  /** Young's modulus, Pa. */
  youngsModulusPa: 70e9,
  /** Linear thermal expansion coefficient, 1/K. */
  expansionPerK: 9e-6,
  /** Poisson's ratio. */
  poisson: 0.22,
  /** Tensile strength, MPa. */
  tensileStrengthMPa: 50,
  /** Density, kg/m³. */
  densityKgM3: 2500,
  /** Specific heat, J/(kg·K). */
  heatCapacityJKgK: 840,
  /** Thermal conductivity, W/(m·K). */
  conductivityWMK: 1.4,
});

/** Thermal diffusivity a = k / (ρ·cp) of soda-lime glass, m²/s (≈ 6.67e-7). */
export const SODA_LIME_DIFFUSIVITY_M2S =
  SODA_LIME.conductivityWMK / (SODA_LIME.densityKgM3 * SODA_LIME.heatCapacityJKgK);

/** Default container wall thickness for the cooling-stress model, m. */
export const DEFAULT_WALL_THICKNESS_M = 0.004;

/**
 * Through-thickness temperature difference (K) of a glass wall cooled at `rateCPerMin` (°C/min) in the lehr.
 *
 * Model: quasi-steady conduction in a wall of thickness d cooled from one face (a container wall: the lehr air
 * cools the outside, the inside sees enclosed air), so the heat equation −r = a·T″ gives a parabolic profile with
 * ΔT = r·d² / (2·a), r in K/s and a the thermal diffusivity. The sign of the rate is ignored (a magnitude).
 * At 3.5 °C/min and 4 mm: ΔT = 0.0583 × 1.6e-5 / (2 × 6.67e-7) = 0.70 K.
 */
export function coolingDeltaTK(
  rateCPerMin: number,
  thicknessM = DEFAULT_WALL_THICKNESS_M,
  diffusivityM2S = SODA_LIME_DIFFUSIVITY_M2S,
): number {
  const r = Math.abs(rateCPerMin) / 60;
  return (r * thicknessM * thicknessM) / (2 * diffusivityM2S);
}

/** Elastic thermal stress σ = E·α·ΔT / (1 − ν) in MPa for a temperature difference `deltaTK` (K). */
export function thermalStressMPa(deltaTK: number): number {
  return (SODA_LIME.youngsModulusPa * SODA_LIME.expansionPerK * deltaTK) / (1 - SODA_LIME.poisson) / 1e6;
}

/**
 * Cooling-stress index in MPa: `thermalStressMPa(coolingDeltaTK(rate, thickness))`. About 0.57 MPa at the nominal
 * 3.5 °C/min and 4 mm. This elastic estimate stays far below the 50 MPa strength at lehr rates: read it as a
 * relative indicator (it scales with rate × thickness²), not as a fracture prediction; DOMAIN.md's crack risk
 * above 7 °C/min also involves flaws and the frozen-in annealing stress this model does not see.
 */
export function coolingStressMPa(rateCPerMin: number, thicknessM = DEFAULT_WALL_THICKNESS_M): number {
  return thermalStressMPa(coolingDeltaTK(rateCPerMin, thicknessM));
}

/** A stress as a fraction of soda-lime glass tensile strength (50 MPa). */
export function stressRatio(stressMPa: number): number {
  return stressMPa / SODA_LIME.tensileStrengthMPa;
}

/**
 * Fraction (0..1) of the first `n` values lying inside the closed normal band [min, max]; NaN when n is 0.
 */
export function inBandFraction(values: ArrayLike<number>, n: number, min: number, max: number): number {
  if (!(n > 0)) return Number.NaN;
  let inside = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v >= min && v <= max) inside++;
  }
  return inside / n;
}

/**
 * Process stability index in 0..1: the mean, over the key tags that have data, of each tag's in-band fraction
 * (share of its window inside the normal band). NaN entries (tags without data) are skipped; NaN when none has
 * data. 1 means every key tag stayed in band the whole window.
 */
export function stabilityIndex(inBandFractions: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < inBandFractions.length; i++) {
    const f = inBandFractions[i]!;
    if (!Number.isNaN(f)) {
      sum += f;
      n++;
    }
  }
  return n === 0 ? Number.NaN : sum / n;
}
