"""The benchmark's definition in one place: domains, the twelve fine-tuning tasks, the
primal (pre-training) task of each domain, and the expert scores used for normalisation."""

from __future__ import annotations

import csv
from importlib import resources

DOMAINS: tuple[str, ...] = ("walker", "quadruped", "jaco")

TASKS: dict[str, tuple[str, ...]] = {
    "walker": ("walker_stand", "walker_walk", "walker_run", "walker_flip"),
    "quadruped": ("quadruped_stand", "quadruped_walk", "quadruped_run", "quadruped_jump"),
    "jaco": ("jaco_reach_top_left", "jaco_reach_top_right", "jaco_reach_bottom_left", "jaco_reach_bottom_right"),
}

ALL_TASKS: tuple[str, ...] = tuple(t for d in DOMAINS for t in TASKS[d])

# Pre-training runs in these environments; their task reward is ignored.
PRIMAL_TASKS: dict[str, str] = {"walker": "walker_stand", "quadruped": "quadruped_walk", "jaco": "jaco_reach_top_left"}

OBS_TYPES: tuple[str, ...] = ("states", "pixels")


def _load_expert_scores() -> dict[str, float]:
    # Source: the URLB authors' answer in URLB's issue tracker; see docs/aggregation.md.
    text = resources.files("urlb.data").joinpath("expert_scores.csv").read_text()
    return {row["task"]: float(row["expert_return"]) for row in csv.DictReader(text.splitlines())}


EXPERT_SCORES: dict[str, float] = _load_expert_scores()


def _choices(values) -> str:
    return ", ".join(sorted(values))


def check_task(task: str) -> str:
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {_choices(ALL_TASKS)}")
    return task


def check_obs_type(obs_type: str) -> str:
    if obs_type not in OBS_TYPES:
        raise ValueError(f"unknown obs_type {obs_type!r}; valid obs_types: {_choices(OBS_TYPES)}")
    return obs_type


def domain_of(task: str) -> str:
    """The domain a task belongs to (the prefix before the first underscore)."""
    return check_task(task).split("_", 1)[0]
