"""DDPG as in URLB: the one update loop every method shares.

A pre-training method is a :class:`urlb.agents.base.Plugin`. In reward-free mode the backbone
asks the plugin to train itself on the sampled batch and to relabel the batch with its
intrinsic reward; otherwise the task reward stored in replay is used.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from urlb.nets import Actor, Critic, Encoder, RandomShiftsAug, adam
from urlb.replay import Batch
from urlb.seeds import (
    SeedStreams,
    first_bad_seed,
    load_optimizer_seed_state,
    load_seed_state,
    optimizer_seed_state,
    seed_mean,
    seed_state,
)

if TYPE_CHECKING:
    from urlb.agents.base import Plugin


class NonFiniteError(RuntimeError):
    """A loss, reward or parameter became NaN or infinite (``seed``: in which seed's run)."""

    def __init__(self, message: str, seed: int | None = None) -> None:
        super().__init__(message)
        self.seed = seed


def schedule(spec: str | float, step: int) -> float:
    """A constant (``0.2``) or ``linear(init,final,duration)`` in steps, as in DrQ-v2."""
    try:
        return float(spec)
    except ValueError:
        match = re.fullmatch(r"linear\((.+),(.+),(.+)\)", str(spec).replace(" ", ""))
        if not match:
            raise ValueError(f"bad schedule {spec!r}; use a number or linear(init,final,steps)") from None
        init, final, duration = (float(g) for g in match.groups())
        mix = min(max(step / duration, 0.0), 1.0)
        return (1.0 - mix) * init + mix * final


# URLB's TruncatedNormal keeps samples this far inside [-1, 1].
ACTION_EPS = 1e-6


def straight_through_clamp(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [-1+eps, 1-eps] in value, identity in gradient (URLB ``TruncatedNormal._clamp``):
    saturated samples still pass the critic's gradient to the actor."""
    return x - x.detach() + x.detach().clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS)


def noisy_action(mean: torch.Tensor, std: float, clip: float | None, streams: SeedStreams) -> torch.Tensor:
    """URLB's TruncatedNormal sample: mean (S, ...) plus Gaussian noise drawn from each seed's
    stream (clipped to [-clip, clip] when ``clip`` is given: in the updates; not when acting),
    then the straight-through clamp."""
    noise = streams.randn(*mean.shape[1:]) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return straight_through_clamp(mean + noise)


def check_finite(name: str, value: torch.Tensor, step: int, seeds: list[int]) -> None:
    """``value`` (S, ...): a non-finite entry stops the run, naming the seed it belongs to."""
    bad = first_bad_seed(value)
    if bad is not None:
        raise NonFiniteError(
            f"seed {seeds[bad]}: non-finite {name} at update step {step}; the run stops here", seeds[bad]
        )


# inductor generates fused kernels (needs a C++ compiler on CPU); aot_eager traces forward and
# backward without code generation, a cheap check that the networks compile.
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


class DDPGAgent(nn.Module):
    """URLB DDPG: double-Q critic, deterministic actor with Gaussian exploration noise.

    Built for one seed; :func:`urlb.agents.build_agent` stacks several along the seed dimension
    (see :mod:`urlb.seeds`). Batches, actions and metrics carry that dimension first."""

    def __init__(
        self,
        obs_type: str,
        obs_shape: tuple[int, ...],
        action_dim: int,
        device: str | torch.device = "cpu",
        hidden_dim: int = 1024,
        feature_dim: int = 50,
        lr: float = 1e-4,
        critic_target_tau: float = 0.01,
        stddev_schedule: str | float = 0.2,
        stddev_clip: float = 0.3,
        plugin: Plugin | None = None,
        reward_free: bool = False,
        precision: str = "fp32",
        compile_backend: str | None = None,
    ) -> None:
        super().__init__()
        self.obs_type, self.action_dim = obs_type, action_dim
        self.device = torch.device(device)
        self.tau, self.stddev_schedule, self.stddev_clip = critic_target_tau, stddev_schedule, stddev_clip
        self.reward_free = reward_free
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; valid: bf16, fp32")
        self.bf16 = precision == "bf16"
        if obs_type == "pixels":
            self.encoder: nn.Module = Encoder(obs_shape)
            self.aug: nn.Module = RandomShiftsAug(pad=4)
            feat_dim = self.encoder.repr_dim
        else:
            self.encoder, self.aug = nn.Identity(), nn.Identity()
            feat_dim = int(np.prod(obs_shape))
        self.feat_dim = feat_dim
        self.plugin = plugin
        self.skill_dim = plugin.skill_dim if plugin is not None else 0
        in_dim = feat_dim + self.skill_dim
        self.actor = Actor(obs_type, in_dim, action_dim, feature_dim, hidden_dim)
        # A plugin may replace the critic (APS: successor features); same inputs and outputs.
        make_critic = getattr(plugin, "make_critic", None) or Critic
        self.critic = make_critic(obs_type, in_dim, action_dim, feature_dim, hidden_dim)
        self.critic_target = make_critic(obs_type, in_dim, action_dim, feature_dim, hidden_dim)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.to(self.device)
        self.actor_opt = adam(self.actor.parameters(), lr=lr)
        # The encoder learns through the critic loss only (DrQ-v2/URLB).
        critic_params = list(self.critic.parameters()) + list(self.encoder.parameters())
        self.critic_opt = adam(critic_params, lr=lr)
        if compile_backend is not None:
            self.compile_networks(compile_backend)
        self.set_seeds([0])
        self.train()

    def set_seeds(self, seeds: list[int]) -> None:
        """The seeds this agent holds (one per slice of its seed dimension) and their random
        streams; a single seed draws from torch's default generator, as before seeds stacked."""
        self.seeds = [int(s) for s in seeds]
        self.streams = SeedStreams(self.seeds, self.device)
        if self.plugin is not None:
            self.plugin.streams = self.streams

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    def compile_networks(self, backend: str) -> None:
        """torch.compile every network in place (``Module.compile`` keeps state_dict keys, so
        snapshots stay interchangeable with uncompiled runs). Acting (batch 1) and updating
        (batch B) each compile once; the optimiser steps stay eager."""
        if backend not in COMPILE_BACKENDS:
            raise ValueError(f"unknown compile backend {backend!r}; valid: {', '.join(COMPILE_BACKENDS)}")
        networks = [self.encoder, self.actor, self.critic, self.critic_target]
        if self.plugin is not None:  # plugins call their sub-networks, not their own forward
            networks += [m for m in self.plugin.children() if any(True for _ in m.parameters())]
        for network in networks:
            network.compile(backend=backend, dynamic=False)

    # --- acting ---
    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _policy_input(self, features: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        return features if skill is None else torch.cat([features, skill], dim=-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, skill: np.ndarray | None, step: int, eval_mode: bool) -> np.ndarray:
        """Action for one observation of a single-seed agent (see :meth:`act_seeds`)."""
        skills = None if skill is None else np.asarray(skill)[None]
        return self.act_seeds(np.asarray(obs)[None], skills, step, eval_mode)[0]

    @torch.no_grad()
    def act_seeds(self, obs: np.ndarray, skill: np.ndarray | None, step: int, eval_mode: bool) -> np.ndarray:
        """Actions (S, action_dim) for one observation per seed (S, *obs_shape): the mean in eval
        mode, else mean plus unclipped noise (URLB acts with ``sample(clip=None)``; the clip
        applies in the updates only)."""
        obs_t = torch.as_tensor(obs, device=self.device).unsqueeze(1)  # (S, 1, *obs_shape)
        skill_t = None if skill is None else torch.as_tensor(skill, dtype=torch.float32, device=self.device)[:, None]
        with self._autocast():
            features = self.encoder(obs_t) if self.obs_type == "pixels" else obs_t
            mean = self.actor(self._policy_input(features, skill_t)).float()
        if not eval_mode:
            mean = noisy_action(mean, schedule(self.stddev_schedule, step), None, self.streams)
        return mean[:, 0].cpu().numpy().astype(np.float32)

    # --- learning ---
    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Augmented encoder features for pixels; states pass through unchanged."""
        if self.obs_type != "pixels":
            return obs
        return self.encoder(self.aug(obs, self.streams))

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One backbone update (plugin, critic, actor, target) on a sampled batch (every tensor
        (S, B, ...)); returns per-seed metrics, each a tensor (S,)."""
        metrics: dict[str, torch.Tensor] = {}
        obs = self._encode(batch.obs)
        with torch.no_grad():
            next_obs = self._encode(batch.next_obs)
        reward = batch.reward
        if self.reward_free:
            if self.plugin is None:
                raise ValueError("reward-free training needs a plugin that defines the intrinsic reward")
            plugin_batch = batch
            if self.obs_type == "pixels":  # plugins work on (detached) encoder features
                with torch.no_grad():
                    one_step = self._encode(batch.next_obs_1step)
                plugin_batch = batch._replace(obs=obs.detach(), next_obs=next_obs, next_obs_1step=one_step)
            with self._autocast():
                reward, plugin_metrics = self.plugin.update(plugin_batch, step)
            reward = reward.detach().float()
            metrics.update(plugin_metrics)
            check_finite("intrinsic reward", reward, step, self.seeds)
            metrics["intrinsic_reward"] = seed_mean(reward)
        metrics["batch_reward"] = seed_mean(reward)
        skill = batch.skill
        metrics.update(self._update_critic(obs, batch.action, reward, batch.discount, next_obs, skill, step))
        metrics.update(self._update_actor(obs.detach(), skill, step))
        self._soft_update_target()
        return metrics

    def _update_critic(self, obs, action, reward, discount, next_obs, skill, step: int) -> dict[str, torch.Tensor]:
        std = schedule(self.stddev_schedule, step)
        with torch.no_grad(), self._autocast():
            next_in = self._policy_input(next_obs, skill)
            next_action = noisy_action(self.actor(next_in).float(), std, self.stddev_clip, self.streams)
            target_q1, target_q2 = self.critic_target(next_in, next_action)
            target_q = reward + discount * torch.min(target_q1, target_q2).float()
        with self._autocast():
            q1, q2 = self.critic(self._policy_input(obs, skill), action)
        loss = seed_mean((q1.float() - target_q).pow(2)) + seed_mean((q2.float() - target_q).pow(2))
        check_finite("critic loss", loss, step, self.seeds)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # seeds share no weight: each gets its own loss's gradient
        self.critic_opt.step()
        return {
            "critic_loss": loss.detach(),
            "critic_q1": seed_mean(q1.detach().float()),
            "critic_target_q": seed_mean(target_q),
        }

    def _update_actor(self, obs, skill, step: int) -> dict[str, torch.Tensor]:
        std = schedule(self.stddev_schedule, step)
        # The actor loss must not build gradients for the critic's weights.
        self.critic.requires_grad_(False)
        try:
            with self._autocast():
                policy_in = self._policy_input(obs, skill)
                action = noisy_action(self.actor(policy_in).float(), std, self.stddev_clip, self.streams)
                q1, q2 = self.critic(policy_in, action)
            loss = -seed_mean(torch.min(q1, q2).float())
            check_finite("actor loss", loss, step, self.seeds)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.actor_opt.step()
        finally:
            self.critic.requires_grad_(True)
        return {"actor_loss": loss.detach()}

    @torch.no_grad()
    def _soft_update_target(self) -> None:
        online = list(self.critic.parameters())
        target = list(self.critic_target.parameters())
        torch._foreach_lerp_(target, online, self.tau)

    # --- persistence (per seed, in the single-seed layout: see urlb.seeds) ---
    NETWORKS = ("actor", "critic", "critic_target", "encoder")

    def networks_state(self, index: int = 0) -> dict[str, dict]:
        """State dicts of seed ``index``'s networks and optimisers (a snapshot's payload)."""
        state = {name: seed_state(getattr(self, name).state_dict(), index) for name in self.NETWORKS}
        state["actor_opt"] = optimizer_seed_state(self.actor_opt, index)
        state["critic_opt"] = optimizer_seed_state(self.critic_opt, index)
        if self.plugin is not None:
            state["plugin"] = seed_state(self.plugin.state_dict(), index)
            state["plugin_opt"] = {k: optimizer_seed_state(opt, index) for k, opt in self.plugin.optimizers().items()}
        return state

    def load_networks(self, state: dict[str, dict], parts: tuple[str, ...], index: int = 0) -> None:
        """Load the named parts (e.g. actor, critic, encoder, plugin) of a snapshot payload into
        seed ``index``."""
        for part in parts:
            if part not in state:
                continue
            if part == "plugin_opt":
                for name, opt in self.plugin.optimizers().items():
                    load_optimizer_seed_state(opt, index, state[part][name])
            elif part.endswith("_opt"):
                load_optimizer_seed_state(getattr(self, part), index, state[part])
            else:
                load_seed_state(getattr(self, part), index, state[part])
        if "critic" in parts and "critic_target" not in parts:
            self._copy_critic_to_target(index)

    @torch.no_grad()
    def _copy_critic_to_target(self, index: int) -> None:
        for target, online in zip(self.critic_target.parameters(), self.critic.parameters()):
            target[index].copy_(online[index])

    def init_from(self, state: dict[str, dict], load_plugin: bool = True, index: int = 0) -> None:
        """Fine-tuning initialisation of seed ``index`` from a snapshot payload, as URLB's
        ``init_from`` with ``init_critic: true``: the encoder, the actor and only the critic's
        trunk are copied (the whole critic where the plugin says so: ProtoRL); the Q heads, the
        target critic and every optimiser keep this agent's fresh initialisation.
        ``load_plugin`` also loads the pre-trained plugin (skill selection may need it, e.g. to
        score or regress skills; it never reaches the actor or critic)."""
        missing = [k for k in ("actor", "critic", "encoder") if k not in state]
        if missing:
            raise KeyError(f"snapshot payload lacks {', '.join(missing)}; it needs actor, critic and encoder")
        load_seed_state(self.encoder, index, state["encoder"])
        load_seed_state(self.actor, index, state["actor"])
        if self.plugin is not None and self.plugin.finetune_critic_copy == "all":
            load_seed_state(self.critic, index, state["critic"])
        else:
            trunk = {k[len("trunk.") :]: v for k, v in state["critic"].items() if k.startswith("trunk.")}
            load_seed_state(self.critic.trunk, index, trunk)
        if load_plugin and self.plugin is not None and "plugin" in state:
            load_seed_state(self.plugin, index, state["plugin"])
