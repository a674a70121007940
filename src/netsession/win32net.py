r"""pywin32's ``win32net`` session functions — and NetFileEnum / NetFileGetInfo / NetFileClose,
NetShareEnum / NetShareGetInfo and NetServerGetInfo — for any OS and any server.

A script written for Windows runs unchanged::

    try:
        import win32net
    except ImportError:
        from netsession import win32net

    for s in win32net.NetSessionEnum(10, r"\\fs1"):
        print(s["client_name"], s["user_name"], s["idle_time"])

The functions take pywin32's arguments and return its dicts (keys per FACTS.md §2: ``client_name``,
``user_name``, ``num_opens``, ``active_time``, ``idle_time``, ``user_flags``, ``client_type``,
``transport``); failures raise :class:`~netsession.errors.NetApiError`, which has the shape of
``pywintypes.error`` — ``(winerror, funcname, strerror)`` — and is also available here as ``error``.

Beyond pywin32 (on Windows the server would do it): client names are accepted with or without ``\\`` and
returned with it; and a server that ignores the client and user filters (Samba) has its answer filtered
here, so the result is what a Windows server would have returned — NERR_ClientNameNotFound or
NERR_UserNotFound included.
"""

from __future__ import annotations

from typing import Any

from netsession import lmshare
from netsession.client.pool import current_pool
from netsession.errors import ERROR_INVALID_LEVEL, ERROR_MORE_DATA, NERR_Success, NetApiError
from netsession.records import MAX_PREFERRED_LENGTH, file_to_pywin32, to_pywin32

__all__ = [
    "NetFileClose",
    "NetFileEnum",
    "NetFileGetInfo",
    "NetServerGetInfo",
    "NetSessionDel",
    "NetSessionEnum",
    "NetSessionGetInfo",
    "NetShareEnum",
    "NetShareGetInfo",
    "error",
]

error = NetApiError


def NetSessionEnum(
    level: int, server: str | None = None, client: str | None = None, username: str | None = None
) -> list[dict[str, Any]]:
    r"""Every session on ``server`` (None: the local computer) at ``level`` (0, 1, 2, 10 or 502), limited
    to one client computer and/or user if given. Pages through ERROR_MORE_DATA itself.

    >>> NetSessionEnum(10, r"\\fs1", username="alice")        # doctest: +SKIP
    [{'client_name': '\\\\10.0.0.5', 'user_name': 'alice', 'active_time': 4210, 'idle_time': 12}]
    """
    records: list[Any] = []
    resume: int | None = 0
    seen: set[int] = set()
    while resume is not None:
        page = lmshare.NetSessionEnum(server, client, username, level, MAX_PREFERRED_LENGTH, resume)
        records.extend(page.records)
        resume = next_resume(page, seen)
    return [to_pywin32(r) for r in filtered(records, client, username)]


def next_resume(page: lmshare.SessionEnumResult, seen: set[int]) -> int | None:
    """Where the next page starts, or None when paging is over. A server that says "more" without moving
    on would loop forever: paging stops where it stalled."""
    if not page.more_data or not page.records or page.resume_handle is None or page.resume_handle in seen:
        return None
    seen.add(page.resume_handle)
    return page.resume_handle


def filtered(records: list[Any], client: str | None, username: str | None) -> list[Any]:
    """The records that pass the filters, as a Windows server would answer (its errors included)."""
    if client or username:
        match = lmshare.matcher(client, username)
        kept = [r for r in records if match(r)]
        if records and not kept:
            raise lmshare.filter_error(records, client, username, "NetSessionEnum")
        records = kept
    return records


def NetSessionGetInfo(level: int, server: str | None, client: str, username: str) -> dict[str, Any]:
    """The session of ``client`` and ``username`` at ``level`` (0, 1, 2 or 10); both names are required
    (ERROR_INVALID_PARAMETER), checked before anything is sent."""
    return to_pywin32(lmshare.NetSessionGetInfo(server, client, username, level))


def NetSessionDel(server: str | None = None, client: str | None = None, username: str | None = None) -> None:
    """End the sessions of ``client`` and/or ``username`` on ``server`` (at least one is required)."""
    lmshare.NetSessionDel(server, client, username)


# -- the session's neighbours: open files, shares, the server (pywin32 win32netfile.cpp, win32netmisc.cpp)


def _keys(record: Any) -> dict[str, Any]:
    """pywin32's dict for a SHARE_INFO_x / SERVER_INFO_x: each field without its ``shiN_`` / ``svN_``
    prefix (``shi2_current_uses`` -> ``current_uses``)."""
    return {name.split("_", 1)[1]: value for name, value in zip(record._fields, record)}


def NetFileEnum(
    level: int, server: str | None = None, basepath: str | None = None, username: str | None = None
) -> list[dict[str, Any]]:
    r"""Every open file and pipe on ``server`` at level 2 (``id``) or 3 (``id``, ``permissions``,
    ``num_locks``, ``path_name``, ``user_name``), limited to paths under ``basepath`` and to ``username``
    if given; pages through ERROR_MORE_DATA itself, as pywin32 does.

    >>> NetFileEnum(3, r"\\fs1")                                # doctest: +SKIP
    [{'id': 1, 'permissions': 3, 'num_locks': 0, 'path_name': '\\PIPE\\srvsvc', 'user_name': 'alice'}]
    """
    records: list[Any] = []
    resume: int | None = 0
    seen: set[int] = set()
    while resume is not None:
        page = lmshare.NetFileEnum(server, basepath, username, level, MAX_PREFERRED_LENGTH, resume)
        records.extend(page.records)
        if not page.more_data or not page.records or page.resume_handle in seen or page.resume_handle is None:
            break
        seen.add(page.resume_handle)
        resume = page.resume_handle
    return [file_to_pywin32(r) for r in records]


def NetFileGetInfo(level: int, server: str | None, fileid: int) -> dict[str, Any]:
    """The open ``fileid`` at level 2 or 3, as a pywin32 dict."""
    return file_to_pywin32(lmshare.NetFileGetInfo(server, fileid, level))


def NetFileClose(server: str | None, fileid: int) -> None:
    """Force the open ``fileid`` closed: the client's next request on it fails."""
    lmshare.NetFileClose(server, fileid)


def NetShareEnum(
    server: str | None, level: int, resume: int = 0, prefLen: int = MAX_PREFERRED_LENGTH
) -> tuple[list[dict[str, Any]], int, int]:
    """pywin32's ``NetShareEnum(server, level, resume=0, prefLen)``: ``(shares, total, resume)``, one
    call, a resume handle of 0 when nothing remains (pywin32's convention)."""
    funcname = "NetShareEnum"

    def call(c: Any) -> tuple[list[dict[str, Any]], int, int]:
        r = c.share_enum(level, prefLen & 0xFFFFFFFF, resume)
        if r.status not in (NERR_Success, ERROR_MORE_DATA):
            raise NetApiError(r.status, funcname)
        more = r.status == ERROR_MORE_DATA and r.resume_handle is not None
        return [_keys(e) for e in r.entries], r.total_entries, r.resume_handle if more else 0

    result: tuple[list[dict[str, Any]], int, int] = current_pool().run(
        server, call, funcname=funcname, idempotent=True
    )
    return result


def NetShareGetInfo(server: str | None, netname: str, level: int) -> dict[str, Any]:
    """One share at ``level`` (0, 1, 2, 501, 502, ...), as a pywin32 dict."""
    funcname = "NetShareGetInfo"

    def call(c: Any) -> dict[str, Any]:
        r = c.share_get_info(netname, level)
        if r.status != NERR_Success:
            raise NetApiError(r.status, funcname)
        if r.info is None:
            raise NetApiError(ERROR_INVALID_LEVEL, funcname)
        return _keys(r.info)

    result: dict[str, Any] = current_pool().run(server, call, funcname=funcname, idempotent=True)
    return result


def NetServerGetInfo(server: str | None, level: int) -> dict[str, Any]:
    """The server's SERVER_INFO at ``level`` (100, 101, 102, 502, 503), as a pywin32 dict
    (``platform_id``, ``name``, ``version_major``, ...)."""
    funcname = "NetServerGetInfo"

    def call(c: Any) -> dict[str, Any]:
        r = c.server_get_info(level)
        if r.status != NERR_Success:
            raise NetApiError(r.status, funcname)
        if r.info is None:
            raise NetApiError(ERROR_INVALID_LEVEL, funcname)
        return _keys(r.info)

    result: dict[str, Any] = current_pool().run(server, call, funcname=funcname, idempotent=True)
    return result
