"""Shared test configuration: registers the marker of the subprocess end-to-end tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pipeline: end-to-end subprocess runs of pretrain.py/finetune.py (~30 s in total); "
        "deselect with -m 'not pipeline'",
    )
