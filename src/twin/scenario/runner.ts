import type { TagConfig } from "../../config/schema.js";
import type { DisturbanceSpec, LineModel, SensorFaultSpec } from "../line-model.js";
import type { TwinLine } from "../twin-line.js";
import { ScenarioError, scenarioTagIssues } from "./load.js";
import type { Scenario, ScenarioEvent, SetpointEvent } from "./schema.js";

const MIN = 60_000;

/** Options of {@link ScenarioRunner}. */
export interface ScenarioRunnerOptions {
  /**
   * Start over every `duration_hours` (for a daemon that runs for days on one scenario). At each restart the
   * runner clears the disturbances and sensor faults on the model and restores the setpoints it found at attach.
   */
  loop?: boolean;
}

/** An event in force at some time: its index in the file and the event. */
export interface ActiveScenarioEvent {
  index: number;
  event: ScenarioEvent;
}

/** A setpoint being moved: linear from `from` at `t0` to `to` at `t0 + durMs`. */
interface Ramp {
  tag: string;
  from: number;
  to: number;
  t0: number;
  durMs: number;
}

/** One timed action, in scenario time (ms after the start). */
interface Action {
  atMs: number;
  /**
   * Due in the step that ends exactly at `atMs` too. Disturbances and sensor faults carry their exact times, so
   * registering them a step ahead lets the model catch a sample taken at the start time; a setpoint change instead
   * acts from the step that starts at its time (it holds over whole steps).
   */
  inclusive: boolean;
  /** Index of the event in the file (ties keep file order). */
  index: number;
  apply: (startTs: number) => void;
}

/**
 * Applies a {@link Scenario} to a line model as simulated time advances: it hooks the model's step, and at the
 * start of each step applies the events due before the step ends — setpoint changes through the PLC path
 * (`setSetpoint`, clamped like any write), ramps one step at a time, disturbances and sensor faults with their
 * exact start and end times (the model evaluates those per step and per sample). Everything depends on simulated
 * time only, so the same seed and scenario give the same line, sample for sample.
 */
export class ScenarioRunner {
  readonly scenario: Scenario;
  private readonly loop: boolean;
  private readonly periodMs: number;
  private model: LineModel | undefined;
  private remove: (() => void) | undefined;
  private t0 = 0;
  private cycleStart = 0;
  private actions: Action[] = [];
  private cursor = 0;
  private ramps: Ramp[] = [];
  private initialSetpoints: Record<string, number> = {};

  constructor(scenario: Scenario, opts: ScenarioRunnerOptions = {}) {
    this.scenario = scenario;
    this.loop = opts.loop ?? false;
    this.periodMs = (scenario.duration_hours ?? 0) * 60 * MIN;
    if (this.loop && !(this.periodMs > 0)) {
      throw new ScenarioError(scenario.name, [{ path: "/duration_hours", message: "is required to loop a scenario" }]);
    }
  }

  /**
   * Starts the scenario on `target` at its current simulated time (scenario minute 0). Checks the scenario's tags
   * against the target's dictionary first.
   * @throws ScenarioError naming the event and field when a tag is unknown or not writable there.
   */
  attach(target: TwinLine | LineModel): this {
    if (this.model) throw new Error(`ScenarioRunner: scenario "${this.scenario.name}" is already attached`);
    const model = "model" in target ? target.model : target;
    const issues = scenarioTagIssues(this.scenario, model.tags as TagConfig[]);
    if (issues.length) throw new ScenarioError(this.scenario.name, issues);
    this.model = model;
    this.t0 = model.now();
    this.cycleStart = this.t0;
    this.initialSetpoints = model.setpoints();
    this.actions = this.compile(model);
    this.cursor = 0;
    this.remove = model.onStep((tStart, tEnd) => this.onStep(tStart, tEnd));
    return this;
  }

  /** Stops applying events (what was applied stays). */
  detach(): void {
    this.remove?.();
    this.remove = undefined;
    this.model = undefined;
  }

  /** Simulated time at which the scenario started (ms since the epoch). */
  get startTs(): number {
    return this.t0;
  }

  /**
   * Events in force at `ts` (default: the model's now): a disturbance or fault within its duration (a burner trip
   * until recovered), a setpoint change while ramping or held for its duration, an instantaneous event within the
   * minute after it. For labels and summaries.
   */
  activeEvents(ts = this.model?.now() ?? this.t0): ActiveScenarioEvent[] {
    const base =
      this.loop && ts >= this.t0 ? this.t0 + Math.floor((ts - this.t0) / this.periodMs) * this.periodMs : this.t0;
    const m = (ts - base) / MIN;
    const out: ActiveScenarioEvent[] = [];
    this.scenario.events.forEach((event, index) => {
      let end = event.at_min + (event.duration_min ?? Number.POSITIVE_INFINITY);
      if (event.type === "burner_trip") end += event.recovery_min ?? 10;
      if (event.type === "setpoint" && event.duration_min === undefined) end = event.at_min + (event.ramp_min || 1);
      if (event.type === "sensor_fault" && event.fault === "spike" && event.duration_min === undefined) {
        end = event.at_min + 1;
      }
      if (m >= event.at_min && m < end) out.push({ index, event });
    });
    return out;
  }

  private onStep(tStart: number, tEnd: number): void {
    const model = this.model!;
    if (this.loop && tStart >= this.cycleStart + this.periodMs) {
      // New cycle: back to the line as found at attach, then replay.
      this.cycleStart += this.periodMs * Math.floor((tStart - this.cycleStart) / this.periodMs);
      model.clearDisturbances();
      model.clearSensorFaults();
      this.ramps = [];
      for (const [tag, v] of Object.entries(this.initialSetpoints)) model.setSetpoint(tag, v);
      this.cursor = 0;
    }
    const acts = this.actions;
    while (this.cursor < acts.length) {
      const a = acts[this.cursor]!;
      const at = this.cycleStart + a.atMs;
      if (!(at < tEnd || (a.inclusive && at === tEnd))) break;
      this.cursor++;
      a.apply(this.cycleStart);
    }
    if (this.ramps.length === 0) return;
    let keep = 0;
    for (const r of this.ramps) {
      const f = r.durMs > 0 ? Math.min(Math.max((tEnd - r.t0) / r.durMs, 0), 1) : 1;
      model.setSetpoint(r.tag, r.from + (r.to - r.from) * f);
      if (f < 1) this.ramps[keep++] = r;
    }
    this.ramps.length = keep;
  }

  private compile(model: LineModel): Action[] {
    const acts: Action[] = [];
    const add = (atMin: number, index: number, apply: (start: number) => void, inclusive = true) =>
      acts.push({ atMs: atMin * MIN, index, apply, inclusive });
    this.scenario.events.forEach((ev, index) => {
      const ms = (min: number | undefined) => (min === undefined ? undefined : min * MIN);
      const window = (start: number) => {
        const startTs = start + ev.at_min * MIN;
        const d = ms(ev.duration_min);
        return d === undefined ? { startTs } : { startTs, endTs: startTs + d };
      };
      switch (ev.type) {
        case "setpoint":
          this.compileSetpoint(model, ev, index, add);
          return;
        case "sensor_fault": {
          add(ev.at_min, index, (start) => {
            const spec: SensorFaultSpec = { tag: ev.tag, kind: ev.fault, ...window(start) };
            switch (ev.fault) {
              case "stuck":
                if (ev.value !== undefined) spec.value = ev.value;
                break;
              case "drift":
                spec.ratePerMin = ev.rate_per_min;
                break;
              case "spike":
                spec.magnitude = ev.magnitude;
                if (ev.probability !== undefined) spec.probability = ev.probability;
                break;
              case "noise_burst":
                spec.sigma = ev.sigma;
                break;
              case "dropout":
                break;
              default:
                ev satisfies never;
            }
            model.addSensorFault(spec);
          });
          return;
        }
        default: {
          add(ev.at_min, index, (start) => model.addDisturbance(disturbance(ev, window(start))));
        }
      }
    });
    // Same-time events: inclusive ones first (they may be due a step earlier), then file order.
    return acts.sort((a, b) => a.atMs - b.atMs || Number(b.inclusive) - Number(a.inclusive) || a.index - b.index);
  }

  private compileSetpoint(
    model: LineModel,
    ev: SetpointEvent,
    index: number,
    add: (atMin: number, index: number, apply: (start: number) => void, inclusive?: boolean) => void,
  ): void {
    const rampMs = (ev.ramp_min ?? 0) * MIN;
    let before: number | undefined;
    add(
      ev.at_min,
      index,
      (start) => {
        before = model.setpoint(ev.tag);
        this.startRamp(ev.tag, before, ev.value, start + ev.at_min * MIN, rampMs);
      },
      false,
    );
    if (ev.duration_min !== undefined) {
      add(
        ev.at_min + ev.duration_min,
        index,
        (start) => {
          this.startRamp(
            ev.tag,
            model.setpoint(ev.tag),
            before ?? ev.value,
            start + (ev.at_min + ev.duration_min!) * MIN,
            rampMs,
          );
        },
        false,
      );
    }
  }

  private startRamp(tag: string, from: number, to: number, t0: number, durMs: number): void {
    // A newer change of the same lever replaces a ramp still running.
    this.ramps = this.ramps.filter((r) => r.tag !== tag);
    if (durMs > 0) this.ramps.push({ tag, from, to, t0, durMs });
    else this.model!.setSetpoint(tag, to);
  }
}

/** The model's disturbance for a scenario event (snake_case file fields → the model's camelCase spec). */
function disturbance(
  ev: Exclude<ScenarioEvent, { type: "setpoint" } | { type: "sensor_fault" }>,
  w: { startTs: number; endTs?: number },
): DisturbanceSpec {
  switch (ev.type) {
    case "batch_change":
      return { kind: "batch_change", ...w, difficulty: ev.difficulty ?? 1.3, fining: ev.fining ?? 1 };
    case "cullet_change":
      return { kind: "cullet_change", ...w, culletFraction: ev.cullet_fraction };
    case "burner_trip":
      return {
        kind: "burner_trip",
        ...w,
        powerLoss: ev.power_loss ?? 0.3,
        recoveryMs: (ev.recovery_min ?? 10) * MIN,
      };
    case "fan_failure":
      return {
        kind: "fan_failure",
        ...w,
        coolingRateIncrease: ev.cooling_rate_increase ?? 3,
        unevennessK: ev.unevenness_k ?? 30,
      };
    case "humidity":
      return { kind: "humidity", ...w, value: ev.value, rampMs: (ev.ramp_min ?? 30) * MIN };
    default:
      return ev satisfies never;
  }
}
