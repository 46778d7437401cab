"""Datasets written by ``glassd twin dataset`` (format: src/twin/dataset/FORMAT.md) and how the factory reads them.

``generate()`` runs the TypeScript generator; ``Dataset`` reads one generated directory (arrays memory-mapped);
``ConcatDataset`` joins several directories of one split (e.g. one per scenario) so model builders that do not care
about run boundaries can treat a split as one dataset. Builders that slide windows over time (the forecaster) must
iterate ``.parts`` instead, so no window straddles two runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np

# models/factory/glass_factory/common/dataset.py → the glassd repository root
REPO_ROOT = Path(__file__).resolve().parents[4]

# arrays that describe the plant, not a time step / item / image: identical in every part, never concatenated
STATIC_ARRAYS = frozenset({"graph/edge_index.npy", "graph/edge_kind.npy"})
# the stamp generate() leaves in a directory so a later call with force=False can reuse it
STAMP = ".glass_factory.json"


def scenario_name(manifest: dict) -> str:
    """The run's scenario name: manifest.scenario is {name, spec} with --scenario, null for the default mix."""
    s = manifest.get("scenario")
    if isinstance(s, dict):
        return str(s.get("name") or "scenario")
    return "mix" if s is None else str(s)


class DatasetError(RuntimeError):
    """The generator failed or a dataset directory is not what the format promises (message names the file)."""


def twin_command(repo_root: Path | str = REPO_ROOT) -> list[str]:
    """How to run ``glassd twin``: ``$GLASSD_TWIN_COMMAND`` if set, else the built ``dist/main.js``, else tsx on the
    sources (same rule as glass_factory.gym_client.default_command)."""
    env = os.environ.get("GLASSD_TWIN_COMMAND")
    if env:
        return shlex.split(env)
    node = os.environ.get("NODE", "node")
    root = Path(repo_root)
    if (root / "dist" / "main.js").exists():
        return [node, str(root / "dist" / "main.js"), "twin"]
    return [node, "--import", "tsx", str(root / "src" / "main.ts"), "twin"]


def generate(
    out: Path,
    hours: float,
    seed: int,
    scenario: str | None = None,
    images: int = 0,
    image_size: tuple[int, int] = (256, 256),
    force: bool = True,
    *,
    repo_root: Path | str = REPO_ROOT,
    log=None,
    timeout_s: float | None = None,
) -> Path:
    """Runs ``glassd twin dataset --out OUT --hours H --seed S [--scenario NAME|FILE] [--images N --image-size WxH]``.

    ``force=False`` reuses ``out`` when it holds a complete dataset generated with exactly these arguments (the stamp
    file records them); otherwise ``out`` is deleted and regenerated. Returns ``out``. Raises DatasetError with the
    generator's stderr when it fails.
    """
    out = Path(out)
    args = {
        "hours": float(hours),
        "seed": int(seed),
        "scenario": scenario,
        "images": int(images),
        "image_size": [int(image_size[0]), int(image_size[1])],
    }
    if scenario is not None and Path(scenario).suffix in (".yaml", ".yml") and Path(scenario).exists():
        # a scenario file: its content is part of what was generated
        args["scenario_sha256"] = hashlib.sha256(Path(scenario).read_bytes()).hexdigest()
    stamp = out / STAMP
    if not force and stamp.exists() and (out / "manifest.json").exists():
        try:
            if json.loads(stamp.read_text())["args"] == args:
                return out
        except (ValueError, KeyError):
            pass
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*twin_command(repo_root), "dataset", "--out", str(out), "--hours", f"{float(hours):g}", "--seed", str(seed)]
    if scenario is not None:
        cmd += ["--scenario", str(scenario)]
    if images:
        cmd += ["--images", str(int(images)), "--image-size", f"{int(image_size[0])}x{int(image_size[1])}"]
    if log:
        log(f"generate: {' '.join(cmd[-12:])}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(repo_root), capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise DatasetError(
            f"glassd twin dataset failed (exit {proc.returncode}) for {out}: {proc.stderr.strip()[-2000:]}"
        )
    if not (out / "manifest.json").exists():
        raise DatasetError(f"glassd twin dataset exited 0 but wrote no {out / 'manifest.json'}")
    stamp.write_text(json.dumps({"args": args, "command": cmd, "wall_s": round(wall, 2)}, indent=1))
    return out


# manifest fields that vary between otherwise byte-identical generations (FORMAT.md)
VOLATILE_KEYS = ("wall_s", "sim_wall_s", "images_wall_s", "speed_x", "generated_at", "images_per_s")


def _stable(m):
    if isinstance(m, dict):
        return {k: _stable(v) for k, v in m.items() if k not in VOLATILE_KEYS}
    if isinstance(m, list):
        return [_stable(v) for v in m]
    return m


def _rel(relpath: str) -> str:
    relpath = relpath.replace("\\", "/").lstrip("/")
    if not relpath.endswith((".npy", ".json")):
        relpath += ".npy"
    return relpath


class Dataset:
    """One dataset directory. ``array("features/X")`` or ``array("features/X.npy")`` → memory-mapped array."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not (self.path / "manifest.json").exists():
            raise DatasetError(f"{self.path}: no manifest.json (not a glassd twin dataset)")
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"

    @cached_property
    def manifest(self) -> dict:
        try:
            return json.loads((self.path / "manifest.json").read_text())
        except ValueError as err:
            raise DatasetError(f"{self.path / 'manifest.json'}: not JSON ({err})") from err

    @property
    def parts(self) -> list[Dataset]:
        """The contiguous runs this dataset is made of (itself, for one directory)."""
        return [self]

    def has(self, relpath: str) -> bool:
        return (self.path / _rel(relpath)).exists()

    def array(self, relpath: str) -> np.ndarray:
        p = self.path / _rel(relpath)
        if not p.exists():
            raise DatasetError(f"{self.path}: missing {_rel(relpath)}")
        return np.load(p, mmap_mode="r", allow_pickle=False)

    def json(self, relpath: str):
        return json.loads((self.path / relpath).read_text())

    # conveniences over the manifest (names as in FORMAT.md)
    @property
    def defect_classes(self) -> list[str]:
        return list(self.manifest["defect_classes"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def horizons_min(self) -> list[int]:
        return [int(h) for h in self.manifest["horizons_min"]]

    @property
    def scenario(self) -> str:
        """Scenario name ("mix" for the generator's default dataset mix)."""
        return scenario_name(self.manifest)

    @property
    def scenarios(self) -> list[str]:
        return [self.scenario]

    @property
    def seeds(self) -> list[int | None]:
        return [self.manifest.get("seed")]

    def _array_files(self) -> list[str]:
        files = self.manifest.get("files")
        if isinstance(files, dict) and files:
            names = [n for n in files if not n.endswith("/")]  # directories of PNGs: the .npy arrays hold them
        else:
            names = [str(p.relative_to(self.path)).replace(os.sep, "/") for p in self.path.rglob("*.npy")]
        return sorted(names)

    def fingerprint(self) -> str:
        """sha256 over the canonical manifest JSON (minus its wall-clock fields) and every file the manifest lists
        (sorted by path; PNG directories excluded, their pixels are in images/*.npy). Same seed + options + twin
        version → same fingerprint."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps(_stable(self.manifest), sort_keys=True, separators=(",", ":")).encode())
            for name in self._array_files():
                p = self.path / name
                if not p.exists():
                    raise DatasetError(f"{self.path}: manifest lists {name} but it is missing")
                h.update(name.encode())
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class ConcatDataset(Dataset):
    """Several dataset directories of one split, read as one: ``array()`` concatenates along axis 0 (time steps,
    items, images), except the plant's static arrays (STATIC_ARRAYS), which must be equal in every part.

    ``.manifest`` is the first part's with ``parts`` (path, scenario, seed, rows) added; ``.segments(relpath)`` gives
    the per-part lengths along axis 0 so a consumer can find the run boundaries.
    """

    def __init__(self, parts: Iterable[Dataset | Path | str]):
        self._parts = [p if isinstance(p, Dataset) else Dataset(p) for p in parts]
        if not self._parts:
            raise DatasetError("ConcatDataset needs at least one part")
        self.path = self._parts[0].path
        self._fingerprint = None
        first = self._parts[0].manifest
        for p in self._parts[1:]:
            for key in ("defect_classes", "feature_names", "horizons_min", "stride_s"):
                if p.manifest.get(key) != first.get(key):
                    raise DatasetError(f"{p.path}: manifest.{key} differs from {self._parts[0].path}")
        self._cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"ConcatDataset({[str(p.path) for p in self._parts]!r})"

    @cached_property
    def manifest(self) -> dict:
        m = dict(self._parts[0].manifest)
        m["parts"] = [
            {"path": str(p.path), "scenario": p.scenario, "seed": p.manifest.get("seed")} for p in self._parts
        ]
        m["scenario"] = "+".join(p.scenario for p in self._parts)
        return m

    @property
    def parts(self) -> list[Dataset]:
        return list(self._parts)

    @property
    def scenario(self) -> str:
        return "+".join(p.scenario for p in self._parts)

    @property
    def scenarios(self) -> list[str]:
        return [p.scenario for p in self._parts]

    @property
    def seeds(self) -> list[int | None]:
        return [p.manifest.get("seed") for p in self._parts]

    def has(self, relpath: str) -> bool:
        return all(p.has(relpath) for p in self._parts)

    def segments(self, relpath: str) -> list[int]:
        return [int(p.array(relpath).shape[0]) for p in self._parts]

    def array(self, relpath: str) -> np.ndarray:
        rel = _rel(relpath)
        if rel in self._cache:
            return self._cache[rel]
        arrays = [p.array(rel) for p in self._parts]
        if rel in STATIC_ARRAYS:
            for p, a in zip(self._parts[1:], arrays[1:]):
                if not np.array_equal(a, arrays[0]):
                    raise DatasetError(f"{p.path}: {rel} differs from {self._parts[0].path}")
            out = arrays[0]
        else:
            out = np.concatenate([np.asarray(a) for a in arrays], axis=0)
        self._cache[rel] = out
        return out

    def json(self, relpath: str):
        return [p.json(relpath) for p in self._parts]

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self._parts:
                h.update(p.fingerprint().encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint
