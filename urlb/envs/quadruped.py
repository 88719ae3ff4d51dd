"""Quadruped tasks: the suite's walk/run plus custom stand and jump tasks."""

from __future__ import annotations

import dm_env
from dm_control import suite
from dm_control.rl import control
from dm_control.suite import common, quadruped
from dm_control.utils import rewards

TIME_LIMIT = 20.0  # seconds; 1000 steps at the suite's 0.02 s control step
CONTROL_TIMESTEP = 0.02
CAMERA = 2
FLOOR_SIZE = TIME_LIMIT * 0.5  # as URLB: its time limit times the walk speed (the suite's walk floor)
JUMP_HEIGHT = 1.0  # torso-subtree centre-of-mass height above which the jump term is 1


class QuadrupedPhysics(quadruped.Physics):
    """Quadruped physics that also reports the body's centre-of-mass height."""

    def com_height(self) -> float:
        """Height of the centre of mass of the torso subtree (the whole quadruped)."""
        return float(self.named.data.subtree_com["torso"][2])


class Stand(quadruped.Move):
    """Get upright from a random orientation (the suite's Move start and observations)."""

    def __init__(self, random=None) -> None:
        super().__init__(desired_speed=0.0, random=random)

    def get_reward(self, physics: QuadrupedPhysics) -> float:
        return quadruped._upright_reward(physics)


class Jump(Stand):
    """Stay upright with the centre of mass high above the floor."""

    def get_reward(self, physics: QuadrupedPhysics) -> float:
        jump = rewards.tolerance(
            physics.com_height(),
            bounds=(JUMP_HEIGHT, float("inf")),
            margin=JUMP_HEIGHT,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return quadruped._upright_reward(physics) * jump


_CUSTOM = {"stand": Stand, "jump": Jump}


def load(task: str, seed: int) -> dm_env.Environment:
    """Builds a quadruped task (`quadruped_<name>`) seeded with `seed`."""
    name = task.split("_", 1)[1]
    if name in _CUSTOM:
        # No walls, ball or target: make_model removes them when walls_and_ball=False.
        xml = quadruped.make_model(floor_size=FLOOR_SIZE, walls_and_ball=False)
        physics = QuadrupedPhysics.from_xml_string(xml, common.ASSETS)
        return control.Environment(
            physics, _CUSTOM[name](random=seed), time_limit=TIME_LIMIT, control_timestep=CONTROL_TIMESTEP
        )
    return suite.load("quadruped", name, task_kwargs={"random": seed, "time_limit": TIME_LIMIT})
