"""Scores and statistics: normalisation, score tables, per-task stats, rliable aggregates.

Aggregate metrics (IQM, mean, median, optimality gap) and their 95% stratified
bootstrap confidence intervals come from rliable, on (seeds x tasks) matrices.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from urlb.tasks import ALL_TASKS, DOMAINS, EXPERT_SCORES, TASKS, domain_of
from urlb.tools.aggregate.runs import AggregateError, Run, one_line

OVERALL = "overall"
PUBLISHED_SUFFIX = " (published)"
METRICS: tuple[tuple[str, str], ...] = (
    ("iqm", "IQM"),
    ("mean", "Mean"),
    ("median", "Median"),
    ("optimality_gap", "Optimality gap"),
)
PUBLISHED_NOTE = (
    "published per-task means only: mean and median of the task means are exact, "
    "IQM, optimality gap and confidence intervals need per-seed scores and cannot be "
    "recomputed"
)


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


# Each agent's name in the published table (urlb/data/published_states_2M.csv), used as its
# display name so a run and its published row pair by name ("ProtoRL" and "ProtoRL (published)").
METHOD_NAMES: dict[str, str] = {
    "icm": "ICM",
    "disagreement": "Disagreement",
    "rnd": "RND",
    "apt": "APT",
    "proto": "ProtoRL",
    "smm": "SMM",
    "diayn": "DIAYN",
    "aps": "APS",
    "cic": "CIC",
    "metra": "METRA",
    "becl": "BeCL",
    "cesd": "CeSD",
    "ddpg": "DDPG",
}


def method_name(agent: str) -> str:
    """Display name of an agent: its published name, else the agent name itself."""
    return METHOD_NAMES.get(agent, agent)


def make_labels(runs: Sequence[Run]) -> dict[tuple[str, int], str]:
    """Display label per (agent, snapshot_ts); the snapshot is shown only when an agent
    has several, so a plain comparison reads 'CIC' rather than 'CIC@2M'."""
    snaps: dict[str, set[int]] = {}
    for run in runs:
        snaps.setdefault(run.agent, set()).add(run.snapshot_ts)
    return {
        (a, s): (method_name(a) if len(ss) == 1 else f"{method_name(a)}@{format_frames(s)}")
        for a, ss in snaps.items()
        for s in ss
    }


def score_table(runs: Sequence[Run], frame: int | None) -> pd.DataFrame:
    """One row per run: its raw and normalised score at the chosen frame."""
    labels = make_labels(runs)
    rows = []
    for run in runs:
        target = run.num_train_frames if frame is None else frame
        ret = float(run.curve.loc[run.curve["frame"] == target, "episode_reward"].iloc[0])
        rows.append(
            {
                "method": labels[(run.agent, run.snapshot_ts)],
                "agent": run.agent,
                "snapshot_ts": run.snapshot_ts,
                "task": run.task,
                "domain": domain_of(run.task),
                "seed": run.seed,
                "frame": target,
                "return": ret,
                "normalised": normalise(run.task, ret),
                "path": str(run.path),
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values(["agent", "snapshot_ts", "task", "seed"], ignore_index=True)


def curve_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table of every evaluation of every used run (for the learning curves)."""
    labels = make_labels(runs)
    parts = []
    for run in runs:
        curve = run.curve[run.curve["frame"] <= run.num_train_frames]
        parts.append(
            pd.DataFrame(
                {
                    "method": labels[(run.agent, run.snapshot_ts)],
                    "task": run.task,
                    "seed": run.seed,
                    "frame": curve["frame"].to_numpy(),
                    "normalised": normalise(run.task, curve["episode_reward"].to_numpy()),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def load_published() -> pd.DataFrame:
    """Published fine-tuning returns (states, 2M pre-training frames, 100k fine-tuning).

    One row per method and task with the ``source`` it was taken from; ``stderr`` is
    empty (NaN) where the source gives only the mean.
    """
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
    stats = grouped.agg(
        n=("return", "size"),
        return_mean=("return", "mean"),
        return_se=("return", "sem"),
        norm_mean=("normalised", "mean"),
        norm_se=("normalised", "sem"),
    ).reset_index()
    stats["source"] = "runs"
    if published is not None:
        pub = pd.DataFrame(
            {
                "method": published["label"],
                "task": published["task"],
                "n": np.nan,
                "return_mean": published["mean_return"],
                "return_se": published["stderr"],
                "norm_mean": published["norm_mean"],
                "norm_se": published["norm_se"],
                "source": "published",
            }
        )
        stats = pd.concat([stats, pub], ignore_index=True)
    return stats


def method_order(scores: pd.DataFrame, published: pd.DataFrame | None) -> list[str]:
    """Run methods by agent then snapshot, followed by the published ones."""
    order = scores.drop_duplicates("method").sort_values(["agent", "snapshot_ts"])["method"].tolist()
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


# ----------------------------------------------------------------------------- aggregates


def load_rliable() -> tuple[Any, Any]:
    """rliable's ``library`` and ``metrics`` modules, with a clear error if unusable."""
    try:
        from rliable import library as rly
        from rliable import metrics
    except Exception as exc:  # arch 7 fails with TypeError under pandas 3, not ImportError
        raise AggregateError(
            f"cannot import rliable ({type(exc).__name__}: {one_line(exc)}); rliable 1.2 "
            "needs arch<8, and arch 7 needs pandas<3"
        ) from exc
    return rly, metrics


def _metric_vector(metrics: Any) -> Callable[[np.ndarray], np.ndarray]:
    """rliable aggregate function returning all four metrics in METRICS order."""

    def func(x: np.ndarray) -> np.ndarray:
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_mean(x),
                metrics.aggregate_median(x),
                metrics.aggregate_optimality_gap(x),
            ]
        )

    return func


def score_matrix(scores: pd.DataFrame, tasks: Sequence[str]) -> tuple[np.ndarray, int]:
    """(m seeds x tasks) matrix of normalised scores and the number of runs dropped.

    rliable's stratified bootstrap resamples seeds within each task and needs the
    same count per task, so every task keeps its m lowest seeds, m being the
    smallest seed count among the tasks.
    """
    columns = [scores.loc[scores["task"] == t].sort_values("seed")["normalised"].to_numpy() for t in tasks]
    m = min(len(c) for c in columns)
    dropped = sum(len(c) - m for c in columns)
    return np.stack([c[:m] for c in columns], axis=1), dropped


def with_seed(seed: int, fn: Callable[[], Any]) -> Any:
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


def run_aggregates(scores: pd.DataFrame, reps: int, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """rliable point estimates and 95% stratified bootstrap CIs per method and scope.

    Returns the long table and the overall score matrix of each method (reused for
    the performance profile).
    """
    rly, metrics = load_rliable()
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
            point, ci = with_seed(seed, lambda: rly.get_interval_estimates({method: matrix}, func, reps=reps))
            row = {
                "method": method,
                "source": "runs",
                "agent": sub["agent"].iloc[0],
                "snapshot_ts": int(sub["snapshot_ts"].iloc[0]),
                "scope": scope,
                "n_tasks": len(tasks),
                "missing_tasks": " ".join(t for t in wanted if t not in tasks),
                "seeds_per_task": matrix.shape[0],
                "runs_dropped": dropped,
            }
            for i, (key, _) in enumerate(METRICS):
                row.update(
                    {key: point[method][i], f"{key}_ci_low": ci[method][0, i], f"{key}_ci_high": ci[method][1, i]}
                )
            row["note"] = _aggregate_note(matrix.shape[0], dropped)
            rows.append(row)
    return pd.DataFrame(rows), overall


def _aggregate_note(m: int, dropped: int) -> str:
    notes = []
    if dropped:
        notes.append(f"unequal seed counts: kept the lowest {m} seed(s) of each task, dropped {dropped} run(s)")
    if m == 1:
        notes.append("one seed per task: the bootstrap CI is degenerate")
    return "; ".join(notes)


def published_aggregates(published: pd.DataFrame) -> pd.DataFrame:
    """Mean and median of the published per-task normalised means, per method and scope.

    rliable's aggregate mean/median are functions of per-task means, so a 1 x tasks
    matrix of published means gives them exactly; IQM and the optimality gap need the
    per-seed scores, which are not published.
    """
    _, metrics = load_rliable()
    rows = []
    for label, sub in published.groupby("label", sort=False):
        for scope in (OVERALL, *DOMAINS):
            wanted = scope_tasks(scope)
            means = sub.set_index("task")["norm_mean"]
            tasks = [t for t in wanted if t in means.index]
            if not tasks:
                continue
            matrix = means.loc[tasks].to_numpy()[None, :]
            row = {
                "method": label,
                "source": "published",
                "agent": sub["method"].iloc[0],
                "snapshot_ts": 2_000_000,
                "scope": scope,
                "n_tasks": len(tasks),
                "missing_tasks": " ".join(t for t in wanted if t not in tasks),
                "seeds_per_task": np.nan,
                "runs_dropped": np.nan,
                "mean": float(metrics.aggregate_mean(matrix)),
                "median": float(metrics.aggregate_median(matrix)),
                "note": PUBLISHED_NOTE,
                "reference": sub["source"].iloc[0],
            }
            rows.append(row)
    return pd.DataFrame(rows)
