"""BeCL: Yang et al., "Behavior Contrastive Learning for Unsupervised Skill Discovery" (ICML 2023)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, OneHotSkills, Plugin
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch


class BehaviorEncoder(nn.Module):
    """BeCL's network: a state embedding followed by a projection head, both to ``feature_dim``."""

    def __init__(self, obs_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.embed = mlp(obs_dim, hidden_dim, feature_dim)
        self.project_head = mlp(feature_dim, hidden_dim, feature_dim, num_hidden=1)
        self.apply(weight_init)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.project_head(self.embed(state))


def behavior_nce_loss(features: torch.Tensor, skill: torch.Tensor, temperature: float) -> torch.Tensor:
    """BeCL's per-sample contrastive loss (B, 1) of features (B, D) under one-hot skills (B, K).

    As ``BECLAgent.compute_info_nce_loss``: cosine similarities / temperature to the other B-1
    samples (the diagonal removed), shifted by the row maximum and exponentiated; the positive
    is the first other sample with the same skill (the first other sample when there is none,
    a quirk kept); loss = -log(positive / (sum over all B-1 + 1e-6) + 1e-6)."""
    labels = skill.argmax(dim=-1)
    same = (labels[None, :] == labels[:, None]).long()
    features = F.normalize(features, dim=1)
    similarity = features @ features.T
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=features.device)
    same = same[off_diagonal].view(len(labels), -1)
    similarity = similarity[off_diagonal].view(len(labels), -1) / temperature
    similarity = torch.exp(similarity - similarity.max(dim=1, keepdim=True).values)
    positive_index = same.argmax(dim=-1, keepdim=True)
    positives = similarity.gather(-1, positive_index)
    negatives = similarity.sum(dim=-1, keepdim=True)
    eps = 1e-6
    return -torch.log(positives / (negatives + eps) + eps)


class BeCL(OneHotSkills, Plugin):
    """BeCL (Yang et al., 2023): a contrastive loss that pulls together the next-state
    embeddings of transitions with the same one-hot skill; reward = exp(-loss) per sample.

    As ``agent/becl.py``: the network is trained on s' = s_{t+n} of ``contrastive_update_rate``
    fresh batches per update (``batches_per_update``), and the last batch, the one the critic and
    actor learn from, is rewarded with the network after those steps. Fine-tuning acts with one
    skill held throughout: a random one-hot (``finetune_skill=-1``, the public ``skill: -1``) or
    the one-hot of that index."""

    name = "becl"
    # Pixels (BeCL's code): each of the update's batches is shifted and encoded with the shared
    # encoder as it stands then, and the encoder steps with every contrastive step.
    pixel_input = "frames"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        skill_dim: int = 16,
        update_skill_every_step: int = 50,
        contrastive_update_rate: int = 3,
        temperature: float = 0.5,
        finetune_skill: int = -1,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        if contrastive_update_rate < 1:
            raise ValueError(f"BeCL contrastive_update_rate={contrastive_update_rate} must be at least 1")
        if not -1 <= finetune_skill < skill_dim:
            raise ValueError(f"BeCL finetune_skill={finetune_skill} must be -1 (random) or in [0, {skill_dim})")
        self.skill_dim, self.update_skill_every_step = skill_dim, update_skill_every_step
        self.batches_per_update, self.temperature = contrastive_update_rate, temperature
        self.finetune_skill = finetune_skill
        self.finetune_skill_selection = "random" if finetune_skill < 0 else "fixed"
        self.becl = BehaviorEncoder(obs_dim, skill_dim, hidden_dim)
        self.optimizer = self.add_optimizer("optimizer", adam(self.becl.parameters(), lr=lr))

    def default_skill(self) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)[max(self.finetune_skill, 0)]

    def contrastive_loss(self, next_obs: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        return behavior_nce_loss(self.becl(next_obs), skill, self.temperature)

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        """``batch`` holds ``batches_per_update`` batches one after another; the reward (B, 1)
        is that of the last."""
        for part in batch_parts(batch, self.batches_per_update):
            if self.encoder is not None:
                part = self._encode(part)
            loss = self.contrastive_loss(part.next_obs, part.skill).mean()
            self.step(self.optimizer, loss, with_encoder=True)
        self._last_features = (part.obs.detach(), part.next_obs.detach())
        with torch.no_grad():
            reward = torch.exp(-self.contrastive_loss(part.next_obs, part.skill))
        return reward, {"becl_contrastive_loss": loss.detach(), "becl_contrastive_reward": reward.mean()}

    def _encode(self, part: Batch) -> Batch:
        with torch.no_grad():
            obs = self.encoder(self.aug(part.obs.float()))
        return part._replace(obs=obs, next_obs=self.encoder(self.aug(part.next_obs.float())))

    def critic_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The last batch's features, encoded before the last step (BeCL's code)."""
        return self._last_features

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        if self.encoder is not None:
            batch = self._encode(batch)
        return torch.exp(-self.contrastive_loss(batch.next_obs, batch.skill))


def batch_parts(batch: Batch, parts: int) -> list[Batch]:
    """Split a batch of ``parts`` consecutive batches into them (rows in order)."""
    if parts == 1:
        return [batch]
    if len(batch.obs) % parts:
        raise ValueError(f"a batch of {len(batch.obs)} rows does not split into {parts} batches")
    size = len(batch.obs) // parts
    return [Batch(*(None if t is None else t[i * size : (i + 1) * size] for t in batch)) for i in range(parts)]
