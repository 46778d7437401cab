import type { TagConfig } from "../../config/schema.js";
import { SENSOR_FAULT_KINDS, type SensorFaultKind } from "../line-model.js";
import { Rng } from "../rng.js";
import type { Scenario, ScenarioEvent } from "../scenario/index.js";

/*
 * The default "dataset mix": what a dataset contains when no --scenario is given, so the GNN and the forecaster
 * have positives. It is an ordinary scenario (validated and run by the ScenarioRunner like any file), generated
 * from the seed alone:
 *
 * - sensor faults: starts form a Poisson process with a mean gap of 40 min; each picks a random tag (not one
 *   already faulty) and a random kind of the five, lasting 10–60 min (drifts 10–180 min: real sensor drift is
 *   slow; at least 3 sample periods of the tag):
 *   stuck (holds the last healthy reading), drift (reaches ±0.5–2 half-bands by the end), spike (magnitude 1.5–4
 *   half-bands, probability 0.05–0.3; a quarter of them single spikes), dropout, noise burst (σ 0.1–0.5 half-band);
 * - process disturbances: mean gap 4 h, each 30–150 min: batch change (difficulty 1.2–1.8, fining 0.5–1), cullet
 *   change (cullet 15–35 %), burner trip (loss 15–40 %, 10–60 min, recovery 5–20 min), lehr fan failure
 *   (+1.5–4 °C/min, 10–40 K uneven), humid weather (72–90 %);
 * - setpoint excursions: mean gap 6 h, a random lever moved 1–2 half-bands out of its band centre (clamped to
 *   its actuator range and kept SETPOINT_LIMIT_MARGIN of that range inside the tag's hard limits: an operator
 *   does not set burner power to 100 %, its trip limit), ramped over 2–20 min, held 20–120 min, then ramped
 *   back: operator moves that raise defect rates (belt too fast, mold too cold or hot, ...).
 * "Half-band" is half the width of the tag's normal band.
 */

const MIN_GAP = { sensorFault: 40, disturbance: 240, setpoint: 360 } as const;
/** A setpoint excursion stays this share of the actuator range inside the controlled tag's hard limits. */
export const SETPOINT_LIMIT_MARGIN = 0.05;

/** Where an excursion's target may go: the actuator range, shrunk to stay inside the tag's hard limits. */
export function excursionRange(tag: TagConfig): { min: number; max: number } {
  const act = tag.actuator!;
  const m = SETPOINT_LIMIT_MARGIN * (act.max - act.min);
  return { min: Math.max(act.min, tag.limits.min + m), max: Math.min(act.max, tag.limits.max - m) };
}

/** Parameters of the default mix, recorded in the manifest. */
export const DATASET_MIX = Object.freeze({
  name: "dataset_mix",
  mean_gap_min: MIN_GAP,
  sensor_fault_duration_min: [10, 60],
  drift_duration_min: [10, 180],
  disturbance_duration_min: [30, 150],
  setpoint_hold_min: [20, 120],
  setpoint_limit_margin: SETPOINT_LIMIT_MARGIN,
});

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The default dataset mix for `hours` of line with `tags`, as a scenario (deterministic per seed). */
export function datasetMix(seed: number, hours: number, tags: readonly TagConfig[]): Scenario {
  const endMin = hours * 60;
  const events: ScenarioEvent[] = [];
  const half = (t: TagConfig) => Math.max((t.normal.max - t.normal.min) / 2, 1e-6);
  const centre = (t: TagConfig) => (t.normal.min + t.normal.max) / 2;

  // Independent streams, so more events of one kind never shift the others.
  const rf = Rng.derive(seed, 0x6d697801);
  const busyUntil = new Map<string, number>();
  for (let m = rf.uniform(5, 40); m < endMin; m += -Math.log(1 - rf.next()) * MIN_GAP.sensorFault) {
    let tag: TagConfig | undefined;
    for (let tries = 0; tries < 5 && !tag; tries++) {
      const t = tags[Math.floor(rf.next() * tags.length)]!;
      if ((busyUntil.get(t.id) ?? -1) <= m) tag = t;
    }
    const kind = SENSOR_FAULT_KINDS[Math.floor(rf.next() * SENSOR_FAULT_KINDS.length)] as SensorFaultKind;
    const dur = round2(rf.uniform(10, 60));
    const sign = rf.next() < 0.5 ? -1 : 1;
    const scale = rf.uniform(0, 1);
    const single = rf.next() < 0.25;
    if (!tag) continue;
    const at_min = round2(m);
    // drifts stretch the same draw over 10–180 min (no extra draw, so the other events of a seed stay the same)
    const kindDur = kind === "drift" ? round2(10 + ((dur - 10) * 170) / 50) : dur;
    const duration_min = round2(Math.max(kindDur, (3 * tag.period_ms) / 60_000));
    const h = half(tag);
    const base = { type: "sensor_fault" as const, at_min, tag: tag.id };
    switch (kind) {
      case "stuck":
        events.push({ ...base, fault: "stuck", duration_min });
        break;
      case "drift":
        events.push({
          ...base,
          fault: "drift",
          duration_min,
          rate_per_min: (sign * h * (0.5 + 1.5 * scale)) / duration_min,
        });
        break;
      case "spike":
        if (single) events.push({ ...base, fault: "spike", magnitude: h * (1.5 + 2.5 * scale) });
        else {
          events.push({
            ...base,
            fault: "spike",
            duration_min,
            magnitude: h * (1.5 + 2.5 * scale),
            probability: round2(0.05 + 0.25 * rf.next()),
          });
        }
        break;
      case "dropout":
        events.push({ ...base, fault: "dropout", duration_min });
        break;
      case "noise_burst":
        events.push({ ...base, fault: "noise_burst", duration_min, sigma: h * (0.1 + 0.4 * scale) });
        break;
      default:
        kind satisfies never;
    }
    busyUntil.set(tag.id, at_min + (kind === "spike" && single ? 1 : duration_min));
  }

  const rd = Rng.derive(seed, 0x6d697802);
  for (let m = rd.uniform(30, 240); m < endMin; m += -Math.log(1 - rd.next()) * MIN_GAP.disturbance) {
    const at_min = round2(m);
    const duration_min = round2(rd.uniform(30, 150));
    const u = () => rd.next();
    switch (Math.floor(rd.next() * 5)) {
      case 0:
        events.push({
          type: "batch_change",
          at_min,
          duration_min,
          difficulty: round2(1.2 + 0.6 * u()),
          fining: round2(0.5 + 0.5 * u()),
        });
        break;
      case 1:
        events.push({ type: "cullet_change", at_min, duration_min, cullet_fraction: round2(0.15 + 0.2 * u()) });
        break;
      case 2:
        events.push({
          type: "burner_trip",
          at_min,
          duration_min: round2(10 + 50 * u()),
          power_loss: round2(0.15 + 0.25 * u()),
          recovery_min: round2(5 + 15 * u()),
        });
        break;
      case 3:
        events.push({
          type: "fan_failure",
          at_min,
          duration_min,
          cooling_rate_increase: round2(1.5 + 2.5 * u()),
          unevenness_k: round2(10 + 30 * u()),
        });
        break;
      default:
        events.push({ type: "humidity", at_min, duration_min, value: round2(72 + 18 * u()), ramp_min: 30 });
    }
  }

  const levers = tags.filter((t) => t.actuator);
  const rs = Rng.derive(seed, 0x6d697803);
  for (let m = rs.uniform(60, 360); m < endMin && levers.length > 0; m += -Math.log(1 - rs.next()) * MIN_GAP.setpoint) {
    const tag = levers[Math.floor(rs.next() * levers.length)]!;
    const range = excursionRange(tag);
    const sign = rs.next() < 0.5 ? -1 : 1;
    const target = centre(tag) + sign * half(tag) * (1 + rs.next());
    events.push({
      type: "setpoint",
      at_min: round2(m),
      tag: tag.id,
      value: round2(Math.min(range.max, Math.max(range.min, target))),
      ramp_min: round2(rs.uniform(2, 20)),
      duration_min: round2(rs.uniform(20, 120)),
    });
  }

  events.sort((a, b) => a.at_min - b.at_min);
  return {
    name: DATASET_MIX.name,
    description:
      "Default dataset mix (src/twin/dataset/mix.ts): random sensor faults on random tags, occasional process " +
      "disturbances and setpoint excursions, generated from the seed.",
    duration_hours: hours,
    seed,
    events,
  } as Scenario;
}
