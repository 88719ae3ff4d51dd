"""Every method's pixel run on walker: training speed, whether every logged number is finite, the
intrinsic reward, and the walker_stand returns after fine-tuning.

    python results/pixels/runs/table.py [RUNS]

RUNS (default: this folder) is a run root: ``pretrain/pixels/walker/<agent>/seed_1``
and ``finetune/pixels/walker_stand/<agent>/snapshot_<frames>/seed_1``, each with train.csv and
eval.csv.
"""

from __future__ import annotations

import csv
import math
import statistics as st
import sys
from pathlib import Path

NOT_NUMBERS = {""}


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def all_finite(table: list[dict[str, str]]) -> bool:
    return all(math.isfinite(float(v)) for r in table for v in r.values() if v not in NOT_NUMBERS)


def training_fps(table: list[dict[str, str]]) -> float:
    """Frames/s of the episodes with updates (the first episode is seed frames only)."""
    return st.mean(float(r["fps"]) for r in table[1:]) if len(table) > 1 else float("nan")


def main(root: Path) -> None:
    print(
        "| method | pre-training frames/s | intrinsic reward (last episode) | finite | "
        "fine-tuning frames/s | walker_stand return: before | after | finite |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in sorted((root / "pretrain/pixels/walker").glob("*/seed_1")):
        agent = run.parent.name
        pre = rows(run / "train.csv")
        rewarded = [r for r in pre if r.get("intrinsic_reward")]
        if not rewarded:  # still in its seed frames
            continue
        cells = [agent, f"{training_fps(pre):.1f}", f"{float(rewarded[-1]['intrinsic_reward']):.3g}", str(all_finite(pre))]
        fine_dirs = sorted((root / "finetune/pixels/walker_stand" / agent).glob("snapshot_*/seed_1"))
        if fine_dirs and (fine_dirs[0] / "eval.csv").exists() and len(rows(fine_dirs[0] / "eval.csv")) > 1:
            fine, evals = rows(fine_dirs[0] / "train.csv"), rows(fine_dirs[0] / "eval.csv")
            before, after = (float(evals[i]["episode_reward"]) for i in (0, -1))
            cells += [f"{training_fps(fine):.1f}", f"{before:.1f}", f"{after:.1f}", str(all_finite(fine) and all_finite(evals))]
        else:
            cells += ["not run"] + ["-"] * 3
        print("| " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
