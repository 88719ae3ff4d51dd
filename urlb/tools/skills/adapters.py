"""What each method itself makes of its rollouts: the one place the gallery reaches into a
plugin's networks (one small function per method).

Each adapter takes the plugin, the K rollouts' observations (tensors [T+1, obs_dim]) and their
skills, and returns a MethodView: the picture the method's paper draws and a per-skill score.
- METRA: phi(s_t) - phi(s_0) per rollout beside z (the paper's learned-space figure);
- DIAYN, SMM, APS: the K x K confusion matrix of the skill inferred from each visited state;
- CIC: transition embeddings beside the skills' embeddings (the two sides of its contrastive loss);
- BeCL: state embeddings beside each skill's mean embedding; CeSD: the confusion matrix of prototypes;
- methods without such a network (RND, APT, ...): None, the gallery draws state-visitation maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from urlb.agents.base import Plugin
from urlb.replay import Batch


@dataclass
class MethodView:
    """``kind``: phi | confusion | embedding. ``paths``: per rollout, points in the learned space
    (phi: phi(s_t) - phi(s_0); embedding: transition keys); ``arrows``: per skill, z (phi) or the
    skill's embedding (embedding); ``confusion`` [K, K]: row i, the share of rollout i's states
    assigned to skill j."""

    kind: str
    title: str
    score_name: str
    scores: list[float]
    paths: list[np.ndarray] | None = None
    arrows: np.ndarray | None = None
    confusion: np.ndarray | None = None


def _net(module: Callable, x: torch.Tensor) -> torch.Tensor:
    """A plugin network on one rollout's rows [T, D], in float32 for the pictures."""
    return module(x).float()


def _batch(obs: torch.Tensor, skill: np.ndarray | None) -> Batch:
    """The rollout's transitions as a batch (rewards and discounts unused)."""
    o, n = obs[:-1], obs[1:]
    z = None if skill is None else torch.as_tensor(np.repeat(skill[None], len(o), 0), device=obs.device)
    zeros = torch.zeros(len(o), 1, device=obs.device)
    return Batch(o, zeros, zeros, zeros + 1, n, n, z)


def mean_intrinsic_reward(plugin: Plugin, obs: list[torch.Tensor], skills: list) -> list[float]:
    """Mean intrinsic reward per rollout under the current networks (no training)."""
    return [float(plugin.intrinsic_reward(_batch(o, z)).mean()) for o, z in zip(obs, skills)]


def _confusion(logits: list[torch.Tensor]) -> np.ndarray:
    """Rows: rollouts; columns: share of the rollout's next states whose highest logit is skill j."""
    k = logits[0].shape[-1]
    return np.stack([np.bincount(lg[1:].argmax(-1).cpu().numpy(), minlength=k) / max(len(lg) - 1, 1) for lg in logits])


def _confusion_view(name: str, logits: list[torch.Tensor], what: str) -> MethodView:
    matrix = _confusion(logits)
    return MethodView(
        "confusion", f"{name}: {what}", "discriminator_accuracy", [float(v) for v in np.diag(matrix)], confusion=matrix
    )


def _gallery_indices(skills: list) -> list[int]:
    return [int(np.argmax(z)) for z in skills]


def diayn_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    idx = _gallery_indices(skills)  # q(z|s) over the skills rolled out
    logits = [_net(plugin.discriminator, o)[:, idx] for o in obs]
    return _confusion_view("DIAYN", logits, "argmax_z q(z|s) of each visited state")


def smm_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    idx = _gallery_indices(skills)
    logits = [_net(plugin.discriminator, o)[:, idx] for o in obs]
    return _confusion_view("SMM", logits, "argmax_z q(z|s) of each visited state")


def aps_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    # APS rewards phi(s)/|phi(s)| . z (a von Mises-Fisher log-likelihood): its skill posterior
    # over the K rolled-out skills is highest for the z closest to phi(s).
    z = torch.as_tensor(np.stack(skills), dtype=torch.float32, device=obs[0].device)
    logits = [F.normalize(_net(plugin.phi, o), dim=-1) @ z.T for o in obs]
    return _confusion_view("APS", logits, "argmax_z phi(s).z of each visited state")


def metra_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    phi = [_net(plugin.phi, o).cpu().numpy() for o in obs]
    # z itself, or for one-hot skills the centred, D/(D-1)-scaled direction METRA rewards.
    directions = np.stack([plugin.reward_direction(torch.as_tensor(z)[None]).float().cpu().numpy()[0] for z in skills])
    paths = [p - p[0] for p in phi]
    scores = [float(p[-1] @ d) for p, d in zip(paths, directions)]  # (phi(s_T) - phi(s_0)) . z
    return MethodView(
        "phi",
        "METRA: phi(s_t) - phi(s_0) along each skill, z as arrows",
        "phi_displacement_along_z",
        scores,
        paths=paths,
        arrows=directions,
    )


def cic_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    z = torch.as_tensor(np.stack(skills), dtype=torch.float32, device=obs[0].device)
    queries = F.normalize(_net(plugin.skill_net, z), dim=-1)  # the skills' embeddings
    keys = []
    for o in obs:
        state = _net(plugin.state_net, o)
        keys.append(F.normalize(_net(plugin.pred_net, torch.cat([state[:-1], state[1:]], dim=-1)), dim=-1))
    # Skill identification: share of a rollout's transitions closest to its own skill's embedding.
    scores = [float(((k @ queries.T).argmax(-1) == i).float().mean()) for i, k in enumerate(keys)]
    return MethodView(
        "embedding",
        "CIC: transition embeddings g(f(s), f(s')) (dots) and skill embeddings (stars)",
        "contrastive_accuracy",
        scores,
        paths=[k.cpu().numpy() for k in keys],
        arrows=queries.cpu().numpy(),
    )


def becl_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    # BeCL pulls states of one skill's behaviour together: each rollout's state embeddings beside
    # its mean; score = share of its states closest (cosine) to its own rollout's mean.
    embeds = [F.normalize(_net(plugin.becl, o), dim=-1) for o in obs]
    centres = F.normalize(torch.stack([e.mean(0) for e in embeds]), dim=-1)
    scores = [float(((e @ centres.T).argmax(-1) == i).float().mean()) for i, e in enumerate(embeds)]
    return MethodView(
        "embedding",
        "BeCL: state embeddings (dots) and each skill's mean embedding (stars)",
        "embedding_identification",
        scores,
        paths=[e.cpu().numpy() for e in embeds],
        arrows=centres.cpu().numpy(),
    )


def cesd_view(plugin, obs: list[torch.Tensor], skills: list) -> MethodView:
    # CeSD constrains each skill to its own prototype's cluster of states: the confusion matrix of
    # the most likely prototype of each visited state, over the skills rolled out.
    idx = _gallery_indices(skills)
    probs = [plugin.cluster_probs(o, analysis=True).float()[:, idx] for o in obs]
    return _confusion_view("CeSD", probs, "most likely prototype (skill cluster) of each visited state")


ADAPTERS: dict[str, Callable[..., MethodView]] = {
    "diayn": diayn_view,
    "smm": smm_view,
    "aps": aps_view,
    "metra": metra_view,
    "cic": cic_view,
    "becl": becl_view,
    "cesd": cesd_view,
}


@torch.no_grad()
def method_view(plugin: Plugin, observations: list[np.ndarray], skills: list) -> tuple[MethodView | None, list[float]]:
    """The method's own view of the rollouts (None: none known) and its mean intrinsic reward per rollout."""
    device = next(plugin.parameters()).device
    obs = [torch.as_tensor(o, device=device) for o in observations]
    intrinsic = mean_intrinsic_reward(plugin, obs, skills)
    adapter = ADAPTERS.get(plugin.name)
    if adapter is None or any(z is None for z in skills):
        return None, intrinsic
    return adapter(plugin, obs, skills), intrinsic
