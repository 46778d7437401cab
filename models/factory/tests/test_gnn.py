"""Sensor-graph GNN: structure, shapes, NaN handling, ONNX export + parity, learning on tiny data, quick build."""

from __future__ import annotations

import numpy as np
import torch

from glass_factory.common import artifacts, onnx_tools
from glass_factory.models import _gnn_train as gt
from glass_factory.models._gnn_net import dense_structure, neighbour_mean_matrix

torch.set_num_threads(1)
EI = np.array([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]], np.int64)  # a chain 0-1-2-3, both directions
EK = np.array([0, 0, 0, 0, 1, 1], np.uint8)
HP = {"dim": 16, "layers": 2, "heads": 2, "lr": 5e-3, "batch": 32, "dropout": 0.0}


def test_dense_structure_kinds_and_self_loops():
    onehot, K = dense_structure(EI, EK, 4)
    assert K == 5 and onehot.shape == (5, 4, 4)
    assert onehot[0, 1, 0] == 1  # 0 → 1 (topology): node 1 attends to node 0
    assert onehot[1, 3, 2] == 1  # 2 → 3 (correlation)
    assert onehot[3, 2, 3] == 1  # reverse of 2 → 3 is its own kind (1 + k)
    assert np.all(onehot[4] == np.eye(4)) and onehot.sum(0)[0, 3] == 0  # self loops; 0 and 3 are not linked


def test_neighbour_mean_matrix():
    onehot, _ = dense_structure(EI, EK, 4)
    a = neighbour_mean_matrix(onehot)
    assert np.allclose(np.diag(a), 0) and np.allclose(a.sum(1), 1)  # every chain node has a neighbour
    assert np.isclose(a[1, 0], 0.5) and np.isclose(a[1, 2], 0.5) and a[0, 1] == 1 and a[0, 2] == 0
    lonely, _ = dense_structure(np.zeros((2, 0), np.int64), None, 3)
    assert np.all(neighbour_mean_matrix(lonely) == 0)  # no neighbours: zero row (relative input = own z)


def _synthetic(n: int, seed: int) -> gt.GraphData:
    """4 sensors on a chain, 5 features. Sensor faults: one node's features jump (offset) while its neighbours do
    not; process anomalies: every node moves together (a real disturbance, not a sensor fault)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 4, 5)).astype(np.float32) * np.array([1, 2, 0.5, 1, 1], np.float32) + 10
    fault = np.zeros((n, 4), np.uint8)
    anomaly = (rng.random(n) < 0.3).astype(np.uint8)
    x[anomaly == 1] += 3.0
    for i in np.where(rng.random(n) < 0.3)[0]:
        j = rng.integers(4)
        fault[i, j] = rng.integers(1, 3)
        x[i, j, :2] += rng.choice([-4.0, 4.0])
    x[rng.random(x.shape) < 0.01] = np.nan
    return gt.GraphData(x, fault, anomaly)


def test_shapes_nan_and_export_parity(tmp_path):
    tr = _synthetic(64, 0)
    mean, std = gt.normal_stats(tr)
    torch.manual_seed(0)
    m = gt.make_model(HP, 4, 5, EI, EK, mean, std).eval()
    x = torch.from_numpy(tr.nodes[:3])
    with torch.no_grad():
        node, graph, pool = m(x)
    assert node.shape == (3, 4) and graph.shape == (3,) and pool.shape == (3, 4)
    assert torch.isfinite(node).all() and torch.isfinite(graph).all()  # NaN inputs read as the normal mean
    assert torch.allclose(pool.sum(-1), torch.ones(3), atol=1e-5)
    p = onnx_tools.export_onnx(m, (torch.zeros(1, 4, 5),), tmp_path / "g.onnx", ["nodes"],
                               ["node_scores", "graph_score", "pool_weights"])
    ref = dict(zip(["node_scores", "graph_score", "pool_weights"], (t.numpy() for t in (node, graph, pool))))
    par = onnx_tools.parity(ref, p, {"nodes": tr.nodes[:3]})
    assert par["max_abs"] < 1e-5, par
    assert onnx_tools.io_spec(p)["inputs"][0]["shape"] == [-1, 4, 5]


def test_untrained_network_ranks_like_the_zscore_baseline():
    """The node head is a z-score residual whose learned correction starts at 0: before training, node scores are a
    monotone function of the baseline's max |z|, so the node AUROC equals the baseline's exactly."""
    tr, te = _synthetic(64, 3), _synthetic(200, 4)
    mean, std = gt.normal_stats(tr)
    torch.manual_seed(1)
    m = gt.make_model(HP, 4, 5, EI, EK, mean, std).eval()
    n, g = gt.predict(m, te)
    bn, bg = gt.zscore_baseline(te, mean, std)
    kinds = ["none", "stuck", "drift"]
    assert np.isclose(gt.score_metrics(n, g, te, kinds)["node_auroc"], gt.score_metrics(bn, bg, te, kinds)["node_auroc"])
    i = np.argsort(bn.ravel(), kind="stable")
    assert np.all(np.diff(n.ravel()[i]) >= -1e-7)


def test_slow_drift_counterfactual_and_augmentation():
    tr = _synthetic(300, 5)
    mean, std = gt.normal_stats(tr)
    motion = gt.motion_indices(["a", "slope_rel", "b", "std_rel", "c"])
    assert motion == [3, 1]  # MOTION_FEATURES order, only those present
    c = gt.slow_drift_counterfactual(tr, mean, motion, drift=2)
    g, n = np.nonzero(tr.fault == 2)
    assert len(g) and np.allclose(c.nodes[g, n][:, motion], mean[n][:, motion])
    keep = [0, 2, 4]
    assert np.array_equal(c.nodes[g, n][:, keep], tr.nodes[g, n][:, keep], equal_nan=True)
    assert np.array_equal(c.nodes[tr.fault != 2], tr.nodes[tr.fault != 2], equal_nan=True)  # other nodes untouched
    model, info = gt.train_model(dict(HP, slow_aug=0.5), tr, mean, std, EI, EK, seed=0, epochs=1,
                                 kinds=["none", "stuck", "drift"], motion=motion, val=tr, eval_every=3)
    assert info["evals"] >= 1 and info["best_step"] >= 3 and np.isfinite(info["final_loss"])


def test_trains_better_than_chance_and_than_nothing():
    tr, te = _synthetic(600, 1), _synthetic(300, 2)
    mean, std = gt.normal_stats(tr)
    model, info = gt.train_model(HP, tr, mean, std, EI, EK, seed=0, epochs=6)
    n, g = gt.predict(model, te)
    m = gt.score_metrics(n, g, te, ["none", "stuck", "drift"])
    assert m["node_auroc"] > 0.9, m
    assert m["node_auroc_per_kind"]["stuck"] > 0.85 and m["node_auroc_per_kind"]["drift"] > 0.85, m
    # the process anomaly moves every node: the graph score finds it
    assert m["graph_auroc"] > 0.9, m
    # the z-score baseline cannot tell a process anomaly from sensor faults on its nodes; the GNN can
    bn, bg = gt.zscore_baseline(te, mean, std)
    mb = gt.score_metrics(bn, bg, te, ["none", "stuck", "drift"])
    assert m["node_auroc"] > mb["node_auroc"], (m["node_auroc"], mb["node_auroc"])


def test_quick_build_on_fake_splits(fake_ctx):
    from glass_factory.models import gnn

    entry = gnn.build(fake_ctx)
    assert entry["name"] == "gnn"
    assert entry["inputs"][0]["shape"][1:] == [5, 6]
    assert [o["name"] for o in entry["outputs"]] == ["node_scores", "graph_score", "pool_weights"]
    assert len(entry["extra"]["node_ids"]) == 5 and np.asarray(entry["extra"]["edge_index"]).shape[0] == 2
    assert np.asarray(entry["normalisation"]["mean"]).shape == (5, 6)
    assert entry["_acceptance"]["checks"]["parity_fp32"] < 1e-4
    check = artifacts.verify_entry(fake_ctx.models_dir, entry)
    assert check["sha256_ok"] and check["golden"]["ok"], check
