"""Several seeds of one configuration trained in one process (``seeds=[1,2,3]``).

The framework's job, never a method's: a method is a plain single-seed module. :class:`SeedAgents`
holds one ordinary single-seed agent per seed, each built after ``torch.manual_seed(seed)``
exactly as a single-seed run builds it, and steps them in lockstep: for every call that may draw
random numbers (acting, sampling the replay, updating) it swaps torch's global random state to
that seed's own and back (:meth:`SeedAgents.seed_rng`). So each seed draws the numbers its
single-seed run draws, in the same order, and runs the same kernels on the same inputs: a seed
trained beside others computes what it computes alone, bit for bit (same thread count), even
where a method draws random numbers (SMM's VAE, ProtoRL's candidates, pixel shifts).

A single seed takes the plain path: one agent, torch's global generator left as it is, no
swapping. Snapshots and checkpoints are per seed, in the single-seed layout, because each seed
*is* a single-seed agent. Why a list and not ``torch.func.vmap`` over stacked weights: vmap
cannot wrap a method's own ``loss.backward()`` and ``optimizer.step()``, and on a CPU the
measured speed does not pay for a second code path (docs/seeds.md has the figures).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from urlb.ddpg import DDPGAgent, NonFiniteError
from urlb.replay import Batch


def _device_rng(device: torch.device):
    """(get_state, set_state) of torch's global generator that draws on ``device``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return (lambda: torch.cuda.get_rng_state(index)), (lambda s: torch.cuda.set_rng_state(s, index))
    return torch.get_rng_state, torch.set_rng_state


class SeedAgents:
    """One single-seed :class:`~urlb.ddpg.DDPGAgent` per seed, stepped together; each seed keeps
    its own torch random state (``rng_states``) between calls."""

    def __init__(self, agents: Sequence[DDPGAgent], seeds: Sequence[int], rng_states: Sequence | None = None) -> None:
        if len(agents) != len(seeds):
            raise ValueError(f"{len(agents)} agents for {len(seeds)} seeds")
        self.agents, self.seeds = list(agents), [int(s) for s in seeds]
        self.device = self.agents[0].device
        # Several seeds: each seed's torch state, (CPU state, device state or None).
        self._states = list(rng_states) if rng_states is not None else [None] * len(self.agents)

    @classmethod
    def build(cls, make: Callable[[], DDPGAgent], seeds: Sequence[int]) -> SeedAgents:
        """Agents made by ``make()``. One seed: built from torch's current random state (the caller
        seeded it). Several: seed s is built right after ``torch.manual_seed(s)`` and keeps the
        random state its build leaves, as a single-seed run of s does."""
        if len(seeds) == 1:
            return cls([make()], seeds)
        agents, states = [], []
        with torch.random.fork_rng(devices=[]):  # the caller's global state is left as it was
            for seed in seeds:
                torch.manual_seed(seed)
                agents.append(make())
                states.append(_capture(agents[-1].device))
        return cls(agents, seeds, states)

    def __len__(self) -> int:
        return len(self.agents)

    def __getitem__(self, index: int) -> DDPGAgent:
        return self.agents[index]

    @property
    def plugin(self):
        """The first seed's plugin: what skills schedules and metadata ask (the same class and
        configuration in every seed)."""
        return self.agents[0].plugin

    @property
    def skill_dim(self) -> int:
        return self.agents[0].skill_dim

    @property
    def action_dim(self) -> int:
        return self.agents[0].action_dim

    # --- random state ---
    @contextlib.contextmanager
    def seed_rng(self, index: int) -> Iterator[None]:
        """Run the block with seed ``index``'s torch random state as the global one (a single
        seed: the global state itself, untouched)."""
        if len(self.agents) == 1:
            yield
            return
        outer = _capture(self.device)
        _restore(self._states[index], self.device)
        try:
            yield
        finally:
            self._states[index] = _capture(self.device)
            _restore(outer, self.device)

    def get_state(self, index: int) -> torch.Tensor:
        """Seed ``index``'s CPU random state (what a single-seed checkpoint holds)."""
        return torch.get_rng_state() if len(self.agents) == 1 else self._states[index][0]

    def set_state(self, index: int, state: torch.Tensor) -> None:
        if len(self.agents) == 1:
            torch.set_rng_state(state)
        else:
            self._states[index] = (state, self._states[index][1])

    # --- lockstep calls ---
    def act(self, obs: Sequence[np.ndarray], skills: Sequence, step: int, eval_mode: bool) -> list[np.ndarray]:
        """Each seed's action for its own observation and skill."""
        actions = []
        for index, agent in enumerate(self.agents):
            with self.seed_rng(index):
                actions.append(agent.act(obs[index], skills[index], step, eval_mode))
        return actions

    def update(self, sample: Callable[[int], Batch], step: int) -> list[dict[str, float]]:
        """One update per seed on the batch ``sample(index)`` draws (inside the seed's random
        state, as a single-seed run samples its replay); each seed's metrics."""
        metrics = []
        for index, agent in enumerate(self.agents):
            with self.seed_rng(index):
                try:
                    metrics.append(agent.update(sample(index), step))
                except NonFiniteError as exc:
                    seed = self.seeds[index]
                    raise NonFiniteError(f"seed {seed}: {exc}" if len(self.agents) > 1 else str(exc), seed) from exc
        return metrics


def _capture(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    device_state = _device_rng(device)[0]() if device.type == "cuda" else None
    return torch.get_rng_state(), device_state


def _restore(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        _device_rng(device)[1](state[1])
