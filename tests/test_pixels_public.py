"""The pixel pipeline against numbers recorded from the public URLB code (rll-research/url_benchmark).

Every expected value below was produced by URLB's own modules (its DrQ-v2 `Encoder`, its
`RandomShiftsAug`, its `dmc.make`) on the inputs each test generates from fixed seeds; the
cross-check and its commands are in results/pixels/pipeline/. Frames are compared through a few
means with a tolerance far below what a wrong camera, floor or stacking order changes (about 1 grey
level) and far above software-rendering noise (a few pixels off by 1).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede dm_control

import numpy as np
import pytest
import torch

from urlb import envs
from urlb.nets import Encoder, RandomShiftsAug

FRAME_MEAN_TOL = 0.05  # grey levels, on means over 84x84 (x3) pixels


def _uint8_images(seed: int, n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 9, 84, 84), generator=generator, dtype=torch.uint8)


def test_encoder_init_forward_and_gradient_match_public():
    torch.manual_seed(0)  # URLB's Encoder built under this seed has the same weights
    encoder = Encoder((9, 84, 84))
    h = encoder(_uint8_images(1, n=2))
    assert h.shape == (2, 32 * 35 * 35)
    assert h.double().sum().item() == pytest.approx(11339.611066, rel=1e-5)
    np.testing.assert_allclose(h[0, :4].tolist(), [0.2657924294, 0.0, 0.0, 0.1436269581], atol=1e-5)
    np.testing.assert_allclose(h[1, -3:].tolist(), [0.3510646820, 0.5126112700, 0.5902386308], atol=1e-5)
    h.pow(2).mean().backward()
    first, last = encoder.convnet[0], encoder.convnet[6]
    assert first.weight.grad.double().sum().item() == pytest.approx(-0.011712719, abs=1e-5)
    assert first.bias.grad.double().sum().item() == pytest.approx(0.23797072, abs=1e-5)
    assert last.weight.grad.double().abs().sum().item() == pytest.approx(11.447649, rel=1e-5)


@pytest.mark.parametrize(
    "as_float, sums, row, corner",
    [
        (
            False,
            [8090772.0005, 8094375.9585, 8112926.9599, 8086532.9838],
            [191.0000305, 220.9997864, 7.0, 211.0],
            194.0,
        ),
        (
            True,
            [1155824.5714, 1156339.4222, 1158989.5656, 1155218.9977],
            [27.2857189, 31.5713978, 1.0, 30.1428566],
            27.7142849,
        ),
    ],
)
def test_random_shift_matches_public_with_the_same_draws(as_float, sums, row, corner):
    images = _uint8_images(2, n=4)
    x = images.float() / 7.0 if as_float else images
    torch.manual_seed(7)  # URLB draws its shifts with one torch.randint of shape (n, 1, 1, 2)
    y = RandomShiftsAug(pad=4)(x)
    after = torch.randint(0, 1000, (1,)).item()
    assert y.dtype == torch.float32 and y.shape == (4, 9, 84, 84)
    np.testing.assert_allclose(y.double().sum((1, 2, 3)).tolist(), sums, rtol=1e-5)
    np.testing.assert_allclose(y[1, 2, 0, :4].tolist(), row, atol=1e-4)
    np.testing.assert_allclose(y[3, 8, 83, -4:].tolist(), [corner] * 4, atol=1e-4)
    torch.manual_seed(7)
    torch.randint(0, 9, (4, 1, 1, 2))
    assert after == torch.randint(0, 1000, (1,)).item()  # exactly one draw of that size was used


def test_quadruped_stand_pixels_match_public_frames():
    """The custom quadruped task renders URLB's floor (size 10) from camera 2; frame stack 3,
    action repeat 2. A floor of another size moves every frame mean by about 1 grey level."""
    env = envs.make("quadruped_stand", obs_type="pixels", frame_stack=3, action_repeat=2, seed=1)
    rng = np.random.default_rng(0)
    ts = env.reset()
    means = [ts.observation.astype(np.float64).mean()]
    rewards = []
    for _ in range(2):
        ts = env.step(rng.uniform(-1, 1, 12).astype(np.float32))
        means.append(ts.observation[6:].astype(np.float64).mean())
        rewards.append(ts.reward)
    np.testing.assert_allclose(means, [70.4602, 70.4354, 70.3342], atol=FRAME_MEAN_TOL)
    rgb = ts.observation[6:].astype(np.float64).mean((1, 2))
    np.testing.assert_allclose(rgb, [49.0519, 70.5439, 91.4067], atol=FRAME_MEAN_TOL)
    np.testing.assert_allclose(rewards, [1.7074550894128246, 1.7203722231164735], rtol=1e-5)


# URLB's action_scale wrapper wraps a float32 action spec, so the action reaching the physics is
# rounded to float32; these controls are the public pipeline's after three steps (states, repeat 2).
PUBLIC_CTRL = {
    "quadruped_walk": [
        0.23077023029327393,
        -0.19427716732025146,
        0.7955359220504761,
        0.9616706967353821,
        0.4396381080150604,
        0.24073484539985657,
        0.37689346075057983,
        -0.18326504528522491,
        -0.5838456153869629,
        0.4429766833782196,
        0.10324402898550034,
        -0.30361300706863403,
    ],
    "jaco_reach_bottom_right": [
        -0.25168946385383606,
        -0.09715411067008972,
        -0.5927309989929199,
        -0.6295194029808044,
        0.28588396310806274,
        0.24661840498447418,
        1.1538511514663696,
        -1.163224458694458,
        4.972099304199219,
    ],
}
PUBLIC_OBS_SUMS = {
    "quadruped_walk": [34.58072303258814, -20.999429420102388, -13.090349847450852],
    "jaco_reach_bottom_right": [6.679525195842803, 7.514841596605933, 4.7013509473283905],
}


@pytest.mark.parametrize("task", sorted(PUBLIC_CTRL))
def test_actions_reach_the_physics_as_in_public(task):
    env = envs.make(task, obs_type="states", action_repeat=2, seed=1)
    rng = np.random.default_rng(0)
    env.reset()
    sums = []
    for _ in range(3):
        ts = env.step(rng.uniform(-1, 1, env.action_spec().shape).astype(np.float32))
        sums.append(ts.observation.astype(np.float64).sum())
    np.testing.assert_array_equal(env.physics.data.ctrl, PUBLIC_CTRL[task])  # exact: float arithmetic only
    np.testing.assert_allclose(sums, PUBLIC_OBS_SUMS[task], rtol=1e-5, atol=1e-5)
