"""``python -m urlb.tools.bench_render``: every figure present and positive, a missing backend
reported instead of failing, bad arguments refused. Nothing depends on this machine's speed."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede dm_control

import pytest

from urlb.tools import bench_render


def test_measure_reports_render_and_pixel_env_rates():
    row = bench_render.measure("walker_walk", seconds=0.2)
    assert row["task"] == "walker_walk"
    for key in ("ms_physics_step", "ms_render", "renders_per_s", "cpu_ms_render", "pixel_env_steps_per_s"):
        assert row[key] > 0, key
    # frames count the action repeat (2), as URLB's frame counter does
    assert row["pixel_env_frames_per_s"] == pytest.approx(2 * row["pixel_env_steps_per_s"])
    line = bench_render.format_rows("egl", [row])[0]
    assert line.startswith("egl | walker_walk | ") and line.count("|") == 8


def test_backend_that_cannot_start_is_reported_not_raised():
    rows = bench_render.run_backend("no_such_gl", ["walker_walk"], seconds=0.1)
    assert isinstance(rows, str) and rows
    assert bench_render.format_rows("no_such_gl", rows) == [f"no_such_gl | unavailable: {rows}"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "walker_walk,walker_jog"], "unknown task walker_jog"),
        (["--backends", "egl,vulkan"], "unknown backend vulkan"),
        (["--seconds", "0"], "--seconds must be > 0"),
    ],
)
def test_bad_arguments_exit_2_with_the_valid_choices(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_render.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
