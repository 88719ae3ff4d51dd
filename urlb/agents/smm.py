"""SMM: Lee et al., "Efficient Exploration via State Marginal Matching" (2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from urlb.agents.base import Metrics, OneHotSkills, Plugin
from urlb.nets import SeedLinear, adam, mlp, weight_init
from urlb.replay import Batch
from urlb.seeds import SeedStreams, seed_mean


class VAE(nn.Module):
    """Density model of (state, skill) pairs: Gaussian encoder, deterministic decoder (seed
    dimension first: inputs (S, B, D))."""

    def __init__(self, in_dim: int, code_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.enc = nn.Sequential(
            SeedLinear(in_dim, hidden_dim), nn.ReLU(), SeedLinear(hidden_dim, hidden_dim), nn.ReLU()
        )
        self.enc_mu = SeedLinear(hidden_dim, code_dim)
        self.enc_logvar = SeedLinear(hidden_dim, code_dim)
        self.dec = mlp(code_dim, hidden_dim, in_dim, num_hidden=2)

    def losses(self, x: torch.Tensor, beta: float, streams: SeedStreams) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-seed beta * KL + mean squared reconstruction error (S,), per-sample summed squared
        error (S, B, 1)), with one reparameterised code sample per input drawn from each seed's
        stream."""
        h = self.enc(x)
        mu, logvar = self.enc_mu(h).float(), self.enc_logvar(h).float()
        eps = streams.randn(*mu.shape[1:]).to(mu.device)
        code = eps * (0.5 * logvar).exp() + mu
        sq_error = (x.float() - self.dec(code).float()).pow(2)
        kl = (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)).mean(dim=-1)
        return beta * kl + seed_mean(sq_error), sq_error.sum(dim=-1, keepdim=True)


class SMM(OneHotSkills, Plugin):
    """SMM (Lee et al., 2019) as in URLB: one-hot skills z; a VAE models p(s, z) and a
    discriminator q(z|s). reward = state_ent_coef * ||(s,z) - VAE(s,z)||^2
    + latent_ent_coef * log(z_dim) + latent_cond_ent_coef * CE(q(.|s), z), with both errors
    taken before the models' optimiser steps (URLB's order). Tensors carry the seed dimension
    first (S, B, ...); losses are averaged within each seed's batch and the VAE's code noise
    comes from each seed's stream."""

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

    def _streams(self, obs: torch.Tensor) -> SeedStreams:
        """The backbone's per-seed streams; a plugin used on its own (one seed) draws from
        torch's default generator, as before seeds were stacked."""
        if self.streams is not None:
            return self.streams
        if obs.shape[0] != 1:
            raise RuntimeError(f"SMM got a batch of {obs.shape[0]} seeds but has no random streams; set plugin.streams")
        return SeedStreams([0], obs.device)

    def _terms(self, batch: Batch, streams: SeedStreams):
        """(VAE loss (S,), VAE error h(s,z) (S,B,1), discriminator cross-entropy h(z|s) (S,B,1),
        its logits (S,B,K))."""
        obs, z = batch.obs.float(), batch.skill.float()
        vae_loss, h_s_z = self.vae.losses(torch.cat([obs, z], dim=-1), self.vae_beta, streams)
        logits = self.discriminator(obs).float()
        labels = z.argmax(dim=-1)
        h_z_s = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(*labels.shape, 1)
        return vae_loss, h_s_z, h_z_s, logits

    def _reward(self, h_s_z: torch.Tensor, h_z_s: torch.Tensor) -> torch.Tensor:
        state_coef, latent_coef, cond_coef = self.coefs
        return state_coef * h_s_z + latent_coef * math.log(self.skill_dim) + cond_coef * h_z_s

    def update(self, batch: Batch, step: int) -> tuple[torch.Tensor, Metrics]:
        vae_loss, h_s_z, h_z_s, logits = self._terms(batch, self._streams(batch.obs))
        pred_loss = seed_mean(h_z_s)
        self.step(self.vae_optimizer, vae_loss)
        self.step(self.pred_optimizer, pred_loss)
        reward = self._reward(h_s_z.detach(), h_z_s.detach())
        # Cross-entropy below log(z_dim) (chance) and accuracy above 1/z_dim: q(z|s) tells skills apart.
        accuracy = seed_mean((logits.argmax(dim=-1) == batch.skill.argmax(dim=-1)).float())
        return reward, {
            "smm_vae_loss": vae_loss.detach(),
            "smm_pred_loss": pred_loss.detach(),
            "smm_pred_accuracy": accuracy,
            "smm_state_error": seed_mean(h_s_z.detach()),
        }

    @torch.no_grad()
    def intrinsic_reward(self, batch: Batch) -> torch.Tensor:
        """The reward of ``update`` with the current networks; the VAE's code sample comes from a
        fixed-seed generator (seed 0, fresh for every seed of the stack), so analysis tools get
        the same value for the same batch and the training streams are not touched."""
        device = batch.obs.device
        fixed = SeedStreams([0] * batch.obs.shape[0], device)
        # Private generators (a single SeedStreams stream would be torch's default one).
        fixed.generators = [torch.Generator(device=device).manual_seed(0) for _ in fixed.seeds]
        _, h_s_z, h_z_s, _ = self._terms(batch, fixed)
        return self._reward(h_s_z, h_z_s)
