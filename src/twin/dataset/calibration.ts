import type { TagConfig } from "../../config/schema.js";
import { CORRELATION_THRESHOLD, type CorrelatedPair, correlatedPairs } from "../../features/graph.js";
import { Rng } from "../rng.js";
import { type Scenario, type ScenarioEvent, ScenarioRunner } from "../scenario/index.js";
import { TwinLine } from "../twin-line.js";

/*
 * The correlation edges of the sensor graph come from a normal-operation calibration run: the twin with no sensor
 * faults and no disturbances, where an operator moves each lever now and then to a random value inside its normal
 * band (every 1–3 h, 10 min ramps). Without such moves the twin's tags only wander independently and nothing
 * correlates; with them the couplings show (burner power ↔ melt temperature, O2, CO2, crown pressure). Each tag is
 * averaged into 10-minute bins (last value carried forward through bins without a sample), and pairs with
 * Pearson |r| ≥ 0.6 in both halves of the run become candidates (those already linked by the topology keep their topology edge). Seed and
 * length are fixed, so the graph is a property of the twin and the tag dictionary, not of a dataset's seed.
 */

export const CALIBRATION = Object.freeze({
  seed: 20_260_101,
  hours: 48,
  bin_s: 600,
  threshold: CORRELATION_THRESHOLD,
  start_ts: Date.UTC(2026, 0, 1),
  lever_move_every_min: [60, 180] as const,
  lever_ramp_min: 10,
});

const cache = new Map<string, CorrelatedPair[]>();

/** The calibration run's lever moves: each lever to a random point of its normal band's middle 70 %. */
export function calibrationScenario(tags: readonly TagConfig[]): Scenario {
  const rng = Rng.derive(CALIBRATION.seed, 0xca1b);
  const events: ScenarioEvent[] = [];
  const [lo, hi] = CALIBRATION.lever_move_every_min;
  for (const t of tags) {
    if (!t.actuator) continue;
    for (let m = rng.uniform(0, hi); m < CALIBRATION.hours * 60; m += rng.uniform(lo, hi)) {
      const v = t.normal.min + (t.normal.max - t.normal.min) * (0.15 + 0.7 * rng.next());
      const value = Math.min(t.actuator.max, Math.max(t.actuator.min, Math.round(v * 100) / 100));
      events.push({ type: "setpoint", at_min: Math.round(m), tag: t.id, value, ramp_min: CALIBRATION.lever_ramp_min });
    }
  }
  events.sort((a, b) => a.at_min - b.at_min);
  return { name: "graph_calibration", duration_hours: CALIBRATION.hours, events } as Scenario;
}

/** Strongly correlated tag pairs in normal operation of the twin with `tags` (cached per dictionary). */
export function calibrationPairs(tags: readonly TagConfig[], stepMs = 1000, itemsPerMin = 15): CorrelatedPair[] {
  const key = JSON.stringify([tags, stepMs, itemsPerMin]);
  const hit = cache.get(key);
  if (hit) return hit;
  const twin = new TwinLine({
    tags: tags.slice(),
    seed: CALIBRATION.seed,
    speed: 1,
    stepMs,
    itemsPerMin,
    startTs: CALIBRATION.start_ts,
  });
  new ScenarioRunner(calibrationScenario(tags)).attach(twin);
  const binMs = CALIBRATION.bin_s * 1000;
  const bins = Math.floor((CALIBRATION.hours * 3_600_000) / binMs);
  const pos = new Map(tags.map((t, i) => [t.id, i]));
  const series = tags.map(() => new Float64Array(bins).fill(Number.NaN));
  const sum = new Float64Array(tags.length);
  const cnt = new Float64Array(tags.length);
  const last = new Float64Array(tags.length).fill(Number.NaN);
  for (let b = 0; b < bins; b++) {
    sum.fill(0);
    cnt.fill(0);
    for (const s of twin.advance(binMs).samples) {
      const i = pos.get(s.tag)!;
      sum[i]! += s.value as number;
      cnt[i]!++;
    }
    for (let i = 0; i < tags.length; i++) {
      if (cnt[i]! > 0) last[i] = sum[i]! / cnt[i]!;
      series[i]![b] = last[i]!;
    }
  }
  const pairs = correlatedPairs(
    tags.map((t) => t.id),
    series,
    CALIBRATION.threshold,
  );
  cache.set(key, pairs);
  return pairs;
}
