"""Evaluation videos: frames rendered from the task's camera are written as a readable mp4."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import imageio.v3 as iio
import numpy as np

from urlb import envs
from urlb.video import VideoRecorder


def test_video_recorder_writes_a_readable_mp4(tmp_path):
    env = envs.make("walker_walk", seed=1)
    recorder = VideoRecorder(tmp_path / "videos", size=64, fps=10)
    env.reset()
    recorder.start(env)
    for _ in range(9):
        env.step(np.zeros(6, np.float32))
        recorder.record(env)
    path = recorder.save("eval_0.mp4")
    frames = iio.imread(path)
    assert frames.shape[0] == 10 and frames.shape[1:3] == (64, 64)
    assert frames.std() > 1.0  # a rendered scene, not a blank image
