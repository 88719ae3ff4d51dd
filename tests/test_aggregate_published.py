"""The published table behind ``urlb-aggregate --published``: every row cites its source,
and the BeCL rows (means only) flow through the per-task and aggregate outputs.

Expected values are computed here from the two shipped CSV files with the csv module and
plain arithmetic, not with the aggregation code under test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import statistics
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from test_aggregate import REPS, make_run

from urlb.tasks import ALL_TASKS, DOMAINS, TASKS
from urlb.tools.aggregate import cli, stats

MOSS = "MOSS README results table"
BECL = "BeCL paper as quoted in github.com/Rooshy-yang/BeCL/issues/4 (means only)"
MOSS_METHODS = {"ICM", "Disagreement", "RND", "APT", "ProtoRL", "SMM", "DIAYN", "APS", "CIC"}


def _csv_rows(name: str) -> list[dict[str, str]]:
    with resources.as_file(resources.files("urlb.data").joinpath(name)) as path:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))


def _becl_normalised() -> dict[str, float]:
    expert = {r["task"]: float(r["expert_return"]) for r in _csv_rows("expert_scores.csv")}
    return {
        r["task"]: float(r["mean_return"]) / expert[r["task"]]
        for r in _csv_rows("published_states_2M.csv")
        if r["method"] == "BeCL"
    }


def test_every_published_row_names_its_source() -> None:
    rows = _csv_rows("published_states_2M.csv")
    assert rows and all(r["source"].strip() for r in rows)
    assert all(r["task"] in ALL_TASKS for r in rows)
    sources: dict[str, set[str]] = {}
    for r in rows:
        sources.setdefault(r["method"], set()).add(r["source"])
    assert all(len(s) == 1 for s in sources.values()), sources  # one source per method
    assert {m for m, s in sources.items() if s == {MOSS}} == MOSS_METHODS
    assert sources["BeCL"] == {BECL}
    pairs = [(r["method"], r["task"]) for r in rows]
    assert len(pairs) == len(set(pairs))


def test_becl_rows_are_the_quoted_means_on_all_twelve_tasks() -> None:
    becl = [r for r in _csv_rows("published_states_2M.csv") if r["method"] == "BeCL"]
    assert sorted(r["task"] for r in becl) == sorted(ALL_TASKS)
    assert all(r["stderr"] == "" for r in becl)  # the source gives means only
    quoted = {r["task"]: int(r["mean_return"]) for r in becl}
    assert (quoted["walker_stand"], quoted["quadruped_jump"], quoted["jaco_reach_top_right"]) == (952, 727, 126)

    published = stats.load_published()
    loaded = published[published["method"] == "BeCL"].set_index("task")
    assert loaded["norm_se"].isna().all() and loaded["stderr"].isna().all()
    for task, value in _becl_normalised().items():
        assert loaded.loc[task, "norm_mean"] == pytest.approx(value, rel=1e-12)


def test_becl_published_aggregates_match_plain_arithmetic() -> None:
    normalised = _becl_normalised()
    agg = stats.published_aggregates(stats.load_published())
    becl = agg[agg["agent"] == "BeCL"].set_index("scope")
    assert becl.loc["overall", "n_tasks"] == 12 and becl.loc["overall", "missing_tasks"] == ""
    assert becl.loc["overall", "mean"] == pytest.approx(statistics.fmean(normalised.values()), rel=1e-12)
    assert becl.loc["overall", "median"] == pytest.approx(statistics.median(normalised.values()), rel=1e-12)
    for domain in DOMAINS:
        values = [normalised[t] for t in TASKS[domain]]
        assert becl.loc[domain, "mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert set(becl["reference"]) == {BECL}


def test_a_becl_run_sits_beside_its_published_row(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (1, 2):
        make_run(runs, f"becl/{seed}", agent="becl", task="walker_stand", seed=seed, final=500.0 + seed)
    out = tmp_path / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main([str(runs), "--out", str(out), "--published", *REPS]) == 0

    wide = pd.read_csv(out / "per_task.csv").set_index("task")
    expected = _becl_normalised()["walker_stand"]
    assert wide.loc["walker_stand", "BeCL (published):norm_mean"] == pytest.approx(expected, rel=1e-12)
    assert pd.isna(wide.loc["walker_stand", "BeCL (published):norm_se"])
    assert wide.loc["walker_stand", "BeCL:norm_mean"] == pytest.approx(501.5 / 984, rel=1e-12)
    table = (out / "per_task.md").read_text()
    assert f"| {expected:.3f} |" in table.split("## Normalised")[1]  # the mean alone, no "±"
    aggregate = (out / "aggregate.md").read_text()
    assert f"{BECL}: BeCL" in aggregate and f"{MOSS}: ICM" in aggregate
    assert "BeCL (published) | overall | 12/12" in aggregate
    assert (out / "curves_per_task.png").stat().st_size > 0  # the mean-only point is drawn
    assert "BeCL (published)" in printed.getvalue()


def test_the_documented_becl_table_is_the_shipped_one() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "newer-methods.md").read_text()
    section = page[page.index("## Published numbers") :]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[1].isdigit():
            documented.update({cells[i]: int(cells[i + 1]) for i in (0, 2, 4)})
    shipped = {r["task"]: int(r["mean_return"]) for r in _csv_rows("published_states_2M.csv") if r["method"] == "BeCL"}
    assert documented == shipped
