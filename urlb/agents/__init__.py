"""The methods: a registry of plugins and ``build_agent``, the one place an agent is built.

``ddpg`` is the plain backbone (no plugin). Every other name maps to a plugin class; the
constructor's keyword arguments are the agent-config keys that plugin takes. A method from the
user's own package is named by its dotted path instead (``agent=my_package.my_method:MyAgent``,
:mod:`urlb.agents.external`); its config records that path under ``target``.
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
    from urlb.seed_agents import SeedAgents

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
    "becl": "urlb.agents.becl:BeCL",
    "cesd": "urlb.agents.cesd:CeSD",
}
# Agent-config keys the training loop reads (everything else is the backbone's or the plugin's).
LOOP_KEYS = ("name", "update_every_steps", "target")
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


def plugin_class(name: str, target: str | None = None) -> type[Plugin] | None:
    """The plugin class of agent ``name`` (None for plain DDPG), or of the dotted path ``target``
    (``module:Class``) of a method outside the registry; a clear error if unknown."""
    from urlb.agents.external import import_target, is_target

    if target is not None or is_target(name):
        return import_target(target or name)
    if name not in REGISTRY:
        raise ConfigError(
            f"agent={name!r} is not valid; choose one of: {', '.join(agent_names())}, or your own "
            "method's class as agent=my_package.my_method:MyAgent"
        )
    registered = REGISTRY[name]
    if registered is None:
        return None
    module, cls = registered.split(":")
    return getattr(importlib.import_module(module), cls)


def make_plugin(name: str, obs_dim: int, action_dim: int, target: str | None = None, **kwargs) -> Plugin | None:
    cls = plugin_class(name, target)
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
    cls = plugin_class(cfg["name"], cfg.get("target"))
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
    cfg: DictConfig, obs_shape: tuple[int, ...], action_dim: int, device: str | torch.device, reward_free: bool
) -> DDPGAgent:
    """The DDPG backbone with the configured method's plugin (``cfg`` is a run config with
    ``agent``, ``obs_type`` and optionally ``precision`` and ``compile``), built from torch's
    current random state (the caller seeded it). One seed: several are :func:`build_seed_agents`."""
    from urlb.ddpg import DDPGAgent
    from urlb.nets import encoder_repr_dim

    backbone_kwargs, plugin_kwargs = split_agent_config(cfg.agent)
    pixels = cfg.obs_type == "pixels"
    # A pixel plugin's networks take encoder features; their size is computed, not drawn, so a
    # pixel DDPG agent's first random draws are its encoder's, as in URLB.
    feat_dim = encoder_repr_dim(obs_shape) if pixels else int(np.prod(obs_shape))
    plugin = make_plugin(cfg.agent.name, feat_dim, action_dim, cfg.agent.get("target"), **plugin_kwargs)
    return DDPGAgent(
        cfg.obs_type,
        obs_shape,
        action_dim,
        device,
        plugin=plugin,
        reward_free=reward_free,
        precision=cfg.get("precision", "fp32"),
        compile_backend=cfg.get("compile") or None,
        **backbone_kwargs,
    )


def build_seed_agents(
    cfg: DictConfig,
    obs_shape: tuple[int, ...],
    action_dim: int,
    device: str | torch.device,
    reward_free: bool,
    seeds: list[int],
) -> SeedAgents:
    """One agent per seed, stepped together (:mod:`urlb.seed_agents`): seed s built after
    ``torch.manual_seed(s)``, as a single-seed run of s builds it. One seed: built from torch's
    current random state."""
    from urlb.seed_agents import SeedAgents

    return SeedAgents.build(lambda: build_agent(cfg, obs_shape, action_dim, device, reward_free), seeds)
