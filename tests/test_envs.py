"""Tests for urlb.envs: specs, episode lengths, pixels, custom rewards, seeding."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede dm_control

import numpy as np
import pytest
from dm_control.suite import quadruped as suite_quadruped
from dm_control.utils import rewards

from urlb import envs
from urlb.tasks import ALL_TASKS, TASKS

OBS_DIM = {"walker": 24, "quadruped": 78, "jaco": 55}
ACT_DIM = {"walker": 6, "quadruped": 12, "jaco": 9}
EPISODE_STEPS = {"walker": 1000, "quadruped": 1000, "jaco": 250}


def _domain(task: str) -> str:
    return task.split("_", 1)[0]


def _random_actions(env, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = env.action_spec().shape
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(n)]


# ----- every task in states mode -------------------------------------------------------
@pytest.mark.parametrize("task", ALL_TASKS)
def test_states_specs_and_steps(task):
    domain = _domain(task)
    env = envs.make(task, obs_type="states")
    obs_spec, act_spec = env.observation_spec(), env.action_spec()
    assert obs_spec.shape == (OBS_DIM[domain],) and obs_spec.dtype == np.float32
    assert act_spec.shape == (ACT_DIM[domain],) and act_spec.dtype == np.float32
    assert np.all(act_spec.minimum == -1) and np.all(act_spec.maximum == 1)
    assert env.max_episode_steps == EPISODE_STEPS[domain]

    ts = env.reset()
    assert ts.first() and ts.reward == 0.0 and ts.discount == 1.0
    assert np.array_equal(ts.action, np.zeros(act_spec.shape, np.float32))
    for action in _random_actions(env, 20):
        assert ts.observation.shape == obs_spec.shape
        assert ts.observation.dtype == np.float32
        assert np.all(np.isfinite(ts.observation))
        ts = env.step(action)
        assert isinstance(ts.reward, float) and 0.0 <= ts.reward <= 1.0
        assert ts.mid() and ts.action.dtype == np.float32
        assert np.array_equal(ts.action, action)


@pytest.mark.parametrize("task", ["walker_stand", "jaco_reach_top_left"])
def test_full_episode_length(task):
    env = envs.make(task)
    ts, steps = env.reset(), 0
    actions = _random_actions(env, 8)
    while not ts.last():
        ts = env.step(actions[steps % len(actions)])
        steps += 1
    assert steps == EPISODE_STEPS[_domain(task)] == env.max_episode_steps
    assert ts.discount == 1.0  # a time limit is a truncation, not a termination


def test_walker_state_order_follows_suite():
    env = envs.make("walker_walk")
    obs = env.reset().observation
    physics = env.physics
    expected = np.concatenate([physics.orientations(), [physics.torso_height()], physics.velocity()]).astype(np.float32)
    np.testing.assert_array_equal(obs, expected)


def test_jaco_action_rescaled_to_actuator_range():
    env = envs.make("jaco_reach_bottom_right")
    env.reset()
    env.step(np.ones(9, np.float32))
    ctrl_high = env.physics.model.actuator_ctrlrange[:, 1]
    np.testing.assert_allclose(env.physics.data.ctrl, ctrl_high)


# ----- pixels ----------------------------------------------------------------------
@pytest.mark.parametrize("task", [TASKS[d][0] for d in TASKS])
def test_pixels(task):
    env = envs.make(task, obs_type="pixels", frame_stack=3)
    assert env.observation_spec().shape == (9, 84, 84)
    assert env.observation_spec().dtype == np.uint8
    first = env.reset().observation
    assert first.shape == (9, 84, 84) and first.dtype == np.uint8
    assert np.array_equal(first[0:3], first[3:6]) and np.array_equal(first[3:6], first[6:9])
    assert first.std() > 0  # a real image, not a blank buffer
    ts = env.step(env.action_spec().maximum.astype(np.float32))
    assert ts.observation.shape == (9, 84, 84) and ts.observation.dtype == np.uint8
    np.testing.assert_array_equal(ts.observation[:6], first[3:])  # the stack shifts by one
    frame = env.render()
    assert frame.shape == (84, 84, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame.transpose(2, 0, 1), ts.observation[6:])


# ----- custom rewards on hand-set states -------------------------------------------
def _walker_state(env, rooty: float = 0.0, rooty_vel: float = 0.0, rootz: float = 0.0):
    physics = env.physics
    with physics.reset_context():
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
        physics.named.data.qpos["rooty"] = rooty
        physics.named.data.qpos["rootz"] = rootz
        physics.named.data.qvel["rooty"] = rooty_vel
    return physics


def test_walker_flip_reward():
    env = envs.make("walker_flip")
    env.reset()
    task = env.task
    # Standing straight: standing = upright = 1, so the reward is (5*move + 1)/6.
    physics = _walker_state(env)
    assert physics.torso_height() > 1.2 and physics.torso_upright() == pytest.approx(1.0)
    assert task.get_reward(physics) == pytest.approx(1 / 6)  # still: move = 0

    # Angular momentum is linear in the spin rate; pick rates giving 2.5 and 10.
    per_unit = _walker_state(env, rooty_vel=1.0).named.data.subtree_angmom["torso"][1]
    assert per_unit > 0
    physics = _walker_state(env, rooty_vel=2.5 / per_unit)
    assert physics.named.data.subtree_angmom["torso"][1] == pytest.approx(2.5)
    assert task.get_reward(physics) == pytest.approx((5 * 0.5 + 1) / 6)  # linear: half-way
    physics = _walker_state(env, rooty_vel=10.0 / per_unit)
    assert task.get_reward(physics) == pytest.approx(1.0)

    # Lying still: the move term is 0, so the reward is the stand term over 6.
    physics = _walker_state(env, rooty=np.pi / 2, rootz=-1.0)
    standing = rewards.tolerance(physics.torso_height(), bounds=(1.2, np.inf), margin=0.6)
    stand = (3 * standing + (1 + physics.torso_upright()) / 2) / 4
    assert stand < 0.9
    assert task.get_reward(physics) == pytest.approx(stand / 6)


def _quadruped_state(env, z: float, quat=(1.0, 0.0, 0.0, 0.0)):
    physics = env.physics
    with physics.reset_context():
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
        physics.named.data.qpos["root"][:3] = (0.0, 0.0, z)
        physics.named.data.qpos["root"][3:] = quat
    return physics


_TILT_90 = (np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0)  # torso z axis horizontal


def test_quadruped_stand_reward():
    env = envs.make("quadruped_stand")
    env.reset()
    for quat, expected in [((1, 0, 0, 0), 1.0), (_TILT_90, 0.5), ((0, 1, 0, 0), 0.0)]:
        physics = _quadruped_state(env, z=1.0, quat=quat)
        reward = env.task.get_reward(physics)
        assert reward == pytest.approx(expected, abs=1e-9)
        assert reward == suite_quadruped._upright_reward(physics)


def test_quadruped_jump_reward():
    env = envs.make("quadruped_jump")
    env.reset()
    task = env.task
    physics = _quadruped_state(env, z=1.5)
    com = physics.named.data.subtree_com["torso"][2]
    assert com >= 1.0
    assert task.get_reward(physics) == pytest.approx(suite_quadruped._upright_reward(physics))
    assert task.get_reward(physics) == pytest.approx(1.0)
    physics = _quadruped_state(env, z=1.5, quat=_TILT_90)
    assert task.get_reward(physics) == pytest.approx(0.5)
    # Centre of mass at 0.5 m: half the margin at value_at_margin 0.5 (linear) -> 0.75.
    physics = _quadruped_state(env, z=1.5 - (com - 0.5))
    assert physics.named.data.subtree_com["torso"][2] == pytest.approx(0.5)
    assert task.get_reward(physics) == pytest.approx(0.75)


@pytest.mark.parametrize("task", TASKS["jaco"])
def test_jaco_reach_reward_and_brick_position(task):
    env = envs.make(task, seed=5)
    env.reset()
    physics, reach_task = env.physics, env.task
    x, y = {
        "top_left": (-0.09, 0.09),
        "top_right": (0.09, 0.09),
        "bottom_left": (-0.09, -0.09),
        "bottom_right": (0.09, -0.09),
    }[task.split("_", 2)[2]]
    position, _ = reach_task.prop.get_pose(physics)
    np.testing.assert_allclose(position[:2], (x, y), atol=1e-6)  # fixed after settling

    tcp = physics.bind(reach_task.hand.tool_center_point).xpos.copy()
    reach_task.prop.set_pose(physics, position=tcp)
    physics.forward()
    assert reach_task.get_reward(physics) == pytest.approx(1.0)
    # 0.075 m away: half the 0.05 margin outside the bounds -> gaussian 0.1 ** 0.25.
    reach_task.prop.set_pose(physics, position=tcp + np.array([0.0, 0.0, 0.075]))
    physics.forward()
    assert reach_task.get_reward(physics) == pytest.approx(0.1**0.25)


# ----- argument checking -----------------------------------------------------------
def test_unknown_task_raises():
    with pytest.raises(ValueError, match="walker_flip") as err:
        envs.make("walker_backflip")
    assert all(t in str(err.value) for t in ALL_TASKS)


def test_unknown_obs_type_raises():
    with pytest.raises(ValueError, match="pixels") as err:
        envs.make("walker_walk", obs_type="rgb")
    assert "states" in str(err.value)


# ----- seeding and action repeat ---------------------------------------------------
def _rollout(env, actions):
    steps = [env.reset()]
    steps += [env.step(a) for a in actions]
    return steps


@pytest.mark.parametrize("task", ["walker_walk", "quadruped_stand", "jaco_reach_top_right"])
def test_same_seed_same_trajectory(task):
    actions = _random_actions(envs.make(task), 30, seed=1)
    a = _rollout(envs.make(task, seed=7), actions)
    b = _rollout(envs.make(task, seed=7), actions)
    for sa, sb in zip(a, b):
        np.testing.assert_array_equal(sa.observation, sb.observation)
        assert sa.reward == sb.reward
    c = envs.make(task, seed=8).reset()
    assert not np.array_equal(a[0].observation, c.observation)


@pytest.mark.parametrize("task", ["walker_run", "jaco_reach_bottom_left"])
def test_action_repeat_sums_rewards(task):
    actions = _random_actions(envs.make(task), 15, seed=2)
    single = envs.make(task, seed=3, action_repeat=1)
    double = envs.make(task, seed=3, action_repeat=2)
    assert double.max_episode_steps == single.max_episode_steps // 2
    single.reset()
    double.reset()
    for action in actions:
        r1 = single.step(action).reward
        ts1 = single.step(action)
        ts2 = double.step(action)
        assert ts2.reward == pytest.approx(r1 + ts1.reward)
        np.testing.assert_array_equal(ts2.observation, ts1.observation)


def test_jaco_observation_keeps_composer_key_order():
    """URLB flattens jaco's observation dict in the composer's own order (arm, hand, then the
    Duplo target), not sorted: same seed, same state, the same 55 values in that layout."""
    from urlb.envs import jaco

    task = "jaco_reach_top_left"
    inner = jaco.load(task, seed=3)
    inner_obs = inner.reset().observation
    keys = list(inner_obs)
    assert keys[0].startswith("jaco_arm/") and keys[-1].startswith("duplo")
    assert keys != sorted(keys), "setup: the composer's order should differ from the sorted one"
    expected = np.concatenate([np.asarray(inner_obs[k], np.float32).ravel() for k in keys])
    obs = envs.make(task, seed=3).reset().observation
    assert obs.shape == (OBS_DIM["jaco"],)
    np.testing.assert_array_equal(obs, expected)
