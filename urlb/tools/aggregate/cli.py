"""Command line: ``urlb-aggregate`` / ``python -m urlb.tools.aggregate``.

Parses the arguments, gathers the runs through every exclusion rule, and writes the
tables and plots (see the package docstring for the outputs and rules).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from urlb.tools.aggregate.plots import (
    method_colors,
    plot_aggregate_metrics,
    plot_curves_per_domain,
    plot_curves_per_task,
    plot_performance_profile,
    plot_score_vs_snapshot,
)
from urlb.tools.aggregate.runs import (
    EXCLUDED_COLUMNS,
    AggregateError,
    Exclusion,
    Run,
    collect_runs,
    drop_duplicates,
    drop_incomplete,
    select_protocol,
)
from urlb.tools.aggregate.stats import (
    OVERALL,
    curve_table,
    format_frames,
    load_published,
    method_order,
    per_task_stats,
    published_aggregates,
    run_aggregates,
    score_table,
    wide_per_task,
)
from urlb.tools.aggregate.tables import aggregate_markdown, per_task_markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="urlb-aggregate",
        description="Aggregate URLB fine-tuning runs: per-task tables, rliable aggregate "
        "metrics (IQM, mean, median, optimality gap with stratified bootstrap "
        "95% CIs) and plots.",
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUNS", help="run directories or roots to search (any depth)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--frame",
        type=int,
        default=None,
        help="fine-tuning frame to score (default: the final evaluation, num_train_frames)",
    )
    parser.add_argument(
        "--published", action="store_true", help="add published results (states, 2M pre-training frames)"
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument(
        "--obs-type",
        choices=("states", "pixels"),
        default=None,
        help="use only runs of this observation type (default: majority)",
    )
    parser.add_argument(
        "--finetune-frames", type=int, default=None, help="use only runs with this num_train_frames (default: majority)"
    )
    return parser


def gather(args: argparse.Namespace) -> tuple[list[Run], list[Exclusion], int, dict]:
    """Find runs and apply every exclusion rule, in the documented order."""
    runs, rejected, n_found = collect_runs(args.runs)
    if n_found == 0:
        raise AggregateError(
            f"no fine-tuning runs found (no config.yaml next to an eval.csv) under: {', '.join(map(str, args.runs))}"
        )
    runs, off_protocol, chosen = select_protocol(runs, args.obs_type, args.finetune_frames)
    runs, incomplete = drop_incomplete(runs, args.frame)
    runs, duplicates = drop_duplicates(runs)
    return runs, [*rejected, *off_protocol, *incomplete, *duplicates], n_found, chosen


def write_excluded(excluded: list[Exclusion], out: Path) -> None:
    rows = [e.row() for e in sorted(excluded, key=lambda e: str(e.path))]
    pd.DataFrame(rows, columns=EXCLUDED_COLUMNS).to_csv(out / "excluded.csv", index=False)


def print_summary(n_found: int, runs: list[Run], excluded: list[Exclusion]) -> None:
    ignored = [e for e in excluded if e.status == "ignored"]
    bad = [e for e in excluded if e.status != "ignored"]
    print(f"Found {n_found} run directories: {len(runs)} used, {len(bad)} excluded, {len(ignored)} ignored.")
    for e in sorted(excluded, key=lambda e: str(e.path)):
        print(f"  {e.status.upper()}: {e.path}: {e.reason}")


def frame_text(args: argparse.Namespace, chosen: dict) -> str:
    """E.g. 'final evaluation, frame 100000 of 100000 fine-tuning frames, states'."""
    budget = chosen.get("num_train_frames")
    frame = budget if args.frame is None else args.frame
    which = "final evaluation" if args.frame is None else "evaluation"
    return f"{which}, frame {frame} of {budget} fine-tuning frames, {chosen.get('obs_type')}"


def published_caveats(scores: pd.DataFrame, chosen: dict) -> list[str]:
    """Differences between this protocol and the published one, worth a warning."""
    notes = []
    if chosen.get("obs_type") != "states":
        notes.append(f"published results use states, these runs {chosen.get('obs_type')}")
    if chosen.get("num_train_frames") != 100_000:
        notes.append(f"published results use 100k fine-tuning frames, these runs {chosen.get('num_train_frames')}")
    snaps = sorted(set(scores["snapshot_ts"]) - {2_000_000})
    if snaps:
        notes.append(
            "published results pre-train for 2M frames; these runs also have "
            "snapshot_ts " + ", ".join(format_frames(int(s)) for s in snaps)
        )
    return notes


def write_outputs(args: argparse.Namespace, runs: list[Run], chosen: dict) -> str:
    """Tables and plots; returns the aggregate markdown for the console."""
    out: Path = args.out
    published = load_published() if args.published else None
    scores = score_table(runs, args.frame)
    scores.to_csv(out / "runs.csv", index=False)
    methods = method_order(scores, published)
    text = frame_text(args, chosen)

    stats = per_task_stats(scores, published)
    wide = wide_per_task(stats, methods)
    wide.to_csv(out / "per_task.csv", index=False)
    (out / "per_task.md").write_text(per_task_markdown(wide, methods, text))

    agg, matrices = run_aggregates(scores, args.reps, args.seed)
    if published is not None:
        agg = pd.concat([agg, published_aggregates(published)], ignore_index=True)
    agg.to_csv(out / "aggregate.csv", index=False)
    (out / "aggregate.md").write_text(aggregate_markdown(agg, text, args.reps))

    colors = method_colors(methods)
    plot_aggregate_metrics(agg, methods, colors, out / "aggregate_metrics.png")
    plot_performance_profile(matrices, colors, args.reps, args.seed, out / "performance_profile.png")
    curves = curve_table(runs)
    plot_curves_per_task(curves, published, colors, out / "curves_per_task.png")
    plot_curves_per_domain(curves, colors, out / "curves_per_domain.png")
    if not plot_score_vs_snapshot(agg, colors, out / "score_vs_snapshot.png"):
        print("No agent has several snapshot_ts values: score_vs_snapshot.png not written.")
    for note in _aggregate_warnings(agg):
        print(f"NOTE: {note}")
    if published is not None:
        for note in published_caveats(scores, chosen):
            print(f"NOTE: {note}")
    # The console keeps published rows to the overall scope; aggregate.md has them all.
    brief = agg[(agg["source"] == "runs") | (agg["scope"] == OVERALL)]
    return aggregate_markdown(brief, text, args.reps)


def _aggregate_warnings(agg: pd.DataFrame) -> list[str]:
    runs = agg[(agg["source"] == "runs") & (agg["note"] != "")]
    return [f"{r['method']} / {r['scope']}: {r['note']}" for _, r in runs.iterrows()]


def run(args: argparse.Namespace) -> int:
    """Everything after argument parsing; raises AggregateError for input problems."""
    if args.reps < 1:
        raise AggregateError("--reps must be at least 1")
    runs, excluded, n_found, chosen = gather(args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_excluded(excluded, args.out)
    print_summary(n_found, runs, excluded)
    if not runs:
        raise AggregateError(
            f"none of the {n_found} run directories is usable (reasons above and in {args.out / 'excluded.csv'})"
        )
    print(f"Scoring: {frame_text(args, chosen)}.")
    md = write_outputs(args, runs, chosen)
    print()
    print(md)
    print(f"Wrote tables and plots to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``urlb-aggregate``); exit code 2 on input errors."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AggregateError as exc:
        print(f"urlb-aggregate: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
