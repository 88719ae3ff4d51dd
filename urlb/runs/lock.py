"""One process per run directory: ``run.lock`` held with ``flock`` while a run trains.

The kernel releases an ``flock`` when its holder exits in any way (kill -9 included), so a lock
is never stale; the file names its holder (host, pid, since when) so that a refused process can
say who has the run. A holder that died leaves its name in the file: the next process takes the
lock over and says so. ``flock`` works on local file systems and on NFS (where Linux maps it to
POSIX locks); where a file system has no locks at all the run goes on with a warning.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from urlb.errors import ConfigError

LOCK_NAME = "run.lock"
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
_held: dict[Path, int] = {}  # run directory -> open descriptor of its lock file (this process)


class RunLocked(ConfigError):
    """Another live process holds the run directory."""


def _holder_text(record: dict) -> str:
    if not record:
        return "another process (it has not written its name yet)"
    return f"pid {record.get('pid')} on host {record.get('host')} since {record.get('since')}"


def _read_record(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _open_locked(path: Path) -> int | None:
    """A descriptor of ``path`` holding its exclusive lock, or None when another process holds
    it. Retries when the file was removed (released) between open and lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse(path, fd)
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                print(f"warning: {path.parent} is on a file system without file locks; run.lock is not enforced")
                return fd
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder released (and removed) the file we locked: lock the new one


def _refuse(path: Path, fd: int) -> None:
    record = _read_record(fd)
    os.close(fd)
    raise RunLocked(
        f"run directory {path.parent} is in use by {_holder_text(record)} ({path} is held); "
        "wait for that run to end or stop it, or use another run_root or seed"
    )


def acquire(run_dir: Path) -> None:
    """Hold ``run_dir``'s lock until :func:`release_all` or the process ends (nothing happens if
    this process already holds it). Raises :class:`RunLocked` naming a live holder."""
    run_dir = Path(run_dir).absolute()
    if run_dir in _held:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = _open_locked(path)
    previous = _read_record(fd)
    if previous and previous.get("pid") != os.getpid():
        print(f"notice: took over {path} from {_holder_text(previous)}, which is no longer running", flush=True)
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "command": " ".join(sys.argv)}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    except OSError as exc:  # a full disk: no lock file is left behind, empty or not
        path.unlink(missing_ok=True)
        os.close(fd)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    _held[run_dir] = fd


def acquire_all(run_dirs: list[Path]) -> None:
    """Every directory's lock or none: a refusal releases those taken by this call."""
    taken = []
    try:
        for run_dir in sorted(Path(d).absolute() for d in run_dirs):
            if run_dir not in _held:
                acquire(run_dir)
                taken.append(run_dir)
    except BaseException:
        for run_dir in taken:
            release(run_dir)
        raise


def release(run_dir: Path) -> None:
    """Remove the lock file, then unlock: a process waiting on the removed file sees it is gone
    and locks a new one."""
    fd = _held.pop(Path(run_dir).absolute(), None)
    if fd is None:
        return
    try:
        (Path(run_dir).absolute() / LOCK_NAME).unlink(missing_ok=True)
    except OSError:
        pass  # an unwritable directory: the kernel still drops the lock with the descriptor
    os.close(fd)


def release_all() -> None:
    for run_dir in list(_held):
        release(run_dir)


def held() -> list[Path]:
    return list(_held)


atexit.register(release_all)  # an orderly exit (even one Hydra ends early) leaves no holder's name
