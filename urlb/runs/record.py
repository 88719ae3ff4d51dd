"""What a run directory already records, read before anything is built or written.

- A finished run (its checkpoint reached ``num_train_frames``) is not run again: the command says
  "already complete" and leaves the directory untouched.
- A run resumed (or re-run) with a config that differs from the stored one in a key that changes
  results is refused, listing the keys; keys that do not change results are allowed and said.
- A missing snapshot is reported before the environments and networks are built, with a
  pre-training command that, followed as written, creates it (preset and shaping overrides kept).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from urlb.runs.config import ConfigError
from urlb.runs.snapshots import SnapshotError, read_torch_file, snapshot_path

CHECKPOINT_NAME = "checkpoint.pt"  # the trainer's checkpoint file in a run directory
# Keys that never change what a run computes: where things go, what is logged, how fast it runs.
NEUTRAL_KEYS = frozenset(
    {
        "use_tb",
        "use_wandb",
        "save_video",
        "device",
        "threads",
        "compile",
        "run_root",
        "resume",
        "checkpoint_every_frames",
        "checkpoint_every_minutes",
        "overwrite_snapshots",
        "precision_check",
        "snapshot_dir",
        "seeds",  # trained alone or beside other seeds, a seed computes the same (urlb.seed_agents)
    }
)
# Fine-tuning keys that do not shape the snapshot it loads (left out of the pre-training hint).
FINETUNE_ONLY_KEYS = frozenset(
    {
        "task",
        "domain",
        "snapshot_ts",
        "snapshot_seed",
        "seeds",  # the command names the one seed whose snapshot is missing
        "skill_selection",
        "num_train_frames",
        "eval_every_frames",
        "seed",
        "agent",
        "obs_type",
        "preset",
        "snapshots",
        "snapshot_dir",
        "agent.skill_selection",
        "agent.skill_selection_candidates",
    }
)


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config a Trainer records (without Hydra's own node)."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(container), resolve=True)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_checkpoint_record(run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint's metadata (frame, config), or None without a checkpoint. The file is
    memory-mapped, so its replay buffer (gigabytes at paper scale) is not read."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    return read_torch_file(path, "checkpoint", mmap=True)["metadata"]


def config_differences(
    stored: dict[str, Any], current: dict[str, Any], finished: bool, pretrain: bool
) -> tuple[list[str], list[str]]:
    """(keys that change results, keys that do not), each as ``key: old -> new``. Keys present on
    one side only (a config written by another version) are not compared."""
    old, new = _flatten(stored), _flatten(current)
    changing, neutral = [], []
    for key in sorted(old.keys() & new.keys()):
        if old[key] == new[key]:
            continue
        text = f"{key}: {old[key]!r} -> {new[key]!r}"
        # An unfinished pre-training run still has snapshots to write: where they go matters.
        matters = key not in NEUTRAL_KEYS or (key == "snapshot_dir" and pretrain and not finished)
        (changing if matters else neutral).append(text)
    return changing, neutral


def check_run_record(cfg: DictConfig, run_dir: Path, announce: bool = True) -> str | None:
    """Compare ``cfg`` with what ``run_dir`` records. Returns the "already complete" message for a
    finished run (nothing is to be done), None when the run may start or resume; raises
    ConfigError when the stored config differs in a key that changes results."""
    if not OmegaConf.select(cfg, "resume", default=True):
        return None
    meta = read_checkpoint_record(run_dir)
    if meta is None:
        return None
    stored = meta.get("config") or {}
    frame = int(meta.get("frame", 0))
    target = int(stored.get("num_train_frames", cfg.num_train_frames))
    finished = frame >= target
    changing, neutral = config_differences(stored, run_config(cfg), finished, cfg.phase == "pretrain")
    if changing:
        raise ConfigError(
            f"{run_dir} holds a run (frame {frame} of {target}) with another config; keys that change "
            f"results differ: {'; '.join(changing)}. Use the stored values (its config.yaml), another "
            "run_root or seed, or resume=false to start it again from scratch"
        )
    allowed = f" (differences that do not change results, ignored: {'; '.join(neutral)})" if neutral else ""
    if finished:
        return f"already complete: {run_dir} (frame {frame} of {target}); nothing to do{allowed}"
    if neutral and announce:
        print(f"resuming with settings that do not change results: {'; '.join(neutral)}", flush=True)
    return None


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def pretrain_command(cfg: DictConfig, overrides: list[str]) -> str:
    """The pre-training command that writes the snapshot ``cfg`` (a fine-tuning config) loads: the
    same preset and every command-line override that shapes the snapshot, and the frames."""
    frames, snapshots = int(cfg.snapshot_ts), [int(f) for f in cfg.pretrain_snapshots]
    kept = [
        o for o in overrides if _override_key(o) not in FINETUNE_ONLY_KEYS and not _override_key(o).startswith("hydra")
    ]
    parts = [
        "python pretrain.py",
        f"agent={cfg.agent.name}",
        f"domain={cfg.domain}",
        f"obs_type={cfg.obs_type}",
        f"seed={cfg.snapshot_seed}",
        f"preset={cfg.preset_name}",
        *kept,
        f"snapshot_dir={cfg.snapshot_dir}",
    ]
    if frames not in snapshots or max(snapshots) > int(cfg.pretrain_frames):
        if frames > int(cfg.pretrain_frames):
            parts.append(f"num_train_frames={frames}")
        parts.append(f"snapshots=[{frames}]")
    return " ".join(parts)


def check_snapshot_exists(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """A fine-tuning run that will load a snapshot (not resuming) fails here, before anything is
    built, when the snapshot file does not exist."""
    if OmegaConf.select(cfg, "phase", default=None) != "finetune" or cfg.snapshot_ts == 0 or cfg.agent.name == "ddpg":
        return
    if cfg.resume and (Path(run_dir) / CHECKPOINT_NAME).is_file():
        return  # a resumed fine-tuning run does not read the snapshot again
    root = Path(cfg.snapshot_dir)
    path = snapshot_path(root, cfg.obs_type, cfg.domain, cfg.agent.name, cfg.snapshot_seed, cfg.snapshot_ts)
    if path.is_file():
        return
    base = root / cfg.obs_type / cfg.domain
    existing = sorted(str(p.relative_to(root)) for p in base.glob("*/*/snapshot_*.pt")) if base.is_dir() else []
    listing = "\n  ".join(existing) if existing else "(none)"
    raise SnapshotError(
        f"no snapshot at {path}\nsnapshots under {base}:\n  {listing}\n"
        f"create it with: {pretrain_command(cfg, overrides)}\nor fine-tune from scratch with snapshot_ts=0"
    )


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))
