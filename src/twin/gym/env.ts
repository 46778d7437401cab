import { DEFECT_CLASSES, type InspectionEvent } from "../../core/types.js";
import { DefectModel, LineModel, Rng } from "../index.js";
import { ScenarioRunner } from "../scenario/index.js";
import type { GymOptions } from "./options.js";
import { computeReward, type IntervalStats } from "./reward.js";
import { episodeScenario, type GymScenarioPlan } from "./scenario.js";
import type { GymSpec } from "./spaces.js";

/*
 * One environment: a LineModel and its DefectModel, driven through their public API only, so the gym trains
 * against exactly the physics the daemon runs. One env step = apply the action to the lever setpoints, run
 * `control_interval_s / model_step_s` physics steps, observe, score.
 *
 * With a scenario (reset.options.scenario) a ScenarioRunner is attached to the episode's line after the warm-up
 * (scenario minute 0 = the first observation). The setpoint register is the model's, as on a PLC: the agent's
 * change is applied to the setpoint in force (read back from the model every step, never a private copy), so a
 * scenario's setpoint write stays in force until the agent moves the lever from there; a scenario write during
 * the interval (a step change, each physics step of a ramp) is the last write and wins, and the lever is flagged
 * in `overridden` (PROTOCOL.md, "Scenarios").
 */

/** Simulated start of every episode (before the warm-up); fixed so an episode is a function of its seed alone. */
const START_TS = Date.UTC(2026, 0, 1);

/** Random stream of the start offsets, apart from the model's own streams (1–3) for the same seed. */
const START_STREAM = 0x67796d;

const NC = DEFECT_CLASSES.length;

/** Why an episode ended. */
export interface EpisodeEnd {
  reason: "hard_limit" | "time_limit";
  /** The tag that left its hard limits, and its value (hard_limit only). */
  tag?: string;
  value?: number;
  episodeReturn: number;
  episodeLength: number;
}

export class GlassEnv {
  private model!: LineModel;
  private defects!: DefectModel;
  private readonly setpoints: Float64Array;
  private readonly items: InspectionEvent[] = [];
  private readonly stepMs: number;
  private readonly subSteps: number;
  private readonly episodeSteps: number;
  private readonly warmupSteps: number;
  private readonly controlMs: number;
  private readonly stats: IntervalStats;
  private stepIndex = 0;
  private episodeReturn = 0;
  /** Set by `step` when the episode ended (terminated or truncated); undefined otherwise. */
  end: EpisodeEnd | undefined;
  terminated = false;
  truncated = false;
  itemsInspected = 0;
  itemsDefective = 0;
  /** Per lever: 1 when the last step's agent change was overwritten by a scenario setpoint write. */
  readonly overridden: Uint8Array;
  /** The scenario of the current episode (undefined without one). */
  runner: ScenarioRunner | undefined;

  constructor(
    private readonly spec: GymSpec,
    private readonly opts: GymOptions,
    private readonly scenario?: GymScenarioPlan,
  ) {
    this.controlMs = Math.round(opts.control_interval_s * 1000);
    this.stepMs = Math.round(opts.model_step_s * 1000);
    this.subSteps = this.controlMs / this.stepMs;
    this.episodeSteps = Math.max(1, Math.round((opts.episode_hours * 3600) / opts.control_interval_s));
    this.warmupSteps = Math.round((opts.warmup_min * 60_000) / this.controlMs);
    this.setpoints = new Float64Array(spec.levers.length);
    this.overridden = new Uint8Array(spec.levers.length);
    this.stats = {
      beltMean: 0,
      beltNominal: spec.beltNominal,
      powerMean: 0,
      pClass: new Float64Array(NC),
      pDefective: 0,
      bandExcess: 0,
      leversAtLimit: 0,
      terminated: false,
    };
  }

  /** Starts a new episode from `seed`: nominal line, random lever offsets (start_spread), then the warm-up. */
  reset(seed: number): void {
    const { spec, opts } = this;
    this.model = new LineModel({ tags: spec.tags.slice(), seed, startTs: START_TS });
    this.defects = new DefectModel(this.model, { seed, itemsPerMin: opts.items_per_min });
    const sp = this.model.setpoints();
    if (opts.start_spread > 0) {
      const rng = Rng.derive(seed, START_STREAM);
      for (const lever of spec.levers) {
        const offset = rng.uniform(-1, 1) * opts.start_spread * lever.maxStep;
        this.model.setSetpoint(lever.tag, sp[lever.tag]! + offset);
      }
    }
    // The warm-up runs at the control interval as its physics step: it only has to bring the slow loops near the
    // offset setpoints and spread the disturbances; the exact discretisation keeps it stable at any step.
    for (let k = 0; k < this.warmupSteps; k++) {
      this.model.step(this.controlMs);
      this.defects.step(this.controlMs, this.items);
      this.items.length = 0;
    }
    this.runner = this.scenario
      ? new ScenarioRunner(episodeScenario(this.scenario, seed, opts.episode_hours, spec.tags, opts.mix_rate)).attach(
          this.model,
        )
      : undefined;
    this.overridden.fill(0);
    const now = this.model.setpoints();
    spec.levers.forEach((l, j) => {
      this.setpoints[j] = now[l.tag]!;
    });
    const p = this.defects.probabilities();
    for (let c = 0; c < NC; c++) this.stats.pClass[c] = p[DEFECT_CLASSES[c]!];
    this.stats.pDefective = this.defects.defectiveProbability();
    this.stepIndex = 0;
    this.episodeReturn = 0;
    this.end = undefined;
    this.terminated = false;
    this.truncated = false;
    this.itemsInspected = 0;
    this.itemsDefective = 0;
  }

  /**
   * One control interval. `actions[aOff .. aOff + actDim)` must be finite and in [−1, 1] (the vector env checks);
   * writes the observation into `obs[oOff ..]` and the reward terms into `terms[tOff ..]`, returns the reward.
   */
  step(actions: ArrayLike<number>, aOff: number, obs: Float32Array, oOff: number, terms: Float32Array, tOff: number) {
    const { spec, model, defects, stats } = this;
    for (let j = 0; j < spec.levers.length; j++) {
      const lever = spec.levers[j]!;
      // Relative to the setpoint in force (a scenario may have written it since the last step).
      this.setpoints[j] = model.setSetpoint(lever.tag, model.setpoint(lever.tag) + actions[aOff + j]! * lever.maxStep);
    }

    const pClass = stats.pClass;
    pClass.fill(0);
    let belt = 0;
    let power = 0;
    let pDef = 0;
    let inspected = 0;
    let defective = 0;
    const beltTag = spec.tags[spec.beltIndex]!.id;
    const powerTag = spec.tags[spec.powerIndex]!.id;
    const items = this.items;
    for (let k = 0; k < this.subSteps; k++) {
      model.step(this.stepMs);
      defects.step(this.stepMs, items);
      belt += model.reading(beltTag);
      power += model.reading(powerTag);
      pDef += defects.defectiveProbability();
      for (let c = 0; c < NC; c++) pClass[c]! += defects.probability(DEFECT_CLASSES[c]!);
      inspected += items.length;
      for (let i = 0; i < items.length; i++) if (!items[i]!.ok) defective++;
      items.length = 0;
    }
    // The setpoints in force at the end of the interval: a scenario write during it was the last write.
    let atLimit = 0;
    for (let j = 0; j < spec.levers.length; j++) {
      const lever = spec.levers[j]!;
      const now = model.setpoint(lever.tag);
      this.overridden[j] = now !== this.setpoints[j] ? 1 : 0;
      this.setpoints[j] = now;
      if (now <= lever.min || now >= lever.max) atLimit++;
    }
    const inv = 1 / this.subSteps;
    for (let c = 0; c < NC; c++) pClass[c]! *= inv;
    stats.beltMean = belt * inv;
    stats.powerMean = power * inv;
    stats.pDefective = pDef * inv;
    stats.leversAtLimit = atLimit;
    this.itemsInspected = inspected;
    this.itemsDefective = defective;
    this.stepIndex++;

    // Observe first: the band excess and the hard-limit check read the same end-of-interval values.
    const values = model.readings();
    let bandExcess = 0;
    let breach: { tag: string; value: number } | undefined;
    for (let i = 0; i < spec.tags.length; i++) {
      const tag = spec.tags[i]!;
      const v = values[tag.id]!;
      const z = (v - spec.bandMid[i]!) / spec.bandHalf[i]!;
      const az = Math.abs(z);
      if (az > 1) bandExcess += az - 1;
      // Written so that a non-finite value (a physics bug) ends the episode too instead of poisoning training.
      if (!breach && !(v >= tag.limits.min && v <= tag.limits.max)) breach = { tag: tag.id, value: v };
    }
    stats.bandExcess = bandExcess;
    stats.terminated = breach !== undefined;
    this.writeObs(obs, oOff, values);

    const reward = computeReward(stats, this.opts.reward_weights, terms, tOff);
    this.episodeReturn += reward;
    this.terminated = breach !== undefined;
    this.truncated = !this.terminated && this.stepIndex >= this.episodeSteps;
    if (this.terminated || this.truncated) {
      this.end = {
        reason: this.terminated ? "hard_limit" : "time_limit",
        ...(breach ? { tag: breach.tag, value: breach.value } : {}),
        episodeReturn: this.episodeReturn,
        episodeLength: this.stepIndex,
      };
    } else this.end = undefined;
    return reward;
  }

  /** Writes the current observation into `obs[off .. off + obsDim)`. */
  observe(obs: Float32Array, off: number): void {
    this.writeObs(obs, off, this.model.readings());
  }

  /** Current lever setpoints, in lever order (for tests and diagnostics). */
  leverSetpoints(): number[] {
    return Array.from(this.setpoints);
  }

  private writeObs(obs: Float32Array, off: number, values: Record<string, number>): void {
    const { spec, stats } = this;
    const o = spec.offsets;
    for (let i = 0; i < spec.tags.length; i++) {
      const z = (values[spec.tags[i]!.id]! - spec.bandMid[i]!) / spec.bandHalf[i]!;
      // Clipped to the declared bounds (the hard limits) so the observation stays inside its Box; a value beyond
      // them ends the episode anyway.
      const lo = spec.obsLow[i]!;
      const hi = spec.obsHigh[i]!;
      obs[off + i] = z >= lo ? Math.min(z, hi) : lo; // NaN → lo: the observation stays finite
    }
    for (let j = 0; j < spec.levers.length; j++) {
      const l = spec.levers[j]!;
      obs[off + o.setpoints + j] = ((this.setpoints[j]! - l.min) / (l.max - l.min)) * 2 - 1;
    }
    for (let c = 0; c < NC; c++) obs[off + o.defects + c] = stats.pClass[c]! * 100;
    obs[off + o.defective] = stats.pDefective * 100;
    obs[off + o.time] = Math.min(this.stepIndex / this.episodeSteps, 1);
  }
}
