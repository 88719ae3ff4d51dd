"""Pictures of a run's skills (matplotlib, Agg): trajectories per snapshot on shared axes, the
learned space coloured per skill, and coverage per snapshot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from urlb.tools.skills.measures import BODIES, coverage
from urlb.tools.skills.rollouts import SnapshotRollouts, project_2d


def skill_colors(k: int) -> list:
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20" if k <= 20 else "hsv")
    return [cmap(i % cmap.N) if k <= 20 else cmap(i / k) for i in range(k)]


def trajectory_figure(domain: str, snapshots: list[SnapshotRollouts], title: str, figure=None):
    """One panel per snapshot, one colour per skill, shared axes; start marked by a black dot."""
    body = BODIES[domain]
    ax_x, ax_y = 0, 1  # walker: x against height; quadruped: x-y; jaco: the top view x-y of the hand
    n = len(snapshots)
    fig = figure or plt.figure(figsize=(4.2 * n + 1.6, 4.0 if domain != "walker" else 3.2))
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    k = max(len(s.rollouts) for s in snapshots)
    colors = skill_colors(k)
    for ax, snap in zip(axes, snapshots):
        for color, r in zip(colors, snap.rollouts):
            ax.plot(r.positions[:, ax_x], r.positions[:, ax_y], color=color, lw=1.2, label=r.label)
            ax.plot(r.positions[-1, ax_x], r.positions[-1, ax_y], "o", color=color, ms=3)
        start = snap.rollouts[0].positions[0]
        ax.plot(start[ax_x], start[ax_y], "ko", ms=4)
        cells = coverage([r.positions for r in snap.rollouts], body.ground, body.cell)
        ax.set_title(f"{snap.frames:,} frames: {cells} cells", fontsize=9)
        ax.set_xlabel(body.labels[ax_x])
        ax.grid(alpha=0.3)
        if domain == "quadruped":
            ax.set_aspect("equal", adjustable="datalim")
    axes[0].set_ylabel(body.labels[ax_y])
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(f"{title}: {k} skills from one start state ({body.what} counted)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    return fig


def learned_space_figure(snapshots: list[SnapshotRollouts], title: str):
    """The method's learned space (phi, discriminator output, CIC's f(s)) of each visited
    state, coloured per skill; PCA to 2-D (per snapshot) where wider."""
    n = len(snapshots)
    fig = plt.figure(figsize=(4.0 * n + 1.6, 3.8))
    axes = fig.subplots(1, n, squeeze=False)[0]
    k = max(len(s.rollouts) for s in snapshots)
    colors = skill_colors(k)
    for ax, snap in zip(axes, snapshots):
        points, how = project_2d(snap.features)
        for color, p, r in zip(colors, points, snap.rollouts):
            # Points, not lines: consecutive states jump around in a learned space.
            ax.scatter(p[:, 0], p[:, 1], color=color, s=3, alpha=0.5, linewidths=0, label=r.label)
        ax.set_title(f"{snap.frames:,} frames {how}".strip(), fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, markerscale=3)
    fig.suptitle(f"{title}: {snapshots[0].feature_name} along each skill's rollout", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    return fig


def coverage_figure(domain: str, snapshots: list[SnapshotRollouts], title: str):
    """Cells visited by all K skills together, per snapshot, and by each skill alone."""
    body = BODIES[domain]
    from urlb.tools.skills.measures import cells

    fig, ax = plt.subplots(figsize=(max(3.5, 1.0 + 1.1 * len(snapshots)), 3.2))
    x = np.arange(len(snapshots))
    total = [coverage([r.positions for r in s.rollouts], body.ground, body.cell) for s in snapshots]
    single = [np.mean([len(cells(r.positions, body.ground, body.cell)) for r in s.rollouts]) for s in snapshots]
    ax.bar(x, total, color="tab:blue", label="all skills")
    ax.bar(x, single, width=0.4, color="tab:orange", label="one skill (mean)")
    for xi, value in zip(x, total):
        ax.text(xi, value, str(value), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{s.frames:,}" for s in snapshots])
    ax.set_xlabel("snapshot (frames)")
    ax.set_ylabel(f"distinct cells ({body.what})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def save(fig, path: Path, dpi: int = 110) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
