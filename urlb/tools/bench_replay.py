"""Replay figures of the benchmark (``python -m urlb.tools.bench``): n-step sampling rate and
stored bytes per transition, for states and pixels."""

from __future__ import annotations

import time

import numpy as np
import torch

from urlb import envs
from urlb.ddpg import DDPGAgent
from urlb.replay import ReplayBuffer


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fill_replay(env, replay: ReplayBuffer, agent: DDPGAgent, steps: int, rng: np.random.Generator) -> None:
    skill = agent.plugin.sample_skill(rng) if agent.plugin is not None else None
    time_step = env.reset()
    replay.add(time_step, skill)
    for _ in range(steps):
        if time_step.last():
            time_step = env.reset()
        else:
            time_step = env.step(rng.uniform(-1, 1, agent.action_dim).astype(np.float32))
        replay.add(time_step, skill)


def bench_replay(device: torch.device, batch_size: int = 1024, seconds: float = 2.0, fill_steps: int = 20_000) -> dict:
    """Sampling rate of n-step batches and stored bytes per transition (states and pixels)."""
    rng = np.random.default_rng(0)
    env = envs.make("walker_stand", "states", seed=1)
    states = ReplayBuffer((24,), 6, fill_steps, device=device)
    fill_replay(env, states, _NoPlugin(6), fill_steps, rng)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        states.sample(batch_size)
        count += 1
    sync_device(device)
    rate = count * batch_size / (time.perf_counter() - start)
    pixels = ReplayBuffer((9, 84, 84), 6, 1_000, frame_stack=3, device=device)
    return {
        "sample_transitions_per_s": rate,
        "states_bytes_per_transition": stored_bytes(states) / states.capacity,
        "states_raw_transition_bytes": 4 * (24 + 6 + 1 + 1),  # obs, action, reward, discount in float32
        "pixels_bytes_per_transition": stored_bytes(pixels) / pixels.capacity,
        "pixels_raw_transition_bytes": 9 * 84 * 84 + 4 * (6 + 1 + 1),  # stacked uint8 obs
    }


class _NoPlugin:
    """Stands in for an agent when filling a replay with random actions."""

    def __init__(self, action_dim: int) -> None:
        self.plugin, self.action_dim = None, action_dim


def stored_bytes(replay: ReplayBuffer) -> int:
    tensors = (
        replay.frames,
        replay.action,
        replay.reward,
        replay.env_discount,
        replay.skill,
        replay.episode_id,
        replay.step_in_episode,
    )
    return sum(t.numel() * t.element_size() for t in tensors)
