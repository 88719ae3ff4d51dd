"""Shared test configuration and helpers."""

import os
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# Tiny runs of pretrain.py / finetune.py: quick preset, tiny networks, one evaluation episode.
TINY = [
    "preset=quick",
    "agent.hidden_dim=32",
    "batch_size=32",
    "replay_buffer_size=5000",
    "num_eval_episodes=1",
    "device=cpu",
    "use_tb=false",
]


def jaco_stop_run(tmp_path: Path) -> list[str]:
    """Overrides of a tiny RND pre-training on jaco (four 250-frame episodes, an evaluation every
    500 frames, a checkpoint every episode) that stop-and-resume tests interrupt at frame 500."""
    return [
        *TINY,
        "agent=rnd",
        "domain=jaco",
        "num_train_frames=1000",
        "num_seed_frames=250",
        "eval_every_frames=500",
        "snapshots=[1000]",
        "checkpoint_every_frames=250",
        f"run_root={tmp_path / 'runs'}",
        f"snapshot_dir={tmp_path / 'models'}",
    ]


def child_env() -> dict[str, str]:
    """Environment of a script run by a test: headless rendering, one OpenMP thread (tiny
    networks on a busy 2-core machine), this tree's urlb first, no Hydra full tracebacks."""
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def pytest_configure(config):
    # Every network in the tests is tiny: extra intra-op threads only add overhead, and with two
    # test workers on a 2-core machine they would spin-wait on each other.
    torch.set_num_threads(1)
    config.addinivalue_line(
        "markers",
        "pipeline: end-to-end subprocess runs of pretrain.py/finetune.py (~30 s in total); "
        "deselect with -m 'not pipeline'",
    )


def parameters_finite(module: torch.nn.Module) -> bool:
    """Every parameter of ``module`` is finite (no NaN or infinity)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
