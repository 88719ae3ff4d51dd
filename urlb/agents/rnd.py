"""RND: Burda et al., "Exploration by Random Network Distillation" (2018)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.agents.rewards import RunningMeanStd
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch

OBS_NORMS = ("batch", "running")
REWARD_OBS = ("obs", "next_obs")


class RND(Plugin):
    """Random Network Distillation (Burda et al., 2018).

    A predictor regresses a frozen random target network on normalised, clipped observations;
    loss = mean squared prediction error; intrinsic reward = the per-sample error divided by the
    running std of errors. Defaults follow URLB's ``agent/rnd.py``: observations s_t normalised
    per batch (a ``BatchNorm1d`` without affine parameters in training mode: batch mean and
    biased batch variance, eps 1e-5), clipped to +-5, and the reward computed with the predictor
    after its optimiser step.
    """

    name = "rnd"
    # Pixels (URLB): RND shifts the raw frames itself, normalises them per channel, and its
    # predictor starts with the shared encoder (trained by RND's loss), its target with a copy.
    pixel_input = "frames"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        rep_dim: int = 512,
        lr: float = 1e-4,
        scale: float = 1.0,
        clip_obs: float = 5.0,
        obs_norm: str = "batch",
        reward_obs: str = "obs",
        reward_after_update: bool = True,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("RND", "obs_norm", obs_norm, OBS_NORMS)
        check_option("RND", "reward_obs", reward_obs, REWARD_OBS)
        self.scale, self.clip_obs = scale, clip_obs
        self.obs_norm, self.reward_obs, self.reward_after_update = obs_norm, reward_obs, reward_after_update
        self.obs_rms = RunningMeanStd((obs_dim,))  # used by obs_norm=running only; kept for stable snapshots
        self.error_rms = RunningMeanStd(())
        self.predictor = mlp(obs_dim, hidden_dim, rep_dim)
        self.target = mlp(obs_dim, hidden_dim, rep_dim)
        self.apply(weight_init)
        self.target.requires_grad_(False)  # the target is random and stays frozen
        self.optimizer = self.add_optimizer("optimizer", adam(self.predictor.parameters(), lr=lr))

    def use_encoder(self, encoder: nn.Module, aug: nn.Module, encoder_opt: torch.optim.Optimizer) -> None:
        if self.obs_norm != "batch":
            raise ValueError("RND obs_norm=running needs states or agent.encoder_update=critic; on frames URLB normalises per batch")
        super().use_encoder(encoder, aug, encoder_opt)
        # URLB's target copies the encoder and re-initialises it: an independent random encoder.
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_encoder.apply(weight_init)
        # URLB's RND optimiser holds the predictor's encoder too, so the encoder also takes a step
        # from it besides its own optimiser's (two Adam steps on the same gradient).
        self.optimizer.add_param_group({"params": list(encoder.parameters())})

    def _normalise(self, obs: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:  # frames: shifted, then per-channel batch statistics (BatchNorm2d)
            obs = F.batch_norm(self.aug(obs.float()), None, None, training=True, eps=1e-5)
            return obs.clamp(-self.clip_obs, self.clip_obs)
        obs = obs.flatten(1).float()
        if self.obs_norm == "batch":  # BatchNorm1d(affine=False) in training mode, without its buffers
            obs = F.batch_norm(obs, None, None, training=True, eps=1e-5)
        else:
            obs = (obs - self.obs_rms.mean) / (self.obs_rms.std + 1e-8)
        return obs.clamp(-self.clip_obs, self.clip_obs)

    def prediction_error(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-sample squared prediction error averaged over the output, shape (B, 1)."""
        x = self._normalise(obs)
        with torch.no_grad():
            target = self.target(x if self.encoder is None else self.target_encoder(x))
        prediction = self.predictor(x if self.encoder is None else self.encoder(x))
        return (prediction.float() - target.float()).pow(2).mean(-1, keepdim=True)

    def _input(self, batch: Batch) -> torch.Tensor:
        return batch.obs if self.reward_obs == "obs" else batch.next_obs

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        obs = self._input(batch)
        if self.obs_norm == "running":
            self.obs_rms.update(obs.flatten(1))
        error = self.prediction_error(obs)
        loss = error.mean()
        self.step(self.optimizer, loss, with_encoder=True)
        if self.reward_after_update:  # URLB: a second pass with the updated predictor
            with torch.no_grad():
                error = self.prediction_error(obs)
        return self._reward(error.detach(), update_stats=True), {"rnd_loss": loss.item()}

    @torch.no_grad()
    def _reward(self, error: torch.Tensor, update_stats: bool) -> torch.Tensor:
        if update_stats:
            self.error_rms.update(error)
        return self.scale * error / (self.error_rms.std + 1e-8)

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self._reward(self.prediction_error(self._input(batch)), update_stats=False)
