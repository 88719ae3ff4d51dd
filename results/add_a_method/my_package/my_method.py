"""Curiosity from a forward model's error: an ICM-sized method outside the urlb tree."""

import torch
from torch import nn

from urlb.agents.base import Plugin
from urlb.nets import mlp, weight_init


class MyAgent(Plugin):
    """reward = ||f(s, a) - s'||, the error of a forward model f trained on the same batch."""

    name = "my_method"

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 1024, lr: float = 1e-4, scale: float = 1.0):
        super().__init__(obs_dim, action_dim)
        self.scale = scale
        self.forward_net = mlp(obs_dim + action_dim, hidden_dim, obs_dim, num_hidden=1)
        self.apply(weight_init)
        self.optimizer = self.add_optimizer("optimizer", torch.optim.Adam(self.forward_net.parameters(), lr=lr))

    def error(self, batch) -> torch.Tensor:  # (B, 1)
        pred = self.forward_net(torch.cat([batch.obs, batch.action], dim=-1))
        return (batch.next_obs - pred).norm(dim=-1, keepdim=True)

    def update(self, batch, step):
        loss = self.error(batch).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return self.intrinsic_reward(batch), {"my_loss": loss.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch) -> torch.Tensor:
        return self.scale * self.error(batch)
