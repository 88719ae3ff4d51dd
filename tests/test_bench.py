"""``python -m urlb.tools.bench`` runs and reports every field. Nothing here depends on how fast this
machine is: only presence, types, signs and byte counts are checked."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
AGENT_FIELDS = {
    "agent",
    "size",
    "hidden_dim",
    "batch_size",
    "precision",
    "compile",
    "device",
    "frames_per_s",
    "measured_s",
    "steps",
    "updates",
    "ms_per_step",
    "ms_per_update",
    "update_gflop",
    "update_gflops_per_s",
    "peak_rss_mb",
}
STEP_PARTS = {"env", "act", "replay_add"}
UPDATE_PARTS = {"sample", "update", "critic", "actor", "target"}
PLUGIN_PARTS = {"plugin"}


TINY = ["--sizes", "tiny", "--seconds", "0.2", "--matmul-size", "128", "--fill-steps", "300", "--replay-seconds", "0.2"]


def bench_process(*args: str) -> subprocess.CompletedProcess:
    # No timeout: a slow machine must make this slower, not fail it.
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "urlb.tools.bench", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One in-process run at tiny sizes (seconds on any CPU): fp32 only, so no bf16 product is timed."""
    from urlb.tools.bench import run

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            returned = run(["--agents", "ddpg,cic", *TINY, "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert returned == data
    return stdout.getvalue(), data


def test_every_configuration_has_every_field(result):
    _, data = result
    rows = data["agents"]
    assert [(r["agent"], r["compile"]) for r in rows] == [("ddpg", None), ("cic", None)]
    for row in rows:
        assert AGENT_FIELDS <= set(row), AGENT_FIELDS - set(row)
        assert (row["hidden_dim"], row["batch_size"], row["precision"]) == (32, 32, "fp32")
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
    assert machine["matmul_gflops_fp32"] > 0 and machine["matmul_size"] == 128
    # Only the precision asked for is timed (an emulated bf16 product can take minutes).
    assert "matmul_gflops_bf16" not in machine
    assert isinstance(machine["bf16_native"], bool) and "CPU flags" in machine["bf16_found"]


def test_replay_figures_meet_the_memory_goal(result):
    replay = result[1]["replay"]
    assert replay["sample_transitions_per_s"] > 0
    assert replay["states_bytes_per_transition"] <= 1.2 * replay["states_raw_transition_bytes"]
    # Pixels store one frame per step, not the whole stack.
    assert replay["pixels_bytes_per_transition"] < replay["pixels_raw_transition_bytes"] / 2


def test_table_has_a_row_per_configuration(result):
    stdout, _ = result
    lines = stdout.splitlines()
    assert any(line.startswith("matmul rate here: fp32") and "bf16" not in line for line in lines)
    assert any(line.startswith("bf16 here: ") for line in lines)
    rows = [line for line in lines if line.startswith(("ddpg |", "cic |"))]
    assert len(rows) == 2
    assert any(line.startswith("replay:") for line in lines)


def test_unknown_agent_is_a_clear_error():
    proc = bench_process("--agents", "ddpg,foo")
    assert proc.returncode == 2
    assert "unknown agent foo" in proc.stderr and "cic" in proc.stderr


def test_command_exits_0_on_success_and_labels_compiled_rows(tmp_path):
    # The console script passes main()'s return value to sys.exit: it must be 0, not the results.
    proc = bench_process("--agents", "ddpg", "--compile", "aot_eager", *TINY, "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ddpg | tiny | fp32+aot_eager" in proc.stdout and (tmp_path / "b.json").is_file()
    rows = json.loads((tmp_path / "b.json").read_text())["agents"]
    assert [(r["agent"], r["compile"]) for r in rows] == [("ddpg", "aot_eager")]


def test_pixels_rows_split_the_update_between_encoder_shift_and_the_rest(tmp_path):
    """``--obs-type pixels``: rendered frames, action repeat 2 (two frames per step), the batch
    override, and the profiler's shares of the update: convolutions exist only in the encoder."""
    proc = bench_process(
        "--agents", "ddpg", "--obs-type", "pixels", "--batch-size", "8", *TINY[:-4],
        "--fill-steps", "40", "--replay-seconds", "0.1", "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads((tmp_path / "b.json").read_text())["agents"]
    assert (row["obs_type"], row["batch_size"]) == ("pixels", 8)
    assert row["frames_per_s"] * row["measured_s"] == pytest.approx(2 * row["steps"])
    shares = row["update_op_shares"]
    assert 0 < shares["encoder"] < 1 and 0 < shares["shift"] < 1 and shares["encoder"] + shares["shift"] < 1
    assert "ddpg | tiny/pixels/b8 | fp32" in proc.stdout and "encoder convolutions" in proc.stdout


@pytest.mark.slow  # the benchmark tool, several processes; its other rows are tested by default
def test_seeds_row_compares_one_process_with_separate_processes(tmp_path):
    """``--seeds 2``: the two-seed process's aggregate frames/s against one single-seed process and
    two separate processes, with ratios that follow from the figures."""
    proc = bench_process("--agents", "rnd", "--seeds", "2", *TINY, "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "seeds side by side" in proc.stdout and "rnd | tiny | 2 |" in proc.stdout, proc.stdout
    (row,) = json.loads((tmp_path / "b.json").read_text())["seeds"]
    assert row["seeds"] == 2 and row["single_frames_per_s"] > 0 and row["one_process_frames_per_s"] > 0
    assert row["vs_single"] == pytest.approx(row["one_process_frames_per_s"] / row["single_frames_per_s"])
    best = row["separate_frames_per_s"][row["best_separate"]]
    assert best == max(row["separate_frames_per_s"].values()) > 0
    assert row["vs_best_separate"] == pytest.approx(row["one_process_frames_per_s"] / best)
    # each seed is its own agent: 2 seeds launch the operations of one seed twice
    assert row["ops_per_update"]["one_process"] == pytest.approx(2 * row["ops_per_update"]["single"], rel=0.05)
