"""glass_factory.gym_client against a real ``glassd twin gym`` server.

Run from the repository root: ``python3 -m unittest discover -s models/factory/tests``. Standard library only; the
numpy path is tested when numpy is installed. Skips (does not fail) when node or the repository's node_modules
are missing, since then no server can start.
"""

import math
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

FACTORY = Path(__file__).resolve().parents[1]
REPO = FACTORY.parents[1]
sys.path.insert(0, str(FACTORY))

from glass_factory import gym_client as gc  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

HAVE_SERVER = shutil.which("node") is not None and (REPO / "node_modules" / "tsx").is_dir()
SKIP_WHY = "needs node and the repository's node_modules (npm install)"


class FramingTest(unittest.TestCase):
    def test_frame_round_trip_with_the_standard_library(self):
        import io

        import array

        acts = array.array("f", [0.5, -1.0, 0.25, 1.0])
        frame = gc.encode_frame({"type": "step", "id": 3}, [("actions", "<f4", [2, 2], acts.tobytes())])
        self.assertEqual(frame[:4], b"GLGY")
        header, body = gc.read_frame(io.BytesIO(frame))
        self.assertEqual(header["type"], "step")
        self.assertEqual(header["arrays"], [{"name": "actions", "dtype": "<f4", "shape": [2, 2]}])
        arrays = gc.split_arrays(header, body)
        dtype, shape, raw = arrays["actions"]
        self.assertEqual((dtype, shape), ("<f4", [2, 2]))
        self.assertEqual(gc.flat_values(dtype, raw).tolist(), [0.5, -1.0, 0.25, 1.0])

    def test_a_truncated_stream_is_a_protocol_error(self):
        import io

        frame = gc.encode_frame({"type": "hello"})
        with self.assertRaises(gc.GymProtocolError):
            gc.read_frame(io.BytesIO(frame[:-2]))
        with self.assertRaises(gc.GymProtocolError):
            gc.read_frame(io.BytesIO(b"nonsense" + frame))


@unittest.skipUnless(HAVE_SERVER, SKIP_WHY)
class VecEnvTest(unittest.TestCase):
    """One server for the class (starting one costs about a second)."""

    @classmethod
    def setUpClass(cls):
        cls.env = gc.GlassTwinVecEnv(n_envs=3, seed=7, use_numpy=False, log_level="error")

    @classmethod
    def tearDownClass(cls):
        code = cls.env.close()
        assert code == 0, f"server exit code {code}"

    def test_spaces_from_hello(self):
        env = self.env
        self.assertEqual(env.act_dim, len(env.action_names))
        self.assertEqual(env.obs_dim, len(env.observation_names))
        self.assertIn("furnace_power", env.action_names)
        self.assertIn("belt_speed", env.action_names)
        self.assertEqual(env.reward_terms[0], "throughput")
        self.assertEqual(len(env.spaces["observation"]["low"]), env.obs_dim)

    def test_reset_step_shapes_and_reward_terms(self):
        env = self.env
        obs, info = env.reset(seed=7)
        self.assertEqual(info["seed"], 7)
        self.assertEqual((len(obs), len(obs[0])), (3, env.obs_dim))
        obs, reward, terminated, truncated, info = env.step([[0.0] * env.act_dim] * 3)
        self.assertEqual((len(obs), len(obs[0])), (3, env.obs_dim))
        self.assertEqual(len(reward), 3)
        self.assertEqual(terminated, [False, False, False])
        self.assertEqual(truncated, [False, False, False])
        self.assertEqual((len(info["reward_terms"]), len(info["reward_terms"][0])), (3, len(env.reward_terms)))
        for i in range(3):
            self.assertTrue(math.isfinite(reward[i]))
            self.assertAlmostEqual(sum(info["reward_terms"][i]), reward[i], places=4)

    def test_same_seed_same_actions_same_trajectory(self):
        env = self.env
        acts = [[math.sin(i + 3 * j) for j in range(env.act_dim)] for i in range(3)]

        def run():
            out = [env.reset(seed=11)[0]]
            for _ in range(5):
                obs, reward, *_ = env.step(acts)
                out.append((obs, reward))
            return out

        self.assertEqual(run(), run())

    def test_bad_actions_raise_and_the_server_survives(self):
        env = self.env
        env.reset(seed=1)
        bad = [[0.0] * env.act_dim for _ in range(3)]
        bad[2][1] = 1.5
        with self.assertRaises(gc.GymServerError) as ctx:
            env.step(bad)
        self.assertEqual(ctx.exception.code, "action_out_of_range")
        self.assertIn("actions[2][1]", ctx.exception.message)
        bad[2][1] = float("nan")
        with self.assertRaises(gc.GymServerError) as ctx:
            env.step(bad)
        self.assertEqual(ctx.exception.code, "bad_action_value")
        with self.assertRaises(ValueError):
            env.step([[0.0] * env.act_dim])  # wrong shape, caught before sending
        obs, *_ = env.step([[0.0] * env.act_dim] * 3)
        self.assertAlmostEqual(obs[0][-1], 1 / 480, places=6)  # one step taken, the refused ones were not

    def test_auto_reset_returns_the_final_observation(self):
        env = self.env
        env.reset(seed=2, options={"episode_hours": 2 / 60})  # 2 steps of 60 s
        zero = [[0.0] * env.act_dim] * 3
        _, _, _, truncated, info = env.step(zero)
        self.assertNotIn("final_observation", info)
        obs, _, terminated, truncated, info = env.step(zero)
        self.assertEqual(truncated, [True, True, True])
        self.assertEqual(terminated, [False, False, False])
        self.assertEqual(info["_final_observation"], [True, True, True])
        for i in range(3):
            self.assertEqual(info["final_observation"][i][-1], 1.0)
            self.assertEqual(obs[i][-1], 0.0)
            self.assertEqual(info["final_info"][i]["reason"], "time_limit")
            self.assertEqual(info["final_info"][i]["episode_length"], 2)
        env.reset(seed=2, options={})  # back to the default options for the other tests

    def test_bad_options_name_the_field(self):
        with self.assertRaises(gc.GymServerError) as ctx:
            self.env.reset(seed=1, options={"model_step_s": 7})
        self.assertEqual(ctx.exception.code, "bad_option")
        self.assertIn("model_step_s", ctx.exception.message)
        self.env.reset(seed=1, options={})

    def test_scenario_option(self):
        env = self.env
        try:
            obs, info = env.reset(seed=4, options={"scenario": "belt_speed_push", "start_spread": 0})
            self.assertEqual(info["scenario"]["name"], "belt_speed_push")
            self.assertEqual(info["options"]["episode_hours"], 8)  # the scenario's duration_hours
            belt = env.action_names.index("belt_speed")
            zero = [[0.0] * env.act_dim] * 3
            flagged = []
            for k in range(62):  # the push ramps belt_speed from scenario minute 60 over 20 min
                _, _, _, _, info = env.step(zero)
                self.assertEqual(len(info["setpoint_overridden"]), 3)
                flagged.append(info["setpoint_overridden"][0][belt])
            self.assertEqual(flagged.index(True), 60)
            self.assertTrue(all(flagged[60:]))
            # inline scenarios and the per-episode dataset mix
            _, info = env.reset(seed=4, options={"scenario": {"name": "mine", "duration_hours": 1, "events": []}})
            self.assertEqual((info["scenario"]["name"], info["options"]["episode_hours"]), ("mine", 1))
            _, info = env.reset(seed=4, options={"scenario": "dataset_mix"})
            self.assertTrue(info["scenario"]["per_episode"])
            with self.assertRaises(gc.GymServerError) as ctx:
                env.reset(seed=4, options={"scenario": "no_such_scenario"})
            self.assertEqual(ctx.exception.code, "bad_option")
            self.assertIn("reset.options.scenario", ctx.exception.message)
        finally:
            env.reset(seed=1, options={})


@unittest.skipUnless(HAVE_SERVER, SKIP_WHY)
@unittest.skipUnless(np is not None, "numpy is not installed")
class NumpyTest(unittest.TestCase):
    def test_numpy_arrays(self):
        with gc.GlassTwinVecEnv(n_envs=4, seed=3, use_numpy=True, log_level="error") as env:
            obs, _ = env.reset()
            self.assertEqual(obs.shape, (4, env.obs_dim))
            self.assertEqual(obs.dtype, np.float32)
            acts = np.zeros((4, env.act_dim), dtype=np.float64)
            obs, reward, terminated, truncated, info = env.step(acts)
            self.assertEqual(reward.shape, (4,))
            self.assertEqual(terminated.dtype, np.bool_)
            np.testing.assert_allclose(info["reward_terms"].sum(axis=1), reward, rtol=1e-4, atol=1e-4)


@unittest.skipUnless(HAVE_SERVER, SKIP_WHY)
class ProcessTest(unittest.TestCase):
    def test_eof_on_stdin_exits_zero(self):
        client = gc.GlassTwinClient(log_level="error")
        try:
            hello, _ = client.request({"type": "hello"})
            self.assertEqual(hello["protocol"], gc.PROTOCOL)
            client.proc.stdin.close()
            self.assertEqual(client.proc.wait(timeout=10), 0)
        finally:
            if client.proc.poll() is None:
                client.proc.kill()
                client.proc.wait()
            client.proc.stdout.close()

    def test_a_server_that_cannot_start_is_reported(self):
        client = gc.GlassTwinClient(command=["node", "-e", "process.exit(3)"], stderr=subprocess.DEVNULL)
        try:
            with self.assertRaises(gc.GymProtocolError):
                client.request({"type": "hello"})
        finally:
            self.assertEqual(client.close(), 3)


if __name__ == "__main__":
    unittest.main()
