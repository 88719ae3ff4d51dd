"""CIC: Laskin et al., "CIC: Contrastive Intrinsic Control for Unsupervised Skill
Discovery" (2022)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from urlb.nets import adam, mlp, weight_init
from urlb.plugin import ParticleEntropy, Plugin
from urlb.replay import Batch


class CIC(Plugin):
    """CIC (Laskin et al., 2022): a contrastive (NCE) loss between the skill embedding and
    the transition embedding g(f(s), f(s')) with temperature 0.5; intrinsic reward = particle
    entropy (averaged kNN, running-std normalised) of the state embedding f(s')."""

    name = "cic"

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 1024, lr: float = 1e-4,
                 skill_dim: int = 64, update_skill_every_step: int = 50, temperature: float = 0.5,
                 project_skill: bool = True, knn_k: int = 16, knn_avg: bool = True, knn_rms: bool = True,
                 knn_clip: float = 0.0005, scale: float = 1.0) -> None:
        super().__init__(obs_dim, action_dim)
        self.skill_dim, self.update_skill_every_step = skill_dim, update_skill_every_step
        self.temperature, self.scale = temperature, scale
        self.state_net = mlp(obs_dim, hidden_dim, skill_dim)  # f: state -> embedding
        self.pred_net = mlp(2 * skill_dim, hidden_dim, skill_dim)  # g: (f(s), f(s')) -> transition key
        self.skill_net = mlp(skill_dim, hidden_dim, skill_dim) if project_skill else nn.Identity()
        self.apply(weight_init)
        self.entropy = ParticleEntropy(knn_k, knn_avg, knn_rms, knn_clip)
        self.optimizer = adam(self.parameters(), lr=lr)

    def sample_skill(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.0, 1.0, self.skill_dim).astype(np.float32)

    def default_skill(self) -> np.ndarray:
        # The public CIC code fine-tunes with this fixed skill.
        return np.full(self.skill_dim, 0.5, dtype=np.float32)

    def contrastive_logits(self, obs: torch.Tensor, next_obs: torch.Tensor, skill: torch.Tensor):
        """Cosine similarities / temperature between every skill (rows) and every transition
        (columns), plus the next-state embeddings f(s') (reused by the reward)."""
        state, next_state = self.state_net(torch.cat([obs, next_obs])).chunk(2)  # one batched pass
        query = F.normalize(self.skill_net(skill), dim=1)
        key = F.normalize(self.pred_net(torch.cat([state, next_state], dim=1)), dim=1)
        return query @ key.T / self.temperature, next_state

    def contrastive_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """NCE: -log softmax of each skill's own transition against all transitions in the batch.

        The public code instead subtracts exp(1/T) from the denominator as an approximate
        removal of the positive; here the denominator holds every transition, as in the paper.
        """
        return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        logits, next_state = self.contrastive_logits(batch.obs, batch.next_obs, batch.skill)
        loss = self.contrastive_loss(logits)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.remember(batch, next_state=next_state)
        accuracy = (logits.argmax(1) == torch.arange(logits.shape[0], device=logits.device)).float().mean()
        return {"cic_contrastive_loss": loss.item(), "cic_logits_accuracy": accuracy.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        next_state = self.recall(batch, "next_state")
        if next_state is None:
            next_state = self.state_net(batch.next_obs)
        return self.scale * self.entropy(next_state)
