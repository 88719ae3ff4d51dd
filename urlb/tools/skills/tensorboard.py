"""During pre-training (``use_tb=true``): each snapshot's skill trajectories and coverage go to
TensorBoard. No rendering: K short rollouts of the agent being trained on a separate
environment, one matplotlib figure. The training RNG streams are not touched (rollouts fork
torch's RNG and use their own numpy generator), so a run logs the same numbers with or without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from urlb.tools.skills.measures import BODIES, coverage, distance_travelled

_STARTS: dict[tuple[str, int], tuple] = {}  # (env, start state) per domain and seed, made once per process
SKILLS = 8  # rollouts per snapshot: enough to see the skills apart
# Steps per rollout: five of URLB's 50-step skill periods. Full 1000-step walker episodes took
# ~4% of a quick-preset pre-training run's CPU time (4.2 s per snapshot); 250 steps take ~1.5%.
STEPS = 250


def log_snapshot_skills(
    writer,
    agent,
    cfg,
    frames: int,
    say: Callable[[str], None] = print,
    skills: int = SKILLS,
    steps: int = STEPS,
    seed: int = 0,
) -> float:
    """Roll out ``skills`` skills of ``agent`` for ``steps`` steps on the run's domain and add the
    trajectory figure and coverage at step ``frames``. Returns the seconds spent."""
    start = time.perf_counter()
    if cfg.obs_type != "states":  # the rollouts restore physics states; pixel stacks would not follow
        return 0.0
    from urlb.tools.skills import figures
    from urlb.tools.skills.rollouts import make_start, roll_out_snapshot

    key = (cfg.domain, seed)
    if key not in _STARTS:  # every snapshot of the run starts from the same state
        _STARTS[key] = make_start(cfg.domain, seed)
    env, first_state = _STARTS[key]
    snap = roll_out_snapshot(agent, env, first_state, frames, skills, steps=steps)
    body = BODIES[cfg.domain]
    paths = [r.positions for r in snap.rollouts]
    writer.add_scalar("skills/coverage_cells", coverage(paths, body.ground, body.cell), frames)
    writer.add_scalar(
        "skills/distance_travelled_mean", float(np.mean([distance_travelled(p, body.ground) for p in paths])), frames
    )
    if snap.scores is not None:
        writer.add_scalar(f"skills/{snap.score_name}_mean", float(np.mean(snap.scores)), frames)
    writer.add_figure(
        "skills/trajectories",
        figures.trajectory_figure(cfg.domain, [snap], f"{cfg.agent.name} on {cfg.domain}"),
        frames,
        close=True,
    )
    seconds = time.perf_counter() - start
    say(f"skills at {frames} frames -> TensorBoard ({len(paths)} rollouts, {seconds:.1f} s)")
    return seconds
