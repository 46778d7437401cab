"""Export to ONNX, run with onnxruntime, measure CPU latency, check parity, and choose fp32 vs int8.

Every exported file must load in the daemon's onnxruntime-node: opset 17, standard ONNX ops only (default domain),
one self-contained file. ``check_standard`` enforces that; ``choose_variant`` only keeps an int8 variant when it
passes the same check, is measured faster than fp32 and stays within the tolerance.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

STANDARD_DOMAINS = ("", "ai.onnx")
# an int8 variant must be at least this much faster (p50) than fp32 to be worth its error
MIN_SPEEDUP = 1.05


class ExportError(RuntimeError):
    pass


def export_onnx(
    model,
    example_inputs: tuple,
    path,
    input_names,
    output_names,
    dynamic_batch: bool = True,
    opset: int = 17,
    *,
    dynamo: bool | None = None,
) -> Path:
    """Exports a torch module (put in eval mode) to one self-contained ONNX file and checks it.

    ``dynamic_batch``: axis 0 of every input and output is the dynamic ``batch`` dimension. ``dynamo``: None tries
    the TorchScript exporter first (fast, exact dynamic_axes) and falls back to the dynamo exporter.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    input_names, output_names = list(input_names), list(output_names)
    errors = []
    for use_dynamo in ([False, True] if dynamo is None else [dynamo]):
        try:
            with warnings.catch_warnings(), redirect_stdout(io.StringIO()), torch.no_grad():
                warnings.simplefilter("ignore")
                kw: dict = dict(input_names=input_names, output_names=output_names, opset_version=opset)
                if use_dynamo:
                    kw["dynamo"] = True
                    kw["external_data"] = False
                    if dynamic_batch:
                        batch = torch.export.Dim("batch", min=1, max=1 << 16)
                        kw["dynamic_shapes"] = tuple({0: batch} for _ in example_inputs)
                else:
                    kw["dynamo"] = False
                    if dynamic_batch:
                        kw["dynamic_axes"] = {n: {0: "batch"} for n in input_names + output_names}
                with redirect_stderr(io.StringIO()):
                    torch.onnx.export(model, tuple(example_inputs), str(path), **kw)
            check_standard(path, opset)
            return path
        except Exception as err:  # noqa: BLE001 - try the other exporter, report both
            errors.append(f"{'dynamo' if use_dynamo else 'torchscript'}: {err!r}"[:1500])
    raise ExportError(f"ONNX export of {type(model).__name__} to {path} failed: " + " | ".join(errors))


def check_standard(path, opset: int = 17) -> None:
    """Raises ExportError unless the file passes onnx.checker, targets ``opset`` and uses only standard-domain ops."""
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    versions = {o.domain: o.version for o in m.opset_import}
    if versions.get("", versions.get("ai.onnx")) != opset:
        raise ExportError(f"{path}: default-domain opset is {versions}, want {opset}")
    bad = sorted({f"{n.domain}::{n.op_type}" for n in _all_nodes(m.graph) if n.domain not in STANDARD_DOMAINS})
    if bad:
        raise ExportError(f"{path}: non-standard ops {bad} (the daemon's onnxruntime-node needs standard ops)")
    if m.functions:
        raise ExportError(f"{path}: has local functions {[f.name for f in m.functions]}; inline them")


def _all_nodes(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.g is not None and len(a.g.node):
                yield from _all_nodes(a.g)
            for g in a.graphs:
                yield from _all_nodes(g)


def io_spec(path) -> dict:
    """{"inputs": [{name, shape (-1 for symbolic dims), dtype}], "outputs": [...]} read from the ONNX file."""
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}

    def one(v):
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        return {"name": v.name, "shape": shape, "dtype": dtype}

    return {
        "inputs": [one(v) for v in m.graph.input if v.name not in inits],
        "outputs": [one(v) for v in m.graph.output],
    }


def session(path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run(path_or_session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = path_or_session if isinstance(path_or_session, ort.InferenceSession) else session(path_or_session)
    names = [o.name for o in sess.get_outputs()]
    feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
    return dict(zip(names, sess.run(names, feed)))


def latency(path, inputs: dict[str, np.ndarray], runs: int = 200, threads: int = 1, warmup: int = 10) -> dict:
    """Wall time of one ``run`` call with these inputs: p50, p99, mean in ms (after ``warmup`` runs)."""
    sess = path if isinstance(path, ort.InferenceSession) else session(path, threads)
    feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
    for _ in range(warmup):
        sess.run(None, feed)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        t[i] = time.perf_counter() - t0
    t *= 1000.0
    return {
        "p50_ms": float(np.percentile(t, 50)),
        "p99_ms": float(np.percentile(t, 99)),
        "mean_ms": float(t.mean()),
        "runs": runs,
        "threads": threads,
    }


def compare(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict:
    """max |a-b| and max |a-b| / max(|ref|, 1e-3) over all outputs, and per output."""
    out: dict = {"max_abs": 0.0, "max_rel": 0.0, "outputs": {}}
    for name, ref in reference.items():
        if name not in got:
            raise KeyError(f"output {name!r} missing (have {sorted(got)})")
        a = np.asarray(ref, dtype=np.float64)
        b = np.asarray(got[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"output {name!r}: shape {b.shape} != reference {a.shape}")
        d = np.abs(a - b)
        ma = float(d.max()) if d.size else 0.0
        mr = float((d / np.maximum(np.abs(a), 1e-3)).max()) if d.size else 0.0
        out["outputs"][name] = {"max_abs": ma, "max_rel": mr}
        out["max_abs"] = max(out["max_abs"], ma)
        out["max_rel"] = max(out["max_rel"], mr)
    return out


def parity(reference: dict[str, np.ndarray], path, inputs: dict[str, np.ndarray]) -> dict:
    """Runs ``path`` on ``inputs`` and compares with ``reference`` (e.g. PyTorch's outputs): see compare()."""
    return compare(reference, run(path, inputs))


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not used by the MinMax calibrator
        pass


def _quantize(fp32_path: Path, kind: str, out: Path, calibration_inputs) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation only
            pre = fp32_path
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # MatMul/Gemm/Conv only: they quantise to standard ops (MatMulInteger, ConvInteger, QuantizeLinear ...);
            # LSTM/Attention would become com.microsoft contrib ops the daemon must not depend on.
            if kind == "int8-dynamic":
                quantize_dynamic(
                    str(pre), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                    extra_options={"MatMulConstBOnly": True},
                )
            else:
                quantize_static(
                    str(pre), str(out), _Reader(list(calibration_inputs)), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                )


def choose_variant(
    fp32_path,
    inputs: dict[str, np.ndarray],
    reference_outputs: dict[str, np.ndarray],
    tol_abs: float,
    calibration_inputs: list[dict] | None = None,
    *,
    runs: int = 200,
    threads: int = 1,
) -> dict:
    """Tries int8 dynamic (and int8 static when calibration feeds are given) next to fp32; keeps int8 ONLY when it is
    standard-ops, measured faster (p50 ≥ MIN_SPEEDUP × faster) AND within ``tol_abs`` of ``reference_outputs``;
    otherwise keeps fp32 and says why. Returns dict(file, variant, fp32_latency, int8_latency, max_abs_err, reason,
    candidates). The chosen file is ``fp32_path`` itself or ``<stem>.int8.onnx`` beside it (losers are deleted)."""
    fp32_path = Path(fp32_path)
    fp32_lat = latency(fp32_path, inputs, runs=runs, threads=threads)
    fp32_err = compare(reference_outputs, run(fp32_path, inputs))["max_abs"]
    kinds = ["int8-dynamic"] + (["int8-static"] if calibration_inputs else [])
    candidates = []
    for kind in kinds:
        out = fp32_path.with_name(f"{fp32_path.stem}.{kind}.onnx")
        c: dict = {"variant": kind, "file": out}
        try:
            _quantize(fp32_path, kind, out, calibration_inputs)
            check_standard(out, _opset(fp32_path))
            c["latency"] = latency(out, inputs, runs=runs, threads=threads)
            c["max_abs_err"] = compare(reference_outputs, run(out, inputs))["max_abs"]
            c["bytes"] = out.stat().st_size
            faster = c["latency"]["p50_ms"] * MIN_SPEEDUP <= fp32_lat["p50_ms"]
            within = c["max_abs_err"] <= tol_abs
            c["ok"] = bool(faster and within)
            c["why"] = (
                f"p50 {c['latency']['p50_ms']:.3f} ms vs fp32 {fp32_lat['p50_ms']:.3f} ms "
                f"({'faster' if faster else 'not faster by ≥5 %'}), max |err| {c['max_abs_err']:.2e} "
                f"({'within' if within else 'over'} tolerance {tol_abs:.1e})"
            )
        except Exception as err:  # noqa: BLE001 - a variant that cannot be built is just not chosen
            c["ok"] = False
            c["why"] = f"could not build: {str(err)[:300]}"
        candidates.append(c)
    ok = [c for c in candidates if c["ok"]]
    best = min(ok, key=lambda c: c["latency"]["p50_ms"]) if ok else None
    for c in candidates:
        if c is not best and Path(c["file"]).exists():
            os.remove(c["file"])
    summary = [{k: (str(v) if isinstance(v, Path) else v) for k, v in c.items() if k != "file"} for c in candidates]
    if best is None:
        return {
            "file": fp32_path,
            "variant": "fp32",
            "fp32_latency": fp32_lat,
            "int8_latency": next((c.get("latency") for c in candidates if "latency" in c), None),
            "max_abs_err": fp32_err,
            "reason": "kept fp32: " + "; ".join(f"{c['variant']}: {c['why']}" for c in candidates),
            "candidates": summary,
        }
    return {
        "file": best["file"],
        "variant": best["variant"],
        "fp32_latency": fp32_lat,
        "int8_latency": best["latency"],
        "max_abs_err": best["max_abs_err"],
        "reason": f"chose {best['variant']}: {best['why']}",
        "candidates": summary,
    }


def _opset(path) -> int:
    m = onnx.load(str(path), load_external_data=False)
    return {o.domain: o.version for o in m.opset_import}.get("", 17)
