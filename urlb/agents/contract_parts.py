"""What the contract checker (:mod:`urlb.agents.contract`) builds on: tiny inputs for a method,
the checker's two outcomes besides passing, and the one-line checks of a reward and of metrics."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb.replay import Batch

OBS_DIM, ACTION_DIM, BATCH = 24, 6, 32
PIXELS, PIXEL_BATCH = (9, 84, 84), 8  # convolutions on 84x84 frames: a smaller batch keeps the check quick
TINY = {"hidden_dim": 32, "feature_dim": 16}  # backbone sizes; the method's own keep their config


class Problem(Exception):
    """One broken rule (the message is the line shown)."""


class Skipped(Exception):
    """A rule that cannot run because one it builds on broke."""


def tiny_config(agent_cfg: DictConfig | dict, obs_type: str, seed: int = 0) -> DictConfig:
    agent = OmegaConf.to_container(agent_cfg, resolve=True) if isinstance(agent_cfg, DictConfig) else dict(agent_cfg)
    # walker's sizes (OBS_DIM, ACTION_DIM), so a key set per domain (``${domain}``) resolves
    return OmegaConf.create({"agent": {**agent, **TINY}, "obs_type": obs_type, "seed": seed, "domain": "walker"})


def random_batch(plugin, obs_shape: tuple[int, ...], rng: np.random.Generator, batch: int = BATCH) -> Batch:
    """Plausible transitions: observations, actions in [-1, 1], skills from the method's prior."""

    def obs():
        if len(obs_shape) == 3:
            return torch.as_tensor(rng.integers(0, 256, (batch, *obs_shape)), dtype=torch.uint8)
        return torch.as_tensor(rng.standard_normal((batch, *obs_shape)), dtype=torch.float32)

    skill = None
    if plugin is not None and plugin.skill_dim:
        skill = torch.as_tensor(np.stack([plugin.sample_skill(rng) for _ in range(batch)]), dtype=torch.float32)
    return Batch(
        obs=obs(),
        action=torch.as_tensor(rng.uniform(-1, 1, (batch, ACTION_DIM)), dtype=torch.float32),
        reward=torch.as_tensor(rng.standard_normal((batch, 1)), dtype=torch.float32),
        discount=torch.full((batch, 1), 0.99**3),
        next_obs=obs(),
        next_obs_1step=obs(),
        skill=skill,
    )


def _check_reward(reward, where: str, size: int) -> None:
    if not isinstance(reward, torch.Tensor):
        raise Problem(f"{where}: the reward is a {type(reward).__name__} -> return a tensor of shape (B, 1)")
    if tuple(reward.shape) != (size, 1):
        raise Problem(
            f"{where}: reward shape {tuple(reward.shape)} for a batch of {size} -> return one reward per "
            f"transition, shape (B, 1) = ({size}, 1)"
        )
    if reward.requires_grad:
        raise Problem(f"{where}: the reward carries gradients -> return it detached (torch.no_grad() or .detach())")
    if not bool(torch.isfinite(reward).all()):
        raise Problem(f"{where}: the reward has NaN or infinite entries -> check the reward's formula and its loss")


def _check_metrics(metrics, where: str) -> None:
    if not isinstance(metrics, dict):
        raise Problem(f"{where}: metrics are a {type(metrics).__name__} -> return a dict of name -> number")
    for key, value in metrics.items():
        number = isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.dim() == 0)
        if not isinstance(key, str) or not number:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise Problem(f"{where}: metric {key!r} is {shape} -> metrics are floats or 0-d tensors (loss.item())")
        if not np.isfinite(float(value)):
            raise Problem(f"{where}: metric {key!r} is {float(value)} -> a NaN or infinite loss: check the loss")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
