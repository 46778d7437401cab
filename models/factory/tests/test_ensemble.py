"""Ensemble in quick mode: stacking over the forecaster (+ a sensor-graph model when present), the exported
piecewise-linear calibration, parity, card and manifest entry recording the exact input set."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from glass_factory.common import artifacts, onnx_tools
from glass_factory.models import ensemble as en
from glass_factory.models import forecaster as fc

torch.set_num_threads(1)


def test_calibration_lookup_is_the_isotonic_interpolation():
    rng = np.random.default_rng(0)
    raw = rng.random(400)
    y = (rng.random(400) < raw**2).astype(float)
    xs, ys = en._isotonic_knots(raw, y)
    assert len(xs) == en.KNOTS and np.all(np.diff(ys) >= 0) and xs[0] == 0 and xs[-1] == 1
    m = en.Ensemble(1, 1, False, False)
    m.kx[0, 0] = torch.from_numpy(xs).float()
    m.ky0[0, 0] = float(ys[0])
    m.slope[0, 0] = torch.from_numpy(np.diff(ys) / np.diff(xs)).float()
    q = np.linspace(0, 1, 101)
    got = m.calibrate(torch.from_numpy(q).float().reshape(-1, 1, 1)).numpy().ravel()
    assert np.allclose(got, np.interp(q, xs, ys), atol=1e-5)


class FakeGraphModel(nn.Module):
    """Stands in for F2's sensor-graph model in this test only: nodes [B,N,F] + edge_index → node / graph scores."""

    def forward(self, nodes, edge_index):
        node = nodes.abs().mean(-1)
        return node, node.max(-1, keepdim=True).values


def test_ensemble_builds_without_and_with_a_graph_model(fake_ctx):
    fc.build(fake_ctx)
    e1 = en.build(fake_ctx)
    assert e1["extra"]["inputs_used"] == ["forecaster.probability", "forecaster.uncertainty"]
    assert [i["name"] for i in e1["inputs"]] == ["probability", "uncertainty"]
    assert e1["_acceptance"]["checks"]["parity_fp32"] <= 1e-5
    d = fake_ctx.models_dir / "ensemble" / "0.0.0-quick"
    card = (d / "card.md").read_text()
    assert "ECE before" in card and "Missing components: ['vision', 'sensor-graph']" in card
    mj = json.loads((d / "metrics.json").read_text())
    assert mj["metrics"]["ece_after"] is not None and mj["metrics"]["brier_after"] is not None
    assert artifacts.verify_entry(fake_ctx.models_dir, e1)["golden"]["ok"]

    # register a graph model the way F2's builder does, then rebuild: the ensemble takes its graph score
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
    assert e2["extra"]["inputs_used"][-1] == "sensor-graph.graph_score"
    assert [i["name"] for i in e2["inputs"]] == ["probability", "uncertainty", "graph_score"]
    assert artifacts.verify_entry(fake_ctx.models_dir, e2)["golden"]["ok"]
    names = [e["name"] for e in artifacts.read_manifest(fake_ctx.models_dir)["models"]]
    assert names == ["forecaster", "sensor-graph", "ensemble"]
