"""The learning comparison's table: this project's DDPG against URLB's (same seeds, same sizes).

    python results/ddpg_public/table.py [EVAL_DIR]   (results/pixels/ddpg_public/eval: the pixel runs)

EVAL_DIR (default: eval/ next to this file) holds one folder per group (``ours1``, ``pub1``,
``ours4``, ``pub4``: code and replay loader workers) with one ``seed_<n>.csv`` per run, the
run's own evaluation log (columns ``frame`` and ``episode_reward``). Compared, over the seeds
both groups have: ours1 with pub1, ours4 with pub4, and ours4 (this project's default) with pub1.
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


SAME = 1.0  # returns this close come from the same behaviour (a saturated policy repeats its trajectory)


def sign_test(lower: int, higher: int) -> float:
    """Exact two-sided sign test over the seeds that differ: how likely a split at least this
    uneven is if either side is as likely to be the higher one."""
    n = lower + higher
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(lower, higher) + 1)) / 2**n
    return min(1.0, 2 * tail)


def spread(values: list[float]) -> str:
    return f"{st.mean(values):.1f} ± {st.stdev(values):.1f}"


def group(root: Path, name: str) -> dict[int, dict[int, float]]:
    return {int(p.stem.split("_")[1]): returns(p) for p in sorted((root / name).glob("seed_*.csv"))}


def compare(root: Path, ours_name: str, pub_name: str) -> None:
    ours, pub = group(root, ours_name), group(root, pub_name)
    seeds = sorted(set(ours) & set(pub))
    if len(seeds) < 2:
        return
    print(f"\n### Ours with {ours_name[-1]} loader worker(s), URLB with {pub_name[-1]} (seeds {', '.join(map(str, seeds))})\n")
    print("| frame | ours: mean ± sd | public URLB: mean ± sd | Welch t |")
    print("|---|---|---|---|")
    frames = sorted(set.intersection(*(set(ours[s]) & set(pub[s]) for s in seeds)))
    for frame in frames:
        a, b = [ours[s][frame] for s in seeds], [pub[s][frame] for s in seeds]
        print(f"| {frame:,} | {spread(a)} | {spread(b)} | {welch_t(a, b):+.2f} |")
    late = [f for f in frames if f > 0]  # every evaluation after the untrained one
    a = [st.mean(ours[s][f] for f in late) for s in seeds]
    b = [st.mean(pub[s][f] for f in late) for s in seeds]
    print(f"| mean over {late[0]:,}-{late[-1]:,} | {spread(a)} | {spread(b)} | {welch_t(a, b):+.2f} |")
    print(f"\nRatio ours / public over {late[0]:,}-{late[-1]:,}: {st.mean(a) / st.mean(b):.3f}")
    lower = sum(x < y for x, y in zip(a, b))
    print(f"\nSeeds on which ours is lower over those frames: {lower} of {len(seeds)}")
    # The seeds are paired (the same seed-frame data and initial weights on both sides).
    diff = [x - y for x, y in zip(a, b)]
    paired_t = st.mean(diff) / (st.stdev(diff) / math.sqrt(len(diff))) if st.stdev(diff) > 0 else math.nan
    print(f"\nPaired difference ours - public over those frames: {st.mean(diff):+.1f} ± {st.stdev(diff):.1f} (paired t {paired_t:+.2f})")
    print(
        "\nPer seed, mean over those frames (ours / public): "
        + ", ".join(f"{s}: {x:.0f}/{y:.0f}" for s, x, y in zip(seeds, a, b))
    )
    print(f"\nPer evaluation, seeds on which ours is lower / higher / the same (within {SAME}) as the public run:")
    for frame in late:
        d = [ours[s][frame] - pub[s][frame] for s in seeds]
        lower, higher = sum(x < -SAME for x in d), sum(x > SAME for x in d)
        print(f"- {frame:,}: {lower} / {higher} / {len(d) - lower - higher} (two-sided sign test p {sign_test(lower, higher):.3f})")
    zero = [s for s in seeds if abs(ours[s].get(0, math.nan) - pub[s].get(0, math.nan)) < 1e-6]
    print(f"\nSeeds whose frame-0 evaluation is the same on both sides (to 1e-6): {len(zero)} of {len(seeds)}")


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "eval"
    for ours_name, pub_name in (("ours1", "pub1"), ("ours4", "pub4"), ("ours4", "pub1")):
        compare(root, ours_name, pub_name)
