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
