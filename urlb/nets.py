"""Networks of the URLB DDPG backbone: MLP, pixel Encoder, Actor, Critic, random-shift aug."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def weight_init(m: nn.Module) -> None:
    """Orthogonal init as in DrQ-v2/URLB (ReLU gain for convolutions)."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight.data)
        if m.bias is not None:
            m.bias.data.fill_(0.0)
    elif isinstance(m, nn.Conv2d):
        nn.init.orthogonal_(m.weight.data, nn.init.calculate_gain("relu"))
        if m.bias is not None:
            m.bias.data.fill_(0.0)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): several times faster per step on CPU than the
    default per-tensor loop, with the same arithmetic."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_hidden: int = 2) -> nn.Sequential:
    """``num_hidden`` ReLU layers of width ``hidden_dim`` then a linear output."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_hidden):
        layers += [nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def encoder_repr_dim(obs_shape: tuple[int, ...]) -> int:
    """Size of the encoder's flat features for (C, H, W) frames, without building one: building
    an encoder draws its initial weights from torch's random stream."""
    height, width = (obs_shape[1] - 3) // 2 + 1 - 6, (obs_shape[2] - 3) // 2 + 1 - 6  # stride 2, then 3 x (3x3)
    return 32 * height * width


class Encoder(nn.Module):
    """DrQ-v2 convolutional encoder for 84x84 stacked frames -> flat 32*35*35 features."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        assert len(obs_shape) == 3, "Encoder expects (C, H, W) pixel observations"
        self.convnet = nn.Sequential(
            nn.Conv2d(obs_shape[0], 32, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1),
            nn.ReLU(),
        )
        self.repr_dim = encoder_repr_dim(obs_shape)
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.float() / 255.0 - 0.5
        return self.convnet(obs).flatten(1)


class RandomShiftsAug(nn.Module):
    """Random shift by up to ``pad`` pixels with bilinear resampling (DrQ-v2)."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        assert h == w, "random shift expects square images"
        x = F.pad(x.float(), (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device)[:h]
        arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
        base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
        shift = torch.randint(0, 2 * self.pad + 1, (n, 1, 1, 2), device=x.device, dtype=x.dtype)
        grid = base_grid + shift * (2.0 / (h + 2 * self.pad))
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


class Actor(nn.Module):
    """Deterministic policy: trunk (Linear-LayerNorm-Tanh) then an MLP with tanh output.

    As in URLB the trunk width is ``feature_dim`` for pixels and ``hidden_dim`` for states,
    and pixel actors have one more hidden layer.
    """

    def __init__(self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        trunk_dim = feature_dim if obs_type == "pixels" else hidden_dim
        self.trunk = nn.Sequential(nn.Linear(in_dim, trunk_dim), nn.LayerNorm(trunk_dim), nn.Tanh())
        self.policy = mlp(trunk_dim, hidden_dim, action_dim, num_hidden=2 if obs_type == "pixels" else 1)
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action in [-1, 1]."""
        return torch.tanh(self.policy(self.trunk(obs)))


class Critic(nn.Module):
    """Two Q heads on a shared trunk. For states the action enters the trunk (URLB). Heads have
    ``out_dim`` outputs (1: a value; more: APS's successor features)."""

    def __init__(
        self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, out_dim: int = 1
    ) -> None:
        super().__init__()
        self.action_in_trunk = obs_type != "pixels"
        if self.action_in_trunk:
            self.trunk = nn.Sequential(nn.Linear(in_dim + action_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.Tanh())
            head_in = hidden_dim
        else:
            self.trunk = nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
            head_in = feature_dim + action_dim
        depth = 1 if self.action_in_trunk else 2
        self.q1 = mlp(head_in, hidden_dim, out_dim, num_hidden=depth)
        self.q2 = mlp(head_in, hidden_dim, out_dim, num_hidden=depth)
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.action_in_trunk:
            h = self.trunk(torch.cat([obs, action], dim=-1))
        else:
            h = torch.cat([self.trunk(obs), action], dim=-1)
        return self.q1(h), self.q2(h)
