"""APS: Liu & Abbeel, "APS: Active Pretraining with Successor Features" (2021)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.agents.rewards import ParticleEntropy
from urlb.nets import Critic, adam, mlp, weight_init
from urlb.replay import Batch

# How fine-tuning infers the task vector w from features phi (N, d) and task rewards r (N,):
# URLB calls lstsq(r, phi), i.e. regresses the features on the reward, w ∝ phi^T r;
# "reward_on_features" solves the APS paper's r ≈ phi w for w.
TASK_REGRESSIONS = ("features_on_reward", "reward_on_features")
# Which phi the fine-tuning task inference uses. URLB's fine-tuning copies only the encoder, actor
# and critic trunk from the snapshot (APSAgent has no init_from of its own), so its regression
# runs on a freshly initialised phi; "pretrained" uses the snapshot's phi (the paper's intent).
REGRESS_FEATURES = ("fresh", "pretrained")


@torch.no_grad()
def infer_task(features: torch.Tensor, reward: torch.Tensor, mode: str = "features_on_reward") -> np.ndarray | None:
    """Unit task vector from features (N, d) and rewards (N,) by ``mode`` (TASK_REGRESSIONS);
    None when the rewards determine no direction (e.g. all zero)."""
    phi, r = features.double(), reward.reshape(-1, 1).double().to(features.device)
    if mode == "features_on_reward":
        w = torch.linalg.lstsq(r, phi).solution[0]  # (r.r)^-1 r^T phi
    elif mode == "reward_on_features":
        w = torch.linalg.lstsq(phi, r).solution[:, 0]
    else:
        raise ValueError(f"unknown task_regression {mode!r}; valid: {', '.join(TASK_REGRESSIONS)}")
    norm = w.norm()
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        return None
    return (w / norm).float().cpu().numpy()


class SuccessorFeatureCritic(Critic):
    """URLB's CriticSF: the backbone critic whose two heads output successor features psi
    (sf_dim each) instead of a value; Q = w . psi with w the task, the input's last sf_dim
    entries (the backbone feeds the critic concat(features, skill))."""

    def __init__(
        self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int, sf_dim: int
    ) -> None:
        super().__init__(obs_type, in_dim, action_dim, feature_dim, hidden_dim, out_dim=sf_dim)
        self.sf_dim = sf_dim

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        psi1, psi2 = super().forward(obs, action)
        task = obs[..., -self.sf_dim :]
        return (task * psi1).sum(-1, keepdim=True), (task * psi2).sum(-1, keepdim=True)


class APS(Plugin):
    """APS (Liu & Abbeel, 2021) as in URLB: unit-norm successor features phi(s) and unit task
    vectors w; phi maximises w . phi(s'); reward = APT particle entropy of phi(s') (unnormalised)
    + w . phi(s')/|phi(s')|. The critic outputs successor features psi and Q = w . psi."""

    name = "aps"
    finetune_skill_selection = "regress"
    encoder_grad = ("next_obs",)  # pixels: the encoder learns through phi(s') (URLB)

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        sf_dim: int = 10,
        update_task_every_step: int = 5,
        knn_rms: bool = True,
        knn_k: int = 12,
        knn_avg: bool = True,
        knn_clip: float = 0.0001,
        num_init_steps: int = 4096,
        lstsq_batch_size: int = 4096,
        task_regression: str = "features_on_reward",
        regress_features: str = "fresh",
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("APS", "task_regression", task_regression, TASK_REGRESSIONS)
        check_option("APS", "regress_features", regress_features, REGRESS_FEATURES)
        self.regress_features = regress_features
        self.skill_dim, self.update_skill_every_step = sf_dim, update_task_every_step
        self.num_init_steps, self.lstsq_batch_size = num_init_steps, lstsq_batch_size
        self.task_regression = task_regression
        self.phi = mlp(obs_dim, hidden_dim, sf_dim, num_hidden=2)
        self.apply(weight_init)
        # phi as initialised, kept out of the state dict (a list hides it from nn.Module), so that a
        # snapshot load leaves it as URLB's fine-tuning agent has it: freshly initialised.
        self._initial_phi = [copy.deepcopy(self.phi).requires_grad_(False)]
        # URLB's PBE divides distances by their running mean (knn_rms), not their std.
        self.entropy = ParticleEntropy(knn_k, knn_avg, "mean" if knn_rms else "none", knn_clip)
        self.optimizer = self.add_optimizer("optimizer", adam(self.phi.parameters(), lr=lr))

    def make_critic(self, obs_type: str, in_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> Critic:
        """The backbone's critic for APS: successor features contracted with the task."""
        return SuccessorFeatureCritic(obs_type, in_dim, action_dim, feature_dim, hidden_dim, self.skill_dim)

    # --- skills (tasks): uniform on the unit sphere ---
    def sample_skill(self, rng: np.random.Generator) -> np.ndarray:
        w = rng.standard_normal(self.skill_dim).astype(np.float32)
        return w / np.linalg.norm(w)

    def default_skill(self) -> np.ndarray:
        return np.eye(self.skill_dim, dtype=np.float32)[0]

    def features(self, obs: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        rep = self.phi(obs.float()).float()
        return F.normalize(rep, dim=-1) if normalize else rep

    @torch.no_grad()
    def regress_skill(self, obs: torch.Tensor, reward: torch.Tensor) -> np.ndarray | None:
        """The task vector that explains the task reward of ``obs`` in (unit-norm) feature space
        (phi chosen by ``regress_features``); URLB regresses on the observation s_t and the
        batch's n-step reward."""
        if self.regress_features == "pretrained":
            features = self.features(obs)
        else:
            phi = self._initial_phi[0] = self._initial_phi[0].to(obs.device)
            features = F.normalize(phi(obs.float()).float(), dim=-1)
        return infer_task(features, reward, self.task_regression)

    # --- learning ---
    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        task = batch.skill.float()
        loss = -(task * self.features(batch.next_obs)).sum(dim=1).mean()
        self.step(self.optimizer, loss, with_encoder=True)
        with torch.no_grad():  # reward after the step, as URLB: entropy of the unnormalised phi(s')
            rep = self.features(batch.next_obs, normalize=False)
            ent = self.entropy(rep)
            sf = (task * F.normalize(rep, dim=1)).sum(dim=1, keepdim=True)
        return ent + sf, {
            "aps_loss": loss.item(),
            "aps_entropy_reward": ent.mean().item(),
            "aps_sf_reward": sf.mean().item(),
        }

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """The reward ``update`` would give this batch now: the distance statistics are updated
        on a copy (URLB divides by the mean after adding the batch; a fresh mean is 0)."""
        rep = self.features(batch.next_obs, normalize=False)
        ent = copy.deepcopy(self.entropy)(rep)
        return ent + (batch.skill.float() * F.normalize(rep, dim=1)).sum(dim=1, keepdim=True)
