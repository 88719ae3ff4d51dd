"""End to end: pretrain.py writes a snapshot, finetune.py loads it, and user errors exit with
code 2 and one clear message. Each run is a subprocess with tiny settings (~30 s in total).

Walker episodes are 1000 steps, so every evaluation episode costs 1000 environment steps:
num_eval_episodes=1 throughout.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from urlb.runs.snapshots import load_snapshot, snapshot_path
from urlb.tasks import ALL_TASKS

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
TINY_SETTINGS = {
    "preset": "quick",
    "num_train_frames": 600,
    "num_seed_frames": 200,
    "eval_every_frames": 300,
    "num_eval_episodes": 1,
    "agent.hidden_dim": 32,
    "batch_size": 32,
    "replay_buffer_size": 2000,
    "device": "cpu",
    "use_tb": "false",
}


def tiny(**changes) -> list[str]:
    """The tiny settings as overrides (each key once), with ``changes`` applied."""
    return [f"{k}={v}" for k, v in {**TINY_SETTINGS, **changes}.items()]


TINY = tiny()


def run(script: str, work: Path, *overrides: str) -> subprocess.CompletedProcess:
    # One intra-op thread: the networks are tiny, and on a busy 2-core machine OpenMP
    # spin-waiting otherwise makes these runs several times slower.
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, script, *overrides, f"run_root={work / 'runs'}", f"snapshot_dir={work / 'models'}"]
    # No timeout: a slow machine must make these runs slower, not fail them.
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def eval_frames(run_dir: Path) -> list[int]:
    with (run_dir / "eval.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        assert float(row["episode_length"]) == 1000.0, row
        assert float(row["episode_reward"]) == float(row["episode_reward"]), row  # not NaN
    return [int(float(row["frame"])) for row in rows]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def pretrained(work) -> subprocess.CompletedProcess:
    return run("pretrain.py", work, "agent=rnd", *TINY, "snapshots=[600]")


def test_pretrain_writes_snapshot(work, pretrained):
    assert pretrained.returncode == 0, explain(pretrained)
    path = snapshot_path(work / "models", "states", "walker", "rnd", 1, 600)
    assert path.is_file(), explain(pretrained)
    data = load_snapshot(
        work / "models",
        "states",
        "walker",
        "rnd",
        1,
        600,
        expected={"agent": "rnd", "domain": "walker", "obs_type": "states", "hidden_dim": 32},
    )
    assert data["metadata"]["frames"] == 600
    assert "plugin" in data["state"] and not any(k.endswith("_opt") for k in data["state"])
    run_dir = work / "runs" / "quick" / "pretrain" / "states" / "walker" / "rnd" / "seed_1"
    assert eval_frames(run_dir) == [0, 300, 600]
    assert (run_dir / "config.yaml").is_file()


def test_finetune_from_snapshot(work, pretrained):
    assert pretrained.returncode == 0, explain(pretrained)
    proc = run("finetune.py", work, "agent=rnd", "task=walker_walk", "snapshot_ts=600", *TINY)
    assert proc.returncode == 0, explain(proc)
    assert "loaded snapshot" in proc.stdout + proc.stderr, explain(proc)
    run_dir = work / "runs" / "quick" / "finetune" / "states" / "walker_walk" / "rnd" / "snapshot_600" / "seed_1"
    assert eval_frames(run_dir) == [0, 300, 600]
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.phase == "finetune" and cfg.task == "walker_walk" and cfg.domain == "walker"
    assert cfg.snapshot_ts == 600 and cfg.agent.name == "rnd" and cfg.agent.hidden_dim == 32


def test_finetune_ddpg_from_scratch(work):
    proc = run("finetune.py", work, "agent=ddpg", "task=walker_stand", *tiny(num_train_frames=300))
    assert proc.returncode == 0, explain(proc)
    assert "loaded snapshot" not in proc.stdout + proc.stderr
    run_dir = work / "runs" / "quick" / "finetune" / "states" / "walker_stand" / "ddpg" / "snapshot_0" / "seed_1"
    assert eval_frames(run_dir) == [0, 300]
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.snapshot_ts == 0 and cfg.agent.name == "ddpg"


def test_missing_snapshot_exits_2_with_instructions(work, pretrained):
    assert pretrained.returncode == 0, explain(pretrained)
    proc = run("finetune.py", work, "agent=rnd", "task=walker_walk", "snapshot_ts=999", *TINY)
    assert proc.returncode == 2, explain(proc)
    assert "no snapshot at" in proc.stderr and "python pretrain.py" in proc.stderr, explain(proc)
    assert str(snapshot_path(work / "models", "states", "walker", "rnd", 1, 999)) in proc.stderr
    assert "snapshot_600.pt" in proc.stderr  # the snapshots that do exist are listed
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_task_exits_2_listing_tasks(work):
    proc = run("finetune.py", work, "agent=rnd", "task=walker_dance", *TINY)
    assert proc.returncode == 2, explain(proc)
    assert "walker_dance" in proc.stderr
    assert all(task in proc.stderr for task in ALL_TASKS), explain(proc)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_agent_group_is_rejected_listing_agents(work):
    # Checked before Hydra composes the run (urlb.runs.launch.precheck): one line, exit 2, no search path.
    proc = run("finetune.py", work, "agent=foo", "task=walker_walk", *TINY)
    assert proc.returncode == 2, explain(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, explain(proc)
    assert "foo" in proc.stderr and "ddpg" in proc.stderr and "rnd" in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_agent_name_exits_2_listing_agents(work):
    # Past Hydra's group check, our own validation names the valid agents.
    proc = run("pretrain.py", work, "agent.name=foo", *TINY, "snapshots=[600]")
    assert proc.returncode == 2, explain(proc)
    assert "foo" in proc.stderr and "ddpg" in proc.stderr and "rnd" in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_no_seed_frames_does_not_crash(work):
    # num_seed_frames=0 passes validation; the first update must not sample a buffer that
    # holds only the reset step (it should run, or be refused with a clear message).
    proc = run(
        "finetune.py",
        work,
        "agent=ddpg",
        "task=walker_run",
        *tiny(num_seed_frames=0, num_train_frames=100, eval_every_frames=1000),
    )
    assert "Traceback" not in proc.stderr + proc.stdout, explain(proc)
    assert proc.returncode in (0, 2), explain(proc)


@pytest.mark.slow
@pytest.mark.parametrize("agent,selection", [("cic", "grid"), ("metra", "grid"), ("diayn", "fixed"), ("apt", "grid")])
def test_every_agent_pretrains_then_finetunes_with_its_skill_selection(tmp_path, agent, selection):
    """Jaco episodes are 250 steps, which keeps these runs short; grid selection scores
    candidates during the seed frames and must print its choice."""
    short = tiny(num_train_frames=500, num_seed_frames=250, eval_every_frames=250)
    pre = run("pretrain.py", tmp_path, f"agent={agent}", "domain=jaco", *short, "snapshots=[500]")
    assert pre.returncode == 0, explain(pre)
    skill_keys = ["skill_selection_candidates=5"]  # ignored by apt, which has no skills
    fine = run(
        "finetune.py",
        tmp_path,
        f"agent={agent}",
        "task=jaco_reach_bottom_right",
        "snapshot_ts=500",
        f"skill_selection={selection}",
        *skill_keys,
        *short,
    )
    assert fine.returncode == 0, explain(fine)
    run_dir = tmp_path / "runs" / "quick" / "finetune" / "states" / "jaco_reach_bottom_right" / agent
    with (run_dir / "snapshot_500" / "seed_1" / "eval.csv").open(newline="") as f:
        assert [int(float(r["frame"])) for r in csv.DictReader(f)] == [0, 250, 500]
    if agent in ("cic", "metra"):
        assert fine.stdout.count("grid skill candidate") == 5, explain(fine)
        assert "grid skill selection chose candidate" in fine.stdout, explain(fine)
