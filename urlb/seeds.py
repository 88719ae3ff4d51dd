"""The seed dimension: several seeds of one configuration trained side by side in one process.

Every network parameter, buffer and batch tensor of an agent has a leading seed dimension S
(S = 1 for an ordinary single-seed run). An agent for seeds [s1, ..., sS] is built as S
single-seed agents, each constructed after ``torch.manual_seed(s)`` exactly as a single-seed run
builds it, then stacked along that dimension (:func:`stack_seeds`): one set of batched kernels
and one optimiser step serve all seeds. Losses are per-seed vectors (S,) and are summed before
``backward``; seeds share no parameter, so each seed's gradient is the one its own loss gives,
and Adam (element-wise) then takes exactly the step S separate optimisers would take.

Snapshots and checkpoints stay per seed and keep the single-seed layout: :func:`seed_state`
takes a seed's slice, :func:`load_seed_state` writes one back, so a file written by a
multi-seed run loads into a single-seed run and the other way round.

Randomness is per seed too: :class:`SeedStreams` holds one torch generator per seed. A
single-seed run uses torch's default generator (seeded by the run's seed), so its draws are the
ones it made before the seed dimension existed.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn


def default_generator(device: torch.device) -> torch.Generator:
    """torch's global generator for ``device`` (the one ``torch.manual_seed`` seeds)."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator


class SeedStreams:
    """One random stream per seed; every random draw of an update or an action goes through it,
    so a seed's numbers do not depend on which other seeds share the process."""

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> None:
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        if len(self.seeds) == 1:
            self.generators = [default_generator(self.device)]
        else:
            self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal draws of ``shape`` for each seed: (S, *shape)."""
        return torch.stack([torch.randn(shape, generator=g, device=self.device) for g in self.generators])

    def randint(self, high: int, *shape: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """Uniform integers in [0, high) of ``shape`` for each seed: (S, *shape)."""
        return torch.stack(
            [torch.randint(0, high, shape, generator=g, device=self.device, dtype=dtype) for g in self.generators]
        )

    def multinomial(self, prob: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``torch.multinomial`` of each seed's rows of ``prob`` (S, R, N) with its own stream."""
        return torch.stack([torch.multinomial(p, num_samples, generator=g) for p, g in zip(prob, self.generators)])

    def get_state(self, index: int) -> torch.Tensor:
        return self.generators[index].get_state()

    def set_state(self, index: int, state: torch.Tensor) -> None:
        self.generators[index].set_state(state)


def seed_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over everything but the seed dimension: (S, ...) -> (S,), a per-seed loss."""
    return x.reshape(x.shape[0], -1).mean(1)


def stack_seeds(modules: Sequence[nn.Module]) -> nn.Module:
    """One module holding ``modules`` (single-seed, same architecture) side by side: a copy of
    the first whose parameters and buffers (non-persistent ones included) are the concatenation
    of all along dimension 0.
    Optimisers the module holds follow their (copied) parameters and start empty."""
    if len(modules) == 1:
        return modules[0]
    combined = copy.deepcopy(modules[0])
    states = [m.state_dict(keep_vars=True) for m in modules]
    for name, tensor in combined.state_dict(keep_vars=True).items():
        stacked = torch.cat([s[name].detach() for s in states])
        if isinstance(tensor, nn.Parameter):
            tensor.data = stacked
        else:
            _set_buffer(combined, name, stacked)
    # Non-persistent buffers (outside state_dict, e.g. APS's phi as initialised) are per seed too.
    persistent = set(states[0])
    others = [dict(m.named_buffers()) for m in modules]
    for name, _ in list(combined.named_buffers()):
        if name not in persistent:
            _set_buffer(combined, name, torch.cat([o[name].detach() for o in others]))
    return combined


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    owner_path, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_path) if owner_path else module
    owner._buffers[attr] = value


def seed_state(state: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Seed ``index``'s slice of a stacked ``state_dict``: the single-seed layout."""
    return {k: v[index].clone() for k, v in state.items()}


@torch.no_grad()
def load_seed_state(module: nn.Module, index: int, state: dict[str, torch.Tensor]) -> None:
    """Write a single-seed ``state_dict`` into seed ``index`` of ``module``; a key or shape that
    does not fit is a clear error."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"state does not fit {type(module).__name__}: missing {missing}, unexpected {unexpected}")
    for name, tensor in own.items():
        value = state[name]
        if tuple(value.shape) != tuple(tensor.shape[1:]):
            raise ValueError(
                f"{type(module).__name__}.{name}: shape {tuple(value.shape)} in the state, "
                f"{tuple(tensor.shape[1:])} expected"
            )
        tensor[index].copy_(value)


# Optimiser state entries shared by all seeds (they step together); every other entry of a
# parameter's state has the parameter's shape, seed dimension first.
SHARED_OPTIMIZER_KEYS = ("step",)


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def optimizer_seed_state(optimizer: torch.optim.Optimizer, index: int) -> dict:
    """Seed ``index``'s slice of an optimiser's ``state_dict``, in the single-seed layout."""
    full = optimizer.state_dict()
    state = {
        pid: {k: v.clone() if k in SHARED_OPTIMIZER_KEYS else v[index].clone() for k, v in per_param.items()}
        for pid, per_param in full["state"].items()
    }
    return {"state": state, "param_groups": full["param_groups"]}


@torch.no_grad()
def load_optimizer_seed_state(optimizer: torch.optim.Optimizer, index: int, state: dict) -> None:
    """Write a single-seed optimiser ``state_dict`` into seed ``index`` of ``optimizer``."""
    params = _params(optimizer)
    if len(state["param_groups"]) != len(optimizer.param_groups) or len(
        [p for g in state["param_groups"] for p in g["params"]]
    ) != len(params):
        raise ValueError("optimiser state does not fit: different parameter groups")
    for pid, per_param in state["state"].items():
        param = params[pid]
        own = optimizer.state[param]
        for k, v in per_param.items():
            if k in SHARED_OPTIMIZER_KEYS:
                own[k] = v.clone().to(param.device) if isinstance(v, torch.Tensor) else v
                continue
            if k not in own:
                own[k] = torch.zeros_like(param)
            own[k][index].copy_(v)


def first_bad_seed(value: torch.Tensor) -> int | None:
    """Index of the first seed whose entries of ``value`` (S, ...) are not all finite."""
    finite = torch.isfinite(value.reshape(value.shape[0], -1)).all(1)
    if bool(finite.all()):
        return None
    return int((~finite).nonzero()[0])
