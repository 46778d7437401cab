import type { TagConfig } from "../../config/schema.js";
import { GymError } from "./errors.js";
import { DATASET_MIX_SCENARIO, type GymScenarioPlan, resolveGymScenario, scenarioTypeError } from "./scenario.js";

/*
 * Environment options, as sent in `reset.options` (PROTOCOL.md). Every reset states its options in full: a key left
 * out takes its default, not the previous reset's value, so a reset is reproducible from its own message.
 */

/** Weights of the reward terms (all ≥ 0; the sign of each term is fixed by the formula). */
export interface RewardWeights {
  throughput: number;
  quality: number;
  energy: number;
  defects: number;
  band: number;
  actuator_limit: number;
  termination: number;
}

export interface GymOptions {
  /** Simulated seconds per env step (one decision of the policy). */
  control_interval_s: number;
  /** Simulated seconds per physics step inside an env step; must divide control_interval_s. */
  model_step_s: number;
  /** Episode length in simulated hours (truncation). */
  episode_hours: number;
  /** Items inspected per minute at nominal belt speed (counted in `items_*` info arrays). */
  items_per_min: number;
  /** Random start: each lever's setpoint is offset by up to ± this many max_steps before the warm-up. */
  start_spread: number;
  /** Simulated minutes the line runs (at the control interval) after the start offsets, before the first obs. */
  warmup_min: number;
  reward_weights: RewardWeights;
  /**
   * Scenario run in every episode from its first observation: a built-in name, a file path, an inline scenario
   * object, or "dataset_mix" (a fresh default dataset mix per episode seed); null = none.
   */
  scenario: string | Record<string, unknown> | null;
  /** With scenario "dataset_mix": events come this many times as often as in the default mix (1 = the mix). */
  mix_rate: number;
}

export const DEFAULT_REWARD_WEIGHTS: Readonly<RewardWeights> = Object.freeze({
  throughput: 1,
  quality: 0.5,
  energy: 0.5,
  defects: 0.25,
  band: 0.5,
  actuator_limit: 0.05,
  termination: 10,
});

/**
 * Defaults. 60 s per decision: the fastest levers (belt, forming pressure) settle within a minute, and the slow
 * ones (furnace, lehr) need tens of decisions to show, which is the horizon PPO handles well at γ ≈ 0.99.
 * 10 s physics step (the daemon steps at 1 s): at 60 s decisions the episode statistics match the 1 s step within
 * the seed-to-seed noise (bench/twin-gym.ts, "fidelity"), and it keeps ≥ 20 000 env-steps/s for 16 envs over the
 * pipe with room for the physics to grow; what it blurs is named in PROTOCOL.md ("Fidelity").
 */
export const DEFAULT_GYM_OPTIONS: Readonly<GymOptions> = Object.freeze({
  control_interval_s: 60,
  model_step_s: 10,
  episode_hours: 8,
  items_per_min: 15,
  start_spread: 2,
  warmup_min: 60,
  reward_weights: DEFAULT_REWARD_WEIGHTS,
  scenario: null,
  mix_rate: 1,
});

/** One line per option, for `hello` and `--help`. */
export const OPTION_DOCS: Readonly<Record<keyof GymOptions, string>> = {
  control_interval_s: "simulated seconds per env step (one policy decision); 1..3600",
  model_step_s: "physics step inside an env step, seconds; must divide control_interval_s; 0.1..600",
  episode_hours:
    "episode length in simulated hours (then truncated); > 0, at most 1000; default 8, or the scenario's duration_hours",
  items_per_min: "MIK-1 items inspected per minute at nominal belt speed (info arrays items_*); > 0",
  start_spread: "random start: lever setpoints offset by up to ± this many max_steps (0 = nominal start); 0..20",
  warmup_min: "simulated minutes run after the start offsets before the first observation; 0..1440",
  mix_rate: `with scenario "${DATASET_MIX_SCENARIO}" only: events this many times as often (the mix drawn for episode_hours × mix_rate, start times compressed into the episode, durations kept); 1..10`,
  reward_weights: `weights of the reward terms, each >= 0; keys ${Object.keys(DEFAULT_REWARD_WEIGHTS).join(", ")}`,
  scenario: `scenario attached at each episode's first observation: a built-in name (scenarios/*.yaml), a YAML/JSON file path, an inline scenario object, "${DATASET_MIX_SCENARIO}" (a fresh default dataset mix per episode seed) or null; its setpoint events write the PLC setpoint and win over the agent's change of that lever for the steps they write (PROTOCOL.md, "Scenarios")`,
};

const RANGES: Record<Exclude<keyof GymOptions, "reward_weights" | "scenario">, [number, number, boolean]> = {
  // [min, max, min exclusive]
  control_interval_s: [1, 3600, false],
  model_step_s: [0.1, 600, false],
  episode_hours: [0, 1000, true],
  items_per_min: [0, 10_000, true],
  start_spread: [0, 20, false],
  warmup_min: [0, 1440, false],
  mix_rate: [1, 10, false],
};

/** Validated `reset.options` and, when they name one, the scenario the episodes run. */
export interface GymReset {
  options: GymOptions;
  scenario: GymScenarioPlan | undefined;
}

/**
 * Validates `reset.options` (undefined → defaults). A scenario is resolved against `tags` (default: none given →
 * only the option's type is checked; the server always passes its dictionary). Throws GymError("bad_option")
 * naming the field.
 */
export function parseGymOptions(raw: unknown, tags?: readonly TagConfig[], levers?: readonly string[]): GymOptions {
  return parseGymReset(raw, tags, levers).options;
}

/** {@link parseGymOptions} plus the resolved scenario; `episode_hours` defaults to the scenario's duration_hours. */
export function parseGymReset(raw: unknown, tags?: readonly TagConfig[], levers?: readonly string[]): GymReset {
  if (raw === undefined || raw === null)
    return { options: { ...DEFAULT_GYM_OPTIONS, reward_weights: { ...DEFAULT_REWARD_WEIGHTS } }, scenario: undefined };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new GymError("bad_option", `reset.options must be an object, got ${describe(raw)}`);
  }
  const src = raw as Record<string, unknown>;
  const out: GymOptions = { ...DEFAULT_GYM_OPTIONS, reward_weights: { ...DEFAULT_REWARD_WEIGHTS } };
  for (const [key, value] of Object.entries(src)) {
    if (key === "reward_weights") {
      out.reward_weights = parseWeights(value);
      continue;
    }
    if (key === "scenario") {
      if (value !== null && typeof value !== "string" && (typeof value !== "object" || Array.isArray(value))) {
        throw scenarioTypeError(describe(value));
      }
      out.scenario = value as GymOptions["scenario"];
      continue;
    }
    const range = RANGES[key as keyof typeof RANGES];
    if (!range) {
      throw new GymError(
        "bad_option",
        `reset.options.${key} is not an option; valid: ${Object.keys(OPTION_DOCS).join(", ")}`,
      );
    }
    const [min, max, exclusive] = range;
    if (
      typeof value !== "number" ||
      !Number.isFinite(value) ||
      value > max ||
      (exclusive ? value <= min : value < min)
    ) {
      throw new GymError(
        "bad_option",
        `reset.options.${key} must be a number ${exclusive ? ">" : ">="} ${min} and <= ${max}, got ${describe(value)}`,
      );
    }
    (out as unknown as Record<string, number>)[key] = value;
  }
  if (out.mix_rate !== 1 && out.scenario !== DATASET_MIX_SCENARIO) {
    throw new GymError(
      "bad_option",
      `reset.options.mix_rate (${out.mix_rate}) applies to scenario "${DATASET_MIX_SCENARIO}" only; scenario is ${describe(out.scenario)}`,
    );
  }
  let scenario: GymScenarioPlan | undefined;
  if (out.scenario !== null && tags) {
    scenario = resolveGymScenario(out.scenario, tags, levers ?? tags.filter((t) => t.actuator).map((t) => t.id));
    const hours = scenario?.kind === "script" ? scenario.scenario.duration_hours : undefined;
    if (!("episode_hours" in src) && hours !== undefined && hours > 0) out.episode_hours = Math.min(hours, 1000);
  }
  // Whole physics steps per control interval, to a millisecond (floats like 0.1 s do not divide exactly).
  const controlMs = Math.round(out.control_interval_s * 1000);
  const stepMs = Math.round(out.model_step_s * 1000);
  if (stepMs <= 0 || controlMs % stepMs !== 0) {
    throw new GymError(
      "bad_option",
      `reset.options.model_step_s (${out.model_step_s}) must divide control_interval_s (${out.control_interval_s}) into whole steps`,
    );
  }
  if (Math.round((out.episode_hours * 3600) / out.control_interval_s) < 1) {
    throw new GymError(
      "bad_option",
      `reset.options.episode_hours (${out.episode_hours}) is shorter than one control interval (${out.control_interval_s} s)`,
    );
  }
  return { options: out, scenario };
}

function parseWeights(raw: unknown): RewardWeights {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new GymError("bad_option", `reset.options.reward_weights must be an object, got ${describe(raw)}`);
  }
  const out: RewardWeights = { ...DEFAULT_REWARD_WEIGHTS };
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!(key in DEFAULT_REWARD_WEIGHTS)) {
      throw new GymError(
        "bad_option",
        `reset.options.reward_weights.${key} is not a reward term; valid: ${Object.keys(DEFAULT_REWARD_WEIGHTS).join(", ")}`,
      );
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new GymError(
        "bad_option",
        `reset.options.reward_weights.${key} must be a finite number >= 0, got ${describe(value)}`,
      );
    }
    out[key as keyof RewardWeights] = value;
  }
  return out;
}

export function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return String(v);
}
