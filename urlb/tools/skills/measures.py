"""What a skill's path is measured by: positions from the simulator, distance travelled, and
coverage (distinct cells visited), METRA's state-coverage measure.

Positions come from MuJoCo's named data, never from the observation (walker and quadruped
observations hold no x-y position at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Body:
    """Where a domain's body is: ``labels`` name the coordinates ``read(physics)`` returns;
    ``ground`` indexes the coordinates coverage and distance are measured in, on cells of
    ``cell`` metres."""

    labels: tuple[str, ...]
    read: Callable[[object], np.ndarray]
    ground: tuple[int, ...]
    cell: float
    what: str


def _walker(physics) -> np.ndarray:
    return np.array([physics.named.data.xpos["torso", "x"], physics.named.data.xpos["torso", "z"]])


def _quadruped(physics) -> np.ndarray:
    return np.array(physics.named.data.xpos["torso", ["x", "y"]])


def _jaco(physics) -> np.ndarray:
    # The tool centre point between the fingers: the point the reach tasks reward.
    return np.array(physics.named.data.site_xpos["jaco_arm/jaco_hand/pinchsite"])


BODIES: dict[str, Body] = {
    "walker": Body(("torso x (m)", "torso height (m)"), _walker, (0,), 1.0, "1 m cells of torso x"),
    "quadruped": Body(("torso x (m)", "torso y (m)"), _quadruped, (0, 1), 1.0, "1 m cells of torso x-y"),
    "jaco": Body(("hand x (m)", "hand y (m)", "hand z (m)"), _jaco, (0, 1, 2), 0.05, "5 cm cells of hand x-y-z"),
}


def cells(path: np.ndarray, ground: tuple[int, ...], cell: float) -> set[tuple[int, ...]]:
    """The grid cells (side ``cell``) a path [T, D] visits, in the ``ground`` coordinates."""
    index = np.floor(np.asarray(path, dtype=np.float64)[:, list(ground)] / cell).astype(np.int64)
    return {tuple(row) for row in index}


def coverage(paths: list[np.ndarray], ground: tuple[int, ...], cell: float) -> int:
    """Distinct cells visited by all paths together (METRA's coverage: occupied x-y bins)."""
    visited: set[tuple[int, ...]] = set()
    for path in paths:
        visited |= cells(path, ground, cell)
    return len(visited)


def distance_travelled(path: np.ndarray, ground: tuple[int, ...]) -> float:
    """Length of the path [T, D] in the ``ground`` coordinates: sum of step lengths."""
    sub = np.asarray(path, dtype=np.float64)[:, list(ground)]
    return float(np.linalg.norm(np.diff(sub, axis=0), axis=1).sum())


def displacement(path: np.ndarray, ground: tuple[int, ...]) -> float:
    """Straight-line distance from the first to the last position, in the ``ground`` coordinates."""
    sub = np.asarray(path, dtype=np.float64)[:, list(ground)]
    return float(np.linalg.norm(sub[-1] - sub[0]))
