"""Vision model: shapes, resize rules, ONNX export + parity, learning on tiny synthetic data, quick build."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from glass_factory.common import artifacts, onnx_tools
from glass_factory.models import _vision_data as vd
from glass_factory.models._vision_net import VisionNet
from glass_factory.models._vision_train import evaluate, train_model

torch.set_num_threads(1)
TINY = {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "dec": 8}


def test_shapes_probabilities_and_dynamic_batch_export(tmp_path):
    torch.manual_seed(0)
    m = VisionNet(size=64, **TINY).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        masks, scores = m(x)
    assert masks.shape == (2, 8, 64, 64) and scores.shape == (2, 8)
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1 and float(scores.min()) >= 0
    p = onnx_tools.export_onnx(m, (torch.zeros(1, 1, 64, 64),), tmp_path / "v.onnx", ["image"], ["masks", "scores"])
    spec = onnx_tools.io_spec(p)
    assert spec["inputs"][0]["shape"] == [-1, 1, 64, 64]
    x3 = np.random.default_rng(1).normal(size=(3, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = dict(zip(["masks", "scores"], (t.numpy() for t in m(torch.from_numpy(x3)))))
    par = onnx_tools.parity(ref, p, {"image": x3})
    assert par["max_abs"] < 1e-4, par


def test_resize_rules():
    # area resize: 2×2 blocks average exactly
    f = np.arange(16, dtype=np.uint8).reshape(1, 4, 4) * 10
    r = vd.resize_frames(f, 2, "area")
    assert r.tolist() == [[[25, 45], [105, 125]]]
    # a one-pixel defect survives an 8× reduction of the mask (max pooling), with its class bit
    bits = np.zeros((1, 64, 64), np.uint8)
    bits[0, 13, 50] = 1 << 6  # stone
    bits[0, 40:44, 2] |= 1 << 0  # crack
    small = vd.resize_bits(bits, 8)
    assert small[0, 1, 6] == 1 << 6 and small[0, 5, 0] == 1
    assert int((small > 0).sum()) == 2
    # grey conversion is BT.601
    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], np.uint8)
    assert vd.to_gray(rgb).tolist() == [[[76, 150, 29]]]


def _synthetic(n: int, seed: int, size: int = 64) -> vd.VisionData:
    """Noisy grey frames with up to two 'defects': bright squares (class 0), dark discs (class 3), thin lines (7)."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(128, 8, (n, size, size)), 0, 255).astype(np.uint8)
    bits = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for c in rng.choice([0, 3, 7], size=rng.integers(0, 3), replace=False):
            cy, cx = rng.integers(8, size - 8, 2)
            if c == 0:
                m = (abs(yy - cy) <= 3) & (abs(xx - cx) <= 3)
                x[i][m] = 220
            elif c == 3:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 <= 16
                x[i][m] = 40
            else:
                m = (abs(yy - cy) <= 0) & (abs(xx - cx) <= 7)
                x[i][m] = 200
            bits[i][m] |= np.uint8(1 << c)
    labels = np.stack([((bits >> c) & 1).reshape(n, -1).max(1) for c in range(8)], 1).astype(np.uint8)
    return vd.VisionData(x, bits, labels, np.zeros_like(labels))


def test_trains_better_than_chance_on_tiny_data():
    tr, te = _synthetic(160, 0), _synthetic(60, 1)
    hp = dict(TINY, lr=3e-3, batch=16, pos_weight=5.0, weight_decay=0.0)
    model, info = train_model(hp, tr, 0.5, 0.1, seed=0, epochs=4)
    ev = evaluate(model, te, 0.5, 0.1)
    # the three classes used: image AUROC well above chance (0.5), masks overlap the defects
    for c in ("crack", "cloudiness", "scratch"):
        assert ev["image_auroc"][c] is not None and ev["image_auroc"][c] > 0.75, (c, ev["image_auroc"])
    assert ev["iou"]["crack"] > 0.2 and ev["iou"]["cloudiness"] > 0.2, ev["iou"]
    # classes that never occur have no IoU / AUROC (undefined, not 0 or 1)
    assert ev["image_auroc"]["bubble"] is None


class _Ctx:
    """The parts of BuildContext the vision builder uses (tiny quick build in a temp dir)."""

    def __init__(self, tmp: Path):
        self.quick = True
        self.seed = 0
        self.threads = 1
        self.trials = 0
        self.models_dir = tmp / "models"
        self.work_dir = tmp / "work"
        self.version = "0.0.0-quick"
        self.logs: list[str] = []

    def log(self, msg):
        self.logs.append(msg)

    def images(self, split):  # pragma: no cover - quick plan never asks
        raise RuntimeError("no twin dataset in this test")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run the twin's renderer")
def test_quick_build_writes_a_verified_entry(tmp_path):
    from glass_factory.models import vision

    ctx = _Ctx(tmp_path)
    entry = vision.build(ctx)
    assert entry["name"] == "vision" and entry["classes"] == vd.CLASSES
    assert entry["inputs"][0]["shape"] == [-1, 1, vision.SIZE, vision.SIZE]
    assert [o["name"] for o in entry["outputs"]] == ["masks", "scores"]
    assert entry["normalisation"]["kind"] == "image" and len(entry["normalisation"]["mean"]) == 1
    assert entry["_acceptance"]["checks"]["parity_fp32"] < 1e-4
    check = artifacts.verify_entry(ctx.models_dir, entry)
    assert check["sha256_ok"] and check["golden"]["ok"], check
    assert (ctx.models_dir / "vision" / "0.0.0-quick" / "card.md").exists()
    assert artifacts.find_entry(ctx.models_dir, "vision") is not None
