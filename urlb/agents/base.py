"""The plugin contract: what a pre-training method adds to the shared DDPG backbone.

A plugin owns its networks and optimisers. ``update`` trains them on a sampled batch and returns
that batch's intrinsic reward (relabelling old transitions with the current reward model, as
URLB does); it never touches the actor or critic. Skill methods also declare a skill space: the
backbone concatenates the skill to the observation features. The constructor's keyword
arguments are the agent-config keys the plugin takes (``build_agent`` reads the signature).

Seeds (see :mod:`urlb.seeds`): a plugin is built for one seed, from ``urlb.nets`` layers, and
several are stacked along a leading seed dimension. So every parameter and buffer, every batch
tensor (S, B, ...), every reward (S, B, 1) and every loss and metric (S,) has that dimension
first; batch statistics (normalisers, nearest neighbours, softmax over the batch) stay within a
seed, and random draws go through ``self.streams`` (one stream per seed).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from urlb.replay import Batch
from urlb.seeds import SeedStreams

Metrics = dict[str, torch.Tensor]  # name -> per-seed values (S,)


def check_option(method: str, key: str, value: str, valid: tuple[str, ...]) -> None:
    """A method's option with a fixed set of values: a clear error naming the key otherwise."""
    if value not in valid:
        raise ValueError(f"unknown {method} {key}={value!r}; valid: {', '.join(valid)}")


class Plugin(nn.Module):
    """Base class of pre-training methods. Subclasses set ``skill_dim`` (0: no skill)."""

    name: str = "plugin"
    skill_dim: int = 0
    # Steps between skill resamples during pre-training (skill methods only).
    update_skill_every_step: int = 50
    # How the reference code picks the fine-tuning skill (``skill_selection=null``): see urlb.skills.
    finetune_skill_selection: str = "fixed"
    # What URLB's ``init_from`` copies of the pre-trained critic: its trunk (every method but one) or
    # the whole critic, heads included (ProtoRL's own ``init_from``). The target critic stays fresh.
    finetune_critic_copy: str = "trunk"

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self.streams: SeedStreams | None = None  # set by the backbone (DDPGAgent.set_seeds)

    # --- skills ---
    def sample_skill(self, rng: np.random.Generator) -> np.ndarray | None:
        """A skill drawn from the prior, or None for exploration methods."""
        return None

    def default_skill(self) -> np.ndarray | None:
        """The skill used by ``skill_selection=fixed``."""
        return None

    def candidate_skills(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """Skills scored by ``skill_selection=grid`` (default: ``num`` prior samples)."""
        return np.stack([self.sample_skill(rng) for _ in range(num)])

    # --- optimisers ---
    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Declare an optimiser the plugin owns (saved in checkpoints and snapshots by name)."""
        self._optimizers[name] = optimizer
        return optimizer

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    @staticmethod
    def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One gradient step of ``optimizer`` on the per-seed losses ``loss`` (S,): their sum is
        differentiated, which gives each seed's parameters its own loss's gradient."""
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()

    # --- learning ---
    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        """Train the plugin's own networks on a batch (S, B, ...); return the batch's intrinsic
        reward (S, B, 1), detached, and per-seed metrics (S,)."""
        raise NotImplementedError

    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """Reward (S, B, 1) with the current networks, for analysis: no training and no change to
        running statistics."""
        raise NotImplementedError


class OneHotSkills:
    """Skill prior of DIAYN and SMM: a uniform one-hot of ``skill_dim`` entries. Grid selection
    scores every skill (there are few), whatever number of candidates it asks for."""

    skill_dim: int

    def sample_skill(self, rng: np.random.Generator) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)[rng.integers(self.skill_dim)]

    def default_skill(self) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)[0]

    def candidate_skills(self, num: int, rng: np.random.Generator) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)
