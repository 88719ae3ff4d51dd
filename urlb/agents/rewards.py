"""Reward utilities shared by several methods: running statistics and particle entropy."""

from __future__ import annotations

import torch
from torch import nn

# How kNN distances are normalised before the clip: by nothing, or by the running mean (URLB's
# PBE with knn_rms), variance (CIC's code: the value it names moving_std is the variance) or
# standard deviation (a scale-free choice) of the distances seen so far.
DISTANCE_NORMALISERS = ("none", "mean", "var", "std")


class RunningMeanStd(nn.Module):
    """Running mean and variance (parallel Welford update) kept as buffers, so they live in
    ``state_dict`` and travel with snapshots.

    As URLB's ``utils.RMS``: mean 0, variance 1 and count ``epsilon`` at the start, and each
    batch enters with its unbiased variance (``torch.var``'s default; a single sample adds 0).
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        n = x.shape[0]
        batch_mean = x.mean(0)
        batch_var = x.var(0) if n > 1 else torch.zeros_like(batch_mean)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()


class ParticleEntropy(nn.Module):
    """Particle-based entropy reward of APT (Liu & Abbeel, 2021), as used by APT, CIC and APS.

    reward_i = log(1 + mean_{j in kNN(i)} max(d_ij / norm(d) - clip, 0)), with the k nearest
    neighbours taken within the batch (the point itself included, as in URLB) and ``norm`` the
    running statistic named by ``normaliser`` (1 for ``none``). Neighbours come from
    ``torch.cdist`` + ``topk``: no B x B x D tensor is built.
    """

    def __init__(self, knn_k: int = 12, knn_avg: bool = True, normaliser: str = "std", knn_clip: float = 0.0) -> None:
        super().__init__()
        if normaliser not in DISTANCE_NORMALISERS:
            raise ValueError(f"unknown distance normaliser {normaliser!r}; valid: {', '.join(DISTANCE_NORMALISERS)}")
        self.knn_k, self.knn_avg, self.normaliser, self.knn_clip = knn_k, knn_avg, normaliser, knn_clip
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

    def _scale(self) -> torch.Tensor | float:
        stats = self.distance_rms
        # The floor only matters before any update (running mean 0), where URLB never divides.
        return {"none": 1.0, "mean": stats.mean.clamp(min=1e-8), "var": stats.var, "std": stats.std + 1e-8}[
            self.normaliser
        ]

    @torch.no_grad()
    def forward(self, rep: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """Reward (B, 1). ``update_stats=False`` leaves the running statistics untouched
        (analysis tools)."""
        dist = self.knn_distances(rep)
        if not self.knn_avg:
            dist = dist[:, -1:]  # only the k-th neighbour
        if self.normaliser != "none":
            if update_stats:
                self.distance_rms.update(dist)
            dist = dist / self._scale()
        if self.knn_clip >= 0.0:  # URLB skips the clip for a negative knn_clip
            dist = (dist - self.knn_clip).clamp(min=0.0)
        return torch.log(1.0 + dist.mean(dim=1, keepdim=True))
