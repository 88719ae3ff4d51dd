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
from urlb.seeds import seed_mean

NCE_LOSSES = ("cic", "full")


class CIC(Plugin):
    """CIC (Laskin et al., 2022): a contrastive (NCE) loss between the skill embedding and
    the transition embedding g(f(s), f(s')) with temperature 0.5; intrinsic reward = particle
    entropy of the state embedding f(s_{t+n}). Defaults follow CIC's ``agent/cic.py``: its NCE
    denominator, 16 averaged neighbours divided by the running variance of distances, clip
    5e-4, and the reward computed with f after the optimiser step."""

    name = "cic"
    finetune_skill_selection = "grid"  # the paper sweeps candidate skills during the seed frames

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
        (columns) of a seed's batch, (S, B, B), plus the next-state embeddings f(s') (S, B, D)
        (reused by the reward)."""
        # one batched pass of f over s and s' (concatenated along the batch, within each seed)
        state, next_state = self.state_net(torch.cat([obs, next_obs], dim=1)).chunk(2, dim=1)
        query = F.normalize(self.skill_net(skill), dim=-1)
        key = F.normalize(self.pred_net(torch.cat([state, next_state], dim=-1)), dim=-1)
        # one seed: the plain matrix product (a batched one rounds its backward differently)
        logits = (query[0] @ key[0].T)[None] if query.shape[0] == 1 else query @ key.transpose(1, 2)
        return logits / self.temperature, next_state

    def contrastive_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-seed NCE loss (S,) of each skill's own transition against the seed's batch
        (``logits`` (S, B, B)).

        ``nce=cic`` (CIC's code): denominator = sum_j exp(logit_ij) - e^{1/T} (the largest value
        the positive can take), clamped at 1e-6, and loss_i = -log(exp(logit_ii) / (denominator +
        1e-6)). ``nce=full`` (the paper's NCE): cross-entropy over all transitions.
        """
        seeds, batch = logits.shape[:2]
        if self.nce == "full":
            labels = torch.arange(batch, device=logits.device)
            if seeds == 1:  # one seed: the plain kernel, bit for bit a single-seed run's
                return F.cross_entropy(logits[0], labels)[None]
            per_pair = F.cross_entropy(logits.flatten(0, 1), labels.repeat(seeds), reduction="none")
            return per_pair.view(seeds, batch).mean(1)
        eps = 1e-6
        negatives = (logits.exp().sum(dim=-1) - math.exp(1.0 / self.temperature)).clamp(min=eps)
        positives = logits.diagonal(dim1=1, dim2=2).exp()
        return seed_mean(-torch.log(positives / (negatives + eps)))

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        logits, next_state = self.contrastive_logits(batch.obs, batch.next_obs, batch.skill)
        loss = self.contrastive_loss(logits)
        self.step(self.optimizer, loss)
        if self.reward_after_update:  # CIC: the reward uses the state network after its step
            with torch.no_grad():
                next_state = self.state_net(batch.next_obs)
        reward = self.scale * self.entropy(next_state.detach())
        labels = torch.arange(logits.shape[1], device=logits.device)
        accuracy = seed_mean((logits.detach().argmax(-1) == labels).float())
        return reward, {"cic_contrastive_loss": loss.detach(), "cic_logits_accuracy": accuracy}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self.scale * self.entropy(self.state_net(batch.next_obs), update_stats=False)
