"""APT: Liu & Abbeel, "Behavior From the Void: Unsupervised Active Pre-Training" (2021)."""

from __future__ import annotations

import torch
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.agents.rewards import DISTANCE_NORMALISERS, ParticleEntropy
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch

REPRESENTATIONS = ("icm", "state")
REWARD_OBS = ("obs", "next_obs")  # rewarded state: s_t (URLB) or s_{t+n}
ICM_NEXT = ("nstep", "one_step")  # ICM's next state: the sampled s_{t+n} (URLB) or s_{t+1}


class ICM(nn.Module):
    """Representation trained by forward and inverse dynamics (URLB's APT representation)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, rep_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, rep_dim), nn.LayerNorm(rep_dim), nn.Tanh())
        self.forward_net = mlp(rep_dim + action_dim, hidden_dim, rep_dim, num_hidden=1)
        self.inverse_net = nn.Sequential(mlp(2 * rep_dim, hidden_dim, action_dim, num_hidden=1), nn.Tanh())
        self.apply(weight_init)

    def loss(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor):
        rep, next_rep = self.trunk(obs), self.trunk(next_obs)
        forward_error = (self.forward_net(torch.cat([rep, action], -1)).float() - next_rep.float()).norm(dim=-1)
        inverse_error = (self.inverse_net(torch.cat([rep, next_rep], -1)).float() - action).norm(dim=-1)
        return forward_error.mean(), inverse_error.mean()


class APT(Plugin):
    """APT (Liu & Abbeel, 2021): reward = log(1 + mean distance to the k nearest neighbours
    in the batch) in a representation space: ICM features (``rep=icm``) or raw states.

    Defaults follow URLB's ``agent/icm_apt.py`` and ``icm_apt.yaml``: the ICM is trained on the
    sampled (s_t, a_t, s_{t+n}), the reward is the particle entropy of the ICM trunk of s_t after
    the ICM step, k=12 averaged, no distance normaliser (``knn_rms: false``; when on, distances
    are divided by their running mean), clip 0.
    """

    name = "apt"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        rep: str = "icm",
        rep_dim: int = 512,
        knn_k: int = 12,
        knn_avg: bool = True,
        knn_rms: bool = False,
        knn_rms_stat: str = "mean",
        knn_clip: float = 0.0,
        scale: float = 1.0,
        reward_obs: str = "obs",
        icm_next: str = "nstep",
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("APT", "rep", rep, REPRESENTATIONS)
        check_option("APT", "reward_obs", reward_obs, REWARD_OBS)
        check_option("APT", "icm_next", icm_next, ICM_NEXT)
        self.rep, self.scale, self.reward_obs, self.icm_next = rep, scale, reward_obs, icm_next
        self.icm = ICM(obs_dim, action_dim, hidden_dim, rep_dim) if rep == "icm" else None
        self.reads_one_step = self.icm is not None and icm_next == "one_step"
        if knn_rms_stat not in DISTANCE_NORMALISERS[1:]:
            raise ValueError(f"unknown APT knn_rms_stat={knn_rms_stat!r}; valid: {', '.join(DISTANCE_NORMALISERS[1:])}")
        self.entropy = ParticleEntropy(knn_k, knn_avg, knn_rms_stat if knn_rms else "none", knn_clip)
        if self.icm is not None:
            self.optimizer = self.add_optimizer("optimizer", adam(self.icm.parameters(), lr=lr))

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        return self.icm.trunk(obs) if self.icm is not None else obs.flatten(1).float()

    def _reward_input(self, batch: Batch) -> torch.Tensor:
        return batch.obs if self.reward_obs == "obs" else batch.next_obs

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        metrics: Metrics = {}
        if self.icm is not None:
            next_obs = batch.next_obs if self.icm_next == "nstep" else batch.next_obs_1step
            forward_error, inverse_error = self.icm.loss(batch.obs, batch.action, next_obs)
            self.step(self.optimizer, forward_error + inverse_error, with_encoder=True)
            metrics = {"icm_forward_error": forward_error.item(), "icm_inverse_error": inverse_error.item()}
        with torch.no_grad():  # after the ICM step, as URLB
            reward = self.scale * self.entropy(self.represent(self._reward_input(batch)))
        return reward, metrics

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self.scale * self.entropy(self.represent(self._reward_input(batch)), update_stats=False)
