"""seeds=[...] end to end: several seeds in one process write exactly what single-seed runs
write (run directories, logs, snapshots, checkpoints); snapshots and checkpoints move between
multi-seed and single-seed runs; a stopped multi-seed run resumes without lost or repeated rows;
bad seed lists are refused before any work."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, child_env, jaco_stop_run
from omegaconf import OmegaConf

from urlb.runs.snapshots import load_snapshot, snapshot_path

pytestmark = pytest.mark.pipeline

SHORT = [*TINY, "num_train_frames=600", "num_seed_frames=200", "eval_every_frames=300"]
PRETRAIN = [*SHORT, "snapshots=[600]"]


def run(script: str, work: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, script, *overrides, f"run_root={work / 'runs'}"]
    if not any(o.startswith("snapshot_dir=") for o in overrides):
        cmd.append(f"snapshot_dir={work / 'models'}")
    return subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def pretrain_dir(work: Path, seed: int, domain: str = "walker") -> Path:
    return work / "runs" / "quick" / "pretrain" / "states" / domain / "rnd" / f"seed_{seed}"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("seed_runs")


@pytest.fixture(scope="module")
def batched(work) -> subprocess.CompletedProcess:
    """RND pre-training of seeds 1 and 2 in one process."""
    return run("pretrain.py", work / "batched", "agent=rnd", *PRETRAIN, "seeds=[1,2]")


@pytest.fixture(scope="module")
def single(work) -> subprocess.CompletedProcess:
    """The same pre-training of seed 2 alone."""
    return run("pretrain.py", work / "single", "agent=rnd", *PRETRAIN, "seed=2")


def test_each_seed_writes_what_a_single_seed_run_writes(work, batched, single):
    assert batched.returncode == 0, explain(batched)
    assert single.returncode == 0, explain(single)
    for seed in (1, 2):
        run_dir = pretrain_dir(work / "batched", seed)
        assert [int(float(r["frame"])) for r in rows(run_dir / "eval.csv")] == [0, 300, 600]
        assert (run_dir / "checkpoint.pt").is_file()
        assert OmegaConf.load(run_dir / "config.yaml").seed == seed
        data = load_snapshot(work / "batched" / "models", "states", "walker", "rnd", seed, 600, expected={})
        assert data["metadata"]["frames"] == 600
    ours, theirs = pretrain_dir(work / "batched", 2), pretrain_dir(work / "single", 2)
    assert rows(ours / "eval.csv")[0].keys() == rows(theirs / "eval.csv")[0].keys()
    # Seed 2 beside seed 1 computes exactly what it computes alone (urlb.seed_agents: its own agent and
    # random state; both runs use one torch thread): the same evaluations and snapshot.
    assert (ours / "eval.csv").read_bytes() == (theirs / "eval.csv").read_bytes()
    side_by_side, alone = (
        load_snapshot(work / w / "models", "states", "walker", "rnd", 2, 600, expected={})["state"]
        for w in ("batched", "single")
    )
    for part in ("actor", "critic", "plugin"):
        for key, value in alone[part].items():
            assert torch.equal(side_by_side[part][key], value), f"{part}.{key}"
    # Seeds 1 and 2 are not copies of each other.
    models = work / "batched" / "models"
    one, two = (load_snapshot(models, "states", "walker", "rnd", s, 600, expected={})["state"] for s in (1, 2))
    assert not torch.equal(one["actor"]["trunk.0.weight"], two["actor"]["trunk.0.weight"])


@pytest.mark.slow  # four runs; each seed writing what a single-seed run writes is tested by default
def test_snapshots_move_between_multi_and_single_seed_runs(work, batched, single):
    assert batched.returncode == 0 and single.returncode == 0
    # A single-seed fine-tuning run loads seed 1's snapshot written by the two-seed run ...
    alone = run("finetune.py", work / "batched", "agent=rnd", "task=walker_walk", "snapshot_ts=600", *SHORT, "seed=1")
    assert alone.returncode == 0 and "loaded snapshot" in alone.stdout, explain(alone)
    # ... and a two-seed fine-tuning run loads seed 2's snapshot written by the single-seed run
    # (seed 5 fine-tunes seed 2's snapshot too: snapshot_seed is set for both).
    both = run(
        "finetune.py",
        work / "single",
        "agent=rnd",
        "task=walker_walk",
        "snapshot_ts=600",
        *SHORT,
        "seeds=[2,5]",
        "snapshot_seed=2",
    )
    assert both.returncode == 0, explain(both)
    assert both.stdout.count("loaded snapshot") == 2, explain(both)
    for seed in (2, 5):
        run_dir = work / "single" / "runs" / "quick" / "finetune" / "states" / "walker_walk" / "rnd"
        assert (run_dir / "snapshot_600" / f"seed_{seed}" / "eval.csv").is_file()


def test_finished_and_partly_finished_seed_lists(work, batched):
    assert batched.returncode == 0
    again = run("pretrain.py", work / "batched", "agent=rnd", *PRETRAIN, "seeds=[1,2]")
    assert again.returncode == 0 and again.stdout.count("already complete") == 2, explain(again)
    more = run("pretrain.py", work / "batched", "agent=rnd", *PRETRAIN, "seeds=[1,2,3]")
    assert more.returncode == 2, explain(more)
    assert "seeds [1, 2] are already complete" in more.stderr and "seeds=[3]" in more.stderr, explain(more)


@pytest.mark.parametrize(
    "seeds,message", [("[1,1]", "lists a seed twice"), ("[-1,2]", "whole numbers >= 0"), ("[]", "non-empty")]
)
def test_bad_seed_lists_are_refused_before_any_work(tmp_path, seeds, message):
    proc = run("pretrain.py", tmp_path, "agent=rnd", *PRETRAIN, f"seeds={seeds}")
    assert proc.returncode == 2 and message in proc.stderr, explain(proc)
    assert not (tmp_path / "runs").exists()


def test_stopped_two_seed_run_resumes_alone_or_together(tmp_path, monkeypatch):
    """A SIGTERM during the evaluation at frame 500 stops both seeds with their checkpoints at
    one frame. Seed 2 then resumes alone from the checkpoint the two-seed run wrote, and seed 1
    resumes in a (one-seed) list: every row is written once."""
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)
    from urlb.trainer import RunInterrupted, Trainer

    monkeypatch.setenv("MUJOCO_GL", "egl")
    overrides = jaco_stop_run(tmp_path)

    def config(*extra: str):
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            return compose(config_name="pretrain", overrides=[*overrides, *extra])

    real_evaluate = Trainer.evaluate

    def evaluate_then_signal(self):
        real_evaluate(self)
        if self.global_frame == 500:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the Trainer's handler

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(Trainer, "evaluate", evaluate_then_signal)
        with pytest.raises(RunInterrupted):
            Trainer(config("seeds=[1,2]"), pretrain_dir(tmp_path, 1, "jaco")).train()
        monkeypatch.setattr(Trainer, "evaluate", real_evaluate)
        alone = Trainer(config("seed=2"), pretrain_dir(tmp_path, 2, "jaco"))
        assert alone.resumed_at == 500
        alone.train()
        listed = Trainer(config("seeds=[1]"), pretrain_dir(tmp_path, 1, "jaco"))
        assert listed.resumed_at == 500
        listed.train()
    finally:
        torch.set_num_threads(threads)
    for seed in (1, 2):
        run_dir = pretrain_dir(tmp_path, seed, "jaco")
        assert [int(float(r["frame"])) for r in rows(run_dir / "train.csv")] == [250, 500, 750, 1000]
        assert [int(r["episode"]) for r in rows(run_dir / "train.csv")] == [1, 2, 3, 4]
        assert [int(float(r["frame"])) for r in rows(run_dir / "eval.csv")] == [0, 500, 1000]
        assert snapshot_path(tmp_path / "models", "states", "jaco", "rnd", seed, 1000).is_file()
