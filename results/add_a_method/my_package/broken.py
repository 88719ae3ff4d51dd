"""Variants of my_method.MyAgent that each break one rule of the plugin contract (for the checker)."""

import numpy as np
import torch

from my_package.my_method import MyAgent


class ShapeBug(MyAgent):
    """The forward model is fed the state alone: its first layer expects state and action."""

    def error(self, batch):
        return (batch.next_obs - self.forward_net(batch.obs)).norm(dim=-1, keepdim=True)


class NanLoss(MyAgent):
    """A loss that is NaN (e.g. log of a negative number)."""

    def error(self, batch):
        return super().error(batch) * torch.log(torch.tensor(-1.0))


class MissingKey(MyAgent):
    """A constructor argument without a default that the config file does not give."""

    def __init__(self, obs_dim, action_dim, rep_dim, hidden_dim=1024, lr=1e-4, scale=1.0):
        super().__init__(obs_dim, action_dim, hidden_dim, lr, scale)


class FlatReward(MyAgent):
    """The reward comes back shaped (B,) instead of (B, 1)."""

    @torch.no_grad()
    def intrinsic_reward(self, batch):
        return super().intrinsic_reward(batch).squeeze(-1)


class MutatesBatch(MyAgent):
    """Normalises the observations in place: the backbone's batch changes too."""

    def update(self, batch, step):
        batch.obs.sub_(batch.obs.mean(0))
        return super().update(batch, step)


class NumpyNoise(MyAgent):
    """Draws from numpy's global generator, which no seed of the run controls."""

    def update(self, batch, step):
        reward, metrics = super().update(batch, step)
        return reward * (1.0 + 0.1 * float(np.random.standard_normal())), metrics
