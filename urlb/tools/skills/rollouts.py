"""Rolling out a snapshot's K skills from one saved start state.

Skills per method (chosen so that every agent can be compared):
- one-hot skills (DIAYN, SMM, METRA with ``discrete=true``): K evenly spaced skill indices;
- METRA's continuous 2-dim skills: K evenly spaced unit directions (angle 2 pi i / K);
- other continuous skills (CIC, METRA wider than 2): K seeded samples of the skill prior;
- no skill (RND, APT, DDPG): K episodes of the exploration policy with noise seeds 0..K-1.
Skill methods act with the mean action and hold their skill for the whole rollout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from urlb.agents.base import Plugin
from urlb.ddpg import DDPGAgent
from urlb.tasks import PRIMAL_TASKS
from urlb.tools.skills.adapters import MethodView, method_view
from urlb.tools.skills.measures import BODIES, Body

EXPLORATION_STEP = 10**6  # the stddev schedule's final value, as in urlb.tools.objectives


@dataclass
class Rollout:
    """One skill's path: positions [T+1, D] from the simulator, observations [T+1, obs_dim]
    and physics states [T+1, S] (replayed to render the video)."""

    label: str
    skill: np.ndarray | None
    positions: np.ndarray
    observations: np.ndarray
    states: np.ndarray


@dataclass
class SnapshotRollouts:
    """The K rollouts of one snapshot and what the method itself makes of them."""

    frames: int
    rollouts: list[Rollout]
    start_seed: int = 0
    start_digest: str = ""  # StartState.digest
    view: MethodView | None = field(default=None, repr=False)  # the method's own picture and score
    intrinsic: list[float] | None = None  # mean intrinsic reward per rollout (current networks)

    @property
    def score_name(self) -> str | None:
        return None if self.view is None else self.view.score_name

    @property
    def scores(self) -> list[float] | None:
        return None if self.view is None else self.view.scores


@dataclass(frozen=True)
class StartState:
    """The one start state of a gallery call: the first reset of the domain's primal task built
    with ``seed``. Every rollout (skill, snapshot, seed, method) starts from it."""

    domain: str
    seed: int
    physics: np.ndarray  # MuJoCo state (qpos, qvel, act)
    observation: np.ndarray
    position: np.ndarray  # the body's coordinates (measures.BODIES)

    @property
    def digest(self) -> str:
        """The joint angles differ between seeds where the position does not: a digest of the whole state."""
        return hashlib.sha1(np.ascontiguousarray(self.physics, dtype=np.float64).tobytes()).hexdigest()[:8]

    def describe(self) -> str:
        where = ", ".join(f"{label} {value:.3f}" for label, value in zip(BODIES[self.domain].labels, self.position))
        task = PRIMAL_TASKS[self.domain]
        return f"start state: first reset of {task} with seed {self.seed} ({where}; state {self.digest})"


def make_start(domain: str, seed: int):
    """A fresh environment of ``domain``'s primal task built with ``seed`` and its StartState:
    the same for a given seed in every call, whatever ran before."""
    from urlb import envs

    env = envs.make(PRIMAL_TASKS[domain], "states", seed=seed)
    time_step = env.reset()
    physics = env.physics
    start = StartState(
        domain, seed, physics.get_state().copy(), time_step.observation.copy(), BODIES[domain].read(physics)
    )
    return env, start


def one_hot_skills(plugin: Plugin) -> bool:
    """Whether the skill space is a finite set of one-hots: DIAYN, SMM,
    METRA with ``discrete=true``. Detected from a prior sample, so new methods need no entry."""
    if getattr(plugin, "discrete", False):
        return True
    sample = np.asarray(plugin.sample_skill(np.random.default_rng(0)), dtype=np.float64).ravel()
    return bool(np.isin(sample, (0.0, 1.0)).all() and sample.sum() == 1.0)


def gallery_skills(plugin: Plugin | None, k: int, seed: int) -> list[tuple[str, np.ndarray | None]]:
    """(label, skill) for the K rollouts of one snapshot (the same for every snapshot of a run)."""
    if plugin is None or plugin.skill_dim == 0:
        return [(f"seed {i}", None) for i in range(k)]
    rng = np.random.default_rng(seed)
    if one_hot_skills(plugin):
        table = np.eye(plugin.skill_dim, dtype=np.float32)  # plain one-hots (METRA centres them in its reward only)
        n = len(table)
        indices = np.arange(n) if k >= n else np.linspace(0, n, k, endpoint=False).astype(int)
        return [(f"skill {i}", table[i]) for i in indices]
    if plugin.name == "metra" and plugin.skill_dim == 2:
        angles = 2 * np.pi * np.arange(k) / k
        return [(f"{round(np.degrees(a))} deg", np.array([np.cos(a), np.sin(a)], np.float32)) for a in angles]
    return [(f"sample {i}", plugin.sample_skill(rng)) for i in range(k)]


@torch.no_grad()
def rollout(
    agent: DDPGAgent,
    env,
    body: Body,
    start: StartState,
    skill: np.ndarray | None,
    steps: int,
    noise_seed: int | None,
    label: str,
) -> Rollout:
    """Act from the saved start state for ``steps`` steps (or until the episode ends). With
    ``noise_seed`` the policy explores (mean plus clipped noise) with that torch seed, else it
    acts with its mean action. The caller's torch RNG is left untouched."""
    env.reset()  # restarts the episode clock; the state is then replaced by the start state
    physics = env.physics
    with physics.reset_context():  # mj_resetData first: no solver warm-start carried over
        physics.set_state(start.physics)
    observation = start.observation
    positions, observations, states = [body.read(physics)], [observation], [physics.get_state().copy()]
    device = torch.device(agent.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if noise_seed is not None:
            torch.manual_seed(noise_seed)
        for _ in range(steps):
            action = agent.act(observation, skill, EXPLORATION_STEP, eval_mode=noise_seed is None)
            time_step = env.step(action)
            observation = time_step.observation
            positions.append(body.read(physics))
            observations.append(observation)
            states.append(physics.get_state().copy())
            if time_step.last():
                break
    return Rollout(label, skill, np.stack(positions), np.stack(observations).astype(np.float32), np.stack(states))


def roll_out_snapshot(
    agent: DDPGAgent,
    env,
    start: StartState,
    frames: int,
    k: int,
    steps: int,
    progress: Callable[[], None] | None = None,
) -> SnapshotRollouts:
    """The K rollouts of one snapshot's agent, each from ``start``; skill samples and noise
    seeds come from ``start.seed``. ``progress`` is called after each rollout."""
    body = BODIES[start.domain]
    plugin = agent.plugin
    rollouts = []
    for i, (label, skill) in enumerate(gallery_skills(plugin, k, start.seed)):
        noise_seed = start.seed + i if skill is None else None
        rollouts.append(rollout(agent, env, body, start, skill, steps, noise_seed, label))
        if progress is not None:
            progress()
    result = SnapshotRollouts(frames, rollouts, start.seed, start.digest)
    if plugin is not None:
        result.view, result.intrinsic = method_view(
            plugin, [r.observations for r in rollouts], [r.skill for r in rollouts]
        )
    return result


def project_2d(points: list[np.ndarray], directions: np.ndarray | None = None):
    """Points [T, D] per rollout as 2-D: unchanged when 2 wide, else their first two principal
    components fitted on all rollouts together; ``directions`` [K, D] go through the same
    rotation (not centred). Returns (points, directions, axis names)."""
    width = points[0].shape[1]
    if width <= 2:
        pad = ((0, 0), (0, 2 - width))
        dirs = None if directions is None else np.pad(directions, pad)
        return [np.pad(p, pad) for p in points], dirs, ("dim 1", "dim 2")
    stacked = np.concatenate(points)
    mean = stacked.mean(0)
    _, singular, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    share = singular[:2] ** 2 / max((singular**2).sum(), 1e-12)
    names = tuple(f"PC {i + 1} of {width} dims ({v:.0%} of variance)" for i, v in enumerate(share))
    dirs = None if directions is None else directions @ vt[:2].T
    return [(p - mean) @ vt[:2].T for p in points], dirs, names
