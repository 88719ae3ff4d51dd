"""Snapshots (pre-training -> fine-tuning) and checkpoints (resume): paths, atomic writes,
validated loads. One function computes the snapshot path for both scripts."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

import urlb
from urlb.runs.files import atomic_torch_save

FORMAT_VERSION = 1


class SnapshotError(RuntimeError):
    """A snapshot or checkpoint is missing, unreadable or does not fit the run."""


def snapshot_path(root: str | Path, obs_type: str, domain: str, agent: str, seed: int, frames: int) -> Path:
    """``{root}/{obs_type}/{domain}/{agent}/{seed}/snapshot_{frames}.pt``."""
    return Path(root) / obs_type / domain / agent / str(seed) / f"snapshot_{int(frames)}.pt"


def run_metadata(cfg, obs_shape: tuple[int, ...], action_dim: int, plugin) -> dict[str, Any]:
    """What a snapshot or checkpoint says about the run that wrote it (checked when loading)."""
    return {
        "agent": cfg.agent.name,
        "domain": cfg.domain,
        "obs_type": cfg.obs_type,
        "obs_shape": list(obs_shape),
        "action_dim": action_dim,
        "skill_dim": 0 if plugin is None else plugin.skill_dim,
        "hidden_dim": cfg.agent.hidden_dim,
        "plugin": None if plugin is None else type(plugin).__name__,
    }


def _written_by(path: Path) -> str | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["metadata"].get("run_dir")
    except Exception:  # unreadable: not this run's own (the refusal below names it)
        return None


def refuse_overwrite(paths: list[Path], run_dir: Path, own_allowed: bool = True) -> None:
    """A fresh pre-training run must not replace snapshots another run wrote. Snapshots this
    run directory wrote itself (a run killed before its first checkpoint) are rewritten when
    ``own_allowed`` (the same command run again), with a notice."""
    existing = [p for p in paths if p.exists()]
    mine = str(Path(run_dir).absolute())
    own = [p for p in existing if own_allowed and _written_by(p) == mine]
    if own:
        print(
            f"notice: {run_dir} has no checkpoint; rewriting the snapshots it wrote before: {', '.join(map(str, own))}"
        )
    others = [p for p in existing if p not in own]
    if others:
        raise SnapshotError(
            f"snapshots of this run already exist and would be overwritten: {', '.join(map(str, others))}; "
            f"the run directory {run_dir} has no checkpoint to resume from and did not write them. Use another "
            "seed or snapshot_dir, or pass overwrite_snapshots=true to replace them"
        )


def save_snapshot(path: str | Path, payload: dict[str, dict], metadata: dict[str, Any]) -> Path:
    meta = {**metadata, "format_version": FORMAT_VERSION, "package_version": urlb.__version__}
    atomic_torch_save({"metadata": meta, "state": payload}, path)
    return Path(path)


def _unreadable_reason(exc: Exception) -> str:
    """What was wrong with a file torch could not load, without torch's advice to retry with
    ``weights_only=False``: that would run code from a file the user may not have made."""
    text = str(exc)
    if "weights_only" in text or "Unsupported global" in text or isinstance(exc, pickle.UnpicklingError):
        return "it holds pickled Python objects, not only tensors and plain data; urlb does not load those"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_torch_file(path: Path, what: str, mmap: bool = False) -> dict:
    """Load a file written by :func:`atomic_torch_save`, turning corruption into a clear error."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise SnapshotError(f"{what} {path} is unreadable (truncated or corrupt?): {_unreadable_reason(exc)}") from None
    if not isinstance(data, dict) or "metadata" not in data or "state" not in data:
        raise SnapshotError(f"{what} {path} is not a urlb {what} (no metadata/state)")
    return data


def check_networks_fit(path: Path, state: dict[str, Any], needed: dict[str, dict[str, torch.Tensor]]) -> None:
    """A snapshot's networks against the run's (``needed``: network -> state_dict): every
    network present, every tensor present with the run's shape; else one SnapshotError."""
    missing = sorted(set(needed) - set(state))
    if missing:
        raise SnapshotError(
            f"snapshot {path} lacks the network(s) {', '.join(missing)} "
            f"(it has: {', '.join(sorted(state)) or 'none'}); it was not written by this agent's pre-training"
        )
    for network, tensors in needed.items():
        have = state[network]
        if not isinstance(have, dict):
            raise SnapshotError(f"snapshot {path}: {network} is not a state_dict")
        for key, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor):
                continue
            if key not in have:
                raise SnapshotError(f"snapshot {path}: {network} lacks the weights {key}")
            got = tuple(getattr(have[key], "shape", ()))
            if got != tuple(tensor.shape):
                raise SnapshotError(
                    f"snapshot {path}: weights {network}.{key} have shape {list(got)}, this run needs "
                    f"{list(tensor.shape)}; the snapshot comes from another domain, obs_type or network size"
                )


def _existing_snapshots(root: Path, obs_type: str, domain: str) -> list[str]:
    base = root / obs_type / domain
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in base.glob("*/*/snapshot_*.pt"))


def _mismatch_hint(mismatched: dict[str, tuple[Any, Any]]) -> str:
    """The likely cause of a size mismatch: the snapshot came from another preset."""
    if "hidden_dim" not in mismatched:
        return ""
    have = mismatched["hidden_dim"][0]
    preset = {256: " (the quick preset's size): add preset=quick", 1024: " (the paper preset's size): use preset=paper"}
    return (
        f". Likely cause: the snapshot was pre-trained with agent.hidden_dim={have}{preset.get(have, '')}; "
        f"otherwise pass agent.hidden_dim={have} and the other overrides its pre-training used"
    )


def load_snapshot(
    root: str | Path, obs_type: str, domain: str, agent: str, seed: int, frames: int, expected: dict[str, Any]
) -> dict:
    """Find, read and validate a snapshot; ``expected`` holds metadata that must match."""
    root = Path(root)
    path = snapshot_path(root, obs_type, domain, agent, seed, frames)
    if not path.is_file():
        existing = _existing_snapshots(root, obs_type, domain)
        listing = "\n  ".join(existing) if existing else "(none)"
        raise SnapshotError(
            f"no snapshot at {path}\n"
            f"snapshots under {root / obs_type / domain}:\n  {listing}\n"
            f"create it with: python pretrain.py agent={agent} domain={domain} obs_type={obs_type} seed={seed} "
            f"snapshot_dir={root}  (it must run to at least {frames} frames; snapshots=[{frames}])\n"
            f"or fine-tune from scratch with snapshot_ts=0"
        )
    data = read_torch_file(path, "snapshot")
    meta = data["metadata"]
    mismatched = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if mismatched:
        detail = "; ".join(f"{k}: snapshot has {a!r}, this run needs {b!r}" for k, (a, b) in mismatched.items())
        raise SnapshotError(f"snapshot {path} does not fit this run: {detail}{_mismatch_hint(mismatched)}")
    return data
