"""One trainer per run folder: an OS lock on RUN/trainer.lock, which the kernel drops when
the holding process ends however it ends, so a killed trainer never leaves a stale lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import CnnspecError

LOCK_FILE = "trainer.lock"
_held: dict[Path, int] = {}  # run folder -> the open descriptor that holds its lock


class RunInUse(CnnspecError):
    """Another process is training in the run folder."""


def hold(run: Path) -> None:
    """Lock `run` for the rest of this process's life; refuse if another process holds it.
    The lock file says who holds it (the pid), for the message the next trainer gets."""
    run = Path(run).resolve()
    if run in _held:
        return
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise RunInUse(
            f"{run} is in use by another trainer (pid {holder}); wait for it to end or "
            "choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[run] = fd


def release(run: Path) -> None:
    """Give up the lock on `run` before the process ends (for callers that train twice)."""
    fd = _held.pop(Path(run).resolve(), None)
    if fd is not None:
        os.close(fd)
