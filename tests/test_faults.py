"""Faults on tiny real runs: two processes on one run, kill -9 at any moment, a stop signal
mid-episode, write failures (a small full file system where the machine allows mounting one,
and failures injected inside torch.save).

The kills inside a checkpoint write and right after a snapshot, and two of the three full-disk
levels, and the whole-run torch.save failure (its path is covered in one process), are marked
``slow`` (python -m pytest -m slow tests/test_faults.py).

Kills and failures are injected by small wrappers that run pretrain.py through runpy with one
function patched (as tests/test_reliability.py does for a full disk), so that they happen at an
exact place; the process then dies by SIGKILL, which nothing in it can catch.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, child_env

from urlb.runs.checkpoints import finish_interrupted_writes
from urlb.runs.files import atomic_torch_save
from urlb.runs.snapshots import read_torch_file, snapshot_path

pytestmark = pytest.mark.pipeline

FRAMES = 1000  # four 250-frame jaco episodes


def settings(tmp_path: Path, *extra: str) -> list[str]:
    """A tiny RND pre-training on jaco with the default checkpoint cadence (after each snapshot,
    every 10 minutes, every 100k frames)."""
    return [
        *TINY,
        "agent=rnd",
        "domain=jaco",
        f"num_train_frames={FRAMES}",
        "num_seed_frames=250",
        "eval_every_frames=500",
        "snapshots=[500,1000]",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
        *extra,
    ]


def run_dir(tmp_path: Path, seed: int = 1) -> Path:
    return tmp_path / "runs" / "quick" / "pretrain" / "states" / "jaco" / "rnd" / f"seed_{seed}"


def run(*args: str, wrapper: Path | None = None) -> subprocess.CompletedProcess:
    prefix = [str(wrapper)] if wrapper else []
    return subprocess.run(
        [sys.executable, *prefix, "pretrain.py", *args], cwd=REPO, env=child_env(), capture_output=True, text=True
    )


def explain(proc) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def check_complete(directory: Path, frames: int = FRAMES) -> list[dict[str, str]]:
    """A finished run with no train row lost or repeated: frames strictly increase and the
    episode lengths add up to the frames trained, so every frame is in exactly one row."""
    train = rows(directory / "train.csv")
    seen = [int(float(r["frame"])) for r in train]
    assert all(a < b for a, b in zip(seen, seen[1:])), seen
    assert sum(int(float(r["episode_length"])) for r in train) == frames, train
    assert [int(r["episode"]) for r in train] == list(range(1, len(train) + 1)), train
    evals = [int(float(r["frame"])) for r in rows(directory / "eval.csv")]
    assert evals == list(range(0, frames + 1, 500)), evals
    assert read_torch_file(directory / "checkpoint.pt", "checkpoint")["metadata"]["frame"] == frames
    assert not [p.name for p in directory.iterdir() if p.name.endswith((".tmp", ".staged")) or p.name == "run.lock"]
    return train


# --------------------------------------------------------------------------- the run lock


def wait_for_lock(directory: Path, proc: subprocess.Popen) -> dict:
    lock = directory / "run.lock"
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            record = json.loads(lock.read_text())
            if record.get("pid") == proc.pid:
                return record
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def test_second_process_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    args = settings(tmp_path, "seeds=[1,2]")
    holder = subprocess.Popen(
        [sys.executable, "pretrain.py", *args],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        record = wait_for_lock(run_dir(tmp_path, 2), holder)
        os.kill(holder.pid, signal.SIGSTOP)  # holds its locks, changes nothing while the others try
        before = {seed: listing(run_dir(tmp_path, seed)) for seed in (1, 2)}
        for other in (args, settings(tmp_path, "seed=2")):  # the same command; one of its seeds alone
            refused = run(*other)
            assert refused.returncode == 2, explain(refused)
            assert len(refused.stderr.strip().splitlines()) == 1, explain(refused)
            expected = f"is in use by pid {holder.pid} on host {socket.gethostname()} since {record['since']}"
            assert expected in refused.stderr, explain(refused)
        assert {seed: listing(run_dir(tmp_path, seed)) for seed in (1, 2)} == before  # nothing written
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    again = run(*args)
    assert again.returncode == 0, explain(again)
    assert f"took over {run_dir(tmp_path, 1) / 'run.lock'} from pid {holder.pid}" in again.stdout, explain(again)
    for seed in (1, 2):
        check_complete(run_dir(tmp_path, seed))


# --------------------------------------------------------------------------- kill -9

# pretrain.py with one place patched to SIGKILL the process (or to fail): argv[1] says where.
KILL_WRAPPER = """
import os, runpy, signal, sys
import torch
import urlb.runs.seed_run, urlb.trainer

where, value = sys.argv.pop(1).split("=")
value = int(value)

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if where == "frame":  # after the environment step that reaches this frame
    real_step = urlb.runs.seed_run.SeedRun.step
    def step(self, action, skill, global_step):
        real_step(self, action, skill, global_step)
        if (global_step + 1) * self.cfg.action_repeat == value:
            die()
    urlb.runs.seed_run.SeedRun.step = step
elif where == "after_snapshot":  # right after the snapshot of this many frames, before any checkpoint
    real_save = urlb.trainer.save_snapshot
    def save_snapshot(path, payload, meta):
        out = real_save(path, payload, meta)
        if meta["frames"] == value:
            die()
        return out
    urlb.trainer.save_snapshot = save_snapshot
elif where in ("inside_checkpoint", "checkpoint_fails"):
    # Half-way through writing the value-th checkpoint: killed, or torch.save failing as its
    # zip writer does on a full disk.
    real_torch_save = torch.save
    count = [0]
    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "frame" in obj.get("metadata", {}):
            count[0] += 1
            if count[0] == value:
                f.write(b"PK\\x03\\x04 half a checkpoint")
                f.flush()
                if where == "inside_checkpoint":
                    die()
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 12224 vs 12118")
        return real_torch_save(obj, f, *args, **kwargs)
    torch.save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def kill_wrapper(tmp_path) -> Path:
    path = tmp_path / "kill.py"
    path.write_text(KILL_WRAPPER)
    return path


def killed_then_resumed(tmp_path: Path, wrapper: Path, where: str) -> tuple[subprocess.CompletedProcess, list]:
    args = settings(tmp_path)
    killed = subprocess.run(
        [sys.executable, str(wrapper), where, "pretrain.py", *args],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, explain(killed)
    again = run(*args)  # the same command
    assert again.returncode == 0, f"killed at {where}\n{explain(again)}"
    return again, check_complete(run_dir(tmp_path))


def test_kill_9_at_a_random_frame_then_the_same_command_finishes_with_every_row_once(tmp_path, kill_wrapper):
    frame = random.SystemRandom().randrange(1, FRAMES)
    again, train = killed_then_resumed(tmp_path, kill_wrapper, f"frame={frame}")
    resumed = 500 if frame > 500 else None  # the checkpoint written after the snapshot at 500
    if resumed is None:
        assert "resuming" not in again.stdout, (frame, again.stdout)
    else:
        assert f"at frame {resumed}" in again.stdout, (frame, again.stdout)
    assert [int(float(r["frame"])) for r in train] == [250, 500, 750, 1000], (frame, train)


@pytest.mark.slow
def test_kill_9_between_a_snapshot_and_its_checkpoint_rewrites_the_runs_own_snapshot(tmp_path, kill_wrapper):
    again, train = killed_then_resumed(tmp_path, kill_wrapper, "after_snapshot=500")
    assert "rewriting the snapshots it wrote before" in again.stdout, explain(again)
    assert snapshot_path(tmp_path / "models", "states", "jaco", "rnd", 1, 500).is_file()
    assert [int(float(r["frame"])) for r in train] == [250, 500, 750, 1000]


@pytest.mark.slow
def test_kill_9_inside_a_checkpoint_write_resumes_from_the_previous_one(tmp_path, kill_wrapper):
    again, train = killed_then_resumed(tmp_path, kill_wrapper, "inside_checkpoint=2")  # the 2nd: after snapshot 1000
    assert "at frame 500" in again.stdout, explain(again)
    assert [int(float(r["frame"])) for r in train] == [250, 500, 750, 1000]


# --------------------------------------------------------------------------- stop signal


def test_stop_signal_mid_episode_writes_the_cut_episode_row_and_resume_loses_no_frame(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    import urlb.runs.config  # noqa: F401  (registers the resolvers)
    from urlb.runs.seed_run import SeedRun
    from urlb.trainer import RunInterrupted, Trainer

    monkeypatch.setenv("MUJOCO_GL", "egl")
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="pretrain", overrides=settings(tmp_path))
    real_step = SeedRun.step

    def step_then_signal(self, action, skill, global_step):
        real_step(self, action, skill, global_step)
        if global_step + 1 == 600:
            os.kill(os.getpid(), signal.SIGTERM)

    directory = tmp_path / "run"
    monkeypatch.setattr(SeedRun, "step", step_then_signal)
    with pytest.raises(RunInterrupted):
        Trainer(cfg, directory).train()
    cut = rows(directory / "train.csv")[-1]
    assert (cut["frame"], cut["episode_length"], cut["partial"]) == ("600", "100", "1"), cut
    monkeypatch.setattr(SeedRun, "step", real_step)
    Trainer(cfg, directory).train()
    train = check_complete(directory)
    assert [(int(r["frame"]), r["partial"]) for r in train] == [
        (250, ""),
        (500, ""),
        (600, "1"),
        (850, ""),
        (1000, "1"),  # the episode the end of training cut short
    ]


# --------------------------------------------------------------------------- write failures


@pytest.mark.slow  # the same failure path in one process: test_atomic_save_turns_a_zip_writer_failure_...
def test_write_failure_inside_torch_save_is_one_line_exit_2_keeping_earlier_outputs(tmp_path, kill_wrapper):
    args = settings(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(kill_wrapper), "checkpoint_fails=2", "pretrain.py", *args],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    directory = run_dir(tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot write {directory / 'checkpoint.pt'}: write failed "
        "([enforce fail at inline_container.cc:672] . unexpected pos 12224 vs 12118)"
    ], explain(proc)
    assert read_torch_file(directory / "checkpoint.pt", "checkpoint")["metadata"]["frame"] == 500  # the first
    assert [int(float(r["frame"])) for r in rows(directory / "train.csv")] == [250, 500, 750, 1000]
    assert not [p for p in directory.rglob("*") if p.is_file() and p.stat().st_size == 0]
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name == "run.lock"]
    again = run(*args)  # the disk has room again: the same command resumes and finishes
    assert again.returncode == 0 and "at frame 500" in again.stdout, explain(again)
    check_complete(directory)


def test_atomic_save_turns_a_zip_writer_failure_into_an_os_error_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"v": 1}, target)

    def failing(obj, f, *args, **kwargs):
        f.write(b"PK")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(OSError) as info:
        atomic_torch_save({"v": 2}, target)
    assert info.value.filename == str(target) and "file write failed" in info.value.strerror
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.fixture
def small_filesystem(tmp_path):
    """A 64 KiB tmpfs (mounting needs privileges: skipped where the machine does not allow it)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


# 0 KiB: the run lock cannot be written; 12: .hydra/ cannot; 40: the first checkpoint cannot.
@pytest.mark.parametrize(
    "free_kib", [pytest.param(0, marks=pytest.mark.slow), pytest.param(12, marks=pytest.mark.slow), 40]
)
def test_full_filesystem_is_one_line_exit_2_and_leaves_no_empty_file(small_filesystem, tmp_path, free_kib):
    filler = small_filesystem / "filler"
    stats = os.statvfs(small_filesystem)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - free_kib * 1024))
    proc = run(*settings(tmp_path, f"run_root={small_filesystem / 'runs'}"))
    assert proc.returncode == 2, explain(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], explain(proc)
    assert str(small_filesystem / "runs") in lines[0], explain(proc)
    files = [p for p in (small_filesystem / "runs").rglob("*") if p.is_file()]
    assert not [p for p in files if p.stat().st_size == 0 or p.name.endswith(".tmp") or p.name == "run.lock"], files


# --------------------------------------------------------------------------- multi-seed commit


def test_a_kill_between_the_seeds_checkpoint_renames_is_finished_on_restart(tmp_path):
    dirs = [tmp_path / "seed_1", tmp_path / "seed_2", tmp_path / "seed_3"]

    def checkpoint(path: Path, frame: int) -> None:
        atomic_torch_save({"metadata": {"frame": frame}, "state": {}}, path)

    # seed 1 renamed to frame 500; seeds 2 and 3 still at 250 with their frame-500 files staged.
    checkpoint(dirs[0] / "checkpoint.pt", 500)
    for d in dirs[1:]:
        checkpoint(d / "checkpoint.pt", 250)
        checkpoint(d / ".checkpoint.pt.staged", 500)
    (dirs[2] / ".checkpoint.pt.abc.tmp").write_bytes(b"half")
    finish_interrupted_writes(dirs)
    frames = [read_torch_file(d / "checkpoint.pt", "checkpoint")["metadata"]["frame"] for d in dirs]
    assert frames == [500, 500, 500]
    assert not [p for d in dirs for p in d.iterdir() if p.name != "checkpoint.pt"]

    # Staging interrupted before any rename: the staged files are dropped, all stay at 250.
    for d in dirs:
        checkpoint(d / "checkpoint.pt", 250)
    checkpoint(dirs[0] / ".checkpoint.pt.staged", 500)
    finish_interrupted_writes(dirs)
    assert [read_torch_file(d / "checkpoint.pt", "checkpoint")["metadata"]["frame"] for d in dirs] == [250] * 3
    assert not (dirs[0] / ".checkpoint.pt.staged").exists()
