"""Checkpoints for resuming a run: the agent, replay, counters, skills and every random stream."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urlb.snapshot import SnapshotError, atomic_torch_save, read_torch_file

CHECKPOINT_NAME = "checkpoint.pt"


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
    """Everything one seed of a run (:class:`urlb.seed_run.SeedRun`) needs to continue exactly
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
        tmp = path.with_name(f".{path.name}.staged")
        atomic_torch_save({"metadata": metadata, "state": state}, tmp)
        staged.append((tmp, path))
    for tmp, path in staged:
        tmp.replace(path)


def load_checkpoint(path: Path, expected: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, state) of a checkpoint whose metadata matches ``expected`` on every key."""
    data = read_torch_file(path, "checkpoint")
    meta = data["metadata"]
    bad = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if bad:
        raise SnapshotError(f"checkpoint {path} does not fit this run ({bad}); remove it or use another run dir")
    return meta, data["state"]
