"""Command line: ``urlb-skills PATH... [--skills K] [--snapshots F...] [--video] [--html]``
(also ``python -m urlb.tools.skills``).

For every pre-training run (or snapshot file) below PATH, each snapshot is rolled out with K
skills from one start state; under the run directory it writes ``skills/trajectories.png``,
``skills/learned_space.png`` (skill methods), ``skills/coverage.png``, ``skills/skills.csv``,
``skills/coverage.csv`` and, on request, ``skills/video_<frames>.mp4`` and ``skills/index.html``.
Bad input (no run, a corrupt snapshot, K < 1, no OpenGL renderer for --video) is one line on
stderr, exit code 2, and nothing written: everything is read and checked first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from urlb.snapshot import SnapshotError
from urlb.tasks import PRIMAL_TASKS
from urlb.tools.skills.measures import BODIES
from urlb.tools.skills.sources import GalleryError, Source, check_loadable, find_sources

EXIT_USER_ERROR = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="urlb-skills", description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="pre-training run directories, folders above them, or snapshot_<frames>.pt files",
    )
    parser.add_argument(
        "--skills",
        type=int,
        default=16,
        metavar="K",
        help="skills (or seeds) per snapshot (default 16; one-hot skill spaces give at most their size)",
    )
    parser.add_argument(
        "--snapshots", type=int, nargs="+", metavar="FRAMES", help="only these snapshots (default: all written)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per rollout (default: one episode: 1000 walker/quadruped, 250 jaco)",
    )
    parser.add_argument("--seed", type=int, default=0, help="start state, skill samples and noise seeds (default 0)")
    parser.add_argument(
        "--video", action="store_true", help="one mp4 per snapshot, the K skills tiled (slow: software rendering)"
    )
    parser.add_argument("--tile", type=int, default=96, help="video tile size in pixels (default 96)")
    parser.add_argument("--every", type=int, default=4, help="render every N-th step (default 4)")
    parser.add_argument("--fps", type=int, default=30, help="video frames per second (default 30)")
    parser.add_argument("--html", action="store_true", help="skills/index.html per run (and one for the whole tree)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name, value in (("--skills", args.skills), ("--tile", args.tile), ("--every", args.every), ("--fps", args.fps)):
        if value < 1:
            raise GalleryError(f"{name}={value} must be a positive whole number")
    if args.steps is not None and args.steps < 1:
        raise GalleryError(f"--steps={args.steps} must be a positive whole number")
    if args.snapshots is not None and any(f < 1 for f in args.snapshots):
        raise GalleryError(f"--snapshots {args.snapshots}: frame counts must be positive")


def _env(domain: str, seed: int):
    try:
        from urlb import envs

        return envs.make(PRIMAL_TASKS[domain], "states", seed=seed)
    except (ImportError, RuntimeError, AttributeError) as exc:  # dm_control fails at import on a bad MUJOCO_GL
        first = (str(exc).strip().splitlines() or [""])[0]
        raise GalleryError(
            f"the simulator does not start with MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')} "
            f"({type(exc).__name__}: {first}); headless machines: MUJOCO_GL=egl"
        ) from None


def process(source: Source, args: argparse.Namespace, env):
    """Roll out, measure and draw one run; returns its RunOutputs."""
    from urlb.tools.pretrained import agent_from_snapshot
    from urlb.tools.skills import figures, tables
    from urlb.tools.skills.rollouts import roll_out_snapshot

    steps = args.steps or 10**9  # the episode's own end stops it
    snapshots = []
    for frames in sorted(source.snapshots):
        agent = agent_from_snapshot(source.agent_cfg, source.snapshots[frames], env, source.data[frames])
        snapshots.append(roll_out_snapshot(agent, env, source.domain, frames, args.skills, steps, args.seed))
    out = source.out_dir
    run = tables.RunOutputs(
        source.title,
        source.agent,
        source.domain,
        out,
        cell_note=BODIES[source.domain].what,
        missing=sorted(set(source.planned) - set(source.snapshots)) if args.snapshots is None else [],
    )
    rows = [row for snap in snapshots for row in tables.skill_rows(source.domain, snap)]
    run.files["csv"] = tables.write_csv(out / "skills.csv", rows)
    cover = tables.coverage_rows(source.domain, snapshots)
    tables.write_csv(out / "coverage.csv", cover)
    run.coverage = {row["snapshot_frames"]: row["cells_all_skills"] for row in cover}
    run.distance = {
        s.frames: float(np.mean([r["distance_travelled"] for r in rows if r["snapshot_frames"] == s.frames]))
        for s in snapshots
    }
    if snapshots[0].scores is not None:
        run.score_name = snapshots[0].score_name
        run.score = {s.frames: float(np.mean(s.scores)) for s in snapshots}
    run.files["trajectories"] = figures.save(
        figures.trajectory_figure(source.domain, snapshots, source.title), out / "trajectories.png"
    )
    if snapshots[0].features is not None:
        run.files["learned_space"] = figures.save(
            figures.learned_space_figure(snapshots, source.title), out / "learned_space.png"
        )
    run.files["coverage"] = figures.save(
        figures.coverage_figure(source.domain, snapshots, source.title), out / "coverage.png"
    )
    return run, snapshots


def render_videos(env, run, snapshots, args: argparse.Namespace) -> None:
    from urlb.tools.skills import video

    total = video.tiles_needed(snapshots, args.every)
    rate = video.measure_render_rate(env, snapshots[0], args.tile)
    rows, cols = video.grid_shape(len(snapshots[0].rollouts))
    print(
        f"{run.title}: rendering {total} tiles of {args.tile}x{args.tile} px ({rows}x{cols} grid, every "
        f"{args.every} steps, {len(snapshots)} videos) at {rate:.0f} tiles/s measured: expect about "
        f"{total / rate:.0f} s",
        flush=True,
    )
    with video.progress_bar(total, f"video {run.agent} {run.domain}") as progress:
        for snap in snapshots:
            path = run.out_dir / f"video_{snap.frames}.mp4"
            run.videos[snap.frames] = video.write_video(env, snap, path, args.tile, args.every, args.fps, progress)


def _tree_root(paths: list[Path]) -> Path:
    dirs = [p if p.is_dir() else p.parent for p in paths]
    return Path(os.path.commonpath([d.resolve() for d in dirs]))


def run(args: argparse.Namespace) -> list:
    check_args(args)
    torch.set_num_threads(1)  # batch-1 forward passes: more threads only spin
    sources = find_sources(args.paths, args.snapshots)
    envs = {domain: _env(domain, args.seed) for domain in sorted({s.domain for s in sources})}
    for source in sources:
        check_loadable(source, envs[source.domain])
    if args.video:
        from urlb.tools.skills.video import check_renderer

        for env in envs.values():
            check_renderer(env)
    # Everything is checked: from here on outputs are written.
    from urlb.tools.skills.html import write_run_index, write_tree_index

    outputs = []
    for source in sources:
        start = time.perf_counter()
        run_out, snapshots = process(source, args, envs[source.domain])
        print(
            f"{source.title}: {len(snapshots)} snapshot(s) x {len(snapshots[0].rollouts)} skills -> {source.out_dir} "
            f"(coverage {', '.join(f'{f:,}: {c}' for f, c in sorted(run_out.coverage.items()))}; "
            f"{time.perf_counter() - start:.1f} s)",
            flush=True,
        )
        if args.video:
            render_videos(envs[source.domain], run_out, snapshots, args)
        if args.html:
            write_run_index(run_out)
        outputs.append(run_out)
    if args.html:
        page = (
            write_tree_index(_tree_root(args.paths), outputs) if len(outputs) > 1 else outputs[0].out_dir / "index.html"
        )
        print(f"open {page}")
    return outputs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # GLFW (MUJOCO_GL=glfw) warns on import and exit when it has no display; the renderer check
    # turns that into one error line.
    warnings.filterwarnings("ignore", module="glfw")
    try:
        run(args)
    except (GalleryError, SnapshotError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the source's formatting
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
