"""The session records of lmshare.h / MS-SRVS §2.2.4.11–2.2.4.15 and their neighbours' — open files
(FILE_INFO_2/3, §2.2.4.6-7) and tree connects (CONNECTION_INFO_0/1, §2.2.4.1-2) — and their pywin32 dict
form.

Each level is a ``NamedTuple`` with the Windows field names in wire order, so a record reads like the C
struct (``info.sesi10_cname``) and costs no more than a tuple. ``SESSION_INFO_502`` is the source record:
a server keeps one per session and projects it to whichever level a caller asks for (MS-SRVS §3.1.4.5);
``FILE_INFO_3`` and ``CONNECTION_INFO_1`` are the source records of an open and of a tree connect.

A string field is ``None`` where the wire carried a NULL pointer.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

from netsession.wire.ndr import utf16_units

# MS-SRVS §2.2.2.3 Session User Flags.
SESS_GUEST = 0x00000001
SESS_NOENCRYPTION = 0x00000002
# MS-SRVS §2.2.2.2: "return all entries".
MAX_PREFERRED_LENGTH = 0xFFFFFFFF


class SESSION_INFO_0(NamedTuple):
    """MS-SRVS §2.2.4.11."""

    sesi0_cname: str | None


class SESSION_INFO_1(NamedTuple):
    """MS-SRVS §2.2.4.12."""

    sesi1_cname: str | None
    sesi1_username: str | None
    sesi1_num_opens: int
    sesi1_time: int
    sesi1_idle_time: int
    sesi1_user_flags: int


class SESSION_INFO_2(NamedTuple):
    """MS-SRVS §2.2.4.13."""

    sesi2_cname: str | None
    sesi2_username: str | None
    sesi2_num_opens: int
    sesi2_time: int
    sesi2_idle_time: int
    sesi2_user_flags: int
    sesi2_cltype_name: str | None


class SESSION_INFO_10(NamedTuple):
    """MS-SRVS §2.2.4.14."""

    sesi10_cname: str | None
    sesi10_username: str | None
    sesi10_time: int
    sesi10_idle_time: int


class SESSION_INFO_502(NamedTuple):
    """MS-SRVS §2.2.4.15 — the source record every other level is projected from."""

    sesi502_cname: str | None
    sesi502_username: str | None
    sesi502_num_opens: int
    sesi502_time: int
    sesi502_idle_time: int
    sesi502_user_flags: int
    sesi502_cltype_name: str | None
    sesi502_transport: str | None


SessionInfo: TypeAlias = SESSION_INFO_0 | SESSION_INFO_1 | SESSION_INFO_2 | SESSION_INFO_10 | SESSION_INFO_502

# Level -> record type, for the five levels NetrSessionEnum knows (MS-SRVS §2.2.4.21).
SESSION_LEVELS: dict[int, type[Any]] = {
    0: SESSION_INFO_0,
    1: SESSION_INFO_1,
    2: SESSION_INFO_2,
    10: SESSION_INFO_10,
    502: SESSION_INFO_502,
}
# NetSessionGetInfo accepts these only (seed 000: 502 -> ERROR_INVALID_LEVEL).
GETINFO_LEVELS = frozenset((0, 1, 2, 10))

# pywin32 win32net dict keys, per level, in wire order (FACTS.md §2).
PYWIN32_KEYS: dict[int, tuple[str, ...]] = {
    0: ("client_name",),
    1: ("client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags"),
    2: ("client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags", "client_type"),
    10: ("client_name", "user_name", "active_time", "idle_time"),
    502: (
        "client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags", "client_type",
        "transport",
    ),
}

_LEVEL_OF: dict[type[Any], int] = {cls: level for level, cls in SESSION_LEVELS.items()}


def level_of(record: SessionInfo) -> int:
    """The information level a record belongs to."""
    return _LEVEL_OF[type(record)]


def project(source: SESSION_INFO_502, level: int) -> SessionInfo:
    """The level-``level`` view of a source record (MS-SRVS §3.1.4.5: "sesiN_x MUST be set to
    session.sesi502_x")."""
    cname, user, opens, time, idle, flags, cltype, _transport = source
    if level == 10:
        return SESSION_INFO_10(cname, user, time, idle)
    if level == 502:
        return source
    if level == 0:
        return SESSION_INFO_0(cname)
    if level == 1:
        return SESSION_INFO_1(cname, user, opens, time, idle, flags)
    if level == 2:
        return SESSION_INFO_2(cname, user, opens, time, idle, flags, cltype)
    raise ValueError(f"no session information level {level}")


def to_pywin32(record: SessionInfo) -> dict[str, Any]:
    """The dict pywin32's ``win32net.NetSessionEnum`` returns for this record."""
    return dict(zip(PYWIN32_KEYS[_LEVEL_OF[type(record)]], record))


# -- the session's neighbours: open files and tree connects (MS-SRVS §2.2.4.1-2.2.4.10) -----------------

# MS-SRVS §2.2.4.7 fi3_permissions bits.
PERM_FILE_READ = 0x00000001
PERM_FILE_WRITE = 0x00000002
PERM_FILE_CREATE = 0x00000004
ACCESS_EXEC = 0x00000008
ACCESS_DELETE = 0x00000010
ACCESS_ATRIB = 0x00000020
ACCESS_PERM = 0x00000040


class FILE_INFO_2(NamedTuple):
    """MS-SRVS §2.2.4.6."""

    fi2_id: int


class FILE_INFO_3(NamedTuple):
    """MS-SRVS §2.2.4.7 — the source record of an open (MS-SMB2 §3.3.4.20)."""

    fi3_id: int
    fi3_permissions: int
    fi3_num_locks: int
    fi3_pathname: str | None
    fi3_username: str | None


class CONNECTION_INFO_0(NamedTuple):
    """MS-SRVS §2.2.4.1."""

    coni0_id: int


class CONNECTION_INFO_1(NamedTuple):
    """MS-SRVS §2.2.4.2 — the source record of a tree connect (MS-SMB2 §3.3.4.19)."""

    coni1_id: int
    coni1_type: int
    coni1_num_opens: int
    coni1_num_users: int
    coni1_time: int
    coni1_username: str | None
    coni1_netname: str | None


FileInfo: TypeAlias = FILE_INFO_2 | FILE_INFO_3
ConnectionInfo: TypeAlias = CONNECTION_INFO_0 | CONNECTION_INFO_1

# MS-SRVS §3.1.4.2 / §3.1.4.3 and §3.1.4.1: the levels of NetrFileEnum/GetInfo and NetrConnectionEnum.
FILE_LEVELS: dict[int, type[Any]] = {2: FILE_INFO_2, 3: FILE_INFO_3}
CONNECTION_LEVELS: dict[int, type[Any]] = {0: CONNECTION_INFO_0, 1: CONNECTION_INFO_1}

# pywin32 win32net.NetFileEnum / NetFileGetInfo dict keys (win32netfile.cpp), per level, in wire order.
FILE_PYWIN32_KEYS: dict[int, tuple[str, ...]] = {
    2: ("id",),
    3: ("id", "permissions", "num_locks", "path_name", "user_name"),
}


def project_file(source: FILE_INFO_3, level: int) -> FileInfo:
    """The level-``level`` view of an open (MS-SRVS §3.1.4.2: "fi2_id MUST be set to open.fi3_id")."""
    if level == 3:
        return source
    if level == 2:
        return FILE_INFO_2(source.fi3_id)
    raise ValueError(f"no file information level {level}")


def project_connection(source: CONNECTION_INFO_1, level: int) -> ConnectionInfo:
    """The level-``level`` view of a tree connect (MS-SRVS §3.1.4.1: coni0_id is the tree's id)."""
    if level == 1:
        return source
    if level == 0:
        return CONNECTION_INFO_0(source.coni1_id)
    raise ValueError(f"no connection information level {level}")


def file_to_pywin32(record: FileInfo) -> dict[str, Any]:
    """The dict pywin32's ``win32net.NetFileEnum`` returns for this record."""
    return dict(zip(FILE_PYWIN32_KEYS[3 if isinstance(record, FILE_INFO_3) else 2], record))


def ndr_string_size(s: str | None) -> int:
    """Bytes a ``[string, unique] wchar_t*`` referent takes in NDR: max_count, offset, actual_count, the
    characters with their NUL, padded to 4 so the next one starts aligned (C706 §14.3.4)."""
    if s is None:
        return 0
    return 12 + ((utf16_units(s) + 1) * 2 + 3 & ~3)


def ndr_size(record: tuple[Any, ...]) -> int:
    """Bytes this record takes in a Net*Enum response (sessions, files, connections): four per field (each
    pointer and DWORD of the fixed part) plus its strings' and byte arrays' deferred referents. This is
    what PreferedMaximumLength counts."""
    size = 4 * len(record)
    for value in record:
        if value.__class__ is str:
            size += ndr_string_size(value)
        elif value.__class__ is bytes:  # a [size_is] byte array: max_count, the bytes, padding
            size += 4 + (len(value) + 3 & ~3)
    return size
