/*
 * Physical relations the twin (and later the features) rely on. Kept apart from the dynamics so a deeper physics
 * model can replace them without touching the simulator plumbing.
 */

/**
 * Vogel–Fulcher–Tammann constants for soda-lime glass (T in °C, η in Pa·s), least-squares fit to DOMAIN.md's
 * reference points: gives 10^0.9 at 1475 °C (melting), 10^3.2 at 1000 °C (working point), 10^6.6 at 720 °C
 * (softening), 10^11.7 at 545 °C (annealing point), 10^13.7 at 505 °C (strain point) — all within 0.3 decades.
 */
export const VFT = { A: -3.04, B: 4930, T0: 210.5 } as const;

/** log10 of the viscosity (Pa·s) of soda-lime glass at `tempC` °C (VFT). Meaningful above ~T0 + 250 °C. */
export function log10Viscosity(tempC: number): number {
  return VFT.A + VFT.B / (tempC - VFT.T0);
}

/** Material constants of soda-lime glass (DOMAIN.md), for thermal-stress estimates. */
export const GLASS = {
  youngModulusPa: 70e9,
  expansionPerK: 9e-6,
  poisson: 0.22,
  tensileStrengthPa: 50e6,
  densityKgM3: 2500,
  heatCapacityJKgK: 840,
  conductivityWmK: 1.4,
} as const;

/** Thermal stress σ ≈ E·α·ΔT/(1−ν) in Pa for a temperature difference `deltaK` across the glass. */
export function thermalStressPa(deltaK: number): number {
  return (GLASS.youngModulusPa * GLASS.expansionPerK * deltaK) / (1 - GLASS.poisson);
}

/** max(0, x): how far past a threshold a variable is, in units of its scale; 0 while on the safe side. */
export function excess(x: number): number {
  return Math.max(x, 0);
}
