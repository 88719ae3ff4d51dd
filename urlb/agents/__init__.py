"""The methods: a registry of plugins and ``build_agent``, the one place an agent is built.

``ddpg`` is the plain backbone (no plugin). Every other name maps to a plugin class; the
constructor's keyword arguments are the agent-config keys that plugin takes.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from urlb.errors import ConfigError

if TYPE_CHECKING:
    from urlb.agents.base import Plugin
    from urlb.ddpg import DDPGAgent

# name -> "module:Class"; imported lazily so one broken method cannot break the others.
REGISTRY: dict[str, str | None] = {
    "ddpg": None,
    "rnd": "urlb.agents.rnd:RND",
    "apt": "urlb.agents.apt:APT",
    "diayn": "urlb.agents.diayn:DIAYN",
    "cic": "urlb.agents.cic:CIC",
    "metra": "urlb.agents.metra:METRA",
    "icm": "urlb.agents.icm:ICM",
    "disagreement": "urlb.agents.disagreement:Disagreement",
    "proto": "urlb.agents.proto:Proto",
    "smm": "urlb.agents.smm:SMM",
    "aps": "urlb.agents.aps:APS",
}
# Agent-config keys the training loop reads (everything else is the backbone's or the plugin's).
LOOP_KEYS = ("name", "update_every_steps")
# Keys that run configs written by earlier versions hold and nothing reads any more (tools that
# read old run directories ignore them; Hydra refuses them on the command line).
LEGACY_KEYS = ("skill_selection", "skill_selection_candidates")
# Constructor arguments that come from the environment, not from the config.
RUNTIME_ARGS = (
    "self",
    "obs_dim",
    "action_dim",
    "obs_type",
    "obs_shape",
    "device",
    "plugin",
    "reward_free",
    "precision",
    "compile_backend",
)


def agent_names() -> list[str]:
    return sorted(REGISTRY)


def plugin_class(name: str) -> type[Plugin] | None:
    """The plugin class of agent ``name`` (None for plain DDPG); a clear error if unknown."""
    if name not in REGISTRY:
        raise ConfigError(f"agent={name!r} is not valid; choose one of: {', '.join(agent_names())}")
    target = REGISTRY[name]
    if target is None:
        return None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_plugin(name: str, obs_dim: int, action_dim: int, **kwargs) -> Plugin | None:
    cls = plugin_class(name)
    return None if cls is None else cls(obs_dim, action_dim, **kwargs)


def config_keys(cls: type) -> set[str]:
    """The config keys a constructor takes: its keyword parameters."""
    return {p for p in inspect.signature(cls.__init__).parameters if p not in RUNTIME_ARGS}


def split_agent_config(agent_cfg: DictConfig | dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone kwargs, plugin kwargs) from an agent config; a key that neither the loop, the
    backbone nor the plugin takes is a ConfigError naming the agent and the key."""
    from urlb.ddpg import DDPGAgent

    cfg = OmegaConf.to_container(agent_cfg, resolve=True) if isinstance(agent_cfg, DictConfig) else dict(agent_cfg)
    cfg = {k: v for k, v in cfg.items() if k not in LEGACY_KEYS}
    cls = plugin_class(cfg["name"])
    backbone_keys, plugin_keys = config_keys(DDPGAgent), config_keys(cls) if cls is not None else set()
    unknown = sorted(set(cfg) - backbone_keys - plugin_keys - set(LOOP_KEYS))
    if unknown:
        valid = sorted(backbone_keys | plugin_keys | set(LOOP_KEYS))
        raise ConfigError(
            f"agent={cfg['name']} has no key {', '.join(f'agent.{k}' for k in unknown)}; its keys: {', '.join(valid)}"
        )
    backbone = {k: v for k, v in cfg.items() if k in backbone_keys}
    plugin = {k: v for k, v in cfg.items() if k in plugin_keys}
    return backbone, plugin


def build_agent(
    cfg: DictConfig,
    obs_shape: tuple[int, ...],
    action_dim: int,
    device: str | torch.device,
    reward_free: bool,
    seeds: list[int] | None = None,
) -> DDPGAgent:
    """The DDPG backbone with the configured method's plugin (``cfg`` is a run config with
    ``agent``, ``obs_type`` and optionally ``precision`` and ``compile``).

    ``seeds``: one agent holding these seeds side by side (:mod:`urlb.seeds`), seed s built after
    ``torch.manual_seed(s)`` so that its initial weights and random stream are those of a
    single-seed run of seed s. None: one seed, built from torch's current random state (the
    caller seeded it)."""
    from urlb.seeds import default_generator, stack_seeds

    if seeds is None or len(seeds) == 1:
        agent = _build_one(cfg, obs_shape, action_dim, device, reward_free)
        agent.set_seeds(seeds or [int(cfg.get("seed", 0))])
    else:
        agents, stream_states = [], []
        for seed in seeds:
            torch.manual_seed(seed)
            agents.append(_build_one(cfg, obs_shape, action_dim, device, reward_free))
            stream_states.append(default_generator(agents[-1].device).get_state())
        agent = stack_seeds(agents)
        agent.set_seeds(seeds)
        for index, state in enumerate(stream_states):  # each stream continues where its seed's build left it
            agent.streams.set_state(index, state)
    if cfg.get("compile"):
        agent.compile_networks(cfg.compile)
    return agent


def _build_one(cfg: DictConfig, obs_shape, action_dim: int, device, reward_free: bool) -> DDPGAgent:
    from urlb.ddpg import DDPGAgent
    from urlb.nets import Encoder

    backbone_kwargs, plugin_kwargs = split_agent_config(cfg.agent)
    pixels = cfg.obs_type == "pixels"
    # Pixel plugins see encoder features; a throwaway encoder gives their size.
    feat_dim = Encoder(obs_shape).repr_dim if pixels else int(np.prod(obs_shape))
    plugin = make_plugin(cfg.agent.name, feat_dim, action_dim, **plugin_kwargs)
    return DDPGAgent(
        cfg.obs_type,
        obs_shape,
        action_dim,
        device,
        plugin=plugin,
        reward_free=reward_free,
        precision=cfg.get("precision", "fp32"),
        **backbone_kwargs,
    )
