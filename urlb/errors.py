"""Errors a user can cause: the entry points print them as one line, without a traceback."""


class ConfigError(ValueError):
    """A user error in the configuration."""
