"""Validation of a run's configuration before any work starts: one clear message per error."""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig, OmegaConf

from urlb.agents import agent_names, split_agent_config
from urlb.ddpg import COMPILE_BACKENDS
from urlb.errors import ConfigError
from urlb.hardware import bf16_support
from urlb.runs.config_checks import (
    check_agent_values,
    check_declared_types,
    check_known_keys,
    check_replay_memory,
    check_sizes,
    trial_build,
)
from urlb.runs.seed_list import seed_list
from urlb.skill_schedule import SKILL_SELECTIONS
from urlb.tasks import ALL_TASKS, DOMAINS, OBS_TYPES, TASKS, domain_of


def _by_obs_type(obs_type: str, states_value, pixels_value):
    return pixels_value if obs_type == "pixels" else states_value


def _domain_of(task: str) -> str:
    # An unknown task keeps a placeholder domain so that validate() can name the bad task.
    return domain_of(task) if task in ALL_TASKS else "unknown"


def _default_snapshot_ts(agent: str, pretrain_frames: int) -> int:
    # Plain DDPG has no pre-training: fine-tune from scratch unless told otherwise.
    return 0 if agent == "ddpg" else pretrain_frames


def register_resolvers() -> None:
    """Resolvers the configs use; registered once, before Hydra composes a config."""
    from urlb.runs.seed_list import run_seed

    for name, fn in (
        ("run_seed", run_seed),
        ("by_obs_type", _by_obs_type),
        ("domain_of", _domain_of),
        ("default_snapshot_ts", _default_snapshot_ts),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def _choice(name: str, value, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join(map(str, sorted(valid)))}")


def _whole_number(cfg: DictConfig, key: str, minimum: int) -> None:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive whole number" if minimum > 0 else f"a whole number >= {minimum}"
        raise ConfigError(f"{key}={value!r} must be {kind}")


def _number_in(cfg: DictConfig, key: str, low: float, high: float) -> None:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low < value <= high:
        raise ConfigError(f"{key}={value!r} must be a number in ({low}, {high}]")


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an unavailable device is a ConfigError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"device={spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={spec!r} but CUDA is not available here; use device=cpu or device=auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={spec!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def resolve_threads(spec, parallel_jobs: int, cores: int) -> int | None:
    """Torch threads for one run. ``auto``: the torch default for a lone run, but
    cores // parallel_jobs when several runs share the machine: more threads than cores makes
    OpenMP threads spin-wait on each other (measured here: 10-50x slower). None: keep the default."""
    if spec == "auto":
        return max(1, cores // parallel_jobs) if parallel_jobs > 1 else None
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise ConfigError(f"threads={spec!r} is not valid; use auto or a positive whole number")
    return spec


def _check_snapshot_frames(cfg: DictConfig) -> None:
    snapshots = OmegaConf.select(cfg, "snapshots")
    if not OmegaConf.is_list(snapshots) and not isinstance(snapshots, (list, tuple)):
        raise ConfigError(f"snapshots={snapshots!r} must be a list of frame counts, e.g. snapshots=[100000,2000000]")
    for frames in snapshots:
        if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0 or frames > cfg.num_train_frames:
            raise ConfigError(
                f"snapshots contains {frames!r}: each must be a positive whole frame count no larger than "
                f"num_train_frames={cfg.num_train_frames}"
            )


def validate(cfg: DictConfig) -> None:
    """Check every user-facing key; raise ConfigError naming the bad value and valid choices."""
    check_known_keys(cfg)
    check_declared_types(cfg)
    if cfg.agent.get("target") is None:  # a method of the user's own package is named by its class
        _choice("agent", cfg.agent.name, agent_names())
    split_agent_config(cfg.agent)  # every agent key is one the loop, the backbone or the plugin takes
    _choice("obs_type", cfg.obs_type, OBS_TYPES)
    if cfg.phase == "pretrain":
        _choice("domain", cfg.domain, DOMAINS)
    else:
        _choice("task", cfg.task, ALL_TASKS)
        if cfg.domain != domain_of(cfg.task):
            raise ConfigError(
                f"task={cfg.task} belongs to domain {domain_of(cfg.task)}, not domain={cfg.domain}; "
                f"tasks of {cfg.domain}: {', '.join(TASKS.get(cfg.domain, ()))}"
            )
        _whole_number(cfg, "snapshot_ts", minimum=0)
        _whole_number(cfg, "snapshot_seed", minimum=0)
        if cfg.skill_selection is not None:
            _choice("skill_selection", cfg.skill_selection, SKILL_SELECTIONS)
        _whole_number(cfg, "skill_selection_candidates", minimum=1)
    for key in (
        "num_train_frames",
        "eval_every_frames",
        "num_eval_episodes",
        "replay_buffer_size",
        "batch_size",
        "nstep",
        "action_repeat",
        "frame_stack",
        "checkpoint_every_frames",
        "agent.update_every_steps",
        "agent.hidden_dim",
    ):
        _whole_number(cfg, key, minimum=1)
    for key in ("num_seed_frames", "seed"):
        _whole_number(cfg, key, minimum=0)
    if OmegaConf.select(cfg, "replay_loader_workers", default=None) is not None:
        _whole_number(cfg, "replay_loader_workers", minimum=0)
    seed_list(cfg)  # seeds=[...]: distinct whole numbers
    if cfg.num_seed_frames > cfg.num_train_frames:
        raise ConfigError(
            f"num_seed_frames={cfg.num_seed_frames} exceeds num_train_frames={cfg.num_train_frames}: "
            "the agent would never update"
        )
    _number_in(cfg, "discount", 0.0, 1.0)
    minutes = OmegaConf.select(cfg, "checkpoint_every_minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < math.inf:
        raise ConfigError(f"checkpoint_every_minutes={minutes!r} must be a positive number of minutes")
    _choice("precision", cfg.precision, ("fp32", "bf16"))
    if cfg.compile not in (None, False):  # false reads naturally as "off"
        _choice("compile", cfg.compile, COMPILE_BACKENDS)
    if cfg.phase == "pretrain":
        _check_snapshot_frames(cfg)
    resolve_threads(OmegaConf.select(cfg, "threads", default="auto"), 1, 1)  # the value only; counted at start
    device = resolve_device(cfg.device)
    _check_precision(cfg, device)
    check_agent_values(cfg.agent)
    check_sizes(cfg)
    check_replay_memory(cfg, device, len(seed_list(cfg)))
    trial_build(cfg)


def _check_precision(cfg: DictConfig, device: torch.device) -> None:
    """bf16 on a CPU without native bf16 is emulated, ~45x slower than fp32: refuse unless told."""
    if cfg.precision != "bf16" or OmegaConf.select(cfg, "precision_check", default=True) is False:
        return
    support = bf16_support(device)
    if not support.native:
        raise ConfigError(
            f"precision=bf16 needs native bf16 on this CPU and none was found ({support.description}); "
            "emulated bf16 runs many times slower than fp32. Use precision=fp32, or precision_check=false "
            "to run bf16 anyway"
        )
