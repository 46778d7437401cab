/*
 * Physical relations the twin relies on. Glass properties, the VFT viscosity law and the thermal-stress formula live
 * in one place, features/domain.ts (the features and the twin must agree on them); this file keeps what only the
 * twin uses: the furnace heat balance, refining, batch melting, forming and annealing relations, each a pure
 * function of plain numbers so tests can check them by hand. The line model integrates them over time.
 *
 * The numbers are "typical container-glass line" figures chosen to reproduce DOMAIN.md's operating point and
 * response times; each constant says where it comes from. They are calibrations, not measurements of one plant.
 */
import { coolingDeltaTK, SODA_LIME, thermalStressMPa, viscosityLog10 } from "../features/domain.js";

/** max(0, x): how far past a threshold a variable is, in units of its scale; 0 while on the safe side. */
export function excess(x: number): number {
  return Math.max(x, 0);
}

export function clamp(x: number, lo: number, hi: number): number {
  return Math.min(Math.max(x, lo), hi);
}

// --- operating point (DOMAIN.md) ---

/** The nominal operating point the calibrations below are made at. */
export const NOMINAL = Object.freeze({
  meltC: 1500,
  powerPct: 85,
  batchKgH: 2000,
  beltMMin: 150,
  moldC: 320,
  formingPressureMPa: 50,
  o2Pct: 5,
  /** Share of recycled glass in the batch (typical container line: 30–70 %). Configurable per line. */
  culletFraction: 0.5,
  /** Container wall thickness, m (features/domain.ts uses the same 4 mm). Configurable per line. */
  wallThicknessM: 0.004,
});

// --- furnace heat balance ---

/**
 * Lumped heat balance of the melt: C·dT/dt = Q_burner(t − delay) − Q_loss(T) − Q_batch(T).
 *
 * - Q_burner = firing × available-heat share × power %: 12 MW of fuel at 100 % (a ~200 t/day container furnace),
 *   half of which reaches the melt (the rest leaves with the flue gas).
 * - Q_loss = Q_loss0 + G_loss·(T − 1500 °C): walls, openings and the flue gas, linearised around the operating
 *   point. G_loss is large because a hotter combustion space both radiates more and sends hotter flue gas out
 *   (less available heat), so the melt settles +3 °C per % of power (DOMAIN: ±10 % power ≈ ±30 °C).
 * - Q_batch = ṁ·(c̄p·(T − 25 °C) + h_rx·(1 − cullet)·difficulty): heating the charge to melt temperature plus the
 *   batch reactions (carbonate decomposition, batch gases), which cullet does not need.
 * - C is the thermal mass that exchanges with the combustion space (≈ 34 t of melt at 1250 J/(kg·K)), so
 *   τ = C / (G_loss + ṁ·c̄p) = 35 min at 2000 kg/h.
 * Q_loss0 is solved so that the nominal point is an exact steady state (see {@link furnaceLossW}).
 */
export const FURNACE = Object.freeze({
  firingW: 12e6,
  availableHeat: 0.5,
  heatCapacityJK: 4.2e7,
  lossConductanceWK: 19_305.6,
  batchCpJKgK: 1250,
  batchInletC: 25,
  reactionHeatJKg: 0.8e6,
  /** Burner power reaches the melt after this dead time (combustion space, crown, then the melt). */
  powerDelayMs: 4 * 60_000,
});

/** Heat the burners deliver to the melt at `powerPct` of full firing, W. */
export function burnerHeatW(powerPct: number): number {
  return FURNACE.firingW * FURNACE.availableHeat * (powerPct / 100);
}

/** Heat the batch charge takes to reach `meltC`, W (sensible heat plus batch reactions of the raw share). */
export function batchHeatW(batchKgH: number, meltC: number, culletFraction: number, difficulty = 1): number {
  const kgS = Math.max(batchKgH, 0) / 3600;
  return (
    kgS *
    (FURNACE.batchCpJKgK * (meltC - FURNACE.batchInletC) + FURNACE.reactionHeatJKg * (1 - culletFraction) * difficulty)
  );
}

/** Loss at 1500 °C that makes the nominal point (85 %, 2000 kg/h, nominal cullet) a steady state, W. */
export function furnaceLoss0W(culletFraction: number = NOMINAL.culletFraction): number {
  return burnerHeatW(NOMINAL.powerPct) - batchHeatW(NOMINAL.batchKgH, NOMINAL.meltC, culletFraction);
}

/** Heat lost through walls, openings and flue gas at `meltC`, W (linearised about 1500 °C). */
export function furnaceLossW(meltC: number, loss0W = furnaceLoss0W()): number {
  return loss0W + FURNACE.lossConductanceWK * (meltC - NOMINAL.meltC);
}

/**
 * Melt temperature the balance settles at and its time constant for constant inputs. The balance is linear in T,
 * so dT/dt = (T_eq − T)/τ exactly: the line model integrates it as T_eq + (T − T_eq)·exp(−dt/τ).
 */
export function furnaceEquilibrium(
  heatInW: number,
  batchKgH: number,
  culletFraction: number,
  difficulty: number,
  loss0W: number,
): { tempC: number; tauS: number } {
  return {
    tempC: furnaceEquilibriumC(heatInW, batchKgH, culletFraction, difficulty, loss0W),
    tauS: furnaceTauS(batchKgH),
  };
}

/** {@link furnaceEquilibrium}'s temperature alone (no allocation: the line model calls it every step). */
export function furnaceEquilibriumC(
  heatInW: number,
  batchKgH: number,
  culletFraction: number,
  difficulty: number,
  loss0W: number,
): number {
  const kgS = Math.max(batchKgH, 0) / 3600;
  const g = FURNACE.lossConductanceWK + kgS * FURNACE.batchCpJKgK;
  // Q_in − [loss0 + G_loss(T − 1500)] − ṁ[c̄p(T − 25) + h_rx(1 − c)d] = 0, solved for T.
  const a =
    heatInW -
    loss0W +
    FURNACE.lossConductanceWK * NOMINAL.meltC +
    kgS * (FURNACE.batchCpJKgK * FURNACE.batchInletC - FURNACE.reactionHeatJKg * (1 - culletFraction) * difficulty);
  return a / g;
}

/** {@link furnaceEquilibrium}'s time constant alone, s. */
export function furnaceTauS(batchKgH: number): number {
  return FURNACE.heatCapacityJK / (FURNACE.lossConductanceWK + (Math.max(batchKgH, 0) / 3600) * FURNACE.batchCpJKgK);
}

// --- batch melting (unmelted batch → stones, cords) ---

/**
 * The batch blanket: batch floats on the melt and dissolves at a rate k_m that grows with temperature
 * (×e per 120 °C), with cullet (which melts faster than raw batch) and falls with a harder batch:
 * dB/dt = ṁ − k_m·B, k_m = 1/20 min at the nominal point, so B ≈ 670 kg there.
 * Unmelted carry-over (grains that reach the throat undissolved) grows with the blanket's extent (B², a larger
 * blanket reaches nearer the throat) and with a colder melt (×e per 60 °C less), plus a surge term: a feeder surge
 * larger than 150 kg/h above its 10 min average pushes segregated batch past the hot spot.
 */
export const BATCH = Object.freeze({
  meltRatePerS: 1 / 1200,
  meltRateTempScaleC: 120,
  carryOverTempScaleC: 60,
  culletMeltGain: 0.6,
  surgeThresholdKgH: 150,
  surgeScaleKgH: 200,
  surgeGain: 2,
});

/** Batch dissolution rate k_m, 1/s. */
export function batchMeltRatePerS(meltC: number, culletFraction: number, difficulty: number): number {
  return (
    (BATCH.meltRatePerS *
      Math.exp((meltC - NOMINAL.meltC) / BATCH.meltRateTempScaleC) *
      (1 + BATCH.culletMeltGain * (culletFraction - NOMINAL.culletFraction))) /
    Math.max(difficulty, 1e-3)
  );
}

/** Unmelted-batch index: 1 at the nominal point; ≈ 5 at 1450 °C, ≈ 20 at 1410 °C (steady state). */
export function unmeltedIndex(blanketRatio: number, meltC: number, surgeKgH: number): number {
  return (
    blanketRatio * blanketRatio * Math.exp((NOMINAL.meltC - meltC) / BATCH.carryOverTempScaleC) +
    BATCH.surgeGain * excess((surgeKgH - BATCH.surgeThresholdKgH) / BATCH.surgeScaleKgH)
  );
}

// --- refining (seeds → bubbles) ---

/**
 * Seeds (small bubbles) leaving the refiner, per kg of glass: n = n_in·exp(−R).
 * - n_in: gas from the batch reactions, mostly the raw (non-cullet) share; ×difficulty.
 * - R = R_nom · (t_res / t_res,nom) · (η_nom / η(T)) · (f(T, O2) / f_nom) · fining: bubbles rise at Stokes velocity
 *   ∝ 1/η (VFT viscosity at the melt temperature), over the residence time in the refiner (∝ 1/pull, and the pull
 *   follows the belt), helped by the fining gas that sulfate releases above its onset temperature
 *   (logistic f, onset 1440 °C, width 12 °C). An oxidising atmosphere (more O2) stabilises sulfate and raises the
 *   onset by 45 °C per % O2 — hence DOMAIN's "O2 > 5 % → bubbles" and "T < 1450 °C → no degassing".
 * R_nom = 3: 95 % of the seeds are removed at the nominal point. The visible-seed density at the nominal point is
 * calibrated so that ~1 % of 0.35 kg items carry one (DOMAIN: bubbles are the most common defect).
 */
export const REFINING = Object.freeze({
  removalAtNominal: 3,
  finingOnsetC: 1440,
  finingOnsetPerO2PctC: 45,
  finingWidthC: 12,
  /** Mixing in the refining zone: the seed population follows its target with this time constant. */
  lagMs: 20 * 60_000,
  itemMassKg: 0.35,
  /** Visible seeds per kg leaving the refiner at the nominal point: −ln(1 − 1 %) / 0.35 kg. */
  nominalSeedsPerKg: -Math.log(1 - 0.01) / 0.35,
});

/** Sulfate fining-gas release 0..1 at melt temperature `meltC` and flue-gas O2 `o2Pct`. */
export function finingActivity(meltC: number, o2Pct: number): number {
  const onset = REFINING.finingOnsetC + REFINING.finingOnsetPerO2PctC * (o2Pct - NOMINAL.o2Pct);
  return 1 / (1 + Math.exp(-(meltC - onset) / REFINING.finingWidthC));
}

const F_NOM = finingActivity(NOMINAL.meltC, NOMINAL.o2Pct);
const LOG_ETA_MELT_NOM = viscosityLog10(NOMINAL.meltC);

/** Seed-removal exponent R (dimensionless). `pullRatio` is pull / nominal pull. */
export function refiningRemoval(meltC: number, o2Pct: number, pullRatio: number, fining: number): number {
  const eta = viscosityLog10(meltC);
  const stokes = Number.isNaN(eta) ? 0 : 10 ** (LOG_ETA_MELT_NOM - eta);
  return (
    (REFINING.removalAtNominal * stokes * (finingActivity(meltC, o2Pct) / F_NOM) * Math.max(fining, 0)) /
    Math.max(pullRatio, 1e-3)
  );
}

/** Relative seed generation by the batch: 1 at the nominal cullet share and batch. */
export function seedGeneration(culletFraction: number, difficulty: number): number {
  return ((0.3 + 1.4 * (1 - culletFraction)) / (0.3 + 1.4 * (1 - NOMINAL.culletFraction))) * difficulty;
}

/** Visible seeds per kg leaving the refiner in steady state under these conditions. */
export function seedsPerKgTarget(
  meltC: number,
  o2Pct: number,
  pullRatio: number,
  culletFraction: number,
  difficulty: number,
  fining: number,
): number {
  const r = refiningRemoval(meltC, o2Pct, pullRatio, fining);
  return (
    REFINING.nominalSeedsPerKg *
    seedGeneration(culletFraction, difficulty) *
    Math.exp(REFINING.removalAtNominal - Math.min(r, 700))
  );
}

// --- forehearth and forming ---

/**
 * Forehearth: glass leaving the throat reaches the feeder after 28 min and is conditioned ~430 °C below the melt
 * (1500 → 1070 °C gob, log η ≈ 2.7, near DOMAIN's working point). Together with the 2 min from the forming machine
 * to the MIK-1 this is the furnace's 30 min dead time to the camera.
 */
export const FOREHEARTH = Object.freeze({ transitMs: 28 * 60_000, gobBelowMeltC: 430 });

/**
 * Forming, per item (a cycle takes seconds, so these are algebraic in the inputs):
 * - Mold contact time t_c = 3 s at 150 m/min, ∝ 1/belt speed.
 * - Release temperature (mean of the wall): the glass cools toward the mold, T_rel = T_mold + (T_gob − T_mold)·
 *   exp(−t_c/τ_c), τ_c = 3 s / ln 2 so half the gob–mold difference is removed at nominal (≈ 695 °C, just
 *   below the softening point: rigid enough to hold its shape).
 * - Sag: an item released hotter (faster belt, hot mold, hot gob) is less viscous and sags under its own weight;
 *   sag ratio = η_rel,nom / η_rel (VFT at the release temperature).
 * - Wall-thickness spread (coefficient of variation of the wall): 10 % at nominal; the glass distributes better
 *   with a higher flow number F = (P/P_nom)·(t_c/t_c,nom)·(η_gob,nom/η_gob) (spread ∝ 1/√F), worse with a chilled
 *   mold (below 300 °C the skin freezes before the glass has flowed) and with pressure swings.
 * - Deformation index = sag ratio × spread / nominal spread: 1 at nominal, ≈ 8 at 180 m/min, ≈ 20 at 200 m/min.
 */
export const FORMING = Object.freeze({
  contactS: 3,
  contactTauS: 3 / Math.LN2,
  nominalSpread: 0.1,
  chillBelowC: 300,
  chillScaleC: 25,
  chillGain: 1.5,
  swingThresholdMPa: 5,
  swingScaleMPa: 10,
});

export function gobTemperatureC(meltC: number): number {
  return meltC - FOREHEARTH.gobBelowMeltC;
}

/** Mean wall temperature when the item leaves the mold, °C. */
export function releaseTemperatureC(moldC: number, gobC: number, beltMMin: number): number {
  const tc = (FORMING.contactS * NOMINAL.beltMMin) / Math.max(beltMMin, 1);
  return moldC + (gobC - moldC) * Math.exp(-tc / FORMING.contactTauS);
}

const LOG_ETA_GOB_NOM = viscosityLog10(gobTemperatureC(NOMINAL.meltC));
const LOG_ETA_REL_NOM = viscosityLog10(
  releaseTemperatureC(NOMINAL.moldC, gobTemperatureC(NOMINAL.meltC), NOMINAL.beltMMin),
);

/** Sag ratio: how much faster than nominal a released item sags (η_rel,nom / η_rel). */
export function sagRatio(releaseC: number): number {
  const eta = viscosityLog10(releaseC);
  // Below T0 the VFT law has no meaning; such an item is rigid.
  return Number.isNaN(eta) ? 0 : 10 ** (LOG_ETA_REL_NOM - eta);
}

/** Wall-thickness spread (coefficient of variation, fraction). */
export function wallSpread(
  beltMMin: number,
  moldC: number,
  pressureMPa: number,
  gobC: number,
  pressureSwingMPa: number,
): number {
  const eta = viscosityLog10(gobC);
  const flow =
    Math.max(pressureMPa / NOMINAL.formingPressureMPa, 0.05) *
    (NOMINAL.beltMMin / Math.max(beltMMin, 1)) *
    (Number.isNaN(eta) ? 1e-3 : 10 ** (LOG_ETA_GOB_NOM - eta));
  const chill = 1 + FORMING.chillGain * excess((FORMING.chillBelowC - moldC) / FORMING.chillScaleC);
  const swing = 1 + excess((pressureSwingMPa - FORMING.swingThresholdMPa) / FORMING.swingScaleMPa);
  return (FORMING.nominalSpread * chill * swing) / Math.sqrt(Math.max(flow, 1e-3));
}

// --- annealing lehr and residual stress ---

/**
 * Residual (permanent) stress σ = E·α·ΔT/(1 − ν) (features/domain.ts) for the temperature difference frozen into
 * the glass as it passes the strain point, ΔT = ΔT_rate + ΔT_unrelaxed + ΔT_uneven:
 * - ΔT_rate: through-wall difference while cooling at the effective rate (features/domain.ts coolingDeltaTK) at
 *   the thick spot of the wall (mean × (1 + 2·spread)). If zone 3 sits above the strain point the glass leaves
 *   the annealing section still able to take stress and crosses it at the cold-end rate (12 °C/min).
 * - ΔT_unrelaxed: the ~40 K forming gradient, relaxed in zone 1 (10 min hold) with the Maxwell time
 *   τ = η(T_zone1)/G, G = E/(2(1 + ν)): fully relaxed at 600 °C (τ ≈ 0.1 s), half kept at 510 °C, most at 500 °C.
 * - ΔT_uneven: side-to-side difference when a lehr fan fails (K).
 * Cracks follow a three-parameter Weibull law on σ against the 50 MPa tensile strength: nothing below 10 MPa
 * (flaws in a container surface do not grow), 63 % at 50 MPa.
 */
export const ANNEALING = Object.freeze({
  strainPointC: 505,
  coldEndRatePerMin: 12,
  exitBandC: 40,
  formingDeltaTK: 40,
  zone1HoldS: 600,
  weibullThresholdMPa: 10,
  weibullModulus: 3,
});

/** Shear modulus of soda-lime glass from features/domain.ts's E and ν, Pa. */
export const SHEAR_MODULUS_PA = SODA_LIME.youngsModulusPa / (2 * (1 + SODA_LIME.poisson));

/** Maxwell stress-relaxation time at `tempC`, s: η(T)/G with VFT viscosity. */
export function maxwellRelaxationS(tempC: number): number {
  const eta = viscosityLog10(tempC);
  return Number.isNaN(eta) ? Number.POSITIVE_INFINITY : 10 ** eta / SHEAR_MODULUS_PA;
}

/** log10 of the relaxation time below which zone 1 relaxes all but e^−50 of the forming gradient. */
const LOG10_TAU_RELAXED = Math.log10(ANNEALING.zone1HoldS / 50);

/** Forming gradient left after zone 1, K. */
export function unrelaxedDeltaTK(zone1C: number): number {
  const eta = viscosityLog10(zone1C);
  // Short cut for a hot zone 1 (the normal case): the remainder would be below 1e-20 K.
  if (eta - Math.log10(SHEAR_MODULUS_PA) < LOG10_TAU_RELAXED) return 0;
  return ANNEALING.formingDeltaTK * Math.exp(-ANNEALING.zone1HoldS / maxwellRelaxationS(zone1C));
}

/** Cooling rate at which the glass crosses the strain point, °C/min. */
export function effectiveAnnealingRate(coolingRatePerMin: number, zone3C: number): number {
  const r = Math.max(coolingRatePerMin, 0);
  const above = clamp((zone3C - ANNEALING.strainPointC) / ANNEALING.exitBandC, 0, 1);
  return r + Math.max(ANNEALING.coldEndRatePerMin - r, 0) * above;
}

/** The parts of the frozen-in temperature difference, K. */
export interface ResidualDeltaT {
  rateK: number;
  unrelaxedK: number;
  unevenK: number;
  totalK: number;
}

export function residualDeltaTK(
  coolingRatePerMin: number,
  zone1C: number,
  zone3C: number,
  wallThicknessM: number,
  unevenK: number,
): ResidualDeltaT {
  const rateK = coolingDeltaTK(effectiveAnnealingRate(coolingRatePerMin, zone3C), wallThicknessM);
  const unrelaxedK = unrelaxedDeltaTK(zone1C);
  const u = Math.max(unevenK, 0);
  return { rateK, unrelaxedK, unevenK: u, totalK: rateK + unrelaxedK + u };
}

/** Residual stress for a frozen-in ΔT, MPa: σ = E·α·ΔT/(1 − ν) from features/domain.ts. */
export function residualStressMPa(deltaTK: number): number {
  return thermalStressMPa(deltaTK);
}

/** Probability that an item under residual stress `stressMPa` cracks (three-parameter Weibull). */
export function crackProbability(stressMPa: number): number {
  const x =
    (stressMPa - ANNEALING.weibullThresholdMPa) / (SODA_LIME.tensileStrengthMPa - ANNEALING.weibullThresholdMPa);
  return x > 0 ? 1 - Math.exp(-(x ** ANNEALING.weibullModulus)) : 0;
}
