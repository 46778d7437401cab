"""PPO (stable-baselines3) against ``glassd twin gym``, and the deterministic policy as an exportable torch module.

Training: one gym server with ``n_envs`` envs (:class:`glass_factory.gym_env.GlassGymVecEnv`), SB3's ``VecNormalize``
for observation (running mean/var, clipped at ±clip_obs) and reward scaling. The exported policy is
:class:`DeterministicPolicy`: raw observation → the frozen VecNormalize statistics → the actor MLP → the Gaussian's
mean → clip to [-1, 1] (exactly what SB3's ``predict(deterministic=True)`` and the gym's action check do) → also the
setpoint change in engineering units (action × max_step). The daemon feeds raw observations: normalisation is
baked into the graph.

With ``PPOParams.residual`` the PPO action is a correction added to the rule-based operator's action (residual RL:
the env applies ``clip(rule(obs) + a, −1, 1)``, then the shield), and the exported graph computes the same sum with
the rule written in torch ops (:class:`RuleModule`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnvWrapper
from torch import nn

from ..gym_env import GlassGymVecEnv
from ._policy_eval import RulePolicy

OBS_EPS = 1e-8  # VecNormalize's epsilon


class SetpointShield:
    """Keeps every lever's setpoint inside a safe envelope: the actuator range shrunk by ``margin`` × range at each
    end, further shrunk wherever the controlled tag's own hard limit sits inside it (e.g. burner power: actuator
    max 100 % = hard limit 100 %, so a setpoint there trips the line on the first upward wander), and, with
    ``band_k``, kept within band_k half-widths of the middle of the tag's normal band (an operating envelope, as
    an operator keeps setpoints near their bands; it also stops a biased early policy from parking a lever at an
    actuator end, which wrecks the exploration). The default, 1, is the normal band itself: the plant's operating
    window, which a controller acting on its own should not leave by choice. With 2 the 1.1.0 policy learned to set
    the lehr zones past their ±5 °C band in severe fan failures, trading band excursions for a few cracks less, and
    lost to the rule there on validation scenarios.

    Given the raw observation (which holds each setpoint, scaled to its actuator range) the allowed action interval
    of lever j is [(safe_min_j − sp_j) / max_step_j, (safe_max_j − sp_j) / max_step_j] ∩ [−1, 1]: an action that
    would leave the envelope is cut at its edge, and a setpoint found outside (a start offset, an operator) is
    walked back in at up to one max_step per decision. Applied in training (a VecEnvWrapper, so PPO learns with
    it) and baked into the exported graph (Max/Min ops).
    """

    def __init__(self, env: GlassGymVecEnv, margin: float = 0.05, band_k: float | None = 1.0):
        bands = env.tag_bands()
        names = env.action_names
        amin, amax = env.actuator_min, env.actuator_max
        lo = amin + margin * (amax - amin)
        hi = amax - margin * (amax - amin)
        full = env.hello["observation"]
        for j, n in enumerate(names):
            if n in bands:
                mid, half, _ = bands[n]
                k = full["names"].index(f"tag:{n}")
                lim_lo = mid + half * float(full["low"][k])
                lim_hi = mid + half * float(full["high"][k])
                lo[j] = max(lo[j], lim_lo + margin * (amax[j] - amin[j]))
                hi[j] = min(hi[j], lim_hi - margin * (amax[j] - amin[j]))
                if band_k is not None:  # operating envelope: within band_k half-widths of the normal band's middle
                    lo[j] = max(lo[j], mid - band_k * half)
                    hi[j] = min(hi[j], mid + band_k * half)
        self.margin = margin
        self.band_k = band_k
        self.safe_min = lo
        self.safe_max = hi
        self.actuator_min = amin.copy()
        self.actuator_max = amax.copy()
        self.max_step = env.max_step.copy()
        self.sp_slots = np.array([env.obs_slot(f"setpoint:{n}") for n in names], dtype=np.int64)

    def bounds(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sp = self.actuator_min + (obs[:, self.sp_slots].astype(np.float64) + 1.0) / 2.0 * (
            self.actuator_max - self.actuator_min)
        return (self.safe_min - sp) / self.max_step, (self.safe_max - sp) / self.max_step

    def __call__(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds(obs)
        return np.clip(np.minimum(np.maximum(action, lo), hi), -1.0, 1.0).astype(np.float32)

    def describe(self, names: list[str], units: list[str]) -> list[dict]:
        return [{"lever": n, "unit": u, "safe_min": round(float(a), 9), "safe_max": round(float(b), 9)}
                for n, u, a, b in zip(names, units, self.safe_min, self.safe_max)]


class ShieldedVecEnv(VecEnvWrapper):
    """Applies a :class:`SetpointShield` to the actions (using the last raw observation) before the gym sees them;
    with ``base``, the action is first added to ``base(obs)`` (residual RL) and clipped to [-1, 1]."""

    def __init__(self, venv: GlassGymVecEnv, shield: SetpointShield | None, base: RulePolicy | None = None):
        super().__init__(venv)
        self.shield = shield
        self.base = base
        self._obs: np.ndarray | None = None

    def reset(self):
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions):
        a = np.clip(np.asarray(actions, dtype=np.float32), -1, 1)
        if self.base is not None:
            a = np.clip(self.base(self._obs) + a, -1, 1).astype(np.float32)
        self.venv.step_async(self.shield(self._obs, a) if self.shield is not None else a)

    def step_wait(self):
        obs, rew, done, infos = self.venv.step_wait()
        self._obs = obs
        return obs, rew, done, infos


@dataclass
class PPOParams:
    total_steps: int = 2_000_000
    n_envs: int = 16
    n_steps: int = 256
    batch_size: int = 1024
    n_epochs: int = 5
    learning_rate: float = 3e-4
    lr_final_fraction: float = 0.1  # linear decay to this fraction of learning_rate
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_width: int = 64
    net_depth: int = 2
    log_std_init: float = -1.0
    clip_obs: float = 10.0
    shield_margin: float | None = 0.05  # None = no setpoint shield
    shield_band_k: float | None = 1.0  # setpoints within this many band half-widths of the band middle (None = off)
    residual: bool = False  # PPO learns a correction added to the rule-based operator's action
    # checkpoint selection on validation: every select_every env-steps (and before the first update) the
    # deterministic policy runs one episode on each of select_envs validation seeds (select_seed + i, the training
    # options); the best mean reward per step is kept. None = keep the last weights.
    select_every: int | None = None
    select_envs: int = 16
    select_seed: int = 2_000_000
    max_seconds: float | None = None  # wall-time guard: stop early (recorded) when exceeded
    options: dict = field(default_factory=dict)  # gym reset.options for training

    def to_dict(self) -> dict:
        return asdict(self)


class _SelectBest(BaseCallback):
    """Checkpoint selection on validation seeds (PPOParams.select_*): keeps the policy weights and VecNormalize
    statistics of the best deterministic policy seen, the untrained start included."""

    def __init__(self, params: PPOParams, venv, shield, rule, max_step, log):
        super().__init__()
        self.params, self.venv, self.shield, self.rule, self.max_step, self.log = params, venv, shield, rule, max_step, log
        self.val_env = None
        self.last = 0
        self.best = None  # (quality, steps, policy state dict, obs mean, obs var)
        self.history: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        from ._policy_eval import evaluate

        self._evaluate = evaluate
        self.val_env = GlassGymVecEnv(n_envs=self.params.select_envs, seed=self.params.select_seed,
                                      options=self.params.options)
        self._check()

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last >= self.params.select_every:
            self._check()
        return True

    def _check(self) -> None:
        import copy

        self.last = self.num_timesteps
        mean, var = self.venv.obs_rms.mean.copy(), self.venv.obs_rms.var.copy()
        m = DeterministicPolicy(self.model.policy, mean, var, self.params.clip_obs, self.max_step, self.shield, self.rule)
        q = float(self._evaluate(self.val_env, torch_act(m), self.params.select_seed)["return_per_step"])
        self.history.append((int(self.num_timesteps), q))
        if self.best is None or q > self.best[0]:
            self.best = (q, int(self.num_timesteps), copy.deepcopy(self.model.policy.state_dict()), mean, var)
        self.log(f"policy: validation at {self.num_timesteps} env-steps: {q:.4f}/step (best {self.best[0]:.4f} at "
                 f"{self.best[1]})")

    def close(self) -> None:
        if self.val_env is not None:
            self.val_env.close()
            self.val_env = None


class _StopAfter(BaseCallback):
    """Stops training when the wall-time guard is exceeded; remembers whether it did."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.t0 = time.monotonic()
        self.stopped_early = False

    def _on_step(self) -> bool:
        if self.seconds is not None and time.monotonic() - self.t0 > self.seconds:
            self.stopped_early = True
            return False
        return True


@dataclass
class TrainResult:
    model: object  # stable_baselines3.PPO
    obs_mean: np.ndarray
    obs_var: np.ndarray
    clip_obs: float
    steps: int
    seconds: float
    stopped_early: bool
    ep_return_last: float | None  # mean training-episode return of the last 100 episodes (stochastic policy)
    env_info: dict  # obs names/units, action names/units/bounds from hello
    shield: SetpointShield | None
    base: RulePolicy | None = None  # the rule the PPO action is a residual of (PPOParams.residual)
    selection: dict | None = None  # checkpoint selection on validation: history and the chosen checkpoint


def train(params: PPOParams, seed: int, log=lambda msg: None, threads: int = 1) -> TrainResult:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(max(1, int(threads)))
    base = GlassGymVecEnv(n_envs=params.n_envs, seed=seed, options=params.options)
    shield = SetpointShield(base, params.shield_margin, params.shield_band_k) if params.shield_margin is not None else None
    rule = RulePolicy(base) if params.residual else None
    inner = ShieldedVecEnv(base, shield, rule) if (shield or rule) else base
    env = VecNormalize(inner, norm_obs=True, norm_reward=True, clip_obs=params.clip_obs, gamma=params.gamma,
                       epsilon=OBS_EPS)
    try:
        lr0, frac = params.learning_rate, params.lr_final_fraction

        def lr(progress_remaining: float) -> float:  # 1 → 0 over training
            return lr0 * (frac + (1 - frac) * progress_remaining)

        width = [params.net_width] * params.net_depth
        model = PPO(
            "MlpPolicy", env, learning_rate=lr, n_steps=params.n_steps, batch_size=params.batch_size,
            n_epochs=params.n_epochs, gamma=params.gamma, gae_lambda=params.gae_lambda, clip_range=params.clip_range,
            ent_coef=params.ent_coef, vf_coef=params.vf_coef, max_grad_norm=params.max_grad_norm, seed=seed,
            device="cpu", verbose=0,
            policy_kwargs=dict(net_arch=dict(pi=width, vf=width), activation_fn=nn.Tanh,
                               log_std_init=params.log_std_init),
        )
        stop = _StopAfter(params.max_seconds)
        select = (_SelectBest(params, env, shield, rule, base.max_step.tolist(), log)
                  if params.select_every else None)
        t0 = time.perf_counter()
        try:
            model.learn(total_timesteps=params.total_steps, callback=[stop, select] if select else stop)
            selection = None
            obs_mean, obs_var = env.obs_rms.mean.copy(), env.obs_rms.var.copy()
            if select is not None:
                if select.last != model.num_timesteps:
                    select._check()  # the final weights are a candidate too
                q, at, state, obs_mean, obs_var = select.best
                model.policy.load_state_dict(state)
                selection = {"every_env_steps": params.select_every, "val_envs": params.select_envs,
                             "val_seeds": [params.select_seed, params.select_seed + params.select_envs - 1],
                             "chosen_at_env_steps": at, "chosen_val_return_per_step": q,
                             "history": select.history}
                log(f"policy: checkpoint at {at} env-steps chosen on validation ({q:.4f}/step)")
        finally:
            if select is not None:
                select.close()
        secs = time.perf_counter() - t0
        ep = [e["r"] for e in model.ep_info_buffer]
        log(f"policy: PPO {model.num_timesteps} env-steps in {secs:.1f} s "
            f"({model.num_timesteps / max(secs, 1e-9):,.0f}/s), last training episodes' mean return "
            f"{np.mean(ep) if ep else float('nan'):.1f}" + (" (stopped by the wall-time guard)" if stop.stopped_early
                                                          else ""))
        env_info = {
            "obs_names": base.obs_names, "obs_units": base.obs_units,
            "action_names": base.action_names, "action_units": base.action_units,
            "max_step": base.max_step.tolist(), "actuator_min": base.actuator_min.tolist(),
            "actuator_max": base.actuator_max.tolist(), "hello": base.hello,
        }
        return TrainResult(
            model=model, obs_mean=obs_mean, obs_var=obs_var, clip_obs=params.clip_obs,
            steps=int(model.num_timesteps), seconds=secs, stopped_early=stop.stopped_early,
            ep_return_last=float(np.mean(ep)) if ep else None, env_info=env_info, shield=shield, base=rule,
            selection=selection,
        )
    finally:
        env.close()


class RuleModule(nn.Module):
    """:class:`RulePolicy` in torch ops (exportable): raw obs [B, obs_dim] → the rule's action [B, act_dim]."""

    def __init__(self, rule: RulePolicy):
        super().__init__()
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64).astype(np.float32))  # noqa: E731
        self.sp_slots = [int(k) for k in rule.sp_slots]
        self.def_slot = int(rule.def_slot)
        self.bubble_slots = [int(k) for k in rule.bubble_slots]
        self.threshold = float(rule.threshold)
        self.register_buffer("lo", f32(rule.lo))
        self.register_buffer("span", f32(rule.hi - rule.lo))
        self.register_buffer("mid", f32(rule.mid))
        self.register_buffer("gain_per_step", f32(rule.gain / rule.step))
        self.register_buffer("adjust_high", f32(rule.adjust_high))
        self.register_buffer("adjust_bubble", f32(rule.adjust_bubble))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        sp = self.lo + (obs[:, self.sp_slots] + 1.0) / 2.0 * self.span
        d = obs[:, self.def_slot:self.def_slot + 1]
        high = (d > self.threshold).to(obs.dtype)
        bubbly = high * (obs[:, self.bubble_slots].sum(dim=1, keepdim=True) > 0.5 * d).to(obs.dtype)
        target = self.mid + high * self.adjust_high + bubbly * self.adjust_bubble
        return torch.clamp((target - sp) * self.gain_per_step, -1.0, 1.0)


class DeterministicPolicy(nn.Module):
    """raw obs [B, obs_dim] → (action [B, act_dim] in [-1, 1], setpoint_delta [B, act_dim] in lever units).

    normalise (frozen VecNormalize stats, clipped) → actor MLP → Gaussian mean → clip [-1, 1] → (residual: + the
    rule's action, clip [-1, 1]) → setpoint shield."""

    def __init__(self, sb3_policy, obs_mean, obs_var, clip_obs: float, max_step, shield: SetpointShield | None,
                 base: RulePolicy | None = None):
        super().__init__()
        import copy

        self.pi = copy.deepcopy(sb3_policy.mlp_extractor.policy_net).float().eval()
        self.head = copy.deepcopy(sb3_policy.action_net).float().eval()
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64).astype(np.float32))  # noqa: E731
        self.register_buffer("mean", f32(obs_mean))
        self.register_buffer("inv_std", f32(1.0 / np.sqrt(np.asarray(obs_var, dtype=np.float64) + OBS_EPS)))
        self.register_buffer("max_step", f32(max_step))
        self.clip_obs = float(clip_obs)
        self.base = RuleModule(base) if base is not None else None
        self.shielded = shield is not None
        if shield is not None:
            # allowed action of lever j: [(safe_min − sp) / step, (safe_max − sp) / step], sp = a0 + (x + 1) · a1
            a1 = (shield.actuator_max - shield.actuator_min) / 2.0
            a0 = shield.actuator_min + a1
            self.sp_slots = [int(k) for k in shield.sp_slots]
            self.register_buffer("sp_scale", f32(a1 / shield.max_step))
            self.register_buffer("lo_off", f32((shield.safe_min - a0) / shield.max_step))
            self.register_buffer("hi_off", f32((shield.safe_max - a0) / shield.max_step))

    def forward(self, obs: torch.Tensor):
        z = torch.clamp((obs - self.mean) * self.inv_std, -self.clip_obs, self.clip_obs)
        action = torch.clamp(self.head(self.pi(z)), -1.0, 1.0)
        if self.base is not None:
            action = torch.clamp(self.base(obs) + action, -1.0, 1.0)
        if self.shielded:
            sp = obs[:, self.sp_slots] * self.sp_scale
            action = torch.clamp(torch.minimum(torch.maximum(action, self.lo_off - sp), self.hi_off - sp), -1.0, 1.0)
        return action, action * self.max_step


def sb3_reference(result: TrainResult, obs: np.ndarray) -> np.ndarray:
    """SB3's own deterministic path (VecNormalize.normalize_obs semantics + policy.predict), independent of
    DeterministicPolicy: the PyTorch side of the parity check."""
    z = np.clip((obs.astype(np.float64) - result.obs_mean) / np.sqrt(result.obs_var + OBS_EPS),
                -result.clip_obs, result.clip_obs).astype(np.float32)
    a, _ = result.model.predict(z, deterministic=True)
    a = np.asarray(a, dtype=np.float32)
    if result.base is not None:
        a = np.clip(result.base(obs) + a, -1, 1).astype(np.float32)
    return result.shield(obs, a) if result.shield is not None else a


def torch_act(module: DeterministicPolicy):
    """The module as a batch policy for evaluate()."""

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()

    return act
