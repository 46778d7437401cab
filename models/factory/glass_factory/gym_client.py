"""Client of ``glassd twin gym``: the glass line's digital twin as vectorised RL environments.

The server speaks the protocol in ``src/twin/gym/PROTOCOL.md`` (glassd-twin-gym v1) on its stdin/stdout. This module
spawns it and exposes :class:`GlassTwinVecEnv` with ``reset()`` / ``step()`` / ``close()`` in the style of
gymnasium's ``VectorEnv`` (same-step auto-reset, the last observation of an ended episode in
``info["final_observation"]``). A gymnasium ``VectorEnv`` / stable-baselines3 ``VecEnv`` wrapper belongs with the
model-factory issue; it only needs to build ``Box`` spaces from :attr:`GlassTwinVecEnv.spaces` and forward calls.

Only the standard library is required. With numpy installed (the default when available) arrays come back as
numpy arrays (float32 observations and rewards, bool flags); without it, as nested lists — slower, meant for tests
and tools, not for training.

    with GlassTwinVecEnv(n_envs=16, seed=0) as env:
        obs, info = env.reset()
        obs, reward, terminated, truncated, info = env.step(actions)   # actions: [16, act_dim] in [-1, 1]
"""

from __future__ import annotations

import array
import json
import os
import shlex
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

try:  # numpy is optional: the factory has it, a bare CI image may not
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

PROTOCOL = "glassd-twin-gym"
PROTOCOL_VERSION = 1
MAGIC = b"GLGY"
_PREFIX = struct.Struct("<4sII")
# numpy type strings used on the wire → array module type codes (same item sizes on every CPython platform we use)
_ARRAY_CODES = {"<f4": "f", "<f8": "d", "<i4": "i", "|u1": "B"}
_ITEM_SIZE = {"<f4": 4, "<f8": 8, "<i4": 4, "|u1": 1}
_LITTLE_ENDIAN = sys.byteorder == "little"

# models/factory/glass_factory/gym_client.py → the glassd repository root
REPO_ROOT = Path(__file__).resolve().parents[3]


class GymServerError(RuntimeError):
    """The server answered ``error``: ``code`` is one of PROTOCOL.md's error codes, the message names the field."""

    def __init__(self, code: str, message: str, request: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request = request


class GymProtocolError(RuntimeError):
    """The server's output could not be read as the protocol, or the server went away."""


# --- framing (standard library only) ---


def encode_frame(header: dict, arrays: Sequence[tuple[str, str, Sequence[int], bytes]] = ()) -> bytes:
    """One frame: b"GLGY", u32 LE header length, u32 LE body length, the JSON header, the arrays' raw bytes.

    ``arrays`` are ``(name, dtype, shape, little-endian bytes)``; their descriptors go into ``header["arrays"]``.
    """
    if arrays:
        header = dict(header, arrays=[{"name": n, "dtype": d, "shape": list(s)} for n, d, s, _ in arrays])
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body = b"".join(b for _, _, _, b in arrays)
    return _PREFIX.pack(MAGIC, len(head), len(body)) + head + body


def read_frame(stream) -> tuple[dict, bytes]:
    """Reads one frame from a binary stream; returns (header, body). Raises GymProtocolError on EOF or garbage."""
    prefix = _read_exact(stream, _PREFIX.size)
    magic, hlen, blen = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise GymProtocolError(f"expected a frame starting with {MAGIC!r}, got {prefix!r}")
    header = json.loads(_read_exact(stream, hlen).decode("utf-8"))
    body = _read_exact(stream, blen) if blen else b""
    return header, body


def split_arrays(header: dict, body: bytes) -> dict[str, tuple[str, list[int], memoryview]]:
    """The body's arrays as ``name → (dtype, shape, bytes view)``, in the order ``header["arrays"]`` lists them."""
    out = {}
    view = memoryview(body)
    off = 0
    for d in header.get("arrays", []):
        dtype, shape = d["dtype"], list(d["shape"])
        count = 1
        for x in shape:
            count *= x
        size = count * _ITEM_SIZE[dtype]
        out[d["name"]] = (dtype, shape, view[off : off + size])
        off += size
    if off != len(body):
        raise GymProtocolError(f"arrays describe {off} bytes but the body has {len(body)}")
    return out


def flat_values(dtype: str, raw: memoryview) -> array.array:
    """An array's elements as a flat ``array.array`` (standard library path)."""
    a = array.array(_ARRAY_CODES[dtype])
    a.frombytes(raw)
    if not _LITTLE_ENDIAN and a.itemsize > 1:
        a.byteswap()
    return a


def _read_exact(stream, n: int) -> bytes:
    chunks = []
    while n > 0:
        b = stream.read(n)
        if not b:
            raise GymProtocolError("the gym server closed its output (did it fail to start? see its stderr)")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def default_command(repo_root: Path | str = REPO_ROOT, log_level: str = "warn") -> list[str]:
    """How to start the server: ``$GLASSD_GYM_COMMAND`` if set, else the built ``dist/main.js``, else tsx on the
    sources (``node --import tsx src/main.ts``; needs ``npm install`` in the repository)."""
    env = os.environ.get("GLASSD_GYM_COMMAND")
    if env:
        return shlex.split(env)
    node = os.environ.get("NODE", "node")
    root = Path(repo_root)
    tail = ["twin", "gym", "--log-level", log_level]
    if (root / "dist" / "main.js").exists():
        return [node, str(root / "dist" / "main.js"), *tail]
    return [node, "--import", "tsx", str(root / "src" / "main.ts"), *tail]


# --- the server process ---


class GlassTwinClient:
    """A running ``glassd twin gym`` server and its request/reply channel (standard library only)."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        cwd: Path | str | None = None,
        log_level: str = "warn",
        stderr=None,
    ):
        """``stderr``: where the server's logs go (None = this process's stderr, or subprocess.DEVNULL, a file)."""
        root = Path(cwd) if cwd is not None else REPO_ROOT
        self.command = list(command) if command is not None else default_command(root, log_level)
        self.proc = subprocess.Popen(
            self.command, cwd=str(root), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0
        )
        self._closed = False

    def request(self, header: dict, arrays=()) -> tuple[dict, dict[str, tuple[str, list[int], memoryview]]]:
        """Sends one request and returns the reply (header, arrays); raises GymServerError on an ``error`` reply."""
        self.send_raw(encode_frame(header, arrays))
        return self.read_reply()

    def send_raw(self, data: bytes) -> None:
        if self._closed:
            raise GymProtocolError("the client is closed")
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError as err:
            raise GymProtocolError(f"the gym server is gone (exit code {self.proc.poll()})") from err

    def read_reply(self) -> tuple[dict, dict[str, tuple[str, list[int], memoryview]]]:
        header, body = read_frame(self.proc.stdout)
        if header.get("type") == "error":
            raise GymServerError(header.get("code", "?"), header.get("message", ""), header.get("request"))
        return header, split_arrays(header, body)

    def close(self, timeout: float = 5.0) -> int | None:
        """Sends ``close`` (or just closes stdin if the server is busy or gone), waits for the exit; returns its code.
        Kills the server if it has not exited within ``timeout`` seconds."""
        if self._closed:
            return self.proc.poll()
        try:
            if self.proc.poll() is None:
                self.send_raw(encode_frame({"type": "close"}))
                read_frame(self.proc.stdout)
        except (GymProtocolError, OSError, ValueError):
            pass
        self._closed = True
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __del__(self):  # a forgotten client must not leave a server behind
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


# --- vectorised environments ---


class GlassTwinVecEnv:
    """``n_envs`` twin environments in one server process, stepped together.

    Attributes after construction: ``num_envs``, ``obs_dim``, ``act_dim``, ``observation_names``,
    ``action_names``, ``reward_terms`` (names of the columns of ``info["reward_terms"]``) and ``spaces`` (the
    server's ``hello``: bounds, units, reward formula, option docs).
    """

    def __init__(
        self,
        n_envs: int = 16,
        seed: int | None = None,
        options: dict | None = None,
        *,
        command: Sequence[str] | None = None,
        cwd: Path | str | None = None,
        log_level: str = "warn",
        stderr=None,
        use_numpy: bool | None = None,
    ):
        if use_numpy and _np is None:
            raise ImportError("use_numpy=True but numpy is not installed")
        self.use_numpy = (_np is not None) if use_numpy is None else bool(use_numpy)
        self.num_envs = int(n_envs)
        self._seed = seed
        self._options = dict(options or {})
        self.client = GlassTwinClient(command=command, cwd=cwd, log_level=log_level, stderr=stderr)
        try:
            hello, _ = self.client.request({"type": "hello", "version": PROTOCOL_VERSION})
        except Exception:
            self.client.close()
            raise
        if hello.get("protocol") != PROTOCOL or hello.get("version") != PROTOCOL_VERSION:
            self.client.close()
            raise GymProtocolError(f"server speaks {hello.get('protocol')} v{hello.get('version')}, not {PROTOCOL} v1")
        self.spaces = hello
        self.obs_dim = hello["observation"]["dim"]
        self.act_dim = hello["action"]["dim"]
        self.observation_names = hello["observation"]["names"]
        self.action_names = hello["action"]["names"]
        self.reward_terms = hello["reward"]["terms"]
        self._ready = False

    # gymnasium-style API

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Starts a new episode in every env (env i seeded ``seed + i``); returns ``(obs, info)``.

        ``seed=None`` reuses the constructor's seed on the first reset and otherwise lets every env continue its
        own seed stream. ``options`` (PROTOCOL.md, "Options") replace the constructor's for this and later resets;
        ``options["scenario"]`` runs a scenario in every episode (a built-in name such as ``"fan_failure"``, a file
        path, an inline scenario dict, or ``"dataset_mix"``), and ``info["scenario"]`` describes it.
        """
        if options is not None:
            self._options = dict(options)
        if seed is None and not self._ready:
            seed = self._seed
        header = {"type": "reset", "n_envs": self.num_envs, "options": self._options}
        if seed is not None:
            header["seed"] = int(seed)
        reply, arrays = self.client.request(header)
        self._ready = True
        return self._array(arrays["obs"]), {"options": reply["options"], "seed": reply["seed"],
                                            "scenario": reply.get("scenario")}

    def step(self, actions):
        """One control interval in every env. ``actions``: shape ``[num_envs, act_dim]``, values in [-1, 1]
        (each a setpoint change of action × max_step); out-of-range or NaN actions raise GymServerError and
        step nothing.

        Returns ``(obs, reward, terminated, truncated, info)``; ``info`` holds ``reward_terms`` ``[num_envs,
        len(reward_terms)]``, ``items_inspected`` / ``items_defective`` ``[num_envs]``, ``setpoint_overridden``
        ``[num_envs, act_dim]`` (True where a scenario setpoint write overrode the action), and for envs whose episode
        ended (and was reset at once): ``final_observation`` / ``final_info`` (lists with None for the others) and
        the mask ``_final_observation``.
        """
        reply, arrays = self.client.request({"type": "step"}, [self._encode_actions(actions)])
        obs = self._array(arrays["obs"])
        reward = self._array(arrays["reward"])
        terminated = self._array(arrays["terminated"], as_bool=True)
        truncated = self._array(arrays["truncated"], as_bool=True)
        info: dict[str, Any] = {
            "reward_terms": self._array(arrays["reward_terms"]),
            "items_inspected": self._array(arrays["items_inspected"]),
            "items_defective": self._array(arrays["items_defective"]),
        }
        if "setpoint_overridden" in arrays:  # [num_envs, act_dim]: a scenario setpoint write won over the action
            info["setpoint_overridden"] = self._array(arrays["setpoint_overridden"], as_bool=True)
        final = reply.get("final")
        if final:
            rows = self._array(arrays["final_obs"])
            final_obs: list = [None] * self.num_envs
            final_info: list = [None] * self.num_envs
            for k, f in enumerate(final):
                final_obs[f["env"]] = rows[k]
                final_info[f["env"]] = {key: v for key, v in f.items() if key != "env"}
            info["final_observation"] = final_obs
            info["final_info"] = final_info
            info["_final_observation"] = [o is not None for o in final_obs]
            if self.use_numpy:
                info["_final_observation"] = _np.array(info["_final_observation"], dtype=bool)
        return obs, reward, terminated, truncated, info

    def close(self) -> int | None:
        """Closes the server; returns its exit code (0 on a clean close)."""
        return self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # conversions

    def _encode_actions(self, actions) -> tuple[str, str, list[int], bytes]:
        shape = [self.num_envs, self.act_dim]
        if _np is not None and isinstance(actions, _np.ndarray):
            a = _np.ascontiguousarray(actions, dtype="<f4")
            if list(a.shape) != shape:
                raise ValueError(f"actions must have shape {shape}, got {list(a.shape)}")
            return ("actions", "<f4", shape, a.tobytes())
        rows = list(actions)
        if len(rows) != self.num_envs or any(len(r) != self.act_dim for r in rows):
            raise ValueError(f"actions must have shape {shape}")
        flat = array.array("f", (float(x) for r in rows for x in r))
        if not _LITTLE_ENDIAN:
            flat.byteswap()
        return ("actions", "<f4", shape, flat.tobytes())

    def _array(self, entry, as_bool: bool = False):
        dtype, shape, raw = entry
        if self.use_numpy:
            a = _np.frombuffer(raw, dtype=_np.dtype(dtype)).reshape(shape).copy()
            return a.astype(bool) if as_bool else a
        flat = flat_values(dtype, raw)
        values = [bool(x) for x in flat] if as_bool else flat.tolist()
        if len(shape) <= 1:
            return values
        width = shape[1]
        return [values[i * width : (i + 1) * width] for i in range(shape[0])]


def _bench(argv: Iterable[str]) -> int:
    """``python3 gym_client.py --bench [--envs N] [--seconds S]``: env-steps/s through this client."""
    import argparse
    import random

    p = argparse.ArgumentParser(description="env-steps/s of glassd twin gym through the Python client")
    p.add_argument("--bench", action="store_true", required=True)
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args(list(argv))
    rng = random.Random(0)
    with GlassTwinVecEnv(n_envs=args.envs, seed=1) as env:
        env.reset()
        if env.use_numpy:
            batches = [_np.asarray([[rng.uniform(-1, 1) for _ in range(env.act_dim)] for _ in range(args.envs)],
                                   dtype=_np.float32) for _ in range(64)]
        else:
            batches = [[[rng.uniform(-1, 1) for _ in range(env.act_dim)] for _ in range(args.envs)] for _ in range(64)]
        for k in range(200):
            env.step(batches[k % 64])
        k = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            env.step(batches[k % 64])
            k += 1
        wall = time.perf_counter() - t0
    mode = "numpy" if env.use_numpy else "standard library (no numpy)"
    print(f"{args.envs} envs, {mode}: {k * args.envs / wall:,.0f} env-steps/s ({wall / k * 1e6:.0f} µs per step)")
    return 0


if __name__ == "__main__":
    sys.exit(_bench(sys.argv[1:]))
