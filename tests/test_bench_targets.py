"""bench/targets_check.py: the group-commit row reads routeway's own view of the saturation run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import targets_check

ROW = "generation records durable by group commit (writes per commit at saturation ≥ 2)"


def saturation(writes_per_commit: float | None) -> dict:
    inside = {"commits": 100, "writes": int(100 * (writes_per_commit or 0)), "writes_per_commit": writes_per_commit,
              "commit_mean_ms": 1.5}
    return {("saturation", "routeway"): {"throughput": 4000.0, "cpu_s": {"proxy": 1.0}, "elapsed": 1.0,
                                         "inside": inside}}


def row(ix: dict) -> dict:
    return next(item for item in targets_check.check(ix) if item["target"] == ROW)


def test_grouped_commits_meet_the_target_and_lone_ones_miss_it() -> None:
    assert row(saturation(21.0))["met"] is True
    assert "100 commits carried 2,100 writes" in row(saturation(21.0))["note"]
    assert row(saturation(1.0))["met"] is False  # one request per commit at saturation: no grouping


def test_without_routeways_view_the_row_is_not_measured() -> None:
    assert row({})["verdict"] == "not measured"
    assert row(saturation(None))["verdict"] == "not measured"
