"""METRA: Park et al., "METRA: Scalable Unsupervised RL with Metric-Aware Abstraction" (2024).

The paper trains the policy with SAC; here it runs on the benchmark's shared DDPG backbone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from urlb.nets import adam, mlp, weight_init
from urlb.agents.base import Metrics, Plugin
from urlb.replay import Batch


class METRA(Plugin):
    """METRA (Park et al., 2024): phi maximises (phi(s') - phi(s))^T z subject to the
    temporal-distance constraint ||phi(s) - phi(s')|| <= 1, enforced by a learned dual
    variable lambda; intrinsic reward = (phi(s') - phi(s))^T z."""

    name = "metra"
    finetune_skill_selection = "grid"

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 1024, lr: float = 1e-4,
                 skill_dim: int = 2, discrete: bool = False, update_skill_every_step: int = 50,
                 dual_lambda_init: float = 30.0, dual_slack: float = 1e-3, dual_lr: float | None = None,
                 scale: float = 1.0) -> None:
        super().__init__(obs_dim, action_dim)
        self.skill_dim, self.discrete = skill_dim, discrete
        self.update_skill_every_step, self.slack, self.scale = update_skill_every_step, dual_slack, scale
        self.phi = mlp(obs_dim, hidden_dim, skill_dim)
        self.apply(weight_init)
        # lambda = exp(log_lambda) stays positive; METRA optimises its log.
        self.log_lambda = nn.Parameter(torch.tensor(math.log(dual_lambda_init)))
        self.optimizer = self.add_optimizer("optimizer", adam(self.phi.parameters(), lr=lr))
        self.dual_optimizer = self.add_optimizer("dual_optimizer", adam([self.log_lambda], lr=lr if dual_lr is None else dual_lr))

    @property
    def dual_lambda(self) -> torch.Tensor:
        return self.log_lambda.exp()

    def sample_skill(self, rng: np.random.Generator) -> np.ndarray:
        if self.discrete:  # centred one-hot, as in METRA
            z = np.eye(self.skill_dim, dtype=np.float32)[rng.integers(self.skill_dim)]
            return z - z.mean()
        z = rng.standard_normal(self.skill_dim).astype(np.float32)
        return z / np.linalg.norm(z)

    def default_skill(self) -> np.ndarray:
        z = np.eye(self.skill_dim, dtype=np.float32)[0]
        return z - z.mean() if self.discrete else z

    def candidate_skills(self, num: int, rng: np.random.Generator) -> np.ndarray:
        if self.discrete:
            eye = np.eye(self.skill_dim, dtype=np.float32)
            return eye - eye.mean(1, keepdims=True)
        if self.skill_dim == 2:  # evenly spaced directions cover the circle; random ones bunch up
            angles = rng.uniform(0.0, 2 * np.pi) + 2 * np.pi * np.arange(num) / num
            return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
        return super().candidate_skills(num, rng)

    def objective_terms(self, obs: torch.Tensor, next_obs: torch.Tensor, skill: torch.Tensor):
        """Per-sample displacement along z, the clipped constraint min(eps, 1 - ||dphi||^2) and
        the displacement phi(s') - phi(s) for adjacent states s, s'."""
        delta = self.phi(next_obs).float() - self.phi(obs).float()
        return (*self._terms(delta, skill), delta)

    def _terms(self, delta: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        along_z = (delta * skill).sum(-1)
        constraint = torch.clamp(1.0 - delta.pow(2).sum(-1), max=self.slack)
        return along_z, constraint

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        # The constraint concerns adjacent states, so phi is trained on one-step pairs (one
        # batched pass); the reward's s_{t+n} needs a forward pass only, without gradients.
        phi_obs, phi_next = self.phi(torch.cat([batch.obs, batch.next_obs_1step])).float().chunk(2)
        with torch.no_grad():
            phi_next_n = self.phi(batch.next_obs).float()
        delta = phi_next - phi_obs
        along_z, constraint = self._terms(delta, batch.skill)
        # On an n-step transition this telescopes to the sum of the n one-step rewards.
        reward = self.scale * ((phi_next_n - phi_obs.detach()) * batch.skill).sum(-1, keepdim=True)
        phi_loss = -(along_z + self.dual_lambda.detach() * constraint).mean()
        self.step(self.optimizer, phi_loss)
        # Dual step: lambda grows while the constraint is violated (constraint < 0), shrinks otherwise.
        dual_loss = (self.log_lambda * constraint.detach()).mean()
        self.step(self.dual_optimizer, dual_loss)
        return reward, {"metra_phi_loss": phi_loss.item(), "metra_along_z": along_z.mean().item(),
                "metra_step_norm": delta.norm(dim=-1).mean().item(), "metra_lambda": self.dual_lambda.item(),
                "metra_constraint": constraint.mean().item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        delta = self.phi(batch.next_obs).float() - self.phi(batch.obs).float()
        return self.scale * (delta * batch.skill).sum(-1, keepdim=True)
