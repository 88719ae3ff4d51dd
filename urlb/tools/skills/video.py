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


# Fixed camera per domain: (azimuth, elevation) in degrees, the height looked at (m) and the
# smallest distance (m). Walker: from the side, as its tracking camera; quadruped: from above.
FIXED_VIEWS = {"walker": (90.0, -5.0, 1.0, 4.0), "quadruped": (90.0, -50.0, 0.3, 5.0), "jaco": (135.0, -30.0, 0.3, 1.5)}


def fixed_camera(domain: str, snap: SnapshotRollouts) -> dict:
    """A camera pose that keeps every rollout of ``snap`` in view, the same for all its frames."""
    azimuth, elevation, height, nearest = FIXED_VIEWS[domain]
    points = np.concatenate([r.positions for r in snap.rollouts])
    low, high = points.min(0), points.max(0)
    centre = (low + high) / 2
    if domain == "walker":  # positions are (x, height): the camera looks at the x middle
        lookat, extent = np.array([centre[0], 0.0, height]), high[0] - low[0]
    elif domain == "quadruped":
        lookat, extent = np.array([centre[0], centre[1], height]), float(np.max(high - low))
    else:
        lookat, extent = centre, float(np.max(high - low))
    return {"lookat": lookat, "distance": max(nearest, 1.1 * extent), "azimuth": azimuth, "elevation": elevation}


def _fixed_view(env, tile: int, camera: dict | None):
    """A MovableCamera at ``camera``'s pose (None: None, the task's own camera is used)."""
    if camera is None:
        return None
    from dm_control.mujoco.engine import MovableCamera

    view = MovableCamera(env.physics, tile, tile)
    view.set_pose(camera["lookat"], camera["distance"], camera["azimuth"], camera["elevation"])
    return view


def _render_state(env, state: np.ndarray, tile: int, view=None) -> np.ndarray:
    physics = env.physics
    with physics.reset_context():  # sets the state and recomputes positions for the camera
        physics.set_state(state)
    if view is None:  # the task's own camera (walker and quadruped: it follows the body)
        return env.render(height=tile, width=tile)
    return view.render()


def label_tile(image: np.ndarray, text: str, color: tuple[float, ...]) -> np.ndarray:
    """The skill's label in its colour (as in the figures) on a dark strip at the tile's top."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, image.shape[1], 11), fill=(0, 0, 0))
    draw.text((2, 0), text, fill=tuple(int(255 * c) for c in color[:3]))
    return np.asarray(picture)


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


def write_video(
    env,
    snap: SnapshotRollouts,
    path: Path,
    tile: int,
    every: int,
    fps: int,
    progress,
    camera: dict | None = None,
    colors: list | None = None,
) -> Path:
    """Tile K rollouts into one video, each tile labelled with its skill; a rollout that ended
    early holds its last frame. ``camera``: a fixed pose (fixed_camera), else the task's camera."""
    import imageio

    k = len(snap.rollouts)
    rows, cols = grid_shape(k)
    length = max(len(r.states) for r in snap.rollouts)
    view = _fixed_view(env, tile, camera)
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
                image = _render_state(env, state, tile, view)
                color = colors[i] if colors else (1.0, 1.0, 1.0)
                canvas[row * tile : (row + 1) * tile, col * tile : (col + 1) * tile] = label_tile(image, r.label, color)
                progress.update(1)
            writer.append_data(canvas)
    return path


def progress_bar(total: int, description: str, unit: str = "tile"):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, mininterval=0.5)
