"""PPO policy: the SB3 VecEnv adapter over a real ``glassd twin gym``, the setpoint shield, and a quick build (train,
beat the random policy, export, parity, golden I/O, manifest) into tmp dirs. Skips when node/tsx are missing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO

HAVE_GYM = shutil.which("node") is not None and (REPO / "node_modules" / "tsx").is_dir()
pytestmark = pytest.mark.skipif(not HAVE_GYM, reason="needs node and the repository's node_modules (the twin gym)")


@pytest.fixture(scope="module")
def env():
    from glass_factory.gym_env import GlassGymVecEnv

    e = GlassGymVecEnv(n_envs=3, seed=5, options={"episode_hours": 3 / 60})
    yield e
    assert e.close() == 0


def test_spaces_come_from_hello_without_episode_time(env):
    hello = env.hello
    assert env.observation_space.shape == (hello["observation"]["dim"] - 1,)
    assert "episode_time" not in env.obs_names
    assert env.obs_names == [n for n in hello["observation"]["names"] if n != "episode_time"]
    assert env.action_space.shape == (hello["action"]["dim"],)
    assert float(env.action_space.low.min()) == -1.0 and float(env.action_space.high.max()) == 1.0
    bands = env.tag_bands()
    assert bands["belt_speed"][0] == 150.0 and bands["belt_speed"][2] == "m/min"
    assert env.get_attr("render_mode") == [None, None, None]
    assert env.env_is_wrapped(object) == [False, False, False]


def test_reset_step_and_same_step_auto_reset(env):
    env.seed(11)
    obs = env.reset()
    assert obs.shape == (3, env.observation_space.shape[0]) and obs.dtype == np.float32
    assert env.observation_space.contains(obs[0])
    zero = np.zeros((3, env.action_space.shape[0]), np.float32)
    for k in range(3):  # 3 steps of 60 s = the episode
        obs, rew, done, infos = env.step(zero)
        assert rew.shape == (3,) and done.shape == (3,)
        for i in range(3):
            assert np.isclose(infos[i]["reward_terms"].sum(), rew[i], atol=1e-4)
            assert infos[i]["items_inspected"] >= infos[i]["items_defective"] >= 0
    assert done.all()
    for i in range(3):
        assert infos[i]["TimeLimit.truncated"] is True
        assert infos[i]["episode"]["l"] == 3
        assert infos[i]["terminal_observation"].shape == obs[i].shape
        assert not np.array_equal(infos[i]["terminal_observation"], obs[i])  # obs is the next episode's first


def test_seeded_resets_repeat_and_bad_actions(env):
    acts = np.sin(np.arange(3 * 9, dtype=np.float32).reshape(3, 9))

    def run():
        env.seed(21)
        out = [env.reset()]
        out.append(env.step(acts)[0])
        return np.concatenate(out)

    np.testing.assert_array_equal(run(), run())
    env.step(np.full((3, 9), 7.0, np.float32))  # out of range: clipped to the Box, not refused by the server
    bad = np.zeros((3, 9), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"actions\[1\]\[2\] \(belt_speed\)"):
        env.step(bad)


def test_unknown_excluded_observation_is_named():
    from glass_factory.gym_env import GlassGymVecEnv

    with pytest.raises(ValueError, match="no_such_obs"):
        GlassGymVecEnv(n_envs=1, exclude_obs=("no_such_obs",))


def test_shield_keeps_setpoints_in_the_safe_envelope(env):
    from glass_factory.models._policy_train import SetpointShield

    sh = SetpointShield(env, margin=0.05)
    pw = env.action_names.index("furnace_power")
    assert sh.safe_max[pw] < 100.0  # burner power's actuator max is its trip limit
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, size=(256, env.observation_space.shape[0])).astype(np.float32)
    obs[:, sh.sp_slots] = rng.choice([-1.0, -0.97, 0.0, 0.97, 1.0], size=(256, len(sh.sp_slots)))
    act = rng.uniform(-1, 1, size=(256, len(sh.sp_slots))).astype(np.float32)
    out = sh(obs, act)
    sp = sh.actuator_min + (obs[:, sh.sp_slots] + 1) / 2 * (sh.actuator_max - sh.actuator_min)
    new = sp + out * sh.max_step
    inside0 = (sp >= sh.safe_min) & (sp <= sh.safe_max)
    # from inside the envelope: stays inside; from outside: moves toward it (never away)
    assert np.all(~inside0 | ((new >= sh.safe_min - 1e-6) & (new <= sh.safe_max + 1e-6)))
    assert np.all(np.abs(out) <= 1.0)
    assert np.all(inside0 | (np.abs(np.clip(new, sh.safe_min, sh.safe_max) - new)
                             <= np.abs(np.clip(sp, sh.safe_min, sh.safe_max) - sp) + 1e-6))


def test_default_shield_keeps_setpoints_in_the_normal_band(env):
    from glass_factory.models._policy_train import PPOParams, SetpointShield

    assert PPOParams().shield_band_k == 1.0
    sh = SetpointShield(env)
    bands = env.tag_bands()
    for j, name in enumerate(env.action_names):
        mid, half, _ = bands[name]
        assert mid - half - 1e-9 <= sh.safe_min[j] < sh.safe_max[j] <= mid + half + 1e-9, name
    wide = SetpointShield(env, band_k=2.0)
    assert np.all(wide.safe_max >= sh.safe_max) and np.any(wide.safe_max > sh.safe_max)


def test_validation_suite_is_seeded_within_the_mix_ranges_and_not_the_test_scenarios():
    from glass_factory.common.context import TEST_SCENARIOS
    from glass_factory.models._policy_eval import validation_suite

    a, b = validation_suite(), validation_suite()
    assert a == b and validation_suite(seed=1) != a
    assert not {s["name"] for s in a} & set(TEST_SCENARIOS)
    kinds = [s["events"][0]["type"] for s in a]
    assert kinds.count("fan_failure") == 6 and kinds.count("burner_trip") == 3 and kinds.count("batch_change") == 3
    for s in a:
        ev = s["events"][0]
        assert 60 <= ev["at_min"] <= 150
        if ev["type"] == "fan_failure":  # src/twin/dataset/mix.ts: +1.5–4 °C/min, 10–40 K uneven
            assert 1.5 <= ev["cooling_rate_increase"] <= 4 and 10 <= ev["unevenness_k"] <= 40
        if ev["type"] == "burner_trip":
            assert 0.15 <= ev["power_loss"] <= 0.40 and 10 <= ev["duration_min"] <= 60


def test_rule_module_in_torch_equals_the_rule(env):
    import torch

    from glass_factory.models._policy_eval import RulePolicy
    from glass_factory.models._policy_train import RuleModule

    rule = RulePolicy(env)
    rng = np.random.default_rng(3)
    obs = rng.uniform(-1, 1, size=(512, env.observation_space.shape[0])).astype(np.float32)
    d = env.obs_slot("defective_pct")
    obs[:, d] = rng.choice([1.0, 3.0, 4.0, 9.0], size=512)  # below and above the rule's 3.5 % threshold
    for name in ("defect_pct:bubble", "defect_pct:stone"):
        obs[:, env.obs_slot(name)] = rng.uniform(0, 4, size=512)
    want = rule(obs)
    with torch.no_grad():
        got = RuleModule(rule)(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.any(np.abs(want) == 1.0) and np.any((np.abs(want) > 0.01) & (np.abs(want) < 0.99))


def test_scenario_evaluation_runs_each_policy_on_each_scenario():
    from glass_factory.models._policy_eval import RulePolicy, evaluate_scenarios, hold_policy, scenario_means

    # a 30 min scripted push: the belt ramps to 190 m/min from minute 5; hold keeps it, the rule walks it back
    push = {"name": "push", "duration_hours": 0.5,
            "events": [{"type": "setpoint", "at_min": 5, "tag": "belt_speed", "value": 190, "ramp_min": 3}]}
    calm = {"name": "calm", "duration_hours": 0.25, "events": []}
    res = evaluate_scenarios({"rule": RulePolicy, "hold": hold_policy}, [push, calm], n_envs=2, seed=9)
    assert list(res) == ["push", "calm"]
    r_push, r_calm = list(res.values())
    assert r_push["hold"]["steps_mean"] == 30 and r_calm["hold"]["steps_mean"] == 15
    # the ramp owned the belt for 3 of 30 decisions, in both policies' episodes
    assert r_push["hold"]["scenario_override_step_share"] == pytest.approx(3 / 30)
    assert r_push["rule"]["scenario_override_step_share"] == pytest.approx(3 / 30)
    assert r_calm["rule"]["scenario_override_step_share"] == 0
    assert r_push["hold"]["belt_speed_mean_m_min"] > r_push["rule"]["belt_speed_mean_m_min"] + 5
    assert r_push["hold"]["envelope_violations"] == r_push["rule"]["envelope_violations"] == 0
    means = scenario_means(res)
    assert set(means) == {"rule", "hold"} and means["rule"]["scenarios"] == 2
    assert means["hold"]["return_per_step"] == pytest.approx(
        (r_push["hold"]["return_per_step"] + r_calm["hold"]["return_per_step"]) / 2)


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    from glass_factory.common.context import BuildContext
    from glass_factory.models import policy

    tmp = tmp_path_factory.mktemp("policy")
    ctx = BuildContext(quick=True, seed=0, repo_root=REPO, models_dir=tmp / "models", work_dir=tmp / "work",
                       trials=0, threads=1, verbose=False)
    entry = policy.build(ctx)
    return ctx, entry


def test_quick_ppo_beats_random_without_envelope_violations(quick_build):
    _, entry = quick_build
    checks = entry["_acceptance"]["checks"]
    assert entry["_acceptance"]["ok"], checks
    assert checks["return_vs_random"] and checks["zero_envelope_violations"]
    assert checks["scenarios_zero_envelope_violations"]
    assert entry["metrics"]["scenario_envelope_violations"] == 0
    assert entry["data"]["scenarios"]["test"] == ["fan_failure", "belt_speed_push"]
    assert entry["data"]["scenarios"]["train"] == ["dataset_mix"]
    assert entry["metrics"]["return_per_step"] > entry["metrics"]["random_return_per_step"]


def test_export_parity_golden_and_manifest(quick_build, env):
    from glass_factory.common import artifacts, onnx_tools

    ctx, entry = quick_build
    checks = entry["_acceptance"]["checks"]
    assert checks["parity_torch"] <= 1e-4 and checks["parity_fp32"] <= 1e-4
    path = ctx.models_dir / entry["file"]
    onnx_tools.check_standard(path, 17)
    assert entry["opset"] == 17 and path.stat().st_size < 10 * 1024 * 1024
    man = json.loads((ctx.models_dir / "manifest.json").read_text())
    assert [e["name"] for e in man["models"]] == ["policy"]
    assert [i["name"] for i in entry["inputs"]] == ["obs"] and entry["inputs"][0]["shape"] == [-1, 33]
    assert [o["name"] for o in entry["outputs"]] == ["action", "setpoint_delta"]
    ex = entry["extra"]
    assert entry["feature_order"] == ex["obs_names"] and len(ex["obs_names"]) == 33
    assert len(ex["action_names"]) == len(ex["max_step"]) == len(ex["action_bounds"]) == 9
    assert entry["normalisation"]["in_graph"] and len(entry["normalisation"]["mean"]) == 33
    v = artifacts.verify_entry(ctx.models_dir, entry)
    assert v["sha256_ok"] and v["bytes_ok"] and v["golden"]["ok"], v
    card = (ctx.models_dir / entry["card"]).read_text()
    assert card.count("| nominal | ppo |") == 1
    for sc in ("fan_failure", "belt_speed_push"):  # the per-scenario table: PPO, rule and hold on each
        assert all(card.count(f"| {sc} | {pol} |") == 1 for pol in ("ppo", "rule", "hold"))
    assert card.count("| **mean of 2** |") == 3

    # the graph: dynamic batch; setpoint_delta = action × max_step; the shield's bounds hold at the actuator edges
    sess = onnx_tools.session(path)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(7, 33)).astype(np.float32)
    sp_slots = [ex["obs_names"].index(f"setpoint:{n}") for n in ex["action_names"]]
    obs[:, sp_slots] = rng.choice([-1.0, 1.0], size=(7, 9))
    a, d = sess.run(["action", "setpoint_delta"], {"obs": obs})
    assert a.shape == (7, 9) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_allclose(d, a * np.asarray(ex["max_step"], np.float32), rtol=1e-6, atol=1e-6)
    lo = np.array([b["safe_min"] for b in ex["action_bounds"]])
    hi = np.array([b["safe_max"] for b in ex["action_bounds"]])
    amin, amax = np.array(ex["actuator_min"]), np.array(ex["actuator_max"])
    sp = amin + (obs[:, sp_slots] + 1) / 2 * (amax - amin)
    new = sp + d
    # at an actuator edge (outside the envelope) the shield moves the setpoint back toward it
    assert np.all((sp <= lo) <= (new >= sp - 1e-4)) and np.all((sp >= hi) <= (new <= sp + 1e-4))
    assert np.all(np.abs(np.clip(new, lo, hi) - new) <= np.abs(np.clip(sp, lo, hi) - sp) + 1e-4)

    # ORT equals the torch module built from the saved PPO (independent of the build's own parity numbers)
    from stable_baselines3 import PPO

    model = PPO.load(ctx.work_dir / "policy" / "ppo.zip", device="cpu")
    golden = np.load(ctx.models_dir / "policy" / ctx.version / "golden" / "in.obs.npy")
    z = np.clip((golden - np.array(entry["normalisation"]["mean"])) /
                np.sqrt(np.array(entry["normalisation"]["var"]) + 1e-8), -10, 10).astype(np.float32)
    raw, _ = model.predict(z, deterministic=True)
    if ex["residual"]["in_graph"]:  # the actor's output is a correction of the rule-based operator's action
        from glass_factory.models._policy_eval import RulePolicy

        raw = np.clip(RulePolicy(env)(golden) + raw, -1, 1)
    got = sess.run(["action"], {"obs": golden})[0]
    # exported action = SB3's deterministic action cut to the shield's interval for the observed setpoints
    sp = amin + (golden[:, sp_slots].astype(np.float64) + 1) / 2 * (amax - amin)
    step = np.array(ex["max_step"])
    want = np.clip(np.minimum(np.maximum(raw, (lo - sp) / step), (hi - sp) / step), -1, 1)
    np.testing.assert_allclose(got, want, atol=1e-4)
