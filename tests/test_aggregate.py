"""Tests for urlb.tools.aggregate on synthetic run directories (fast: small bootstrap)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy.stats import trim_mean

from urlb.tasks import EXPERT_SCORES
from urlb.tools.aggregate import cli, stats

REPS = ["--reps", "50"]
PLOTS = ("aggregate_metrics.png", "performance_profile.png", "curves_per_task.png", "curves_per_domain.png")


def make_run(
    root: Path,
    name: str,
    *,
    agent: str = "cic",
    task: str = "walker_run",
    seed: int = 1,
    snapshot_ts: int = 2_000_000,
    obs_type: str = "states",
    num_train_frames: int = 100_000,
    eval_every: int = 10_000,
    final: float = 400.0,
    n_evals: int | None = None,
    frame0: bool = False,
    phase: str = "finetune",
) -> Path:
    """A fine-tuning run directory as finetune.py writes it.

    The return ramps linearly up to ``final`` at ``num_train_frames``; ``n_evals``
    truncates the log to simulate a run that stopped early.
    """
    run_dir = root / name
    run_dir.mkdir(parents=True)
    cfg = {
        "phase": phase,
        "agent": {"name": agent},
        "task": task,
        "domain": task.split("_")[0],
        "obs_type": obs_type,
        "seed": seed,
        "snapshot_ts": snapshot_ts,
        "num_train_frames": num_train_frames,
        "eval_every_frames": eval_every,
        "num_eval_episodes": 10,
    }
    OmegaConf.save(OmegaConf.create(cfg), run_dir / "config.yaml")
    frames = list(range(eval_every, num_train_frames + 1, eval_every))
    frames = ([0] if frame0 else []) + frames[: n_evals if n_evals is not None else None]
    rewards = [final * f / num_train_frames for f in frames]
    pd.DataFrame(
        {
            "frame": frames,
            "step": [f // 2 for f in frames],
            "episode": [f // 1000 for f in frames],
            "episode_reward": rewards,
            "episode_length": 1000,
            "total_time": 1.0,
        }
    ).to_csv(run_dir / "eval.csv", index=False)
    return run_dir


def run_main(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name)


# ------------------------------------------------------------------- scores and statistics


def test_normalised_scores_match_hand_computation(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "a", task="walker_run", seed=1, final=398.0)  # 398 / 796 = 0.5
    make_run(runs, "b", task="walker_run", seed=2, final=597.0)  # 597 / 796 = 0.75
    make_run(runs, "c", task="jaco_reach_top_left", final=95.5)  # 95.5 / 191 = 0.5
    assert stats.normalise("quadruped_jump", 666.0) == pytest.approx(0.75)
    out = tmp_path / "out"
    assert run_main(runs, "--out", out, *REPS) == 0

    scores = read(out, "runs.csv").set_index(["task", "seed"])
    assert scores.loc[("walker_run", 1), "normalised"] == pytest.approx(0.5)
    assert scores.loc[("walker_run", 2), "normalised"] == pytest.approx(0.75)
    wide = read(out, "per_task.csv").set_index("task")
    assert wide.loc["walker_run", "CIC:norm_mean"] == pytest.approx(0.625)
    # sem with ddof=1 of (0.5, 0.75) is 0.125; of (398, 597) is 99.5
    assert wide.loc["walker_run", "CIC:norm_se"] == pytest.approx(0.125)
    assert wide.loc["walker_run", "CIC:return_se"] == pytest.approx(99.5)
    assert wide.loc["walker_run", "CIC:n"] == 2
    assert wide.loc["jaco_reach_top_left", "CIC:norm_mean"] == pytest.approx(0.5)


def test_iqm_equals_trimmed_mean(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    returns = {"walker_run": [100, 200, 300, 700], "walker_walk": [50, 400, 800, 900]}
    for task, values in returns.items():
        for seed, value in enumerate(values):
            make_run(runs, f"{task}_{seed}", task=task, seed=seed, final=float(value))
    out = tmp_path / "out"
    run_main(runs, "--out", out, *REPS)

    flat = np.array([v / EXPERT_SCORES[t] for t, vs in returns.items() for v in vs])
    row = read(out, "aggregate.csv").query("scope == 'overall'").iloc[0]
    assert row["iqm"] == pytest.approx(trim_mean(flat, 0.25))
    # Hand check: middle four of eight sorted scores.
    assert row["iqm"] == pytest.approx(np.sort(flat)[2:6].mean())
    assert row["mean"] == pytest.approx(flat.mean())
    assert row["optimality_gap"] == pytest.approx(1 - np.minimum(flat, 1).mean())
    assert row["iqm_ci_low"] <= row["iqm"] <= row["iqm_ci_high"]
    assert row["seeds_per_task"] == 4 and row["runs_dropped"] == 0


def test_unequal_seed_counts_keep_lowest_common_count(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    for seed in (1, 2, 3):
        make_run(runs, f"run_{seed}", task="walker_run", seed=seed, final=100.0 * seed)
    for seed in (1, 2):
        make_run(runs, f"walk_{seed}", task="walker_walk", seed=seed, final=500.0)
    out = tmp_path / "out"
    run_main(runs, "--out", out, *REPS)
    row = read(out, "aggregate.csv").query("scope == 'overall'").iloc[0]
    assert row["seeds_per_task"] == 2 and row["runs_dropped"] == 1
    kept = [100 / 796, 200 / 796, 500 / 971, 500 / 971]  # seed 3 of walker_run dropped
    assert row["mean"] == pytest.approx(np.mean(kept))
    assert "dropped 1 run(s)" in capsys.readouterr().out
    # The per-task table still uses all three seeds.
    assert read(out, "per_task.csv").set_index("task").loc["walker_run", "CIC:n"] == 3


def test_chosen_frame_and_frame_zero_evaluation(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "a", final=796.0, frame0=True)
    out = tmp_path / "out"
    run_main(runs, "--out", out, "--frame", "50000", *REPS)
    score = read(out, "runs.csv").iloc[0]
    assert score["frame"] == 50_000
    assert score["normalised"] == pytest.approx(0.5)


# ------------------------------------------------------------------- exclusions


def test_bad_runs_are_excluded_with_reasons(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "sweep"
    for seed in (1, 2, 3):
        make_run(runs, f"0{seed}/deep/run", seed=seed)  # nested like a Hydra multirun
    (runs / "01" / "deep" / "run" / ".hydra").mkdir()  # Hydra's copy: not a second run
    OmegaConf.save(OmegaConf.create({"phase": "finetune"}), runs / "01" / "deep" / "run" / ".hydra" / "config.yaml")
    make_run(runs, "incomplete", seed=4, n_evals=5)
    make_run(runs, "pixels", seed=5, obs_type="pixels")
    make_run(runs, "longer", seed=6, num_train_frames=200_000)
    make_run(runs, "zz_duplicate", seed=1)
    make_run(runs, "no_column", seed=7)
    pd.DataFrame({"frame": [10_000], "reward": [1.0]}).to_csv(runs / "no_column" / "eval.csv", index=False)
    make_run(runs, "bad_yaml", seed=8)
    (runs / "bad_yaml" / "config.yaml").write_text("agent: {name: [unclosed\n")
    make_run(runs, "pretrain", phase="pretrain")

    out = tmp_path / "out"
    assert run_main(runs, "--out", out, *REPS) == 0
    printed = capsys.readouterr().out

    expected = {
        "incomplete": "incomplete: 5 of 10 evaluations",
        "pixels": "obs_type=pixels differs from the majority states",
        "longer": "num_train_frames=200000 differs from the majority 100000",
        "zz_duplicate": "duplicate of",
        "no_column": "eval.csv lacks column(s) episode_reward",
        "bad_yaml": "unreadable config.yaml",
        "pretrain": "not a fine-tuning run (phase=pretrain)",
    }
    excluded = read(out, "excluded.csv")
    assert len(excluded) == len(expected)
    for name, reason in expected.items():
        assert reason in printed, name
        row = excluded[excluded["path"].str.endswith(name)]
        assert len(row) == 1 and reason in row["reason"].iloc[0], name
    assert excluded.set_index("status").loc["ignored", "path"].endswith("pretrain")
    assert "Found 10 run directories: 3 used, 6 excluded, 1 ignored." in printed
    used = read(out, "runs.csv")
    assert sorted(used["seed"]) == [1, 2, 3]
    assert not used["path"].str.contains("zz_duplicate").any()


def test_protocol_can_be_selected(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "s1", seed=1)
    make_run(runs, "s2", seed=2)
    make_run(runs, "p1", seed=1, obs_type="pixels", final=200.0)
    out = tmp_path / "out"
    run_main(runs, "--out", out, "--obs-type", "pixels", *REPS)
    used = read(out, "runs.csv")
    assert list(used["path"].str.rsplit("/", n=1).str[-1]) == ["p1"]
    assert set(read(out, "excluded.csv")["reason"].str.contains("--obs-type pixels")) == {True}


def test_even_protocol_split_is_an_error(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "s1", seed=1)
    make_run(runs, "p1", seed=1, obs_type="pixels")
    with pytest.raises(SystemExit) as exc:
        run_main(runs, "--out", tmp_path / "out", *REPS)
    assert exc.value.code == 2
    assert "--obs-type" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["empty", "nonexistent", "only_pretrain"])
def test_no_usable_runs_is_a_clear_error(tmp_path: Path, capsys, kind: str) -> None:
    target = tmp_path / "runs"
    if kind == "empty":
        target.mkdir()
    elif kind == "only_pretrain":
        make_run(target, "pre", phase="pretrain")
    with pytest.raises(SystemExit) as exc:
        run_main(target, "--out", tmp_path / "out", *REPS)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("urlb-aggregate: error:")
    assert "Traceback" not in err
    message = {
        "empty": "no fine-tuning runs found",
        "nonexistent": "do not exist",
        "only_pretrain": "none of the 1 run directories is usable",
    }[kind]
    assert message in err


def test_missing_task_is_blank_not_zero(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "a", task="walker_run")
    out = tmp_path / "out"
    run_main(runs, "--out", out, *REPS)
    wide = read(out, "per_task.csv").set_index("task")
    assert len(wide) == 12
    assert pd.isna(wide.loc["walker_walk", "CIC:norm_mean"])
    assert pd.isna(wide.loc["walker_walk", "CIC:n"])
    md_row = next(line for line in (out / "per_task.md").read_text().splitlines() if line.startswith("| walker_walk"))
    assert md_row == "| walker_walk | — |"
    overall = read(out, "aggregate.csv").query("scope == 'overall'").iloc[0]
    assert overall["n_tasks"] == 1
    assert overall["mean"] == pytest.approx(400 / 796)  # not diluted by zeros
    assert "walker_walk" in overall["missing_tasks"]


# ------------------------------------------------------------------- published and plots


def test_published_means_reproduce_reference_values() -> None:
    agg = stats.published_aggregates(stats.load_published())
    overall = agg[agg["scope"] == "overall"].set_index("agent")
    expected = {"CIC": 0.736, "APT": 0.661, "RND": 0.623, "DIAYN": 0.367}
    for method, value in expected.items():
        assert round(overall.loc[method, "mean"], 3) == value
        assert overall.loc[method, "n_tasks"] == 11
    moss = overall.drop(index="BeCL")  # the MOSS table has no jaco_reach_top_right; BeCL's source has all 12
    assert moss["missing_tasks"].eq("jaco_reach_top_right").all()


@pytest.fixture(scope="module")
def full_output(tmp_path_factory) -> tuple[Path, str]:
    """Two agents, two CIC snapshots, three domains, --published: one shared run."""
    root = tmp_path_factory.mktemp("full")
    runs = root / "runs"
    rng = np.random.default_rng(0)
    tasks = ["walker_run", "walker_walk", "quadruped_run", "jaco_reach_top_left"]
    for agent, snapshot in (("cic", 2_000_000), ("cic", 500_000), ("rnd", 2_000_000)):
        for task in tasks:
            for seed in (1, 2, 3):
                final = float(rng.uniform(0.2, 0.9) * EXPERT_SCORES[task])
                make_run(
                    runs,
                    f"{agent}/{snapshot}/{task}/{seed}",
                    agent=agent,
                    task=task,
                    seed=seed,
                    snapshot_ts=snapshot,
                    final=final,
                )
    out = root / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run_main(runs, "--out", out, "--published", *REPS) == 0
    return out, buf.getvalue()


def test_published_rows_in_tables(full_output: tuple[Path, str]) -> None:
    out, printed = full_output
    wide = read(out, "per_task.csv").set_index("task")
    assert wide.loc["walker_walk", "CIC (published):return_mean"] == 914
    assert wide.loc["walker_walk", "CIC (published):norm_mean"] == pytest.approx(914 / 971)
    assert pd.isna(wide.loc["jaco_reach_top_right", "CIC (published):return_mean"])
    assert "CIC (published)" in (out / "per_task.md").read_text()

    agg = read(out, "aggregate.csv")
    pub = agg[(agg["source"] == "published") & (agg["scope"] == "overall")].set_index("agent")
    for method, value in {"CIC": 0.736, "APT": 0.661, "RND": 0.623, "DIAYN": 0.367}.items():
        assert round(pub.loc[method, "mean"], 3) == value
    assert pub["iqm"].isna().all() and pub["mean_ci_low"].isna().all()
    assert "cannot be recomputed" in (out / "aggregate.md").read_text()
    assert "CIC (published)" in printed
    assert "pre-train for 2M frames" in printed  # the 500k snapshot is flagged


def test_labels_and_scopes(full_output: tuple[Path, str]) -> None:
    out, _ = full_output
    agg = read(out, "aggregate.csv")
    runs = agg[agg["source"] == "runs"]
    assert set(runs["method"]) == {"CIC@2M", "CIC@500k", "RND"}
    assert set(runs["scope"]) == {"overall", "walker", "quadruped", "jaco"}
    overall = runs[runs["scope"] == "overall"]
    assert (overall["n_tasks"] == 4).all() and (overall["seeds_per_task"] == 3).all()
    assert ((overall["iqm_ci_low"] <= overall["iqm"]) & (overall["iqm"] <= overall["iqm_ci_high"])).all()


def test_all_plots_written(full_output: tuple[Path, str]) -> None:
    out, _ = full_output
    for name in (*PLOTS, "score_vs_snapshot.png"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("per_task.csv", "per_task.md", "aggregate.csv", "aggregate.md", "excluded.csv", "runs.csv"):
        assert (out / name).stat().st_size > 0, name


def test_bootstrap_is_reproducible(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, final in enumerate((100.0, 300.0, 600.0)):
        make_run(runs, f"r{seed}", seed=seed, final=final)
    first, second = tmp_path / "o1", tmp_path / "o2"
    run_main(runs, "--out", first, *REPS, "--seed", "3")
    run_main(runs, "--out", second, *REPS, "--seed", "3")
    pd.testing.assert_frame_equal(read(first, "aggregate.csv"), read(second, "aggregate.csv"))


def test_rliable_is_importable() -> None:
    """Guards the environment: rliable 1.2 breaks with arch>=8, and arch 7 with pandas 3."""
    rly, metrics = stats.load_rliable()
    assert callable(rly.get_interval_estimates) and callable(metrics.aggregate_iqm)


def test_entry_points_reach_the_cli() -> None:
    """The console script (pyproject) runs cli.main."""
    import importlib
    import re

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    # A regex, not tomllib: the project supports Python 3.10, which has no tomllib.
    target = re.search(r'^urlb-aggregate = "([\w.]+):(\w+)"$', pyproject, re.M)
    assert target is not None
    assert getattr(importlib.import_module(target[1]), target[2]) is cli.main
