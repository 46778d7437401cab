import { Rng } from "../index.js";
import { type EpisodeEnd, GlassEnv } from "./env.js";
import { GymError } from "./errors.js";
import type { GymOptions } from "./options.js";
import { REWARD_TERMS } from "./reward.js";
import type { GymScenarioPlan } from "./scenario.js";
import type { GymSpec } from "./spaces.js";

/*
 * N environments stepped together, with flat typed-array buffers for everything that crosses the pipe. Auto-reset
 * like gymnasium's VectorEnv (same-step mode) and stable-baselines3's VecEnv: when env i ends, its row of `obs` is
 * already the first observation of its next episode, and the observation that ended the episode is in `finalObs`.
 */

/** Seed stream of an env's later episodes (the first episode of a reset uses seed + index itself). */
const EPISODE_STREAM = 0x65706973;
const TWO_POW_32 = 4_294_967_296;

/** An episode that ended during the last step. */
export interface FinalInfo extends EpisodeEnd {
  env: number;
}

export class GlassVecEnv {
  n = 0;
  options: GymOptions | undefined;
  scenario: GymScenarioPlan | undefined;
  private envs: GlassEnv[] = [];
  private seedStreams: Rng[] = [];
  obs = new Float32Array(0);
  reward = new Float32Array(0);
  terminated = new Uint8Array(0);
  truncated = new Uint8Array(0);
  rewardTerms = new Float32Array(0);
  itemsInspected = new Int32Array(0);
  itemsDefective = new Int32Array(0);
  /** [n, actDim]: 1 where a scenario setpoint write overrode the agent's change of that lever during the step. */
  overridden = new Uint8Array(0);
  /** Rows 0..finals.length-1 hold the final observation of each ended episode, in env order. */
  finalObs = new Float32Array(0);
  finals: FinalInfo[] = [];

  constructor(readonly spec: GymSpec) {}

  get ready(): boolean {
    return this.n > 0;
  }

  /**
   * Starts a new episode in every env. With a seed, env i's episode is seeded `seed + i` and its later episodes
   * draw their seeds from a stream of `seed + i`; without one, every env continues its stream (or starts one
   * from `0 + i`).
   */
  reset(n: number, seed: number | undefined, options: GymOptions, scenario?: GymScenarioPlan): void {
    const { spec } = this;
    const D = spec.obsDim;
    if (n !== this.n || options !== this.options || scenario !== this.scenario) {
      this.envs = Array.from({ length: n }, () => new GlassEnv(spec, options, scenario));
    }
    if (n !== this.n) {
      this.obs = new Float32Array(n * D);
      this.reward = new Float32Array(n);
      this.terminated = new Uint8Array(n);
      this.truncated = new Uint8Array(n);
      this.rewardTerms = new Float32Array(n * REWARD_TERMS.length);
      this.itemsInspected = new Int32Array(n);
      this.itemsDefective = new Int32Array(n);
      this.overridden = new Uint8Array(n * spec.actDim);
      this.finalObs = new Float32Array(n * D);
    }
    const streams: Rng[] = [];
    for (let i = 0; i < n; i++) {
      let episodeSeed: number;
      if (seed !== undefined) {
        episodeSeed = seed + i;
        streams.push(Rng.derive(episodeSeed, EPISODE_STREAM));
      } else {
        const s = this.seedStreams[i] ?? Rng.derive(i, EPISODE_STREAM);
        episodeSeed = Math.floor(s.next() * TWO_POW_32);
        streams.push(s);
      }
      this.envs[i]!.reset(episodeSeed);
      this.envs[i]!.observe(this.obs, i * D);
    }
    this.seedStreams = streams;
    this.n = n;
    this.options = options;
    this.scenario = scenario;
    this.reward.fill(0);
    this.terminated.fill(0);
    this.truncated.fill(0);
    this.rewardTerms.fill(0);
    this.itemsInspected.fill(0);
    this.itemsDefective.fill(0);
    this.overridden.fill(0);
    this.finals = [];
  }

  /**
   * Checks an action batch of shape [n, actDim] (row-major): every value finite and in [−1, 1]. Throws GymError
   * naming the first offending env and lever. Nothing has been stepped when it throws.
   */
  checkActions(actions: ArrayLike<number>, shape: readonly number[]): void {
    const { n, spec } = this;
    const A = spec.actDim;
    if (shape.length !== 2 || shape[0] !== n || shape[1] !== A) {
      throw new GymError(
        "bad_action_shape",
        `actions must have shape [n_envs, act_dim] = [${n}, ${A}], got [${shape.join(", ")}]`,
      );
    }
    for (let k = 0; k < n * A; k++) {
      const a = actions[k]!;
      if (a >= -1 && a <= 1) continue;
      const where = `actions[${Math.floor(k / A)}][${k % A}] (${spec.levers[k % A]!.tag})`;
      if (!Number.isFinite(a)) {
        throw new GymError("bad_action_value", `${where} is ${a}; every action must be a finite number in [-1, 1]`);
      }
      throw new GymError(
        "action_out_of_range",
        `${where} = ${a} is outside [-1, 1]; clip actions to the action space (±1 = a change of ±max_step)`,
      );
    }
  }

  /** Steps every env with `actions` (already checked), auto-resetting the envs whose episode ended. */
  step(actions: ArrayLike<number>): void {
    const { n, spec } = this;
    if (n === 0) throw new GymError("not_reset", "step before reset: send a reset message first");
    const D = spec.obsDim;
    const A = spec.actDim;
    const K = REWARD_TERMS.length;
    this.finals = [];
    for (let i = 0; i < n; i++) {
      const env = this.envs[i]!;
      this.reward[i] = env.step(actions, i * A, this.obs, i * D, this.rewardTerms, i * K);
      this.terminated[i] = env.terminated ? 1 : 0;
      this.truncated[i] = env.truncated ? 1 : 0;
      this.itemsInspected[i] = env.itemsInspected;
      this.itemsDefective[i] = env.itemsDefective;
      this.overridden.set(env.overridden, i * A);
      if (env.end) {
        this.finalObs.set(this.obs.subarray(i * D, (i + 1) * D), this.finals.length * D);
        this.finals.push({ env: i, ...env.end });
        const stream = this.seedStreams[i]!;
        env.reset(Math.floor(stream.next() * TWO_POW_32));
        env.observe(this.obs, i * D);
      }
    }
  }

  /** Lever setpoints of env i (tests and diagnostics). */
  leverSetpoints(i: number): number[] {
    const env = this.envs[i];
    if (!env) throw new RangeError(`no env ${i} (n_envs = ${this.n})`);
    return env.leverSetpoints();
  }
}
