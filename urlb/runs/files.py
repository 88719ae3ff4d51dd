"""Writes that never leave half a file: a temporary file in the same directory, fsync, rename.

A failure (full disk, unwritable place, a path that is a file) raises OSError naming the file
the run meant to write; the previous version of that file, if any, stays as it was and the
temporary file is removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

LOW_SPACE_BYTES = 1 << 20  # below this, a failed write is reported as a full disk


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(exc: BaseException, path: Path) -> OSError:
    """``exc`` as an OSError naming ``path``. torch.save reports a full disk as a RuntimeError
    from its zip writer, without errno: the free space of the directory tells which it was."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return exc
    if isinstance(exc, OSError):
        return OSError(exc.errno, exc.strerror or str(exc), str(path))
    try:
        full = shutil.disk_usage(path.parent).free < LOW_SPACE_BYTES
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OSError(errno.EIO, f"write failed ({reason})", str(path))


def _is_write_failure(exc: BaseException) -> bool:
    # torch.save's zip writer turns a failed write into a RuntimeError ("file write failed",
    # "unexpected pos ..."); pickling problems are other types and stay what they are.
    return isinstance(exc, (OSError, RuntimeError))


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file and rename it over ``path`` once it is on disk."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # mkstemp creates 0600; give the file the usual umask-based mode (shared snapshot dirs).
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if _is_write_failure(exc):
            raise write_failure(exc, path) from exc
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def remove_temporary_files(directory: Path, names: tuple[str, ...]) -> list[Path]:
    """Temporary files :func:`atomic_write` left for ``names`` in ``directory`` when its
    process was killed mid-write (only call this while holding the directory's run lock)."""
    removed = []
    if not directory.is_dir():
        return removed
    for name in names:
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
