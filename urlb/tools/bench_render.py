"""Rendering cost of the pixel track: ``python -m urlb.tools.bench_render``.

For each OpenGL backend (EGL, OSMesa) and task it steps the environment with random actions and
times, separately, the physics step and the 84x84 render of the task's camera (images rendered
per second, wall and CPU time), then runs the pixel environment itself (frame stack 3, action
repeat 2, what ``obs_type=pixels`` runs) and prints its steps and frames per second and the
render's share of a step. MuJoCo picks its backend once per process (``MUJOCO_GL``), so each
backend is measured in a child process; a backend whose library is missing is reported as
unavailable instead of failing the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from urlb.tasks import ALL_TASKS

BACKENDS = ("egl", "osmesa")
DEFAULT_TASKS = "walker_walk,quadruped_walk,jaco_reach_top_left"
PIXELS = 84


def measure(task: str, seconds: float, action_repeat: int = 2) -> dict:
    """Times physics steps and renders on one task, then the pixel environment as a whole, each
    for ``seconds``, in this process's OpenGL backend."""
    import numpy as np

    from urlb import envs

    rng = np.random.default_rng(0)
    env = envs.make(task, obs_type="states", action_repeat=1, seed=1)
    shape = env.action_spec().shape
    env.reset()
    env.render(PIXELS, PIXELS)  # the first render creates the OpenGL context: not timed
    physics_s = render_s = render_cpu_s = 0.0
    steps = 0
    while physics_s + render_s < seconds:
        t0 = time.perf_counter()
        if env.step(rng.uniform(-1, 1, shape).astype(np.float32)).last():
            env.reset()
        t1, c1 = time.perf_counter(), time.process_time()
        env.render(PIXELS, PIXELS)
        physics_s += t1 - t0
        render_s += time.perf_counter() - t1
        render_cpu_s += time.process_time() - c1  # all of this process's threads (llvmpipe's too)
        steps += 1
    env.close()

    # The real pixel environment: each step applies the action `action_repeat` times, renders
    # once and stacks the last 3 frames.
    env = envs.make(task, obs_type="pixels", frame_stack=3, action_repeat=action_repeat, seed=1)
    env.reset()
    pixel_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if env.step(rng.uniform(-1, 1, shape).astype(np.float32)).last():
            env.reset()
        pixel_steps += 1
    pixel_s = time.perf_counter() - start
    env.close()
    return {
        "task": task,
        "ms_physics_step": 1e3 * physics_s / steps,
        "ms_render": 1e3 * render_s / steps,
        "renders_per_s": steps / render_s,
        "cpu_ms_render": 1e3 * render_cpu_s / steps,
        "pixel_env_steps_per_s": pixel_steps / pixel_s,
        "pixel_env_frames_per_s": action_repeat * pixel_steps / pixel_s,
        "render_share": (render_s / steps) / (pixel_s / pixel_steps),
    }


def _worker(backend: str, tasks: list[str], seconds: float) -> None:
    """Child process (started with MUJOCO_GL=backend): measure every task, print one JSON line."""
    print(json.dumps([measure(task, seconds) for task in tasks]))


def run_backend(backend: str, tasks: list[str], seconds: float) -> list[dict] | str:
    """Rows for one backend, or the reason it could not run (its last error line)."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    cmd = [sys.executable, "-m", "urlb.tools.bench_render", "--worker", backend, "--tasks", ",".join(tasks)]
    done = subprocess.run(cmd + ["--seconds", str(seconds)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_rows(backend: str, rows: list[dict] | str) -> list[str]:
    """One table line per task, or one line saying why the backend is unavailable."""
    if isinstance(rows, str):
        return [f"{backend} | unavailable: {rows}"]
    return [
        f"{backend} | {r['task']} | {r['renders_per_s']:.1f} | {r['ms_render']:.1f} | {r['cpu_ms_render']:.1f} | "
        f"{r['ms_physics_step']:.2f} | "
        f"{r['pixel_env_steps_per_s']:.1f} | {r['pixel_env_frames_per_s']:.1f} | {100 * r['render_share']:.0f}"
        for r in rows
    ]


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``urlb-bench-render``): exit code 0 on success, 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m urlb.tools.bench_render", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="egl,osmesa", help=f"comma-separated, of: {', '.join(BACKENDS)}")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated benchmark tasks")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per task and backend")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    bad = [t for t in tasks if t not in ALL_TASKS]
    if bad:
        parser.error(f"unknown task {', '.join(bad)}; valid: {', '.join(ALL_TASKS)}")
    if args.seconds <= 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.worker:
        _worker(args.worker, tasks, args.seconds)
        return 0
    backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend {', '.join(unknown)}; valid: {', '.join(BACKENDS)}")
    print(f"{PIXELS}x{PIXELS} renders; pixel env = frame stack 3, action repeat 2 (frames = steps x 2)")
    columns = ("backend", "task", "renders/s", "render ms", "render CPU ms", "physics step ms")
    print(" | ".join(columns + ("pixel env steps/s", "frames/s", "render % of a pixel step")))
    results = {}
    for backend in backends:
        results[backend] = run_backend(backend, tasks, args.seconds)
        for line in format_rows(backend, results[backend]):
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
