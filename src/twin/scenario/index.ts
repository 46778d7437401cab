/*
 * Twin scenarios: named, scriptable event timelines (YAML/JSON, TypeBox-validated) applied to the twin as
 * simulated time advances. Public API only.
 */
export {
  BUILTIN_SCENARIO_DIR,
  type BuiltinScenario,
  builtinScenarios,
  loadScenario,
  parseScenario,
  ScenarioError,
  scenarioSchemaIssues,
  scenarioTagIssues,
} from "./load.js";
export { type ActiveScenarioEvent, ScenarioRunner, type ScenarioRunnerOptions } from "./runner.js";
export {
  type Scenario,
  type ScenarioEvent,
  ScenarioEventSchema,
  ScenarioSchema,
  type SensorFaultEvent,
  type SetpointEvent,
} from "./schema.js";
export {
  formatScenarioRun,
  type RunScenarioOptions,
  runScenario,
  type ScenarioHour,
  type ScenarioRunResult,
} from "./summary.js";
