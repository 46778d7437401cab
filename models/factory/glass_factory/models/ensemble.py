"""Ensemble: a stacking meta-learner per (horizon, class) over the component models' outputs → calibrated risk that
the class's defect rate will be elevated (event of the forecaster card: rate > extra.event_thresholds[h][c]).

Inputs (each only when its model exists in the manifest; the manifest entry records the exact input set):
  * ``probability``, ``uncertainty`` [B,H,C] — the forecaster's outputs;
  * ``vision_rate`` [B,C] — recent per-class defect rate as the vision model reports it. In the twin datasets this is
    APPROXIMATED from the MIK-1 labels: the observed per-class rate r of items in the trailing 15 min, passed through
    the vision model's measured per-class recall and false-positive rate (v = recall·r + fpr·(1 − r)) when its
    metrics.json has them, else r itself (noted in the card);
  * ``graph_score`` [B,1] — the sensor-graph model's graph-level anomaly score at the same time.
Meta-learner: logistic regression per (h, c) on [logit p, log uncertainty, logit v, graph score], fitted on the first
60 % (in time) of the validation split — out-of-sample for every component. Calibration: isotonic regression fitted
on the remaining 40 % of val, exported as a monotone piecewise-linear lookup (Relu/Min/Sum — standard ops). ECE and
Brier before (meta-learner only) and after calibration are measured on the held-out test scenarios.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common import artifacts, onnx_tools
from ..common.metrics import auroc, brier, ece, set_seeds
from . import forecaster as fc

NAME = "ensemble"
KNOTS = 16
EPS = 1e-4


class Ensemble(nn.Module):
    def __init__(self, n_h: int, n_c: int, use_vision: bool, use_graph: bool):
        super().__init__()
        self.use_vision, self.use_graph = use_vision, use_graph
        self.register_buffer("w", torch.zeros(4, n_h, n_c))  # coefficients of the four meta features
        self.register_buffer("b", torch.zeros(n_h, n_c))
        self.register_buffer("kx", torch.linspace(0, 1, KNOTS).repeat(n_h, n_c, 1))  # knots [H,C,K]
        self.register_buffer("ky0", torch.zeros(n_h, n_c))
        self.register_buffer("slope", torch.ones(n_h, n_c, KNOTS - 1))

    def meta(self, probability, uncertainty, vision_rate=None, graph_score=None):
        lp = torch.logit(torch.clamp(probability, EPS, 1 - EPS))
        z = self.b + self.w[0] * lp + self.w[1] * torch.log(uncertainty + EPS)
        if self.use_vision:
            lv = torch.logit(torch.clamp(vision_rate, EPS, 1 - EPS)).unsqueeze(1)
            z = z + self.w[2] * lv
        if self.use_graph:
            z = z + self.w[3] * graph_score.unsqueeze(-1)
        return torch.sigmoid(z)

    def calibrate(self, raw):
        x = raw.unsqueeze(-1)  # [B,H,C,1]
        width = self.kx[..., 1:] - self.kx[..., :-1]
        seg = torch.minimum(torch.relu(x - self.kx[..., :-1]), width)
        out = self.ky0 + torch.sum(seg * self.slope, dim=-1)
        return torch.clamp(out, 0.0, 1.0)

    def forward(self, *inputs):
        raw = self.meta(*self._split(inputs))
        return self.calibrate(raw), raw

    def _split(self, inputs):
        p, u, *rest = inputs
        v = rest.pop(0) if self.use_vision else None
        g = rest.pop(0) if self.use_graph else None
        return p, u, v, g


def _logit(x):
    x = np.clip(x, EPS, 1 - EPS)
    return np.log(x / (1 - x))


def _design(p, u, v, g, hi, ci):
    cols = [_logit(p[:, hi, ci]), np.log(u[:, hi, ci] + EPS)]
    cols.append(_logit(v[:, ci]) if v is not None else np.zeros(len(p)))
    cols.append(g[:, 0] if g is not None else np.zeros(len(p)))
    return np.stack(cols, 1)


def _fit_anchored(X, y, lam=20.0):
    """Logistic meta-learner anchored on the forecaster: minimises the mean log-loss plus lam·((w0 − 1)² + Σ wk²),
    so with weak evidence it stays the forecaster's own logit (w0 = 1, others 0) and only moves where the validation
    data supports it. Returns (w [4], b)."""
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    w = torch.tensor([1.0, 0.0, 0.0, 0.0], requires_grad=True)
    b = torch.tensor([float(np.log((y.mean() + EPS) / (1 - y.mean() + EPS))) - 0.0], requires_grad=True)
    anchor = torch.tensor([1.0, 0.0, 0.0, 0.0])
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = Xt @ w + b
        loss = nn.functional.binary_cross_entropy_with_logits(z, yt) + lam * ((w - anchor) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach()[0])


def _platt_knots(raw, y):
    """Platt scaling on the meta output's logit, a > 0 (strictly monotone: the ranking, hence AUROC, is kept; no flat
    steps as isotonic regression makes with few positives) → KNOTS (x, y) points of the piecewise-linear map."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=500).fit(_logit(raw)[:, None], y)
    a, c = max(float(lr.coef_[0, 0]), 0.05), float(lr.intercept_[0])
    qs = np.unique(np.quantile(raw, np.linspace(0, 1, KNOTS - 2)))
    xs = np.unique(np.r_[0.0, qs, 1.0])
    while len(xs) < KNOTS:  # pad with midpoints of the widest gaps
        k = int(np.argmax(np.diff(xs)))
        xs = np.sort(np.r_[xs, (xs[k] + xs[k + 1]) / 2])
    ys = 1 / (1 + np.exp(-(a * _logit(xs) + c)))
    return xs, np.maximum.accumulate(ys)


def _isotonic_knots(raw, y):
    """Isotonic fit → KNOTS (x, y) points of a monotone piecewise-linear map on [0, 1]."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    qs = np.unique(np.quantile(raw, np.linspace(0, 1, KNOTS - 2)))
    xs = np.unique(np.r_[0.0, qs, 1.0])
    while len(xs) < KNOTS:  # pad with midpoints of the widest gaps
        k = int(np.argmax(np.diff(xs)))
        xs = np.sort(np.r_[xs, (xs[k] + xs[k + 1]) / 2])
    ys = np.maximum.accumulate(iso.predict(xs))
    return xs, ys


# ---------------------------------------------------------------- component outputs on a split


def _component_outputs(ctx, parts, T, fentry, ventry, gentry, vision_rates):
    """Forecaster outputs (+ vision proxy, + graph score) on every window of the split, through the shipped ONNX."""
    w = fc.make_windows(parts, T)
    sess = onnx_tools.session(ctx.models_dir / fentry["file"])
    P, U = [], []
    for i in range(0, len(w.X), 512):
        o = onnx_tools.run(sess, {"x": w.X[i : i + 512], "recent": w.persist[i : i + 512]})
        P.append(o["probability"])
        U.append(o["uncertainty"])
    P, U = np.concatenate(P), np.concatenate(U)
    V = None
    if ventry is not None:
        r15 = np.concatenate([fc.trailing_rates(p, w.t[w.part == k], [15])[:, 0]
                              for k, p in enumerate(parts) if (w.part == k).any()])
        r15 = np.where(np.isfinite(r15), r15, np.nanmean(r15, axis=0, keepdims=True))
        r15 = np.nan_to_num(r15)
        rec, fpr = vision_rates
        V = (rec[None] * r15 + fpr[None] * (1 - r15)).astype(np.float32)
    G = None
    if gentry is not None:
        G = np.concatenate([_graph_scores(ctx, gentry, p, w.t[w.part == k])
                            for k, p in enumerate(parts) if (w.part == k).any()]).astype(np.float32)
    return w, P, U, V, G


def _graph_scores(ctx, gentry, ds, t):
    """Runs the sensor-graph ONNX on graph/nodes.npy at the rows whose time is t: [len(t), 1]."""
    sess = onnx_tools.session(ctx.models_dir / gentry["file"])
    nodes = np.asarray(ds.array("graph/nodes"), dtype=np.float32)
    gt = np.asarray(ds.array("graph/t")) if ds.has("graph/t") else np.asarray(ds.array("features/t"))
    rows = np.searchsorted(gt, t)
    edge_index = np.asarray(ds.array("graph/edge_index"), dtype=np.int64)
    inputs = {i["name"]: i for i in gentry["inputs"]}
    outs = [o["name"] for o in gentry["outputs"]]
    gname = next((o for o in outs if "graph" in o), outs[-1])
    scores = []
    for i in range(0, len(rows), 256):
        sel = rows[i : i + 256]
        feed = {}
        for name, spec in inputs.items():
            if "edge" in name:
                feed[name] = edge_index.astype(np.dtype(spec["dtype"]))
            else:
                x = nodes[sel]
                if len(spec["shape"]) == 2:  # a single graph per call
                    feed = None
                    break
                feed[name] = x.astype(np.dtype(spec["dtype"]))
        if feed is None:
            sc = []
            for r in sel:
                f1 = {n: (edge_index if "edge" in n else nodes[r]).astype(np.dtype(s["dtype"]))
                      for n, s in inputs.items()}
                sc.append(np.asarray(onnx_tools.run(sess, f1)[gname]).reshape(-1)[:1])
            scores.append(np.stack(sc))
        else:
            scores.append(np.asarray(onnx_tools.run(sess, feed)[gname]).reshape(len(sel), -1)[:, :1])
    return np.concatenate(scores)


def _vision_error_rates(ctx, ventry, classes):
    """Per-class (recall, false-positive rate) from the vision model's metrics.json, or (1, 0) when not found."""
    rec, fpr = np.ones(len(classes), np.float32), np.zeros(len(classes), np.float32)
    found = False
    try:
        card = Path(ctx.models_dir) / ventry["card"]
        doc = json.loads((card.parent / "metrics.json").read_text())
        m = doc.get("metrics", {})
        for key_r, key_f in (("recall", "fpr"), ("image_recall", "image_fpr"), ("recall", "false_positive_rate")):
            if isinstance(m.get(key_r), dict) and isinstance(m.get(key_f), dict):
                for i, c in enumerate(classes):
                    if m[key_r].get(c) is not None:
                        rec[i] = float(m[key_r][c])
                    if m[key_f].get(c) is not None:
                        fpr[i] = float(m[key_f][c])
                found = True
                break
    except (OSError, KeyError, ValueError, TypeError):
        pass
    return (rec, fpr), found


# ---------------------------------------------------------------- build


def build(ctx) -> dict:
    t0 = time.perf_counter()
    set_seeds(ctx.seed, ctx.threads)
    fentry = artifacts.find_entry(ctx.models_dir, "forecaster")
    if fentry is None:
        raise RuntimeError("the ensemble needs the forecaster in the manifest (build it first)")
    ventry = artifacts.find_entry(ctx.models_dir, "vision")
    gentry = artifacts.find_entry(ctx.models_dir, "sensor-graph") or artifacts.find_entry(ctx.models_dir, "gnn")
    classes, horizons = fentry["classes"], fentry["extra"]["horizons_min"]
    thr = np.asarray(fentry["extra"]["event_thresholds"], dtype=np.float32)
    T = int(fentry["extra"]["window_rows"])
    vision_rates, vision_found = (None, False)
    if ventry is not None:
        vision_rates, vision_found = _vision_error_rates(ctx, ventry, classes)
    notes = []

    def outputs(split):
        return _component_outputs(ctx, ctx.datasets(split), T, fentry, ventry, gentry, vision_rates)

    try:
        wv, Pv, Uv, Vv, Gv = outputs("val")
        wt, Pt, Ut, Vt, Gt = outputs("test")
    except Exception as err:  # noqa: BLE001 - a component that cannot be run on the data is left out
        if gentry is None:
            raise
        ctx.log(f"ensemble: the sensor-graph model could not be run ({err!r}); training without it")
        notes.append(f"sensor-graph model present but not usable here ({str(err)[:200]}); left out")
        gentry = None
        wv, Pv, Uv, Vv, Gv = outputs("val")
        wt, Pt, Ut, Vt, Gt = outputs("test")
    use_v, use_g = Vv is not None, Gv is not None
    H, C = len(horizons), len(classes)
    # split val in time: meta-learner on the first 60 %, calibrator on the rest
    order = np.argsort(wv.part * 10**15 + wv.t, kind="stable")
    cut = int(0.6 * len(order))
    fit_i, cal_i = order[:cut], order[cut:]
    model = Ensemble(H, C, use_v, use_g)
    raw_cal = np.zeros((len(cal_i), H, C))
    fitted = {}
    for hi in range(H):
        for ci in range(C):
            yv = wv.y[:, hi, ci]
            ev = (yv > thr[hi, ci]).astype(float)
            ok = np.isfinite(yv)
            Xf = _design(Pv, Uv, Vv, Gv, hi, ci)
            mf = ok[fit_i]
            yf = ev[fit_i][mf]
            if mf.sum() < 10 or yf.min() == yf.max():
                # Nothing to learn from: pass the forecaster through (its logit, weight 1), never a constant.
                model.w[:, hi, ci] = torch.tensor([1.0, 0.0, 0.0, 0.0])
                model.b[hi, ci] = 0.0
                fitted[f"{horizons[hi]}min.{classes[ci]}"] = "forecaster passed through (no positives or negatives in the fit part)"
            else:
                coef, icpt = _fit_anchored(Xf[fit_i][mf], yf)
                model.w[:, hi, ci] = torch.tensor(coef, dtype=torch.float32)
                model.b[hi, ci] = icpt
            with torch.no_grad():
                z = model.b[hi, ci] + (torch.from_numpy(Xf[cal_i]).float() * model.w[:, hi, ci]).sum(-1)
                raw_cal[:, hi, ci] = torch.sigmoid(z).numpy()
            mc = ok[cal_i]
            yc = ev[cal_i][mc]
            if mc.sum() >= 10 and yc.min() != yc.max():
                xs, ys = _platt_knots(raw_cal[mc, hi, ci], yc)
            else:
                xs, ys = np.linspace(0, 1, KNOTS), np.linspace(0, 1, KNOTS)
            model.kx[hi, ci] = torch.from_numpy(xs).float()
            model.ky0[hi, ci] = float(ys[0])
            model.slope[hi, ci] = torch.from_numpy(np.diff(ys) / np.maximum(np.diff(xs), 1e-9)).float()

    def feeds(P, U, V, G, sl=slice(None)):
        f = {"probability": P[sl], "uncertainty": U[sl]}
        if use_v:
            f["vision_rate"] = V[sl]
        if use_g:
            f["graph_score"] = G[sl]
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in f.items()}

    with torch.no_grad():
        risk_t, raw_t = (o.numpy() for o in model(*[torch.from_numpy(v) for v in feeds(Pt, Ut, Vt, Gt).values()]))
    # metrics on the held-out test scenarios
    per, agg = {}, {"before": {"ece": [], "brier": []}, "after": {"ece": [], "brier": []}, "auroc": [],
                    "forecaster_auroc": []}
    for hi, h in enumerate(horizons):
        for ci, c in enumerate(classes):
            yt = wt.y[:, hi, ci]
            ok = np.isfinite(yt)
            ev = (yt[ok] > thr[hi, ci]).astype(float)
            r = {"positives": int(ev.sum()), "n": int(ok.sum()),
                 "ece_before": ece(ev, raw_t[ok, hi, ci]), "ece_after": ece(ev, risk_t[ok, hi, ci]),
                 "brier_before": brier(ev, raw_t[ok, hi, ci]), "brier_after": brier(ev, risk_t[ok, hi, ci]),
                 "auroc": auroc(ev, risk_t[ok, hi, ci]), "forecaster_auroc": auroc(ev, Pt[ok, hi, ci])}
            per[f"{h}min.{c}"] = r
            for when in ("before", "after"):
                for m in ("ece", "brier"):
                    if r[f"{m}_{when}"] is not None:
                        agg[when][m].append(r[f"{m}_{when}"])
            if r["auroc"] is not None and r["forecaster_auroc"] is not None:
                agg["auroc"].append(r["auroc"])
                agg["forecaster_auroc"].append(r["forecaster_auroc"])
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    metrics = {"ece_before": mean(agg["before"]["ece"]), "ece_after": mean(agg["after"]["ece"]),
               "brier_before": mean(agg["before"]["brier"]), "brier_after": mean(agg["after"]["brier"]),
               "macro_auroc": mean(agg["auroc"]), "forecaster_macro_auroc_same_events": mean(agg["forecaster_auroc"])}

    # export
    out_dir = artifacts.model_dir(ctx, NAME)
    names = list(feeds(Pt, Ut, Vt, Gt).keys())
    ex = feeds(Pt, Ut, Vt, Gt, slice(0, 2))
    path = onnx_tools.export_onnx(model, tuple(torch.from_numpy(v) for v in ex.values()), out_dir / "model.onnx",
                                  names, ["risk", "risk_uncalibrated"])
    rng = np.random.default_rng(ctx.seed)
    pick = np.sort(rng.choice(len(Pt), size=min(8, len(Pt)), replace=False))
    gold = feeds(Pt[pick], Ut[pick], None if Vt is None else Vt[pick], None if Gt is None else Gt[pick])
    with torch.no_grad():
        ref = dict(zip(["risk", "risk_uncalibrated"], (o.numpy() for o in model(*[torch.from_numpy(v)
                                                                                 for v in gold.values()]))))
    par = onnx_tools.parity(ref, path, gold)
    variant = {"variant": "fp32", "reason": "kept fp32: a few hundred multiply-adds, nothing to quantise",
               "fp32_latency": onnx_tools.latency(path, {k: v[:1] for k, v in gold.items()}, runs=200)}
    out = onnx_tools.run(path, gold)
    golden = artifacts.write_golden(out_dir, gold, out, tolerance={"abs": 1e-5, "rel": 1e-4})
    inputs_used = ["forecaster.probability", "forecaster.uncertainty"] + (["vision_rate"] if use_v else []) + \
        (["sensor-graph.graph_score"] if use_g else [])
    notes += [
        f"Inputs used: {inputs_used}. Missing components: "
        f"{[n for n, e in (('vision', ventry), ('sensor-graph', gentry)) if e is None] or 'none'}.",
        "Target: the forecaster's 'elevated rate' event (y > extra.event_thresholds[h][c]) per horizon and class.",
        "Meta-learner fitted on the first 60 % of the validation split (in time), isotonic calibration on the last "
        "40 %; all metrics on the held-out test scenarios.",
    ]
    if use_v:
        notes.append("vision_rate is an APPROXIMATION in the twin data: the MIK-1 label rate over the trailing "
                     "15 min passed through the vision model's per-class recall / false-positive rate"
                     + (" (from its metrics.json)." if vision_found else
                        " — its metrics.json had no per-class recall/fpr, so r is used as is (perfect vision)."))
    if metrics["ece_after"] is not None and metrics["ece_before"] is not None \
            and metrics["ece_after"] > metrics["ece_before"]:
        notes.append("Calibration did NOT lower the test ECE: the val→test shift (mix → scripted scenarios) is "
                     "larger than the calibration gain.")
    table = ["| horizon.class | positives/n | AUROC | forecaster AUROC | ECE before | ECE after | Brier before | "
             "Brier after |", "|---|---|---|---|---|---|---|---|"]
    f = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    for k, r in per.items():
        table.append(f"| {k} | {r['positives']}/{r['n']} | {f(r['auroc'])} | {f(r['forecaster_auroc'])} | "
                     f"{f(r['ece_before'])} | {f(r['ece_after'])} | {f(r['brier_before'])} | {f(r['brier_after'])} |")
    data = {"val_windows": len(Pv), "test_windows": len(Pt),
            "val_fingerprint": fc._fp(ctx.datasets("val")), "test_fingerprint": fc._fp(ctx.datasets("test")),
            "component_versions": {n: (e or {}).get("version") for n, e in
                                   (("forecaster", fentry), ("vision", ventry), ("sensor-graph", gentry))}}
    card = artifacts.write_card(
        out_dir, name=NAME, version=ctx.version,
        summary="Stacking meta-learner per (horizon, class) over the forecaster, recent vision defect rates and the "
                "sensor-graph score → isotonic-calibrated risk of an elevated defect rate.",
        data=data, hyperparams={"meta": "logistic regression per (h, c), C=1", "calibration": f"isotonic → "
                                f"{KNOTS}-knot piecewise-linear", "inputs": inputs_used},
        metrics=metrics, baselines={"forecaster_alone_macro_auroc": metrics["forecaster_macro_auroc_same_events"],
                                    "uncalibrated_meta": {"ece": metrics["ece_before"],
                                                          "brier": metrics["brier_before"]}},
        latency=variant["fp32_latency"], variant=variant, notes=notes,
        tables={"Per horizon and class (test)": "\n".join(table)},
        automl={"trials": 0, "seed": None, "best_params": "none: a linear meta-learner has no architecture to search",
                "pareto": []},
    )
    entry = artifacts.manifest_entry(
        models_dir=ctx.models_dir, name=NAME, version=ctx.version, file=path, variant="fp32",
        output_descriptions={"risk": "[B,H,C] calibrated P(rate of class c in (t, t+h] > threshold)",
                             "risk_uncalibrated": "[B,H,C] the meta-learner before calibration"},
        classes=classes, feature_order=None, normalisation=None,
        extra={"horizons_min": horizons, "inputs_used": inputs_used, "event_thresholds": thr,
               "vision_rate": "trailing-15-min per-class defect rate reported by the vision model" if use_v else None,
               "graph_score_output": "graph-level score output of the sensor-graph model" if use_g else None},
        golden=golden, card=card,
        metrics={k: metrics[k] for k in ("ece_before", "ece_after", "brier_before", "brier_after", "macro_auroc")},
        data={"fingerprints": {"val": data["val_fingerprint"], "test": data["test_fingerprint"]},
              "components": data["component_versions"]},
    )
    artifacts.update_manifest(ctx.models_dir, entry)
    ctx.log(f"ensemble: done in {time.perf_counter() - t0:.0f} s; {metrics}")
    entry = dict(entry)
    beats = (metrics["macro_auroc"] or 0) >= (metrics["forecaster_macro_auroc_same_events"] or 0)
    calibrated = metrics["ece_after"] is not None and metrics["ece_after"] <= (metrics["ece_before"] or 1.0)
    entry["_acceptance"] = {
        "ok": bool(par["max_abs"] <= 1e-5 and beats and calibrated),
        "checks": {"parity_fp32": par["max_abs"], "auroc_not_below_forecaster": bool(beats),
                   "calibration_lowers_ece": bool(calibrated)},
    }
    return entry
