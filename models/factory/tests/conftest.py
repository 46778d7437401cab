"""Shared pytest fixtures of the model factory.

``make_fake_dataset`` writes a tiny directory in the ``glassd twin dataset`` format (src/twin/dataset/FORMAT.md) with
a learnable cause → defect relation (feature k leads class k's defect rate by a few rows). It exists for shape
plumbing and fast "trains better than chance" checks only; the factory's real training uses the real generator
(tests that need it skip when node/tsx or the dataset command are missing: ``have_generator``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FACTORY = Path(__file__).resolve().parents[1]
REPO = FACTORY.parents[1]
if str(FACTORY) not in sys.path:
    sys.path.insert(0, str(FACTORY))

CLASSES = ["crack", "bubble", "chip", "cloudiness", "deformation", "stain", "stone", "scratch"]
HORIZONS = [15, 60, 240]
TAGS = ["furnace_temperature", "belt_speed", "mold_temperature", "cooling_rate", "humidity"]


def have_generator() -> bool:
    """node + tsx present and the `twin dataset` command exists in the sources."""
    return (
        shutil.which("node") is not None
        and (REPO / "node_modules" / "tsx").is_dir()
        and (REPO / "src" / "twin" / "dataset").is_dir()
    )


def make_fake_dataset(
    path: Path,
    rows: int = 600,
    seed: int = 0,
    n_features: int = 24,
    scenario: str = "fake",
    images: int = 0,
    image_hw: tuple[int, int] = (32, 32),
    lead_rows: int = 10,
) -> Path:
    """A small dataset directory in the generator's format. Features are smooth random walks; the defect hazard of
    class c at minute t is sigmoid(2.5·x[t − lead_rows, c mod n_features] − 4.5), so the feature window foretells
    the defects of the next minutes (the horizons are in rows of stride 60 s)."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    for sub in ("features", "sensors", "graph", "items", "images"):
        (path / sub).mkdir(parents=True)
    stride_s = 60
    t0 = 1_700_000_000_000
    t = t0 + np.arange(rows, dtype=np.int64) * stride_s * 1000
    walk = np.cumsum(rng.normal(0, 0.25, size=(rows, n_features)), axis=0)
    walk -= walk.mean(0)
    walk /= walk.std(0) + 1e-6
    X = walk.astype(np.float32)
    X[rng.random(X.shape) < 0.01] = np.nan  # a few missing values, as after a sensor dropout
    C = len(CLASSES)
    # items: ~12 per minute, each with a per-class defect probability driven by a lagged feature
    hazard = np.zeros((rows, C))
    for c in range(C):
        lagged = np.roll(np.nan_to_num(walk[:, c % n_features]), lead_rows)
        lagged[:lead_rows] = 0
        hazard[:, c] = 1 / (1 + np.exp(-(2.5 * lagged - 4.5)))
    item_ts, labels = [], []
    for r in range(rows):
        k = 12
        ts = t[r] + np.sort(rng.integers(1, stride_s * 1000, size=k))
        lab = (rng.random((k, C)) < hazard[r] * 0.5).astype(np.uint8)
        item_ts.append(ts)
        labels.append(lab)
    item_ts = np.concatenate(item_ts).astype(np.int64)
    labels = np.concatenate(labels)
    y = np.full((rows, len(HORIZONS), C), np.nan, dtype=np.float32)
    y_any = np.full((rows, len(HORIZONS)), np.nan, dtype=np.float32)
    n_items = np.zeros((rows, len(HORIZONS)), dtype=np.int32)
    for r in range(rows):
        for hi, h in enumerate(HORIZONS):
            end = t[r] + h * 60_000
            if end > t[-1] + stride_s * 1000:
                continue
            m = (item_ts > t[r]) & (item_ts <= end)
            n_items[r, hi] = int(m.sum())
            if m.any():
                y[r, hi] = (labels[m] > 0).mean(0)
                y_any[r, hi] = (labels[m].sum(1) > 0).mean()
    np.save(path / "features/X.npy", X)
    np.save(path / "features/t.npy", t)
    np.save(path / "features/y.npy", y)
    np.save(path / "features/y_any.npy", y_any)
    np.save(path / "features/n_items.npy", n_items)
    # sensors and graph (one node per tag)
    for i, tag in enumerate(TAGS):
        v = (walk[:, i % n_features] * 5 + 100).astype(np.float32)
        np.save(path / f"sensors/{tag}.npy", v)
        np.save(path / f"sensors/{tag}.ts.npy", t.copy())
        np.save(path / f"sensors/{tag}.fault.npy", np.zeros(rows, np.uint8))
    N, Fn = len(TAGS), 6
    nodes = rng.normal(size=(rows, N, Fn)).astype(np.float32)
    node_fault = np.zeros((rows, N), np.uint8)
    node_fault[rows // 2 : rows // 2 + 20, 1] = 1
    nodes[rows // 2 : rows // 2 + 20, 1, 0] += 4
    src = np.array([0, 1, 2, 3, 1, 2], np.int64)
    dst = np.array([1, 2, 3, 4, 0, 1], np.int64)
    np.save(path / "graph/nodes.npy", nodes)
    np.save(path / "graph/edge_index.npy", np.stack([src, dst]))
    np.save(path / "graph/edge_kind.npy", np.zeros(src.size, np.uint8))
    np.save(path / "graph/node_fault.npy", node_fault)
    np.save(path / "graph/process_anomaly.npy", (hazard.max(1) > 0.2).astype(np.uint8))
    np.save(path / "items/ts.npy", item_ts)
    np.save(path / "items/item_id.npy", np.arange(item_ts.size, dtype=np.int64))
    np.save(path / "items/labels.npy", labels)
    (path / "items/defects.json").write_text("[]")
    if images:
        H, W = image_hw
        imgs = rng.integers(90, 110, size=(images, H, W), dtype=np.uint8)
        masks = np.zeros((images, H, W), np.uint8)
        ilab = np.zeros((images, C), np.uint8)
        for i in range(images):
            c = i % C
            if i % 2 == 0:
                r0, c0 = rng.integers(2, H - 10), rng.integers(2, W - 10)
                imgs[i, r0 : r0 + 6, c0 : c0 + 6] = 20 + 25 * c
                masks[i, r0 : r0 + 6, c0 : c0 + 6] = 1 << c
                ilab[i, c] = 1
        np.save(path / "images/images.npy", imgs)
        np.save(path / "images/masks.npy", masks)
        np.save(path / "images/labels.npy", ilab)
        np.save(path / "images/item_id.npy", np.arange(images, dtype=np.int64))
    files = {
        str(p.relative_to(path)).replace("\\", "/"): {"shape": list(np.load(p, mmap_mode="r").shape),
                                                      "dtype": np.load(p, mmap_mode="r").dtype.name}
        for p in sorted(path.rglob("*.npy"))
    }
    manifest = {
        "tags": [{"id": tag, "unit": "", "stage": "", "period_ms": 1000, "normal": {"min": 0, "max": 1},
                  "limits": {"min": 0, "max": 1}} for tag in TAGS],
        "defect_classes": CLASSES,
        "feature_names": [f"f{i}" for i in range(n_features)],
        "horizons_min": HORIZONS,
        "stride_s": stride_s,
        "window_s": 600,
        "sensor_fault_kinds": ["none", "stuck", "drift", "spike", "dropout", "noise_burst"],
        "graph": {"node_ids": TAGS, "node_feature_names": [f"n{i}" for i in range(Fn)]},
        "files": files,
        "seed": seed,
        "scenario": scenario,
        "twin_version": "fake-0",
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return path


@pytest.fixture(scope="session")
def fake_splits(tmp_path_factory):
    """train / val / test fake datasets from different seeds: {split: Path}."""
    base = tmp_path_factory.mktemp("fake-data")
    return {
        "train": make_fake_dataset(base / "train", rows=900, seed=1, scenario="fake_train"),
        "val": make_fake_dataset(base / "val", rows=500, seed=2, scenario="fake_val"),
        "test": make_fake_dataset(base / "test", rows=500, seed=3, scenario="fake_test"),
    }


@pytest.fixture()
def fake_ctx(tmp_path, fake_splits):
    """A quick BuildContext over the fake splits, writing to tmp dirs (never the committed models/)."""
    from glass_factory.common.context import BuildContext

    ctx = BuildContext(quick=True, seed=0, repo_root=REPO, models_dir=tmp_path / "models",
                       work_dir=tmp_path / "work", trials=0, threads=1, verbose=False)
    for split, p in fake_splits.items():
        ctx.provide(split, [p])
    return ctx


def node_ok() -> bool:
    try:
        return subprocess.run(["node", "--version"], capture_output=True).returncode == 0
    except OSError:
        return False
