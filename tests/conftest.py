"""Shared test configuration: registers the markers of the subprocess end-to-end tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pipeline: end-to-end subprocess runs of pretrain.py/finetune.py (~30 s in total); "
        "deselect with -m 'not pipeline'",
    )
    config.addinivalue_line(
        "markers", "slow: the longest end-to-end runs (every agent through pretrain.py and finetune.py), left "
        "out of the default run (pyproject addopts); run them with -m slow, or everything with -m 'slow or not slow'",
    )
