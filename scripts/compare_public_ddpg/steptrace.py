"""What one DDPG training loop does, step by step, recorded the same way for either code base.

A driver (``trace_public.py``, ``trace_ours.py``) wraps its loop's functions and feeds this
recorder: every time step stored in replay, every action taken, every batch an update consumed,
every random normal draw, every target update and every evaluation. Batches are decoded by
content: each stored observation is looked up to find the (episode, step) a sampled transition
starts from, so batches drawn in another process (the public loader's workers) are read the same
way as ours. ``save`` writes one ``.npz`` (arrays) and one ``.json`` (the rest).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


class Trace:
    def __init__(self, nstep: int) -> None:
        self.nstep = nstep
        self.step = 0  # the loop's global step, kept current by the driver
        self.phase = "act"  # what draws noise now: act | update
        self._index: dict[bytes, tuple[int, int]] = {}  # observation bytes -> (episode, t)
        self._episodes: list[list[np.ndarray]] = []  # per episode: observations
        self._actions: list[list[np.ndarray]] = []  # per episode: action that led to step t
        self._rewards: list[list[float]] = []
        self.finished_at: list[int] = []  # global step at which each episode's last step was stored
        self.adds: list[tuple[int, int, int]] = []  # (global step, episode, t)
        self.actions: list[tuple[int, bool, np.ndarray]] = []  # (step, eval, action)
        self.batches: list[tuple[int, np.ndarray]] = []  # (step, (B, 2) episode and t of each sample)
        self.batch_errors: dict[str, int] = defaultdict(int)
        self.noise: dict[str, int] = defaultdict(int)  # "<phase>:<shape>" -> number of draws
        self.uniform_draws = 0
        self.target_updates: list[int] = []
        self.evals: list[dict] = []
        self.train_starts: list[bytes] = []
        self.info: dict = {}

    # --- replay contents ---
    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, first: bool, last: bool) -> None:
        obs = np.asarray(obs, np.float32)
        if first:
            self._episodes.append([])
            self._actions.append([])
            self._rewards.append([])
            self.train_starts.append(obs.tobytes())
        episode, t = len(self._episodes) - 1, len(self._episodes[-1])
        self._episodes[-1].append(obs)
        self._actions[-1].append(np.asarray(action, np.float32))
        self._rewards[-1].append(float(reward))
        self._index.setdefault(obs.tobytes(), (episode, t))
        self.adds.append((self.step, episode, t))
        if last:
            self.finished_at.append(self.step)

    # --- batches ---
    def batch(self, obs, action, reward, discount, next_obs, gamma: float) -> None:
        """Decode a consumed batch; checks each sample against what was stored."""
        obs, next_obs = np.asarray(obs, np.float32), np.asarray(next_obs, np.float32)
        action, reward = np.asarray(action, np.float32), np.asarray(reward, np.float64).reshape(-1)
        where = np.full((len(obs), 2), -1, np.int64)
        for i, row in enumerate(obs):
            found = self._index.get(row.tobytes())
            if found is None:
                self.batch_errors["unknown observation"] += 1
                continue
            episode, t = found
            where[i] = found
            stored = self._episodes[episode]
            if t + self.nstep >= len(stored):
                self.batch_errors["window not full (runs past the stored steps)"] += 1
                continue
            if not np.array_equal(stored[t + self.nstep], next_obs[i]):
                self.batch_errors["next_obs is not obs n steps later"] += 1
            if not np.allclose(self._actions[episode][t + 1], action[i], atol=1e-6):
                self.batch_errors["action is not the one taken at obs"] += 1
            expected = sum(gamma**k * self._rewards[episode][t + 1 + k] for k in range(self.nstep))
            if abs(expected - reward[i]) > 1e-4:
                self.batch_errors["n-step reward differs"] += 1
        self.batches.append((self.step, where))

    # --- other events ---
    def act(self, eval_mode: bool, action: np.ndarray) -> None:
        self.actions.append((self.step, bool(eval_mode), np.asarray(action, np.float32).copy()))

    def normal_draw(self, shape) -> None:
        self.noise[f"{self.phase}:{tuple(int(s) for s in shape)}"] += 1

    def target_update(self) -> None:
        self.target_updates.append(self.step)

    def eval_started(self) -> None:
        self.evals.append({"step": self.step, "episodes": 0, "starts": []})

    def eval_reset(self, obs: np.ndarray) -> None:
        self.evals[-1]["episodes"] += 1
        self.evals[-1]["starts"].append(np.asarray(obs, np.float32).tobytes())

    # --- output ---
    def save(self, path: Path) -> None:
        path = Path(path)
        seed_steps = self.info.get("seed_steps", 0)
        train = [(s, a) for s, e, a in self.actions if not e]
        seed_actions = np.array([a for s, a in train if s < seed_steps])
        np.savez_compressed(
            path.with_suffix(".npz"),
            batch_steps=np.array([s for s, _ in self.batches], np.int64),
            batches=np.stack([w for _, w in self.batches]) if self.batches else np.zeros((0, 0, 2)),
            finished_at=np.array(self.finished_at, np.int64),
            seed_actions=seed_actions,
            adds=np.array(self.adds, np.int64),
            observations=np.concatenate([np.stack(e) for e in self._episodes]) if self._episodes else np.zeros((0,)),
        )
        start_of = {start: i for i, start in enumerate(self.train_starts)}
        evals = [
            {
                "step": e["step"],
                "episodes": e["episodes"],
                "same_start_as_train_episode": [start_of.get(s) for s in e["starts"]],
            }
            for e in self.evals
        ]
        summary = {
            **self.info,
            "train_actions": len(train),
            "first_policy_action_step": next((s for s, a in train if s >= seed_steps), None),
            "seed_action_range": [float(seed_actions.min()), float(seed_actions.max())] if len(seed_actions) else None,
            "seed_action_mean_sd": [float(seed_actions.mean()), float(seed_actions.std())]
            if len(seed_actions)
            else None,
            "noise_draws": dict(self.noise),
            "uniform_draws": self.uniform_draws,
            "target_updates": len(self.target_updates),
            "target_update_steps_first_last": self.target_updates[:1] + self.target_updates[-1:],
            "batch_errors": dict(self.batch_errors),
            "evals": evals,
        }
        path.with_suffix(".json").write_text(json.dumps(summary, indent=1))


def trace_calls(trace: Trace, owner, name: str, before) -> None:
    """Replace ``owner.name`` by a wrapper that calls ``before(trace)`` and then the original."""
    original = getattr(owner, name)

    def traced(*args, **kwargs):
        before(trace)
        return original(*args, **kwargs)

    setattr(owner, name, traced)


def trace_evaluations(trace: Trace, owner, name: str, env, step_now) -> None:
    """Record each call of the loop's evaluation ``owner.name`` and each reset of its ``env``."""
    trace_calls(trace, owner, name, lambda t: (step_now(), t.eval_started()))
    reset = env.reset

    def traced_reset():
        time_step = reset()
        trace.eval_reset(time_step.observation)
        return time_step

    env.reset = traced_reset
