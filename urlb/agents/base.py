"""The plugin contract: what a pre-training method adds to the shared DDPG backbone.

A plugin is a plain single-seed ``nn.Module`` written as the public code is: ``nn.Linear`` /
``nn.Sequential`` networks (or :func:`urlb.nets.mlp`), batches shaped (B, ...), ``.mean()``,
and torch's ordinary random functions (``torch.randn``...), which draw from the global generator.
It owns its networks and optimisers (declared with :meth:`Plugin.add_optimizer`, so that
checkpoints carry them). ``update`` trains them on a sampled batch and returns that batch's
intrinsic reward (B, 1), detached, computed where the public code computes it (usually after
the plugin's own optimiser step, relabelling old transitions with the current reward model, as
URLB does), and a metrics dict of floats (or 0-d tensors); it never touches the actor or critic.
``intrinsic_reward(batch)`` gives the reward alone for analysis, changing nothing. Skill methods
also declare a skill space: the backbone concatenates the skill to the observation features.
The constructor's keyword arguments are the agent-config keys the plugin takes (``build_agent``
reads the signature).

Several seeds in one process are the framework's business (:mod:`urlb.seed_agents`): a method never
sees a seed dimension. ``urlb-check-agent pkg.module:Class`` runs a method through this contract.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from urlb.replay import Batch

Metrics = dict[str, float | torch.Tensor]  # name -> a number (float or 0-d tensor)


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
    # How the reference code picks the fine-tuning skill (``skill_selection=null``): see urlb.skill_schedule.
    finetune_skill_selection: str = "fixed"
    # What URLB's ``init_from`` copies of the pre-trained critic: its trunk (every method but one) or
    # the whole critic, heads included (ProtoRL's own ``init_from``). The target critic stays fresh.
    finetune_critic_copy: str = "trunk"
    # Observation types the method trains on (pixels: see pixel_input below).
    obs_types: tuple[str, ...] = ("states", "pixels")
    # Replay batches a reward-free update hands the plugin, one after another in one batch (BeCL
    # trains on several per update); the critic and actor learn from the last, which the reward
    # returned by ``update`` covers.
    batches_per_update: int = 1
    # Pixels with ``encoder_update=urlb`` (URLB's method agents): what ``update`` receives.
    # "features": the backbone's augmented encoder features, those named in ``encoder_grad``
    # computed with gradient into the shared encoder (the method steps it with
    # ``self.step(..., with_encoder=True)``, where URLB steps its ``encoder_opt``);
    # "frames": the raw stacked frames, which the method shifts and encodes itself with
    # ``self.aug`` and ``self.encoder`` (RND, ProtoRL, BeCL), its ``critic_features`` giving the
    # critic's features afterwards.
    pixel_input: str = "features"
    encoder_grad: tuple[str, ...] = ("obs",)
    # Whether ``update`` reads ``batch.next_obs_1step``. On pixels the backbone shifts and encodes
    # it only then (URLB's agents shift and encode obs and next_obs alone); otherwise the plugin
    # gets None there.
    reads_one_step: bool = False

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        # The backbone's pixel encoder, augmentation and encoder optimiser (``use_encoder``), in a
        # list so that they are not registered as the plugin's modules: the backbone saves them.
        self._shared_encoder: list = [None, None, None]

    # --- pixels ---
    def use_encoder(self, encoder: nn.Module, aug: nn.Module, encoder_opt: torch.optim.Optimizer) -> None:
        """Pixels with ``encoder_update=urlb``: the backbone shares its encoder with the method,
        as URLB's method agents own theirs. Not called otherwise (the encoder is then None)."""
        self._shared_encoder = [encoder, aug, encoder_opt]

    def critic_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_input="frames"``: the critic's features of obs and next_obs after the method's
        update (no gradient); by default freshly augmented and encoded, as URLB's RND agent."""
        return self.encoder(self.aug(batch.obs.float())), self.encoder(self.aug(batch.next_obs.float()))

    @property
    def encoder(self) -> nn.Module | None:
        return self._shared_encoder[0]

    @property
    def aug(self) -> nn.Module | None:
        return self._shared_encoder[1]

    @property
    def encoder_opt(self) -> torch.optim.Optimizer | None:
        return self._shared_encoder[2]

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

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, with_encoder: bool = False) -> None:
        """One gradient step of ``optimizer`` on ``loss``; ``with_encoder``: the shared pixel
        encoder takes a step on the same loss too (when the backbone shares it)."""
        encoder_opt = self.encoder_opt if with_encoder else None
        optimizer.zero_grad(set_to_none=True)
        if encoder_opt is not None:
            encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if encoder_opt is not None:
            encoder_opt.step()

    # --- learning ---
    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        """Train the plugin's own networks on a batch; return the batch's intrinsic reward
        (B, 1), detached, and metrics."""
        raise NotImplementedError

    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """Reward (B, 1) with the current networks, for analysis: no training and no change to
        running statistics."""
        raise NotImplementedError

    # --- what the backbone's critic and actor losses take from the method ---
    # A method may also replace the critic: ``make_critic(obs_type, in_dim, action_dim,
    # feature_dim, hidden_dim)`` returns a module with the backbone critic's inputs (features
    # and skill, action) whose two Q outputs may carry a leading ensemble dimension (E, B, 1).
    def critic_mask(self) -> torch.Tensor | None:
        """0/1 mask of the Q entries that learn from the batch of the latest reward-free
        ``update`` (the critic loss is then mse(Q * mask, target * mask)); None: all of them."""
        return None

    def actor_value(self, q: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        """What the actor maximises (its loss is minus the mean) given min(Q1, Q2) of its own
        actions: by default that value itself."""
        return q


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
