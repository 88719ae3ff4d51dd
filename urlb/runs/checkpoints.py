"""Checkpoints for resuming a run: the agent, replay, counters, skills and every random stream."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urlb.runs.files import atomic_torch_save, remove_temporary_files
from urlb.runs.snapshots import SnapshotError, read_torch_file

CHECKPOINT_NAME = "checkpoint.pt"
STAGED_NAME = f".{CHECKPOINT_NAME}.staged"  # a seed's next checkpoint, written in full before any is renamed
# Files of a run directory written through a temporary file (urlb.runs.files, urlb.logger).
ATOMIC_NAMES = (CHECKPOINT_NAME, STAGED_NAME, "config.yaml", "train.csv", "eval.csv")


def capture_rng(rng: np.random.Generator, torch_state: torch.Tensor | None = None) -> dict[str, Any]:
    """The state of a seed's torch stream (torch's default one for a single seed), its numpy
    generator and Python's random stream."""
    torch_state = torch.get_rng_state() if torch_state is None else torch_state
    return {"torch": torch_state, "numpy": rng.bit_generator.state, "python": random.getstate()}


def restore_rng(state: dict[str, Any], rng: np.random.Generator, agents=None, index: int = 0) -> None:
    if agents is None:
        torch.set_rng_state(state["torch"])
    else:
        agents.set_state(index, state["torch"])
    rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])


def capture_seed_run(run, agents, global_step: int, elapsed: float) -> dict[str, Any]:
    """Everything one seed of a run (:class:`urlb.runs.seed_run.SeedRun`) needs to continue exactly
    where it stopped; the same layout whether the seed trained alone or beside others."""
    counters = {
        "global_step": global_step,
        "global_episode": run.global_episode,
        "elapsed": elapsed,
        "snapshots_written": sorted(run.snapshots_written),
    }
    return {
        "agent": agents[run.index].networks_state(),
        "replay": run.replay.state_dict(),
        "counters": counters,
        "skills": run.schedule.state_dict(),
        "rng": capture_rng(run.rng, agents.get_state(run.index)),
    }


def restore_seed_run(run, agents, state: dict[str, Any]) -> None:
    """The inverse of :func:`capture_seed_run` (the skill schedule is rebuilt from ``resumed_skill``)."""
    agents[run.index].load_networks(state["agent"], tuple(state["agent"]))
    run.replay.load_state_dict(state["replay"])
    counters = state["counters"]
    run.global_step, run.global_episode = counters["global_step"], counters["global_episode"]
    run.elapsed_before = counters["elapsed"]
    run.snapshots_written = set(counters["snapshots_written"])
    run.resumed_skill = state["skills"]["fixed_skill"]
    restore_rng(state["rng"], run.rng, agents, run.index)


def save_checkpoint(path: Path, metadata: dict[str, Any], state: dict[str, Any]) -> None:
    """Atomic write: a crash mid-write keeps the previous checkpoint."""
    atomic_torch_save({"metadata": metadata, "state": state}, path)


def save_checkpoints(items: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> None:
    """Checkpoints of several seeds of one run: every file is written in full before any
    replaces its previous version, so a crash while writing leaves all seeds at the same frame
    (only a crash between the renames, a few microseconds, can split them; the resume says so)."""
    if len(items) == 1:
        save_checkpoint(*items[0])
        return
    staged = []
    for path, metadata, state in items:
        tmp = path.with_name(STAGED_NAME)
        atomic_torch_save({"metadata": metadata, "state": state}, tmp)
        staged.append((tmp, path))
    for tmp, path in staged:
        tmp.replace(path)


def _frame(path: Path) -> int | None:
    try:
        return int(read_torch_file(path, "checkpoint")["metadata"]["frame"])
    except (SnapshotError, KeyError, TypeError, ValueError):
        return None


def finish_interrupted_writes(run_dirs: list[Path], snapshot_files: list[Path] = ()) -> None:
    """After a kill: remove temporary files of interrupted writes (in the run directories and
    beside the run's own snapshots) and, when a kill came between the renames of
    :func:`save_checkpoints`, finish them, so that every seed of the run resumes from the same
    frame. Called while holding the run directories' locks."""
    for run_dir in run_dirs:
        remove_temporary_files(Path(run_dir), ATOMIC_NAMES)
        remove_temporary_files(Path(run_dir) / ".hydra", ("config.yaml", "hydra.yaml", "overrides.yaml"))
    for path in snapshot_files:
        remove_temporary_files(Path(path).parent, (Path(path).name,))
    staged = [Path(d) / STAGED_NAME for d in run_dirs if (Path(d) / STAGED_NAME).is_file()]
    if not staged:
        return
    committed = [_frame(Path(d) / CHECKPOINT_NAME) for d in run_dirs]
    newest = max((f for f in committed if f is not None), default=None)
    for path in staged:
        # A staged file at the newest committed frame belongs to a commit that had started.
        if newest is not None and _frame(path) == newest:
            path.replace(path.with_name(CHECKPOINT_NAME))
            print(f"finished the interrupted checkpoint of {path.parent} (frame {newest})", flush=True)
        else:
            path.unlink()


def load_checkpoint(path: Path, expected: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, state) of a checkpoint whose metadata matches ``expected`` on every key."""
    data = read_torch_file(path, "checkpoint")
    meta = data["metadata"]
    bad = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if bad:
        raise SnapshotError(f"checkpoint {path} does not fit this run ({bad}); remove it or use another run dir")
    return meta, data["state"]


class CheckpointCadence:
    """When a run writes its checkpoint (at an episode end): after ``every_frames`` frames, after a
    snapshot, or after ``every_minutes`` since the last one, stretched to at least 20x the last
    write's time so that writing costs at most 5% of the run."""

    def __init__(self, every_frames: int, every_minutes: float, start_frame: int) -> None:
        self.every_frames, self.every_minutes = every_frames, every_minutes
        self.last_frame, self.last_time, self.write_seconds = start_frame, time.time(), 0.0

    def due(self, frame: int, runs) -> bool:
        if frame - self.last_frame >= self.every_frames:
            return True
        if any(max(run.snapshots_written, default=0) > self.last_frame for run in runs):
            return True
        interval = max(60.0 * self.every_minutes, 20.0 * self.write_seconds)
        return time.time() - self.last_time >= interval

    def save(self, runs, agents, step: int, frame: int, elapsed: list[float]) -> None:
        """Every seed's checkpoint, staged and then renamed together (:func:`save_checkpoints`)."""
        started = time.time()
        self.last_frame = frame
        items = []
        for run, seconds in zip(runs, elapsed):
            meta, state = run.checkpoint_payload(agents, step, frame, seconds)
            items.append((run.checkpoint_path(), meta, state))
        save_checkpoints(items)
        self.last_time = time.time()
        self.write_seconds = self.last_time - started


def resume_runs(runs, agents) -> int | None:
    """Restore every seed from its checkpoint; the global step resumed at, or None when no seed has
    one. Seeds side by side must resume from the same frame."""
    found = {run.seed: run.read_checkpoint(agents) for run in runs}
    if all(v is None for v in found.values()):
        return None
    frames = {seed: (None if v is None else v[0]) for seed, v in found.items()}
    if len(set(frames.values())) != 1:
        raise SnapshotError(
            f"the seeds' checkpoints are at different frames ({frames}; None: no checkpoint), so they "
            "cannot continue side by side; resume each seed in its own process (seed=N), or "
            "resume=false to start them again"
        )
    for run in runs:
        frame, state = found[run.seed]
        run.restore(agents, state, frame)
    return runs[0].global_step
