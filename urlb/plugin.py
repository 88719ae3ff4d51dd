"""The plugin contract: what a pre-training method adds to the shared DDPG backbone.

A plugin owns its networks and optimiser, trains them in ``update`` and relabels sampled
transitions with ``intrinsic_reward``; it never touches the actor or critic. Skill methods
also declare a skill space: the backbone concatenates the skill to the observation features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from urlb.replay import Batch


class RunningMeanStd(nn.Module):
    """Running mean and variance (parallel Welford update) kept as buffers, so they live in
    ``state_dict`` and travel with snapshots."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()


class Plugin(nn.Module):
    """Base class of pre-training methods. Subclasses set ``skill_dim`` (0: no skill)."""

    name: str = "plugin"
    skill_dim: int = 0
    # Steps between skill resamples during pre-training (skill methods only).
    update_skill_every_step: int = 50

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim

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

    def remember(self, batch: Batch, **tensors: torch.Tensor) -> None:
        """Keep tensors computed by ``update`` so ``intrinsic_reward`` on the same batch reuses
        them instead of running the network again (they come from before the optimiser step)."""
        self._memo_key = batch.next_obs
        self._memo = {k: v.detach() for k, v in tensors.items()}

    def recall(self, batch: Batch, name: str) -> torch.Tensor | None:
        """A tensor kept by ``remember`` for this very batch, else None."""
        if getattr(self, "_memo_key", None) is batch.next_obs:
            return self._memo.get(name)
        return None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser the plugin owns, by attribute name (saved in checkpoints)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    # --- learning ---
    def update(self, batch: Batch, step: int) -> dict[str, float]:
        """Train the plugin's own networks on a batch; return metrics."""
        raise NotImplementedError

    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """Reward of shape (B, 1) for the batch's transitions, without gradients."""
        raise NotImplementedError


class ParticleEntropy(nn.Module):
    """Particle-based entropy reward of APT (Liu & Abbeel, 2021), as used by APT and CIC.

    reward_i = log(1 + mean_{j in kNN(i)} max(d_ij / running_std(d) - clip, 0)), with the k
    nearest neighbours taken within the batch (the point itself included, as in URLB).
    Neighbours come from ``torch.cdist`` + ``topk``: no B x B x D tensor is built.
    """

    def __init__(self, knn_k: int = 12, knn_avg: bool = True, knn_rms: bool = True, knn_clip: float = 0.0) -> None:
        super().__init__()
        self.knn_k, self.knn_avg, self.knn_rms, self.knn_clip = knn_k, knn_avg, knn_rms, knn_clip
        self.distance_rms = RunningMeanStd(())

    @torch.no_grad()
    def knn_distances(self, rep: torch.Tensor) -> torch.Tensor:
        """Distances to the k nearest particles in the batch, shape (B, k), ascending."""
        k = min(self.knn_k, rep.shape[0])
        # cdist uses matrix products for large batches; centring the batch keeps their rounding
        # error small (distances are shift-invariant) and the self-distance is exactly zero.
        rep = rep.float()
        rep = rep - rep.mean(0, keepdim=True)
        dist = torch.cdist(rep, rep)
        dist.fill_diagonal_(0.0)
        return dist.topk(k, dim=1, largest=False, sorted=True).values

    @torch.no_grad()
    def forward(self, rep: torch.Tensor) -> torch.Tensor:
        dist = self.knn_distances(rep)
        if not self.knn_avg:
            dist = dist[:, -1:]  # only the k-th neighbour
        if self.knn_rms:
            self.distance_rms.update(dist)
            dist = dist / (self.distance_rms.std + 1e-8)
        dist = (dist - self.knn_clip).clamp(min=0.0)
        return torch.log(1.0 + dist.mean(dim=1, keepdim=True))
