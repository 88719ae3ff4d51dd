"""The skill gallery's start state, the methods' own views and the comparison tables, on
untrained agents built in-process (no pre-training run needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from urlb.agents import build_agent
from urlb.tools.skills import adapters, compare, figures
from urlb.tools.skills.owned import MANIFEST, OwnedFiles
from urlb.tools.skills.rollouts import make_start, roll_out_snapshot


def _agent(name: str, env, **agent_keys):
    torch.manual_seed(0)
    cfg = OmegaConf.create({"agent": {"name": name, "hidden_dim": 32, **agent_keys}, "obs_type": "states"})
    return build_agent(cfg, env.observation_spec().shape, env.action_spec().shape[0], "cpu", reward_free=False)


def _ends(snap) -> np.ndarray:
    return np.stack([r.positions[-1] for r in snap.rollouts])


def test_start_state_is_the_first_reset_of_a_fresh_env():
    from urlb import envs
    from urlb.tasks import PRIMAL_TASKS

    _, start = make_start("walker", 3)
    fresh = envs.make(PRIMAL_TASKS["walker"], "states", seed=3)
    fresh.reset()
    assert np.array_equal(start.physics, fresh.physics.get_state())
    _, other = make_start("walker", 4)
    assert not np.array_equal(start.physics, other.physics), "another seed, another start"
    assert "seed 3" in start.describe() and "torso x" in start.describe()


def test_same_skill_same_end_point_in_two_calls_and_after_other_rollouts():
    """Two calls (two environments) and one environment used by another method in between:
    the same agent and skills end at the same points, bit for bit."""
    env_a, start_a = make_start("walker", 0)
    env_b, start_b = make_start("walker", 0)
    cic = _agent("cic", env_a)
    first = _ends(roll_out_snapshot(cic, env_a, start_a, 100, 3, steps=60))
    roll_out_snapshot(_agent("rnd", env_a), env_a, start_a, 100, 4, steps=30)  # resets env_a 4 more times
    again = _ends(roll_out_snapshot(cic, env_a, start_a, 100, 3, steps=60))
    other_call = _ends(roll_out_snapshot(cic, env_b, start_b, 100, 3, steps=60))
    assert np.array_equal(first, again) and np.array_equal(first, other_call)
    assert len({tuple(row) for row in first}) == 3, "three skills, three end points"


def test_exploration_rollouts_reproducible_with_their_noise_seeds():
    env, start = make_start("walker", 1)
    rnd = _agent("rnd", env)
    torch.manual_seed(123)  # the caller's RNG state must not matter
    one = _ends(roll_out_snapshot(rnd, env, start, 100, 2, steps=40))
    torch.manual_seed(456)
    two = _ends(roll_out_snapshot(rnd, env, start, 100, 2, steps=40))
    assert np.array_equal(one, two) and not np.array_equal(one[0], one[1])


def test_confusion_counts_argmax_per_state():
    # rollout 0: next states prefer skills 0, 0, 1; rollout 1: 1, 1, 1 (the first row, s_0, is not counted)
    logits = [
        torch.tensor([[9.0, 0.0], [2.0, 1.0], [3.0, 0.0], [0.0, 1.0]]),
        torch.tensor([[9.0, 0.0], [0.0, 1.0], [0.0, 2.0], [-1.0, 0.0]]),
    ]
    assert np.allclose(adapters._confusion(logits), [[2 / 3, 1 / 3], [0.0, 1.0]])


@pytest.mark.parametrize(
    ("name", "kind"), [("diayn", "confusion"), ("aps", "confusion"), ("metra", "phi"), ("cic", "embedding")]
)
def test_each_method_draws_its_own_view(name, kind, tmp_path):
    env, start = make_start("walker", 0)
    agent = _agent(name, env)
    snap = roll_out_snapshot(agent, env, start, 100, 4, steps=15)
    view = snap.view
    assert view.kind == kind and len(view.scores) == 4
    if kind == "confusion":
        assert view.confusion.shape == (4, 4) and np.allclose(view.confusion.sum(1), 1.0)
        assert np.allclose(np.diag(view.confusion), view.scores)
    if kind == "phi":  # paths from the origin; the score is the last point along z
        assert all(np.array_equal(p[0], np.zeros(2)) for p in view.paths)
        assert np.allclose(view.arrows, [r.skill for r in snap.rollouts])
        assert np.allclose(view.scores, [p[-1] @ z for p, z in zip(view.paths, view.arrows)])
    if kind == "embedding":  # unit-norm transition keys and skill embeddings
        assert view.arrows.shape == (4, agent.plugin.skill_dim)
        assert np.allclose(np.linalg.norm(view.paths[0], axis=1), 1.0, atol=1e-5)
    figures.save(figures.method_figure("walker", [snap, snap], name), tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0


def test_exploration_method_gets_a_visitation_map(tmp_path):
    env, start = make_start("quadruped", 0)
    snap = roll_out_snapshot(_agent("rnd", env), env, start, 100, 2, steps=10)
    assert snap.view is None
    # x-y panels on shared axes with equal scales (two snapshots; a comparison grid of two rows)
    figures.save(figures.trajectory_figure("quadruped", [snap, snap], "rnd"), tmp_path / "t.png")
    grid = compare.comparison_figure("quadruped", [("rnd", [snap]), ("rnd again", [snap])], "one start")
    figures.save(grid, tmp_path / "c.png")
    fig = figures.method_figure("quadruped", [snap], "rnd")
    assert "state visitation" in fig._suptitle.get_text()
    figures.save(fig, tmp_path / "v.png")


def test_walker_view_is_torso_x_over_time():
    x, y = figures.path_xy("walker", np.array([[0.5, 1.2], [0.7, 1.1], [1.0, 1.0]]))
    assert list(x) == [0, 1, 2] and list(y) == [0.5, 0.7, 1.0]
    assert figures.path_labels("walker") == ("step", "torso x (m)")
    colors = figures.skill_colors(16)
    assert len({tuple(np.round(c, 3)) for c in colors}) == 16


def test_coverage_table_mean_and_spread_over_seeds():
    series = {"cic": {1: {10: 4, 20: 6}, 2: {10: 2, 20: 9}}, "diayn": {1: {10: 3}}}
    rows = compare.coverage_table(series)
    assert rows[0] == {
        "method": "cic",
        "snapshot_frames": 10,
        "seeds": "1 2",
        "cells_mean": 3.0,
        "cells_min": 2,
        "cells_max": 4,
        "cells_per_seed": "4 2",
    }
    assert (rows[1]["cells_mean"], rows[1]["cells_max"]) == (7.5, 9)
    assert rows[2]["method"] == "diayn" and rows[2]["seeds"] == "1"


def test_rerun_removes_only_what_it_wrote(tmp_path):
    (tmp_path / "mine.txt").write_text("a user's notes")
    first = OwnedFiles(tmp_path)
    for name in ("index.html", "video_100.mp4", "skills.csv"):
        first.add(tmp_path / name).write_text("x")
    first.finish()
    second = OwnedFiles(tmp_path)
    second.add(tmp_path / "skills.csv").write_text("y")
    removed = second.finish()
    assert sorted(p.name for p in removed) == ["index.html", "video_100.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MANIFEST, "mine.txt", "skills.csv"])
