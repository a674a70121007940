"""One server per state directory: ``<state dir>/serve.lock``, held with flock() while `serve` runs.

The lock is the kernel's (released when the process ends, however it ends), so a stale file never blocks
a new server; the file's text only says who holds it: its pid and where it listens, for the one-line
refusal a second `serve` prints. A server removes its local socket at exit only if the path is still the
socket it created (same device and inode): never one another server made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "serve.lock"


class StateDirLocked(Exception):
    """Another `netsession serve` holds the state directory; the message names it."""


class StateLock:
    """``with StateLock(directory, "listening on 127.0.0.1:4445"):`` — or raises StateDirLocked."""

    def __init__(self, directory: Path, description: str) -> None:
        self.path = directory / LOCK_FILE
        self.description = description
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateDirLocked(
                f"the state directory {self.path.parent} is in use by netsession serve ({holder}); "
                "stop it, or give this one another --state-dir"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {self.description}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def socket_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def remove_own_socket(path: Path, identity: tuple[int, int] | None) -> bool:
    """Unlink ``path`` only if it is still the socket we created (``identity``); whether it was."""
    if identity is None or socket_identity(path) != identity:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True
