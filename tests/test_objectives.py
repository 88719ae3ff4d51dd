"""``python -m urlb.tools.objectives``: each method's own objective from a real (tiny) pre-training run,
METRA's rollout displacement along the skill and APT's coverage in its learned representation."""

from __future__ import annotations

import math
import re

import pytest
from omegaconf import OmegaConf
from test_pipeline import explain, run, tiny

from urlb.runs.snapshots import snapshot_path
from urlb.tools.objectives import find_pretrain_runs, metra_skill_displacement, report, written_snapshots

pytestmark = pytest.mark.pipeline
SNAPSHOTS = (300, 600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("objectives")
    for agent in ("metra", "apt"):
        proc = run("pretrain.py", work, *tiny(agent=agent, domain="jaco", snapshots=f"[{SNAPSHOTS[0]},{SNAPSHOTS[1]}]"))
        assert proc.returncode == 0, explain(proc)
    found = {path.parent.name: path for path in find_pretrain_runs([work / "runs"])}
    assert set(found) == {"metra", "apt"}, found
    return found


def floats(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", line)]


def test_metra_displacement_is_measured_per_snapshot(runs):
    lines = report(runs["metra"], coverage_steps=0, metra_skills=8)
    assert any(line.startswith("  metra_along_z") for line in lines), lines
    header = next(i for i, line in enumerate(lines) if "phi displacement over" in line)
    rows = lines[header + 1 : header + 1 + len(SNAPSHOTS)]
    for frames, row in zip(SNAPSHOTS, rows):
        assert row.strip().startswith(f"{frames} frames:"), row
        aligned, se, mismatched, share, norm = floats(row)
        assert se >= 0 and 0.0 <= share <= 1.0 and norm > 0


def test_metra_displacement_fields(runs):
    result = metra_skill_displacement(runs["metra"], SNAPSHOTS[1], num_skills=4)
    assert set(result) == {"aligned", "aligned_se", "mismatched", "aligned_positive", "norm"}
    assert all(math.isfinite(v) for v in result.values())
    assert result["aligned_positive"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # share of 4 skills


def test_apt_coverage_is_reported_in_raw_states_and_in_its_representation(runs):
    lines = report(runs["apt"], coverage_steps=100)
    raw = next(line for line in lines if "state coverage" in line)
    learned = next(line for line in lines if "learned representation" in line)
    for line in (raw, learned):
        pretrained, random = floats(line)[-2:]
        assert pretrained > 0 and random > 0


def test_a_stopped_run_is_reported_with_the_snapshots_it_wrote(runs):
    """A run stopped before its last snapshot: the report says which are missing and measures
    the ones that exist, instead of failing on a missing file."""
    cfg = OmegaConf.load(runs["metra"] / "config.yaml")
    last = snapshot_path(cfg.snapshot_dir, "states", cfg.domain, "metra", cfg.seed, SNAPSHOTS[1])
    hidden = last.with_name(last.name + ".away")
    last.rename(hidden)
    try:
        assert written_snapshots(cfg) == [SNAPSHOTS[0]]
        lines = report(runs["metra"], coverage_steps=50, metra_skills=2)
    finally:
        hidden.rename(last)
    assert f"  snapshots not written (the run stopped before them): [{SNAPSHOTS[1]}]" in lines
    assert sum(" frames: " in line for line in lines) == 1
    assert any("state coverage" in line for line in lines)  # from the snapshot that exists
