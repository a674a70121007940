"""The session records of lmshare.h / MS-SRVS §2.2.4.11–2.2.4.15, and their pywin32 dict form.

Each level is a ``NamedTuple`` with the Windows field names in wire order, so a record reads like the C
struct (``info.sesi10_cname``) and costs no more than a tuple. ``SESSION_INFO_502`` is the source record:
a server keeps one per session and projects it to whichever level a caller asks for (MS-SRVS §3.1.4.5).

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


def ndr_string_size(s: str | None) -> int:
    """Bytes a ``[string, unique] wchar_t*`` referent takes in NDR: max_count, offset, actual_count, the
    characters with their NUL, padded to 4 so the next one starts aligned (C706 §14.3.4)."""
    if s is None:
        return 0
    return 12 + ((utf16_units(s) + 1) * 2 + 3 & ~3)


def ndr_size(record: SessionInfo) -> int:
    """Bytes this record takes in a NetrSessionEnum response: four per field (each pointer and DWORD of
    the fixed part) plus its strings' deferred referents. This is what PreferedMaximumLength counts."""
    size = 4 * len(record)
    for value in record:
        if value.__class__ is str:
            size += ndr_string_size(value)
    return size
