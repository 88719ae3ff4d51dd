"""The quick-preset table of the newer methods beside DIAYN and CIC, from the same runs.

    python results/newer_methods/table.py [RUNS]

RUNS (default: runs/ next to this file) is a run root of the quick preset: pre-training runs in
``pretrain/states/walker/<agent>/seed_<n>/train.csv`` and fine-tuning runs in
``finetune/states/walker_stand/<agent>/snapshot_20000/seed_<n>/eval.csv``. Printed per method:
the pre-training objective over its first and last three logged episodes (mean over seeds, and
how many seeds moved the way the objective should), then the fine-tuning evaluation returns.
"""

from __future__ import annotations

import csv
import statistics as st
import sys
from pathlib import Path

# agent -> (train.csv column, +1 if it should rise / -1 if it should fall, what it is)
OBJECTIVES = {
    "becl": ("becl_contrastive_loss", -1, "BeCL contrastive loss"),
    "cesd": ("cesd_cic_loss", -1, "CeSD contrastive (CIC) loss"),
    "diayn": ("diayn_accuracy", +1, "DIAYN discriminator accuracy"),
    "cic": ("cic_contrastive_loss", -1, "CIC contrastive loss"),
}
EDGE_EPISODES = 3


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def objective_ends(path: Path, column: str) -> tuple[float, float]:
    values = [float(r[column]) for r in rows(path) if r.get(column) not in (None, "", "nan")]
    return st.mean(values[:EDGE_EPISODES]), st.mean(values[-EDGE_EPISODES:])


def spread(values: list[float]) -> str:
    return f"{st.mean(values):.1f} ± {st.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def main(root: Path) -> None:
    evals: dict[str, dict[int, list[float]]] = {}
    print("| method | seeds | objective | first 3 episodes | last 3 episodes | seeds moving the right way |")
    print("|---|---|---|---|---|---|")
    for agent, (column, sign, label) in OBJECTIVES.items():
        runs = sorted((root / "pretrain/states/walker" / agent).glob("seed_*/train.csv"))
        if not runs:
            continue
        ends = [objective_ends(p, column) for p in runs]
        right = sum(sign * (end - start) > 0 for start, end in ends)
        first, last = st.mean(e[0] for e in ends), st.mean(e[1] for e in ends)
        print(f"| {agent} | {len(runs)} | {label} | {first:.3f} | {last:.3f} | {right} of {len(runs)} |")
        for path in sorted((root / "finetune/states/walker_stand" / agent).glob("snapshot_20000/seed_*/eval.csv")):
            for r in rows(path):
                evals.setdefault(agent, {}).setdefault(int(float(r["frame"])), []).append(float(r["episode_reward"]))
    frames = sorted({f for per in evals.values() for f in per})
    print("\nwalker_stand evaluation return (mean ± sd over seeds; 10 episodes each)\n")
    print("| method | seeds | " + " | ".join(f"{f:,}" for f in frames) + " |")
    print("|---|---|" + "---|" * len(frames))
    for agent, per in evals.items():
        seeds = len(per[frames[0]])
        print(f"| {agent} | {seeds} | " + " | ".join(spread(per.get(f, [float('nan')])) for f in frames) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "runs")
