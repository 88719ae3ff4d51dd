"""Reward utilities shared by several methods: running statistics and particle entropy."""

from __future__ import annotations

import torch
from torch import nn

# How kNN distances are normalised before the clip: by nothing, or by the running mean (URLB's
# PBE with knn_rms), variance (CIC's code: the value it names moving_std is the variance) or
# standard deviation (a scale-free choice) of the distances seen so far.
DISTANCE_NORMALISERS = ("none", "mean", "var", "std")


class RunningMeanStd(nn.Module):
    """Running mean and variance (parallel Welford update) per seed, kept as buffers (seed
    dimension first), so they live in ``state_dict`` and travel with snapshots.

    As URLB's ``utils.RMS``: mean 0, variance 1 and count ``epsilon`` at the start, and each
    batch enters with its unbiased variance (``torch.var``'s default; a single sample adds 0).
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("mean", torch.zeros(1, *shape))
        self.register_buffer("var", torch.ones(1, *shape))
        self.register_buffer("count", torch.full((1,), epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """``x`` (S, ..., *shape): each seed's samples update that seed's statistics."""
        x = x.reshape(x.shape[0], -1, *self.shape).float()
        n = x.shape[1]
        batch_mean = x.mean(1)
        batch_var = x.var(1) if n > 1 else torch.zeros_like(batch_mean)
        count = self.count.view(-1, *(1,) * len(self.shape))
        delta = batch_mean - self.mean
        total = count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * count + batch_var * n + delta.pow(2) * count * n / total) / total)
        self.count.add_(n)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    def like(self, stat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``stat`` (S, *shape) viewed to broadcast against ``x`` (S, ..., *shape) seed by seed."""
        return stat.view(stat.shape[0], *(1,) * (x.dim() - 1 - len(self.shape)), *self.shape)


class ParticleEntropy(nn.Module):
    """Particle-based entropy reward of APT (Liu & Abbeel, 2021), as used by APT, CIC and APS.

    reward_i = log(1 + mean_{j in kNN(i)} max(d_ij / norm(d) - clip, 0)), with the k nearest
    neighbours taken within the seed's own batch (the point itself included, as in URLB) and
    ``norm`` the seed's running statistic named by ``normaliser`` (1 for ``none``). Neighbours
    come from ``torch.cdist`` + ``topk``: no B x B x D tensor is built.
    """

    def __init__(self, knn_k: int = 12, knn_avg: bool = True, normaliser: str = "std", knn_clip: float = 0.0) -> None:
        super().__init__()
        if normaliser not in DISTANCE_NORMALISERS:
            raise ValueError(f"unknown distance normaliser {normaliser!r}; valid: {', '.join(DISTANCE_NORMALISERS)}")
        self.knn_k, self.knn_avg, self.normaliser, self.knn_clip = knn_k, knn_avg, normaliser, knn_clip
        self.distance_rms = RunningMeanStd(())

    @torch.no_grad()
    def knn_distances(self, rep: torch.Tensor) -> torch.Tensor:
        """Distances (S, B, k), ascending, from each of a seed's particles (S, B, D) to its k
        nearest particles in the same seed's batch."""
        k = min(self.knn_k, rep.shape[1])
        # cdist uses matrix products for large batches; centring the batch keeps their rounding
        # error small (distances are shift-invariant) and the self-distance is exactly zero.
        rep = rep.float()
        rep = rep - rep.mean(1, keepdim=True)
        dist = torch.cdist(rep, rep)
        dist.diagonal(dim1=1, dim2=2).fill_(0.0)
        return dist.topk(k, dim=2, largest=False, sorted=True).values

    def _scale(self) -> torch.Tensor | float:
        stats = self.distance_rms
        # The floor only matters before any update (running mean 0), where URLB never divides.
        scale = {"none": None, "mean": stats.mean.clamp(min=1e-8), "var": stats.var, "std": stats.std + 1e-8}
        value = scale[self.normaliser]
        return 1.0 if value is None else value.view(-1, 1, 1)

    @torch.no_grad()
    def forward(self, rep: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        """Reward (S, B, 1) of particles (S, B, D). ``update_stats=False`` leaves the running
        statistics untouched (analysis tools)."""
        dist = self.knn_distances(rep)
        if not self.knn_avg:
            dist = dist[:, :, -1:]  # only the k-th neighbour
        if self.normaliser != "none":
            if update_stats:
                self.distance_rms.update(dist)
            dist = dist / self._scale()
        if self.knn_clip >= 0.0:  # URLB skips the clip for a negative knn_clip
            dist = (dist - self.knn_clip).clamp(min=0.0)
        return torch.log(1.0 + dist.mean(dim=2, keepdim=True))
