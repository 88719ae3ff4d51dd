"""Evaluation episodes: the policy's mean action, the skill the schedule gives, optional video.
Several seeds are evaluated side by side, each by its own agent on its own environment."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from urlb.ddpg import DDPGAgent
from urlb.seeds import SeedAgents

SkillSource = Callable[[], "np.ndarray | None"]


def evaluate_policies(
    agents: SeedAgents,
    envs: list,
    episodes: int,
    step: int,
    action_repeat: int,
    skill_sources: list[SkillSource],
    video_paths: list[Path | None] | None = None,
) -> list[dict[str, float]]:
    """Per seed (one environment and skill source per seed of ``agents``): mean episode return
    and length (in frames) over ``episodes`` episodes; each seed's first episode is recorded to
    its video path when given."""
    seeds = len(envs)
    video_paths = video_paths or [None] * seeds
    videos = [_recorder(path) for path in video_paths]
    returns, lengths = np.zeros((episodes, seeds)), np.zeros((episodes, seeds))
    for episode in range(episodes):
        skills = [source() for source in skill_sources]
        time_steps = [env.reset() for env in envs]
        record = episode == 0
        for env, video in zip(envs, videos):
            if video is not None and record:
                video.start(env)
        running = np.ones(seeds, dtype=bool)
        while running.any():
            actions = agents.act([ts.observation for ts in time_steps], skills, step, eval_mode=True)
            for i in np.flatnonzero(running):  # a seed whose episode ended waits for the others
                time_steps[i] = envs[i].step(actions[i])
                if videos[i] is not None and record:
                    videos[i].record(envs[i])
                returns[episode, i] += time_steps[i].reward
                lengths[episode, i] += action_repeat
                running[i] = not time_steps[i].last()
    for video, path in zip(videos, video_paths):
        if video is not None:
            video.save(path.name)
    return [
        {"episode_reward": float(returns[:, i].mean()), "episode_length": float(lengths[:, i].mean())}
        for i in range(seeds)
    ]


def evaluate_policy(
    agent: DDPGAgent,
    env,
    episodes: int,
    step: int,
    action_repeat: int,
    skill_for_episode: SkillSource,
    video_path: Path | None = None,
) -> dict[str, float]:
    """:func:`evaluate_policies` for a single-seed agent."""
    return evaluate_policies(
        SeedAgents([agent], [0]), [env], episodes, step, action_repeat, [skill_for_episode], [video_path]
    )[0]


def _recorder(path: Path | None):
    if path is None:
        return None
    from urlb.video import VideoRecorder

    return VideoRecorder(path.parent)
