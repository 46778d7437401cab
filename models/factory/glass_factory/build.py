"""``python -m glass_factory build``: generate the splits, then build forecaster, vision, gnn, ensemble, policy.

Each builder is ``glass_factory.models.<name>.build(ctx) -> dict`` (the manifest entry it wrote). A builder fails
the build by raising, or by returning an entry with ``"_acceptance": {"ok": False, "checks": {...}}`` (its
acceptance checks: parity, beating the baselines, size). A builder whose module does not exist yet is "missing".
All builders run even when one fails (the ensemble trains on whatever component models exist); the exit code is
non-zero when any builder failed, was missing, or missed its acceptance checks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import traceback
from pathlib import Path

from .common.artifacts import update_manifest, write_json
from .common.context import SPLITS, BuildContext
from .common.dataset import REPO_ROOT

ORDER = ("forecaster", "vision", "gnn", "ensemble", "policy")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m glass_factory build",
                                description="train, evaluate, export and register glassd's models")
    p.add_argument("--quick", action="store_true", help="tiny datasets and budgets (seconds per model)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ORDER)}")
    p.add_argument("--seed", type=int, default=0, help="master seed (split seeds derive from it)")
    p.add_argument("--trials", type=int, default=None, help="Optuna trials per model (default 0 quick, 6 full)")
    p.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--work-dir", type=Path, default=REPO_ROOT / "models" / "factory" / ".work")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads per job")
    p.add_argument("--version", default=None,
                   help="version written into the cards and the manifest (default 1.0.0, 0.0.0-quick with --quick)")
    p.add_argument("--no-pregenerate", action="store_true", help="generate datasets lazily, when a model needs one")
    a = p.parse_args(argv)
    only = ORDER if a.only is None else tuple(x.strip() for x in a.only.split(",") if x.strip())
    bad = [x for x in only if x not in ORDER]
    if bad:
        p.error(f"--only: unknown model(s) {bad}; valid: {list(ORDER)}")
    a.only = only
    if a.trials is None:
        a.trials = 0 if a.quick else 6
    return a


def headline(entry: dict) -> str:
    m = entry.get("metrics") or {}
    parts = []
    for k, v in list(m.items())[:4]:
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def build(argv=None) -> int:
    a = parse_args(argv)
    t0 = time.perf_counter()
    ctx = BuildContext(quick=a.quick, seed=a.seed, repo_root=REPO_ROOT, models_dir=a.models_dir,
                       work_dir=a.work_dir, trials=a.trials, threads=a.threads,
                       version_override=a.version)
    ctx.log(f"build {'--quick ' if a.quick else ''}seed {a.seed}, trials {a.trials}, models → {a.models_dir}, "
            f"work → {a.work_dir}; order {list(a.only)}")
    rows = []
    data_wall = None
    if not a.no_pregenerate:
        td = time.perf_counter()
        try:
            for split in SPLITS:
                ctx.datasets(split)
        except Exception as err:  # noqa: BLE001
            ctx.log(f"dataset generation failed: {err}")
            rows.append({"name": "datasets", "status": "FAILED", "wall_s": time.perf_counter() - td,
                         "detail": str(err)[:300]})
        data_wall = time.perf_counter() - td
    for name in a.only:
        tm = time.perf_counter()
        row = {"name": name, "status": "ok", "version": ctx.version, "variant": "", "detail": ""}
        try:
            try:
                mod = importlib.import_module(f"glass_factory.models.{name}")
            except ModuleNotFoundError as err:
                if err.name == f"glass_factory.models.{name}":
                    row.update(status="MISSING", detail="builder module not written")
                    raise _Skip() from err
                raise
            entry = mod.build(ctx)
            acc = entry.get("_acceptance") or {"ok": True}
            # The verdict goes into the manifest: the daemon refuses a rejected model unless an engineer allows it.
            stored = {k: v for k, v in entry.items() if not k.startswith("_")}
            stored["acceptance"] = json.loads(json.dumps(
                {"ok": bool(acc.get("ok", True)), "checks": acc.get("checks") or {}},
                default=lambda o: o.item() if hasattr(o, "item") else str(o)))
            update_manifest(ctx.models_dir, stored)
            row.update(variant=entry.get("variant", ""), detail=headline(entry), checks=acc.get("checks"))
            if not acc.get("ok", True):
                row["status"] = "REJECTED"
        except _Skip:
            pass
        except Exception as err:  # noqa: BLE001 - report and go on with the next model
            ctx.log(f"{name} FAILED: {err!r}\n{traceback.format_exc()}")
            row.update(status="FAILED", detail=repr(err)[:300])
        row["wall_s"] = time.perf_counter() - tm
        ctx.log(f"{name}: {row['status']} in {row['wall_s']:.0f} s")
        rows.append(row)
    total = time.perf_counter() - t0
    print(f"\n{'model':<11} {'status':<9} {'variant':<13} {'wall s':>7}  headline")
    for r in rows:
        print(f"{r['name']:<11} {r['status']:<9} {r.get('variant', ''):<13} {r['wall_s']:>7.0f}  {r['detail']}")
    print(f"datasets: {data_wall:.0f} s; total wall {total:.0f} s" if data_wall is not None else
          f"total wall {total:.0f} s")
    write_json(a.work_dir / f"build-summary{'-quick' if a.quick else ''}.json",
               {"args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()},
                "datasets_wall_s": data_wall, "total_wall_s": total, "models": rows})
    return 0 if all(r["status"] == "ok" for r in rows) else 1


class _Skip(Exception):
    pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(build())
