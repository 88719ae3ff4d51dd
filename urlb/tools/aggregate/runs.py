"""Finding, reading and filtering fine-tuning runs.

A run is a directory with ``config.yaml`` (the resolved fine-tuning config) and
``eval.csv``.  A directory that is found but cannot be used (unreadable, another
protocol than the majority, incomplete, a duplicate) becomes an :class:`Exclusion`
with its reason, so nothing is left out silently.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from urlb.tasks import EXPERT_SCORES, domain_of

# Keys every fine-tuning config must define; the values decide grouping and protocol.
REQUIRED_KEYS: tuple[str, ...] = ("agent.name", "task", "seed", "obs_type", "num_train_frames", "eval_every_frames")
EXCLUDED_COLUMNS = ["path", "status", "reason", "agent", "task", "seed", "snapshot_ts"]


class AggregateError(Exception):
    """A problem with the user's input; reported as a one-line error, exit code 2."""


class RunRejected(Exception):
    """A candidate directory that is not used; ``status`` is 'excluded' or 'ignored'."""

    def __init__(self, reason: str, status: str = "excluded", meta: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.meta = meta or {}


@dataclass(frozen=True)
class Run:
    """One fine-tuning run: its identity, protocol and evaluation curve."""

    path: Path
    agent: str
    task: str
    seed: int
    snapshot_ts: int
    obs_type: str
    num_train_frames: int
    eval_every_frames: int
    curve: pd.DataFrame  # columns frame (int), episode_reward (float); sorted by frame

    @property
    def key(self) -> tuple[str, str, int, int]:
        """What makes two runs duplicates of each other."""
        return (self.agent, self.task, self.seed, self.snapshot_ts)

    def meta(self) -> dict:
        return {"agent": self.agent, "task": self.task, "seed": self.seed, "snapshot_ts": self.snapshot_ts}


@dataclass(frozen=True)
class Exclusion:
    """A directory that was found but not used, and why."""

    path: Path
    reason: str
    status: str = "excluded"  # "ignored" for pre-training runs: not an error
    meta: dict | None = None

    def row(self) -> dict:
        meta = self.meta or {}
        return {
            "path": str(self.path),
            "status": self.status,
            "reason": self.reason,
            **{k: meta.get(k, "") for k in ("agent", "task", "seed", "snapshot_ts")},
        }


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (for error reports)."""
    return " ".join(str(exc).split())[:200]


# ----------------------------------------------------------------------------- discovery


def find_candidate_dirs(paths: Sequence[Path]) -> list[Path]:
    """Directories below ``paths`` holding a ``config.yaml`` or an ``eval.csv``.

    Hidden directories (``.hydra``, ``.git``) are skipped: Hydra keeps its own copy of
    the config there and it would otherwise be found as a second run.  The same
    directory reached twice (overlapping paths, symlinks) is returned once.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise AggregateError(f"path(s) do not exist: {', '.join(missing)}")
    visited: set[str] = set()
    found: list[Path] = []
    for root in paths:
        root = root if root.is_dir() else root.parent
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in visited:  # overlapping arguments or a symlink loop
                dirnames[:] = []
                continue
            visited.add(real)
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if "config.yaml" in filenames or "eval.csv" in filenames:
                found.append(Path(dirpath))
    return sorted(found, key=str)


def _load_config(run_dir: Path) -> dict:
    """The run's config as a plain dict (``config.yaml``, else Hydra's ``.hydra`` copy)."""
    from omegaconf import OmegaConf  # imported here: only needed when reading runs

    for name in ("config.yaml", ".hydra/config.yaml"):
        path = run_dir / name
        if path.is_file():
            try:
                cfg = OmegaConf.load(path)
            except Exception as exc:  # yaml and omegaconf raise many error types
                raise RunRejected(f"unreadable {name}: {one_line(exc)}") from exc
            try:
                data = OmegaConf.to_container(cfg, resolve=True)
            except Exception:  # unresolvable interpolation: use the raw values
                data = OmegaConf.to_container(cfg, resolve=False)
            if not isinstance(data, dict):
                raise RunRejected(f"{name} is not a mapping")
            return data
    raise RunRejected("eval.csv without config.yaml")


def _get(cfg: dict, dotted: str) -> Any:
    """``cfg['a']['b']`` for ``'a.b'``; ``None`` when absent."""
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _best_effort_meta(cfg: dict) -> dict:
    """Identity fields for ``excluded.csv``, whatever state the config is in."""
    return {
        "agent": _get(cfg, "agent.name") or "",
        "task": _get(cfg, "task") or "",
        "seed": _get(cfg, "seed") if _get(cfg, "seed") is not None else "",
        "snapshot_ts": _get(cfg, "snapshot_ts") if _get(cfg, "snapshot_ts") is not None else "",
    }


def _as_int(cfg: dict, key: str, meta: dict) -> int:
    value = _get(cfg, key)
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise RunRejected(f"config {key}={value!r} is not an integer", meta=meta) from None


def _parse_config(cfg: dict) -> dict:
    """Validated run fields from a fine-tuning config."""
    meta = _best_effort_meta(cfg)
    absent = [k for k in REQUIRED_KEYS if _get(cfg, k) is None]
    if absent:
        raise RunRejected(f"config.yaml lacks key(s) {', '.join(absent)}", meta=meta)
    task = str(_get(cfg, "task"))
    if task not in EXPERT_SCORES:
        raise RunRejected(f"unknown task {task!r} (no expert score)", meta=meta)
    domain = _get(cfg, "domain")
    if domain is not None and domain != domain_of(task):
        raise RunRejected(f"config domain={domain!r} does not match task {task}", meta=meta)
    fields = {
        "agent": str(_get(cfg, "agent.name")),
        "task": task,
        "obs_type": str(_get(cfg, "obs_type")),
        # snapshot_ts absent means no pre-trained snapshot was loaded: from scratch.
        "snapshot_ts": _as_int(cfg, "snapshot_ts", meta) if _get(cfg, "snapshot_ts") is not None else 0,
    }
    for key in ("seed", "num_train_frames", "eval_every_frames"):
        fields[key] = _as_int(cfg, key, meta)
    if fields["eval_every_frames"] <= 0:
        raise RunRejected("config eval_every_frames must be positive", meta=meta)
    return fields


def _read_eval_csv(path: Path, meta: dict) -> pd.DataFrame:
    """The evaluation curve, validated: numeric, finite, one row per frame."""
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # parser, encoding and empty-file errors alike
        raise RunRejected(f"unreadable eval.csv: {one_line(exc)}", meta=meta) from exc
    absent = [c for c in ("frame", "episode_reward") if c not in df.columns]
    if absent:
        raise RunRejected(f"eval.csv lacks column(s) {', '.join(absent)}", meta=meta)
    if df.empty:
        raise RunRejected("incomplete: eval.csv has no evaluations yet", meta=meta)
    frame = pd.to_numeric(df["frame"], errors="coerce")
    reward = pd.to_numeric(df["episode_reward"], errors="coerce")
    if frame.isna().any() or not np.isfinite(reward.to_numpy(dtype=float)).all():
        raise RunRejected("eval.csv has non-numeric or non-finite frame/episode_reward", meta=meta)
    if frame.duplicated().any():
        # A resumed run that appended to its log: which evaluation counts is ambiguous.
        raise RunRejected("eval.csv repeats a frame (appended/resumed run?)", meta=meta)
    curve = pd.DataFrame({"frame": frame.astype("int64"), "episode_reward": reward.astype(float)})
    return curve.sort_values("frame", ignore_index=True)


def read_run(run_dir: Path) -> Run | None:
    """Read one candidate directory.

    Returns ``None`` for directories that are not runs (e.g. a config source folder),
    raises :class:`RunRejected` for runs that cannot be used.
    """
    has_eval = (run_dir / "eval.csv").is_file()
    try:
        cfg = _load_config(run_dir)
    except RunRejected:
        if has_eval:
            raise
        return None  # a lone unreadable config.yaml is not evidence of a run
    meta = _best_effort_meta(cfg)
    phase = cfg.get("phase")
    if phase is not None and phase != "finetune":
        raise RunRejected(f"not a fine-tuning run (phase={phase})", "ignored", meta)
    if not has_eval:
        # A resolved fine-tuning config without results is a run that died early;
        # a Hydra source config (it has a defaults list) is not a run at all.
        if phase == "finetune" and "defaults" not in cfg:
            raise RunRejected("no eval.csv (stopped before its first evaluation?)", meta=meta)
        return None
    fields = _parse_config(cfg)
    curve = _read_eval_csv(run_dir / "eval.csv", meta)
    return Run(path=run_dir, curve=curve, **fields)


def collect_runs(paths: Sequence[Path]) -> tuple[list[Run], list[Exclusion], int]:
    """All readable fine-tuning runs below ``paths``, the rejected ones, and the
    number of run directories found."""
    runs: list[Run] = []
    rejected: list[Exclusion] = []
    n_found = 0
    for run_dir in find_candidate_dirs(paths):
        try:
            run = read_run(run_dir)
        except RunRejected as rej:
            rejected.append(Exclusion(run_dir, rej.reason, rej.status, rej.meta))
            n_found += 1
            continue
        if run is not None:
            runs.append(run)
            n_found += 1
    return runs, rejected, n_found


# ----------------------------------------------------------------------------- filtering


def _majority(values: Iterable, what: str, flag: str) -> Any:
    """The most common value; a tie is an error since either choice would be arbitrary."""
    counts = Counter(values).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        tied = ", ".join(f"{v} ({n} runs)" for v, n in counts if n == counts[0][1])
        raise AggregateError(f"runs are split evenly between {what} values {tied}; choose one with {flag}")
    return counts[0][0]


def select_protocol(
    runs: list[Run], obs_type: str | None, finetune_frames: int | None
) -> tuple[list[Run], list[Exclusion], dict]:
    """Keep runs of one observation type and one fine-tuning budget.

    Unless chosen explicitly, the majority value wins: scores from different
    protocols are not comparable, so the minority is excluded rather than mixed in.
    """
    excluded: list[Exclusion] = []
    chosen: dict = {}
    for attr, flag, requested in (
        ("obs_type", "--obs-type", obs_type),
        ("num_train_frames", "--finetune-frames", finetune_frames),
    ):
        if not runs:
            break
        if requested is None:
            value = _majority((getattr(r, attr) for r in runs), attr, flag)
            why = "differs from the majority {value} (select with " + flag + ")"
        else:
            value = requested
            why = "does not match " + flag + " {value}"
        chosen[attr] = value
        keep = []
        for run in runs:
            if getattr(run, attr) == value:
                keep.append(run)
            else:
                reason = f"{attr}={getattr(run, attr)} " + why.format(value=value)
                excluded.append(Exclusion(run.path, reason, meta=run.meta()))
        runs = keep
    return runs, excluded, chosen


def check_complete(run: Run, frame: int | None) -> str | None:
    """Why ``run`` cannot be scored at ``frame`` (None: final evaluation), if it cannot."""
    frames = run.curve["frame"]
    expected = run.num_train_frames // run.eval_every_frames
    # An optional evaluation at frame 0 (before any update) does not count.
    done = int(((frames > 0) & (frames <= run.num_train_frames)).sum())
    if done < expected:
        last = int(frames.max())
        return f"incomplete: {done} of {expected} evaluations (last at frame {last})"
    target = run.num_train_frames if frame is None else frame
    if target not in set(frames.tolist()):
        return f"no evaluation at frame {target}"
    return None


def drop_incomplete(runs: list[Run], frame: int | None) -> tuple[list[Run], list[Exclusion]]:
    """Runs that have every evaluation their config asks for, and the chosen frame."""
    keep, excluded = [], []
    for run in runs:
        reason = check_complete(run, frame)
        if reason is None:
            keep.append(run)
        else:
            excluded.append(Exclusion(run.path, reason, meta=run.meta()))
    return keep, excluded


def drop_duplicates(runs: list[Run]) -> tuple[list[Run], list[Exclusion]]:
    """One run per (agent, task, seed, snapshot_ts): the first by sorted path.

    Applied after the other checks, so a crashed attempt does not shadow its rerun.
    """
    first: dict[tuple, Run] = {}
    excluded = []
    for run in sorted(runs, key=lambda r: str(r.path)):
        if run.key in first:
            reason = f"duplicate of {first[run.key].path} (same agent, task, seed, snapshot_ts)"
            excluded.append(Exclusion(run.path, reason, meta=run.meta()))
        else:
            first[run.key] = run
    return list(first.values()), excluded
