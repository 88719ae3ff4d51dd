"""CeSD: Bai et al., "Constrained Ensemble Exploration for Unsupervised Skill Discovery" (ICML 2024)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, OneHotSkills, Plugin
from urlb.agents.proto import sinkhorn_knopp
from urlb.errors import ConfigError
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied at once: (E, B, in) -> (E, B, out). Initialised as
    CeSD's ``VectorizedLinear`` (kaiming-uniform weights of shape (in, out) per member, so the
    fan-in torch computes is ``out``); weight (E, in, out), bias (E, 1, out)."""

    def __init__(self, in_features: int, out_features: int, ensemble_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        for member in range(ensemble_size):
            nn.init.kaiming_uniform_(self.weight[member], a=math.sqrt(5))
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight[0])
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class EnsembleCritic(nn.Module):
    """CeSD's critic (``agent/ensemble_ddpg.py``): a shared trunk on (state, action) of width
    hidden_dim/2 and two Q heads with one member per skill, each (E, B, 1). The skill is not an
    input: the backbone feeds concat(state, skill), whose last ``ensemble_size`` entries are
    dropped."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, ensemble_size: int) -> None:
        super().__init__()
        self.ensemble_size, trunk_dim = ensemble_size, hidden_dim // 2
        self.trunk = nn.Sequential(nn.Linear(obs_dim + action_dim, trunk_dim), nn.LayerNorm(trunk_dim), nn.Tanh())

        def make_q() -> nn.Sequential:
            return nn.Sequential(
                EnsembleLinear(trunk_dim, hidden_dim, ensemble_size),
                nn.ReLU(),
                EnsembleLinear(hidden_dim, 1, ensemble_size),
            )

        self.q1, self.q2 = make_q(), make_q()
        self.apply(weight_init)  # the trunk's Linear only, as in the public code

    def forward(self, obs_and_skill: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs_and_skill[..., : -self.ensemble_size]
        h = self.trunk(torch.cat([obs, action], dim=-1))
        h = h.unsqueeze(0).expand(self.ensemble_size, *h.shape)
        return self.q1(h), self.q2(h)


class SkillContrast(nn.Module):
    """CeSD's CIC module: state embedding f, transition predictor g(f(s), f(s')) and a skill
    projection (CIC's ``next_state_net`` is built there but never used; it is left out)."""

    def __init__(self, obs_dim: int, skill_dim: int, hidden_dim: int, project_skill: bool) -> None:
        super().__init__()
        self.state_net = mlp(obs_dim, hidden_dim, skill_dim)
        self.pred_net = mlp(2 * skill_dim, hidden_dim, skill_dim)
        self.skill_net = mlp(skill_dim, hidden_dim, skill_dim) if project_skill else nn.Identity()
        self.apply(weight_init)

    def loss(self, obs: torch.Tensor, next_obs: torch.Tensor, skill: torch.Tensor, temperature: float) -> torch.Tensor:
        """CIC's NCE loss per sample (B,): denominator sum_j exp(q_i.k_j/T) - e^{1/T}, clamped."""
        query = F.normalize(self.skill_net(skill), dim=1)
        key = F.normalize(self.pred_net(torch.cat([self.state_net(obs), self.state_net(next_obs)], 1)), dim=1)
        negatives = torch.exp(query @ key.T / temperature).sum(dim=-1)
        eps = 1e-6
        negatives = torch.clamp(negatives - math.e ** (1 / temperature), min=eps)
        positives = torch.exp((query * key).sum(dim=-1) / temperature)
        return -torch.log(positives / (negatives + eps))


class CeSD(OneHotSkills, Plugin):
    """CeSD (Bai et al., 2024): one skill per member of an ensemble critic. Next states are
    assigned to ``ensemble_size`` prototypes (a sample of the softmax over prototype scores);
    member i learns only from the states of cluster i, rewarded with their particle entropy
    within the cluster plus constrain_factor / (1 + number of them collected by other skills).

    As ``agent/cesd.py``: the CIC contrastive loss trains the state embedding that clusters and
    entropies use; prototypes learn to predict the Sinkhorn assignment of s' from s; clusters of
    at most 16 states get reward 0 (their member still learns from them); the distance
    normaliser is the running variance. The backbone takes the member mask through
    ``critic_mask`` and the actor maximises each sample's own skill member through
    ``actor_value``. Fine-tuning holds one random skill."""

    name = "cesd"
    obs_types = ("states",)  # the public ensemble critic has no pixel path
    finetune_skill_selection = "random"  # finetune.py draws one skill with init_meta and keeps it
    min_cluster = 16  # clusters of at most this many states get reward 0 (their member still learns from them)

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        ensemble_size: int = 16,
        update_skill_every_step: int = 50,
        project_skill: bool = True,
        update_rep: bool = True,
        temp: float = 0.5,
        proto_T: float = 0.1,
        proto_num_iters: dict | None = None,
        constrain_factor: dict | None = None,
        domain: str = "walker",
        knn_k: int = 16,
        knn_clip: float = 0.0005,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        proto_num_iters = dict(proto_num_iters or {"walker": 6, "quadruped": 5, "jaco": 4})
        constrain_factor = dict(constrain_factor or {"walker": 1.0, "quadruped": 1.0, "jaco": 0.1})
        for key, table in (("proto_num_iters", proto_num_iters), ("constrain_factor", constrain_factor)):
            if domain not in table:
                raise ConfigError(f"CeSD {key} has no entry for domain {domain!r}; it has: {', '.join(table)}")
        self.skill_dim = self.ensemble_size = ensemble_size
        self.update_skill_every_step, self.update_rep, self.temp = update_skill_every_step, update_rep, temp
        self.proto_T, self.proto_num_iters = proto_T, int(proto_num_iters[domain])
        self.constrain_factor, self.knn_k, self.knn_clip = float(constrain_factor[domain]), knn_k, knn_clip
        self.hidden_dim = hidden_dim
        self.cic = SkillContrast(obs_dim, ensemble_size, hidden_dim, project_skill)
        self.protos = nn.Linear(ensemble_size, ensemble_size, bias=False)
        weight_init(self.protos)
        # CeSD's RMS of kNN distances: mean 0, variance 1, count 1e-4 at the start.
        self.register_buffer("distance_mean", torch.zeros(1))
        self.register_buffer("distance_var", torch.ones(1))
        self.register_buffer("distance_count", torch.full((1,), 1e-4, dtype=torch.float64))
        self.cic_optimizer = self.add_optimizer("cic_optimizer", adam(self.cic.parameters(), lr=lr))
        self.proto_optimizer = self.add_optimizer("proto_optimizer", adam(self.protos.parameters(), lr=lr))
        self._member_mask: torch.Tensor | None = None

    # --- what the backbone asks of a method with an ensemble critic ---
    def make_critic(self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> nn.Module:
        if obs_type != "states":
            raise ConfigError("agent=cesd runs on obs_type=states (the public ensemble critic has no pixel path)")
        return EnsembleCritic(in_dim - self.ensemble_size, action_dim, hidden_dim, self.ensemble_size)

    def critic_mask(self) -> torch.Tensor | None:
        """(E, B, 1): 1 where member e learns from sample b (b's next state in cluster e)."""
        return self._member_mask

    def actor_value(self, q: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2) (E, B, 1) masked to each sample's own skill member; its mean over all E x B
        entries is what CeSD's actor maximises."""
        return skill.T.unsqueeze(-1) * q

    # --- prototypes ---
    def _normalised_prototypes(self) -> None:
        with torch.no_grad():
            self.protos.weight.data.copy_(F.normalize(self.protos.weight.data, dim=1, p=2))

    def _prototype_scores(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = F.normalize(self.cic.state_net(obs), dim=1, p=2)
        return self.protos(z)

    def cluster_probs(self, obs: torch.Tensor, analysis: bool = False) -> torch.Tensor:
        """softmax(prototype scores / proto_T) per state (B, E). Training normalises the
        prototypes in place first, as the public code; ``analysis`` scores with a normalised
        copy and changes nothing."""
        if not analysis:
            self._normalised_prototypes()
            return F.softmax(self._prototype_scores(obs) / self.proto_T, dim=1)
        with torch.no_grad():
            z = F.normalize(self.cic.state_net(obs), dim=1, p=2)
            scores = z @ F.normalize(self.protos.weight, dim=1, p=2).T
        return F.softmax(scores / self.proto_T, dim=1)

    def assign_clusters(self, next_obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A cluster index per state (B,), drawn from ``cluster_probs``: in training with torch's
        global generator, as the public code; with ``generator``, for analysis."""
        if generator is None:
            return torch.distributions.Categorical(self.cluster_probs(next_obs)).sample()
        probs = self.cluster_probs(next_obs, analysis=True)
        return torch.multinomial(probs, 1, replacement=True, generator=generator)[:, 0]

    def prototype_loss(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of softmax(scores(s) / T) against the Sinkhorn assignment of s'."""
        self._normalised_prototypes()
        log_p = F.log_softmax(self._prototype_scores(obs) / self.proto_T, dim=1)
        with torch.no_grad():
            target = sinkhorn_knopp(self._prototype_scores(next_obs) / self.proto_T, self.proto_num_iters)
        return -(target * log_p).sum(dim=1).mean()

    # --- reward ---
    @torch.no_grad()
    def _entropy(self, features: torch.Tensor, update_stats: bool) -> torch.Tensor:
        """APT particle entropy (B_c,) of one cluster's embeddings, as CeSD's compute_apt_reward:
        k averaged neighbours (self included) divided by the running variance (updated with
        this cluster's distances first), clipped, log(1 + mean)."""
        dist = torch.cdist(features, features, compute_mode="donot_use_mm_for_euclid_dist")
        dist = dist.topk(self.knn_k, dim=1, largest=False, sorted=True).values
        if update_stats:
            # count as a Python float, as CeSD's RMS keeps it
            count, n = float(self.distance_count), dist.numel()
            delta = dist.mean() - self.distance_mean
            total = count + n
            self.distance_var.copy_((self.distance_var * count + dist.var() * n + delta**2 * count * n / total) / total)
            self.distance_mean.add_(delta * n / total)
            self.distance_count.add_(n)
        dist = torch.clamp(dist / self.distance_var - self.knn_clip, min=0.0)
        return torch.log(dist.mean(dim=1) + 1.0)

    @torch.no_grad()
    def cluster_reward(
        self, next_obs: torch.Tensor, skill: torch.Tensor, cluster: torch.Tensor, update_stats: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward (B, 1) and member mask (E, B, 1) for next states assigned to ``cluster``."""
        reward = torch.zeros(len(next_obs), device=next_obs.device)
        skill_index = skill.argmax(-1)
        for member in range(self.ensemble_size):
            rows = cluster == member
            if int(rows.sum()) > self.min_cluster:
                others = (skill_index[rows] != member).sum()
                bonus = 1.0 / (1.0 + others)
                entropy = self._entropy(self.cic.state_net(next_obs[rows]), update_stats)
                reward[rows] = entropy + bonus * self.constrain_factor
        members = torch.arange(self.ensemble_size, device=cluster.device)
        mask = (cluster[None, :] == members[:, None]).float().unsqueeze(-1)
        return reward.unsqueeze(-1), mask

    # --- learning ---
    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        metrics: Metrics = {}
        obs, next_obs, skill = batch.obs, batch.next_obs, batch.skill
        if self.update_rep:
            loss = self.cic.loss(obs, next_obs, skill, self.temp).mean()
            self.step(self.cic_optimizer, loss)
            metrics["cesd_cic_loss"] = loss.detach()
        cluster = self.assign_clusters(next_obs)
        reward, self._member_mask = self.cluster_reward(next_obs, skill, cluster)
        # The public code steps the prototypes after the actor; nothing in between reads them.
        proto_loss = self.prototype_loss(obs, next_obs)
        self.step(self.proto_optimizer, proto_loss)
        sizes = self._member_mask.sum(dim=(1, 2))
        metrics["cesd_proto_loss"] = proto_loss.detach()
        metrics["cesd_rewarded_clusters"] = (sizes > self.min_cluster).float().sum()
        return reward, metrics

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """The reward of a cluster draw from a generator seeded 0 afresh (the same figures on
        every call, torch's global random state untouched); the running variance normalises but
        is not updated."""
        generator = torch.Generator(batch.next_obs.device).manual_seed(0)
        cluster = self.assign_clusters(batch.next_obs, generator)
        return self.cluster_reward(batch.next_obs, batch.skill, cluster, update_stats=False)[0]
