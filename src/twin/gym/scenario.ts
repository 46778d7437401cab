import type { TagConfig } from "../../config/schema.js";
import type { Issue } from "../../core/errors.js";
import { datasetMix } from "../dataset/mix.js";
import { loadScenario, parseScenario, type Scenario, ScenarioError } from "../scenario/index.js";
import { GymError } from "./errors.js";

/*
 * `reset.options.scenario` (PROTOCOL.md, "Scenarios"): a scripted scenario run in every episode, or the dataset
 * generator's default mix drawn afresh from each episode's seed. Resolved once per reset, here; each env attaches
 * its own ScenarioRunner to its line at scenario minute 0 (= the episode's first observation, after the warm-up).
 */

/** The reserved `scenario` value for the default dataset mix (src/twin/dataset/mix.ts), drawn per episode. */
export const DATASET_MIX_SCENARIO = "dataset_mix";

/** What an episode runs: one fixed scenario, or a fresh dataset mix per episode seed. */
export type GymScenarioPlan = { kind: "script"; scenario: Scenario; source: string } | { kind: "mix" };

/**
 * The scenario an episode seeded `seed` and `hours` long runs under `plan`. For the mix, `mixRate` > 1 packs more
 * events into the episode: the mix is drawn for `hours × mixRate` hours and its start times are divided by
 * `mixRate` (each event keeps its own duration and parameters), so events come `mixRate` times as often.
 */
export function episodeScenario(
  plan: GymScenarioPlan,
  seed: number,
  hours: number,
  tags: readonly TagConfig[],
  mixRate = 1,
): Scenario {
  if (plan.kind === "script") return plan.scenario;
  if (mixRate === 1) return datasetMix(seed, hours, tags);
  const mix = datasetMix(seed, hours * mixRate, tags);
  const events = mix.events.map((e) => ({ ...e, at_min: Math.round((e.at_min / mixRate) * 100) / 100 }));
  return { ...mix, duration_hours: hours, events };
}

/** The error for a `reset.options.scenario` of the wrong type (`got` describes the value). */
export function scenarioTypeError(got: string): GymError {
  return new GymError(
    "bad_option",
    `reset.options.scenario must be a scenario name, a file path, an inline scenario object, "${DATASET_MIX_SCENARIO}" or null, got ${got}`,
  );
}

/**
 * Resolves `reset.options.scenario`: a built-in name (`fan_failure`), a YAML/JSON file path, an inline scenario
 * object, or "dataset_mix". Checks it against the server's tag dictionary and its levers (a setpoint event must
 * name a lever the gym drives).
 * @throws GymError("bad_option") naming `reset.options.scenario` and the scenario's own field.
 */
export function resolveGymScenario(
  raw: unknown,
  tags: readonly TagConfig[],
  levers: readonly string[],
): GymScenarioPlan | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (raw === DATASET_MIX_SCENARIO) return { kind: "mix" };
  let scenario: Scenario;
  let source: string;
  try {
    if (typeof raw === "string") {
      if (raw.length === 0 || raw.length > 4096) throw new ScenarioError("scenario", [{ path: "/", message: "empty" }]);
      scenario = loadScenario(raw, tags);
      source = raw;
    } else if (typeof raw === "object" && !Array.isArray(raw)) {
      // JSON is YAML: the inline object goes through the same parser and checks as a file.
      scenario = parseScenario(JSON.stringify(raw), "inline scenario", tags);
      source = "inline";
    } else {
      throw scenarioTypeError(Array.isArray(raw) ? "an array" : typeof raw);
    }
  } catch (err) {
    if (err instanceof GymError) throw err;
    if (err instanceof ScenarioError) throw new GymError("bad_option", `reset.options.scenario: ${err.message}`);
    throw err;
  }
  const leverSet = new Set(levers);
  const issues: Issue[] = [];
  scenario.events.forEach((ev, i) => {
    if (ev.type === "setpoint" && !leverSet.has(ev.tag)) {
      issues.push({
        path: `/events/${i}/tag`,
        message: `"${ev.tag}" is not a gym lever; levers: ${levers.join(", ")}`,
      });
    }
  });
  if (issues.length) {
    throw new GymError("bad_option", `reset.options.scenario: ${new ScenarioError(source, issues).message}`);
  }
  return { kind: "script", scenario, source };
}

/** The reset reply's `scenario` field: what the episodes run. */
export function describeGymScenario(plan: GymScenarioPlan | undefined): Record<string, unknown> | null {
  if (!plan) return null;
  if (plan.kind === "mix") {
    return { name: DATASET_MIX_SCENARIO, per_episode: true, note: "drawn from each episode's seed (mix.ts)" };
  }
  const s = plan.scenario;
  return {
    name: s.name,
    source: plan.source,
    duration_hours: s.duration_hours ?? null,
    events: s.events.length,
    setpoint_events: s.events.filter((e) => e.type === "setpoint").length,
  };
}
