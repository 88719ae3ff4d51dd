"""Command line: ``urlb-skills PATH... [--skills K] [--snapshots F...] [--start-seed N]
[--out DIR] [--video [--camera fixed]] [--html]`` (also ``python -m urlb.tools.skills``).

Every snapshot of every pre-training run (or snapshot file) below PATH is rolled out with K
skills, all from ONE start state: the first reset of the domain's primal task built with
``--start-seed``, saved once and restored before every rollout, so skills, snapshots, seeds and
methods start alike and a call gives the same paths whatever ran before. Per run (under
``--out DIR/<domain>/<agent>/seed_<n>``, default the run directory's ``skills/``):
``trajectories.png`` (the domain's view of the paths), ``method.png`` (the method's own picture),
``coverage.png``, ``skills.csv``, ``coverage.csv`` and, on request, ``video_<frames>.mp4`` and
``index.html``. Per domain (in ``--out DIR`` or the runs' common folder's ``skills/``):
``compare_<domain>.png`` (methods x snapshots), ``coverage_<domain>.png`` and ``.csv`` (every seed).
Bad input is one line on stderr, exit code 2, and nothing written: everything is checked first.
A re-run replaces the files it wrote before and removes those it no longer writes, nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

from urlb.runs.snapshots import SnapshotError
from urlb.tools.skills.sources import GalleryError, check_loadable, find_sources

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
    parser.add_argument(
        "--start-seed",
        "--seed",
        dest="start_seed",
        type=int,
        default=0,
        help="the start state (first reset of the primal task built with this seed), CIC skill samples and "
        "exploration noise seeds (default 0)",
    )
    parser.add_argument("--out", type=Path, help="write everything below DIR (default: beside the runs)")
    parser.add_argument(
        "--video", action="store_true", help="one mp4 per snapshot, the K skills tiled (slow: software rendering)"
    )
    parser.add_argument(
        "--camera",
        choices=("task", "fixed"),
        default="task",
        help="video camera: the task's own (follows walker/quadruped) or one fixed pose framing all paths",
    )
    parser.add_argument("--tile", type=int, default=96, help="video tile size in pixels (default 96)")
    parser.add_argument("--every", type=int, default=4, help="render every N-th step (default 4)")
    parser.add_argument("--fps", type=int, default=30, help="video frames per second (default 30)")
    parser.add_argument("--html", action="store_true", help="index.html per run and one comparison page")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name, value in (("--skills", args.skills), ("--tile", args.tile), ("--every", args.every), ("--fps", args.fps)):
        if value < 1:
            raise GalleryError(f"{name}={value} must be a positive whole number")
    if args.steps is not None and args.steps < 1:
        raise GalleryError(f"--steps={args.steps} must be a positive whole number")
    if args.snapshots is not None and any(f < 1 for f in args.snapshots):
        raise GalleryError(f"--snapshots {args.snapshots}: frame counts must be positive")
    if args.start_seed < 0:
        raise GalleryError(f"--start-seed={args.start_seed} must be 0 or more")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise GalleryError(f"--out {args.out} is a file; give a directory (created when missing)")


def _start(domain: str, seed: int):
    try:
        from urlb.tools.skills.rollouts import make_start

        return make_start(domain, seed)
    except (ImportError, RuntimeError, AttributeError) as exc:  # dm_control fails at import on a bad MUJOCO_GL
        first = (str(exc).strip().splitlines() or [""])[0]
        raise GalleryError(
            f"the simulator does not start with MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')} "
            f"({type(exc).__name__}: {first}); headless machines: MUJOCO_GL=egl"
        ) from None


def _tree_root(paths: list[Path]) -> Path:
    dirs = [p if p.is_dir() else p.parent for p in paths]
    return Path(os.path.commonpath([d.resolve() for d in dirs]))


def place_outputs(sources: list, out: Path | None) -> None:
    """With ``--out``: each run's files under out/<domain>/<agent>/seed_<n> (a suffix when two
    sources share those)."""
    if out is None:
        return
    taken: set[Path] = set()
    for source in sources:
        base = out / source.domain / source.agent / f"seed_{source.seed}"
        target, n = base, 2
        while target in taken:
            target, n = base.with_name(f"{base.name}_{n}"), n + 1
        taken.add(target)
        source.out_dir = target


def run(args: argparse.Namespace) -> list:
    check_args(args)
    torch.set_num_threads(1)  # batch-1 forward passes: more threads only spin
    sources = find_sources(args.paths, args.snapshots)
    starts = {domain: _start(domain, args.start_seed) for domain in sorted({s.domain for s in sources})}
    for source in sources:
        check_loadable(source, starts[source.domain][0])
    if args.video:
        from urlb.tools.skills.video import check_renderer

        for env, _ in starts.values():
            check_renderer(env)
    place_outputs(sources, args.out)
    # Everything is checked: from here on outputs are written.
    from urlb.tools.skills.gallery import process_all, write_comparisons

    outputs = process_all(sources, starts, args)
    compare_dir = args.out if args.out is not None else _tree_root(args.paths) / "skills"
    page = write_comparisons(outputs, compare_dir, starts, args.html, several=len(outputs) > 1 or args.out is not None)
    if args.html:
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
