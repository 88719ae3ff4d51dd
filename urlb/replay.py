"""In-memory replay with vectorised n-step sampling.

Storage follows DrQ-v2: position ``i`` holds the observation of one time step together with
the action, reward and discount that *led to* it (and the skill that chose that action). A
transition starting at ``i`` therefore uses ``action[i+1]``, ``reward[i+1..i+n]`` and
``obs[i+n]``. Every observation is stored once; the next observation is found by index.
Pixel observations store only the newest frame per step and rebuild the frame stack by index.

Which transitions are sampled follows URLB's replay (``replay_buffer.py``): only episodes that
have finished (URLB stores an episode when its last step arrives) and only full n-step windows
(a start within n-1 steps of its episode's end is never drawn). With ``urlb_sampling=False`` the
running episode is sampled too and windows near an episode's end are shortened to the steps
that exist. Either way the n-step target never crosses an episode boundary, and a time-limit end
still bootstraps (the suite reports discount 1.0).

The trainer samples through :meth:`ReplayBuffer.sample_for_update`, which with
``loader_workers`` set also follows when URLB's replay loader makes a finished episode
sampleable and which episodes one batch can come from, and draws its samples with the numbers
URLB's loader workers draw (:mod:`urlb.replay_loader`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from urlb.replay_loader import URLBLoader


class Batch(NamedTuple):
    """A sampled batch of n-step transitions; every tensor has leading dimension B."""

    obs: torch.Tensor  # (B, *obs_shape)
    action: torch.Tensor  # (B, action_dim), the action taken at obs
    reward: torch.Tensor  # (B, 1), discounted n-step sum of the task reward
    discount: torch.Tensor  # (B, 1), gamma^m * product of env discounts (m <= n steps taken)
    next_obs: torch.Tensor  # (B, *obs_shape), observation m steps after obs
    next_obs_1step: torch.Tensor  # (B, *obs_shape), observation one step after obs
    skill: torch.Tensor | None  # (B, skill_dim) or None for methods without skills


class ReplayBuffer:
    """Ring-buffer replay whose tensors live on the training device."""

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        action_dim: int,
        capacity: int = 1_000_000,
        skill_dim: int = 0,
        frame_stack: int = 1,
        nstep: int = 3,
        discount: float = 0.99,
        device: str | torch.device = "cpu",
        urlb_sampling: bool = True,
        loader_workers: int | None = None,
    ) -> None:
        if capacity <= 0 or nstep <= 0:
            raise ValueError(f"capacity and nstep must be positive, got {capacity} and {nstep}")
        self.capacity, self.nstep, self.gamma = capacity, nstep, discount
        self.urlb_sampling = urlb_sampling
        self.frame_stack, self.device = frame_stack, torch.device(device)
        self.obs_shape = tuple(obs_shape)
        self.pixels = len(self.obs_shape) == 3
        # Pixels: store one frame (C/frame_stack channels) per step, never the whole stack.
        if self.pixels:
            frame_shape = (self.obs_shape[0] // frame_stack, *self.obs_shape[1:])
            obs_dtype = torch.uint8
        else:
            frame_shape, obs_dtype = self.obs_shape, torch.float32
        dev = self.device
        self.frames = torch.zeros((capacity, *frame_shape), dtype=obs_dtype, device=dev)
        self.action = torch.zeros((capacity, action_dim), dtype=torch.float32, device=dev)
        self.reward = torch.zeros(capacity, dtype=torch.float32, device=dev)
        self.env_discount = torch.ones(capacity, dtype=torch.float32, device=dev)
        self.skill = torch.zeros((capacity, skill_dim), dtype=torch.float32, device=dev)
        # Episode id (-1 = never written) and step index within the episode, for boundary checks.
        self.episode_id = torch.full((capacity,), -1, dtype=torch.int64, device=dev)
        self.step_in_episode = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self.skill_dim = skill_dim
        self._next = 0
        self._size = 0
        self._episode = -1
        self._episode_step = 0
        self._episode_finished = False  # whether the newest episode has stored its last step
        self._gammas = discount ** torch.arange(nstep + 1, dtype=torch.float32, device=dev)
        # First slot and number of transitions of every episode, for URLB's per-episode draw.
        self._episode_starts: list[int] = []
        self._episode_lengths: list[int] = []
        self._episode_table: tuple[torch.Tensor, torch.Tensor] | None = None
        self.loader = None if loader_workers is None else URLBLoader(loader_workers)

    def __len__(self) -> int:
        return self._size

    @property
    def num_transitions(self) -> int:
        """Number of stored steps that start a valid transition (O(size): not for the hot path)."""
        return int((self._has_next(torch.arange(self._size, device=self.device))).sum())

    def add(self, time_step, skill: np.ndarray | None = None) -> None:
        """Store one time step; ``skill`` is the skill that chose ``time_step.action``."""
        i = self._next
        if time_step.first():
            self._episode += 1
            self._episode_step = 0
            self._episode_finished = False
            self._episode_starts.append(i)
            self._episode_lengths.append(0)  # set when its last step arrives
            self._episode_table = None
        obs = np.asarray(time_step.observation)
        if self.pixels:
            obs = obs[-self.frames.shape[1] :]  # newest frame only
        self.frames[i] = torch.as_tensor(obs, device=self.device)
        self.action[i] = torch.as_tensor(np.asarray(time_step.action, dtype=np.float32), device=self.device)
        self.reward[i] = float(time_step.reward or 0.0)
        self.env_discount[i] = float(1.0 if time_step.discount is None else time_step.discount)
        if self.skill_dim:
            self.skill[i] = torch.as_tensor(np.asarray(skill, dtype=np.float32), device=self.device)
        self.episode_id[i] = self._episode
        self.step_in_episode[i] = self._episode_step
        self._episode_step += 1
        if time_step.last():
            self._episode_finished = True
            if self._episode_lengths:
                self._episode_lengths[-1] = self._episode_step - 1  # transitions: steps after the first
                self._episode_table = None
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def _has_next(self, idx: torch.Tensor, strict: bool | None = None) -> torch.Tensor:
        """Whether ``idx`` starts a transition that may be sampled: the slot ``span`` steps later
        holds the same episode's step ``span`` later (span = n under URLB sampling, else 1; the
        step counter also rules out the write head of an episode longer than the capacity); under
        URLB sampling its episode has finished; for pixels, the frames its stack needs are not yet
        overwritten. ``strict=False`` applies the permissive rule whatever ``urlb_sampling`` says."""
        strict = self.urlb_sampling if strict is None else strict
        span = self.nstep if strict else 1
        nxt = (idx + span) % self.capacity
        ok = (self.episode_id[nxt] == self.episode_id[idx]) & (self.episode_id[idx] >= 0)
        ok &= self.step_in_episode[nxt] == self.step_in_episode[idx] + span
        if strict and not self._episode_finished:
            ok &= self.episode_id[idx] != self._episode  # the running episode is not sampled yet
        if self.pixels and self._size == self.capacity:
            age = (idx - self._next) % self.capacity  # slots between the oldest kept step and idx
            ok &= age >= torch.clamp(self.step_in_episode[idx], max=self.frame_stack - 1)
        return ok

    def _stacked_obs(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.pixels or self.frame_stack == 1:
            return self.frames[idx]
        # Frames before the episode's first step repeat the first frame, as the env wrapper does.
        back = torch.arange(self.frame_stack - 1, -1, -1, device=self.device)  # S-1 .. 0
        offsets = torch.minimum(back[None, :], self.step_in_episode[idx][:, None])
        stacked = self.frames[(idx[:, None] - offsets) % self.capacity]  # (B, S, C, H, W)
        return stacked.flatten(1, 2)

    def _sample_starts(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        if self._size < 2:
            raise RuntimeError("replay buffer holds no complete transition yet")
        idx = torch.randint(self._size, (batch_size,), device=self.device, generator=generator)
        bad = ~self._has_next(idx)
        # Episode ends are rare (1 in episode length), so a few redraws settle it.
        for _ in range(8):
            if not bool(bad.any()):
                return idx
            idx[bad] = torch.randint(self._size, (int(bad.sum()),), device=self.device, generator=generator)
            bad = ~self._has_next(idx)
        if not bool(bad.any()):
            return idx
        # Valid starts are scarce (tiny buffer, very short episodes): draw among them directly.
        every = torch.arange(self._size, device=self.device)
        valid = torch.nonzero(self._has_next(every)).flatten()
        if valid.numel() == 0 and self.urlb_sampling:
            # No finished episode with a full window yet: URLB cannot sample at all here (its
            # runs start updating after whole seed episodes); tiny runs fall back to any
            # transition, shortened at the running episode's end.
            valid = torch.nonzero(self._has_next(every, strict=False)).flatten()
        if valid.numel() == 0:
            raise RuntimeError("replay buffer holds no complete transition yet")
        pick = torch.randint(valid.numel(), (int(bad.sum()),), device=self.device, generator=generator)
        idx[bad] = valid[pick]
        return idx

    @property
    def finished_episodes(self) -> int:
        """Episodes whose last step is stored (they finish in order: 0, 1, ...)."""
        return self._episode + 1 if self._episode_finished else max(self._episode, 0)

    def sample_for_update(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """A training batch: with ``loader_workers`` set, drawn as URLB's replay loader draws
        it (see :mod:`urlb.replay_loader`); otherwise :meth:`sample`."""
        if self.loader is None:
            return self.sample(batch_size, generator)
        worker, segments = self.loader.plan(batch_size, self.finished_episodes)
        starts = []
        for count, visible in segments:
            episodes = self._intact_episodes(self.loader.episodes(worker, visible, self.device))
            if episodes.numel() == 0:  # this worker holds no episode yet (URLB would fail here)
                starts.append(self._sample_starts(count, generator))
            else:
                starts.append(self._starts_in(episodes, count, generator, worker))
        return self._batch_at(torch.cat(starts))

    def _rebuild_episode_index(self) -> None:
        """Every episode's first slot and length from the stored steps (an episode whose first
        step is gone gets length 0: it is never drawn)."""
        n = self._size
        ids, steps = self.episode_id[:n], self.step_in_episode[:n]
        count = self._episode + 1
        self._episode_starts, self._episode_lengths = [0] * count, [0] * count
        for slot in torch.nonzero(steps == 0).flatten().tolist():
            episode = int(ids[slot])
            if 0 <= episode < count:
                self._episode_starts[episode] = slot
                self._episode_lengths[episode] = int((ids == episode).sum()) - 1
        if count and not self._episode_finished:
            self._episode_lengths[-1] = 0

    def _intact_episodes(self, episodes: torch.Tensor) -> torch.Tensor:
        """The given episodes that still hold a full n-step window (none overwritten)."""
        if self._episode_table is None:
            self._episode_table = (
                torch.tensor(self._episode_starts, dtype=torch.int64, device=self.device),
                torch.tensor(self._episode_lengths, dtype=torch.int64, device=self.device),
            )
        first, length = self._episode_table
        if episodes.numel() == 0:
            return episodes
        ok = (self.episode_id[first[episodes]] == episodes) & (length[episodes] >= self.nstep)
        return episodes[ok]

    def _starts_in(
        self, episodes: torch.Tensor, count: int, generator: torch.Generator | None, worker: int
    ) -> torch.Tensor:
        """URLB's draw: an episode uniformly, then a full n-step window in it uniformly; with
        loader workers, the very numbers that URLB's worker ``worker`` draws."""
        first, length = self._episode_table
        if self.loader.draws:
            windows = (length[episodes] - self.nstep + 1).tolist()
            picks, offsets = self.loader.draws[worker].draw(windows, count)
            pick = episodes[torch.tensor(picks, dtype=torch.int64, device=self.device)]
            offset = torch.tensor(offsets, dtype=torch.int64, device=self.device)
            return (first[pick] + offset) % self.capacity
        pick = episodes[torch.randint(episodes.numel(), (count,), device=self.device, generator=generator)]
        windows = length[pick] - self.nstep + 1
        offset = (torch.rand(count, device=self.device, generator=generator) * windows).long()
        return (first[pick] + torch.minimum(offset, windows - 1)) % self.capacity

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Sample ``batch_size`` n-step transitions uniformly over stored transitions."""
        return self._batch_at(self._sample_starts(batch_size, generator))

    def _batch_at(self, start: torch.Tensor) -> Batch:
        """The n-step transitions starting at slots ``start``."""
        ks = torch.arange(1, self.nstep + 1, device=self.device)
        steps = (start[:, None] + ks[None, :]) % self.capacity  # (B, n)
        in_episode = (self.episode_id[steps] == self.episode_id[start][:, None]) & (
            self.step_in_episode[steps] == self.step_in_episode[start][:, None] + ks[None, :]
        )
        in_episode = torch.cumprod(in_episode.to(torch.int64), dim=1).bool()  # stop at first break
        num_steps = in_episode.sum(1)  # m >= 1, guaranteed by _sample_starts
        valid = in_episode.float()
        step_discount = self.env_discount[steps] * valid + (1.0 - valid)
        # Discount applied to reward k: gamma^(k-1) * prod of env discounts before step k.
        survive = torch.cumprod(torch.cat([torch.ones_like(step_discount[:, :1]), step_discount[:, :-1]], 1), 1)
        reward = (self._gammas[:-1][None, :] * survive * self.reward[steps] * valid).sum(1, keepdim=True)
        discount = self._gammas[num_steps][:, None] * step_discount.prod(1, keepdim=True)
        last = (start + num_steps) % self.capacity
        first = steps[:, 0]
        return Batch(
            obs=self._stacked_obs(start),
            action=self.action[first],
            reward=reward,
            discount=discount,
            next_obs=self._stacked_obs(last),
            next_obs_1step=self._stacked_obs(first),
            skill=self.skill[first] if self.skill_dim else None,
        )

    # --- checkpointing: the buffer's full state, so a resumed run continues where it stopped ---
    def state_dict(self) -> dict:
        n = self._size
        keys = ("frames", "action", "reward", "env_discount", "skill", "episode_id", "step_in_episode")
        return {
            **{k: getattr(self, k)[:n].cpu().clone() for k in keys},
            "next": self._next,
            "size": n,
            "episode": self._episode,
            "episode_step": self._episode_step,
            "episode_finished": self._episode_finished,
            "episode_starts": list(self._episode_starts),
            "episode_lengths": list(self._episode_lengths),
            "loader": None if self.loader is None else self.loader.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["size"]
        if n > self.capacity:
            raise ValueError(f"checkpointed replay holds {n} steps, more than capacity {self.capacity}")
        for k in ("frames", "action", "reward", "env_discount", "skill", "episode_id", "step_in_episode"):
            getattr(self, k)[:n] = state[k].to(self.device)
        self._next, self._size = state["next"], n
        self._episode, self._episode_step = state["episode"], state["episode_step"]
        # Checkpoints written before this flag existed: the newest episode counts as running.
        self._episode_finished = bool(state.get("episode_finished", False))
        if "episode_starts" in state:
            self._episode_starts, self._episode_lengths = list(state["episode_starts"]), list(state["episode_lengths"])
        else:  # older checkpoints: found from the stored steps
            self._rebuild_episode_index()
        self._episode_table = None
        if self.loader is not None and state.get("loader") is not None:
            self.loader.load_state_dict(state["loader"])
