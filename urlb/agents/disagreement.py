"""Disagreement: Pathak et al., "Self-Supervised Exploration via Disagreement" (2019)."""

from __future__ import annotations

import torch
from torch import nn

from urlb.agents.base import Metrics, Plugin, check_option
from urlb.agents.icm import TRANSITIONS, successor
from urlb.nets import adam, mlp
from urlb.replay import Batch


class Disagreement(Plugin):
    """Disagreement (Pathak et al., 2019) as in URLB: an ensemble of forward models trained on
    their own L2 prediction errors; reward = variance of their predictions across the ensemble
    (unbiased), averaged over state dimensions."""

    name = "disagreement"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        ensemble_size: int = 5,
        transition: str = "nstep",
    ) -> None:
        super().__init__(obs_dim, action_dim)
        check_option("Disagreement", "transition", transition, TRANSITIONS)
        if ensemble_size < 2:
            raise ValueError(f"ensemble_size={ensemble_size}: a variance needs at least 2 models")
        self.transition = transition
        self.reads_one_step = transition == "1step"
        # URLB leaves these at PyTorch's default initialisation (no orthogonal init), so do we:
        # the models' initial spread is part of what the early reward measures.
        self.ensemble = nn.ModuleList(
            mlp(obs_dim + action_dim, hidden_dim, obs_dim, num_hidden=1) for _ in range(ensemble_size)
        )
        self.optimizer = self.add_optimizer("optimizer", adam(self.parameters(), lr=lr))

    def predictions(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every model's predicted next state, shape (models, B, obs_dim)."""
        inputs = torch.cat([obs, action], dim=-1)
        return torch.stack([model(inputs).float() for model in self.ensemble])

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        next_obs = successor(batch, self.transition).float()
        # Mean over samples and models of each model's L2 error.
        loss = (self.predictions(batch.obs, batch.action) - next_obs).norm(dim=-1).mean()
        self.step(self.optimizer, loss, with_encoder=True)
        reward = self.intrinsic_reward(batch)  # after the step, as URLB
        return reward, {"disagreement_loss": loss.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        preds = self.predictions(batch.obs, batch.action)
        return preds.var(dim=0, unbiased=True).mean(dim=-1, keepdim=True)
