"""SMM: Lee et al., "Efficient Exploration via State Marginal Matching" (2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, OneHotSkills, Plugin
from urlb.nets import adam, mlp, weight_init
from urlb.replay import Batch


class VAE(nn.Module):
    """Density model of (state, skill) pairs: Gaussian encoder, deterministic decoder."""

    def __init__(self, in_dim: int, code_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.enc = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim), nn.ReLU())
        self.enc_mu = nn.Linear(hidden_dim, code_dim)
        self.enc_logvar = nn.Linear(hidden_dim, code_dim)
        self.dec = mlp(code_dim, hidden_dim, in_dim, num_hidden=2)

    def losses(
        self, x: torch.Tensor, beta: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(beta * KL + mean squared reconstruction error, per-sample summed squared error (B, 1)),
        with one reparameterised code sample per input."""
        h = self.enc(x)
        mu, logvar = self.enc_mu(h).float(), self.enc_logvar(h).float()
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        code = eps * (0.5 * logvar).exp() + mu
        sq_error = (x.float() - self.dec(code).float()).pow(2)
        kl = (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
        return beta * kl + sq_error.mean(), sq_error.sum(dim=1, keepdim=True)


class SMM(OneHotSkills, Plugin):
    """SMM (Lee et al., 2019) as in URLB: one-hot skills z; a VAE models p(s, z) and a
    discriminator q(z|s). reward = state_ent_coef * ||(s,z) - VAE(s,z)||^2
    + latent_ent_coef * log(z_dim) + latent_cond_ent_coef * CE(q(.|s), z), with both errors
    taken before the models' optimiser steps (URLB's order)."""

    name = "smm"
    # URLB draws a new one-hot z at every episode start only, in pre-training and fine-tuning
    # alike (its update_meta never sees the last step of an episode, so z never changes inside one).
    update_skill_every_step = 0
    finetune_skill_selection = "resample"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_dim: int = 1024,
        z_dim: int = 4,
        sp_lr: float = 1e-3,
        vae_lr: float = 1e-2,
        vae_beta: float = 0.5,
        state_ent_coef: float = 1.0,
        latent_ent_coef: float = 1.0,
        latent_cond_ent_coef: float = 1.0,
        vae_code_dim: int = 128,
        vae_hidden_dim: int = 150,
    ) -> None:
        super().__init__(obs_dim, action_dim)
        if z_dim < 1:
            raise ValueError(f"z_dim={z_dim}: SMM needs at least one skill")
        self.skill_dim, self.vae_beta = z_dim, vae_beta
        self.coefs = (state_ent_coef, latent_ent_coef, latent_cond_ent_coef)
        self.discriminator = mlp(obs_dim, hidden_dim, z_dim, num_hidden=2)
        self.vae = VAE(obs_dim + z_dim, vae_code_dim, vae_hidden_dim)
        self.apply(weight_init)
        self.pred_optimizer = self.add_optimizer("pred_optimizer", adam(self.discriminator.parameters(), lr=sp_lr))
        self.vae_optimizer = self.add_optimizer("vae_optimizer", adam(self.vae.parameters(), lr=vae_lr))

    def _terms(self, batch: Batch, generator: torch.Generator | None = None):
        """(VAE loss, VAE error h(s,z) (B,1), discriminator cross-entropy h(z|s) (B,1), its logits)."""
        obs, z = batch.obs.float(), batch.skill.float()
        vae_loss, h_s_z = self.vae.losses(torch.cat([obs, z], dim=1), self.vae_beta, generator)
        logits = self.discriminator(obs.detach()).float()  # URLB: the pixel encoder learns through the VAE only
        h_z_s = F.cross_entropy(logits, z.argmax(dim=1), reduction="none")[:, None]
        return vae_loss, h_s_z, h_z_s, logits

    def _reward(self, h_s_z: torch.Tensor, h_z_s: torch.Tensor) -> torch.Tensor:
        state_coef, latent_coef, cond_coef = self.coefs
        return state_coef * h_s_z + latent_coef * math.log(self.skill_dim) + cond_coef * h_z_s

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        vae_loss, h_s_z, h_z_s, logits = self._terms(batch)
        pred_loss = h_z_s.mean()
        self.step(self.vae_optimizer, vae_loss, with_encoder=True)
        self.step(self.pred_optimizer, pred_loss)
        reward = self._reward(h_s_z.detach(), h_z_s.detach())
        # Cross-entropy below log(z_dim) (chance) and accuracy above 1/z_dim: q(z|s) tells skills apart.
        accuracy = (logits.argmax(dim=1) == batch.skill.argmax(dim=1)).float().mean()
        return reward, {
            "smm_vae_loss": vae_loss.item(),
            "smm_pred_loss": pred_loss.item(),
            "smm_pred_accuracy": accuracy.item(),
            "smm_state_error": h_s_z.mean().item(),
        }

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """The reward of ``update`` with the current networks; the VAE's code sample comes from a
        fixed-seed generator, so analysis tools get the same value for the same batch."""
        generator = torch.Generator(device=batch.obs.device).manual_seed(0)
        _, h_s_z, h_z_s, _ = self._terms(batch, generator)
        return self._reward(h_s_z, h_z_s)
