"""glass_factory.common: datasets, generator invocation, ONNX tools, artifacts/manifest, AutoML, metrics."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import make_fake_dataset
from glass_factory.common import artifacts, automl, dataset, metrics, onnx_tools
from glass_factory.common.context import BuildContext, Part

torch.set_num_threads(1)


# --- datasets ---


def test_dataset_reads_arrays_and_fingerprint_tracks_content(tmp_path):
    p = make_fake_dataset(tmp_path / "d", rows=50, seed=4)
    ds = dataset.Dataset(p)
    assert ds.array("features/X").shape == (50, 24)
    assert ds.array("features/y.npy").shape == (50, 3, 8)
    assert ds.defect_classes[1] == "bubble" and ds.horizons_min == [15, 60, 240]
    fp = ds.fingerprint()
    assert fp == dataset.Dataset(p).fingerprint() and len(fp) == 64
    x = np.load(p / "features/X.npy")
    x[0, 0] = 123.0
    np.save(p / "features/X.npy", x)
    assert dataset.Dataset(p).fingerprint() != fp
    with pytest.raises(dataset.DatasetError, match="missing features/nope.npy"):
        ds.array("features/nope")
    with pytest.raises(dataset.DatasetError, match="no manifest.json"):
        dataset.Dataset(tmp_path)


def test_concat_dataset_joins_runs_and_keeps_static_arrays(tmp_path):
    a = make_fake_dataset(tmp_path / "a", rows=40, seed=1, scenario="s1")
    b = make_fake_dataset(tmp_path / "b", rows=30, seed=2, scenario="s2")
    cd = dataset.ConcatDataset([a, b])
    assert cd.array("features/X").shape == (70, 24)
    assert cd.segments("features/X") == [40, 30]
    assert cd.array("graph/edge_index").shape == (2, 6)  # static: not concatenated
    assert cd.scenarios == ["s1", "s2"] and cd.seeds == [1, 2]
    assert [p["scenario"] for p in cd.manifest["parts"]] == ["s1", "s2"]
    assert cd.fingerprint() != dataset.Dataset(a).fingerprint()
    np.save(b / "graph/edge_index.npy", np.zeros((2, 6), np.int64))
    with pytest.raises(dataset.DatasetError, match="edge_index.npy differs"):
        dataset.ConcatDataset([a, b]).array("graph/edge_index")


FAKE_GENERATOR = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import make_fake_dataset
    a = sys.argv[1:]
    assert a[0] == "dataset", a
    opts = dict(zip(a[1::2], a[2::2]))
    if opts.get("--scenario") == "broken":
        print("unknown scenario broken", file=sys.stderr)
        sys.exit(2)
    with open({calls!r}, "a") as f:
        f.write(" ".join(a) + "\\n")
    make_fake_dataset(opts["--out"], rows=int(float(opts["--hours"]) * 60), seed=int(opts["--seed"]),
                      scenario=opts.get("--scenario", "default"), images=int(opts.get("--images", 0)))
    """
)


@pytest.fixture()
def fake_generator(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    script = tmp_path / "gen.py"
    script.write_text(FAKE_GENERATOR.format(tests=str(Path(__file__).parent), calls=str(calls)))
    monkeypatch.setenv("GLASSD_TWIN_COMMAND", f"{sys.executable} {script}")
    return calls


def test_generate_runs_the_command_and_reuses_matching_output(tmp_path, fake_generator):
    out = tmp_path / "ds"
    dataset.generate(out, hours=1, seed=7, scenario="steady", force=False)
    assert dataset.Dataset(out).manifest["seed"] == 7
    dataset.generate(out, hours=1, seed=7, scenario="steady", force=False)  # reused
    assert len(fake_generator.read_text().splitlines()) == 1
    dataset.generate(out, hours=1, seed=8, scenario="steady", force=False)  # other args: regenerated
    dataset.generate(out, hours=1, seed=8, scenario="steady")  # force
    lines = fake_generator.read_text().splitlines()
    assert len(lines) == 3 and "--seed 8" in lines[-1] and "--scenario steady" in lines[-1]
    dataset.generate(tmp_path / "img", hours=0.5, seed=1, images=4, image_size=(32, 32))
    assert "--images 4 --image-size 32x32" in fake_generator.read_text().splitlines()[-1]
    with pytest.raises(dataset.DatasetError, match="unknown scenario broken"):
        dataset.generate(tmp_path / "bad", hours=1, seed=1, scenario="broken")


def test_context_generates_splits_with_distinct_seeds(tmp_path, fake_generator):
    plan = {"train": [Part("a", 1), Part("b", 1)], "val": [Part("a", 0.5)], "test": [Part("held_out", 0.5)]}
    ctx = BuildContext(quick=True, seed=3, repo_root=tmp_path, models_dir=tmp_path / "m", work_dir=tmp_path / "w",
                       trials=0, plan=plan, verbose=False)
    tr = ctx.dataset("train")
    assert isinstance(tr, dataset.ConcatDataset) and tr.array("features/X").shape[0] == 120
    seeds = tr.seeds + ctx.dataset("val").seeds + ctx.dataset("test").seeds
    assert len(set(seeds)) == 4
    assert ctx.dataset("test").scenarios == ["held_out"]
    assert ctx.version == "0.0.0-quick"
    with pytest.raises(ValueError, match="split must be one of"):
        ctx.dataset("training")
    assert (tmp_path / "w" / "build.log").read_text().count("dataset train") == 2


def test_extra_mix_runs_use_their_own_seeds_and_none_in_quick_mode(tmp_path, fake_generator, monkeypatch):
    from glass_factory.common import context

    monkeypatch.setattr(context, "EXTRA_MIX", {"train": {"offset": 700, "runs": 2, "hours": 1},
                                               "val": {"offset": 400, "runs": 1, "hours": 1}})
    full = BuildContext(quick=False, seed=3, repo_root=tmp_path, models_dir=tmp_path / "m", work_dir=tmp_path / "w",
                        trials=0, verbose=False)
    tr, va = full.extra_mix("train"), full.extra_mix("val")
    assert [d.manifest["seed"] for d in tr] == [3700, 3701] and [d.manifest["seed"] for d in va] == [3400]
    assert all(d.path.parent == tmp_path / "w" / "mix-extra" / "train" for d in tr)
    assert full.extra_mix("train")[0] is tr[0]  # cached, not regenerated
    plan_seeds = {full.split_seed(s, i) for s in ("train", "val", "test") for i in range(8)}
    assert not plan_seeds & {3700, 3701, 3400}
    with pytest.raises(ValueError, match="extra mix runs exist for"):
        full.extra_mix("test")
    quick = BuildContext(quick=True, seed=3, repo_root=tmp_path, models_dir=tmp_path / "m2", work_dir=tmp_path / "w2",
                         trials=0, verbose=False)
    assert quick.extra_mix("train") == []


# --- ONNX tools ---


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(16, 64)
        self.b = torch.nn.Linear(64, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return torch.sigmoid(self.b(h)), h.mean(-1, keepdim=True)


def test_export_parity_latency_and_variant_choice(tmp_path):
    torch.manual_seed(0)
    net = TinyNet().eval()
    x = torch.randn(5, 16)
    path = onnx_tools.export_onnx(net, (x,), tmp_path / "m.onnx", ["x"], ["p", "h"])
    spec = onnx_tools.io_spec(path)
    assert spec["inputs"] == [{"name": "x", "shape": [-1, 16], "dtype": "float32"}]
    assert [o["name"] for o in spec["outputs"]] == ["p", "h"]
    with torch.no_grad():
        p, h = net(x)
    ref = {"p": p.numpy(), "h": h.numpy()}
    feeds = {"x": x.numpy()}
    par = onnx_tools.parity(ref, path, feeds)
    assert par["max_abs"] < 1e-5 and set(par["outputs"]) == {"p", "h"}
    big = {"x": np.random.default_rng(0).normal(size=(33, 16)).astype(np.float32)}
    assert onnx_tools.run(path, big)["p"].shape == (33, 3)  # dynamic batch
    lat = onnx_tools.latency(path, feeds, runs=20)
    assert 0 < lat["p50_ms"] <= lat["p99_ms"]
    calib = [{"x": np.random.default_rng(i).normal(size=(5, 16)).astype(np.float32)} for i in range(4)]
    v = onnx_tools.choose_variant(path, feeds, ref, tol_abs=0.05, calibration_inputs=calib, runs=30)
    assert v["variant"] in ("fp32", "int8-dynamic", "int8-static") and Path(v["file"]).exists()
    assert v["reason"] and {c["variant"] for c in v["candidates"]} == {"int8-dynamic", "int8-static"}
    onnx_tools.check_standard(v["file"])
    if v["variant"] == "fp32":
        assert v["reason"].startswith("kept fp32")
    else:
        assert v["int8_latency"]["p50_ms"] * onnx_tools.MIN_SPEEDUP <= v["fp32_latency"]["p50_ms"]
        assert v["max_abs_err"] <= 0.05
    # an impossible tolerance always keeps fp32 and says why
    v0 = onnx_tools.choose_variant(path, feeds, ref, tol_abs=0.0, runs=10)
    assert v0["variant"] == "fp32" and v0["reason"].startswith("kept fp32")
    assert "over tolerance" in v0["reason"] or "not faster" in v0["reason"]


def test_check_standard_rejects_contrib_ops_and_other_opsets(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(m, tmp_path / "c.onnx")
    with pytest.raises(onnx_tools.ExportError, match="non-standard ops"):
        onnx_tools.check_standard(tmp_path / "c.onnx")
    m2 = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                           opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m2, tmp_path / "o.onnx")
    with pytest.raises(onnx_tools.ExportError, match="opset"):
        onnx_tools.check_standard(tmp_path / "o.onnx")


# --- artifacts ---


def test_golden_card_manifest_round_trip(tmp_path):
    torch.manual_seed(1)
    net = TinyNet().eval()
    ctx = BuildContext(quick=True, seed=0, repo_root=tmp_path, models_dir=tmp_path / "models",
                       work_dir=tmp_path / "w", trials=0, verbose=False)
    d = artifacts.model_dir(ctx, "forecaster")
    assert d == tmp_path / "models" / "forecaster" / "0.0.0-quick" and d.is_dir()
    x = torch.randn(3, 16)
    path = onnx_tools.export_onnx(net, (x,), d / "model.onnx", ["x"], ["p", "h"])
    outs = onnx_tools.run(path, {"x": x.numpy()})
    g = artifacts.write_golden(d, {"x": x.numpy()}, outs, tolerance=1e-5)
    gdoc = json.loads(g.read_text())
    assert gdoc["tolerance"]["abs"] == 1e-5 and gdoc["inputs"][0]["file"] == "golden/in.x.npy"
    assert np.array_equal(np.load(d / "golden/out.p.npy"), outs["p"])
    card = artifacts.write_card(d, name="forecaster", version=ctx.version, summary="s", data={"fp": "abc"},
                                hyperparams={"hidden": 8}, metrics={"auroc": {"bubble": 0.8, "crack": None}},
                                baselines={"persistence": {"bubble": 0.6}}, latency={"p50_ms": 0.1},
                                variant={"variant": "fp32", "reason": "kept fp32: slower", "file": path},
                                notes=["n1"], automl={"trials": 2, "seed": 0, "best_params": {"h": 8},
                                                      "pareto": [{"number": 0, "quality": 0.7, "latency_ms": 0.1,
                                                                  "params": {"h": 8}}]})
    text = card.read_text()
    assert "kept fp32: slower" in text and "auroc.bubble" in text and "AutoML" in text
    mj = json.loads((d / "metrics.json").read_text())
    assert mj["metrics"]["auroc"]["crack"] is None and mj["variant"] == {"variant": "fp32",
                                                                          "reason": "kept fp32: slower"}
    entry = artifacts.manifest_entry(models_dir=ctx.models_dir, name="forecaster", version=ctx.version, file=path,
                                     variant="fp32", output_descriptions={"p": "probability"},
                                     classes=["a", "b", "c"], feature_order=[f"f{i}" for i in range(16)],
                                     normalisation={"kind": "standard", "mean": np.zeros(16), "std": np.ones(16)},
                                     extra={"window_rows": 1}, golden=g, card=card, metrics={"auroc": 0.8},
                                     data={"seeds": [1]})
    assert entry["file"] == "forecaster/0.0.0-quick/model.onnx"
    assert entry["golden"] == "forecaster/0.0.0-quick/golden.json"
    assert entry["inputs"][0]["shape"] == [-1, 16] and entry["outputs"][0]["description"] == "probability"
    assert entry["sha256"] == artifacts.sha256(path) and entry["bytes"] == path.stat().st_size
    artifacts.update_manifest(ctx.models_dir, dict(entry, name="policy"))
    artifacts.update_manifest(ctx.models_dir, entry)
    artifacts.update_manifest(ctx.models_dir, dict(entry, metrics={"auroc": 0.9}))  # replaces by name
    doc = json.loads((ctx.models_dir / "manifest.json").read_text())
    assert doc["format"] == "glassd-models" and doc["format_version"] == 1
    assert [e["name"] for e in doc["models"]] == ["forecaster", "policy"]
    assert doc["models"][0]["metrics"] == {"auroc": 0.9}
    assert artifacts.find_entry(ctx.models_dir, "forecaster")["sha256"] == entry["sha256"]
    v = artifacts.verify_entry(ctx.models_dir, doc["models"][0])
    assert v["sha256_ok"] and v["bytes_ok"] and v["golden"]["ok"]
    path.write_bytes(path.read_bytes() + b"\0")
    assert not artifacts.verify_entry(ctx.models_dir, doc["models"][0])["sha256_ok"]


def test_manifest_entry_refuses_models_over_10_mb(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((1600, 1700), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1600])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1700])
    m = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w]),
                          opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, tmp_path / "big.onnx")
    with pytest.raises(artifacts.ArtifactError, match="10 MB"):
        artifacts.manifest_entry(models_dir=tmp_path, name="big", version="0", file=tmp_path / "big.onnx",
                                 variant="fp32")


# --- AutoML ---


def test_run_study_is_seeded_and_returns_a_pareto_front():
    def objective(trial):
        h = trial.suggest_int("hidden", 4, 64)
        if h == 13:
            raise RuntimeError("a failing trial must not stop the study")
        return 1 - 1 / h, h * 0.01

    a = automl.run_study("t", objective, n_trials=8, seed=5)
    b = automl.run_study("t", objective, n_trials=8, seed=5)
    assert a["trials"] == 8 and a["all"] == b["all"] and a["best_params"] == b["best_params"]
    qs = [p["quality"] for p in a["pareto"]]
    assert qs == sorted(qs, reverse=True) and a["best"]["quality"] == max(r["quality"] for r in a["all"])
    assert automl.run_study("empty", objective, n_trials=0, seed=1)["best_params"] == {}


# --- metrics ---


def test_metrics_handle_nan_and_degenerate_labels():
    y = np.array([0, 0, 1, 1, np.nan])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.5])
    assert metrics.auroc(y, p) == pytest.approx(0.75)
    assert metrics.auroc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert metrics.brier([0, 1], [0.0, 1.0]) == 0.0
    assert metrics.brier([0, 1], [1.0, 0.0]) == 1.0
    # perfectly calibrated within bins → ECE 0; over-confident → large
    yy = np.array([0] * 9 + [1])
    assert metrics.ece(yy, np.full(10, 0.1)) == pytest.approx(0.0)
    assert metrics.ece(yy, np.full(10, 0.9)) == pytest.approx(0.8)
