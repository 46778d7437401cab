"""BuildContext: what every model builder gets — mode, seed, paths, budgets, and the train/val/test datasets.

Splits come from different seeds AND scenarios (DATA_PLAN): train and val run the same scenario families with
different seeds; test runs held-out scenarios (never seen in training) with their own seeds. Datasets are generated
lazily on first use and cached under ``work_dir/data`` (reused when the arguments match, see dataset.generate).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .dataset import REPO_ROOT, ConcatDataset, Dataset, generate

SPLITS = ("train", "val", "test")
# per-split seed offsets: train, val and test never share a seed
SEED_OFFSET = {"train": 100, "val": 200, "test": 300}


@dataclass(frozen=True)
class Part:
    """One generated run: a scenario (name or YAML file, None = the generator's default) for ``hours``."""

    scenario: str | None
    hours: float


# Split plan. train and val run the generator's default DATASET MIX (no --scenario: seeded sensor faults, process
# disturbances and setpoint excursions, src/twin/dataset/mix.ts) with different seeds; test runs the named
# scenarios of scenarios/*.yaml — scripted event sequences never used for training or model selection.
TEST_SCENARIOS = {
    "steady": 8, "furnace_drift": 10, "belt_speed_push": 8, "batch_change": 10,
    "sensor_faults": 6, "fan_failure": 8, "mixed_shift": 12,
}
DEFAULT_PLAN: dict[str, list[Part]] = {
    "train": [Part(None, 48), Part(None, 48), Part(None, 48)],
    "val": [Part(None, 24)],
    "test": [Part(name, hours) for name, hours in TEST_SCENARIOS.items()],
}
# Extra default-mix runs of the full build (none with --quick), shared by the models that need more hours than the
# split plan gives (gnn, forecaster): seed = seed·1000 + offset + i, offsets unused by the split plan (100/200/300,
# images +50, the ensemble's stacking runs 500). "train" runs add training hours; "val" runs join the val split in
# a larger selection set (study, early stopping). Never the test scenarios.
EXTRA_MIX = {"train": {"offset": 700, "runs": 24, "hours": 48}, "val": {"offset": 400, "runs": 4, "hours": 48}}

# --quick: tiny but longer than the longest horizon (240 min), so every horizon has labels
QUICK_PLAN: dict[str, list[Part]] = {
    "train": [Part(None, 6)],
    "val": [Part(None, 5)],
    "test": [Part("mixed_shift", 5)],
}
# image datasets (vision): scenario (None = the mix), hours of simulated line, images, image size (W, H)
DEFAULT_IMAGES = {
    "train": (None, 8.0, 1200, (256, 256)),
    "val": (None, 4.0, 300, (256, 256)),
    "test": ("mixed_shift", 12.0, 300, (256, 256)),
}
QUICK_IMAGES = {
    "train": (None, 0.5, 32, (128, 128)),
    "val": (None, 0.5, 16, (128, 128)),
    "test": ("mixed_shift", 0.5, 16, (128, 128)),
}


@dataclass
class BuildContext:
    quick: bool
    seed: int
    repo_root: Path
    models_dir: Path
    work_dir: Path
    trials: int
    threads: int = 1
    plan: dict[str, list[Part]] | None = None
    image_plan: dict[str, tuple] | None = None
    verbose: bool = True
    version_override: str | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.repo_root = Path(self.repo_root)
        self.models_dir = Path(self.models_dir)
        self.work_dir = Path(self.work_dir)
        if self.plan is None:
            self.plan = QUICK_PLAN if self.quick else DEFAULT_PLAN
        if self.image_plan is None:
            self.image_plan = QUICK_IMAGES if self.quick else DEFAULT_IMAGES
        self.work_dir.mkdir(parents=True, exist_ok=True)

    @property
    def version(self) -> str:
        """--version when given, else "1.0.0" for the default build and "0.0.0-quick" for --quick."""
        if self.version_override:
            return self.version_override
        return "0.0.0-quick" if self.quick else "1.0.0"

    def split_seed(self, split: str, index: int = 0) -> int:
        _check_split(split)
        return self.seed * 1000 + SEED_OFFSET[split] + index

    def data_dir(self, split: str) -> Path:
        return self.work_dir / "data" / ("quick" if self.quick else "full") / split

    def datasets(self, split: str) -> list[Dataset]:
        """The split's runs, one Dataset per (scenario, seed) part; generated on first use."""
        _check_split(split)
        key = ("parts", split)
        if key not in self._cache:
            out = []
            for i, part in enumerate(self.plan[split]):
                seed = self.split_seed(split, i)
                name = Path(part.scenario).stem if part.scenario else "mix"
                d = self.data_dir(split) / f"{i:02d}-{name}-h{part.hours:g}-s{seed}"
                t0 = time.perf_counter()
                generate(d, part.hours, seed, part.scenario, force=False, repo_root=self.repo_root, log=self.log)
                self.log(f"dataset {split}[{i}] {name} {part.hours:g} h seed {seed}: {time.perf_counter() - t0:.1f} s")
                out.append(Dataset(d))
            self._cache[key] = out
        return list(self._cache[key])

    def extra_mix(self, split: str) -> list[Dataset]:
        """The full build's extra default-mix runs for ``split`` ("train" or "val", EXTRA_MIX; none with --quick),
        generated on first use and cached under work_dir/mix-extra/<split>/."""
        if split not in EXTRA_MIX:
            raise ValueError(f"extra mix runs exist for {sorted(EXTRA_MIX)}, not {split!r}")
        if self.quick:
            return []
        key = ("extra", split)
        if key not in self._cache:
            spec = EXTRA_MIX[split]
            out = []
            for i in range(spec["runs"]):
                seed = self.seed * 1000 + spec["offset"] + i
                d = (self.work_dir / "mix-extra" / split / f"mix-h{spec['hours']}-s{seed}").resolve()
                t0 = time.perf_counter()
                generate(d, spec["hours"], seed, None, force=False, repo_root=self.repo_root, log=self.log)
                if time.perf_counter() - t0 > 1:
                    self.log(f"extra {split} mix {spec['hours']} h seed {seed}: {time.perf_counter() - t0:.1f} s")
                out.append(Dataset(d))
            self._cache[key] = out
        return list(self._cache[key])

    def provide(self, split: str, datasets, images: Dataset | Path | str | None = None) -> None:
        """Uses existing dataset directories for ``split`` instead of generating (tests, or reusing a build's data)."""
        _check_split(split)
        self._cache[("parts", split)] = [d if isinstance(d, Dataset) else Dataset(d) for d in datasets]
        if images is not None:
            self._cache[("images-provided", split)] = images if isinstance(images, Dataset) else Dataset(images)

    def dataset(self, split: str) -> Dataset:
        """The whole split as one Dataset (a ConcatDataset over its parts when there are several). Models that slide
        windows over time must use ``.parts`` (or ``datasets(split)``) so no window straddles two runs."""
        parts = self.datasets(split)
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def images(
        self,
        split: str,
        n: int | None = None,
        image_size: tuple[int, int] | None = None,
        hours: float | None = None,
        scenario: str | None = None,
    ) -> Dataset:
        """A dataset with rendered MIK-1 images (images/*.npy); defaults from the image plan, overridable."""
        _check_split(split)
        if ("images-provided", split) in self._cache:
            return self._cache[("images-provided", split)]
        d_scn, d_hours, d_n, d_size = self.image_plan[split]
        scenario = d_scn if scenario is None else scenario
        hours = d_hours if hours is None else float(hours)
        n = d_n if n is None else int(n)
        size = tuple(d_size if image_size is None else image_size)
        seed = self.split_seed(split, 50)
        key = ("images", split, scenario, hours, n, size)
        if key not in self._cache:
            name = Path(scenario).stem if scenario else "mix"
            d = self.data_dir(split) / f"img-{name}-h{hours:g}-n{n}-{size[0]}x{size[1]}-s{seed}"
            t0 = time.perf_counter()
            generate(d, hours, seed, scenario, images=n, image_size=size, force=False, repo_root=self.repo_root,
                     log=self.log)
            self.log(f"images {split}: {n} × {size[0]}x{size[1]} from {name}: {time.perf_counter() - t0:.1f} s")
            self._cache[key] = Dataset(d)
        return self._cache[key]

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        if self.verbose:
            print(line, file=sys.stderr, flush=True)
        try:
            with open(self.work_dir / "build.log", "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def default_context(**kw) -> BuildContext:
    """A context with the repository's default paths (models/ and models/factory/.work/)."""
    root = kw.pop("repo_root", REPO_ROOT)
    return BuildContext(
        quick=kw.pop("quick", False),
        seed=kw.pop("seed", 0),
        repo_root=root,
        models_dir=kw.pop("models_dir", Path(root) / "models"),
        work_dir=kw.pop("work_dir", Path(root) / "models" / "factory" / ".work"),
        trials=kw.pop("trials", 0),
        threads=kw.pop("threads", 1),
        **kw,
    )
