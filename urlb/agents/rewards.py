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


# Extra candidates per row beyond k when the neighbours are preselected by matrix products.
CANDIDATE_MARGIN = 8


@torch.no_grad()
def nearest_distances(x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Distances from each row of ``x`` (B, D) to its ``k`` nearest rows of ``y`` (N, D), shape
    (B, k), ascending: the values the public code's ``torch.norm(x[:, None] - y[None], dim=-1)``
    + ``topk`` gives (equal rows exactly 0), without building its B x N x D tensor.

    The fast distance |x|^2 + |y|^2 - 2 x.y only preselects ``k + CANDIDATE_MARGIN`` candidates
    per row; their distances are then computed from differences. The preselection's rounding
    error is bounded (``err``, a worst case for a dot product of length D), and a row whose k-th
    exact distance could be beaten by a point outside its candidates is recomputed against all
    of ``y`` from differences, so the result never depends on the rounding of matrix products.
    """
    n = y.shape[0]
    approx = torch.cdist(x, y)
    kept = min(n, k + CANDIDATE_MARGIN)
    candidates = approx.topk(kept, dim=1, largest=False, sorted=True).indices
    exact = (x.unsqueeze(1) - y[candidates]).norm(dim=-1).sort(dim=1).values[:, :k]
    if kept < n:
        eps = torch.finfo(x.dtype).eps
        scale = x.pow(2).sum(1) + y.pow(2).sum(1).max()
        err = 4 * (x.shape[1] + 2) * eps * scale  # bound on the error of the squared distances
        outside = approx.gather(1, candidates[:, -1:]).squeeze(1)  # every point outside is at least this far, approx.
        unsafe = exact[:, -1].pow(2) > outside.pow(2) - err
        if bool(unsafe.any()):
            full = torch.cdist(x[unsafe], y, compute_mode="donot_use_mm_for_euclid_dist")
            exact[unsafe] = full.topk(k, dim=1, largest=False, sorted=True).values
    return exact


class ParticleEntropy(nn.Module):
    """Particle-based entropy reward of APT (Liu & Abbeel, 2021), as used by APT, CIC and APS.

    reward_i = log(1 + mean_{j in kNN(i)} max(d_ij / norm(d) - clip, 0)), with the k nearest
    neighbours taken within the batch (the point itself included, as in URLB) and ``norm`` the
    running statistic named by ``normaliser`` (1 for ``none``). Distances are the public code's
    (norms of differences: :func:`nearest_distances`), without its B x B x D tensor.
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
        rep = rep.float()
        return nearest_distances(rep, rep, min(self.knn_k, rep.shape[0]))

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
