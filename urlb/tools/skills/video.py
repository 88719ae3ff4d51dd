"""One mp4 per snapshot with the K skills tiled in a grid: small tiles, frames subsampled.

The rollouts stored each step's physics state; rendering replays those states, so the policy
is not run again. Rendering is software OpenGL on a machine without GPU (8-56 frames/s here):
the expected time is measured on a few tiles and printed before the work starts.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from urlb.tools.skills.rollouts import SnapshotRollouts
from urlb.tools.skills.sources import GalleryError


def check_renderer(env) -> None:
    """Render one tiny frame; GalleryError (one line naming MUJOCO_GL) when no OpenGL renderer starts."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GLFW warns before it fails; the error below says it once
            frame = env.render(height=8, width=8)
    except Exception as exc:  # dm_control/mujoco raise several types when no GL context can be made
        # The half-made GL context complains again when collected at exit: keep stderr to one line.
        sys.unraisablehook = lambda _: None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GalleryError(
            f"--video needs an OpenGL renderer and none started with MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL', '(unset)')} ({type(exc).__name__}: {first}); "
            f"headless machines: MUJOCO_GL=egl (or osmesa)"
        ) from None
    if frame.shape != (8, 8, 3):
        raise GalleryError(f"--video: the renderer returned a frame of shape {frame.shape}")


def grid_shape(k: int) -> tuple[int, int]:
    """(rows, columns) of the tile grid for K skills: as square as possible, wider than tall."""
    cols = math.ceil(math.sqrt(k))
    return math.ceil(k / cols), cols


def frame_indices(length: int, every: int) -> list[int]:
    return list(range(0, length, every)) + ([length - 1] if (length - 1) % every else [])


def _render_state(env, state: np.ndarray, tile: int) -> np.ndarray:
    physics = env.physics
    with physics.reset_context():  # sets the state and recomputes positions for the camera
        physics.set_state(state)
    return env.render(height=tile, width=tile)


def measure_render_rate(env, snap: SnapshotRollouts, tile: int, budget: float = 2.0, most: int = 32) -> float:
    """Tiles per second, measured on states spread over the first rollout for about ``budget``
    seconds (at most ``most`` tiles), after two untimed warm-up renders (context, caches)."""
    states = snap.rollouts[0].states
    for state in states[:2]:
        _render_state(env, state, tile)
    start, done = time.perf_counter(), 0
    for i in np.linspace(0, len(states) - 1, most).astype(int):
        _render_state(env, states[i], tile)
        done += 1
        if time.perf_counter() - start > budget:
            break
    return done / max(time.perf_counter() - start, 1e-9)


def tiles_needed(snapshots: list[SnapshotRollouts], every: int) -> int:
    """Tiles rendered for all videos: every frame of the longest rollout, K tiles per frame."""
    total = 0
    for snap in snapshots:
        length = max(len(r.states) for r in snap.rollouts)
        total += len(frame_indices(length, every)) * len(snap.rollouts)
    return total


def write_video(env, snap: SnapshotRollouts, path: Path, tile: int, every: int, fps: int, progress) -> Path:
    """Tile K rollouts into one video; a rollout that ended early holds its last frame."""
    import imageio

    k = len(snap.rollouts)
    rows, cols = grid_shape(k)
    length = max(len(r.states) for r in snap.rollouts)
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1: tile sizes that are not multiples of 16 stay exact (no resizing).
    with imageio.get_writer(
        path, fps=fps, codec="libx264", quality=7, macro_block_size=1, ffmpeg_log_level="error"
    ) as writer:
        for t in frame_indices(length, every):
            # H.264 (yuv420p) needs even sides: an odd grid gets one black row/column.
            canvas = np.zeros((rows * tile + rows * tile % 2, cols * tile + cols * tile % 2, 3), np.uint8)
            for i, r in enumerate(snap.rollouts):
                row, col = divmod(i, cols)
                state = r.states[min(t, len(r.states) - 1)]
                canvas[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = _render_state(env, state, tile)
                progress.update(1)
            writer.append_data(canvas)
    return path


def progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="tile", file=sys.stderr, mininterval=0.5)
