"""RND: Burda et al., "Exploration by Random Network Distillation" (2018)."""

from __future__ import annotations

import torch

from urlb.nets import adam, mlp, weight_init
from urlb.plugin import Plugin, RunningMeanStd
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
        self.optimizer = adam(self.predictor.parameters(), lr=lr)

    def _normalise(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.flatten(1).float()
        return ((obs - self.obs_rms.mean) / (self.obs_rms.std + 1e-8)).clamp(-self.clip_obs, self.clip_obs)

    def prediction_error(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-sample squared prediction error, shape (B, 1)."""
        x = self._normalise(obs)
        with torch.no_grad():
            target = self.target(x)
        return (self.predictor(x).float() - target.float()).pow(2).mean(-1, keepdim=True)

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        self.obs_rms.update(batch.next_obs.flatten(1))
        error = self.prediction_error(batch.next_obs)
        loss = error.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.remember(batch, error=error)
        return {"rnd_loss": loss.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        error = self.recall(batch, "error")
        if error is None:
            error = self.prediction_error(batch.next_obs)
        self.error_rms.update(error)
        return self.scale * error / (self.error_rms.std + 1e-8)
