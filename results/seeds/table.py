"""Learning unchanged: evaluation returns of seeds 1-5 trained side by side in one process against
the same seeds trained one per process. Usage: python results/seeds/table.py RUNS_ROOT"""

import csv
import math
import statistics as st
import sys
from pathlib import Path

SEEDS = range(1, 6)
CASES = [
    ("DDPG from scratch on walker_stand (30k frames)", "batched", "finetune/states/walker_stand/ddpg/snapshot_0"),
    (
        "RND pre-trained on walker (20k frames), fine-tuned on walker_stand (30k frames); both phases side by side",
        "batched",
        "finetune/states/walker_stand/rnd/snapshot_20000",
    ),
    (
        "RND fine-tuning alone: seeds side by side from the single-seed runs' snapshots",
        "cross",
        "finetune/states/walker_stand/rnd/snapshot_20000",
    ),
    (
        "Control, rounding alone: the same single-seed RND fine-tunes with 2 torch threads instead of 1 "
        "(first column) against the 1-thread ones",
        "rethread",
        "finetune/states/walker_stand/rnd/snapshot_20000",
    ),
]


def returns(root: Path, group: str, rel: str, seed: int) -> dict[int, float]:
    with open(root / group / "runs" / "quick" / rel / f"seed_{seed}" / "eval.csv") as f:
        return {int(float(r["frame"])): float(r["episode_reward"]) for r in csv.DictReader(f)}


def welch_t(a: list[float], b: list[float]) -> float:
    return (st.mean(a) - st.mean(b)) / math.sqrt(st.variance(a) / len(a) + st.variance(b) / len(b))


def table(root: Path, title: str, group: str, rel: str) -> None:
    ours = {s: returns(root, group, rel, s) for s in SEEDS}
    alone = {s: returns(root, "single", rel, s) for s in SEEDS}
    print(f"\n### {title}\n")
    print("| frame | seeds side by side: mean ± sd | one per process: mean ± sd | Welch t | per seed (side by side / alone) |")
    print("|---|---|---|---|---|")
    rows = [*sorted(ours[1]), "mean of frames > 0"]
    for frame in rows:
        if frame == "mean of frames > 0":
            a = [st.mean(v for k, v in ours[s].items() if k > 0) for s in SEEDS]
            b = [st.mean(v for k, v in alone[s].items() if k > 0) for s in SEEDS]
        else:
            a, b = [ours[s][frame] for s in SEEDS], [alone[s][frame] for s in SEEDS]
        per = ", ".join(f"{x:.0f}/{y:.0f}" for x, y in zip(a, b))
        print(f"| {frame} | {st.mean(a):.1f} ± {st.stdev(a):.1f} | {st.mean(b):.1f} ± {st.stdev(b):.1f} | "
              f"{welch_t(a, b):+.2f} | {per} |")


def main() -> None:
    root = Path(sys.argv[1])
    for title, group, rel in CASES:
        if all((root / group / "runs" / "quick" / rel / f"seed_{s}" / "eval.csv").exists() for s in SEEDS):
            table(root, title, group, rel)


if __name__ == "__main__":
    main()
