"""A workdir belongs to one run at a time: an exclusive lock held for the whole run, and files written
atomically, so a crash or a second process never leaves a half-written or interleaved workdir."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from gen_jax.data.cache import write_atomically as write_text_atomic  # noqa: F401 (the workdir's writer)

LOCK_NAME = ".lock"


class WorkdirBusyError(RuntimeError):
    """Another live process holds the workdir's lock."""


class WorkdirLock:
    """An exclusive ``flock`` on ``<workdir>/.lock``, released when the holder closes it or dies (the kernel
    drops the lock with the process, so a ``kill -9`` leaves no stale lock). The file names the holder (pid,
    host, start time, command) for the error a second process gets."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(self.path).read_text().strip() or "an unknown process"
            os.close(self._fd)
            raise WorkdirBusyError(f"{Path(workdir)} is in use by another run ({holder}); wait for it to end or "
                                   f"stop it, or train in another workdir") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def keep_file_name(path: Path) -> Path:
    """``path`` if it does not exist, else the first free ``<stem>.<n><suffix>``: a kept file is never
    overwritten."""
    if not path.exists():
        return path
    n = 1
    while (candidate := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    return candidate
