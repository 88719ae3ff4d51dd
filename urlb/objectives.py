"""Alias kept for ``python -m urlb.objectives``; the code is in :mod:`urlb.tools.objectives`."""

from urlb.tools.objectives import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
