"""Walker tasks: the suite's stand/walk/run plus a custom flip task."""

from __future__ import annotations

import dm_env
from dm_control import suite
from dm_control.rl import control
from dm_control.suite import walker
from dm_control.utils import rewards

TIME_LIMIT = 25.0  # seconds; 1000 steps at the suite's 0.025 s control step
CONTROL_TIMESTEP = 0.025
CAMERA = 0
FLIP_SPEED = 5.0  # torso angular momentum (about y) above which the move term is 1


class FlipPhysics(walker.Physics):
    """Walker physics that also reports the torso's angular momentum."""

    def torso_angular_momentum(self) -> float:
        """Angular momentum of the torso subtree about the world y axis (the flip axis)."""
        return float(self.named.data.subtree_angmom["torso"][1])


class Flip(walker.PlanarWalker):
    """Stay up (the suite's stand term) while spinning the torso forward."""

    def __init__(self, flip_speed: float = FLIP_SPEED, random=None) -> None:
        super().__init__(move_speed=flip_speed, random=random)

    def get_reward(self, physics: FlipPhysics) -> float:
        standing = rewards.tolerance(
            physics.torso_height(), bounds=(walker._STAND_HEIGHT, float("inf")), margin=walker._STAND_HEIGHT / 2
        )
        upright = (1 + physics.torso_upright()) / 2
        stand_reward = (3 * standing + upright) / 4
        move_reward = rewards.tolerance(
            physics.torso_angular_momentum(),
            bounds=(self._move_speed, float("inf")),
            margin=self._move_speed,
            value_at_margin=0,
            sigmoid="linear",
        )
        return stand_reward * (5 * move_reward + 1) / 6


def load(task: str, seed: int) -> dm_env.Environment:
    """Builds a walker task (`walker_<name>`) seeded with `seed`."""
    name = task.split("_", 1)[1]
    if name == "flip":
        physics = FlipPhysics.from_xml_string(*walker.get_model_and_assets())
        return control.Environment(physics, Flip(random=seed), time_limit=TIME_LIMIT, control_timestep=CONTROL_TIMESTEP)
    return suite.load("walker", name, task_kwargs={"random": seed, "time_limit": TIME_LIMIT})
