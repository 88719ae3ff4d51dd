"""Alias kept for ``python -m urlb.bench``; the code is in :mod:`urlb.tools.bench`."""

import sys

from urlb.tools.bench import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
