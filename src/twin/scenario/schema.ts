import { type Static, type TObject, Type } from "@sinclair/typebox";

/*
 * Scenario files: a named script of timed events (setpoint changes and ramps, process disturbances, sensor faults)
 * applied to the twin as simulated time advances. One TypeBox schema gives the TypeScript types and the JSON
 * Schema; every object is closed (unknown keys are errors) and keys are snake_case like the config file.
 * Times are minutes after the scenario starts.
 */

const closed = { additionalProperties: false } as const;

const at_min = Type.Number({ minimum: 0, description: "Start of the event, minutes after the scenario starts." });
const duration_min = Type.Number({
  minimum: 0,
  description: "How long the event lasts, minutes; absent: it lasts until the end of the run.",
});
const note = Type.String({ maxLength: 500, description: "Free text, for people reading the file." });
const tag = Type.String({ minLength: 1, maxLength: 200, description: "Tag id from the tag dictionary." });

export const SetpointEventSchema = Type.Object(
  {
    type: Type.Literal("setpoint"),
    at_min,
    tag,
    value: Type.Number({ description: "New setpoint, in the tag's unit; must lie in the tag's actuator range." }),
    ramp_min: Type.Optional(
      Type.Number({ minimum: 0, description: "Ramp linearly from the setpoint in force to `value` over this long." }),
    ),
    duration_min: Type.Optional({
      ...duration_min,
      description: "After this long, return to the setpoint in force before the event (ramping back likewise).",
    }),
    note: Type.Optional(note),
  },
  { ...closed, description: "Change (or ramp) a lever's setpoint, as an operator or the PLC would." },
);

export const BatchChangeEventSchema = Type.Object(
  {
    type: Type.Literal("batch_change"),
    at_min,
    duration_min: Type.Optional(duration_min),
    difficulty: Type.Optional(
      Type.Number({
        minimum: 0.5,
        maximum: 3,
        default: 1.3,
        description: "Relative melting difficulty of the new recipe: ×reaction heat, ×batch gas, ÷melting rate.",
      }),
    ),
    fining: Type.Optional(
      Type.Number({ minimum: 0, maximum: 2, default: 1, description: "Relative effect of the fining agent." }),
    ),
    note: Type.Optional(note),
  },
  { ...closed, description: "A new batch composition reaches the furnace (blanket in ~15 min, melt over ~90 min)." },
);

export const CulletChangeEventSchema = Type.Object(
  {
    type: Type.Literal("cullet_change"),
    at_min,
    duration_min: Type.Optional(duration_min),
    cullet_fraction: Type.Number({ minimum: 0, maximum: 0.95, description: "New cullet share of the batch, 0..0.95." }),
    note: Type.Optional(note),
  },
  { ...closed, description: "The cullet share of the batch changes (less cullet: more reaction heat and batch gas)." },
);

export const BurnerTripEventSchema = Type.Object(
  {
    type: Type.Literal("burner_trip"),
    at_min,
    duration_min: Type.Optional({ ...duration_min, description: "Minutes until the burners are relit." }),
    power_loss: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        default: 0.3,
        description: "Share of the firing lost while tripped, 0..1.",
      }),
    ),
    recovery_min: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1440, default: 10, description: "Ramp back to full firing after relight." }),
    ),
    note: Type.Optional(note),
  },
  { ...closed, description: "Burners trip: the actual burner power drops, then recovers after relight." },
);

export const FanFailureEventSchema = Type.Object(
  {
    type: Type.Literal("fan_failure"),
    at_min,
    duration_min: Type.Optional({ ...duration_min, description: "Minutes until the fan is repaired." }),
    cooling_rate_increase: Type.Optional(
      Type.Number({ minimum: 0, maximum: 10, default: 3, description: "Rise of the lehr cooling rate, °C/min." }),
    ),
    unevenness_k: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 100,
        default: 30,
        description: "Side-to-side temperature difference of the ware from uneven cooling, K.",
      }),
    ),
    note: Type.Optional(note),
  },
  { ...closed, description: "A lehr fan fails: cooling gets faster and uneven (residual stress, cracks)." },
);

export const HumidityEventSchema = Type.Object(
  {
    type: Type.Literal("humidity"),
    at_min,
    duration_min: Type.Optional(duration_min),
    value: Type.Number({ minimum: 0, maximum: 100, description: "New mean ambient relative humidity, %." }),
    ramp_min: Type.Optional(Type.Number({ minimum: 0, default: 30, description: "Ramp to the new mean, minutes." })),
    note: Type.Optional(note),
  },
  { ...closed, description: "The weather changes the ambient humidity's mean (stains above 70 %)." },
);

const faultBase = {
  type: Type.Literal("sensor_fault"),
  at_min,
  tag,
  duration_min: Type.Optional({ ...duration_min, description: "How long the sensor is faulty." }),
  note: Type.Optional(note),
};

export const StuckFaultEventSchema = Type.Object(
  {
    ...faultBase,
    fault: Type.Literal("stuck"),
    value: Type.Optional(Type.Number({ description: "Reading while stuck; default: the last healthy reading." })),
  },
  { ...closed, description: "The sensor keeps reporting one value." },
);

export const DriftFaultEventSchema = Type.Object(
  {
    ...faultBase,
    fault: Type.Literal("drift"),
    rate_per_min: Type.Number({ description: "Drift of the reading, tag unit per minute." }),
  },
  { ...closed, description: "The reading drifts away from the true value at a constant rate." },
);

export const SpikeFaultEventSchema = Type.Object(
  {
    ...faultBase,
    fault: Type.Literal("spike"),
    magnitude: Type.Number({ description: "Size of each spike, tag unit (sign random)." }),
    probability: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: "Share of samples spiked during the fault (default 0.2; without duration_min: one spike).",
      }),
    ),
  },
  { ...closed, description: "Isolated outliers: one spike, or random spikes over the duration." },
);

export const DropoutFaultEventSchema = Type.Object(
  { ...faultBase, fault: Type.Literal("dropout") },
  { ...closed, description: "The sensor sends no samples." },
);

export const NoiseBurstFaultEventSchema = Type.Object(
  {
    ...faultBase,
    fault: Type.Literal("noise_burst"),
    sigma: Type.Number({ exclusiveMinimum: 0, description: "Standard deviation of the added noise, tag unit." }),
  },
  { ...closed, description: "Extra white noise on the reading." },
);

/** Sensor-fault events by `fault`. */
export const SENSOR_FAULT_EVENT_SCHEMAS = {
  stuck: StuckFaultEventSchema,
  drift: DriftFaultEventSchema,
  spike: SpikeFaultEventSchema,
  dropout: DropoutFaultEventSchema,
  noise_burst: NoiseBurstFaultEventSchema,
} as const satisfies Record<string, TObject>;

/** Every other event type by `type`. */
export const EVENT_SCHEMAS = {
  setpoint: SetpointEventSchema,
  batch_change: BatchChangeEventSchema,
  cullet_change: CulletChangeEventSchema,
  burner_trip: BurnerTripEventSchema,
  fan_failure: FanFailureEventSchema,
  humidity: HumidityEventSchema,
} as const satisfies Record<string, TObject>;

export const EVENT_TYPES = [...Object.keys(EVENT_SCHEMAS), "sensor_fault"] as const;

export const ScenarioEventSchema = Type.Union([
  ...Object.values(EVENT_SCHEMAS),
  ...Object.values(SENSOR_FAULT_EVENT_SCHEMAS),
]);

export const ScenarioSchema = Type.Object(
  {
    name: Type.String({
      pattern: "^[a-z][a-z0-9_]*$",
      maxLength: 64,
      description: "Scenario name: lower-case letters, digits and _.",
    }),
    description: Type.Optional(Type.String({ maxLength: 2000, description: "What the scenario shows." })),
    duration_hours: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 8760,
        description: "Length of the scenario: the default run length, and the period when it loops.",
      }),
    ),
    seed: Type.Optional(Type.Integer({ description: "Suggested seed (the command line's --seed overrides it)." })),
    events: Type.Array(ScenarioEventSchema, { maxItems: 10_000, description: "Timed events, in any order." }),
  },
  { ...closed, $id: "glassd-twin-scenario", title: "glassd twin scenario" },
);

export type SetpointEvent = Static<typeof SetpointEventSchema>;
export type SensorFaultEvent =
  | Static<typeof StuckFaultEventSchema>
  | Static<typeof DriftFaultEventSchema>
  | Static<typeof SpikeFaultEventSchema>
  | Static<typeof DropoutFaultEventSchema>
  | Static<typeof NoiseBurstFaultEventSchema>;
export type ScenarioEvent = Static<typeof ScenarioEventSchema>;
export type Scenario = Static<typeof ScenarioSchema>;
