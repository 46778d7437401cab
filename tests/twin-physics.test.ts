import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { DefectClass, InspectionEvent, RawSample } from "../src/core/types.js";
import { DISTURBANCE_TIMING, type DisturbanceSpec, STAGE_TIMING, TwinLine, TwinTagError } from "../src/twin/index.js";
import {
  FOREHEARTH,
  FURNACE,
  furnaceEquilibrium,
  releaseTemperatureC,
  residualDeltaTK,
  residualStressMPa,
  sagRatio,
  seedsPerKgTarget,
  unrelaxedDeltaTK,
  wallSpread,
} from "../src/twin/physics.js";

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 1);

function twin(seed = 21, itemsPerMin = 15): TwinLine {
  return new TwinLine({ tags: DEFAULT_TAGS, seed, speed: 1, stepMs: 1000, itemsPerMin, startTs: T0 });
}

/** Runs `durationMs` in `everyMs` chunks; `at[t]` runs before the chunk starting at t; probes after each chunk. */
function trace<T>(
  tw: TwinLine,
  durationMs: number,
  everyMs: number,
  probe: (tw: TwinLine) => T,
  at: Record<number, (tw: TwinLine) => void> = {},
) {
  const rows: { t: number; v: T; samples: RawSample[]; inspections: InspectionEvent[] }[] = [];
  for (let elapsed = 0; elapsed < durationMs; elapsed += everyMs) {
    at[elapsed]?.(tw);
    const o = tw.advance(everyMs);
    rows.push({ t: tw.now() - T0, v: probe(tw), ...o });
  }
  return rows;
}

/** A disturbance without its times (Omit distributed over the union). */
type Untimed<T> = T extends DisturbanceSpec ? Omit<T, "startTs" | "endTs"> : never;

const disturb =
  (spec: Untimed<DisturbanceSpec>, durationMs?: number) =>
  (tw: TwinLine): void =>
    tw.model.addDisturbance({
      ...spec,
      startTs: tw.now(),
      ...(durationMs === undefined ? {} : { endTs: tw.now() + durationMs }),
    } as DisturbanceSpec);

/** pushed − control of `probe`, over the same seed (the process noise cancels exactly). */
function difference(
  durationMs: number,
  everyMs: number,
  probe: (tw: TwinLine) => number,
  cause: Record<number, (tw: TwinLine) => void>,
  seed = 21,
) {
  const control = trace(twin(seed), durationMs, everyMs, probe);
  const pushed = trace(twin(seed), durationMs, everyMs, probe, cause);
  const rows = pushed.map((p, i) => ({ t: p.t, d: p.v - control[i]!.v }));
  return { rows, at: (t: number) => rows.find((r) => r.t >= t)!.d };
}

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (± ${tol})`);

// --- hand computations ---

test("heat balance by hand: nominal is a steady state, +3 °C per % power, τ 35 min, the batch is a heat sink", () => {
  // Loss at 1500 °C = 5.1 MW in − 0.5556 kg/s × (1250 × 1475 + 0.8 MJ × 0.5) = 5.1 MW − 1.2465 MW.
  const loss0 = 0.5 * 12e6 * 0.85 - (2000 / 3600) * (1250 * 1475 + 0.8e6 * 0.5);
  const nominal = furnaceEquilibrium(0.5 * 12e6 * 0.85, 2000, 0.5, 1, loss0);
  close(nominal.tempC, 1500, 1e-9, "nominal melt temperature");
  // G = 19 305.6 W/K losses + 694.4 W/K batch; τ = 4.2e7 J/K / 20 000 W/K = 2100 s.
  close(nominal.tauS, 2100, 0.1, "time constant");
  const hotter = furnaceEquilibrium(0.5 * 12e6 * 0.95, 2000, 0.5, 1, loss0);
  close(hotter.tempC - 1500, (60_000 * 10) / 20_000, 0.01, "+10 % power");
  // 30 % less cullet: 0.5556 kg/s × 0.8 MJ/kg × 0.3 = 133.3 kW more reaction heat → −6.67 °C.
  close(furnaceEquilibrium(0.5 * 12e6 * 0.85, 2000, 0.2, 1, loss0).tempC - 1500, -133_333 / 20_000, 0.01, "cullet");
});

test("residual stress follows σ = E·α·ΔT/(1 − ν) (hand computation) and zone-1 relaxation follows VFT/Maxwell", () => {
  // 3.5 °C/min through a 4 mm wall: ΔT = (3.5/60) K/s × (0.004 m)² / (2 × 1.4 / (2500 × 840)) = 0.7 K.
  const a = 1.4 / (2500 * 840);
  const dT = residualDeltaTK(3.5, 600, 500, 0.004, 0);
  close(dT.rateK, ((3.5 / 60) * 0.004 ** 2) / (2 * a), 1e-12, "through-wall ΔT");
  close(dT.rateK, 0.7, 1e-9, "through-wall ΔT at 3.5 °C/min");
  assert.is(dT.unrelaxedK, 0, "zone 1 at 600 °C relaxes the forming gradient");
  // σ = 70 GPa × 9e-6 /K × 0.7 K / 0.78 = 0.5654 MPa.
  close(residualStressMPa(dT.totalK), (70e9 * 9e-6 * 0.7) / 0.78 / 1e6, 1e-12, "σ");
  close(residualStressMPa(30), 24.23, 0.01, "σ for 30 K of uneven cooling");
  // Zone 1 at 500 °C: η = 10^(−3.04 + 4930/289.5) Pa·s, G = 70 GPa / 2.44, τ = η/G; 40 K × exp(−600 s/τ) remains.
  const tau = 10 ** (-3.04 + 4930 / (500 - 210.5)) / (70e9 / 2.44);
  close(unrelaxedDeltaTK(500), 40 * Math.exp(-600 / tau), 1e-9, "unrelaxed ΔT at 500 °C");
  assert.ok(unrelaxedDeltaTK(500) > 30 && unrelaxedDeltaTK(540) < 1e-3);
  // Zone 3 above the strain point: the glass crosses it at the cold-end rate (12 °C/min).
  close(residualDeltaTK(3.5, 600, 545, 0.004, 0).rateK, 0.7 * (12 / 3.5), 1e-9, "hot zone 3");
});

test("the model's residual stress is σ = E·α·ΔT/(1 − ν) of its own exposed ΔT, from its cooling rate and wall", () => {
  const tw = twin();
  tw.advance(HOUR);
  const s = tw.model.state;
  const r = tw.model.reading("cooling_rate");
  const a = 1.4 / (2500 * 840);
  assert.ok(tw.model.reading("annealing_zone3") < 505, "nominal zone 3 is below the strain point");
  close(s.coolingDeltaTK, ((r / 60) * s.wallThickSpotM ** 2) / (2 * a), 1e-12, "ΔT from the cooling rate");
  close(s.residualDeltaTK, s.coolingDeltaTK + s.unrelaxedDeltaTK + s.lehrUnevennessK, 1e-12, "ΔT parts");
  close(s.residualStressMPa, (70e9 * 9e-6 * s.residualDeltaTK) / (1 - 0.22) / 1e6, 1e-12, "σ");
  close(s.wallThickSpotM, 0.004 * (1 + 2 * s.wallSpread), 1e-15, "thick spot");
});

test("forming relations by hand: release temperature, sag and wall spread", () => {
  // Contact 3 s at 150 m/min, τ_c = 3 s / ln 2: half the gob–mold difference is removed.
  close(releaseTemperatureC(320, 1070, 150), 695, 1e-9, "nominal release");
  close(releaseTemperatureC(320, 1070, 200), 320 + 750 * 2 ** -0.75, 1e-9, "release at 200 m/min");
  assert.is(sagRatio(695), 1);
  // VFT: log η(766) = −3.04 + 4930/555.5; nominal log η(695) = −3.04 + 4930/484.5.
  const t200 = releaseTemperatureC(320, 1070, 200);
  close(sagRatio(t200), 10 ** (4930 / 484.5 - 4930 / (t200 - 210.5)), 1e-9, "sag ratio at 200 m/min");
  close(wallSpread(150, 320, 50, 1070, 0), 0.1, 1e-12, "nominal spread");
  close(wallSpread(150, 250, 50, 1070, 0), 0.1 * (1 + 1.5 * 2), 1e-12, "chilled mold (250 °C)");
  close(wallSpread(150, 320, 25, 1070, 0), 0.1 * Math.SQRT2, 1e-12, "half the pressure");
});

test("refining by hand: colder, more oxidised, faster-pulled or raw-batch melts leave more seeds", () => {
  const nominal = seedsPerKgTarget(1500, 5, 1, 0.5, 1, 1);
  close(nominal, -Math.log(0.99) / 0.35, 1e-12, "1 % of 0.35 kg items carry a seed");
  assert.ok(seedsPerKgTarget(1440, 5, 1, 0.5, 1, 1) > 5 * nominal, "no fining below the onset");
  assert.ok(seedsPerKgTarget(1500, 6, 1, 0.5, 1, 1) > 1.5 * nominal, "O2 > 5 %");
  // Pull × 4/3 → residence × 3/4 → removal exponent 3 → 2.25: × e^0.75.
  close(seedsPerKgTarget(1500, 5, 4 / 3, 0.5, 1, 1) / nominal, Math.exp(0.75), 1e-9, "faster pull");
  assert.ok(seedsPerKgTarget(1500, 5, 1, 0.8, 1, 1) < nominal, "more cullet, less batch gas");
  assert.ok(seedsPerKgTarget(1500, 5, 1, 0.5, 1, 0.5) > 3 * nominal, "weak fining agent");
});

// --- step responses (time constants and delays) ---

test("gob temperature follows the melt after the 28 min forehearth transit, exactly", () => {
  assert.is(FOREHEARTH.transitMs, 28 * MIN);
  const gob = difference(80 * MIN, MIN, (tw) => tw.model.state.gobTemperatureC, {
    0: (tw) => void tw.write("furnace_power", 95),
  });
  // Power reaches the melt after 4 min, the melt reaches the feeder 28 min later.
  for (const r of gob.rows) if (r.t <= (4 + 28) * MIN) assert.is(r.d, 0, `t=${r.t / MIN} min`);
  assert.ok(gob.at(40 * MIN) > 0.5, `gob +${gob.at(40 * MIN)} °C at 40 min`);
  const melt = difference(80 * MIN, MIN, (tw) => tw.model.state.meltTemperatureC, {
    0: (tw) => void tw.write("furnace_power", 95),
  });
  close(gob.at(70 * MIN), melt.at(42 * MIN), 0.05, "gob at t = melt at t − 28 min");
});

test("cooling rate settles in 30–60 min (τ 40 min); a failed fan raises it within minutes (τ 5 min)", () => {
  const lever = difference(3 * HOUR, MIN, (tw) => tw.model.reading("cooling_rate"), {
    0: (tw) => void tw.write("cooling_rate", 4.5),
  });
  const t63 = lever.rows.find((r) => r.d >= 0.632)!.t;
  assert.ok(t63 >= 30 * MIN && t63 <= 60 * MIN, `lever t63 ${t63 / MIN} min`);
  assert.is(DISTURBANCE_TIMING.fanTauMs, 5 * MIN);
  const fan = difference(HOUR, 30 * SEC, (tw) => tw.model.reading("cooling_rate"), {
    0: disturb({ kind: "fan_failure", coolingRateIncrease: 3, unevennessK: 30 }),
  });
  const f63 = fan.rows.find((r) => r.d >= 0.632 * 3)!.t;
  assert.ok(f63 >= 4 * MIN && f63 <= 6 * MIN, `fan t63 ${f63 / MIN} min`);
  close(fan.at(55 * MIN), 3, 0.05, "fan failure +3 °C/min");
});

test("seeds follow the refiner's conditions with the 20 min mixing lag", () => {
  // A slower belt pulls less glass: 25 % longer refining, removal exponent 3 → 3.75, seeds × e^−0.75 at the same
  // melt temperature. The ratio to the undisturbed line (same seed, same melt wander) shows the lag alone.
  const probe = (tw: TwinLine) => tw.model.state.seedsPerKg;
  const control = trace(twin(), 2 * HOUR, MIN, probe);
  const slow = trace(twin(), 2 * HOUR, MIN, probe, { 0: (tw) => void tw.write("belt_speed", 120) });
  const ratio = slow.map((r, i) => ({ t: r.t, k: r.v / control[i]!.v }));
  const final = ratio.at(-1)!.k;
  close(final, Math.exp(-0.75), 0.02, "seed ratio after 2 h");
  const t63 = ratio.find((r) => (1 - r.k) / (1 - final) >= 0.632)!.t;
  assert.ok(t63 >= 18 * MIN && t63 <= 23 * MIN, `seed t63 ${t63 / MIN} min`);
  // O2 above 5 % (oxidising: sulfate fines later) raises the seeds too.
  const o2 = difference(HOUR, 10 * MIN, (tw) => tw.model.state.seedIndex, {
    0: (tw) => {
      tw.model.process.o2.setpoint = 6;
    },
  });
  assert.ok(o2.at(HOUR - MIN) > 0.2, `O2 6 %: seed index +${o2.at(HOUR - MIN)}`);
});

// --- disturbances move the right variables ---

test("burner trip: actual burner power drops and O2 rises at once, the melt cools after 4 min, then recovers", () => {
  const probe = (tw: TwinLine): Record<string, number> => ({ ...tw.model.readings(), ...tw.model.state });
  const control = trace(twin(), 3 * HOUR, MIN, probe);
  const trip = trace(twin(), 3 * HOUR, MIN, probe, {
    [10 * MIN]: (tw) =>
      tw.model.addDisturbance({ kind: "burner_trip", startTs: tw.now(), endTs: tw.now() + 20 * MIN, powerLoss: 0.4 }),
  });
  const d = (t: number, k: keyof ReturnType<typeof probe>) =>
    (trip.find((r) => r.t >= t)!.v[k] as number) - (control.find((r) => r.t >= t)!.v[k] as number);
  close(d(12 * MIN, "furnace_power"), -0.4 * 85, 1, "burner power during the trip");
  assert.ok(d(20 * MIN, "o2_percent") > 0.8, "O2 up (same air, less fuel)");
  assert.is(d(13 * MIN, "meltTemperatureC"), 0, "the melt does not see it before the 4 min transport delay");
  assert.ok(d(30 * MIN, "meltTemperatureC") < -15, `melt ${d(30 * MIN, "meltTemperatureC")}`);
  assert.is(d(30 * MIN, "annealing_zone1"), 0, "the lehr is untouched");
  // Relit at 30 min, ramped back over 10 min: full power from 40 min; the melt recovers over the next hours.
  close(d(45 * MIN, "furnace_power"), 0, 0.01, "power after recovery");
  assert.ok(Math.abs(d(3 * HOUR - MIN, "meltTemperatureC")) < 3, "melt recovered");
  assert.equal(trip[0]!.v.furnace_power, control[0]!.v.furnace_power, "nothing before the trip");
});

test("fan failure: cooling rate, unevenness and residual stress rise; nothing upstream moves", () => {
  const probe = (tw: TwinLine): Record<string, number> => ({ ...tw.model.readings(), ...tw.model.state });
  const control = trace(twin(), HOUR, MIN, probe);
  const fan = trace(twin(), HOUR, MIN, probe, { 0: disturb({ kind: "fan_failure" }) });
  const a = fan.at(-1)!.v;
  const b = control.at(-1)!.v;
  close(a.cooling_rate! - b.cooling_rate!, 3, 0.05, "cooling rate");
  close(a.lehrUnevennessK!, 30, 0.1, "unevenness");
  close(a.residualStressMPa!, residualStressMPa(a.coolingDeltaTK! + 30), 0.1, "σ with 30 K uneven");
  assert.ok(a.residualStressMPa! > 20);
  for (const k of ["furnace_temperature", "belt_speed", "mold_temperature", "seedIndex", "wallSpread"]) {
    assert.is(a[k], b[k], k);
  }
});

test("batch and cullet changes move composition, heat sink, seeds and unmelted batch (and nothing in the lehr)", () => {
  const probe = (tw: TwinLine) => ({ ...tw.model.state });
  const control = trace(twin(), 3 * HOUR, 10 * MIN, probe);
  const cullet = trace(twin(), 3 * HOUR, 10 * MIN, probe, {
    0: disturb({ kind: "cullet_change", culletFraction: 0.2 }),
  });
  const c = cullet.at(-1)!.v;
  const b = control.at(-1)!.v;
  close(c.culletFraction, 0.2, 1e-4, "cullet share");
  // The heat balance by hand: −133.3 kW of reaction heat → −6.67 °C at equilibrium.
  close(c.meltEquilibriumC - b.meltEquilibriumC, -6.67, 0.1, "melt equilibrium");
  assert.ok(c.batchHeatW > b.batchHeatW + 100_000, "more heat into the batch");
  assert.ok(c.seedIndex > b.seedIndex * 1.2 && c.unmeltedIndex > b.unmeltedIndex * 1.2);
  const recipe = trace(twin(), 3 * HOUR, 10 * MIN, probe, {
    0: disturb({ kind: "batch_change", difficulty: 1.4, fining: 0.6 }),
  });
  const r = recipe.at(-1)!.v;
  close(r.batchDifficulty, 1.4, 1e-4, "difficulty");
  // The melt's fining chemistry mixes over 90 min: after 3 h, 1 − e^−2 of the way.
  close(r.finingFactor, 1 - 0.4 * (1 - Math.exp(-2)), 0.01, "fining");
  assert.ok(r.seedIndex > 2 * b.seedIndex && r.unmeltedIndex > b.unmeltedIndex, "seeds and unmelted batch up");
  // The lehr's own states do not see the batch (the ware's wall spread, through the gob, may).
  for (const k of ["unrelaxedDeltaTK", "lehrUnevennessK"] as const) assert.is(r[k], b[k], k);
});

test("humidity disturbance ramps the weather's mean", () => {
  const h = difference(2 * HOUR, 10 * MIN, (tw) => tw.model.reading("humidity"), {
    0: disturb({ kind: "humidity", value: 80, rampMs: 60 * MIN }),
  });
  close(h.at(30 * MIN), 15, 0.01, "half-way through the ramp");
  close(h.at(90 * MIN), 30, 1e-9, "after the ramp");
});

// --- defects rise after their cause and its delay, not before ---

function hazards(durationMs: number, cause: Record<number, (tw: TwinLine) => void>, itemsPerMin = 60) {
  const probe = (tw: TwinLine) => tw.defects.probabilities();
  const control = trace(twin(33, itemsPerMin), durationMs, MIN, probe);
  const pushed = trace(twin(33, itemsPerMin), durationMs, MIN, probe, cause);
  const rate = (rows: typeof control, cls: DefectClass, from: number, to: number) => {
    const items = rows.flatMap((r) => r.inspections).filter((e) => e.ts >= T0 + from && e.ts < T0 + to);
    return items.filter((e) => e.defects.some((d) => d.class === cls)).length / items.length;
  };
  return {
    /** Every class's probability is exactly the undisturbed line's up to `t`. */
    sameUntil(t: number) {
      for (let i = 0; i < pushed.length && pushed[i]!.t <= t; i++) {
        assert.equal(pushed[i]!.v, control[i]!.v, `t=${pushed[i]!.t / MIN} min`);
      }
    },
    rise(cls: DefectClass, t: number, by: number) {
      const p = pushed.find((r) => r.t >= t)!.v[cls];
      const c = control.find((r) => r.t >= t)!.v[cls];
      assert.ok(p > c + by, `${cls} at ${t / MIN} min: ${p} vs ${c}`);
    },
    observed(cls: DefectClass, from: number, to: number, factor: number) {
      const p = rate(pushed, cls, from, to);
      const c = rate(control, cls, from, to);
      assert.ok(p > factor * c && p > 0.01, `${cls} rate ${p} vs control ${c}`);
    },
  };
}

test("crack: a failed lehr fan (residual stress) raises cracks only after the lehr transit", () => {
  const h = hazards(3 * HOUR, { [10 * MIN]: disturb({ kind: "fan_failure", unevennessK: 35 }) });
  h.sameUntil(10 * MIN + STAGE_TIMING.annealing.delayMs);
  h.rise("crack", 2 * HOUR, 0.03);
  h.observed("crack", 90 * MIN, 3 * HOUR, 5);
});

test("crack: a cold zone 1 leaves forming stress unrelaxed (VFT) and cracks follow hours later", () => {
  const h = hazards(5 * HOUR, { 0: (tw) => void tw.write("annealing_zone1", 500) });
  h.sameUntil(STAGE_TIMING.annealing.delayMs);
  h.rise("crack", 5 * HOUR - MIN, 0.02);
});

test("bubble, stone: a hard batch with weak fining raises them after the furnace delay", () => {
  const h = hazards(4 * HOUR, { 0: disturb({ kind: "batch_change", difficulty: 1.5, fining: 0.5 }) }, 30);
  h.sameUntil(STAGE_TIMING.furnace.delayMs);
  h.rise("bubble", 3 * HOUR, 0.02);
  h.rise("stone", 3 * HOUR, 0.0008);
  h.observed("bubble", 2 * HOUR, 4 * HOUR, 2);
});

test("cloudiness: a reducing atmosphere (O2 < 3 %) raises cords after the furnace delay", () => {
  const h = hazards(3 * HOUR, {
    0: (tw) => {
      tw.model.process.o2.setpoint = 2;
    },
  });
  h.sameUntil(STAGE_TIMING.furnace.delayMs);
  h.rise("cloudiness", 2 * HOUR, 0.02);
  h.observed("cloudiness", 90 * MIN, 3 * HOUR, 3);
});

test("stain: a hot mold (> 350 °C) raises stains once the mold has warmed and the ware reached the camera", () => {
  const h = hazards(90 * MIN, { 0: (tw) => void tw.write("mold_temperature", 400) });
  h.sameUntil(STAGE_TIMING.forming.delayMs);
  h.rise("stain", 80 * MIN, 0.03);
  h.observed("stain", 40 * MIN, 90 * MIN, 4);
});

test("scratch, chip: a faster belt (handling energy) raises them after the forming delay", () => {
  const h = hazards(40 * MIN, { [10 * MIN]: (tw) => void tw.write("belt_speed", 195) });
  h.sameUntil(10 * MIN + STAGE_TIMING.forming.delayMs);
  h.rise("scratch", 20 * MIN, 0.005);
  h.rise("chip", 20 * MIN, 0.02);
  h.observed("chip", 15 * MIN, 40 * MIN, 3);
});

// --- sensor faults: in the measurement, not in the process ---

function faulted(kind: string, extra: Record<string, number>, tag = "mold_temperature") {
  const probe = (tw: TwinLine) => ({ readings: tw.model.readings(), p: tw.defects.probabilities() });
  const control = trace(twin(), 40 * MIN, MIN, probe);
  const bad = trace(twin(), 40 * MIN, MIN, probe, {
    0: (tw) =>
      tw.model.addSensorFault({
        tag,
        kind: kind as "stuck",
        startTs: T0 + 10 * MIN,
        endTs: T0 + 20 * MIN,
        ...extra,
      }),
  });
  // The true process and the hazards are untouched by a sensor fault.
  for (const [i, r] of bad.entries()) assert.equal(r.v, control[i]!.v, `${kind}: true state at ${r.t / MIN} min`);
  const series = (rows: typeof control) => rows.flatMap((r) => r.samples).filter((s) => s.tag === tag);
  const inWindow = (s: RawSample) => s.ts >= T0 + 10 * MIN && s.ts < T0 + 20 * MIN;
  return { control: series(control), bad: series(bad), inWindow, twin: bad };
}

test("sensor fault stuck: the reading freezes in the window; outside it and in the true state, nothing changes", () => {
  const f = faulted("stuck", {});
  const inside = f.bad.filter(f.inWindow);
  assert.is(inside.length, 600);
  assert.ok(
    inside.every((s) => s.value === inside[0]!.value),
    "one value",
  );
  const last = f.control.filter((s) => s.ts < T0 + 10 * MIN).at(-1)!;
  assert.is(inside[0]!.value, last.value, "held at the last healthy reading");
  const outside = (xs: RawSample[]) => xs.filter((s) => !f.inWindow(s)).map((s) => s.value);
  assert.equal(outside(f.bad), outside(f.control));
});

test("sensor fault drift: the reading moves away at the given rate", () => {
  const f = faulted("drift", { ratePerMin: 2 });
  f.bad.forEach((s, i) => {
    const d = (s.value as number) - (f.control[i]!.value as number);
    const expected = f.inWindow(s) ? (2 * (s.ts - (T0 + 10 * MIN))) / MIN : 0;
    close(d, expected, 1e-9, `drift at ${(s.ts - T0) / SEC} s`);
  });
});

test("sensor fault spike: isolated ±magnitude outliers in the window only", () => {
  const f = faulted("spike", { magnitude: 40, probability: 0.1 });
  let spikes = 0;
  f.bad.forEach((s, i) => {
    const d = (s.value as number) - (f.control[i]!.value as number);
    if (d !== 0) {
      assert.ok(f.inWindow(s), "spikes only inside the window");
      close(Math.abs(d), 40, 1e-9, "spike size");
      spikes++;
    }
  });
  assert.ok(spikes > 30 && spikes < 90, `${spikes} spikes of 600 samples at 10 %`);
});

test("sensor fault dropout: no samples in the window, sequence numbers stay gap-free; labels say so", () => {
  const f = faulted("dropout", {});
  assert.is(f.bad.filter(f.inWindow).length, 0);
  assert.is(f.bad.length, f.control.length - 600);
  const all = f.twin.flatMap((r) => r.samples);
  for (let i = 1; i < all.length; i++) assert.is(all[i]!.seq, all[i - 1]!.seq + 1);
  const tw = twin();
  tw.model.addSensorFault({ tag: "belt_speed", kind: "dropout", startTs: T0 + MIN, endTs: T0 + 2 * MIN });
  tw.advance(3 * MIN);
  assert.is(tw.model.sensorFaultAt("belt_speed", T0 + 90 * SEC), "dropout", "labels are kept after the fact");
  assert.is(tw.model.sensorFaultAt("belt_speed", T0 + 2 * MIN), undefined);
  assert.is(tw.stats().droppedSamples, 60);
});

test("sensor fault noise burst: extra noise of the given sigma in the window", () => {
  const f = faulted("noise_burst", { sigma: 5 });
  const d = f.bad.map((s, i) => (s.value as number) - (f.control[i]!.value as number));
  const inside = d.filter((_, i) => f.inWindow(f.bad[i]!));
  const sd = Math.sqrt(inside.reduce((a, x) => a + x * x, 0) / inside.length);
  close(sd, 5, 0.5, "burst sigma");
  assert.ok(
    d.every((x, i) => f.inWindow(f.bad[i]!) || x === 0),
    "nothing outside the window",
  );
});

test("a single spike hits exactly one sample; sensorFaultAt labels it", () => {
  const tw = twin();
  tw.model.addSensorFault({ tag: "forming_pressure", kind: "spike", startTs: T0 + 30 * SEC, magnitude: 30 });
  const ref = twin()
    .advance(2 * MIN)
    .samples.filter((s) => s.tag === "forming_pressure");
  const got = tw.advance(2 * MIN).samples.filter((s) => s.tag === "forming_pressure");
  const diff = got.filter((s, i) => s.value !== ref[i]!.value);
  assert.is(diff.length, 1);
  assert.is(diff[0]!.ts, T0 + 30 * SEC);
  assert.is(tw.model.sensorFaultAt("forming_pressure", T0 + 30 * SEC), "spike");
  assert.is(tw.model.sensorFaultAt("forming_pressure", T0 + 31 * SEC), undefined);
});

// --- bad input ---

test("bad disturbances, faults and physics options are refused with the field named", () => {
  const tw = twin();
  const m = tw.model;
  assert.throws(
    () => m.addDisturbance({ kind: "burner_trip", startTs: T0, powerLoss: 2 }),
    /powerLoss must be .*0\.\.1, got 2/,
  );
  assert.throws(
    () => m.addDisturbance({ kind: "cullet_change", startTs: T0, culletFraction: Number.NaN }),
    /culletFraction must be/,
  );
  assert.throws(
    () => m.addDisturbance({ kind: "fan_failure", startTs: T0, endTs: T0 - 1 }),
    /endTs must be >= startTs/,
  );
  assert.throws(
    () => m.addDisturbance({ kind: "meteor", startTs: T0 } as unknown as DisturbanceSpec),
    /unknown disturbance kind "meteor"; valid: batch_change/,
  );
  assert.throws(
    () => m.addSensorFault({ tag: "nope", kind: "stuck", startTs: T0 }),
    (e: unknown) => e instanceof TwinTagError,
  );
  assert.throws(() => m.addSensorFault({ tag: "belt_speed", kind: "drift", startTs: T0 }), /ratePerMin is required/);
  assert.throws(
    () => m.addSensorFault({ tag: "belt_speed", kind: "melt" as "stuck", startTs: T0 }),
    /unknown sensor fault kind "melt"/,
  );
  assert.throws(
    () =>
      new TwinLine({
        tags: DEFAULT_TAGS,
        seed: 1,
        speed: 1,
        stepMs: 1000,
        itemsPerMin: 15,
        physics: { culletFraction: 1.5 },
      }),
    /physics\.culletFraction must be within 0\.\.0\.95, got 1\.5/,
  );
  assert.is(m.activeDisturbances().length, 0, "refused disturbances are not scheduled");
});

test("a line configured with another cullet share starts in its own steady state", () => {
  const tw = new TwinLine({
    tags: DEFAULT_TAGS,
    seed: 5,
    speed: 1,
    stepMs: 1000,
    itemsPerMin: 15,
    startTs: T0,
    physics: { culletFraction: 0.2, wallThicknessM: 0.003 },
  });
  const s = tw.model.state;
  close(s.meltEquilibriumC, 1500, 1e-9, "steady at 1500 °C");
  close(s.seedIndex, 1, 1e-9, "seed index 1 at its own nominal");
  assert.is(s.culletFraction, 0.2);
  assert.ok(FURNACE.powerDelayMs === 4 * MIN);
});

test.run();
