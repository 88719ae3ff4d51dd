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
import torch.nn.functional as F
from torch import nn

from urlb.nets import Actor, Critic, Encoder, RandomShiftsAug, adam
from urlb.replay import Batch

if TYPE_CHECKING:
    from urlb.agents.base import Plugin


class NonFiniteError(RuntimeError):
    """A loss, reward or parameter became NaN or infinite (``seed``: in which seed's run, when
    several seeds train in one process)."""

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


def noisy_action(mean: torch.Tensor, std: float, clip: float | None) -> torch.Tensor:
    """URLB's TruncatedNormal sample: mean plus Gaussian noise (clipped to [-clip, clip] when
    ``clip`` is given: in the updates; not when acting), then the straight-through clamp."""
    noise = torch.randn_like(mean) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return straight_through_clamp(mean + noise)


def check_finite(name: str, value: torch.Tensor, step: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"non-finite {name} at update step {step}; the run stops here")


# Where the pixel encoder learns. urlb: as URLB's agents (plain DDPG through the critic; a
# method through its own loss, or not at all, with detached features for the critic and a frozen
# encoder when fine-tuning). critic: through the critic in every agent and phase, the method
# seeing detached features (DrQ-v2's choice).
ENCODER_UPDATES = ("urlb", "critic")

# inductor generates fused kernels (needs a C++ compiler on CPU); aot_eager traces forward and
# backward without code generation, a cheap check that the networks compile.
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


class DDPGAgent(nn.Module):
    """URLB DDPG: double-Q critic, deterministic actor with Gaussian exploration noise."""

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
        encoder_update: str = "urlb",
    ) -> None:
        super().__init__()
        self.obs_type, self.action_dim = obs_type, action_dim
        self.device = torch.device(device)
        self.tau, self.stddev_schedule, self.stddev_clip = critic_target_tau, stddev_schedule, stddev_clip
        self.reward_free = reward_free
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; valid: bf16, fp32")
        self.bf16 = precision == "bf16"
        if encoder_update not in ENCODER_UPDATES:
            raise ValueError(f"unknown encoder_update {encoder_update!r}; valid: {', '.join(ENCODER_UPDATES)}")
        self.encoder_update = encoder_update
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
        self.critic_opt = adam(self.critic.parameters(), lr=lr)
        # Pixels: the encoder has its own optimiser (URLB's encoder_opt). Plain DDPG, and every
        # agent with encoder_update=critic, steps it with the critic; a method agent with
        # encoder_update=urlb hands it to the method, whose loss alone trains the encoder.
        self.encoder_opt = adam(self.encoder.parameters(), lr=lr) if obs_type == "pixels" else None
        self.critic_trains_encoder = obs_type == "pixels" and (plugin is None or encoder_update == "critic")
        if obs_type == "pixels" and not self.critic_trains_encoder:
            plugin.use_encoder(self.encoder, self.aug, self.encoder_opt)
        if compile_backend is not None:
            self.compile_networks(compile_backend)
        self.train()

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
        """Action for one observation: the mean in eval mode, else mean plus unclipped noise
        (URLB acts with ``sample(clip=None)``; the clip applies in the updates only)."""
        obs_t = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        skill_t = None if skill is None else torch.as_tensor(skill, dtype=torch.float32, device=self.device)[None]
        with self._autocast():
            mean = self.actor(self._policy_input(self.encoder(obs_t), skill_t)).float()
        if not eval_mode:
            mean = noisy_action(mean, schedule(self.stddev_schedule, step), clip=None)
        return mean[0].cpu().numpy().astype(np.float32)

    # --- learning ---
    def batch_rows(self, batch_size: int) -> int:
        """Replay rows one update takes: ``batch_size`` for each batch a reward-free plugin
        trains on (``Plugin.batches_per_update``)."""
        plugin = self.plugin if self.reward_free else None
        return batch_size * (plugin.batches_per_update if plugin is not None else 1)

    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Augmented encoder features for pixels; states pass through unchanged."""
        if self.obs_type != "pixels":
            return obs
        return self.encoder(self.aug(obs.float()))

    def _critic_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of obs (with gradient into the encoder when the critic trains it) and of
        next_obs (without)."""
        with torch.set_grad_enabled(self.critic_trains_encoder):
            obs = self._encode(batch.obs)
        with torch.no_grad():
            next_obs = self._encode(batch.next_obs)
        return obs, next_obs

    def _update_plugin(self, batch: Batch, step: int):
        """The method's own update on what it sees (see ``Plugin.pixel_input``); returns its
        reward, metrics and the critic's features of obs and next_obs."""
        plugin = self.plugin
        if self.obs_type != "pixels":
            return (*plugin.update(batch, step), batch.obs, batch.next_obs)
        if self.critic_trains_encoder:  # the method sees detached features
            obs, next_obs = self._critic_inputs(batch)
            one_step = None
            if plugin.reads_one_step:
                with torch.no_grad():
                    one_step = self._encode(batch.next_obs_1step)
            seen = batch._replace(obs=obs.detach(), next_obs=next_obs, next_obs_1step=one_step)
            return (*plugin.update(seen, step), obs, next_obs)
        if plugin.pixel_input == "frames":  # the method encodes; the critic's features come after
            reward, metrics = plugin.update(batch, step)
            with torch.no_grad():
                obs, next_obs = plugin.critic_features(batch)
            return reward, metrics, obs, next_obs
        features = {"next_obs_1step": None}
        read = ("obs", "next_obs", "next_obs_1step") if plugin.reads_one_step else ("obs", "next_obs")
        for key in read:
            with torch.set_grad_enabled(key in plugin.encoder_grad):
                features[key] = self._encode(getattr(batch, key))
        reward, metrics = plugin.update(batch._replace(**features), step)
        return reward, metrics, features["obs"].detach(), features["next_obs"].detach()

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        """One backbone update (plugin, critic, actor, target) on a sampled batch."""
        metrics: dict[str, float] = {}
        mask = None
        if self.reward_free:
            if self.plugin is None:
                raise ValueError("reward-free training needs a plugin that defines the intrinsic reward")
            with self._autocast():
                reward, plugin_metrics, obs, next_obs = self._update_plugin(batch, step)
            reward, mask = reward.detach().float(), self.plugin.critic_mask()
            rows = len(reward)
            if len(batch.action) > rows:  # several batches per update: the critic and actor learn from the last
                batch = Batch(*(None if t is None else t[-rows:] for t in batch))
                obs, next_obs = obs[-rows:], next_obs[-rows:]
            metrics.update({k: float(v) for k, v in plugin_metrics.items()})  # floats or 0-d tensors
            check_finite("intrinsic reward", reward, step)
            metrics["intrinsic_reward"] = reward.mean().item()
        else:
            obs, next_obs = self._critic_inputs(batch)
            reward = batch.reward
        metrics["batch_reward"] = reward.mean().item()
        skill = batch.skill
        metrics.update(self._update_critic(obs, batch.action, reward, batch.discount, next_obs, skill, step, mask))
        metrics.update(self._update_actor(obs.detach(), skill, step))
        self._soft_update_target()
        return metrics

    def _update_critic(self, obs, action, reward, discount, next_obs, skill, step: int, mask=None) -> dict[str, float]:
        std = schedule(self.stddev_schedule, step)
        with torch.no_grad(), self._autocast():
            next_in = self._policy_input(next_obs, skill)
            next_action = noisy_action(self.actor(next_in).float(), std, self.stddev_clip)
            target_q1, target_q2 = self.critic_target(next_in, next_action)
            target_q = reward + discount * torch.min(target_q1, target_q2).float()
        with self._autocast():
            q1, q2 = self.critic(self._policy_input(obs, skill), action)
        q1, q2 = q1.float(), q2.float()
        if mask is not None:  # a method's ensemble members learn from their own samples (CeSD)
            q1, q2, target_q = q1 * mask, q2 * mask, target_q * mask
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        check_finite("critic loss", loss, step)
        encoder_opt = self.encoder_opt if self.critic_trains_encoder else None
        self.critic_opt.zero_grad(set_to_none=True)
        if encoder_opt is not None:
            encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        if encoder_opt is not None:
            encoder_opt.step()
        return {
            "critic_loss": loss.item(),
            "critic_q1": q1.mean().item(),
            "critic_target_q": target_q.mean().item(),
        }

    def _update_actor(self, obs, skill, step: int) -> dict[str, float]:
        std = schedule(self.stddev_schedule, step)
        # The actor loss must not build gradients for the critic's weights.
        self.critic.requires_grad_(False)
        try:
            with self._autocast():
                policy_in = self._policy_input(obs, skill)
                action = noisy_action(self.actor(policy_in).float(), std, self.stddev_clip)
                q1, q2 = self.critic(policy_in, action)
            value = torch.min(q1, q2).float()
            loss = -(value if self.plugin is None else self.plugin.actor_value(value, skill)).mean()
            check_finite("actor loss", loss, step)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.actor_opt.step()
        finally:
            self.critic.requires_grad_(True)
        return {"actor_loss": loss.item()}

    @torch.no_grad()
    def _soft_update_target(self) -> None:
        online = list(self.critic.parameters())
        target = list(self.critic_target.parameters())
        torch._foreach_lerp_(target, online, self.tau)

    # --- persistence ---
    def networks_state(self) -> dict[str, dict]:
        """State dicts of every network and optimiser (a snapshot's payload)."""
        state = {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "encoder": self.encoder.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }
        if self.encoder_opt is not None:
            state["encoder_opt"] = self.encoder_opt.state_dict()
        if self.plugin is not None:
            state["plugin"] = self.plugin.state_dict()
            state["plugin_opt"] = {k: opt.state_dict() for k, opt in self.plugin.optimizers().items()}
        return state

    def load_networks(self, state: dict[str, dict], parts: tuple[str, ...]) -> None:
        """Load the named parts (e.g. actor, critic, encoder, plugin) from a snapshot payload."""
        for part in parts:
            if part not in state:
                continue
            if part == "plugin_opt":
                for name, opt in self.plugin.optimizers().items():
                    opt.load_state_dict(state[part][name])
            else:
                getattr(self, part).load_state_dict(state[part])
        if "critic" in parts and "critic_target" not in parts:
            self.critic_target.load_state_dict(self.critic.state_dict())

    def init_from(self, state: dict[str, dict], load_plugin: bool = True) -> None:
        """Fine-tuning initialisation from a snapshot payload, as URLB's ``init_from`` with
        ``init_critic: true``: the encoder, the actor and only the critic's trunk are copied (the
        whole critic where the plugin says so: ProtoRL); the Q heads, the target critic and every
        optimiser keep this agent's fresh initialisation.
        ``load_plugin`` also loads the pre-trained plugin (skill selection may need it, e.g. to
        score or regress skills; it never reaches the actor or critic)."""
        missing = [k for k in ("actor", "critic", "encoder") if k not in state]
        if missing:
            raise KeyError(f"snapshot payload lacks {', '.join(missing)}; it needs actor, critic and encoder")
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        if self.plugin is not None and self.plugin.finetune_critic_copy == "all":
            self.critic.load_state_dict(state["critic"])
        else:
            trunk = {k[len("trunk.") :]: v for k, v in state["critic"].items() if k.startswith("trunk.")}
            self.critic.trunk.load_state_dict(trunk)
        if load_plugin and self.plugin is not None and "plugin" in state:
            self.plugin.load_state_dict(state["plugin"])
