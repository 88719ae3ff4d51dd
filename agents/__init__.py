"""Registry of pre-training methods. ``ddpg`` is the plain backbone (no plugin)."""

from __future__ import annotations

import importlib

from urlb.plugin import Plugin

# name -> "module:Class"; imported lazily so one broken method cannot break the others.
REGISTRY: dict[str, str | None] = {
    "ddpg": None,
    "rnd": "agents.rnd:RND",
    "apt": "agents.apt:APT",
    "diayn": "agents.diayn:DIAYN",
    "cic": "agents.cic:CIC",
    "metra": "agents.metra:METRA",
}


def agent_names() -> list[str]:
    return sorted(REGISTRY)


def plugin_class(name: str) -> type[Plugin] | None:
    """The plugin class of agent ``name`` (None for plain DDPG); a clear error if unknown."""
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; valid agents: {', '.join(agent_names())}")
    target = REGISTRY[name]
    if target is None:
        return None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_plugin(name: str, obs_dim: int, action_dim: int, **kwargs) -> Plugin | None:
    cls = plugin_class(name)
    return None if cls is None else cls(obs_dim, action_dim, **kwargs)
