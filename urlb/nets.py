"""Networks of the URLB DDPG backbone: MLP, pixel Encoder, Actor, Critic, random-shift aug."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from urlb.seeds import SeedStreams


class SeedLinear(nn.Module):
    """``nn.Linear`` with a leading seed dimension: weight (S, out, in), bias (S, out); input
    (S, ..., in) -> (S, ..., out), seed i's rows through seed i's weights (one batched matrix
    product). Built with S = 1, initialised as ``nn.Linear`` is (same random draws); several
    seeds are joined by :func:`urlb.seeds.stack_seeds`. The state_dict slice of one seed is an
    ``nn.Linear``'s."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        reference = nn.Linear(in_features, out_features, bias=bias)  # nn.Linear's own init draws
        self.weight = nn.Parameter(reference.weight.data.unsqueeze(0))
        self.bias = nn.Parameter(reference.bias.data.unsqueeze(0)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[0] == 1:  # one seed: the plain kernel, bit for bit a single-seed run's
            bias = None if self.bias is None else self.bias[0]
            return F.linear(x[0], self.weight[0], bias).unsqueeze(0)
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        if self.bias is None:
            out = torch.bmm(flat, self.weight.transpose(1, 2))
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
        return out.reshape(*x.shape[:-1], self.out_features)


class SeedLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the last dimension with per-seed affine parameters (S, D)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(1, dim))
        self.bias = nn.Parameter(torch.zeros(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[0] == 1:
            return F.layer_norm(x[0], (self.dim,), self.weight[0], self.bias[0], self.eps).unsqueeze(0)
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (self.dim,)
        normed = F.layer_norm(x, (self.dim,), None, None, self.eps)
        return torch.addcmul(self.bias.view(shape), normed, self.weight.view(shape))


class SeedConv2d(nn.Module):
    """``nn.Conv2d`` (no padding) with a seed dimension: input (S, B, C, H, W). A convolution
    on a batch of images is compute-bound, so seeds run one after the other: the same kernel a
    single-seed run calls, and no reordering of its sums."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        reference = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride)
        self.weight = nn.Parameter(reference.weight.data.unsqueeze(0))
        self.bias = nn.Parameter(reference.bias.data.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.conv2d(x_s, w, b, stride=self.stride) for x_s, w, b in zip(x, self.weight, self.bias)])


def weight_init(m: nn.Module) -> None:
    """Orthogonal init as in DrQ-v2/URLB (ReLU gain for convolutions), per seed."""
    if isinstance(m, SeedLinear):
        for w in m.weight.data:
            nn.init.orthogonal_(w)
        if m.bias is not None:
            m.bias.data.fill_(0.0)
    elif isinstance(m, SeedConv2d):
        for w in m.weight.data:
            nn.init.orthogonal_(w, nn.init.calculate_gain("relu"))
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
        layers += [SeedLinear(dim, hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(SeedLinear(dim, out_dim))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """DrQ-v2 convolutional encoder for 84x84 stacked frames -> flat 32*35*35 features."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        assert len(obs_shape) == 3, "Encoder expects (C, H, W) pixel observations"
        self.convnet = nn.Sequential(
            SeedConv2d(obs_shape[0], 32, 3, stride=2),
            nn.ReLU(),
            SeedConv2d(32, 32, 3, stride=1),
            nn.ReLU(),
            SeedConv2d(32, 32, 3, stride=1),
            nn.ReLU(),
            SeedConv2d(32, 32, 3, stride=1),
            nn.ReLU(),
        )
        with torch.no_grad():
            self.repr_dim = int(self.convnet(torch.zeros(1, 1, *obs_shape)).numel())
        self.apply(weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(S, B, C, H, W) pixels -> (S, B, features)."""
        obs = obs.float() / 255.0 - 0.5
        return self.convnet(obs).flatten(2)


class RandomShiftsAug(nn.Module):
    """Random shift by up to ``pad`` pixels with bilinear resampling (DrQ-v2)."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor, streams: SeedStreams) -> torch.Tensor:
        """(S, B, C, H, W) -> shifted float images; each seed's shifts come from its own stream."""
        seeds, n, _, h, w = x.shape
        assert h == w, "random shift expects square images"
        x = F.pad(x.flatten(0, 1).float(), (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device)[:h]
        arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
        base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(seeds * n, 1, 1, 1)
        shift = streams.randint(2 * self.pad + 1, n, 1, 1, 2, dtype=x.dtype).flatten(0, 1)
        grid = base_grid + shift * (2.0 / (h + 2 * self.pad))
        out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
        return out.reshape(seeds, n, *out.shape[1:])


class Actor(nn.Module):
    """Deterministic policy: trunk (Linear-LayerNorm-Tanh) then an MLP with tanh output.

    As in URLB the trunk width is ``feature_dim`` for pixels and ``hidden_dim`` for states,
    and pixel actors have one more hidden layer.
    """

    def __init__(self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        trunk_dim = feature_dim if obs_type == "pixels" else hidden_dim
        self.trunk = nn.Sequential(SeedLinear(in_dim, trunk_dim), SeedLayerNorm(trunk_dim), nn.Tanh())
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
            self.trunk = nn.Sequential(
                SeedLinear(in_dim + action_dim, hidden_dim), SeedLayerNorm(hidden_dim), nn.Tanh()
            )
            head_in = hidden_dim
        else:
            self.trunk = nn.Sequential(SeedLinear(in_dim, feature_dim), SeedLayerNorm(feature_dim), nn.Tanh())
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
