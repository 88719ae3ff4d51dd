"""DIAYN: Eysenbach et al., "Diversity is All You Need: Learning Skills without a Reward
Function" (2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from urlb.agents.base import Metrics, OneHotSkills, Plugin
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch


class DIAYN(OneHotSkills, Plugin):
    """DIAYN (Eysenbach et al., 2018): a discriminator q(z|s') over one-hot skills;
    reward = log q(z|s') - log p(z) with a uniform prior p(z) = 1/skill_dim.

    As URLB's ``agent/diayn.py``: q is trained on s' = s_{t+n} (cross-entropy) and the reward is
    computed with q after its optimiser step."""

    name = "diayn"
    # URLB fine-tunes DIAYN with a random one-hot redrawn every 50 steps and at episode starts.
    finetune_skill_selection = "resample"
    encoder_grad = ("next_obs",)  # pixels: the encoder learns through the discriminator on s'

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        lr: float = 1e-4,
        skill_dim: int = 16,
        update_skill_every_step: int = 50,
        scale: float = 1.0,
        reward_after_update: bool = True,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        self.skill_dim, self.update_skill_every_step, self.scale = skill_dim, update_skill_every_step, scale
        self.reward_after_update = reward_after_update
        self.discriminator = mlp(obs_dim, hidden_dim, skill_dim)
        self.apply(weight_init)
        self.optimizer = self.add_optimizer("optimizer", adam(self.discriminator.parameters(), lr=lr))

    def _reward_from_logits(self, logits: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        log_q = F.log_softmax(logits, dim=-1).gather(1, skill.argmax(-1, keepdim=True))
        return self.scale * (log_q - math.log(1.0 / self.skill_dim))

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        logits = self.discriminator(batch.next_obs)
        labels = batch.skill.argmax(-1)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()  # URLB: before the step
        self.step(self.optimizer, loss, with_encoder=True)
        if self.reward_after_update:  # URLB: the reward uses the discriminator after its step
            with torch.no_grad():
                logits = self.discriminator(batch.next_obs)
        reward = self._reward_from_logits(logits.detach().float(), batch.skill)
        return reward, {"diayn_loss": loss.item(), "diayn_accuracy": accuracy.item()}

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        return self._reward_from_logits(self.discriminator(batch.next_obs).float(), batch.skill)
