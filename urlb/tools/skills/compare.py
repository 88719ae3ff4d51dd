"""The comparison view of one domain: methods as rows and snapshots as columns on shared axes
with one colour scale, and coverage against pre-training frames with every seed, their mean
and spread (as METRA draws its state-coverage curves). Every path starts from the same state."""

from __future__ import annotations

import numpy as np

from urlb.tools.skills.figures import draw_paths, path_labels, plt, skill_colors
from urlb.tools.skills.measures import BODIES, coverage
from urlb.tools.skills.rollouts import SnapshotRollouts

METHOD_COLORS = plt.get_cmap("tab10")


def comparison_figure(domain: str, rows: list[tuple[str, list[SnapshotRollouts]]], start_note: str):
    """``rows``: (method label, its snapshots' rollouts); columns are the union of snapshot frames."""
    body = BODIES[domain]
    frames = sorted({s.frames for _, snaps in rows for s in snaps})
    k = max(len(s.rollouts) for _, snaps in rows for s in snaps)
    colors = skill_colors(k)
    fig = plt.figure(figsize=(2.9 * len(frames) + 1.2, 2.3 * len(rows) + 0.9))
    axes = fig.subplots(len(rows), len(frames), sharex=True, sharey=True, squeeze=False)
    xlabel, ylabel = path_labels(domain)
    for r, (label, snaps) in enumerate(rows):
        by_frames = {s.frames: s for s in snaps}
        for c, f in enumerate(frames):
            ax = axes[r, c]
            snap = by_frames.get(f)
            if snap is None:
                ax.text(0.5, 0.5, "no snapshot", ha="center", va="center", transform=ax.transAxes, color="0.5")
            else:
                draw_paths(ax, domain, snap, colors, label=False)
                count = coverage([p.positions for p in snap.rollouts], body.ground, body.cell)
                ax.text(0.02, 0.96, f"{count} cells", transform=ax.transAxes, va="top", fontsize=7)
            if r == 0:
                ax.set_title(f"{f:,} frames", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel(xlabel, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{label}\n{ylabel}", fontsize=8)
    # The colour scale: skill index i of K (METRA: the angle of z).
    mappable = plt.cm.ScalarMappable(cmap=plt.get_cmap("hsv"), norm=plt.Normalize(0, k))
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    bar.set_label(f"i-th of the {k} skills rolled out (METRA: z at angle 360 i/{k} deg)", fontsize=8)
    fig.suptitle(f"{domain}: {k} skills per snapshot, {start_note}", fontsize=10)
    return fig


def coverage_curves(domain: str, series: dict[str, dict[int, dict[int, int]]]):
    """``series``: method -> seed -> snapshot frames -> cells. Each seed as dots, the mean as a
    line, the spread (min to max over seeds) shaded."""
    body = BODIES[domain]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for i, (method, seeds) in enumerate(sorted(series.items())):
        color = METHOD_COLORS(i % 10)
        frames = sorted({f for per_seed in seeds.values() for f in per_seed})
        values = [[per_seed[f] for per_seed in seeds.values() if f in per_seed] for f in frames]
        for f, vals in zip(frames, values):
            ax.plot([f] * len(vals), vals, ".", color=color, alpha=0.5, ms=5)
        mean = [float(np.mean(v)) for v in values]
        ax.plot(frames, mean, "-", color=color, lw=1.8, label=f"{method} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
        if len(seeds) > 1:
            ax.fill_between(frames, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.15)
    ax.set_xlabel("pre-training frames")
    ax.set_ylabel(f"cells visited by all skills\n({body.what})", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(f"{domain}: coverage (line: mean; band: min to max over seeds; dots: seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def coverage_table(series: dict[str, dict[int, dict[int, int]]]) -> list[dict]:
    """One CSV row per method and snapshot: mean, min, max and every seed's cells."""
    rows = []
    for method, seeds in sorted(series.items()):
        for f in sorted({f for per_seed in seeds.values() for f in per_seed}):
            vals = {s: per_seed[f] for s, per_seed in sorted(seeds.items()) if f in per_seed}
            rows.append(
                {
                    "method": method,
                    "snapshot_frames": f,
                    "seeds": " ".join(map(str, vals)),
                    "cells_mean": round(float(np.mean(list(vals.values()))), 2),
                    "cells_min": min(vals.values()),
                    "cells_max": max(vals.values()),
                    "cells_per_seed": " ".join(map(str, vals.values())),
                }
            )
    return rows
