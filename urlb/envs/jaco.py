"""Jaco reach tasks: the manipulation suite's Duplo reach with the brick at a fixed (x, y)."""

from __future__ import annotations

from dm_control import composer
from dm_control.entities import props
from dm_control.manipulation import reach
from dm_control.manipulation.shared import arenas, constants, observations, robots, workspaces

TIME_LIMIT = 10.0  # seconds; 250 steps at the manipulation control step of 0.04 s
CAMERA = "front_close"
PROP_Z = 0.001  # as in dm_control's reach: keeps the brick off the table before settling

# Brick (x, y) per task; its z rotation stays random and the physics is settled.
TARGETS: dict[str, tuple[float, float]] = {
    "top_left": (-0.09, 0.09),
    "top_right": (0.09, 0.09),
    "bottom_left": (-0.09, -0.09),
    "bottom_right": (0.09, -0.09),
}
_TCP_BOX = workspaces.BoundingBox(lower=(-0.1, -0.1, 0.2), upper=(0.1, 0.1, 0.4))


class FixedReach(reach.Reach):
    """dm_control's `Reach` with the Duplo target pinned at a given (x, y).

    The reward is the parent's: tolerance(|tcp - brick|, bounds=(0, 0.05), margin=0.05).
    """

    @property
    def prop(self) -> composer.Entity:
        """The Duplo brick to reach."""
        return self._prop


def make_task(target: str) -> FixedReach:
    """Builds the reach task for one named target position, with perfect features."""
    x, y = TARGETS[target]
    settings = observations.PERFECT_FEATURES
    # A degenerate box (lower == upper) pins the brick's position.
    workspace = reach._ReachWorkspace(
        target_bbox=workspaces.BoundingBox(lower=(x, y, PROP_Z), upper=(x, y, PROP_Z)),
        tcp_bbox=_TCP_BOX,
        arm_offset=robots.ARM_OFFSET,
    )
    brick = props.Duplo(observable_options=observations.make_options(settings, observations.FREEPROP_OBSERVABLES))
    return FixedReach(
        arena=arenas.Standard(),
        arm=robots.make_arm(obs_settings=settings),
        hand=robots.make_hand(obs_settings=settings),
        prop=brick,
        obs_settings=settings,
        workspace=workspace,
        control_timestep=constants.CONTROL_TIMESTEP,
    )


def load(task: str, seed: int) -> composer.Environment:
    """Builds a jaco reach task (`jaco_reach_<target>`) seeded with `seed`."""
    target = task.split("_", 2)[2]
    return composer.Environment(
        make_task(target), time_limit=TIME_LIMIT, random_state=seed, strip_singleton_obs_buffer_dim=True
    )
