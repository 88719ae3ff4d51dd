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
(URLB's ``_sample``). :class:`URLBLoader` reproduces this schedule deterministically (the
public loader's worker timing also depends on wall-clock speed; on a CPU its worker draws a
batch well within one update, which is what this model assumes). A worker that holds no
episode yet (URLB would stop with an error: fewer seed episodes than workers) draws from the
replay's own sampler instead.
"""

from __future__ import annotations

from collections import deque

import torch

FETCH_EVERY = 1000  # URLB make_replay_loader(fetch_every=1000)
PREFETCH = 2  # torch DataLoader's default prefetch_factor


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

    def plan(self, batch_size: int, finished: int) -> tuple[int, list[tuple[int, int]]]:
        """For the next batch, with ``finished`` episodes finished now: the worker that draws it
        and its segments ``(count, visible)``: ``count`` samples drawn while the worker holds
        its episodes below index ``visible``."""
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
        }

    def load_state_dict(self, state: dict) -> None:
        self._seen.clear()
        self._seen.extend(state["seen"])
        self._batches = state["batches"]
        self._since_fetch, self._fetched = list(state["since_fetch"]), list(state["fetched"])
