/*
 * Twin throughput: simulated seconds per wall second for DOMAIN.md's default tags, without and with a scenario
 * (mixed_shift, looped: setpoint ramps, disturbances and sensor faults active part of the time).
 * Usage: npx tsx bench/twin.ts [simulated hours, default 24]
 * The daemon needs ≥ 1000× real time from the sensor simulation (dataset generation and fast-forward tests).
 */
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { LineModel, TwinLine } from "../src/twin/index.js";
import { loadScenario, ScenarioRunner } from "../src/twin/scenario/index.js";

const hours = Number(process.argv[2] ?? 24);
const simMs = hours * 3_600_000;
const startTs = Date.UTC(2026, 0, 1);

function report(name: string, wallMs: number, extra = ""): void {
  const ratio = simMs / wallMs;
  process.stdout.write(
    `${name.padEnd(56)} ${wallMs.toFixed(0).padStart(6)} ms wall   ${ratio.toExponential(2)} sim-s/wall-s${extra}\n`,
  );
}

function benchModel(stepMs: number): void {
  const model = new LineModel({ tags: DEFAULT_TAGS, seed: 1, startTs });
  const steps = Math.floor(simMs / stepMs);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) model.step(stepMs);
  report(`process model only, step ${stepMs} ms`, performance.now() - t0);
}

const scenario = loadScenario("mixed_shift");

function benchTwin(stepMs: number, itemsPerMin: number, withScenario = false): void {
  const twin = new TwinLine({ tags: DEFAULT_TAGS, seed: 1, speed: 1, stepMs, itemsPerMin, startTs });
  if (withScenario) new ScenarioRunner(scenario, { loop: true }).attach(twin);
  let samples = 0;
  let items = 0;
  const t0 = performance.now();
  // Hour by hour, as dataset generation would, so memory stays bounded.
  for (let h = 0; h < hours; h++) {
    const out = twin.advance(3_600_000);
    samples += out.samples.length;
    items += out.inspections.length;
  }
  const wall = performance.now() - t0;
  report(
    `samples + inspections, step ${stepMs} ms, ${itemsPerMin}/min${withScenario ? ", mixed_shift" : ""}`,
    wall,
    `   (${((samples / wall) * 1000).toExponential(2)} samples/s, ${items} items)`,
  );
}

process.stdout.write(`twin bench: ${hours} simulated hours, ${DEFAULT_TAGS.length} tags\n`);
benchModel(1000); // warm-up for the JIT
benchModel(1000);
benchModel(100);
benchTwin(1000, 15);
benchTwin(1000, 15);
benchTwin(100, 15);
benchTwin(1000, 600);
benchTwin(1000, 15, true);
benchTwin(1000, 15, true);
benchTwin(100, 15, true);
