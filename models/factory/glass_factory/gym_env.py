"""stable-baselines3 ``VecEnv`` over ``glassd twin gym``: one server process serves all N envs.

:class:`GlassGymVecEnv` wraps :class:`glass_factory.gym_client.GlassTwinVecEnv` (PROTOCOL.md, glassd-twin-gym v1):

- spaces come from the server's ``hello`` (names, units, bounds), never hard-coded; observation entries can be
  dropped by name (default: ``episode_time``, which only exists inside a training episode — the daemon has no
  episode clock, so a policy that read it could not be run there);
- auto-reset is the server's same-step mode, which is SB3's convention: for an env whose episode ended, ``obs`` is
  the first observation of the next episode and ``infos[i]["terminal_observation"]`` the last one of the ended
  episode; ``infos[i]["TimeLimit.truncated"]`` tells PPO to bootstrap a time-limit end (not a hard-limit one);
- ``infos[i]["episode"] = {"r", "l", "t"}`` on episode ends (what SB3's Monitor would add), so PPO's logger and
  ``ep_info_buffer`` work without a Monitor wrapper; every step's ``infos[i]`` also carries ``reward_terms`` (the
  reward's seven terms), ``items_inspected``, ``items_defective`` and ``setpoint_overridden`` (per lever, True where
  a scenario setpoint write won over the action in that step);
- ``options={"scenario": "fan_failure"}`` runs a scenario in every episode (or ``"dataset_mix"``: a fresh random
  disturbance mix per episode); ``scenario_info`` holds the server's description of it after a reset;
- actions are clipped to [-1, 1] before they are sent (the server refuses out-of-range values; SB3's PPO already
  clips Gaussian samples to the Box, this only guards other callers); NaN actions raise.

    with GlassGymVecEnv(n_envs=16, seed=0) as env:
        model = PPO("MlpPolicy", VecNormalize(env), ...)
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterable, Sequence

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from .gym_client import GlassTwinVecEnv

DEFAULT_EXCLUDE = ("episode_time",)
_BAND_UNIT = re.compile(r"^band-normalised (?P<unit>.*) \(\(x - (?P<mid>[-+0-9.eE]+)\) / (?P<half>[-+0-9.eE]+)\)$")


class GlassGymVecEnv(VecEnv):
    """SB3 VecEnv of ``n_envs`` twin lines in one ``glassd twin gym`` server.

    ``seed``: env i's first episode is seeded ``seed + i`` (SB3's ``VecEnv.seed(s)`` gives the same mapping);
    ``options``: the gym's ``reset.options`` (PROTOCOL.md, "Options"), used by every reset;
    ``exclude_obs``: observation names left out of the observation vector;
    ``server``: an already-started GlassTwinVecEnv with the same n_envs to reuse (it is then closed with this env).
    """

    def __init__(
        self,
        n_envs: int = 16,
        seed: int = 0,
        options: dict | None = None,
        exclude_obs: Iterable[str] = DEFAULT_EXCLUDE,
        log_level: str = "error",
        command: Sequence[str] | None = None,
        server: GlassTwinVecEnv | None = None,
    ):
        if server is not None and server.num_envs != n_envs:
            raise ValueError(f"server has {server.num_envs} envs, not n_envs={n_envs}")
        self.gym = server or GlassTwinVecEnv(
            n_envs=n_envs, seed=seed, options=options or {}, command=command, log_level=log_level, use_numpy=True
        )
        self.base_seed = int(seed)
        self.base_options = dict(options or {})
        hello = self.gym.spaces
        self.hello = hello
        all_names = list(hello["observation"]["names"])
        exclude = set(exclude_obs)
        unknown = exclude - set(all_names)
        if unknown:
            self.gym.close()
            raise ValueError(f"exclude_obs names unknown observations {sorted(unknown)}; known: {all_names}")
        self.obs_index = np.array([i for i, n in enumerate(all_names) if n not in exclude], dtype=np.int64)
        self.obs_names = [all_names[i] for i in self.obs_index]
        self.obs_units = [hello["observation"]["units"][i] for i in self.obs_index]
        low = np.asarray(hello["observation"]["low"], dtype=np.float32)[self.obs_index]
        high = np.asarray(hello["observation"]["high"], dtype=np.float32)[self.obs_index]
        act = hello["action"]
        self.action_names = list(act["names"])
        self.action_units = list(act["units"])
        self.max_step = np.asarray(act["max_step"], dtype=np.float64)
        self.actuator_min = np.asarray(act["actuator_min"], dtype=np.float64)
        self.actuator_max = np.asarray(act["actuator_max"], dtype=np.float64)
        self.reward_terms = list(hello["reward"]["terms"])
        self.render_mode = None
        super().__init__(
            n_envs,
            spaces.Box(low=low, high=high, dtype=np.float32),
            spaces.Box(low=-1.0, high=1.0, shape=(len(self.action_names),), dtype=np.float32),
        )
        self._actions: np.ndarray | None = None
        self.scenario_info: dict | None = None  # the reset reply's ``scenario`` (None = no scenario)
        self._t0 = time.monotonic()
        self._closed = False

    # --- what callers need to know about the spaces ---

    def obs_slot(self, name: str) -> int:
        """Index of an observation by its hello name (e.g. ``"tag:belt_speed"``) in this env's vector."""
        try:
            return self.obs_names.index(name)
        except ValueError:
            raise KeyError(f"observation {name!r} is not in this env's vector (excluded or unknown)") from None

    def tag_bands(self) -> dict[str, tuple[float, float, str]]:
        """``tag id → (band middle, band half-width, unit)`` parsed from hello's observation units."""
        out = {}
        for name, unit in zip(self.hello["observation"]["names"], self.hello["observation"]["units"]):
            if not name.startswith("tag:"):
                continue
            m = _BAND_UNIT.match(unit)
            if not m:
                raise ValueError(f"hello.observation.units for {name} is not 'band-normalised U ((x - m) / h)': {unit}")
            out[name[4:]] = (float(m["mid"]), float(m["half"]), m["unit"])
        return out

    def select(self, full_obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(full_obs[..., self.obs_index], dtype=np.float32)

    # --- VecEnv ---

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        opts = self._options[0] if self._options and self._options[0] else None
        options = dict(self.base_options, **opts) if opts else self.base_options
        if seed is None and not self.gym._ready:
            seed = self.base_seed
        obs, info = self.gym.reset(seed=seed, options=options)
        self.scenario_info = info.get("scenario")
        self.reset_infos = [{"seed": None if info["seed"] is None else info["seed"] + i, "scenario": self.scenario_info}
                            for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return self.select(obs)

    def step_async(self, actions: np.ndarray) -> None:
        a = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)
        if not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"actions[{bad[0]}][{bad[1]}] ({self.action_names[bad[1]]}) is not finite")
        self._actions = np.clip(a, -1.0, 1.0)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        obs, reward, terminated, truncated, info = self.gym.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        terms = info["reward_terms"]
        inspected = info["items_inspected"]
        defective = info["items_defective"]
        overridden = info.get("setpoint_overridden")
        infos: list[dict[str, Any]] = [
            {"reward_terms": terms[i], "items_inspected": int(inspected[i]), "items_defective": int(defective[i])}
            for i in range(self.num_envs)
        ]
        if overridden is not None:
            for i in range(self.num_envs):
                infos[i]["setpoint_overridden"] = overridden[i]
        if "final_observation" in info:
            elapsed = round(time.monotonic() - self._t0, 6)
            for i in np.flatnonzero(dones):
                fo = info["final_observation"][i]
                fi = info["final_info"][i] or {}
                infos[i]["terminal_observation"] = self.select(fo)
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["final_info"] = fi
                infos[i]["episode"] = {"r": float(fi.get("episode_return", 0.0)), "l": int(fi.get("episode_length", 0)),
                                       "t": elapsed}
        return self.select(obs), reward.astype(np.float32), dones, infos

    def close(self) -> int | None:
        if self._closed:
            return None
        self._closed = True
        return self.gym.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if not hasattr(self, attr_name):
            raise AttributeError(attr_name)
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError(f"the gym's envs have no settable attribute {attr_name!r} (use set_options / reset)")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        raise AttributeError(f"the gym's envs live in the server process; no method {method_name!r} to call")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)
