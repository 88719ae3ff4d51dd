"""Shared test configuration and helpers."""

import torch


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
