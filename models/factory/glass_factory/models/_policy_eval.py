"""Evaluation of line-control policies on the twin gym, and the two baselines the PPO policy must beat.

A policy here is any callable ``act(obs [n, obs_dim] float32) -> actions [n, act_dim] in [-1, 1]`` over the
observation vector of a :class:`glass_factory.gym_env.GlassGymVecEnv`. :func:`evaluate` runs one full episode per
held-out seed (all seeds in one server, in lock step) and reports what the plant cares about, per episode and
aggregated: return, defect rate (expected and counted), throughput, energy, envelope violations.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from ..gym_env import GlassGymVecEnv

Policy = Callable[[np.ndarray], np.ndarray]


def hold_policy(env: GlassGymVecEnv) -> Policy:
    """Hold the current setpoints: action 0 on every lever, every step."""
    act_dim = len(env.action_names)

    def act(obs: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], act_dim), dtype=np.float32)

    return act


def random_policy(env: GlassGymVecEnv, seed: int = 0) -> Policy:
    """Uniform random actions in [-1, 1] (seeded): the floor a trained policy must clear."""
    rng = np.random.default_rng(seed)
    act_dim = len(env.action_names)

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=(obs.shape[0], act_dim)).astype(np.float32)

    return act


class RulePolicy:
    """What a careful operator does, as rules over the observation:

    1. every lever's setpoint is walked back toward the middle of its tag's normal band (a proportional step of
       ``gain × error / max_step``, at most one max_step per decision);
    2. when the defective share rises above ``defect_threshold_pct``, the targets move to the safe side: belt speed
       down (``belt_relief`` m/min, less pull → fewer chips/deformation/scratches), the lehr zones up (``lehr_raise``
       °C, slower stress build-up → fewer cracks) and, when bubbles or stones lead, burner power up
       (``power_raise`` %, hotter melt refines better).
    """

    def __init__(self, env: GlassGymVecEnv, gain: float = 0.5, defect_threshold_pct: float = 3.5,
                 belt_relief: float = 15.0, lehr_raise: float = 3.0, power_raise: float = 5.0):
        bands = env.tag_bands()
        self.names = list(env.action_names)
        missing = [n for n in self.names if n not in bands]
        if missing:
            raise ValueError(f"levers without a tag band in hello: {missing}")
        self.mid = np.array([bands[n][0] for n in self.names])
        self.lo = env.actuator_min
        self.hi = env.actuator_max
        self.step = env.max_step
        self.sp_slots = np.array([env.obs_slot(f"setpoint:{n}") for n in self.names])
        self.def_slot = env.obs_slot("defective_pct")
        self.bubble_slots = [env.obs_slot("defect_pct:bubble"), env.obs_slot("defect_pct:stone")]
        self.gain = gain
        self.threshold = defect_threshold_pct
        self.adjust_high = np.zeros(len(self.names))
        self.adjust_bubble = np.zeros(len(self.names))
        idx = {n: j for j, n in enumerate(self.names)}
        if "belt_speed" in idx:
            self.adjust_high[idx["belt_speed"]] = -belt_relief
        for z in ("annealing_zone1", "annealing_zone2", "annealing_zone3"):
            if z in idx:
                self.adjust_high[idx[z]] = lehr_raise
        if "furnace_power" in idx:
            self.adjust_bubble[idx["furnace_power"]] = power_raise

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        sp = self.lo + (obs[:, self.sp_slots].astype(np.float64) + 1.0) / 2.0 * (self.hi - self.lo)
        high = obs[:, self.def_slot:self.def_slot + 1] > self.threshold
        bubbly = high & (obs[:, self.bubble_slots].sum(axis=1, keepdims=True) > 0.5 * obs[:, [self.def_slot]])
        target = self.mid + high * self.adjust_high + bubbly * self.adjust_bubble
        return np.clip(self.gain * (target - sp) / self.step, -1.0, 1.0).astype(np.float32)


def evaluate(env: GlassGymVecEnv, act: Policy, seed: int) -> dict:
    """One episode per env from ``seed + i`` (env i), the policy in lock step; only each env's first episode counts.

    Returns aggregated metrics (means over episodes, and ``per_episode`` lists). ``envelope_violations`` = episodes
    ended by a tag leaving its hard limits + decisions whose proposed setpoint left the actuator range."""
    w = dict(env.hello["reward"]["default_weights"])
    w.update(env.base_options.get("reward_weights", {}))
    terms_idx = {t: k for k, t in enumerate(env.reward_terms)}
    v_nom = env.tag_bands()["belt_speed"][0]
    n = env.num_envs
    env.seed(seed)
    obs = env.reset()
    alive = np.ones(n, dtype=bool)
    ret = np.zeros(n)
    length = np.zeros(n, dtype=np.int64)
    inspected = np.zeros(n)
    defective = np.zeros(n)
    p_def = np.zeros(n)
    belt = np.zeros(n)
    power = np.zeros(n)
    band_steps = np.zeros(n)
    band_excess = np.zeros(n)
    limit_steps = np.zeros(n)
    hard = np.zeros(n, dtype=bool)
    hard_tags: list[str] = []
    overridden_steps = 0
    term_sums = np.zeros(len(env.reward_terms))
    def_slot = env.obs_slot("defective_pct")
    sp_slots = np.array([env.obs_slot(f"setpoint:{n}") for n in env.action_names])
    proposals_out = 0
    while alive.any():
        a = np.asarray(act(obs), dtype=np.float32)
        # the setpoint envelope: a proposal (current setpoint + action × max_step, before the gym's clamp) must stay
        # within the actuator range and one max_step per decision
        sp = env.actuator_min + (obs[:, sp_slots].astype(np.float64) + 1) / 2 * (env.actuator_max - env.actuator_min)
        prop = sp + np.clip(a, -1, 1) * env.max_step
        tol = 1e-6 * (env.actuator_max - env.actuator_min)
        bad = (prop < env.actuator_min - tol) | (prop > env.actuator_max + tol) | (np.abs(a) > 1 + 1e-6)
        proposals_out += int(bad[alive].any(axis=1).sum())
        obs, reward, done, infos = env.step(a)
        for i in np.flatnonzero(alive):
            info = infos[i]
            t = info["reward_terms"]
            term_sums += t
            o = info.get("terminal_observation", obs[i])
            ret[i] += reward[i]
            length[i] += 1
            inspected[i] += info["items_inspected"]
            defective[i] += info["items_defective"]
            p_def[i] += o[def_slot]
            belt[i] += t[terms_idx["throughput"]] / w["throughput"] * v_nom if w["throughput"] else math.nan
            power[i] += -t[terms_idx["energy"]] / w["energy"] * 100 if w["energy"] else math.nan
            if t[terms_idx["band"]] < 0:
                band_steps[i] += 1
                band_excess[i] += -t[terms_idx["band"]] / w["band"] if w["band"] else math.nan
            if t[terms_idx["actuator_limit"]] < 0:
                limit_steps[i] += 1
            ov = info.get("setpoint_overridden")
            if ov is not None and np.any(ov):
                overridden_steps += 1
            if done[i]:
                fi = info.get("final_info", {})
                if fi.get("reason") == "hard_limit":
                    hard[i] = True
                    hard_tags.append(str(fi.get("tag")))
                alive[i] = False
    hours = length * float(env.base_options.get("control_interval_s", 60)) / 3600.0
    per = {
        "return": ret.tolist(),
        "defective_pct_expected": (p_def / length).tolist(),
        "defect_rate_counted_pct": (100 * defective / np.maximum(inspected, 1)).tolist(),
        "belt_speed_mean": (belt / length).tolist(),
        "good_items_per_h": ((inspected - defective) / hours).tolist(),
        "furnace_power_mean_pct": (power / length).tolist(),
        "band_excursion_step_share": (band_steps / length).tolist(),
    }
    out = {
        "episodes": n,
        "seeds": [seed, seed + n - 1],
        "return_mean": float(ret.mean()),
        "return_std": float(ret.std()),
        "return_per_step": float((ret / length).mean()),
        "steps_mean": float(length.mean()),
        "defective_pct_expected": float((p_def / length).mean()),
        "defect_rate_counted_pct": float(100 * defective.sum() / max(inspected.sum(), 1)),
        "belt_speed_mean_m_min": float((belt / length).mean()),
        "good_items_per_h": float(((inspected - defective) / hours).mean()),
        "furnace_power_mean_pct": float((power / length).mean()),
        "envelope_violations": int(hard.sum()) + proposals_out,
        "hard_limit_trips": int(hard.sum()),
        "setpoint_proposals_out_of_envelope": proposals_out,
        "envelope_violation_tags": sorted(set(hard_tags)),
        "band_excursion_step_share": float(band_steps.sum() / length.sum()),
        "band_excess_mean": float(band_excess.sum() / length.sum()),
        "actuator_limit_step_share": float(limit_steps.sum() / length.sum()),
        "scenario_override_step_share": float(overridden_steps / length.sum()),
        "reward_terms_per_step": {k: float(v / length.sum()) for k, v in zip(env.reward_terms, term_sums)},
        "per_episode": per,
    }
    return out


# Scenario evaluation: the scripted scenario as written, from the nominal line (no random start offsets), as
# `glassd twin scenario run` and the test datasets run it; the episode lasts the scenario's duration_hours.
SCENARIO_EVAL_OPTIONS = {"start_spread": 0}


def evaluate_scenarios(policies: dict[str, Callable[[GlassGymVecEnv], Policy]], scenarios: Iterable[str],
                       n_envs: int, seed: int, options: dict | None = None, log=lambda msg: None) -> dict:
    """Every policy on every scenario (``reset.options.scenario``): ``n_envs`` episodes from seeds ``seed + i``,
    one gym server per scenario, the same seeds for every policy. ``policies`` maps a name to a factory
    ``env -> act``; a scenario is a name or path (the key) or an inline scenario dict (keyed by its ``name``).
    Returns ``{scenario: {policy: evaluate(...)}}``."""
    out: dict[str, dict[str, dict]] = {}
    for sc in scenarios:
        key = sc if isinstance(sc, str) else str(sc["name"])
        if key in out:
            raise ValueError(f"scenario {key!r} is listed twice")
        opts = dict(SCENARIO_EVAL_OPTIONS, **(options or {}), scenario=sc)
        with GlassGymVecEnv(n_envs=n_envs, seed=seed, options=opts) as env:
            out[key] = {name: evaluate(env, make(env), seed) for name, make in policies.items()}
        log(f"scenario {key}: " + ", ".join(f"{k} {v['return_per_step']:.3f}/step {v['defective_pct_expected']:.2f} %"
                                             f" v{v['envelope_violations']}" for k, v in out[key].items()))
    return out


def validation_suite(seed: int = 42) -> list[dict]:
    """Generated single-disturbance episodes for choosing a training configuration (never the scripted test
    scenarios): 6 lehr fan failures, 3 burner trips and 3 batch changes, each 7 h from the nominal line with its
    parameters drawn from the dataset mix's ranges (src/twin/dataset/mix.ts) by ``seed``."""
    rng = np.random.default_rng(seed)

    def at_dur(lo: float, hi: float) -> dict:
        return {"at_min": float(rng.uniform(60, 150)), "duration_min": float(rng.uniform(lo, hi))}

    out = []
    for i in range(6):
        out.append({"name": f"v_fan{i}", "duration_hours": 7, "events": [dict(
            type="fan_failure", **at_dur(30, 150), cooling_rate_increase=float(rng.uniform(1.5, 4)),
            unevenness_k=float(rng.uniform(10, 40)))]})
    for i in range(3):
        out.append({"name": f"v_trip{i}", "duration_hours": 7, "events": [dict(
            type="burner_trip", **at_dur(10, 60), power_loss=float(rng.uniform(0.15, 0.40)),
            recovery_min=float(rng.uniform(5, 20)))]})
    for i in range(3):
        out.append({"name": f"v_batch{i}", "duration_hours": 7, "events": [dict(
            type="batch_change", **at_dur(30, 150), difficulty=float(rng.uniform(1.2, 1.8)),
            fining=float(rng.uniform(0.5, 1)))]})
    return out


SUMMARY_KEYS = ("return_per_step", "defective_pct_expected", "defect_rate_counted_pct", "belt_speed_mean_m_min",
                "good_items_per_h", "furnace_power_mean_pct")


def scenario_means(results: dict) -> dict[str, dict]:
    """Per policy: the unweighted mean over scenarios of each headline metric (each scenario counts once, whatever
    its length), and the total envelope violations."""
    policies = next(iter(results.values())).keys()
    out = {}
    for pol in policies:
        rows = [r[pol] for r in results.values()]
        out[pol] = {k: float(np.mean([r[k] for r in rows])) for k in SUMMARY_KEYS}
        out[pol]["envelope_violations"] = int(sum(r["envelope_violations"] for r in rows))
        out[pol]["hard_limit_trips"] = int(sum(r["hard_limit_trips"] for r in rows))
        out[pol]["scenarios"] = len(rows)
    return out
