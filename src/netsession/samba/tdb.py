"""Reading Samba's TDB files the way smbstatus does: read-only, through libtdb, under TDB's own locks.

smbd keeps its global state in TDB files that it changes under TDB's locking (fcntl locks on the hash
chains, or robust pthread mutexes in the file when it was created with TDB_MUTEX_LOCKING). libtdb honours
both, so the reader calls libtdb itself (``libtdb.so.1``, installed with Samba) through ctypes:
``tdb_open(path, 0, TDB_DEFAULT, O_RDONLY)`` — never ``TDB_CLEAR_IF_FIRST``, never writable — then
``tdb_traverse_read``, which walks the chains under read locks, then ``tdb_close``. Each read opens the
file afresh, so a restarted smbd (which re-creates its CLEAR_IF_FIRST databases) is seen as it is now.
The bridge never writes Samba's databases.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Final

LIBTDB_NAMES: Final = ("libtdb.so.1", "libtdb.so")
TDB_DEFAULT: Final = 0


class TdbError(OSError):
    """A database that cannot be opened or read; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class _TdbData(ctypes.Structure):
    _fields_ = (("dptr", ctypes.POINTER(ctypes.c_ubyte)), ("dsize", ctypes.c_size_t))


_TRAVERSE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _TdbData, _TdbData, ctypes.c_void_p)
_lib: ctypes.CDLL | None = None


def _libtdb() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        last: OSError | None = None
        names = list(LIBTDB_NAMES)
        found = ctypes.util.find_library("tdb")
        if found:
            names.append(found)
        for name in names:
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                break
            except OSError as exc:
                last = exc
        else:
            raise TdbError("libtdb", f"libtdb is not installed ({last}); it comes with Samba")
        lib.tdb_open.restype = ctypes.c_void_p
        lib.tdb_open.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint)
        lib.tdb_traverse_read.restype = ctypes.c_int
        lib.tdb_traverse_read.argtypes = (ctypes.c_void_p, _TRAVERSE_FN, ctypes.c_void_p)
        lib.tdb_close.restype = ctypes.c_int
        lib.tdb_close.argtypes = (ctypes.c_void_p,)
        lib.tdb_errorstr.restype = ctypes.c_char_p
        lib.tdb_errorstr.argtypes = (ctypes.c_void_p,)
        _lib = lib
    return _lib


def read_records(path: str, visit: Callable[[bytes, bytes], None] | None = None) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the TDB at ``path``, read under TDB's read locks; with ``visit``, each
    record is handed to it instead (and the list is empty). Raises :class:`TdbError`."""
    lib = _libtdb()
    if not os.path.exists(path):
        raise TdbError(path, "no such file (is smbd running with this smb.conf?)")
    ctypes.set_errno(0)
    handle = lib.tdb_open(os.fsencode(path), 0, TDB_DEFAULT, os.O_RDONLY, 0)
    if not handle:
        err = ctypes.get_errno()
        raise TdbError(path, f"tdb_open failed: {os.strerror(err) if err else 'not a TDB file'}")
    out: list[tuple[bytes, bytes]] = []
    failure: list[BaseException] = []

    def each(_tdb: int | None, key: _TdbData, value: _TdbData, _private: int | None) -> int:
        try:
            k = ctypes.string_at(key.dptr, key.dsize) if key.dsize else b""
            v = ctypes.string_at(value.dptr, value.dsize) if value.dsize else b""
            if visit is None:
                out.append((k, v))
            else:
                visit(k, v)
        except BaseException as exc:
            failure.append(exc)
            return 1  # stop the traverse
        return 0

    callback = _TRAVERSE_FN(each)
    try:
        count = lib.tdb_traverse_read(handle, callback, None)
        if count < 0 and not failure:
            message = lib.tdb_errorstr(handle)
            raise TdbError(path, f"tdb_traverse_read failed: {(message or b'?').decode(errors='replace')}")
    finally:
        lib.tdb_close(handle)
    if failure:
        raise failure[0]
    return out
