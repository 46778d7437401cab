/*
 * Gym throughput: env-steps/s of `glassd twin gym` for N environments (default 16), measured end to end over the
 * pipe from a client process — this bench spawns the server and drives it exactly as the Python client does
 * (encode the [N, act_dim] float32 actions in a frame, write, read the reply frame, decode obs/reward/flags/terms) —
 * next to the raw baseline: the same environments stepped in-process without the protocol (GlassVecEnv.checkActions
 * + step, what the server does per request minus framing and the pipe).
 *
 * Rows: the default physics step (10 s) and, for the fidelity/speed trade-off, the daemon's 1 s step and 5 s; all
 * at the default 60 s control interval. Actions are seeded uniform noise in [−1, 1] (the same sequence on both
 * sides), so setpoints wander and sometimes sit at actuator limits — like an untrained PPO policy.
 *
 * Then the fidelity of the physics step: 16 envs run one 8 h episode of a fixed stress schedule (belt +40 m/min,
 * burner −20 %, cooling +3 °C/min, forming pressure and mold steps) at physics steps of 1 s (the daemon's), 5, 10
 * and 20 s, compared per env step with the 1 s run: mean |Δ reward| and |Δ defective %| of the 16-env mean. A second
 * set of seeds at 1 s gives the noise floor (the same comparison between two 1 s runs that differ only by seed);
 * differences below it are not a fidelity cost anyone could measure from episode statistics.
 *
 * Then the cost of a scenario (reset.options.scenario): the same stepping with mixed_shift and with a fresh dataset
 * mix per episode, against no scenario measured in the same run.
 *
 * Usage: npx tsx bench/twin-gym.ts [--envs 16] [--rounds 3] [--seconds 1.5] [--dist] [--no-fidelity] [--no-scenarios]
 *   --dist: spawn `node dist/main.js` (after `npm run build`) instead of `node --import tsx src/main.ts`
 * Target (issue 3): ≥ 20 000 env-steps/s for 16 envs over the pipe at the defaults. Prints figures; asserts nothing.
 */
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import {
  buildGymSpec,
  DEFAULT_GYM_OPTIONS,
  GlassVecEnv,
  GymClient,
  parseGymOptions,
  parseGymReset,
} from "../src/twin/gym/index.js";
import { Rng } from "../src/twin/index.js";
import { best, median, rate, table, us } from "./lib/index.js";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!(v > 0)) throw new RangeError(`--${name} must be a positive number`);
  return v;
}

const N = Math.floor(arg("envs", 16));
const SECONDS = arg("seconds", 1.5);
const ROUNDS = Math.floor(arg("rounds", 3));
const useDist = process.argv.includes("--dist");
const spec = buildGymSpec(DEFAULT_TAGS);
const A = spec.actDim;

/** A ring of action batches, generated once so both sides step the same sequence and neither pays for the RNG. */
const RING = 256;
const actions = (() => {
  const rng = new Rng(2026);
  return Array.from({ length: RING }, () => Float32Array.from({ length: N * A }, () => rng.uniform(-1, 1)));
})();

/** Env-steps/s over `seconds` of stepping, after `warm` warm-up steps. */
type Stepper = (k: number) => void | Promise<void>;
async function measure(step: Stepper, seconds: number, warm: number): Promise<number> {
  for (let k = 0; k < warm; k++) await step(k);
  let k = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  for (; performance.now() < deadline; k++) await step(k);
  return (k * N * 1000) / (performance.now() - t0);
}

function inProcess(modelStepS: number, scenario?: string): Stepper {
  const vec = new GlassVecEnv(spec);
  const raw = scenario === undefined ? { model_step_s: modelStepS } : { model_step_s: modelStepS, scenario };
  const reset = parseGymReset(
    raw,
    spec.tags,
    spec.levers.map((l) => l.tag),
  );
  vec.reset(N, 1, reset.options, reset.scenario);
  const shape = [N, A];
  return (k) => {
    const a = actions[k % RING]!;
    vec.checkActions(a, shape);
    vec.step(a);
  };
}

async function overPipe(modelStepS: number, scenario?: string): Promise<{ step: Stepper; client: GymClient }> {
  const dist = useDist && existsSync("dist/main.js");
  const client = GymClient.spawn({
    args: dist
      ? ["dist/main.js", "twin", "gym", "--log-level", "warn"]
      : ["--import", "tsx", "src/main.ts", "twin", "gym", "--log-level", "warn"],
  });
  const hello = await client.request({ type: "hello", version: 1 });
  if (hello.header.type !== "hello") throw new Error(`hello failed: ${JSON.stringify(hello.header)}`);
  const options = scenario === undefined ? { model_step_s: modelStepS } : { model_step_s: modelStepS, scenario };
  const reset = await client.request({ type: "reset", n_envs: N, seed: 1, options });
  if (reset.header.type !== "reset") throw new Error(`reset failed: ${JSON.stringify(reset.header)}`);
  return {
    client,
    step: async (k) => {
      const r = await client.step(actions[k % RING]!, N, A);
      if (r.header.type !== "step") throw new Error(`step failed: ${JSON.stringify(r.header)}`);
    },
  };
}

process.stdout.write(
  `twin gym bench: ${N} envs, 60 s control interval, ${ROUNDS} interleaved rounds of ${SECONDS} s per side, server: ${useDist ? "node dist/main.js" : "node --import tsx src/main.ts"}\n` +
    "(best and median of the rounds: the machine is shared, and a neighbour's load only ever slows a round down)\n",
);
/** Interleaved rounds of the in-process env and the same env over the pipe: env-steps/s per round for each. */
async function rounds(stepS: number, scenario?: string): Promise<{ rawRates: number[]; pipeRates: number[] }> {
  const raw = inProcess(stepS, scenario);
  const pipe = await overPipe(stepS, scenario);
  const rawRates: number[] = [];
  const pipeRates: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      rawRates.push(await measure(raw, SECONDS, r === 0 ? 200 : 0));
      pipeRates.push(await measure(pipe.step, SECONDS, r === 0 ? 200 : 0));
    }
  } finally {
    await pipe.client.end();
  }
  return { rawRates, pipeRates };
}

const rows: string[][] = [];
const defaultStep = DEFAULT_GYM_OPTIONS.model_step_s;
for (const stepS of [defaultStep, 5, 1]) {
  const { rawRates, pipeRates } = await rounds(stepS);
  const rawBest = best(rawRates, true);
  const pipeBest = best(pipeRates, true);
  rows.push([
    `${stepS} s${stepS === defaultStep ? " (default)" : ""}`,
    rate(rawBest),
    rate(median(rawRates)),
    rate(pipeBest),
    rate(median(pipeRates)),
    `${((pipeBest / rawBest) * 100).toFixed(0)} %`,
    us(1000 / (pipeBest / N)),
    pipeBest >= 20_000 ? "yes" : "no",
  ]);
}
process.stdout.write(
  table(
    ["physics step", "in-process best", "median", "over the pipe best", "median", "pipe/raw", "round trip", "≥ 20k"],
    rows,
  ),
);

// --- cost of a scenario (reset.options.scenario): the same envs with a ScenarioRunner attached per episode ---

if (!process.argv.includes("--no-scenarios")) {
  const scnRows: string[][] = [];
  let noneBest = 0;
  for (const scenario of [undefined, "mixed_shift", "dataset_mix"]) {
    const { rawRates, pipeRates } = await rounds(defaultStep, scenario);
    const rawBest = best(rawRates, true);
    if (scenario === undefined) noneBest = rawBest;
    scnRows.push([
      scenario ?? "none (baseline)",
      rate(rawBest),
      rate(median(rawRates)),
      `${((rawBest / noneBest) * 100).toFixed(0)} %`,
      rate(best(pipeRates, true)),
      rate(median(pipeRates)),
    ]);
  }
  process.stdout.write(
    `\nscenarios: ${N} envs at the default step, episodes auto-reset (runner attached per episode)\n`,
  );
  process.stdout.write(
    table(["scenario", "in-process best", "median", "vs none", "over the pipe best", "median"], scnRows),
  );
}

// --- fidelity of the physics step ---

const EPISODE = 480;
const lever = (tag: string) => spec.levers.findIndex((l) => l.tag === tag);
/** Step k of the stress schedule: a few full-scale moves of each kind of lever, each reverted or left to settle. */
function schedule(k: number, a: Float32Array): void {
  a.fill(0);
  const moves: [string, number, number, number][] = [
    // [lever, first step, steps, action]
    ["belt_speed", 60, 4, 1],
    ["belt_speed", 90, 4, -1],
    ["furnace_power", 120, 4, -1],
    ["cooling_rate", 180, 6, 1],
    ["furnace_power", 240, 4, 1],
    ["forming_pressure", 300, 3, 1],
    ["forming_pressure", 310, 3, -1],
    ["mold_temperature", 360, 6, -1],
  ];
  for (const [tag, from, n, v] of moves) {
    if (k < from || k >= from + n) continue;
    for (let i = 0; i < N; i++) a[i * A + lever(tag)] = v;
  }
}

function episode(stepS: number, seed: number): { reward: number[]; defective: number[]; wallMs: number } {
  const vec = new GlassVecEnv(spec);
  vec.reset(N, seed, parseGymOptions({ model_step_s: stepS, start_spread: 0 }));
  const a = new Float32Array(N * A);
  const reward: number[] = [];
  const defective: number[] = [];
  const t0 = performance.now();
  for (let k = 0; k < EPISODE; k++) {
    schedule(k, a);
    vec.step(a);
    let r = 0;
    let d = 0;
    for (let i = 0; i < N; i++) {
      r += vec.reward[i]!;
      d += vec.obs[i * spec.obsDim + spec.offsets.defective]!;
    }
    reward.push(r / N);
    defective.push(d / N);
  }
  return { reward, defective, wallMs: performance.now() - t0 };
}

if (!process.argv.includes("--no-fidelity")) {
  const meanAbs = (x: number[], y: number[]) => x.reduce((s, v, k) => s + Math.abs(v - y[k]!), 0) / x.length;
  const sum = (x: number[]) => x.reduce((s, v) => s + v, 0);
  const ref = episode(1, 100);
  const fid: string[][] = [];
  const row = (name: string, e: ReturnType<typeof episode>) =>
    fid.push([
      name,
      `${e.wallMs.toFixed(0)} ms`,
      sum(e.reward).toFixed(1),
      (sum(e.defective) / EPISODE).toFixed(3),
      meanAbs(e.reward, ref.reward).toFixed(4),
      meanAbs(e.defective, ref.defective).toFixed(4),
    ]);
  row("1 s (reference)", ref);
  row("1 s, other seeds (noise floor)", episode(1, 200));
  for (const stepS of [5, 10, 20]) row(`${stepS} s${stepS === defaultStep ? " (default)" : ""}`, episode(stepS, 100));
  process.stdout.write(
    `\nfidelity: ${N} envs × one ${EPISODE}-step episode of the stress schedule, 16-env means per step vs the 1 s run\n`,
  );
  process.stdout.write(
    table(["physics step", "wall", "return", "mean defective %", "mean |Δ reward|", "mean |Δ defective %|"], fid),
  );
}
