"""Rolling out a snapshot's K skills from one start state, and what each skill is scored by.

Skills per method (chosen so that every agent can be compared):
- one-hot skills (DIAYN, SMM, METRA with ``discrete=true``): K evenly spaced skill indices;
- METRA's continuous 2-dim skills: K evenly spaced unit directions (angle 2 pi i / K);
- other continuous skills (CIC, METRA wider than 2): K seeded samples of the skill prior;
- no skill (RND, APT, DDPG): K episodes of the exploration policy with noise seeds 0..K-1.
Skill methods act with the mean action and hold their skill for the whole rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from urlb.agents.base import Plugin
from urlb.ddpg import DDPGAgent
from urlb.replay import Batch
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
    score_name: str | None = None  # the method's own per-skill score (DIAYN accuracy, ...)
    scores: list[float] | None = None
    intrinsic: list[float] | None = None  # mean intrinsic reward per rollout (current networks)
    feature_name: str | None = None  # the learned space (phi, discriminator output, CIC's f(s))
    features: list[np.ndarray] | None = field(default=None, repr=False)


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


def start_state(env, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reset ``env`` (built with ``seed``) once: its physics state and first observation."""
    time_step = env.reset()
    return env.physics.get_state().copy(), time_step.observation


@torch.no_grad()
def rollout(
    agent: DDPGAgent,
    env,
    body: Body,
    start: tuple[np.ndarray, np.ndarray],
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
    with physics.reset_context():
        physics.set_state(start[0])
    observation = start[1]
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
    agent: DDPGAgent, env, domain: str, frames: int, k: int, steps: int, seed: int
) -> SnapshotRollouts:
    """The K rollouts of one snapshot's agent from the start state of ``env`` reset under ``seed``."""
    body = BODIES[domain]
    start = start_state(env, seed)
    plugin = agent.plugin
    rollouts = [
        rollout(agent, env, body, start, skill, steps, noise_seed=seed + i if skill is None else None, label=label)
        for i, (label, skill) in enumerate(gallery_skills(plugin, k, seed))
    ]
    result = SnapshotRollouts(frames, rollouts)
    if plugin is not None:
        score_skills(plugin, result)
    return result


def _batch(obs: torch.Tensor, skill: np.ndarray | None) -> Batch:
    o, n = obs[:-1], obs[1:]
    z = None if skill is None else torch.as_tensor(np.repeat(skill[None], len(o), 0), device=obs.device)
    zeros = torch.zeros(len(o), 1, device=obs.device)
    return Batch(o, zeros, zeros, zeros + 1, n, n, z)


@torch.no_grad()
def score_skills(plugin: Plugin, result: SnapshotRollouts) -> None:
    """The method's own per-skill score and its learned space on the rollouts (no training,
    running statistics untouched)."""
    rollouts = result.rollouts
    device = next(plugin.parameters()).device  # the trainer's device when called during pre-training
    as_tensor = [torch.as_tensor(r.observations, device=device) for r in rollouts]
    result.intrinsic = [float(plugin.intrinsic_reward(_batch(o, r.skill)).mean()) for o, r in zip(as_tensor, rollouts)]
    if plugin.name == "diayn":
        # Discriminator accuracy: share of next states s' where argmax q(z|s') is the rollout's skill.
        result.score_name, result.feature_name = "discriminator_accuracy", "discriminator output q(z|s) logits"
        result.features = [plugin.discriminator(o).float().cpu().numpy() for o in as_tensor]
        result.scores = [
            float((f[1:].argmax(-1) == int(np.argmax(r.skill))).mean()) for f, r in zip(result.features, rollouts)
        ]
    elif plugin.name == "metra":
        # METRA's objective summed over the rollout: (phi(s_T) - phi(s_0)) . z.
        result.score_name, result.feature_name = "phi_displacement_along_z", "phi(s)"
        result.features = [plugin.phi(o).float().cpu().numpy() for o in as_tensor]
        # z itself, or for discrete one-hots the centred, D/(D-1)-scaled direction METRA rewards.
        directions = [plugin.reward_direction(torch.as_tensor(r.skill[None])).numpy()[0] for r in rollouts]
        result.scores = [float((f[-1] - f[0]) @ d) for f, d in zip(result.features, directions)]
    elif plugin.name == "cic":
        # Skill identification from transitions: share of a rollout's transitions whose
        # contrastive logit is highest for its own skill among the K gallery skills.
        result.score_name, result.feature_name = "contrastive_accuracy", "state embedding f(s)"
        skills = torch.as_tensor(np.stack([r.skill for r in rollouts]), dtype=torch.float32, device=device)
        result.features = [plugin.state_net(o).float().cpu().numpy() for o in as_tensor]
        result.scores = []
        for i, o in enumerate(as_tensor):
            logits, _ = plugin.contrastive_logits(o[:-1], o[1:], skills)  # [K, T]
            result.scores.append(float((logits.argmax(0) == i).float().mean()))
    elif plugin.name == "becl":
        # Behaviours of one skill embed together: share of a rollout's states whose embedding is
        # closest (cosine) to the mean embedding of its own rollout among the K rollouts.
        result.score_name, result.feature_name = "embedding_identification", "behaviour embedding"
        embeds = [torch.nn.functional.normalize(plugin.becl(o).float(), dim=-1) for o in as_tensor]
        centres = torch.nn.functional.normalize(torch.stack([e.mean(0) for e in embeds]), dim=-1)
        result.features = [e.cpu().numpy() for e in embeds]
        result.scores = [float(((e @ centres.T).argmax(-1) == i).float().mean()) for i, e in enumerate(embeds)]
    elif plugin.name == "cesd":
        # The state-distribution constraint: share of a rollout's states whose most likely
        # prototype (cluster) is its own skill's.
        result.score_name, result.feature_name = "own_cluster_share", "state embedding f(s)"
        result.features = [plugin.cic.state_net(o).float().cpu().numpy() for o in as_tensor]
        probs = [plugin.cluster_probs(o, analysis=True) for o in as_tensor]
        result.scores = [
            float((p.argmax(-1) == int(np.argmax(r.skill))).float().mean()) for p, r in zip(probs, rollouts)
        ]


def project_2d(features: list[np.ndarray]) -> tuple[list[np.ndarray], str]:
    """The features as 2-D points: unchanged when 2 wide, else their first two principal
    components (fitted on all rollouts of the snapshot together)."""
    width = features[0].shape[1]
    if width <= 2:
        padded = [np.pad(f, ((0, 0), (0, 2 - width))) for f in features]
        return padded, "" if width == 2 else "(1-D)"
    stacked = np.concatenate(features)
    mean = stacked.mean(0)
    _, singular, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    share = (singular[:2] ** 2).sum() / max((singular**2).sum(), 1e-12)
    return [(f - mean) @ vt[:2].T for f in features], f"PCA of {width} dims ({share:.0%} of variance)"
