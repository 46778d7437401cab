"""Forecaster in quick mode on tiny data: windows, learning better than chance, export parity, card + manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from glass_factory.common import artifacts, onnx_tools
from glass_factory.common.dataset import Dataset
from glass_factory.models import forecaster as fc

torch.set_num_threads(1)


def test_windows_stay_inside_runs_and_trailing_rates_match_items(fake_splits):
    a, b = Dataset(fake_splits["val"]), Dataset(fake_splits["test"])
    w = fc.make_windows([a, b], T=10)
    assert w.X.shape == (2 * (500 - 9), 10, 24) and w.y.shape == (2 * 491, 3, 8)
    # window k of run 0 is rows k..k+9 of that run, never rows of the other run
    X = np.asarray(a.array("features/X"))
    assert np.array_equal(w.X[5], X[5:15], equal_nan=True)
    assert np.array_equal(w.part, np.repeat([0, 1], 491))
    # persistence = the 15-min trailing rate equals y of the row 15 minutes earlier (same item interval)
    y = np.asarray(a.array("features/y"))
    k = 100  # window ending at row 109
    assert w.persist[k, 0] == pytest.approx(y[109 - 15, 0], abs=1e-6)


def test_normalisation_is_robust_and_nan_safe(fake_splits):
    ds = Dataset(fake_splits["train"])
    center, scale = fc.robust_stats([ds])
    z = fc.normalise(np.asarray(ds.array("features/X")), center, scale)
    assert np.isfinite(z).all() and np.abs(np.median(z, axis=0)).max() < 0.05 and np.abs(z).max() <= fc.CLIP


def test_forecaster_learns_better_than_chance_and_exports_with_parity(fake_splits, tmp_path):
    tr = fc.make_windows([Dataset(fake_splits["train"])], T=15)
    va = fc.make_windows([Dataset(fake_splits["val"])], T=15)
    center, scale = fc.robust_stats([Dataset(fake_splits["train"])])
    model, hist = fc.train_model(tr, va, center, scale, hidden=16, layers=2, lr=5e-3, epochs=6, heads=3, seed=0)
    assert hist["epochs_run"] >= 2
    thr = fc.event_thresholds(tr.y)
    prob, unc, att = fc.predict(model, va)
    ev = fc.evaluate(prob, va.y, thr, fc_classes(), [15, 60, 240])
    assert ev["macro_auroc"] > 0.6, ev["macro_auroc"]  # the fake data's lead makes it learnable; chance = 0.5
    assert np.allclose(att.sum(1), 1, atol=1e-5) and (unc >= 0).all()
    # ONNX: PyTorch vs ORT fp32 vs the chosen variant, raw NaN-bearing inputs included
    x = np.ascontiguousarray(va.X[:4])
    x[0, 3, 2] = np.nan
    r = np.ascontiguousarray(va.persist[:4])
    r[1, 0, 0] = np.nan  # no item seen in the last 15 min
    feeds = {"x": x, "recent": r}
    path = fc._export(model, 15, x.shape[2], tmp_path / "f.onnx")
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in zip(["probability", "uncertainty", "attention"],
                                            model(torch.from_numpy(x), torch.from_numpy(r)))}
    assert np.isfinite(ref["probability"]).all()
    assert onnx_tools.parity(ref, path, feeds)["max_abs"] < 1e-5
    v = onnx_tools.choose_variant(path, {k: a[:1] for k, a in feeds.items()}, {k: a[:1] for k, a in ref.items()},
                                  tol_abs=0.003, runs=20)
    assert onnx_tools.parity(ref, v["file"], feeds)["max_abs"] <= 0.003 + 1e-6
    onnx_tools.check_standard(v["file"])


def fc_classes():
    from conftest import CLASSES

    return CLASSES


def test_baselines_and_evaluation_skip_degenerate_classes(fake_splits):
    tr = fc.make_windows([Dataset(fake_splits["train"])], T=5)
    te = fc.make_windows([Dataset(fake_splits["test"])], T=5)
    center, scale = fc.robust_stats([Dataset(fake_splits["train"])])
    pers = fc.persistence_baseline(te, tr)
    assert np.isfinite(pers).all()
    lr = fc.logistic_baseline(tr, te, center, scale)
    assert lr.shape == te.y.shape and np.isfinite(lr).all()
    y = te.y.copy()
    y[:, :, 0] = 0.0  # class 0 never elevated → skipped, not a crash
    ev = fc.evaluate(lr, y, fc.event_thresholds(tr.y), fc_classes(), [15, 60, 240])
    assert "15min.crack" in ev["skipped_no_positives_or_negatives"]


def test_build_quick_writes_model_card_golden_and_manifest(fake_ctx):
    entry = fc.build(fake_ctx)
    d = fake_ctx.models_dir / "forecaster" / "0.0.0-quick"
    for f in ("model.onnx", "card.md", "metrics.json", "golden.json"):
        assert (d / f).exists(), f
    doc = json.loads((fake_ctx.models_dir / "manifest.json").read_text())
    (e,) = doc["models"]
    assert e["name"] == "forecaster" and e["sha256"] == artifacts.sha256(d / "model.onnx")
    assert [i["name"] for i in e["inputs"]] == ["x", "recent"] and e["inputs"][0]["shape"][0] == -1
    assert [o["name"] for o in e["outputs"]] == ["probability", "uncertainty", "attention"]
    assert e["classes"][0] == "crack" and len(e["normalisation"]["center"]) == len(e["feature_order"])
    assert e["extra"]["horizons_min"] == [15, 60, 240]
    v = artifacts.verify_entry(fake_ctx.models_dir, e)
    assert v["sha256_ok"] and v["golden"]["ok"]
    card = (d / "card.md").read_text()
    assert "persistence" in card and "logistic_regression" in card and "Shipped variant" in card
    assert entry["_acceptance"]["checks"]["parity_fp32"] < 1e-4
