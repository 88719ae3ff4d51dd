"""Evaluation episodes: the policy's mean action, the skill the schedule gives, optional video."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from urlb.ddpg import DDPGAgent


def evaluate_policy(
    agent: DDPGAgent,
    env,
    episodes: int,
    step: int,
    action_repeat: int,
    skill_for_episode: Callable[[], np.ndarray | None],
    video_path: Path | None = None,
) -> dict[str, float]:
    """Mean episode return and length (in frames) over ``episodes`` evaluation episodes; the
    first episode is recorded to ``video_path`` when given."""
    returns, lengths = [], []
    video = None
    if video_path is not None:
        from urlb.video import VideoRecorder

        video = VideoRecorder(video_path.parent)
    for episode in range(episodes):
        skill = skill_for_episode()
        time_step = env.reset()
        record = video is not None and episode == 0
        if record:
            video.start(env)
        total, length = 0.0, 0
        while not time_step.last():
            action = agent.act(time_step.observation, skill, step, eval_mode=True)
            time_step = env.step(action)
            if record:
                video.record(env)
            total += time_step.reward
            length += 1
        returns.append(total)
        lengths.append(length * action_repeat)
    if video is not None:
        video.save(video_path.name)
    return {"episode_reward": float(np.mean(returns)), "episode_length": float(np.mean(lengths))}
