"""RND: Burda et al., "Exploration by Random Network Distillation" (2018)."""

from __future__ import annotations

import torch

from urlb.nets import adam, mlp, weight_init
from urlb.agents.base import Metrics, Plugin
from urlb.agents.rewards import RunningMeanStd
from urlb.replay import Batch


class RND(Plugin):
    """Random Network Distillation (Burda et al., 2018).

    A predictor regresses a frozen random target network on normalised observations;
    intrinsic reward = prediction error / its running std (URLB's settings).
    """

    name = "rnd"

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 1024, rep_dim: int = 512,
                 lr: float = 1e-4, scale: float = 1.0, clip_obs: float = 5.0) -> None:
        super().__init__(obs_dim, action_dim)
        self.scale, self.clip_obs = scale, clip_obs
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.error_rms = RunningMeanStd(())
        self.predictor = mlp(obs_dim, hidden_dim, rep_dim)
        self.target = mlp(obs_dim, hidden_dim, rep_dim)
        self.apply(weight_init)
        self.target.requires_grad_(False)  # the target is random and stays frozen
        self.optimizer = self.add_optimizer("optimizer", adam(self.predictor.parameters(), lr=lr))

    def _normalise(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.flatten(1).float()
        return ((obs - self.obs_rms.mean) / (self.obs_rms.std + 1e-8)).clamp(-self.clip_obs, self.clip_obs)

    def prediction_error(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-sample squared prediction error, shape (B, 1)."""
        x = self._normalise(obs)
        with torch.no_grad():
            target = self.target(x)
        return (self.predictor(x).float() - target.float()).pow(2).mean(-1, keepdim=True)

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        self.obs_rms.update(batch.next_obs.flatten(1))
        error = self.prediction_error(batch.next_obs)
        loss = error.mean()
        self.step(self.optimizer, loss)
        return self._reward(error.detach(), update_stats=True), {"rnd_loss": loss.item()}

    @torch.no_grad()
    def _reward(self, error: torch.Tensor, update_stats: bool) -> torch.Tensor:
        if update_stats:
            self.error_rms.update(error)
        return self.scale * error / (self.error_rms.std + 1e-8)

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self._reward(self.prediction_error(batch.next_obs), update_stats=False)
