"""Pictures of a run's skills (matplotlib, Agg): each domain's view of the paths, the method's
own picture (as its paper draws it) and coverage per snapshot.

One colour scale everywhere: skill i of K gets hue i/K on a circular map, so METRA's skill
directions (angle 2 pi i / K) read as angles and neighbouring one-hot skills stay distinct.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from urlb.tools.skills.measures import BODIES, cells, coverage
from urlb.tools.skills.rollouts import SnapshotRollouts, project_2d

CIRCULAR = "hsv"


def skill_colors(k: int) -> list:
    """K distinct colours, hue i/K on a circular scale (skill i of K)."""
    cmap = plt.get_cmap(CIRCULAR)
    return [cmap(i / max(k, 1)) for i in range(k)]


def path_xy(domain: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The domain's view of one path: walker torso x over time; quadruped torso x-y; jaco hand x-y."""
    if domain == "walker":
        return np.arange(len(positions)), positions[:, 0]
    return positions[:, 0], positions[:, 1]


def path_labels(domain: str) -> tuple[str, str]:
    labels = BODIES[domain].labels
    return ("step", labels[0]) if domain == "walker" else (labels[0], labels[1])


def draw_paths(ax, domain: str, snap: SnapshotRollouts, colors: list, label: bool = True) -> None:
    """One snapshot's paths in the domain's view; the shared start (black dot) and end points."""
    for color, r in zip(colors, snap.rollouts):
        x, y = path_xy(domain, r.positions)
        ax.plot(x, y, color=color, lw=1.1, label=r.label if label else None)
        ax.plot(x[-1], y[-1], "o", color=color, ms=3)
    x, y = path_xy(domain, snap.rollouts[0].positions[:1])
    ax.plot(x, y, "ko", ms=4, zorder=5)
    ax.grid(alpha=0.3)
    if domain != "walker":  # metres on both axes; "box": panels share their axes
        ax.set_aspect("equal", adjustable="box")


def _legend(fig, axes, markerscale: float = 1.0) -> None:
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, markerscale=markerscale)


def _finish(fig, legend_inches: float = 1.4):
    fig.tight_layout(rect=(0, 0, 1 - legend_inches / fig.get_figwidth(), 1))
    return fig


def trajectory_figure(domain: str, snapshots: list[SnapshotRollouts], title: str):
    """One panel per snapshot, one colour per skill, shared axes, the start as a black dot."""
    body = BODIES[domain]
    n = len(snapshots)
    fig = plt.figure(figsize=(4.2 * n + 1.6, 3.4 if domain == "walker" else 4.0))
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
    k = max(len(s.rollouts) for s in snapshots)
    xlabel, ylabel = path_labels(domain)
    for ax, snap in zip(axes, snapshots):
        draw_paths(ax, domain, snap, skill_colors(k))
        count = coverage([r.positions for r in snap.rollouts], body.ground, body.cell)
        ax.set_title(f"{snap.frames:,} frames: {count} cells", fontsize=9)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    _legend(fig, axes)
    fig.suptitle(f"{title}: {k} skills from one start state (seed {snapshots[0].start_seed}; {body.what})", fontsize=10)
    return _finish(fig)


def _phi_panel(ax, snap: SnapshotRollouts, colors: list) -> None:
    view = snap.view
    paths, arrows, names = project_2d(view.paths, view.arrows)
    reach = max(float(np.abs(np.concatenate(paths)).max()), 1e-6)
    length = np.linalg.norm(arrows, axis=1).max() or 1.0
    for color, p, a, r in zip(colors, paths, arrows, snap.rollouts):
        ax.plot(p[:, 0], p[:, 1], color=color, lw=0.7, alpha=0.75, label=r.label)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=color, ms=5, markeredgecolor="k", markeredgewidth=0.5)
        tip = a / length * 0.9 * reach  # arrows scaled to the paths' reach: their direction is z's
        ax.annotate("", tip, (0, 0), arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.6})
    ax.plot(0, 0, "ko", ms=4)
    ax.set_aspect("equal", adjustable="datalim")
    if names == ("dim 1", "dim 2"):
        names = ("phi_1(s_t) - phi_1(s_0)", "phi_2(s_t) - phi_2(s_0)")
    ax.set_xlabel(names[0], fontsize=8)
    ax.set_ylabel(names[1], fontsize=8)


def _confusion_panel(ax, snap: SnapshotRollouts):
    matrix = snap.view.confusion
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    k = len(matrix)
    ticks = np.arange(k)
    # One-hot skills by their index, other skills by their place in the gallery (0..K-1).
    names = [
        r.label.removeprefix("skill ") if r.label.startswith("skill ") else str(i) for i, r in enumerate(snap.rollouts)
    ]
    ax.set_xticks(ticks, names, fontsize=6)
    ax.set_yticks(ticks, names, fontsize=6)
    ax.set_xlabel("skill inferred from the state (j)", fontsize=8)
    ax.set_ylabel("skill rolled out (i)", fontsize=8)
    return image


def _embedding_panel(ax, snap: SnapshotRollouts, colors: list) -> None:
    view = snap.view
    points = [*view.paths, view.arrows]  # one PCA for transitions and skills together
    projected, _, names = project_2d(points)
    for color, p, r in zip(colors, projected[:-1], snap.rollouts):
        ax.scatter(p[:, 0], p[:, 1], color=color, s=3, alpha=0.4, linewidths=0, label=r.label)
    ax.scatter(projected[-1][:, 0], projected[-1][:, 1], c=colors, marker="*", s=160, edgecolors="k", linewidths=0.7)
    ax.set_xlabel(names[0], fontsize=8)
    ax.set_ylabel(names[1], fontsize=8)


def _visitation_panel(ax, domain: str, snap: SnapshotRollouts):
    """State-visitation map: visits per cell of all K rollouts (log scale), in the domain's view."""
    body = BODIES[domain]
    points = np.concatenate([r.positions for r in snap.rollouts])
    x, y, labels = points[:, 0], points[:, 1], body.labels[:2]  # walker: x and height; others: x-y
    counts, xe, ye = np.histogram2d(x, y, bins=40)
    image = ax.pcolormesh(xe, ye, np.log10(counts.T + 1), cmap="magma")
    ax.set_xlabel(labels[0], fontsize=8)
    ax.set_ylabel(labels[1], fontsize=8)
    return image


def method_figure(domain: str, snapshots: list[SnapshotRollouts], title: str):
    """The method's own picture, one panel per snapshot: METRA's phi paths with z arrows,
    discrete-skill methods' confusion matrices, CIC's embeddings, else state-visitation maps."""
    view = snapshots[0].view
    kind = view.kind if view is not None else "visitation"
    n = len(snapshots)
    k = max(len(s.rollouts) for s in snapshots)
    colors = skill_colors(k)
    fig = plt.figure(figsize=(4.0 * n + 1.6, 4.0))
    axes = fig.subplots(1, n, squeeze=False)[0]
    image = None
    for ax, snap in zip(axes, snapshots):
        if kind == "phi":
            _phi_panel(ax, snap, colors)
        elif kind == "confusion":
            image = _confusion_panel(ax, snap)
        elif kind == "embedding":
            _embedding_panel(ax, snap, colors)
        else:
            image = _visitation_panel(ax, domain, snap)
        score = "" if snap.scores is None else f"; {snap.score_name.replace('_', ' ')} {np.mean(snap.scores):.2f}"
        ax.set_title(f"{snap.frames:,} frames{score}", fontsize=9)
        if kind != "confusion":
            ax.grid(alpha=0.3)
    if image is not None:
        label = "share of the skill's states" if kind == "confusion" else "log10(visits + 1)"
        fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02).set_label(label, fontsize=8)
        what = view.title if view is not None else f"state visitation of all {k} rollouts"
        fig.suptitle(f"{title}: {what}", fontsize=10)
        return fig
    _legend(fig, axes, markerscale=3)
    fig.suptitle(f"{title}: {view.title}", fontsize=10)
    return _finish(fig)


def coverage_figure(domain: str, snapshots: list[SnapshotRollouts], title: str):
    """Cells visited by all K skills together and by one skill (mean), against snapshot frames."""
    body = BODIES[domain]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    frames = [s.frames for s in snapshots]
    total = [coverage([r.positions for r in s.rollouts], body.ground, body.cell) for s in snapshots]
    single = [np.mean([len(cells(r.positions, body.ground, body.cell)) for r in s.rollouts]) for s in snapshots]
    ax.plot(frames, total, "o-", color="tab:blue", label=f"all {len(snapshots[0].rollouts)} skills")
    ax.plot(frames, single, "s--", color="tab:orange", label="one skill (mean)")
    for f, value in zip(frames, total):
        ax.annotate(str(value), (f, value), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.set_ylim(0, max(total) * 1.25 + 1)
    ax.set_xlabel("pre-training frames (snapshot)")
    ax.set_ylabel(f"distinct cells ({body.what})", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig, path: Path, dpi: int = 110) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
