"""CIC: Laskin et al., "CIC: Contrastive Intrinsic Control for Unsupervised Skill
Discovery" (2022)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.agents.rewards import DISTANCE_NORMALISERS, ParticleEntropy
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch

NCE_LOSSES = ("cic", "full")


class CIC(Plugin):
    """CIC (Laskin et al., 2022): a contrastive (NCE) loss between the skill embedding and
    the transition embedding g(f(s), f(s')) with temperature 0.5; intrinsic reward = particle
    entropy of the state embedding f(s_{t+n}). Defaults follow CIC's ``agent/cic.py``: its NCE
    denominator, 16 averaged neighbours divided by the running variance of distances, clip
    5e-4, and the reward computed with f after the optimiser step."""

    name = "cic"
    finetune_skill_selection = "grid"  # the paper sweeps candidate skills during the seed frames
    encoder_grad = ()  # pixels: CIC's code encodes without gradient, so its encoder keeps its initial weights

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        skill_dim: int = 64,
        update_skill_every_step: int = 50,
        temperature: float = 0.5,
        project_skill: bool = True,
        knn_k: int = 16,
        knn_avg: bool = True,
        knn_rms: bool = True,
        knn_rms_stat: str = "var",
        knn_clip: float = 0.0005,
        scale: float = 1.0,
        nce: str = "cic",
        reward_after_update: bool = True,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        self.skill_dim, self.update_skill_every_step = skill_dim, update_skill_every_step
        check_option("CIC", "nce", nce, NCE_LOSSES)
        self.temperature, self.scale, self.nce, self.reward_after_update = temperature, scale, nce, reward_after_update
        self.state_net = mlp(obs_dim, hidden_dim, skill_dim)  # f: state -> embedding
        self.pred_net = mlp(2 * skill_dim, hidden_dim, skill_dim)  # g: (f(s), f(s')) -> transition key
        self.skill_net = mlp(skill_dim, hidden_dim, skill_dim) if project_skill else nn.Identity()
        self.apply(weight_init)
        if knn_rms_stat not in DISTANCE_NORMALISERS[1:]:
            raise ValueError(f"unknown CIC knn_rms_stat={knn_rms_stat!r}; valid: {', '.join(DISTANCE_NORMALISERS[1:])}")
        self.entropy = ParticleEntropy(knn_k, knn_avg, knn_rms_stat if knn_rms else "none", knn_clip)
        self.optimizer = self.add_optimizer("optimizer", adam(self.parameters(), lr=lr))

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
        """NCE loss of each skill's own transition against the batch.

        ``nce=cic`` (CIC's code): denominator = sum_j exp(logit_ij) - e^{1/T} (the largest value
        the positive can take), clamped at 1e-6, and loss_i = -log(exp(logit_ii) / (denominator +
        1e-6)). ``nce=full`` (the paper's NCE): cross-entropy over all transitions.
        """
        labels = torch.arange(logits.shape[0], device=logits.device)
        if self.nce == "full":
            return F.cross_entropy(logits, labels)
        eps = 1e-6
        negatives = (logits.exp().sum(dim=1) - math.exp(1.0 / self.temperature)).clamp(min=eps)
        positives = logits.diagonal().exp()
        return -torch.log(positives / (negatives + eps)).mean()

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        logits, next_state = self.contrastive_logits(batch.obs, batch.next_obs, batch.skill)
        loss = self.contrastive_loss(logits)
        self.step(self.optimizer, loss)
        if self.reward_after_update:  # CIC: the reward uses the state network after its step
            with torch.no_grad():
                next_state = self.state_net(batch.next_obs)
        reward = self.scale * self.entropy(next_state.detach())
        accuracy = (logits.argmax(1) == torch.arange(logits.shape[0], device=logits.device)).float().mean()
        return reward, {"cic_contrastive_loss": loss.item(), "cic_logits_accuracy": accuracy.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self.scale * self.entropy(self.state_net(batch.next_obs), update_stats=False)
