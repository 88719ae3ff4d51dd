"""Evaluation videos written as mp4 with imageio (needs MUJOCO_GL=egl when headless)."""

from __future__ import annotations

from pathlib import Path

import imageio
import numpy as np


class VideoRecorder:
    def __init__(self, directory: Path, size: int = 256, fps: int = 30) -> None:
        self.directory, self.size, self.fps = Path(directory), size, fps
        self.frames: list[np.ndarray] = []

    def start(self, env) -> None:
        self.frames = []
        self.record(env)

    def record(self, env) -> None:
        self.frames.append(env.render(height=self.size, width=self.size))

    def save(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        imageio.mimsave(path, self.frames, fps=self.fps)
        return path
