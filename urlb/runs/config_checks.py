"""Checks of a run's configuration that the per-key checks in urlb.runs.config cannot make alone:
agent keys against their constructors, keys that no config file declares, the types of the
declared keys, sizes that cannot work together, and the agent's own constructor checks (a
trial build with placeholder shapes). All run before any file is written."""

from __future__ import annotations

import inspect
import math
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from urlb.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"  # the repository root: urlb/runs/ -> ../..
# Top-level config files and groups whose keys are the run's keys (agent keys live under agent.).
TRIAL_SIZES = {"hidden_dim": 16, "feature_dim": 8}  # the backbone's widths in the trial build
_KEY_SOURCES = ("common.yaml", "{phase}.yaml", "preset/*.yaml", "sweep/*.yaml")


# --------------------------------------------------------------------------- declared keys


@lru_cache(maxsize=2)
def declared_keys(phase: str) -> dict[str, Any]:
    """Every top-level key the config files of ``phase`` declare, with its value there (the
    first found)."""
    declared: dict[str, Any] = {}
    for pattern in _KEY_SOURCES:
        for path in sorted(CONFIG_DIR.glob(pattern.format(phase=phase))):
            data = yaml.safe_load(path.read_text()) or {}
            for key, value in data.items():
                declared.setdefault(key, value)
    return declared


def check_known_keys(cfg: DictConfig) -> None:
    """A key added on the command line with ``+`` that no config declares (a typo such as
    ``+num_train_frame=500``) would be silently ignored: refuse it, suggesting the nearest key."""
    import difflib

    declared = declared_keys(str(cfg.phase))
    if not declared:  # configs not next to the package (an installed wheel): nothing to compare
        return
    for key in cfg:
        if key in declared or key in ("hydra", "defaults"):
            continue
        close = difflib.get_close_matches(str(key), [str(k) for k in declared], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{key} is not a config key (added with +?); no config declares it{hint}")


TEXT_OR_NUMBER = ("threads", "device")


def check_declared_types(cfg: DictConfig) -> None:
    """Keys declared true/false take only true/false; keys declared as text take only text."""
    for key, default in declared_keys(str(cfg.phase)).items():
        if key not in cfg or (isinstance(default, str) and "${" in default):
            continue
        value = OmegaConf.select(cfg, str(key))
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")
        # threads and device take a word or a number (threads=2, device=auto); validate() checks them.
        if isinstance(default, str) and not isinstance(value, str) and key not in TEXT_OR_NUMBER:
            raise ConfigError(f"{key}={value!r} must be text (default: {default})")


# --------------------------------------------------------------------------- agent keys


def _allowed_types(parameter: inspect.Parameter) -> set[str]:
    """Type names from the constructor's annotation (``float | None``), else from its default."""
    annotation = parameter.annotation
    if isinstance(annotation, str) and annotation:
        return {part.strip() for part in annotation.split("|")}
    if annotation is not inspect.Parameter.empty and isinstance(annotation, type):
        return {annotation.__name__}
    default = parameter.default
    return {"None" if default is None else type(default).__name__}


def _fits(value: Any, types: set[str]) -> bool:
    if value is None:
        return "None" in types
    if isinstance(value, bool):
        return "bool" in types
    if isinstance(value, int):
        return "int" in types or "float" in types
    if isinstance(value, float):
        return "float" in types and math.isfinite(value)
    if isinstance(value, str):
        return "str" in types
    if isinstance(value, dict):  # e.g. CeSD's per-domain tables ({walker: 6, ...})
        return "dict" in types
    return "list" in types or "tuple" in types


def _describe(types: set[str]) -> str:
    words = {
        "int": "a whole number",
        "float": "a finite number",
        "str": "text",
        "bool": "true or false",
        "None": "null",
    }
    return " or ".join(words.get(t, t) for t in sorted(types))


def check_agent_value(agent: str, key: str, value: Any, parameter: inspect.Parameter) -> None:
    """One agent key against its constructor parameter: the annotated (or default's) type, and
    the default's sign: a positive default (sizes, rates, periods) takes only positive values,
    a zero default only values >= 0."""
    types = _allowed_types(parameter)
    default = parameter.default
    if not _fits(value, types):
        raise ConfigError(f"agent.{key}={value!r} is not valid for agent={agent}: it must be {_describe(types)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if default > 0 and value <= 0:
            raise ConfigError(
                f"agent.{key}={value!r} is not valid for agent={agent}: it must be > 0 (default {default})"
            )
        if default == 0 and value < 0:
            raise ConfigError(
                f"agent.{key}={value!r} is not valid for agent={agent}: it must be >= 0 (default {default})"
            )


def check_agent_values(agent_cfg: DictConfig) -> None:
    """Every agent key against the constructor that takes it (the backbone's or the plugin's)."""
    from urlb.agents import plugin_class
    from urlb.ddpg import DDPGAgent

    values = OmegaConf.to_container(agent_cfg, resolve=True)
    name = values["name"]
    cls = plugin_class(name, values.get("target"))  # target: a method of the user's own package
    for owner in (DDPGAgent, cls):
        if owner is None:
            continue
        parameters = inspect.signature(owner.__init__).parameters
        for key, value in values.items():
            if key in parameters and parameters[key].default is not inspect.Parameter.empty:
                check_agent_value(name, key, value, parameters[key])
    from urlb.ddpg import schedule

    for key, value in values.items():  # schedules are parsed when acting: parse them here once
        if str(key).endswith("_schedule"):
            try:
                schedule(value, 0)
            except (ValueError, ZeroDivisionError) as exc:
                raise ConfigError(f"agent.{key}={value!r} is not valid for agent={name}: {exc}") from None
    every = values.get("update_every_steps")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"agent.update_every_steps={every!r} must be a positive whole number")


def trial_build(cfg: DictConfig) -> None:
    """Build the agent once with placeholder shapes on the CPU, so that the constructors' own
    checks (choices such as ``agent.obs_norm``, schedules, combinations) refuse a value here
    rather than after the run directory is written. Random states are left as they were."""
    from urlb.agents import build_agent

    obs_shape = (3 * int(cfg.frame_stack), 84, 84) if cfg.obs_type == "pixels" else (8,)
    one = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    one.compile = None  # compiling is costly; its backend name is checked in urlb.runs.config
    for key in TRIAL_SIZES:  # network widths: checked above; small here so the build takes well under a second
        if key in one.agent:
            one.agent[key] = min(int(one.agent[key]), TRIAL_SIZES[key])
    states = (random.getstate(), np.random.get_state())
    try:
        with torch.random.fork_rng(devices=[]):
            build_agent(one, obs_shape, 2, "cpu", cfg.phase == "pretrain")
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"agent={cfg.agent.name} refuses its configuration: {exc}") from None
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


# --------------------------------------------------------------------------- sizes together


def episode_steps(domain: str, action_repeat: int) -> int:
    """Agent steps per episode in ``domain`` (every benchmark task has a fixed length)."""
    from dm_control.manipulation.shared import constants

    from urlb.envs import jaco, quadruped, walker

    control = {
        "walker": walker.CONTROL_TIMESTEP,
        "quadruped": quadruped.CONTROL_TIMESTEP,
        "jaco": constants.CONTROL_TIMESTEP,
    }
    limit = {"walker": walker.TIME_LIMIT, "quadruped": quadruped.TIME_LIMIT, "jaco": jaco.TIME_LIMIT}
    return math.ceil(round(limit[domain] / control[domain]) / action_repeat)


def check_sizes(cfg: DictConfig) -> None:
    """Sizes that are each valid but cannot work together."""
    replay, batch = int(cfg.replay_buffer_size), int(cfg.batch_size)
    if replay < batch:
        raise ConfigError(
            f"replay_buffer_size={replay} is smaller than batch_size={batch}; it must hold at least one batch"
        )
    steps = episode_steps(cfg.domain, int(cfg.action_repeat))
    if replay < steps + 1:
        raise ConfigError(
            f"replay_buffer_size={replay} cannot hold one {cfg.domain} episode ({steps + 1} time steps at "
            f"action_repeat={cfg.action_repeat}); use at least {steps + 1}"
        )
    if int(cfg.nstep) >= steps:
        raise ConfigError(f"nstep={cfg.nstep} must be shorter than a {cfg.domain} episode ({steps} steps)")
    for key, value in cfg.agent.items():
        if str(key).endswith("knn_k") and isinstance(value, int) and value > batch:
            raise ConfigError(
                f"agent.{key}={value} exceeds batch_size={batch}: the nearest neighbours are taken within a batch"
            )


# --------------------------------------------------------------------------- replay memory

PIXEL_FRAME_BYTES = 3 * 84 * 84  # one uint8 RGB frame per step; the stack is rebuilt when sampled


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_replay_memory(cfg: DictConfig, device: torch.device, seeds: int) -> None:
    """A pixel replay is allocated (and zeroed) in full when the run starts: URLB's 1,000,000 steps
    are 21.7 GB per seed. Refuse a CPU replay that cannot fit in the memory available now,
    rather than let the kernel kill the run (or a neighbour) once it is under way."""
    if cfg.obs_type != "pixels" or device.type != "cpu":
        return
    available = available_memory_bytes()
    capacity = int(cfg.replay_buffer_size)
    per_step = PIXEL_FRAME_BYTES + 512  # and at most a few hundred bytes of action, reward, ids and skill
    needed = capacity * per_step * seeds
    if available is None or needed <= available:
        return
    fits = int(0.8 * available / (per_step * seeds)) // 1000 * 1000
    raise ConfigError(
        f"replay_buffer_size={capacity} pixel steps need {needed / 1e9:.1f} GB of memory for the replay "
        f"({seeds} seed(s) x {capacity * per_step / 1e9:.1f} GB), more than the {available / 1e9:.1f} GB available "
        f"here; use replay_buffer_size={fits} or less (a run stores at most its training frames / action_repeat steps)"
    )
