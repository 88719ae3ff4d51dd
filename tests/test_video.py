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


class FakeEnv:
    """Renders a blank image; 250-step episodes like jaco."""

    max_episode_steps = 250

    def render(self, height: int, width: int) -> np.ndarray:
        return np.zeros((height, width, 3), np.uint8)


def test_software_rendering_announces_the_cost_once(tmp_path, monkeypatch, capsys):
    import urlb.video as video

    monkeypatch.setattr(video, "gl_renderer", lambda env: "llvmpipe (LLVM 15.0.6, 256 bits)")
    monkeypatch.setattr(video.VideoRecorder, "announced", False)
    first = VideoRecorder(tmp_path, size=32)
    first.start(FakeEnv())
    assert first.render_rate is not None and first.render_rate > 0
    notice = capsys.readouterr().out.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith("video: software rendering (llvmpipe")
    assert "251 frames" in notice[0] and "save_video=false" in notice[0]
    VideoRecorder(tmp_path, size=32).start(FakeEnv())  # later evaluations stay quiet
    assert capsys.readouterr().out == ""


def test_hardware_rendering_says_nothing(tmp_path, monkeypatch, capsys):
    import urlb.video as video

    monkeypatch.setattr(video, "gl_renderer", lambda env: "NVIDIA GeForce RTX 4090/PCIe/SSE2")
    monkeypatch.setattr(video.VideoRecorder, "announced", False)
    VideoRecorder(tmp_path, size=32).start(FakeEnv())
    assert capsys.readouterr().out == ""


def test_renderer_of_a_real_context_is_named():
    from urlb.video import gl_renderer

    env = envs.make("jaco_reach_top_left", seed=1)
    env.reset()
    env.render(height=16, width=16)
    assert gl_renderer(env) not in ("", "unknown")
