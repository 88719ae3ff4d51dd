"""Shared test configuration and helpers."""

import torch


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pipeline: end-to-end subprocess runs of pretrain.py/finetune.py (~30 s in total); "
        "deselect with -m 'not pipeline'",
    )


def parameters_finite(module: torch.nn.Module) -> bool:
    """Every parameter of ``module`` is finite (no NaN or infinity)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
