"""METRA: Park et al., "METRA: Scalable Unsupervised RL with Metric-Aware Abstraction" (2024).

The paper trains the policy with SAC; here it runs on the benchmark's shared DDPG backbone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch

CONSTRAINTS = ("mean", "sum")  # (phi(s') - phi(s))^2 averaged over dims (METRA's code) or summed (paper)
REWARD_STEPS = ("one", "nstep")  # reward on (s_t, s_{t+1}) (METRA) or telescoped to s_{t+n}


class METRA(Plugin):
    """METRA (Park et al., 2024): phi maximises (phi(s') - phi(s))^T z subject to a
    temporal-distance constraint on adjacent states, enforced by a learned dual variable
    lambda; intrinsic reward = (phi(s') - phi(s))^T z.

    Defaults follow METRA's ``iod/metra.py`` (inner product, dual_dist 'one'): the constraint
    term is min(slack, 1 - mean over dims of (phi(s') - phi(s))^2); discrete skills are one-hots
    whose reward uses z centred and scaled by D/(D-1); the reward is one step's, computed with
    phi after its optimiser step.
    """

    name = "metra"
    finetune_skill_selection = "grid"
    # Pixels (no public METRA code on this backbone): phi learns on the shared encoder's features of
    # s and s_{t+1}, stepping the encoder with its loss, as URLB's skill methods do.
    encoder_grad = ("obs", "next_obs_1step")
    reads_one_step = True  # phi is trained on (s_t, s_{t+1})

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        skill_dim: int = 2,
        discrete: bool = False,
        update_skill_every_step: int = 50,
        dual_lambda_init: float = 30.0,
        dual_slack: float = 1e-3,
        dual_lr: float | None = None,
        scale: float = 1.0,
        constraint: str = "mean",
        reward_steps: str = "one",
        reward_after_update: bool = True,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("METRA", "constraint", constraint, CONSTRAINTS)
        check_option("METRA", "reward_steps", reward_steps, REWARD_STEPS)
        if discrete and skill_dim < 2:
            raise ValueError(f"discrete METRA needs skill_dim >= 2, got {skill_dim}")
        self.skill_dim, self.discrete = skill_dim, discrete
        self.update_skill_every_step, self.slack, self.scale = update_skill_every_step, dual_slack, scale
        self.constraint, self.reward_steps, self.reward_after_update = constraint, reward_steps, reward_after_update
        self.phi = mlp(obs_dim, hidden_dim, skill_dim)
        self.apply(weight_init)
        # lambda = exp(log_lambda) stays positive; METRA optimises its log.
        self.log_lambda = nn.Parameter(torch.tensor(math.log(dual_lambda_init)))
        self.optimizer = self.add_optimizer("optimizer", adam(self.phi.parameters(), lr=lr))
        self.dual_optimizer = self.add_optimizer(
            "dual_optimizer", adam([self.log_lambda], lr=lr if dual_lr is None else dual_lr)
        )

    @property
    def dual_lambda(self) -> torch.Tensor:
        return self.log_lambda.exp()

    def sample_skill(self, rng: np.random.Generator) -> np.ndarray:
        if self.discrete:  # one-hot, as METRA's policy sees it
            return np.eye(self.skill_dim, dtype=np.float32)[rng.integers(self.skill_dim)]
        z = rng.standard_normal(self.skill_dim).astype(np.float32)
        return z / np.linalg.norm(z)

    def default_skill(self) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)[0]

    def candidate_skills(self, num: int, rng: np.random.Generator) -> np.ndarray:
        if self.discrete:
            return np.eye(self.skill_dim, dtype=np.float32)
        if self.skill_dim == 2:  # evenly spaced directions cover the circle; random ones bunch up
            angles = rng.uniform(0.0, 2 * np.pi) + 2 * np.pi * np.arange(num) / num
            return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
        return super().candidate_skills(num, rng)

    def reward_direction(self, skill: torch.Tensor) -> torch.Tensor:
        """The vector phi's displacement is projected on: z itself, or for discrete one-hots
        (z - mean(z)) * D/(D-1), as METRA's code."""
        if not self.discrete:
            return skill
        return (skill - skill.mean(dim=1, keepdim=True)) * self.skill_dim / (self.skill_dim - 1)

    def objective_terms(self, obs: torch.Tensor, next_obs: torch.Tensor, skill: torch.Tensor):
        """Per-sample displacement along z, the clipped constraint and the displacement
        phi(s') - phi(s) for adjacent states s, s'."""
        delta = self.phi(next_obs).float() - self.phi(obs).float()
        return (*self._terms(delta, skill), delta)

    def _terms(self, delta: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        along_z = (delta * self.reward_direction(skill)).sum(-1)
        squared = delta.pow(2).mean(-1) if self.constraint == "mean" else delta.pow(2).sum(-1)
        return along_z, torch.clamp(1.0 - squared, max=self.slack)

    @torch.no_grad()
    def _reward(self, batch: Batch) -> torch.Tensor:
        end = batch.next_obs_1step if self.reward_steps == "one" else batch.next_obs
        delta = self.phi(end).float() - self.phi(batch.obs).float()
        return self.scale * (delta * self.reward_direction(batch.skill)).sum(-1, keepdim=True)

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        # The constraint concerns adjacent states, so phi is trained on one-step pairs (one batched pass).
        phi_obs, phi_next = self.phi(torch.cat([batch.obs, batch.next_obs_1step])).float().chunk(2)
        delta = phi_next - phi_obs
        along_z, constraint = self._terms(delta, batch.skill)
        cached = None if self.reward_after_update else self._reward(batch)
        phi_loss = -(along_z + self.dual_lambda.detach() * constraint).mean()
        self.step(self.optimizer, phi_loss, with_encoder=True)
        # Dual step: lambda grows while the constraint is violated (constraint < 0), shrinks otherwise.
        dual_loss = (self.log_lambda * constraint.detach()).mean()
        self.step(self.dual_optimizer, dual_loss)
        # METRA recomputes the policy's reward with phi after its step.
        reward = self._reward(batch) if cached is None else cached
        return reward, {
            "metra_phi_loss": phi_loss.item(),
            "metra_along_z": along_z.mean().item(),
            "metra_step_norm": delta.norm(dim=-1).mean().item(),
            "metra_lambda": self.dual_lambda.item(),
            "metra_constraint": constraint.mean().item(),
        }

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self._reward(batch)
