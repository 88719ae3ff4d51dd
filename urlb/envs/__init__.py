"""The benchmark's environments: `make(task, ...)` builds any of the twelve tasks."""

from __future__ import annotations

from urlb.envs import jaco, quadruped, walker
from urlb.envs.wrappers import BenchmarkEnv, TimeStep
from urlb.tasks import check_obs_type, check_task, domain_of

__all__ = ["make", "BenchmarkEnv", "TimeStep"]

_DOMAINS = {"walker": walker, "quadruped": quadruped, "jaco": jaco}


def make(
    task: str, obs_type: str = "states", frame_stack: int = 3, action_repeat: int = 1, seed: int = 1
) -> BenchmarkEnv:
    """Builds `task` (one of `urlb.tasks.ALL_TASKS`).

    obs_type "states" gives a flat float32 vector (frame_stack is ignored); "pixels"
    gives the last `frame_stack` 84x84 RGB frames stacked channels-first (uint8).
    Actions are float32 in [-1, 1]. The same seed and actions give the same episode.
    Raises ValueError for an unknown task or obs_type.
    """
    check_task(task)
    check_obs_type(obs_type)
    module = _DOMAINS[domain_of(task)]
    return BenchmarkEnv(
        module.load(task, seed),
        obs_type=obs_type,
        camera=module.CAMERA,
        time_limit=module.TIME_LIMIT,
        frame_stack=frame_stack,
        action_repeat=action_repeat,
        # Every domain, jaco included, keeps the inner environment's key order, as URLB's
        # flattening does (for jaco: arm, hand, then the Duplo target).
    )
