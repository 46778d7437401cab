"""``python -m glass_factory build``: arguments, the orchestration order, the summary and the exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from glass_factory import build as b
from glass_factory.__main__ import main
from test_common import FAKE_GENERATOR


def test_arguments_are_checked():
    a = b.parse_args(["--quick", "--only", "forecaster,ensemble", "--seed", "3"])
    assert a.only == ("forecaster", "ensemble") and a.trials == 0 and a.seed == 3
    assert b.parse_args([]).trials == 6
    with pytest.raises(SystemExit):
        b.parse_args(["--only", "forecaster,unicorn"])
    assert main(["frobnicate"]) == 2


def test_quick_build_runs_models_in_order_and_reports(tmp_path, monkeypatch, capsys):
    calls = tmp_path / "calls.txt"
    script = tmp_path / "gen.py"
    script.write_text(FAKE_GENERATOR.format(tests=str(Path(__file__).parent), calls=str(calls)))
    monkeypatch.setenv("GLASSD_TWIN_COMMAND", f"{sys.executable} {script}")
    monkeypatch.setattr(b, "ORDER", (*b.ORDER, "not_written_yet"))
    models, work = tmp_path / "models", tmp_path / "work"
    rc = main(["build", "--quick", "--only", "forecaster,ensemble,not_written_yet", "--models-dir", str(models),
               "--work-dir", str(work)])
    assert rc == 1  # the missing builder fails the build
    summary = json.loads((work / "build-summary-quick.json").read_text())
    status = {r["name"]: r["status"] for r in summary["models"]}
    assert status["not_written_yet"] == "MISSING"
    assert status["forecaster"] in ("ok", "REJECTED") and status["ensemble"] in ("ok", "REJECTED")
    names = [e["name"] for e in json.loads((models / "manifest.json").read_text())["models"]]
    assert names == ["forecaster", "ensemble"]
    # three splits, three different seeds
    seeds = {line.split("--seed ")[1].split()[0] for line in calls.read_text().splitlines()}
    assert len(seeds) == 3
    out = capsys.readouterr().out
    assert "forecaster" in out and "total wall" in out
