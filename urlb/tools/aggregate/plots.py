"""Plots: aggregate metrics, performance profile, learning curves, score vs snapshot.

Figures are built without pyplot (see :func:`_new_figure`), so plotting leaves
matplotlib's global state alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from urlb.tasks import DOMAINS, TASKS
from urlb.tools.aggregate.stats import METRICS, OVERALL, PUBLISHED_SUFFIX, format_frames, load_rliable, with_seed


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


def plot_aggregate_metrics(agg: pd.DataFrame, methods: list[str], colors: dict, path: Path) -> None:
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
    fig.suptitle(
        "Aggregate normalised score, 95% stratified bootstrap CIs (◇ published: mean/median only)", fontsize="medium"
    )
    _save(fig, path)


def plot_performance_profile(matrices: dict[str, np.ndarray], colors: dict, reps: int, seed: int, path: Path) -> None:
    """Score distribution (fraction of runs above tau) with bootstrap CIs, via rliable."""
    rly, _ = load_rliable()
    from rliable import plot_utils

    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(0.0, math.ceil(top * 10) / 10, 81)
    profiles, cis = with_seed(seed, lambda: rly.create_performance_profile(matrices, taus, reps=reps))
    fig = _new_figure(7, 4.5)
    ax = fig.subplots()
    plot_utils.plot_performance_profiles(
        profiles,
        taus,
        performance_profile_cis=cis,
        colors={m: colors[m] for m in matrices},
        ax=ax,
        xlabel=r"normalised score ($\tau$)",
        ylabel=r"fraction of runs with score > $\tau$",
        labelsize="medium",
        ticklabelsize="medium",
        legend=True,
        legendsize="small",
    )
    _save(fig, path)


def _mean_sem(curves: pd.DataFrame) -> pd.DataFrame:
    """Per-frame mean and standard error (ddof=1) over seeds."""
    return curves.groupby("frame")["normalised"].agg(["mean", "sem", "size"]).sort_index()


def _frames_axis(ax) -> None:
    """Tick labels such as 20k, 1M instead of raw frame counts."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_frames(int(x))))


def _draw_curve(ax, stats: pd.DataFrame, color, label: str) -> None:
    _frames_axis(ax)
    x = stats.index.to_numpy()
    ax.plot(x, stats["mean"], color=color, label=label, lw=1.6)
    ax.fill_between(x, stats["mean"] - stats["sem"], stats["mean"] + stats["sem"], color=color, alpha=0.2, lw=0)


def plot_curves_per_task(curves: pd.DataFrame, published: pd.DataFrame | None, colors: dict, path: Path) -> None:
    """Normalised return vs fine-tuning frames, mean ± stderr over seeds, per task.

    Published results (only for methods matching an agent here, to keep it legible)
    are drawn as a point ± stderr at 100k frames, the published fine-tuning budget.
    """
    ncols = max(len(TASKS[d]) for d in DOMAINS)
    fig = _new_figure(3.4 * ncols, 2.8 * len(DOMAINS))
    axes = fig.subplots(len(DOMAINS), ncols, squeeze=False)
    agents = {m.split("@")[0].lower() for m in curves["method"].unique()}
    # One frame range for every panel, so tasks with and without runs read alike.
    max_frame = max(
        [int(curves["frame"].max()) if not curves.empty else 0] + ([100_000] if published is not None else [])
    )
    for row, domain in enumerate(DOMAINS):
        for col, task in enumerate(TASKS[domain]):
            ax = axes[row, col]
            sub = curves[curves["task"] == task]
            for method, part in sub.groupby("method", sort=False):
                _draw_curve(ax, _mean_sem(part), colors[method], method)
            if published is not None:
                pub = published[(published["task"] == task) & published["method"].str.lower().isin(agents)]
                for _, p in pub.iterrows():
                    ax.errorbar(
                        100_000,
                        p["norm_mean"],
                        yerr=p["norm_se"],
                        fmt="*",
                        ms=9,
                        color=colors[p["label"]],
                        label=p["label"],
                    )
            if sub.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="grey")
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
        fig.legend(
            handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 6), fontsize="small"
        )


def domain_curve(curves: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Mean over a domain's tasks of the per-task mean curves, with its standard error.

    Runs on different tasks are independent, so the standard error of the mean of
    T task means is sqrt(sum se_t^2) / T.  Only frames evaluated on every task count.
    """
    per_task = {t: _mean_sem(part) for t, part in curves.groupby("task")}
    means = pd.DataFrame({t: s["mean"] for t, s in per_task.items()}).dropna()
    sems = pd.DataFrame({t: s["sem"] for t, s in per_task.items()}).loc[means.index]
    n = means.shape[1]
    out = pd.DataFrame({"mean": means.mean(axis=1), "sem": np.sqrt((sems**2).sum(axis=1, min_count=n)) / n})
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
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, color="grey")
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
            ax.errorbar(
                sub["snapshot_ts"],
                sub["iqm"],
                yerr=yerr,
                marker="o",
                capsize=3,
                color=colors[sub["method"].iloc[0]] if len(sub) else None,
                label=agent,
            )
        ticks = sorted(runs.loc[runs["agent"].isin(multi), "snapshot_ts"].unique())
        ax.set_xticks(ticks, [format_frames(int(t)) for t in ticks])
        ax.set_title(scope)
        ax.set_xlabel("pre-training frames (snapshot)")
        ax.set_ylabel("IQM normalised score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(fig, path)
    return True
