"""Small multi-objective Optuna studies: maximise a quality score, minimise measured ONNX CPU latency."""

from __future__ import annotations

import math
from typing import Callable

import optuna


def run_study(
    name: str,
    objective: Callable[[optuna.Trial], tuple[float, float]],
    n_trials: int,
    seed: int,
    *,
    log=None,
    timeout_s: float | None = None,
) -> dict:
    """Runs ``n_trials`` of ``objective(trial) -> (quality, latency_ms)`` with a seeded TPE sampler (deterministic
    proposals for a given seed). A trial that raises is recorded as failed and the study goes on.

    Returns {"name", "seed", "trials", "failed", "best_params", "best": {quality, latency_ms, number},
    "pareto": [{number, quality, latency_ms, params}], "all": [...]}. "best" is the Pareto trial with the highest
    quality (ties: lower latency); best_params is {} when no trial completed.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(5, n_trials // 2)))
    study = optuna.create_study(study_name=name, directions=["maximize", "minimize"], sampler=sampler)

    def wrapped(trial):
        q, lat = objective(trial)
        q, lat = float(q), float(lat)
        if not (math.isfinite(q) and math.isfinite(lat)):
            raise ValueError(f"objective returned non-finite ({q}, {lat})")
        if log:
            log(f"automl {name} trial {trial.number}: quality {q:.4f}, latency {lat:.3f} ms, {trial.params}")
        return q, lat

    if n_trials > 0:
        study.optimize(wrapped, n_trials=n_trials, timeout=timeout_s, catch=(Exception,))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]

    def row(t):
        return {"number": t.number, "quality": t.values[0], "latency_ms": t.values[1], "params": dict(t.params)}

    pareto = sorted((row(t) for t in study.best_trials), key=lambda r: (-r["quality"], r["latency_ms"]))
    best = pareto[0] if pareto else None
    return {
        "name": name,
        "seed": seed,
        "trials": len(study.trials),
        "failed": len(failed),
        "best_params": dict(best["params"]) if best else {},
        "best": best,
        "pareto": pareto,
        "all": [row(t) for t in done],
    }
