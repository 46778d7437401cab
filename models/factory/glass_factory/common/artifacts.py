"""What a model build leaves behind: models/<name>/<version>/{model.onnx, card.md, metrics.json, golden/, golden.json}
and its entry in models/manifest.json (format "glassd-models" v1, read by the daemon's model registry)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_FORMAT = "glassd-models"
MANIFEST_VERSION = 1
MAX_MODEL_BYTES = 10 * 1024 * 1024
# the daemon builds its runtime in this order; entries are kept sorted by it (others after, by name)
MODEL_ORDER = ("forecaster", "vision", "sensor-graph", "gnn", "ensemble", "policy")


class ArtifactError(RuntimeError):
    pass


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dir(ctx, name: str, version: str | None = None) -> Path:
    """``ctx.models_dir/<name>/<version>/`` (version defaults to ctx.version), emptied and created."""
    d = Path(ctx.models_dir) / name / (version or ctx.version)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def to_jsonable(x: Any) -> Any:
    """numpy scalars/arrays, Paths, NaN/inf → JSON-safe values (NaN and ±inf become null)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path, obj) -> None:
    """Atomic JSON write (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_jsonable(obj), f, indent=1, allow_nan=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are committed and read by the daemon
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_golden(dir, inputs: dict, outputs: dict, tolerance: dict | float | None = None) -> Path:
    """golden/in.<name>.npy, golden/out.<name>.npy and golden.json {inputs, outputs: [{name, file, shape, dtype}],
    tolerance: {abs, rel}}; files are relative to ``dir``. The outputs are the SHIPPED variant's (what Node must
    reproduce). ``tolerance``: abs (float) or {"abs", "rel"}; default abs 1e-4, rel 1e-3."""
    dir = Path(dir)
    g = dir / "golden"
    if g.exists():
        shutil.rmtree(g)
    g.mkdir(parents=True)
    tol = {"abs": 1e-4, "rel": 1e-3}
    if isinstance(tolerance, (int, float)):
        tol["abs"] = float(tolerance)
    elif isinstance(tolerance, dict):
        tol.update({k: float(v) for k, v in tolerance.items()})

    def save(kind: str, arrays: dict) -> list[dict]:
        listed = []
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
            rel = f"golden/{kind}.{safe}.npy"
            np.save(dir / rel, a, allow_pickle=False)
            listed.append({"name": name, "file": rel, "shape": list(a.shape), "dtype": a.dtype.name})
        return listed

    doc = {"inputs": save("in", inputs), "outputs": save("out", outputs), "tolerance": tol}
    write_json(dir / "golden.json", doc)
    return dir / "golden.json"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(to_jsonable(v), separators=(",", ":"))[:300] + "`"
    return str(v)


def _table(d: dict, head=("key", "value")) -> list[str]:
    if not d:
        return ["(none)", ""]
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    for k, v in d.items():
        lines.append(f"| {k} | {_fmt(v)} |")
    return lines + [""]


def write_card(
    dir,
    *,
    name: str,
    version: str,
    summary: str,
    data: dict,
    hyperparams: dict,
    metrics: dict,
    baselines: dict,
    latency: dict,
    variant: dict,
    notes: list[str],
    tables: dict[str, str] | None = None,
    automl: dict | None = None,
) -> Path:
    """card.md (for people) + metrics.json (everything, machine-readable). ``tables``: extra markdown sections
    (title → markdown), e.g. per-class metric tables the builder formats itself. Returns the card path."""
    dir = Path(dir)
    variant_clean = {k: v for k, v in variant.items() if k not in ("file",)}
    doc = {
        "name": name,
        "version": version,
        "summary": summary,
        "data": data,
        "hyperparams": hyperparams,
        "metrics": metrics,
        "baselines": baselines,
        "latency": latency,
        "variant": variant_clean,
        "automl": automl,
        "notes": notes,
        "written_at": _now(),
    }
    write_json(dir / "metrics.json", doc)
    lines = [f"# Model card: {name} {version}", "", summary, ""]
    lines += ["## Data", ""] + _table(data)
    lines += ["## Hyper-parameters", ""] + _table(hyperparams)
    for title, md in (tables or {}).items():
        lines += [f"## {title}", "", md.rstrip(), ""]
    lines += ["## Metrics (held-out test)", ""] + _table(_flat(metrics))
    lines += ["## Baselines (same held-out test)", ""] + _table(_flat(baselines))
    lines += ["## CPU latency (onnxruntime, 1 thread)", ""] + _table(_flat(latency))
    lines += ["## Shipped variant", "", f"**{variant.get('variant', 'fp32')}** — {variant.get('reason', '')}", ""]
    if automl:
        lines += ["## AutoML (Optuna, quality × CPU latency)", ""]
        lines += [f"{automl.get('trials', 0)} trials, sampler seed {automl.get('seed')}; best: "
                  f"{_fmt(automl.get('best_params'))}", ""]
        pareto = automl.get("pareto") or []
        if pareto:
            lines += ["| trial | quality | latency ms | params |", "|---|---|---|---|"]
            for p in pareto:
                lines.append(f"| {p.get('number')} | {_fmt(p.get('quality'))} | {_fmt(p.get('latency_ms'))} | "
                             f"{_fmt(p.get('params'))} |")
            lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (dir / "card.md").write_text("\n".join(lines))
    return dir / "card.md"


def _flat(d: dict, prefix: str = "", depth: int = 0) -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 2:
            out.update(_flat(v, key + ".", depth + 1))
        else:
            out[key] = v
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def manifest_entry(
    *,
    models_dir,
    name: str,
    version: str,
    file,
    variant: str,
    output_descriptions: dict[str, str] | None = None,
    classes: list[str] | None = None,
    feature_order: list[str] | None = None,
    normalisation: dict | None = None,
    extra: dict | None = None,
    golden=None,
    card=None,
    metrics: dict | None = None,
    data: dict | None = None,
    opset: int = 17,
) -> dict:
    """One manifest entry; inputs/outputs (names, shapes with -1 for dynamic dims, dtypes), sha256 and bytes are
    read from the ONNX file. Paths are stored relative to ``models_dir``. Raises ArtifactError over 10 MB."""
    from .onnx_tools import io_spec

    models_dir = Path(models_dir).resolve()
    file = Path(file).resolve()
    size = file.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ArtifactError(f"{file}: {size} bytes > the 10 MB limit for a shipped model")
    spec = io_spec(file)
    desc = output_descriptions or {}
    outputs = [dict(o, description=desc.get(o["name"], "")) for o in spec["outputs"]]

    def rel(p):
        return None if p is None else Path(p).resolve().relative_to(models_dir).as_posix()

    return to_jsonable({
        "name": name,
        "version": version,
        "file": rel(file),
        "sha256": sha256(file),
        "bytes": size,
        "variant": variant,
        "opset": opset,
        "inputs": spec["inputs"],
        "outputs": outputs,
        "classes": classes,
        "feature_order": feature_order,
        "normalisation": normalisation,
        "extra": extra or {},
        "golden": rel(golden),
        "card": rel(card),
        "metrics": metrics or {},
        "data": data or {},
        "trained_at": _now(),
    })


def read_manifest(models_dir) -> dict:
    p = Path(models_dir) / "manifest.json"
    if not p.exists():
        return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "models": []}
    doc = json.loads(p.read_text())
    if doc.get("format") != MANIFEST_FORMAT or doc.get("format_version") != MANIFEST_VERSION:
        raise ArtifactError(f"{p}: format {doc.get('format')} v{doc.get('format_version')}, "
                            f"want {MANIFEST_FORMAT} v{MANIFEST_VERSION}")
    return doc


def find_entry(models_dir, name: str) -> dict | None:
    """The manifest entry called ``name`` (None when absent or when its file is missing)."""
    for e in read_manifest(models_dir).get("models", []):
        if e.get("name") == name and (Path(models_dir) / e["file"]).exists():
            return e
    return None


def update_manifest(models_dir, entry: dict) -> Path:
    """Adds ``entry`` to models/manifest.json, replacing the entry with the same name; atomic write."""
    doc = read_manifest(models_dir)
    models = [e for e in doc.get("models", []) if e.get("name") != entry["name"]] + [entry]

    def order(e):
        n = e.get("name", "")
        return (MODEL_ORDER.index(n) if n in MODEL_ORDER else len(MODEL_ORDER), n)

    doc = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "models": sorted(models, key=order)}
    p = Path(models_dir) / "manifest.json"
    write_json(p, doc)
    return p


def verify_entry(models_dir, entry: dict) -> dict:
    """Re-checks an entry against the files: sha256, bytes, golden outputs from the shipped file within tolerance
    (golden is only run when the sha256 matches). Returns {"sha256_ok", "bytes_ok", "golden": compare-result or None}."""
    from .onnx_tools import compare, run

    models_dir = Path(models_dir)
    f = models_dir / entry["file"]
    res = {"sha256_ok": sha256(f) == entry["sha256"], "bytes_ok": f.stat().st_size == entry["bytes"], "golden": None}
    if entry.get("golden") and res["sha256_ok"]:
        gpath = models_dir / entry["golden"]
        g = json.loads(gpath.read_text())
        base = gpath.parent
        ins = {i["name"]: np.load(base / i["file"]) for i in g["inputs"]}
        outs = {o["name"]: np.load(base / o["file"]) for o in g["outputs"]}
        cmp = compare(outs, run(f, ins))
        cmp["ok"] = cmp["max_abs"] <= g["tolerance"]["abs"]
        res["golden"] = cmp
    return res
