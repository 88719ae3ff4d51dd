"""skills.csv (per snapshot and skill) and coverage.csv (per snapshot) of one run."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from urlb.tools.skills.measures import BODIES, cells, coverage, displacement, distance_travelled
from urlb.tools.skills.rollouts import SnapshotRollouts


@dataclass
class RunOutputs:
    """What the gallery wrote for one run (paths absolute) and its coverage per snapshot."""

    title: str
    agent: str
    domain: str
    seed: int
    out_dir: Path
    start_note: str = ""  # which start state every rollout began from
    coverage: dict[int, int] = field(default_factory=dict)
    distance: dict[int, float] = field(default_factory=dict)  # mean distance travelled per skill
    score_name: str = ""
    score: dict[int, float] = field(default_factory=dict)  # mean of the method's own per-skill score
    cell_note: str = ""
    files: dict[str, Path] = field(default_factory=dict)  # trajectories, method, coverage, csv
    videos: dict[int, Path] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)  # configured snapshots never written
    snapshots: list[SnapshotRollouts] = field(default_factory=list, repr=False)  # positions only, once written
    compare_files: dict[str, Path] = field(default_factory=dict)  # the domain's comparison pictures


def _slug(label: str) -> str:
    return label.split(" (")[0].replace(" ", "_")


def skill_rows(domain: str, snap: SnapshotRollouts) -> list[dict]:
    body = BODIES[domain]
    rows = []
    for i, r in enumerate(snap.rollouts):
        row = {
            "start_seed": snap.start_seed,
            "start_state": snap.start_digest,
            "snapshot_frames": snap.frames,
            "skill_index": i,
            "skill_label": r.label,
            "skill": "" if r.skill is None else " ".join(f"{v:.3g}" for v in np.asarray(r.skill).ravel()),
            "steps": len(r.positions) - 1,
        }
        for label, first, last in zip(body.labels, r.positions[0], r.positions[-1]):
            row[f"start_{_slug(label)}"] = round(float(first), 4)
            row[f"final_{_slug(label)}"] = round(float(last), 4)
        row["distance_travelled"] = round(distance_travelled(r.positions, body.ground), 4)
        row["displacement"] = round(displacement(r.positions, body.ground), 4)
        row["cells_visited"] = len(cells(r.positions, body.ground, body.cell))
        row["score_name"] = snap.score_name or ""
        row["score"] = "" if snap.scores is None else round(snap.scores[i], 4)
        row["intrinsic_reward_mean"] = "" if snap.intrinsic is None else round(snap.intrinsic[i], 5)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def coverage_rows(domain: str, snapshots: list[SnapshotRollouts]) -> list[dict]:
    body = BODIES[domain]
    return [
        {
            "start_seed": s.start_seed,
            "snapshot_frames": s.frames,
            "skills": len(s.rollouts),
            "cells_all_skills": coverage([r.positions for r in s.rollouts], body.ground, body.cell),
            "cells_per_skill_mean": round(
                float(np.mean([len(cells(r.positions, body.ground, body.cell)) for r in s.rollouts])), 2
            ),
            "cell": body.what,
        }
        for s in snapshots
    ]
