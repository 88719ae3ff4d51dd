"""Methods from the user's own package: ``agent=my_package.my_method:MyAgent``.

The class is imported from the dotted path (the package must be importable: installed, or its
parent directory on ``PYTHONPATH`` or the working directory). Its config is the YAML file
beside the module, with the module's name (``my_package/my_method.yaml``); without one, the
constructor's defaults apply. The file holds the method's keys (and may set ``name``, the
directory name of its runs and snapshots; default: the class's ``name`` attribute). Backbone
keys (``hidden_dim``, ``lr``...) come from ``configs/agent/ddpg.yaml`` unless the file sets them.
The config records the dotted path under ``target``, so a fine-tuning run finds the same class.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from urlb.errors import ConfigError


def is_target(value: object) -> bool:
    """Whether an ``agent=`` value is a dotted path ``module:Class`` (not a built-in name)."""
    return isinstance(value, str) and ":" in value


def import_target(target: str) -> type:
    """The plugin class at ``module:Class``; a clear error when it cannot be had."""
    from urlb.agents.base import Plugin

    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"agent={target!r}: write a method's class as module.path:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"agent={target!r}: cannot import {module_name} ({exc}); install the package or put its "
            "parent directory on PYTHONPATH"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise ConfigError(
            f"agent={target!r}: {module_name} has no subclass of urlb.agents.base.Plugin named {class_name}"
        )
    return cls


def config_file(target: str) -> Path:
    """Where the config of ``module:Class`` is looked for: beside the module, same name, .yaml."""
    module_name = target.partition(":")[0]
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ConfigError(f"agent={target!r}: module {module_name} not found")
    return Path(spec.origin).with_suffix(".yaml")


def agent_config(target: str) -> dict[str, Any]:
    """The agent config of ``module:Class`` as a Hydra config node: the file beside the module
    (if any) over the backbone's defaults, with ``name`` and ``target`` set."""
    cls = import_target(target)
    path = config_file(target)
    node: dict[str, Any] = {}
    if path.exists():
        loaded = OmegaConf.to_container(OmegaConf.load(path))
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: an agent config is a mapping of keys to values")
        node = loaded
    name = node.get("name") or (cls.name if cls.name != "plugin" else target.partition(":")[0].rsplit(".", 1)[-1])
    return {"defaults": node.pop("defaults", ["ddpg", "_self_"]), **node, "name": name, "target": target}


def register_external_agents(argv: list[str]) -> None:
    """Make every ``agent=module:Class`` of a command line a Hydra option of the ``agent`` group
    (called by the entry points before Hydra composes the config); one line and exit code 2 when
    the class or its config cannot be had."""
    import sys

    from hydra.core.config_store import ConfigStore

    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") != "agent":
            continue
        for target in value.split(","):  # a multirun may sweep several
            if not is_target(target):
                continue
            try:
                ConfigStore.instance().store(group="agent", name=target, node=agent_config(target))
            except ConfigError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                sys.exit(2)


CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "agent"


def load_agent_config(agent: str) -> dict[str, Any]:
    """The agent config as Hydra composes it (the backbone's keys under the method's), for a
    built-in name (``configs/agent/<name>.yaml``) or a dotted path ``module:Class``."""
    if is_target(agent):
        node = agent_config(agent)
    else:
        path = CONFIG_DIR / f"{agent}.yaml"
        if not path.exists():
            from urlb.agents import agent_names

            raise ConfigError(
                f"agent={agent!r} is not valid; choose one of: {', '.join(agent_names())}, or module:Class"
            )
        node = OmegaConf.to_container(OmegaConf.load(path))
    merged: dict[str, Any] = {}
    for part in node.pop("defaults", []):
        if part != "_self_":
            merged.update(load_agent_config(part))
    return {**merged, **node}
