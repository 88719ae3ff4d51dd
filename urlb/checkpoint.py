"""Checkpoints for resuming a run: the agent, replay, counters, skills and every random stream."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from urlb.snapshot import SnapshotError, atomic_torch_save, read_torch_file

CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng(rng: np.random.Generator) -> dict[str, Any]:
    """The state of torch's, numpy's (the run's generator) and Python's random streams."""
    return {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state, "python": random.getstate()}


def restore_rng(state: dict[str, Any], rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])


def capture_trainer(trainer) -> dict[str, Any]:
    """Everything a :class:`urlb.trainer.Trainer` needs to continue exactly where it stopped."""
    counters = {
        "global_step": trainer.global_step,
        "global_episode": trainer.global_episode,
        "elapsed": trainer.total_time(),
        "snapshots_written": sorted(trainer.snapshots_written),
    }
    return {
        "agent": trainer.agent.networks_state(),
        "replay": trainer.replay.state_dict(),
        "counters": counters,
        "skills": trainer.schedule.state_dict(),
        "rng": capture_rng(trainer.rng),
    }


def restore_trainer(trainer, state: dict[str, Any]) -> None:
    """The inverse of :func:`capture_trainer` (the skill schedule is rebuilt from ``resumed_skill``)."""
    trainer.agent.load_networks(state["agent"], tuple(state["agent"]))
    trainer.replay.load_state_dict(state["replay"])
    counters = state["counters"]
    trainer.global_step, trainer.global_episode = counters["global_step"], counters["global_episode"]
    trainer.elapsed_before = counters["elapsed"]
    trainer.snapshots_written = set(counters["snapshots_written"])
    trainer.resumed_skill = state["skills"]["fixed_skill"]
    restore_rng(state["rng"], trainer.rng)


def save_checkpoint(path: Path, metadata: dict[str, Any], state: dict[str, Any]) -> None:
    """Atomic write: a crash mid-write keeps the previous checkpoint."""
    atomic_torch_save({"metadata": metadata, "state": state}, path)


def load_checkpoint(path: Path, expected: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, state) of a checkpoint whose metadata matches ``expected`` on every key."""
    data = read_torch_file(path, "checkpoint")
    meta = data["metadata"]
    bad = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if bad:
        raise SnapshotError(f"checkpoint {path} does not fit this run ({bad}); remove it or use another run dir")
    return meta, data["state"]
