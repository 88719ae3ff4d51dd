"""ICM: Pathak et al., "Curiosity-driven Exploration by Self-supervised Prediction" (2017)."""

from __future__ import annotations

import torch
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch

# Which later state the dynamics models pair with (s_t, a_t): URLB's n-step next_obs, or the
# state one step later (the paper's one-step model).
TRANSITIONS = ("nstep", "1step")


def successor(batch: Batch, transition: str) -> torch.Tensor:
    """The state a forward model predicts from (obs, action)."""
    return batch.next_obs if transition == "nstep" else batch.next_obs_1step


class ICM(Plugin):
    """ICM (Pathak et al., 2017) as in URLB: forward and inverse dynamics models on the state;
    reward = log(1 + icm_scale * ||f(s, a) - s'||), the forward model's prediction error."""

    name = "icm"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        icm_scale: float = 1.0,
        transition: str = "nstep",
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("ICM", "transition", transition, TRANSITIONS)
        self.icm_scale, self.transition = icm_scale, transition
        self.reads_one_step = transition == "1step"
        self.forward_net = mlp(obs_dim + action_dim, hidden_dim, obs_dim, num_hidden=1)
        self.inverse_net = nn.Sequential(mlp(2 * obs_dim, hidden_dim, action_dim, num_hidden=1), nn.Tanh())
        self.apply(weight_init)
        self.optimizer = self.add_optimizer("optimizer", adam(self.parameters(), lr=lr))

    def forward_error(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """||next_obs - f(obs, action)||_2 per sample, shape (B, 1)."""
        pred = self.forward_net(torch.cat([obs, action], dim=-1)).float()
        return (next_obs.float() - pred).norm(dim=-1, keepdim=True)

    def inverse_error(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """||action - g(obs, next_obs)||_2 per sample, shape (B, 1)."""
        pred = self.inverse_net(torch.cat([obs, next_obs], dim=-1)).float()
        return (action.float() - pred).norm(dim=-1, keepdim=True)

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        next_obs = successor(batch, self.transition)
        forward_error = self.forward_error(batch.obs, batch.action, next_obs)
        inverse_error = self.inverse_error(batch.obs, batch.action, next_obs)
        loss = forward_error.mean() + inverse_error.mean()
        self.step(self.optimizer, loss, with_encoder=True)
        # URLB rewards with the forward model after this step.
        reward = self.intrinsic_reward(batch)
        return reward, {
            "icm_loss": loss.item(),
            "icm_forward_error": forward_error.mean().item(),
            "icm_inverse_error": inverse_error.mean().item(),
        }

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        error = self.forward_error(batch.obs, batch.action, successor(batch, self.transition))
        return torch.log(1.0 + self.icm_scale * error)
