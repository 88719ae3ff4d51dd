"""``python -m urlb.bench`` runs and reports every field. Nothing here depends on how fast this
machine is: only presence, types, signs and byte counts are checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AGENT_FIELDS = {"agent", "size", "hidden_dim", "batch_size", "precision", "compile", "device", "frames_per_s",
                "measured_s", "steps", "updates", "ms_per_step", "ms_per_update", "update_gflop",
                "update_gflops_per_s", "peak_rss_mb"}
STEP_PARTS = {"env", "act", "replay_add"}
UPDATE_PARTS = {"sample", "update", "critic", "actor", "target"}
PLUGIN_PARTS = {"plugin"}


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "urlb.tools.bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = bench(out.parent, "--agents", "ddpg,cic", "--sizes", "quick", "--seconds", "0.3",
                 "--compile", "none,aot_eager", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_every_configuration_has_every_field(result):
    _, data = result
    rows = data["agents"]
    assert [(r["agent"], r["compile"]) for r in rows] == [
        ("ddpg", None), ("cic", None), ("ddpg", "aot_eager"), ("cic", "aot_eager")]
    for row in rows:
        assert AGENT_FIELDS <= set(row), AGENT_FIELDS - set(row)
        assert (row["hidden_dim"], row["batch_size"], row["precision"]) == (256, 256, "fp32")
        assert set(row["ms_per_step"]) == STEP_PARTS
        expected_parts = UPDATE_PARTS | (PLUGIN_PARTS if row["agent"] != "ddpg" else set())
        assert expected_parts <= set(row["ms_per_update"]), expected_parts - set(row["ms_per_update"])
        assert row["steps"] > 0 and row["updates"] > 0
        for key in ("frames_per_s", "update_gflop", "update_gflops_per_s", "peak_rss_mb"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
        assert all(v >= 0 for v in (*row["ms_per_step"].values(), *row["ms_per_update"].values()))
    # CIC's update does strictly more matrix work than the bare backbone at the same sizes.
    assert rows[1]["update_gflop"] > rows[0]["update_gflop"]
    machine = data["machine"]
    assert machine["matmul_gflops_fp32"] > 0 and machine["matmul_gflops_bf16"] > 0


def test_replay_figures_meet_the_memory_goal(result):
    replay = result[1]["replay"]
    assert replay["sample_transitions_per_s"] > 0
    assert replay["states_bytes_per_transition"] <= 1.2 * replay["states_raw_transition_bytes"]
    # Pixels store one frame per step, not the whole stack.
    assert replay["pixels_bytes_per_transition"] < replay["pixels_raw_transition_bytes"] / 2


def test_table_has_a_row_per_configuration(result):
    proc, _ = result
    lines = proc.stdout.splitlines()
    assert any(line.startswith("matmul rate here: fp32") for line in lines)
    rows = [line for line in lines if line.startswith(("ddpg |", "cic |"))]
    assert len(rows) == 4
    assert sum("fp32+aot_eager" in line for line in rows) == 2
    assert any(line.startswith("replay:") for line in lines)


def test_unknown_agent_is_a_clear_error(tmp_path):
    proc = bench(tmp_path, "--agents", "ddpg,foo")
    assert proc.returncode == 2
    assert "unknown agent foo" in proc.stderr and "cic" in proc.stderr
