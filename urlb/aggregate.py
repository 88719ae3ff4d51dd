"""Aggregate URLB fine-tuning runs into tables, rliable metrics and plots.

Usage::

    python -m urlb.aggregate RUNS... --out DIR [--frame N] [--published]
        [--reps 2000] [--seed 0] [--obs-type states|pixels] [--finetune-frames N]

A fine-tuning run directory holds ``config.yaml`` (resolved OmegaConf config) and
``eval.csv`` (one row per evaluation).  Run directories are found at any depth below
the given paths.  Each run contributes its evaluation return at the chosen frame
(default: the final one, ``num_train_frames``), normalised by the task's expert score
(``normalised = return / expert``, see :data:`urlb.tasks.EXPERT_SCORES`).

Runs that cannot be compared fairly (incomplete, duplicated, another observation type
or fine-tuning budget than the majority, unreadable files) are excluded with a printed
reason and listed in ``excluded.csv``; they are never mixed in silently.

Aggregate metrics (IQM, mean, median, optimality gap) and their 95% stratified
bootstrap confidence intervals come from rliable.  rliable needs rectangular
``(num_seeds, num_tasks)`` matrices, so when tasks have different numbers of seeds the
matrix keeps the lowest ``m`` seeds of every task, ``m`` being the smallest seed count
among the tasks; the dropped runs are counted in the output and reported.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from urlb.tasks import ALL_TASKS, DOMAINS, EXPERT_SCORES, TASKS, domain_of

MISSING = "—"
OVERALL = "overall"
PUBLISHED_SUFFIX = " (published)"
METRICS: tuple[tuple[str, str], ...] = (
    ("iqm", "IQM"),
    ("mean", "Mean"),
    ("median", "Median"),
    ("optimality_gap", "Optimality gap"),
)
# Keys every fine-tuning config must define; the values decide grouping and protocol.
REQUIRED_KEYS: tuple[str, ...] = (
    "agent.name", "task", "seed", "obs_type", "num_train_frames", "eval_every_frames",
)
EXCLUDED_COLUMNS = ["path", "status", "reason", "agent", "task", "seed", "snapshot_ts"]
PUBLISHED_NOTE = (
    "published per-task means only: mean and median of the task means are exact, "
    "IQM, optimality gap and confidence intervals need per-seed scores and cannot be "
    "recomputed"
)


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
        return {"agent": self.agent, "task": self.task, "seed": self.seed,
                "snapshot_ts": self.snapshot_ts}


@dataclass(frozen=True)
class Exclusion:
    """A directory that was found but not used, and why."""

    path: Path
    reason: str
    status: str = "excluded"  # "ignored" for pre-training runs: not an error
    meta: dict | None = None

    def row(self) -> dict:
        meta = self.meta or {}
        return {"path": str(self.path), "status": self.status, "reason": self.reason,
                **{k: meta.get(k, "") for k in ("agent", "task", "seed", "snapshot_ts")}}


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
                raise RunRejected(f"unreadable {name}: {_one_line(exc)}") from exc
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
    return {"agent": _get(cfg, "agent.name") or "", "task": _get(cfg, "task") or "",
            "seed": _get(cfg, "seed") if _get(cfg, "seed") is not None else "",
            "snapshot_ts": _get(cfg, "snapshot_ts") if _get(cfg, "snapshot_ts") is not None
            else ""}


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
        "snapshot_ts": _as_int(cfg, "snapshot_ts", meta) if _get(cfg, "snapshot_ts")
        is not None else 0,
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
        raise RunRejected(f"unreadable eval.csv: {_one_line(exc)}", meta=meta) from exc
    absent = [c for c in ("frame", "episode_reward") if c not in df.columns]
    if absent:
        raise RunRejected(f"eval.csv lacks column(s) {', '.join(absent)}", meta=meta)
    if df.empty:
        raise RunRejected("incomplete: eval.csv has no evaluations yet", meta=meta)
    frame = pd.to_numeric(df["frame"], errors="coerce")
    reward = pd.to_numeric(df["episode_reward"], errors="coerce")
    if frame.isna().any() or not np.isfinite(reward.to_numpy(dtype=float)).all():
        raise RunRejected("eval.csv has non-numeric or non-finite frame/episode_reward",
                          meta=meta)
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
        raise AggregateError(f"runs are split evenly between {what} values {tied}; "
                             f"choose one with {flag}")
    return counts[0][0]


def select_protocol(runs: list[Run], obs_type: str | None, finetune_frames: int | None
                    ) -> tuple[list[Run], list[Exclusion], dict]:
    """Keep runs of one observation type and one fine-tuning budget.

    Unless chosen explicitly, the majority value wins: scores from different
    protocols are not comparable, so the minority is excluded rather than mixed in.
    """
    excluded: list[Exclusion] = []
    chosen: dict = {}
    for attr, flag, requested in (("obs_type", "--obs-type", obs_type),
                                  ("num_train_frames", "--finetune-frames", finetune_frames)):
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
            reason = (f"duplicate of {first[run.key].path} "
                      "(same agent, task, seed, snapshot_ts)")
            excluded.append(Exclusion(run.path, reason, meta=run.meta()))
        else:
            first[run.key] = run
    return list(first.values()), excluded


# ----------------------------------------------------------------------------- scores


def normalise(task: str, value: float | np.ndarray) -> float | np.ndarray:
    """Expert-normalised score: ``return / expert_return`` (nothing subtracted)."""
    return value / EXPERT_SCORES[task]


def format_frames(frames: int) -> str:
    """Compact frame count: 2000000 -> '2M', 100000 -> '100k'."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if frames >= size and frames % (size // 100 or 1) == 0:
            return f"{frames / size:g}{unit}"
    return str(frames)


def make_labels(runs: Sequence[Run]) -> dict[tuple[str, int], str]:
    """Display label per (agent, snapshot_ts); the snapshot is shown only when an agent
    has several, so a plain comparison reads 'cic' rather than 'cic@2M'."""
    snaps: dict[str, set[int]] = {}
    for run in runs:
        snaps.setdefault(run.agent, set()).add(run.snapshot_ts)
    return {(a, s): (a if len(ss) == 1 else f"{a}@{format_frames(s)}")
            for a, ss in snaps.items() for s in ss}


def score_table(runs: Sequence[Run], frame: int | None) -> pd.DataFrame:
    """One row per run: its raw and normalised score at the chosen frame."""
    labels = make_labels(runs)
    rows = []
    for run in runs:
        target = run.num_train_frames if frame is None else frame
        ret = float(run.curve.loc[run.curve["frame"] == target, "episode_reward"].iloc[0])
        rows.append({"method": labels[(run.agent, run.snapshot_ts)], "agent": run.agent,
                     "snapshot_ts": run.snapshot_ts, "task": run.task,
                     "domain": domain_of(run.task), "seed": run.seed, "frame": target,
                     "return": ret, "normalised": normalise(run.task, ret),
                     "path": str(run.path)})
    df = pd.DataFrame(rows)
    return df.sort_values(["agent", "snapshot_ts", "task", "seed"], ignore_index=True)


def curve_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table of every evaluation of every used run (for the learning curves)."""
    labels = make_labels(runs)
    parts = []
    for run in runs:
        curve = run.curve[run.curve["frame"] <= run.num_train_frames]
        parts.append(pd.DataFrame({
            "method": labels[(run.agent, run.snapshot_ts)], "task": run.task,
            "seed": run.seed, "frame": curve["frame"].to_numpy(),
            "normalised": normalise(run.task, curve["episode_reward"].to_numpy())}))
    return pd.concat(parts, ignore_index=True)


def load_published() -> pd.DataFrame:
    """Published fine-tuning returns (states, 2M pre-training frames, 100k fine-tuning)."""
    path = resources.files("urlb.data").joinpath("published_states_2M.csv")
    with resources.as_file(path) as file:
        df = pd.read_csv(file)
    df["label"] = df["method"] + PUBLISHED_SUFFIX
    df["norm_mean"] = [normalise(t, v) for t, v in zip(df["task"], df["mean_return"])]
    df["norm_se"] = [normalise(t, v) for t, v in zip(df["task"], df["stderr"])]
    return df


# ----------------------------------------------------------------------------- per task


def per_task_stats(scores: pd.DataFrame, published: pd.DataFrame | None) -> pd.DataFrame:
    """Long table: method, task, n seeds, mean and standard error (ddof=1) over seeds of
    the raw return and of the normalised score."""
    grouped = scores.groupby(["method", "task"], sort=False)
    stats = grouped.agg(n=("return", "size"), return_mean=("return", "mean"),
                        return_se=("return", "sem"), norm_mean=("normalised", "mean"),
                        norm_se=("normalised", "sem")).reset_index()
    stats["source"] = "runs"
    if published is not None:
        pub = pd.DataFrame({"method": published["label"], "task": published["task"],
                            "n": np.nan, "return_mean": published["mean_return"],
                            "return_se": published["stderr"],
                            "norm_mean": published["norm_mean"],
                            "norm_se": published["norm_se"], "source": "published"})
        stats = pd.concat([stats, pub], ignore_index=True)
    return stats


def method_order(scores: pd.DataFrame, published: pd.DataFrame | None) -> list[str]:
    """Run methods by agent then snapshot, followed by the published ones."""
    order = (scores.drop_duplicates("method").sort_values(["agent", "snapshot_ts"])
             ["method"].tolist())
    if published is not None:
        order += list(dict.fromkeys(published["label"]))
    return order


def wide_per_task(stats: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Rows: all benchmark tasks (missing ones stay blank); columns '<method>:<stat>'."""
    out = pd.DataFrame({"task": list(ALL_TASKS), "domain": [domain_of(t) for t in ALL_TASKS]})
    for method in methods:
        sub = stats[stats["method"] == method].set_index("task")
        for col in ("n", "return_mean", "return_se", "norm_mean", "norm_se"):
            out[f"{method}:{col}"] = out["task"].map(sub[col])
        # Nullable integers: seed counts print as 5, a missing task as a blank cell.
        out[f"{method}:n"] = out[f"{method}:n"].astype("Int64")
    return out


def _pm(mean: float, se: float, digits: int) -> str:
    """'mean ± se', or just the mean when the standard error is undefined (one seed)."""
    if mean is None or pd.isna(mean):
        return MISSING
    if se is None or pd.isna(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def per_task_markdown(wide: pd.DataFrame, methods: list[str], frame_text: str) -> str:
    """Two tables (raw return, normalised score); cells 'mean ± stderr (n=seeds)'."""
    parts = [f"# Per-task fine-tuning results ({frame_text})", ""]
    for title, stat, digits in (("Raw return", "return", 1),
                                ("Normalised score (return / expert)", "norm", 3)):
        rows = []
        for _, r in wide.iterrows():
            cells = []
            for m in methods:
                cell = _pm(r[f"{m}:{stat}_mean"], r[f"{m}:{stat}_se"], digits)
                if cell != MISSING and not pd.isna(r[f"{m}:n"]):
                    cell += f" (n={int(r[f'{m}:n'])})"
                cells.append(cell)
            rows.append([r["task"], *cells])
        parts += [f"## {title}", "", _md_table(["task", *methods], rows), ""]
    parts.append(f"Mean ± standard error over seeds (n = seeds); {MISSING} = no runs. "
                 "Published rows: the published mean ± standard error.")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- aggregates


def _rliable() -> tuple[Any, Any]:
    """rliable's ``library`` and ``metrics`` modules, with a clear error if unusable."""
    try:
        from rliable import library as rly
        from rliable import metrics
    except Exception as exc:  # arch 7 fails with TypeError under pandas 3, not ImportError
        raise AggregateError(
            f"cannot import rliable ({type(exc).__name__}: {_one_line(exc)}); rliable 1.2 "
            "needs arch<8, and arch 7 needs pandas<3") from exc
    return rly, metrics


def _metric_vector(metrics: Any) -> Callable[[np.ndarray], np.ndarray]:
    """rliable aggregate function returning all four metrics in METRICS order."""
    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x),
                         metrics.aggregate_median(x), metrics.aggregate_optimality_gap(x)])
    return func


def score_matrix(scores: pd.DataFrame, tasks: Sequence[str]) -> tuple[np.ndarray, int]:
    """(m seeds x tasks) matrix of normalised scores and the number of runs dropped.

    rliable's stratified bootstrap resamples seeds within each task and needs the
    same count per task, so every task keeps its m lowest seeds, m being the
    smallest seed count among the tasks.
    """
    columns = [scores.loc[scores["task"] == t].sort_values("seed")["normalised"].to_numpy()
               for t in tasks]
    m = min(len(c) for c in columns)
    dropped = sum(len(c) - m for c in columns)
    return np.stack([c[:m] for c in columns], axis=1), dropped


def _with_seed(seed: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with numpy's global RNG seeded, then restore it.

    rliable's bootstrap draws indices from the global ``np.random`` (its
    ``random_state`` argument does not reach them), so seeding it is what makes the
    confidence intervals reproducible.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return fn()
    finally:
        np.random.set_state(state)


def scope_tasks(scope: str) -> tuple[str, ...]:
    return ALL_TASKS if scope == OVERALL else TASKS[scope]


def run_aggregates(scores: pd.DataFrame, reps: int, seed: int
                   ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """rliable point estimates and 95% stratified bootstrap CIs per method and scope.

    Returns the long table and the overall score matrix of each method (reused for
    the performance profile).
    """
    rly, metrics = _rliable()
    func = _metric_vector(metrics)
    rows, overall = [], {}
    for method, sub in scores.groupby("method", sort=False):
        for scope in (OVERALL, *DOMAINS):
            wanted = scope_tasks(scope)
            tasks = [t for t in wanted if t in set(sub["task"])]
            if not tasks:
                continue
            matrix, dropped = score_matrix(sub, tasks)
            if scope == OVERALL:
                overall[method] = matrix
            point, ci = _with_seed(seed, lambda: rly.get_interval_estimates(
                {method: matrix}, func, reps=reps))
            row = {"method": method, "source": "runs", "agent": sub["agent"].iloc[0],
                   "snapshot_ts": int(sub["snapshot_ts"].iloc[0]), "scope": scope,
                   "n_tasks": len(tasks),
                   "missing_tasks": " ".join(t for t in wanted if t not in tasks),
                   "seeds_per_task": matrix.shape[0], "runs_dropped": dropped}
            for i, (key, _) in enumerate(METRICS):
                row.update({key: point[method][i], f"{key}_ci_low": ci[method][0, i],
                            f"{key}_ci_high": ci[method][1, i]})
            row["note"] = _aggregate_note(matrix.shape[0], dropped)
            rows.append(row)
    return pd.DataFrame(rows), overall


def _aggregate_note(m: int, dropped: int) -> str:
    notes = []
    if dropped:
        notes.append(f"unequal seed counts: kept the lowest {m} seed(s) of each task, "
                     f"dropped {dropped} run(s)")
    if m == 1:
        notes.append("one seed per task: the bootstrap CI is degenerate")
    return "; ".join(notes)


def published_aggregates(published: pd.DataFrame) -> pd.DataFrame:
    """Mean and median of the published per-task normalised means, per method and scope.

    rliable's aggregate mean/median are functions of per-task means, so a 1 x tasks
    matrix of published means gives them exactly; IQM and the optimality gap need the
    per-seed scores, which are not published.
    """
    _, metrics = _rliable()
    rows = []
    for label, sub in published.groupby("label", sort=False):
        for scope in (OVERALL, *DOMAINS):
            wanted = scope_tasks(scope)
            means = sub.set_index("task")["norm_mean"]
            tasks = [t for t in wanted if t in means.index]
            if not tasks:
                continue
            matrix = means.loc[tasks].to_numpy()[None, :]
            row = {"method": label, "source": "published", "agent": sub["method"].iloc[0],
                   "snapshot_ts": 2_000_000, "scope": scope, "n_tasks": len(tasks),
                   "missing_tasks": " ".join(t for t in wanted if t not in tasks),
                   "seeds_per_task": np.nan, "runs_dropped": np.nan,
                   "mean": float(metrics.aggregate_mean(matrix)),
                   "median": float(metrics.aggregate_median(matrix)), "note": PUBLISHED_NOTE}
            rows.append(row)
    return pd.DataFrame(rows)


def _ci_cell(row: pd.Series, key: str) -> str:
    value = row.get(key)
    if value is None or pd.isna(value):
        return MISSING
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or pd.isna(low):
        return f"{value:.3f} (no CI)"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def aggregate_markdown(agg: pd.DataFrame, frame_text: str, reps: int) -> str:
    """Aggregate table (overall first, then per domain) with its footnotes."""
    header = ["method", "scope", "tasks", "seeds/task", *(name for _, name in METRICS)]
    rows = []
    for scope in (OVERALL, *DOMAINS):
        for _, r in agg[agg["scope"] == scope].iterrows():
            n_all = len(scope_tasks(scope))
            seeds = MISSING if pd.isna(r["seeds_per_task"]) else str(int(r["seeds_per_task"]))
            if r["runs_dropped"] and not pd.isna(r["runs_dropped"]):
                seeds += f" ({int(r['runs_dropped'])} dropped)"
            rows.append([r["method"], scope, f"{r['n_tasks']}/{n_all}", seeds,
                         *(_ci_cell(r, key) for key, _ in METRICS)])
    notes = [
        f"Normalised score = return / expert return ({frame_text}). Point estimates "
        f"and 95% stratified bootstrap CIs ({reps} resamples of seeds within each task) "
        "from rliable. IQM: mean of the middle 50% of all (seed, task) scores; mean and "
        "median: of per-task means; optimality gap: mean shortfall below 1.",
        "Tasks with no runs are left out of a scope (tasks column), never counted as 0.",
        "seeds/task: with unequal seed counts each task keeps its lowest m seeds "
        "(m = smallest count) because rliable needs a seeds x tasks matrix.",
    ]
    if (agg["source"] == "published").any():
        notes.append(f"(published) rows: {PUBLISHED_NOTE}.")
    body = _md_table(header, rows)
    return (f"# Aggregate fine-tuning results ({frame_text})\n\n{body}\n\n"
            + "\n".join(f"- {n}" for n in notes) + "\n")


# ----------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float):
    """A pyplot-free figure: rendering with the Agg canvas leaves global state alone."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=120)


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """Stable colours; a published row shares the colour of the same-named agent."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    colors: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    used = 0
    for method in methods:
        name = method.removesuffix(PUBLISHED_SUFFIX).split("@")[0].lower()
        if method.endswith(PUBLISHED_SUFFIX) and name in by_name:
            colors[method] = by_name[name]
            continue
        colors[method] = palette[used % len(palette)]
        used += 1
        by_name.setdefault(name, colors[method])
    return colors


def plot_aggregate_metrics(agg: pd.DataFrame, methods: list[str], colors: dict,
                           path: Path) -> None:
    """Overall IQM/mean/median/optimality gap: CI bars with the point estimate; published
    rows as hollow diamonds (mean and median only, no CI)."""
    overall = agg[agg["scope"] == OVERALL].set_index("method")
    methods = [m for m in methods if m in overall.index]
    fig = _new_figure(3.2 * len(METRICS), 0.9 + 0.4 * len(methods))
    axes = fig.subplots(1, len(METRICS), sharey=True)
    for ax, (key, name) in zip(axes, METRICS):
        drawn: list[float] = []
        for y, method in enumerate(methods):
            r = overall.loc[method]
            if pd.isna(r.get(key)):
                continue
            if pd.isna(r.get(f"{key}_ci_low")):
                ax.plot(r[key], y, "D", mfc="none", mec=colors[method], ms=7)
                drawn.append(r[key])
                continue
            low, high = r[f"{key}_ci_low"], r[f"{key}_ci_high"]
            ax.barh(y, high - low, left=low, height=0.6, color=colors[method], alpha=0.7)
            ax.vlines(r[key], y - 0.3, y + 0.3, color="k")
            drawn += [low, high, r[key]]
        if drawn:  # explicit limits: bars' sticky edges would clip estimates at the extremes
            pad = 0.08 * max(max(drawn) - min(drawn), 0.05)
            ax.set_xlim(min(drawn) - pad, max(drawn) + pad)
        ax.set_title(name)
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(methods)), methods)
    axes[0].invert_yaxis()
    fig.suptitle("Aggregate normalised score, 95% stratified bootstrap CIs "
                 "(◇ published: mean/median only)", fontsize="medium")
    _save(fig, path)


def plot_performance_profile(matrices: dict[str, np.ndarray], colors: dict, reps: int,
                             seed: int, path: Path) -> None:
    """Score distribution (fraction of runs above tau) with bootstrap CIs, via rliable."""
    rly, _ = _rliable()
    from rliable import plot_utils

    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(0.0, math.ceil(top * 10) / 10, 81)
    profiles, cis = _with_seed(seed, lambda: rly.create_performance_profile(
        matrices, taus, reps=reps))
    fig = _new_figure(7, 4.5)
    ax = fig.subplots()
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=cis, colors={m: colors[m] for m in matrices},
        ax=ax, xlabel=r"normalised score ($\tau$)", ylabel=r"fraction of runs with score > $\tau$",
        labelsize="medium", ticklabelsize="medium", legend=True, legendsize="small")
    _save(fig, path)


def _mean_sem(curves: pd.DataFrame) -> pd.DataFrame:
    """Per-frame mean and standard error (ddof=1) over seeds."""
    return (curves.groupby("frame")["normalised"].agg(["mean", "sem", "size"])
            .sort_index())


def _frames_axis(ax) -> None:
    """Tick labels such as 20k, 1M instead of raw frame counts."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_frames(int(x))))


def _draw_curve(ax, stats: pd.DataFrame, color, label: str) -> None:
    _frames_axis(ax)
    x = stats.index.to_numpy()
    ax.plot(x, stats["mean"], color=color, label=label, lw=1.6)
    ax.fill_between(x, stats["mean"] - stats["sem"], stats["mean"] + stats["sem"],
                    color=color, alpha=0.2, lw=0)


def plot_curves_per_task(curves: pd.DataFrame, published: pd.DataFrame | None,
                         colors: dict, path: Path) -> None:
    """Normalised return vs fine-tuning frames, mean ± stderr over seeds, per task.

    Published results (only for methods matching an agent here, to keep it legible)
    are drawn as a point ± stderr at 100k frames, the published fine-tuning budget.
    """
    ncols = max(len(TASKS[d]) for d in DOMAINS)
    fig = _new_figure(3.4 * ncols, 2.8 * len(DOMAINS))
    axes = fig.subplots(len(DOMAINS), ncols, squeeze=False)
    agents = {m.split("@")[0].lower() for m in curves["method"].unique()}
    # One frame range for every panel, so tasks with and without runs read alike.
    max_frame = max([int(curves["frame"].max()) if not curves.empty else 0]
                    + ([100_000] if published is not None else []))
    for row, domain in enumerate(DOMAINS):
        for col, task in enumerate(TASKS[domain]):
            ax = axes[row, col]
            sub = curves[curves["task"] == task]
            for method, part in sub.groupby("method", sort=False):
                _draw_curve(ax, _mean_sem(part), colors[method], method)
            if published is not None:
                pub = published[(published["task"] == task)
                                & published["method"].str.lower().isin(agents)]
                for _, p in pub.iterrows():
                    ax.errorbar(100_000, p["norm_mean"], yerr=p["norm_se"], fmt="*", ms=9,
                                color=colors[p["label"]], label=p["label"])
            if sub.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
            ax.set_title(task, fontsize="medium")
            ax.set_xlim(0, 1.05 * max_frame)
            _frames_axis(ax)
            ax.grid(alpha=0.3)
            ax.set_xlabel("fine-tuning frames", fontsize="small")
            ax.set_ylabel("normalised return", fontsize="small")
    _figure_legend(fig, axes.ravel())
    _save(fig, path)


def _figure_legend(fig, axes: Iterable) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center",
                   ncols=min(len(handles), 6), fontsize="small")


def domain_curve(curves: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Mean over a domain's tasks of the per-task mean curves, with its standard error.

    Runs on different tasks are independent, so the standard error of the mean of
    T task means is sqrt(sum se_t^2) / T.  Only frames evaluated on every task count.
    """
    per_task = {t: _mean_sem(part) for t, part in curves.groupby("task")}
    means = pd.DataFrame({t: s["mean"] for t, s in per_task.items()}).dropna()
    sems = pd.DataFrame({t: s["sem"] for t, s in per_task.items()}).loc[means.index]
    n = means.shape[1]
    out = pd.DataFrame({"mean": means.mean(axis=1),
                        "sem": np.sqrt((sems ** 2).sum(axis=1, min_count=n)) / n})
    return out, n


def plot_curves_per_domain(curves: pd.DataFrame, colors: dict, path: Path) -> None:
    """Domain-average normalised return vs fine-tuning frames, one line per method."""
    fig = _new_figure(4.2 * len(DOMAINS), 3.4)
    axes = fig.subplots(1, len(DOMAINS), squeeze=False)[0]
    for ax, domain in zip(axes, DOMAINS):
        sub = curves[curves["task"].isin(TASKS[domain])]
        for method, part in sub.groupby("method", sort=False):
            stats, n = domain_curve(part)
            total = len(TASKS[domain])
            label = method if n == total else f"{method} ({n}/{total} tasks)"
            _draw_curve(ax, stats, colors[method], label)
        if sub.empty:
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
        ax.set_title(domain)
        ax.set_xlabel("fine-tuning frames")
        ax.set_ylabel("mean normalised return")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    _save(fig, path)


def plot_score_vs_snapshot(agg: pd.DataFrame, colors: dict, path: Path) -> bool:
    """IQM (95% CI) against pre-training frames for agents with several snapshots.

    Returns False (nothing written) when no agent has more than one snapshot.
    """
    runs = agg[agg["source"] == "runs"]
    multi = [a for a, s in runs.groupby("agent")["snapshot_ts"] if s.nunique() > 1]
    if not multi:
        return False
    scopes = [s for s in (OVERALL, *DOMAINS) if s in set(runs["scope"])]
    fig = _new_figure(3.8 * len(scopes), 3.4)
    axes = fig.subplots(1, len(scopes), squeeze=False)[0]
    for ax, scope in zip(axes, scopes):
        for agent in multi:
            sub = runs[(runs["agent"] == agent) & (runs["scope"] == scope)]
            sub = sub.sort_values("snapshot_ts")
            yerr = np.vstack([sub["iqm"] - sub["iqm_ci_low"], sub["iqm_ci_high"] - sub["iqm"]])
            ax.errorbar(sub["snapshot_ts"], sub["iqm"], yerr=yerr, marker="o", capsize=3,
                        color=colors[sub["method"].iloc[0]] if len(sub) else None, label=agent)
        ticks = sorted(runs.loc[runs["agent"].isin(multi), "snapshot_ts"].unique())
        ax.set_xticks(ticks, [format_frames(int(t)) for t in ticks])
        ax.set_title(scope)
        ax.set_xlabel("pre-training frames (snapshot)")
        ax.set_ylabel("IQM normalised score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(fig, path)
    return True


# ----------------------------------------------------------------------------- CLI


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="urlb-aggregate",
        description="Aggregate URLB fine-tuning runs: per-task tables, rliable aggregate "
                    "metrics (IQM, mean, median, optimality gap with stratified bootstrap "
                    "95% CIs) and plots.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUNS",
                        help="run directories or roots to search (any depth)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--frame", type=int, default=None,
                        help="fine-tuning frame to score (default: the final evaluation, "
                             "num_train_frames)")
    parser.add_argument("--published", action="store_true",
                        help="add published results (states, 2M pre-training frames)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--obs-type", choices=("states", "pixels"), default=None,
                        help="use only runs of this observation type (default: majority)")
    parser.add_argument("--finetune-frames", type=int, default=None,
                        help="use only runs with this num_train_frames (default: majority)")
    return parser


def gather(args: argparse.Namespace) -> tuple[list[Run], list[Exclusion], int, dict]:
    """Find runs and apply every exclusion rule, in the documented order."""
    runs, rejected, n_found = collect_runs(args.runs)
    if n_found == 0:
        raise AggregateError("no fine-tuning runs found (no config.yaml next to an eval.csv) "
                             f"under: {', '.join(map(str, args.runs))}")
    runs, off_protocol, chosen = select_protocol(runs, args.obs_type, args.finetune_frames)
    runs, incomplete = drop_incomplete(runs, args.frame)
    runs, duplicates = drop_duplicates(runs)
    return runs, [*rejected, *off_protocol, *incomplete, *duplicates], n_found, chosen


def write_excluded(excluded: list[Exclusion], out: Path) -> None:
    rows = [e.row() for e in sorted(excluded, key=lambda e: str(e.path))]
    pd.DataFrame(rows, columns=EXCLUDED_COLUMNS).to_csv(out / "excluded.csv", index=False)


def print_summary(n_found: int, runs: list[Run], excluded: list[Exclusion]) -> None:
    ignored = [e for e in excluded if e.status == "ignored"]
    bad = [e for e in excluded if e.status != "ignored"]
    print(f"Found {n_found} run directories: {len(runs)} used, {len(bad)} excluded, "
          f"{len(ignored)} ignored.")
    for e in sorted(excluded, key=lambda e: str(e.path)):
        print(f"  {e.status.upper()}: {e.path}: {e.reason}")


def frame_text(args: argparse.Namespace, chosen: dict) -> str:
    """E.g. 'final evaluation, frame 100000 of 100000 fine-tuning frames, states'."""
    budget = chosen.get("num_train_frames")
    frame = budget if args.frame is None else args.frame
    which = "final evaluation" if args.frame is None else "evaluation"
    return f"{which}, frame {frame} of {budget} fine-tuning frames, {chosen.get('obs_type')}"


def published_caveats(scores: pd.DataFrame, chosen: dict) -> list[str]:
    """Differences between this protocol and the published one, worth a warning."""
    notes = []
    if chosen.get("obs_type") != "states":
        notes.append(f"published results use states, these runs {chosen.get('obs_type')}")
    if chosen.get("num_train_frames") != 100_000:
        notes.append("published results use 100k fine-tuning frames, these runs "
                     f"{chosen.get('num_train_frames')}")
    snaps = sorted(set(scores["snapshot_ts"]) - {2_000_000})
    if snaps:
        notes.append("published results pre-train for 2M frames; these runs also have "
                     "snapshot_ts " + ", ".join(format_frames(int(s)) for s in snaps))
    return notes


def write_outputs(args: argparse.Namespace, runs: list[Run], chosen: dict) -> str:
    """Tables and plots; returns the aggregate markdown for the console."""
    out: Path = args.out
    published = load_published() if args.published else None
    scores = score_table(runs, args.frame)
    scores.to_csv(out / "runs.csv", index=False)
    methods = method_order(scores, published)
    text = frame_text(args, chosen)

    stats = per_task_stats(scores, published)
    wide = wide_per_task(stats, methods)
    wide.to_csv(out / "per_task.csv", index=False)
    (out / "per_task.md").write_text(per_task_markdown(wide, methods, text))

    agg, matrices = run_aggregates(scores, args.reps, args.seed)
    if published is not None:
        agg = pd.concat([agg, published_aggregates(published)], ignore_index=True)
    agg.to_csv(out / "aggregate.csv", index=False)
    (out / "aggregate.md").write_text(aggregate_markdown(agg, text, args.reps))

    colors = method_colors(methods)
    plot_aggregate_metrics(agg, methods, colors, out / "aggregate_metrics.png")
    plot_performance_profile(matrices, colors, args.reps, args.seed,
                             out / "performance_profile.png")
    curves = curve_table(runs)
    plot_curves_per_task(curves, published, colors, out / "curves_per_task.png")
    plot_curves_per_domain(curves, colors, out / "curves_per_domain.png")
    if not plot_score_vs_snapshot(agg, colors, out / "score_vs_snapshot.png"):
        print("No agent has several snapshot_ts values: score_vs_snapshot.png not written.")
    for note in _aggregate_warnings(agg):
        print(f"NOTE: {note}")
    if published is not None:
        for note in published_caveats(scores, chosen):
            print(f"NOTE: {note}")
    # The console keeps published rows to the overall scope; aggregate.md has them all.
    brief = agg[(agg["source"] == "runs") | (agg["scope"] == OVERALL)]
    return aggregate_markdown(brief, text, args.reps)


def _aggregate_warnings(agg: pd.DataFrame) -> list[str]:
    runs = agg[(agg["source"] == "runs") & (agg["note"] != "")]
    return [f"{r['method']} / {r['scope']}: {r['note']}" for _, r in runs.iterrows()]


def run(args: argparse.Namespace) -> int:
    """Everything after argument parsing; raises AggregateError for input problems."""
    if args.reps < 1:
        raise AggregateError("--reps must be at least 1")
    runs, excluded, n_found, chosen = gather(args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_excluded(excluded, args.out)
    print_summary(n_found, runs, excluded)
    if not runs:
        raise AggregateError(f"none of the {n_found} run directories is usable "
                             f"(reasons above and in {args.out / 'excluded.csv'})")
    print(f"Scoring: {frame_text(args, chosen)}.")
    md = write_outputs(args, runs, chosen)
    print()
    print(md)
    print(f"Wrote tables and plots to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``urlb-aggregate``); exit code 2 on input errors."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AggregateError as exc:
        print(f"urlb-aggregate: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
