"""The learning comparison's table: this project's DDPG against URLB's (same seeds, same sizes).

    python results/ddpg_public/table.py [EVAL_DIR]

EVAL_DIR (default: eval/ next to this file) holds one folder per group (``ours1``, ``pub1``,
``ours4``, ``pub4``: code and replay loader workers) with one ``seed_<n>.csv`` per run, the
run's own evaluation log (columns ``frame`` and ``episode_reward``). Groups ``oursK`` and
``pubK`` are compared when both exist, over the seeds both have.
"""

from __future__ import annotations

import csv
import math
import statistics as st
import sys
from pathlib import Path


def returns(path: Path) -> dict[int, float]:
    with open(path) as f:
        return {int(float(r["frame"])): float(r["episode_reward"]) for r in csv.DictReader(f)}


def welch_t(a: list[float], b: list[float]) -> float:
    scale = math.sqrt(st.variance(a) / len(a) + st.variance(b) / len(b))
    return (st.mean(a) - st.mean(b)) / scale if scale > 0 else math.nan


def spread(values: list[float]) -> str:
    return f"{st.mean(values):.1f} ± {st.stdev(values):.1f}"


def group(root: Path, name: str) -> dict[int, dict[int, float]]:
    return {int(p.stem.split("_")[1]): returns(p) for p in sorted((root / name).glob("seed_*.csv"))}


def compare(root: Path, workers: str) -> None:
    ours, pub = group(root, f"ours{workers}"), group(root, f"pub{workers}")
    seeds = sorted(set(ours) & set(pub))
    if len(seeds) < 2:
        return
    print(f"\n### Replay loader workers: {workers} (seeds {', '.join(map(str, seeds))})\n")
    print("| frame | ours: mean ± sd | public URLB: mean ± sd | Welch t |")
    print("|---|---|---|---|")
    frames = sorted(set.intersection(*(set(ours[s]) & set(pub[s]) for s in seeds)))
    for frame in frames:
        a, b = [ours[s][frame] for s in seeds], [pub[s][frame] for s in seeds]
        print(f"| {frame:,} | {spread(a)} | {spread(b)} | {welch_t(a, b):+.2f} |")
    late = [f for f in frames if f >= 5000]
    a = [st.mean(ours[s][f] for f in late) for s in seeds]
    b = [st.mean(pub[s][f] for f in late) for s in seeds]
    print(f"| mean over {late[0]:,}-{late[-1]:,} | {spread(a)} | {spread(b)} | {welch_t(a, b):+.2f} |")
    print(f"\nRatio ours / public over {late[0]:,}-{late[-1]:,}: {st.mean(a) / st.mean(b):.3f}")
    print(
        "\nPer seed, mean over those frames (ours / public): "
        + ", ".join(f"{s}: {x:.0f}/{y:.0f}" for s, x, y in zip(seeds, a, b))
    )
    zero = [s for s in seeds if abs(ours[s].get(0, math.nan) - pub[s].get(0, math.nan)) < 1e-6]
    print(f"\nSeeds whose frame-0 evaluation is the same on both sides (to 1e-6): {len(zero)} of {len(seeds)}")


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "eval"
    for workers in ("1", "4"):
        compare(root, workers)
