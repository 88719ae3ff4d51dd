"""Which finished episodes each update's batch may come from, as URLB's replay loader decides.

URLB (``replay_buffer.py``) saves every finished episode to disk and samples through a torch
``DataLoader`` over an ``IterableDataset`` with ``replay_buffer_num_workers`` workers (4 by
default). That loader, not the stored data, shapes what a batch holds:

- a worker reads new episode files only at a *fetch*: at its first sample and then before every
  1,000th sample it draws (``fetch_every``), possibly in the middle of a batch;
- worker ``w`` only ever reads the episodes whose index ``i`` has ``i % workers == w``, and a
  whole batch comes from one worker, the workers taking turns batch by batch;
- the loader keeps ``prefetch`` (2) batches per worker requested ahead, so the batch consumed
  by update ``u`` is drawn while update ``u - prefetch * workers`` runs, from the episodes on
  disk at that moment (all batches before the first ``prefetch * workers`` are drawn when the
  loader starts, at the first update);
- with ``workers=0`` the loader samples in the training process itself: one partition, no
  prefetching, fetches still every 1,000 samples.

Within a worker an episode is drawn uniformly, then a full n-step window in it uniformly
(URLB's ``_sample``: Python's ``random.choice``, then numpy's ``randint``), and these draws are
the same in every URLB run whatever its seed: torch (1.9 and later) seeds each worker's numpy
with a four-word key, which leaves the first word of numpy's state at 2**31, and URLB's
``_worker_init_fn`` re-seeds numpy and ``random`` from that word plus the worker id. So worker
``w`` draws from seed 2**31 + w in every run, and :class:`WorkerDraws` draws the same numbers
(checked against a public run's batches: 16,096 of 16,096 samples). Creating the loader's
iterator also takes one int64 draw from the trainer's torch stream (its base seed), before the
first batch; :meth:`URLBLoader.plan` takes it too, so the torch stream stays in step with URLB's.
:class:`URLBLoader` reproduces this schedule deterministically (the
public loader's worker timing also depends on wall-clock speed; on a CPU its worker draws a
batch well within one update, which is what this model assumes). A worker that holds no
episode yet (URLB would stop with an error: fewer seed episodes than workers) draws from the
replay's own sampler instead.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import torch

FETCH_EVERY = 1000  # URLB make_replay_loader(fetch_every=1000)
PREFETCH = 2  # torch DataLoader's default prefetch_factor
WORKER_SEED = 2**31  # worker w of every URLB run draws from WORKER_SEED + w (module docstring)


class WorkerDraws:
    """One URLB loader worker's random draws: an episode by ``random.choice``, then a window
    start in it by numpy's legacy ``randint`` (the generators URLB's worker uses, so the legacy
    numpy API on purpose), both seeded as that worker is."""

    def __init__(self, worker: int) -> None:
        self.episode_draw = random.Random(WORKER_SEED + worker)
        self.window_draw = np.random.RandomState(WORKER_SEED + worker)

    def draw(self, windows: list[int], count: int) -> tuple[list[int], list[int]]:
        """For each of ``count`` samples, in URLB's order: the position of its episode among the
        worker's episodes (whose window counts are ``windows``) and its window start."""
        # The two generators are separate, so drawing every episode first changes no number;
        # numpy's randint over an array of bounds draws what as many scalar calls would.
        picks = [self.episode_draw.randrange(len(windows)) for _ in range(count)]  # what random.choice draws
        starts = self.window_draw.randint(0, np.asarray(windows, dtype=np.int64)[picks]).tolist()
        return picks, starts

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, gauss = self.window_draw.get_state()
        return {"episode": self.episode_draw.getstate(), "window": [name, keys.tolist(), pos, has_gauss, gauss]}

    def load_state_dict(self, state: dict) -> None:
        self.episode_draw.setstate(state["episode"])
        name, keys, pos, has_gauss, gauss = state["window"]
        self.window_draw.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


class URLBLoader:
    """The fetch, partition and prefetch schedule of URLB's replay loader for one replay."""

    def __init__(self, workers: int, fetch_every: int = FETCH_EVERY, prefetch: int = PREFETCH) -> None:
        if workers < 0 or fetch_every <= 0 or prefetch < 0:
            raise ValueError(
                f"replay loader workers must be >= 0 (got {workers}), fetch_every > 0 (got {fetch_every}), "
                f"prefetch >= 0 (got {prefetch})"
            )
        self.workers, self.fetch_every = workers, fetch_every
        self.partitions = max(1, workers)
        ahead = prefetch * workers  # in-process loading (workers=0) draws each batch when asked
        # Finished-episode counts when the last `ahead + 1` batches were asked for; the oldest is
        # what the batch handed out now saw on disk.
        self._seen: deque[int] = deque(maxlen=ahead + 1)
        self._batches = 0
        self._since_fetch = [fetch_every] * self.partitions  # URLB: the first sample fetches
        self._fetched = [0] * self.partitions  # worker w holds episodes i < fetched[w], i % K == w
        # With workers=0 URLB samples with the training process's own random and numpy streams,
        # which other code shares; the replay then draws from torch's stream instead.
        self.draws = [WorkerDraws(w) for w in range(workers)]

    def plan(self, batch_size: int, finished: int) -> tuple[int, list[tuple[int, int]]]:
        """For the next batch, with ``finished`` episodes finished now: the worker that draws it
        and its segments ``(count, visible)``: ``count`` samples drawn while the worker holds
        its episodes below index ``visible``."""
        if self._batches == 0:
            # URLB's loader iterator, made at the first update, seeds itself from torch's stream.
            torch.empty((), dtype=torch.int64).random_()
        self._seen.append(finished)
        on_disk = self._seen[0]
        worker = self._batches % self.partitions
        self._batches += 1
        segments: list[tuple[int, int]] = []
        left = batch_size
        while left > 0:
            if self._since_fetch[worker] >= self.fetch_every:
                self._fetched[worker] = on_disk
                self._since_fetch[worker] = 0
            count = min(left, self.fetch_every - self._since_fetch[worker])
            self._since_fetch[worker] += count
            segments.append((count, self._fetched[worker]))
            left -= count
        return worker, segments

    def episodes(self, worker: int, visible: int, device: torch.device) -> torch.Tensor:
        """Indices of the episodes ``worker`` holds when it has fetched up to ``visible``."""
        return torch.arange(worker, max(worker, visible), self.partitions, device=device)

    def state_dict(self) -> dict:
        return {
            "seen": list(self._seen),
            "batches": self._batches,
            "since_fetch": list(self._since_fetch),
            "fetched": list(self._fetched),
            "draws": [d.state_dict() for d in self.draws],
        }

    def load_state_dict(self, state: dict) -> None:
        self._seen.clear()
        self._seen.extend(state["seen"])
        self._batches = state["batches"]
        self._since_fetch, self._fetched = list(state["since_fetch"]), list(state["fetched"])
        for draws, saved in zip(self.draws, state.get("draws", [])):  # older checkpoints: none saved
            draws.load_state_dict(saved)
