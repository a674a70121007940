r"""pywin32's ``win32net`` session functions, for any OS and any server.

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
from netsession.errors import NetApiError
from netsession.records import MAX_PREFERRED_LENGTH, to_pywin32

__all__ = ["NetSessionDel", "NetSessionEnum", "NetSessionGetInfo", "error"]

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
