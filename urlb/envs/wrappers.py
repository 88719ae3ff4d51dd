"""One wrapper that turns a dm_control environment into the benchmark's interface.

It rescales actions to [-1, 1], repeats them, flattens state observations or renders
and stacks pixel frames, casts dtypes, and returns `TimeStep`s that carry the action.
"""

from __future__ import annotations

import collections
import math
from typing import Any, NamedTuple, Sequence

import dm_env
import numpy as np
from dm_env import specs

PIXEL_SIZE = 84


class TimeStep(NamedTuple):
    """A dm_env time step extended with the action that produced it."""

    step_type: dm_env.StepType
    reward: float
    discount: float
    observation: np.ndarray
    action: np.ndarray

    def first(self) -> bool:
        return self.step_type == dm_env.StepType.FIRST

    def mid(self) -> bool:
        return self.step_type == dm_env.StepType.MID

    def last(self) -> bool:
        return self.step_type == dm_env.StepType.LAST


def flatten_observation(obs: dict[str, Any], keys: Sequence[str]) -> np.ndarray:
    """Concatenates the named entries of an observation dict into one float32 vector."""
    return np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in keys])


class BenchmarkEnv:
    """dm_env-style environment with the benchmark's observation and action conventions.

    Args:
        env: the inner dm_control environment (`control.Environment` or composer).
        obs_type: "states" (flat float32 vector) or "pixels" (stacked uint8 frames).
        camera: the camera used for pixels and `render` (an id or a name).
        time_limit: the episode length in seconds (used for `max_episode_steps`).
        frame_stack: number of frames stacked in pixel observations.
        action_repeat: how many inner steps each action is applied for.
    """

    def __init__(
        self,
        env: dm_env.Environment,
        obs_type: str,
        camera: int | str,
        time_limit: float,
        frame_stack: int = 3,
        action_repeat: int = 1,
    ) -> None:
        if frame_stack < 1 or action_repeat < 1:
            raise ValueError("frame_stack and action_repeat must be >= 1")
        self._env = env
        self._obs_type = obs_type
        self._camera = camera
        self._frame_stack = frame_stack
        self._action_repeat = action_repeat
        self._frames: collections.deque[np.ndarray] = collections.deque(maxlen=frame_stack)

        inner_obs_spec = env.observation_spec()
        keys = list(inner_obs_spec)
        self._state_keys = keys  # the inner environment's order, as URLB flattens
        self._state_dim = sum(int(np.prod(inner_obs_spec[k].shape)) for k in keys)

        # Actions arrive in [-1, 1] and are mapped linearly onto the inner bounds (jaco's and
        # quadruped's actuators are not normalised). URLB maps onto float32 copies of the bounds
        # and rounds the result to float32 before the physics sees it (its action_scale wrapper
        # wraps a float32 action spec); the same arithmetic gives bit-identical trajectories.
        inner_act = env.action_spec()
        self._act_dtype = inner_act.dtype
        low = np.broadcast_to(inner_act.minimum, inner_act.shape).astype(np.float32)
        high = np.broadcast_to(inner_act.maximum, inner_act.shape).astype(np.float32)
        self._act_low = low
        self._act_per_unit = (high - low) / np.float64(2.0)  # float32 width, float64 ratio
        self._action_spec = specs.BoundedArray(inner_act.shape, np.float32, minimum=-1.0, maximum=1.0, name="action")
        inner_steps = round(time_limit / env.control_timestep())
        self.max_episode_steps: int = math.ceil(inner_steps / action_repeat)

    # ----- dm_env interface -------------------------------------------------------
    def observation_spec(self) -> specs.Array:
        if self._obs_type == "pixels":
            shape = (3 * self._frame_stack, PIXEL_SIZE, PIXEL_SIZE)
            return specs.Array(shape, np.uint8, name="observation")
        return specs.Array((self._state_dim,), np.float32, name="observation")

    def action_spec(self) -> specs.BoundedArray:
        return self._action_spec

    def reset(self) -> TimeStep:
        ts = self._env.reset()
        if self._obs_type == "pixels":
            frame = self._frame()
            for _ in range(self._frame_stack):  # repeat the first frame to fill the stack
                self._frames.append(frame)
        action = np.zeros(self._action_spec.shape, np.float32)
        return TimeStep(ts.step_type, 0.0, 1.0, self._observation(ts), action)

    def step(self, action: np.ndarray) -> TimeStep:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        inner_action = self._scale(action)
        reward, discount = 0.0, 1.0
        for _ in range(self._action_repeat):
            ts = self._env.step(inner_action)
            reward += float(ts.reward or 0.0) * discount  # URLB discounts within the repeat
            discount *= 1.0 if ts.discount is None else float(ts.discount)
            if ts.last():
                break
        if self._obs_type == "pixels":
            self._frames.append(self._frame())
        return TimeStep(ts.step_type, reward, discount, self._observation(ts), action)

    def render(self, height: int = PIXEL_SIZE, width: int = PIXEL_SIZE) -> np.ndarray:
        """An RGB image (height x width x 3, uint8) from the task's camera."""
        return self.physics.render(height=height, width=width, camera_id=self._camera)

    # ----- extras -----------------------------------------------------------------
    @property
    def physics(self):
        """The underlying dm_control physics (for tests and custom reward checks)."""
        return self._env.physics

    @property
    def task(self):
        """The underlying dm_control task."""
        return self._env.task

    def close(self) -> None:
        self._env.close()

    # ----- helpers ----------------------------------------------------------------
    def _scale(self, action: np.ndarray) -> np.ndarray:
        inner = self._act_low + self._act_per_unit * (action.astype(np.float64) + 1.0)
        return inner.astype(np.float32).astype(self._act_dtype)

    def _frame(self) -> np.ndarray:
        return self.render().transpose(2, 0, 1).copy()

    def _observation(self, ts: dm_env.TimeStep) -> np.ndarray:
        if self._obs_type == "pixels":
            return np.concatenate(list(self._frames), axis=0)
        return flatten_observation(ts.observation, self._state_keys)
