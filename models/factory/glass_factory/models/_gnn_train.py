"""Sensor-graph GNN: data preparation, training, evaluation and the z-score baseline (used by gnn.py and tests)."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from ._gnn_net import SensorGNN, dense_structure

ARCH_KEYS = ("dim", "layers", "heads")


class GraphData:
    """nodes [G,N,F] float32 (raw), fault [G,N] uint8 (0 = none, k = sensor_fault_kinds[k]), anomaly [G] uint8."""

    def __init__(self, nodes: np.ndarray, fault: np.ndarray, anomaly: np.ndarray):
        self.nodes = np.array(nodes, dtype=np.float32)
        self.fault = np.asarray(fault, dtype=np.uint8)
        self.anomaly = np.asarray(anomaly, dtype=np.uint8)
        if not (self.nodes.shape[:2] == self.fault.shape and self.anomaly.shape == self.nodes.shape[:1]):
            raise ValueError(
                f"graph arrays disagree: nodes {self.nodes.shape}, node_fault {self.fault.shape}, "
                f"process_anomaly {self.anomaly.shape}"
            )

    @classmethod
    def from_dataset(cls, ds) -> "GraphData":
        return cls(ds.array("graph/nodes.npy"), ds.array("graph/node_fault.npy"), ds.array("graph/process_anomaly.npy"))

    def __len__(self) -> int:
        return len(self.nodes)


def normal_stats(train: GraphData) -> tuple[np.ndarray, np.ndarray]:
    """Per (node, feature) mean and std over training samples where the node has no fault and the process no
    anomaly (NaN ignored; std floored so a constant feature does not blow up)."""
    x = train.nodes.astype(np.float64).copy()
    bad = (train.fault > 0) | (train.anomaly[:, None] > 0)
    x[bad] = np.nan
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    all_mean = np.nanmean(train.nodes.astype(np.float64), axis=0)
    mean = np.where(np.isfinite(mean), mean, np.nan_to_num(all_mean))
    scale = np.nanmean(np.abs(mean), axis=0, keepdims=True)  # per-feature magnitude over nodes
    floor = np.maximum(1e-3 * np.nan_to_num(scale), 1e-6)
    std = np.where(np.isfinite(std), np.maximum(std, floor), 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def normalise(nodes: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(raw − mean) / std per (node, feature); NaN stays NaN (the model reads it as 0)."""
    return ((nodes - mean) / std).astype(np.float32)


def make_model(hp: dict, n_nodes: int, n_features: int, edge_index, edge_kind, mean, std) -> SensorGNN:
    onehot, _ = dense_structure(edge_index, edge_kind, n_nodes)
    return SensorGNN(n_nodes, n_features, onehot, mean, std, dim=hp["dim"], layers=hp["layers"], heads=hp["heads"],
                     dropout=hp.get("dropout", 0.1), rel=hp.get("rel", True), glob=hp.get("glob", True))


def sample_weights(train: GraphData, kind_boost: dict[int, float] | None) -> np.ndarray | None:
    """Per-graph sampling weights: 1, times ``kind_boost[k]`` for a graph with a fault of kind k (the largest boost
    of its faults). None when there is nothing to boost."""
    if not kind_boost:
        return None
    w = np.ones(len(train), np.float64)
    for k, b in kind_boost.items():
        w = np.where((train.fault == k).any(1), np.maximum(w, float(b)), w)
    return w / w.sum()


def rank_loss(node_logits: torch.Tensor, y: torch.Tensor, pairs: int = 1024, gen=None) -> torch.Tensor:
    """Pairwise AUROC surrogate over the batch's nodes (pooled over graphs, as the metric is): mean softplus(−(s⁺ − s⁻))
    over random (faulty, fault-free) node pairs (label 1 / 0; any other label is left out); 0 when the batch lacks
    either."""
    s, t = node_logits.reshape(-1), y.reshape(-1)
    pos, neg = torch.nonzero((t > 0.5) & (t < 1.5)).squeeze(-1), torch.nonzero(t < 0.5).squeeze(-1)
    if len(pos) == 0 or len(neg) == 0:
        return node_logits.sum() * 0.0
    i = pos[torch.randint(len(pos), (pairs,), generator=gen)]
    j = neg[torch.randint(len(neg), (pairs,), generator=gen)]
    return F.softplus(-(s[i] - s[j])).mean()


def train_model(hp: dict, train: GraphData, mean, std, edge_index, edge_kind, *, seed: int, epochs: float, log=None,
                max_seconds: float | None = None, val: GraphData | None = None, kinds: list[str] | None = None,
                eval_every: int = 0, patience: int = 0, node_mask: np.ndarray | None = None,
                motion: list[int] | None = None) -> tuple[SensorGNN, dict]:
    """AdamW + one-cycle LR over ``epochs`` × G / batch steps of randomly sampled graph batches (optionally
    ``hp["drift_boost"]``-weighted towards graphs with drift faults); loss = BCE(node, pos-weighted) + graph_w ·
    BCE(graph) + rank_w · pairwise node rank loss. Slow-drift augmentation (``hp["slow_aug"]`` = p, needs ``motion``,
    the indices of the within-window motion features): each drift-fault node of a batch has, with probability p, its
    motion features replaced by the same sensor's at a random quiet training graph (no process anomaly, node
    fault-free) — the window of a slower drift that has run longer: the same level offset from its neighbours but no
    visible slope. With ``val`` and ``eval_every``: every ``eval_every`` steps the
    val quality (``quality``) is measured and the best state is kept (early stopping after ``patience`` evaluations
    without improvement, 0 = never stop early). ``node_mask`` [G,N] (1 = use, 0 = leave the node out of the node
    losses; for hold-out experiments)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    G, N, Fn = train.nodes.shape
    model = make_model(hp, N, Fn, edge_index, edge_kind, mean, std)
    x_all = torch.from_numpy(train.nodes)
    std_t = torch.from_numpy(np.asarray(std, np.float32))
    yn = torch.from_numpy((train.fault > 0).astype(np.float32))
    wn = None if node_mask is None else torch.from_numpy(np.asarray(node_mask, np.float32))
    yg = torch.from_numpy(train.anomaly.astype(np.float32))
    pn = float(yn.mean())
    pg = float(yg.mean())
    pw_node = torch.tensor(min(50.0, (1 - pn) / max(pn, 1e-4)) ** 0.5)
    pw_graph = torch.tensor(min(50.0, (1 - pg) / max(pg, 1e-4)) ** 0.5)
    drift = kinds.index("drift") if kinds and "drift" in kinds else None
    boost = {drift: hp["drift_boost"]} if drift is not None and hp.get("drift_boost", 1.0) != 1.0 else None
    pw = sample_weights(train, boost)
    slow_p = float(hp.get("slow_aug", 0.0)) if motion and drift is not None else 0.0
    if slow_p > 0:
        quiet = torch.from_numpy(np.nonzero(train.anomaly == 0)[0])
        fault_t = torch.from_numpy(train.fault.astype(np.int64))
        mot = torch.tensor(list(motion), dtype=torch.long)
    bs = int(hp.get("batch", 64))
    steps = max(1, int(epochs * G / bs))
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp.get("weight_decay", 1e-3))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=steps, pct_start=0.1)
    model.train()
    t0 = time.perf_counter()
    losses = []
    evals = []
    best = (-1.0, None, 0)  # (val quality, state, step)
    bad = 0
    step = 0
    for step in range(steps):
        idx = torch.from_numpy(rng.choice(G, bs, p=pw) if pw is not None else rng.integers(0, G, bs))
        x = x_all[idx]
        if slow_p > 0:
            g_, n_ = torch.nonzero((fault_t[idx] == drift) & (torch.rand(bs, N, generator=gen) < slow_p), as_tuple=True)
            if len(g_):
                src = quiet[torch.randint(len(quiet), (len(g_),), generator=gen)]
                ok = fault_t[src, n_] == 0
                g_, n_, src = g_[ok], n_[ok], src[ok]
                x = x.clone()
                x[g_.unsqueeze(1), n_.unsqueeze(1), mot.unsqueeze(0)] = x_all[src.unsqueeze(1), n_.unsqueeze(1),
                                                                                mot.unsqueeze(0)]
        # feature noise + randomly dropped values (NaN → 0 in the model): robustness to gaps in the daemon's windows
        x = x + 0.05 * std_t * torch.randn_like(x)
        drop = torch.rand_like(x) < 0.02
        x = torch.where(drop, torch.full_like(x, float("nan")), x)
        node, graph, _ = model.forward_logits(x)
        if wn is None:
            loss = F.binary_cross_entropy_with_logits(node, yn[idx], pos_weight=pw_node)
        else:
            w = wn[idx]
            loss = (F.binary_cross_entropy_with_logits(node, yn[idx], pos_weight=pw_node, reduction="none") * w).sum()
            loss = loss / w.sum().clamp(min=1.0)
        loss = loss + hp.get("graph_w", 1.0) * F.binary_cross_entropy_with_logits(graph, yg[idx], pos_weight=pw_graph)
        if hp.get("rank_w", 0.0) > 0:
            y_r = yn[idx] if wn is None else torch.where(wn[idx] > 0, yn[idx], torch.full_like(yn[idx], 2.0))
            loss = loss + hp["rank_w"] * rank_loss(node, y_r, gen=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"gnn: step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f}")
        if val is not None and eval_every and ((step + 1) % eval_every == 0 or step + 1 == steps):
            model.eval()
            m = score_metrics(*predict(model, val), val, kinds or ["none"])
            q = quality(m)
            evals.append({"step": step + 1, "quality": round(q, 4), "node_auroc": m["node_auroc"],
                          "graph_auroc": m["graph_auroc"]})
            if q > best[0]:
                best = (q, {k: v.detach().clone() for k, v in model.state_dict().items()}, step + 1)
                bad = 0
            else:
                bad += 1
            model.train()
            if patience and bad >= patience:
                break
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    info = {"steps": step + 1, "planned_steps": steps, "seconds": round(time.perf_counter() - t0, 1),
            "final_loss": float(np.mean(losses[-50:])), "pos_weight_node": float(pw_node),
            "pos_weight_graph": float(pw_graph)}
    if evals:
        info.update(best_step=best[2], best_val_quality=round(best[0], 4), evals=len(evals))
    return model, info


@torch.no_grad()
def predict(model: SensorGNN, data: GraphData) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(data.nodes)
    ns, gs = [], []
    for s in range(0, len(x), 1024):
        n, g, _ = model(x[s : s + 1024])
        ns.append(n.numpy())
        gs.append(g.numpy())
    return np.concatenate(ns), np.concatenate(gs)


def _auroc(y, s) -> float | None:
    y = np.asarray(y)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def score_metrics(node_scores: np.ndarray, graph_scores: np.ndarray, data: GraphData, kinds: list[str]) -> dict:
    """Node AUROC (all faults, and per fault kind: that kind's nodes vs fault-free nodes), graph AUROC
    (process anomaly), and counts."""
    f = data.fault.reshape(-1)
    s = node_scores.reshape(-1)
    per_kind = {}
    counts = {}
    for k, name in enumerate(kinds):
        if k == 0:
            continue
        sel = (f == 0) | (f == k)
        counts[name] = int((f == k).sum())
        per_kind[name] = _auroc(f[sel] == k, s[sel])
    return {
        "node_auroc": _auroc(f > 0, s),
        "node_auroc_per_kind": per_kind,
        "fault_nodes_per_kind": counts,
        "graph_auroc": _auroc(data.anomaly > 0, graph_scores),
        "graphs": int(len(data)),
        "anomalous_graphs": int((data.anomaly > 0).sum()),
    }


def zscore_baseline(data: GraphData, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Per-sensor z-score from train-normal statistics: node score = max over the node's features of |z| (NaN → 0);
    graph score = max over nodes."""
    z = np.abs(normalise(data.nodes, mean, std))
    z = np.nan_to_num(z, nan=0.0, posinf=1e6)
    node = z.max(-1)
    return node, node.max(-1)


MOTION_FEATURES = ("std_rel", "slope_rel", "diff_std_rel", "max_step_rel")


def motion_indices(feature_names: list[str]) -> list[int]:
    """Indices of the within-window motion features (MOTION_FEATURES) present in ``feature_names``."""
    return [feature_names.index(f) for f in MOTION_FEATURES if f in feature_names]


def slow_drift_counterfactual(data: GraphData, mean: np.ndarray, motion: list[int], drift: int) -> GraphData:
    """``data`` with every drift-fault node's motion features set to the sensor's normal mean: the window of a drift
    too slow to show a slope (same level offset). A robustness probe for selection data; labels unchanged."""
    x = data.nodes.copy()
    g, n = np.nonzero(data.fault == drift)
    for f in motion:
        x[g, n, f] = np.asarray(mean)[n, f]
    return GraphData(x, data.fault, data.anomaly)


def quality(m: dict) -> float:
    """One number for model selection: mean of node AUROC and graph AUROC (whichever exist)."""
    v = [x for x in (m["node_auroc"], m["graph_auroc"]) if x is not None]
    return float(np.mean(v)) if v else 0.0
