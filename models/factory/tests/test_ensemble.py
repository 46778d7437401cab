"""Ensemble: the two stages (pooled logistic meta-learner, bounded Platt calibration fitted out of fold), the input
selection on fit data, the exported graph against the numpy fit, and the quick build with and without a graph model
(card, acceptance checks, manifest entry recording the exact input set, golden parity)."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from glass_factory.common import artifacts, onnx_tools
from glass_factory.common.metrics import auroc, brier, ece
from glass_factory.models import ensemble as en
from glass_factory.models import forecaster as fc

torch.set_num_threads(1)


def test_platt_bounded_recovers_the_map_and_stays_monotone():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(float)
    a, d = en.platt_bounded(z, y)
    assert abs(a - 0.5) < 0.05 and abs(d + 1.0) < 0.08
    # anti-correlated data: the slope stops at the lower bound, the ranking is never reversed
    a2, _ = en.platt_bounded(z, 1 - y)
    assert a2 == en.A_MIN
    # one outcome only: identity
    assert en.platt_bounded(z, np.zeros_like(z)) == (1.0, 0.0)


def _synthetic(n_runs=4, n=600, seed=0):
    """Runs where the event of class c depends on the forecaster's logit AND on a graph score the forecaster lacks;
    the meta-learner is miscalibrated per class (class 1's events follow a steeper map) so calibration has work."""
    rng = np.random.default_rng(seed)
    H, C = 3, 4
    N = n_runs * n
    base = rng.normal(-4, 1, (N, 1, C)) + rng.normal(0, 0.3, (N, H, 1))
    P = (1 / (1 + np.exp(-base))).astype(np.float32)
    U = (P * rng.uniform(0.05, 0.3, P.shape)).astype(np.float32)
    V = np.clip(P[:, 0, :] * rng.uniform(0.5, 1.5, (N, C)), 0, 1).astype(np.float32)
    G = rng.random((N, 1)).astype(np.float32)
    steep = np.array([1.0, 2.5, 1.0, 1.0])
    lp = np.log(P / (1 - P))
    z = steep * (1.2 * (lp + 4) + 3.0 * (G[:, :, None] - 0.5)) - 1.0
    ev = rng.random(P.shape) < 1 / (1 + np.exp(-z))
    thr = np.full((H, C), 0.5, np.float32)
    y = np.where(ev, 1.0, 0.0).astype(np.float32)
    y[rng.random(y.shape) < 0.01] = np.nan  # unknown rates are skipped
    part = np.repeat(np.arange(n_runs), n)
    t = np.tile(np.arange(n, dtype=np.int64) * 60_000, n_runs)
    return P, U, V, G, y, thr, part, t


def test_fit_selects_the_informative_input_and_exports_what_numpy_computes(tmp_path):
    P, U, V, G, y, thr, part, t = _synthetic()
    tr, te = part < 3, part == 3
    model, info = en.fit(P[tr], U[tr], V[tr], G[tr], y[tr], thr, en._groups(part[tr], t[tr]), "uvg")
    assert "g" in model.feats, info["selection"]  # the graph score carries signal the forecaster lacks
    assert set(info["selection"]) == {"-", "u", "v", "g", "uv", "ug", "vg", "uvg"}
    feeds = {"probability": P, "uncertainty": U, "vision_rate": V, "graph_score": G}
    x = {k: np.ascontiguousarray(feeds[k][te]) for k in model.input_names}
    with torch.no_grad():
        risk, raw = (o.numpy() for o in model(*[torch.from_numpy(v) for v in x.values()]))
    # stage 1 in torch = the numpy design the regression was fitted on
    for h in range(3):
        X, cls = en._stacked(P[te], U[te], V[te], G[te], h, model.feats)
        off = model.b[h].double().numpy()
        sl = np.r_[model.A[h].double().numpy(), [float(getattr(model, "w" + ch)[h, 0]) for ch in model.feats]]
        z = en._meta_z(X, cls, off, sl).reshape(4, -1).T
        assert np.allclose(1 / (1 + np.exp(-z)), raw[:, h, :], atol=2e-5)
    # better ranking than the forecaster alone; calibration is monotone (same AUROC) and lowers ECE and Brier
    ev = y[te]
    ok = np.isfinite(ev)
    a_risk = np.mean([auroc(ev[:, h, c][ok[:, h, c]], risk[ok[:, h, c], h, c]) for h in range(3) for c in range(4)])
    a_fc = np.mean([auroc(ev[:, h, c][ok[:, h, c]], P[te][ok[:, h, c], h, c]) for h in range(3) for c in range(4)])
    a_raw = np.mean([auroc(ev[:, h, c][ok[:, h, c]], raw[ok[:, h, c], h, c]) for h in range(3) for c in range(4)])
    assert a_risk > a_fc + 0.02 and abs(a_risk - a_raw) < 1e-9
    m = ok[:, :, 1]
    assert ece(ev[:, :, 1][m], risk[:, :, 1][m]) < ece(ev[:, :, 1][m], raw[:, :, 1][m])
    assert brier(ev[:, :, 1][m], risk[:, :, 1][m]) < brier(ev[:, :, 1][m], raw[:, :, 1][m])
    # the ONNX export gives the same numbers
    path = onnx_tools.export_onnx(model, tuple(torch.from_numpy(v[:2]) for v in x.values()), tmp_path / "e.onnx",
                                  list(x), ["risk", "risk_uncalibrated"])
    out = onnx_tools.run(path, x)
    assert np.abs(out["risk"] - risk).max() < 1e-5 and np.abs(out["risk_uncalibrated"] - raw).max() < 1e-5


def test_groups_fall_back_to_time_blocks_with_few_runs():
    part = np.r_[np.zeros(100, int), np.ones(60, int)]
    t = np.r_[np.arange(100), np.arange(60)][::-1].copy()  # unsorted times
    g = en._groups(part, t)
    assert len(np.unique(g)) == 8 and len(en._folds(g, en.CAL_FOLDS)) == en.CAL_FOLDS
    assert len(np.unique(en._groups(np.repeat(np.arange(3), 5), np.zeros(15, int)))) == 3


class FakeGraphModel(nn.Module):
    """Stands in for F2's sensor-graph model in this test only: nodes [B,N,F] + edge_index → node / graph scores."""

    def forward(self, nodes, edge_index):
        node = nodes.abs().mean(-1)
        return node, node.max(-1, keepdim=True).values


def test_ensemble_builds_without_and_with_a_graph_model(fake_ctx):
    fc.build(fake_ctx)
    e1 = en.build(fake_ctx)
    assert e1["extra"]["inputs_used"][0] == "forecaster.probability"
    assert [i["name"] for i in e1["inputs"]][0] == "probability"
    assert set(i["name"] for i in e1["inputs"]) <= {"probability", "uncertainty"}
    assert [o["name"] for o in e1["outputs"]] == ["risk", "risk_uncalibrated"]
    checks = e1["_acceptance"]["checks"]
    assert checks["parity_fp32"] <= 1e-5
    assert {"auroc_not_below_forecaster", "brier_below_forecaster_platt", "calibration_lowers_ece_and_brier_vs_meta",
            "calibration_lowers_ece_and_brier_vs_raw_forecaster"} <= set(checks)
    d = fake_ctx.models_dir / "ensemble" / "0.0.0-quick"
    card = (d / "card.md").read_text()
    assert "ECE stage 1" in card and "missing components: ['vision', 'sensor-graph']" in card
    assert "cross-validated macro AUROC" in card
    mj = json.loads((d / "metrics.json").read_text())
    assert mj["metrics"]["ece_after"] is not None and mj["metrics"]["brier_after"] is not None
    assert set(mj["metrics"]["per_horizon"]) == {"15min", "60min", "240min"}
    assert mj["acceptance"]["checks"] == json.loads(json.dumps(checks))
    assert artifacts.verify_entry(fake_ctx.models_dir, e1)["golden"]["ok"]

    # register a graph model the way F2's builder does, then rebuild: the graph score is offered to the selection
    g = fake_ctx.models_dir / "sensor-graph" / "0.0.0-quick"
    g.mkdir(parents=True)
    p = onnx_tools.export_onnx(FakeGraphModel(), (torch.randn(2, 5, 6), torch.zeros(2, 6, dtype=torch.int64)),
                               g / "model.onnx", ["nodes", "edge_index"], ["node_score", "graph_score"],
                               dynamic_batch=False)
    # nodes get a dynamic batch; edge_index is static [2, E]
    m = __import__("onnx").load(str(p))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    for o in m.graph.output:
        o.type.tensor_type.shape.dim[0].dim_param = "batch"
    __import__("onnx").save(m, str(p))
    artifacts.update_manifest(fake_ctx.models_dir, artifacts.manifest_entry(
        models_dir=fake_ctx.models_dir, name="sensor-graph", version="0.0.0-quick", file=p, variant="fp32"))
    e2 = en.build(fake_ctx)
    card = (d / "card.md").read_text()
    assert "sensor-graph.graph_score" in card  # offered (used or not, per the selection on fit data)
    names = [i["name"] for i in e2["inputs"]]
    assert names[0] == "probability" and set(names) <= {"probability", "uncertainty", "graph_score"}
    assert ("graph_score" in names) == ("sensor-graph.graph_score" in e2["extra"]["inputs_used"])
    assert artifacts.verify_entry(fake_ctx.models_dir, e2)["golden"]["ok"]
    names = [e["name"] for e in artifacts.read_manifest(fake_ctx.models_dir)["models"]]
    assert names == ["forecaster", "sensor-graph", "ensemble"]

    # a graph model the factory rejected is left out (the daemon would refuse it)
    entry = artifacts.find_entry(fake_ctx.models_dir, "sensor-graph")
    artifacts.update_manifest(fake_ctx.models_dir, dict(entry, acceptance={"ok": False, "checks": {}}))
    e3 = en.build(fake_ctx)
    assert "graph_score" not in [i["name"] for i in e3["inputs"]]
    assert "factory rejected it" in (d / "card.md").read_text()
