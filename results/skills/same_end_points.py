"""CIC's 16 skills at 20k frames on walker (seed 1): final torso x and height per skill in
several ``urlb-skills`` outputs, and whether they are identical.

    python results/skills/same_end_points.py OUT_A OUT_B GALLERY
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

RUN = "walker/cic/seed_1/skills.csv"


def ends(out: Path) -> list[tuple[str, str, str, str]]:
    with open(out / RUN) as f:
        return [
            (r["skill_label"], r["start_state"], r["final_torso_x"], r["final_torso_height"])
            for r in csv.DictReader(f)
            if r["snapshot_frames"] == "20000"
        ]


def main(a: Path, b: Path, gallery: Path) -> None:
    calls = [ends(a), ends(b), ends(gallery)]
    print("cic on walker, seed 1, snapshot 20000: final torso x and height (m) per skill, start seed 0")
    print("skill      start     call A (x, height)   call B (x, height)   walker gallery call, after other runs")
    for (skill, start, xa, ha), (_, _, xb, hb), (_, _, xg, hg) in zip(*calls):
        print(f"{skill:<10} {start}  {xa:>9} {ha:>8}   {xb:>9} {hb:>8}   {xg:>9} {hg:>8}")
    print("identical in all three:", calls[0] == calls[1] == calls[2])


if __name__ == "__main__":
    main(*(Path(p) for p in sys.argv[1:4]))
