import type { TagConfig } from "./schema.js";

/**
 * DOMAIN.md's default tag dictionary for a soda-lime container-glass line ("Line_A"). Sampling periods are the
 * fast end of each range so the twin exercises the pipeline; a real line overrides them in its config file.
 * `max_rate_per_s` is the fastest physically credible change — faster jumps are sensor faults (quarantined).
 * `actuator` marks a lever: the setpoint range the PLC accepts and the largest single step.
 */
export const DEFAULT_TAGS: TagConfig[] = [
  tag("batch_flow", "kg/h", "batch", "Batch feeder mass flow", [1700, 2300], [0, 5000], 10_000, 200, {
    actuator: { min: 1000, max: 3500, max_step: 200 },
  }),
  tag(
    "furnace_temperature",
    "°C",
    "furnace",
    "Melt temperature in the melting furnace",
    [1450, 1550],
    [1000, 1800],
    1_000,
    2,
  ),
  tag("furnace_pressure", "kPa", "furnace", "Furnace crown pressure", [10, 20], [0, 50], 60_000, 1),
  tag("melt_level", "mm", "furnace", "Glass melt level", [2300, 2700], [1000, 4000], 300_000, 2),
  tag("furnace_power", "%", "furnace", "Burner power (fuel flow) setpoint feedback", [70, 100], [0, 100], 1_000, 5, {
    actuator: { min: 40, max: 100, max_step: 5 },
  }),
  tag("o2_percent", "%", "furnace", "O2 in flue gas", [4.5, 5.5], [0, 21], 600_000, 0.05),
  tag("co2_percent", "%", "furnace", "CO2 in flue gas", [9, 11], [0, 20], 600_000, 0.05),
  tag("belt_speed", "m/min", "forming", "Conveyor belt speed", [130, 170], [50, 300], 1_000, 10, {
    actuator: { min: 80, max: 220, max_step: 10 },
  }),
  tag("mold_temperature", "°C", "forming", "Mold temperature", [300, 340], [200, 500], 1_000, 2, {
    actuator: { min: 250, max: 420, max_step: 10 },
  }),
  tag("forming_pressure", "MPa", "forming", "Forming (pressing) pressure", [40, 60], [10, 100], 1_000, 15, {
    actuator: { min: 20, max: 80, max_step: 5 },
  }),
  tag("annealing_zone1", "°C", "annealing", "Annealing lehr zone 1 temperature", [595, 605], [400, 700], 2_000, 1, {
    actuator: { min: 500, max: 650, max_step: 5 },
  }),
  tag("annealing_zone2", "°C", "annealing", "Annealing lehr zone 2 temperature", [545, 555], [400, 700], 2_000, 1, {
    actuator: { min: 450, max: 600, max_step: 5 },
  }),
  tag("annealing_zone3", "°C", "annealing", "Annealing lehr zone 3 temperature", [495, 505], [400, 700], 2_000, 1, {
    actuator: { min: 400, max: 560, max_step: 5 },
  }),
  tag("cooling_rate", "°C/min", "annealing", "Lehr cooling rate", [2, 5], [0, 15], 2_000, 0.5, {
    actuator: { min: 1, max: 8, max_step: 0.5 },
  }),
  tag("humidity", "%", "environment", "Ambient relative humidity", [30, 70], [0, 100], 900_000, 0.05),
];

function tag(
  id: string,
  unit: string,
  stage: TagConfig["stage"],
  description: string,
  normal: [number, number],
  limits: [number, number],
  period_ms: number,
  max_rate_per_s: number,
  extra: Partial<TagConfig> = {},
): TagConfig {
  return {
    id,
    unit,
    stage,
    description,
    normal: { min: normal[0], max: normal[1] },
    limits: { min: limits[0], max: limits[1] },
    period_ms,
    max_rate_per_s,
    sources: {
      opcua: { node_id: `ns=1;s=Line_A.${id}` },
      mqtt: { topic: `glass/Line_A/sensors/${id}`, path: "value" },
    },
    ...extra,
  };
}
