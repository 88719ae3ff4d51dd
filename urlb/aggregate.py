"""Alias kept for ``python -m urlb.aggregate``; the code is in :mod:`urlb.tools.aggregate`."""

import sys

from urlb.tools.aggregate.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
