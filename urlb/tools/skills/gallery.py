"""The gallery's work once its input is checked: roll out every run's snapshots from the one
start state (with a progress line), write each run's pictures, tables and videos, then each
domain's comparison of methods."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from urlb.tools.skills import compare, figures, tables
from urlb.tools.skills.measures import BODIES
from urlb.tools.skills.owned import OwnedFiles
from urlb.tools.skills.rollouts import SnapshotRollouts, StartState, roll_out_snapshot
from urlb.tools.skills.sources import Source


def _rollouts_planned(sources: list[Source], k: int) -> int:
    """Rollouts the call will make: K per snapshot, at most the size of a one-hot skill space."""
    total = 0
    for source in sources:
        cfg = source.agent_cfg
        one_hot = cfg["name"] in ("diayn", "smm") or (cfg["name"] == "metra" and cfg.get("discrete"))
        size = cfg.get("skill_dim", cfg.get("z_dim"))
        total += len(source.snapshots) * (min(k, size) if one_hot and size else k)
    return total


def process(source: Source, start: StartState, env, args: argparse.Namespace, progress) -> tuple:
    """Roll out, measure and draw one run; returns its RunOutputs and snapshots' rollouts."""
    from urlb.tools.pretrained import agent_from_snapshot

    steps = args.steps or 10**9  # the episode's own end stops it
    snapshots = []
    for frames in sorted(source.snapshots):
        agent = agent_from_snapshot(source.agent_cfg, source.snapshots[frames], env, source.data[frames])
        progress.set_postfix_str(f"{source.agent} {source.domain} seed {source.seed} @ {frames:,}", refresh=False)
        snapshots.append(roll_out_snapshot(agent, env, start, frames, args.skills, steps, lambda: progress.update(1)))
    out = source.out_dir
    owned = OwnedFiles(out)
    run = tables.RunOutputs(
        source.title,
        source.agent,
        source.domain,
        source.seed,
        out,
        start_note=start.describe(),
        cell_note=BODIES[source.domain].what,
        missing=sorted(set(source.planned) - set(source.snapshots)) if args.snapshots is None else [],
    )
    rows = [row for snap in snapshots for row in tables.skill_rows(source.domain, snap)]
    run.files["csv"] = owned.add(tables.write_csv(out / "skills.csv", rows))
    cover = tables.coverage_rows(source.domain, snapshots)
    owned.add(tables.write_csv(out / "coverage.csv", cover))
    run.coverage = {row["snapshot_frames"]: row["cells_all_skills"] for row in cover}
    run.distance = {
        s.frames: float(np.mean([r["distance_travelled"] for r in rows if r["snapshot_frames"] == s.frames]))
        for s in snapshots
    }
    if snapshots[0].scores is not None:
        run.score_name = snapshots[0].score_name
        run.score = {s.frames: float(np.mean(s.scores)) for s in snapshots}
    for key, fig in (
        ("trajectories", figures.trajectory_figure(source.domain, snapshots, source.title)),
        ("method", figures.method_figure(source.domain, snapshots, source.title)),
        ("coverage", figures.coverage_figure(source.domain, snapshots, source.title)),
    ):
        run.files[key] = owned.add(figures.save(fig, out / f"{key}.png"))
    return run, snapshots, owned


def render_videos(env, run, snapshots: list[SnapshotRollouts], args: argparse.Namespace, owned: OwnedFiles) -> None:
    from urlb.tools.skills import video

    total = video.tiles_needed(snapshots, args.every)
    rate = video.measure_render_rate(env, snapshots[0], args.tile)
    rows, cols = video.grid_shape(len(snapshots[0].rollouts))
    print(
        f"{run.title}: rendering {total} tiles of {args.tile}x{args.tile} px ({rows}x{cols} grid, every "
        f"{args.every} steps, {len(snapshots)} videos, {args.camera} camera) at {rate:.0f} tiles/s measured: "
        f"expect about {total / rate:.0f} s",
        flush=True,
    )
    colors = figures.skill_colors(len(snapshots[0].rollouts))
    with video.progress_bar(total, f"video {run.agent} {run.domain}") as progress:
        for snap in snapshots:
            camera = video.fixed_camera(run.domain, snap) if args.camera == "fixed" else None
            path = run.out_dir / f"video_{snap.frames}.mp4"
            run.videos[snap.frames] = owned.add(
                video.write_video(env, snap, path, args.tile, args.every, args.fps, progress, camera, colors)
            )


def _positions_only(snapshots: list[SnapshotRollouts]) -> None:
    """Drop what the comparison does not need (observations, physics states): memory stays small."""
    for snap in snapshots:
        for r in snap.rollouts:
            r.observations = r.states = None


def _finish_run(run_out, snapshots: list[SnapshotRollouts], owned: OwnedFiles, env, args: argparse.Namespace) -> None:
    from urlb.tools.skills.html import write_run_index

    if args.video:
        render_videos(env, run_out, snapshots, args, owned)
    if args.html:
        owned.add(write_run_index(run_out))
    owned.finish()
    _positions_only(snapshots)
    run_out.snapshots = snapshots


def process_all(sources: list[Source], starts: dict, args: argparse.Namespace) -> list:
    """Every run rolled out under one progress line; videos are rendered after it closes (one
    progress line at a time keeps a log readable), so their physics states are kept until then."""
    from urlb.tools.skills.video import progress_bar

    for env, start in starts.values():
        print(start.describe(), flush=True)
    pending = []
    with progress_bar(_rollouts_planned(sources, args.skills), "rollouts", unit="rollout") as progress:
        for source in sources:
            env, start = starts[source.domain]
            begun = time.perf_counter()
            run_out, snapshots, owned = process(source, start, env, args, progress)
            progress.write(
                f"{source.title}: {len(snapshots)} snapshot(s) x {len(snapshots[0].rollouts)} skills -> "
                f"{source.out_dir} (coverage {', '.join(f'{f:,}: {c}' for f, c in sorted(run_out.coverage.items()))}; "
                f"{time.perf_counter() - begun:.1f} s)"
            )
            if args.video:
                pending.append((run_out, snapshots, owned, env))
            else:
                _finish_run(run_out, snapshots, owned, env, args)
                pending.append((run_out, None, None, None))
    for run_out, snapshots, owned, env in pending:
        if snapshots is not None:
            _finish_run(run_out, snapshots, owned, env, args)
    return [run_out for run_out, *_ in pending]


def write_comparisons(outputs: list, directory: Path, starts: dict, html: bool, several: bool) -> Path | None:
    """Per domain: methods x snapshots (the lowest seed of each method) and coverage of every
    seed; the comparison page when ``html``. Only with several runs or ``--out``."""
    if not several:
        return outputs[0].out_dir / "index.html" if html else None
    from urlb.tools.skills.html import write_tree_index

    owned = OwnedFiles(directory)
    for domain in sorted({run.domain for run in outputs}):
        runs = sorted((r for r in outputs if r.domain == domain), key=lambda r: (r.agent, r.seed))
        first: dict[str, object] = {}
        series: dict[str, dict[int, dict[int, int]]] = {}
        for r in runs:
            first.setdefault(r.agent, r)
            series.setdefault(r.agent, {})[r.seed] = r.coverage
        rows = [(f"{agent} (seed {r.seed})", r.snapshots) for agent, r in first.items()]
        start = starts[domain][1]
        note = f"all from one start state (first reset, seed {start.seed})"
        paths = {
            "compare": figures.save(compare.comparison_figure(domain, rows, note), directory / f"compare_{domain}.png"),
            "coverage": figures.save(compare.coverage_curves(domain, series), directory / f"coverage_{domain}.png"),
            "csv": tables.write_csv(directory / f"coverage_{domain}.csv", compare.coverage_table(series)),
        }
        for path in paths.values():
            owned.add(path)
        for r in runs:
            r.compare_files = paths
    page = owned.add(write_tree_index(directory, outputs, starts)) if html else None
    owned.finish()
    return page
