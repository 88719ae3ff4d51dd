"""Evaluation videos written as mp4 with imageio (needs MUJOCO_GL=egl when headless).

Without a GPU, EGL falls back to Mesa's software rasteriser (llvmpipe): about 8-10 frames/s at
256x256 on a 2-core CPU, so each recorded 1000-step evaluation episode adds one to two minutes.
The first recording measures the render rate and, for a software renderer, says what each video
will cost, once per process.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import imageio
import numpy as np

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "osmesa")


def gl_renderer(env) -> str:
    """The OpenGL renderer string of ``env``'s rendering context (e.g. "llvmpipe (LLVM 15...)")."""
    if os.environ.get("MUJOCO_GL", "").lower() == "osmesa":
        return "osmesa"
    try:
        from OpenGL import GL

        with env.physics.contexts.gl.make_current() as ctx:
            name = ctx.call(GL.glGetString, GL.GL_RENDERER)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # no GL context to ask (another backend); the rate is still measured
        return "unknown"


def is_software(renderer: str) -> bool:
    return any(name in renderer.lower() for name in SOFTWARE_RENDERERS)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class VideoRecorder:
    announced = False  # the render-rate notice is printed once per process

    def __init__(self, directory: Path, size: int = 256, fps: int = 30) -> None:
        self.directory, self.size, self.fps = Path(directory), size, fps
        self.frames: list[np.ndarray] = []
        self.render_rate: float | None = None  # frames/s, measured at the first recording

    def start(self, env) -> None:
        self.frames = []
        self.record(env)  # the first render of a process also creates the GL context: not timed
        if self.render_rate is None:
            start = time.perf_counter()
            env.render(height=self.size, width=self.size)
            self.render_rate = 1.0 / max(time.perf_counter() - start, 1e-9)
            if not VideoRecorder.announced:
                VideoRecorder.announced = True
                notice = self.cost_notice(env)
                if notice:
                    print(notice, file=sys.stdout, flush=True)

    def cost_notice(self, env) -> str | None:
        """One line on what each recorded episode costs, when rendering is done in software."""
        renderer = gl_renderer(env)
        if not is_software(renderer) or not self.render_rate:
            return None
        frames = int(getattr(env, "max_episode_steps", 1000)) + 1
        return (
            f"video: software rendering ({renderer}) at {self.render_rate:.1f} frames/s: each recorded "
            f"evaluation adds about {_duration(frames / self.render_rate)} ({frames} frames at "
            f"{self.size}x{self.size}); save_video=false skips it, a GPU with MUJOCO_GL=egl is much faster"
        )

    def record(self, env) -> None:
        self.frames.append(env.render(height=self.size, width=self.size))

    def save(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        imageio.mimsave(path, self.frames, fps=self.fps)
        return path
