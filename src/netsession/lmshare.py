r"""The session functions of lmshare.h — and their neighbours NetFileEnum / NetFileGetInfo / NetFileClose
and NetConnectionEnum — with Win32's argument order and paging.

Where Win32 fills out-parameters, these return them: :func:`NetSessionEnum` gives the records
(``SESSION_INFO_x`` named tuples with the ``sesiN_*`` fields), entriesread, totalentries, the new resume
handle and whether more data remains (Win32's ERROR_MORE_DATA, which is not an error here). Any other
status raises :class:`~netsession.errors.NetApiError`.

Paging through a server by hand, 4 KiB at a time::

    resume = 0
    while True:
        page = NetSessionEnum(r"\\fs1", None, None, 10, 4096, resume)
        for info in page.records:
            print(info.sesi10_cname, info.sesi10_username)
        if not page.more_data:
            break
        resume = page.resume_handle

``servername`` is ``\\name``, ``name``, an address, ``[v6]``, optionally ``:port``; ``None`` is the local
computer (the local netsession server). A client name may be given with or without its leading ``\\``;
records always carry it in Windows' ``\\`` form, whatever the server sent (Samba sends none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from netsession.client.names import same_client, unc_client
from netsession.client.pool import current_pool
from netsession.client.rpc import SrvsvcClient
from netsession.client.transport import TransportError
from netsession.errors import (
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    NERR_ClientNameNotFound,
    NERR_Success,
    NERR_UserNotFound,
    NetApiError,
    shown,
)
from netsession.records import GETINFO_LEVELS, MAX_PREFERRED_LENGTH, SessionInfo
from netsession.wire.srvsvc import NetrSessionEnumResponse

__all__ = [
    "MAX_PREFERRED_LENGTH",
    "ListEnumResult",
    "NetConnectionEnum",
    "NetFileClose",
    "NetFileEnum",
    "NetFileGetInfo",
    "NetSessionDel",
    "NetSessionEnum",
    "NetSessionGetInfo",
    "SessionEnumResult",
    "check_getinfo_arguments",
    "enum_result",
    "filter_error",
    "getinfo_result",
    "matcher",
    "matches",
]

_DWORD: Final = 0xFFFFFFFF
_UNC: Final = "\\\\"


class SessionEnumResult(NamedTuple):
    """What NetSessionEnum hands back through its out-parameters."""

    records: list[SessionInfo]
    entriesread: int
    totalentries: int
    resume_handle: int | None
    more_data: bool


def _dword(value: int, what: str, funcname: str, *, minus_one: bool = False) -> int:
    """A DWORD argument. With ``minus_one``, -1 reads as 0xFFFFFFFF, as C callers write
    MAX_PREFERRED_LENGTH."""
    if minus_one and value == -1:
        return _DWORD
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _DWORD:
        detail = f"The parameter is incorrect. ({what}={shown(value)})"
        raise NetApiError(ERROR_INVALID_PARAMETER, funcname, detail)
    return value


def _with_unc_cnames(records: list[Any]) -> list[Any]:
    """Records whose cname (always the first field) is in ``\\`` form."""
    if all(r[0] is None or r[0].startswith(_UNC) for r in records):
        return records
    return [r if r[0] is None or r[0].startswith(_UNC) else r._replace(**{r._fields[0]: unc_client(r[0])})
            for r in records]


def matches(record: SessionInfo, client: str | None, username: str | None) -> bool:
    """Whether a record passes the filters, on the fields its level has (level 0 has no user name)."""
    if client and not same_client(record[0], client):
        return False
    if username and len(record) > 1:
        user = record[1]
        if not isinstance(user, str) or user.casefold() != username.casefold():
            return False
    return True


def matcher(client: str | None, username: str | None) -> Callable[[SessionInfo], bool]:
    """:func:`matches` with the filters fixed, for filtering many records: the filters are normalised
    once, and each distinct cname is put in UNC form once (a whole answer often has a few)."""
    unc_filter = unc_client(client)
    wanted_client = unc_filter.casefold() if unc_filter is not None else None
    wanted_user = username.casefold() if username else None
    same: dict[str | None, bool] = {}

    def match(record: SessionInfo) -> bool:
        if wanted_client is not None:
            cname = record[0]
            ok = same.get(cname)
            if ok is None:
                unc = unc_client(cname)
                ok = same[cname] = unc is not None and unc.casefold() == wanted_client
            if not ok:
                return False
        if wanted_user is not None and len(record) > 1:
            user = record[1]
            if not isinstance(user, str) or user.casefold() != wanted_user:
                return False
        return True

    return match


def NetSessionEnum(
    servername: str | None,
    UncClientName: str | None,
    username: str | None,
    level: int,
    prefmaxlen: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> SessionEnumResult:
    r"""One NetrSessionEnum call (MS-SRVS §3.1.4.5). ``resume_handle=None`` sends a NULL pointer (no
    resuming; Win32's ``resume_handle == NULL``). Raises NetApiError for any status but NERR_Success and
    ERROR_MORE_DATA."""
    funcname = "NetSessionEnum"
    prefmaxlen = _dword(prefmaxlen, "prefmaxlen", funcname, minus_one=True)
    if resume_handle is not None:
        resume_handle = _dword(resume_handle, "resume_handle", funcname, minus_one=True)
    level = _dword(level, "level", funcname)
    client = unc_client(UncClientName)
    user = username or None

    def call(c: SrvsvcClient) -> SessionEnumResult:
        return enum_result(c.session_enum(level, client, user, prefmaxlen, resume_handle), funcname)

    return current_pool().run(servername, call, funcname=funcname, idempotent=True)


def enum_result(r: NetrSessionEnumResponse, funcname: str = "NetSessionEnum") -> SessionEnumResult:
    """The out-parameters of one NetrSessionEnum answer; NetApiError for any status but NERR_Success and
    ERROR_MORE_DATA (shared by this module and :mod:`netsession.aio`)."""
    if r.status not in (NERR_Success, ERROR_MORE_DATA):
        raise NetApiError(r.status, funcname)
    records = _with_unc_cnames(r.entries)
    more = r.status == ERROR_MORE_DATA
    return SessionEnumResult(records, len(records), r.total_entries, r.resume_handle, more)


def check_getinfo_arguments(UncClientName: str | None, username: str | None, level: int) -> None:
    """NetSessionGetInfo's own checks, made before anything is sent, in netapi32's order (ReactOS
    ``srvsvc.c``): only levels 0, 1, 2 and 10 exist (ERROR_INVALID_LEVEL); both names are required
    (ERROR_INVALID_PARAMETER — for an empty name too, which a server would read as "no filter")."""
    if level not in GETINFO_LEVELS:
        raise NetApiError(ERROR_INVALID_LEVEL, "NetSessionGetInfo")
    if not UncClientName or not username:
        raise NetApiError(ERROR_INVALID_PARAMETER, "NetSessionGetInfo")


def NetSessionGetInfo(
    servername: str | None, UncClientName: str, username: str, level: int
) -> SessionInfo:
    """The session of ``UncClientName`` and ``username``: NetrSessionEnum with both filters,
    MAX_PREFERRED_LENGTH and no resume handle, first entry (there is no GetInfo opnum; FACTS.md §1).

    A server that ignores the filters (Samba) answers with every session; the first one that matches is
    returned, and NERR_ClientNameNotFound if none does."""
    check_getinfo_arguments(UncClientName, username, level)
    funcname = "NetSessionGetInfo"
    client = unc_client(UncClientName)

    def call(c: SrvsvcClient) -> SessionInfo:
        r = c.session_enum(level, client, username, MAX_PREFERRED_LENGTH, None)
        return getinfo_result(r, client, username, funcname)

    return current_pool().run(servername, call, funcname=funcname, idempotent=True)


def getinfo_result(
    r: NetrSessionEnumResponse, client: str | None, username: str, funcname: str = "NetSessionGetInfo"
) -> SessionInfo:
    """The first record of a NetSessionGetInfo answer that matches both filters (see NetSessionGetInfo)."""
    if r.status not in (NERR_Success, ERROR_MORE_DATA):
        raise NetApiError(r.status, funcname)
    records = _with_unc_cnames(r.entries)
    match = matcher(client, username)
    for record in records:
        if match(record):
            result: SessionInfo = record
            return result
    raise filter_error(records, client, username, funcname)


def NetSessionDel(servername: str | None, UncClientName: str | None, username: str | None) -> None:
    """End every session of ``UncClientName`` (if given) and ``username`` (if given) (MS-SRVS §3.1.4.6).

    At least one of the two is required (ERROR_INVALID_PARAMETER otherwise, before anything is sent): some
    servers would take two empty filters as "every session"."""
    funcname = "NetSessionDel"
    client = unc_client(UncClientName)
    user = username or None
    if client is None and user is None:
        raise NetApiError(ERROR_INVALID_PARAMETER, funcname)

    def call(c: SrvsvcClient) -> None:
        status = c.session_del(client, user).status
        if status != NERR_Success:
            raise NetApiError(status, funcname)

    try:
        current_pool().run(servername, call, funcname=funcname, idempotent=False)
    except TransportError as exc:
        if not exc.delivered:
            raise
        # Samba ends the caller's own connection too when its session matches, before answering.
        raise DeletionUnanswered(
            exc.winerror, funcname,
            f"{exc.strerror} The connection closed after the request was sent: the sessions may have "
            "been ended, the caller's own among them.",
        ) from None


class DeletionUnanswered(NetApiError):
    """NetSessionDel's request went out and the connection closed before the answer: the sessions may
    have been ended, the caller's own among them (Samba ends the caller's connection when it matches)."""


def filter_error(
    records: list[Any], client: str | None, username: str | None, funcname: str
) -> NetApiError:
    """What a Windows server answers when the filters match nothing (MS-SRVS §3.1.4.5): if no session is
    the client's, NERR_ClientNameNotFound; else NERR_UserNotFound."""
    if client and not any(same_client(r[0], client) for r in records):
        return NetApiError(NERR_ClientNameNotFound, funcname)
    if username:
        return NetApiError(NERR_UserNotFound, funcname)
    return NetApiError(NERR_ClientNameNotFound, funcname)


# -- the session's neighbours: open files and connections (lmshare.h NetFile*, NetConnectionEnum) --------


class ListEnumResult(NamedTuple):
    """What NetFileEnum / NetConnectionEnum hand back through their out-parameters: FILE_INFO_x or
    CONNECTION_INFO_x records, entriesread, totalentries, the new resume handle, and whether more remains
    (Win32's ERROR_MORE_DATA)."""

    records: list[Any]
    entriesread: int
    totalentries: int
    resume_handle: int | None
    more_data: bool


def list_result(r: Any, funcname: str) -> ListEnumResult:
    """The out-parameters of one NetrFileEnum / NetrConnectionEnum answer (shared with netsession.aio)."""
    if r.status not in (NERR_Success, ERROR_MORE_DATA):
        raise NetApiError(r.status, funcname)
    records = list(r.entries)
    more = r.status == ERROR_MORE_DATA
    return ListEnumResult(records, len(records), r.total_entries, r.resume_handle, more)


def NetFileEnum(
    servername: str | None,
    basepath: str | None,
    username: str | None,
    level: int,
    prefmaxlen: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> ListEnumResult:
    r"""One NetrFileEnum call (MS-SRVS §3.1.4.2): the opens (files and pipes) whose path starts with
    ``basepath`` up to a backslash and whose user is ``username`` (None: any), at level 2 or 3, paged as
    :func:`NetSessionEnum`.

    >>> page = NetFileEnum(r"\\fs1", r"\PIPE", None, 3)             # doctest: +SKIP
    >>> page.records[0].fi3_pathname, page.records[0].fi3_username   # doctest: +SKIP
    ('\\PIPE\\srvsvc', 'alice')
    """
    funcname = "NetFileEnum"
    prefmaxlen = _dword(prefmaxlen, "prefmaxlen", funcname, minus_one=True)
    if resume_handle is not None:
        resume_handle = _dword(resume_handle, "resume_handle", funcname, minus_one=True)
    level = _dword(level, "level", funcname)

    def call(c: SrvsvcClient) -> ListEnumResult:
        r = c.file_enum(level, basepath or None, username or None, prefmaxlen, resume_handle)
        return list_result(r, funcname)

    return current_pool().run(servername, call, funcname=funcname, idempotent=True)


def NetFileGetInfo(servername: str | None, fileid: int, level: int) -> Any:
    """The open ``fileid`` at level 2 or 3 (MS-SRVS §3.1.4.3): a FILE_INFO_2 / FILE_INFO_3 record."""
    funcname = "NetFileGetInfo"
    fileid = _dword(fileid, "fileid", funcname)
    level = _dword(level, "level", funcname)

    def call(c: SrvsvcClient) -> Any:
        r = c.file_get_info(fileid, level)
        if r.status != NERR_Success:
            raise NetApiError(r.status, funcname)
        if r.info is None:
            raise NetApiError(ERROR_INVALID_LEVEL, funcname, "the server answered without a record")
        return r.info

    return current_pool().run(servername, call, funcname=funcname, idempotent=True)


def NetFileClose(servername: str | None, fileid: int) -> None:
    """Force the open ``fileid`` closed (MS-SRVS §3.1.4.4); NERR_FileIdNotFound if there is none."""
    funcname = "NetFileClose"
    fileid = _dword(fileid, "fileid", funcname)

    def call(c: SrvsvcClient) -> None:
        status = c.file_close(fileid).status
        if status != NERR_Success:
            raise NetApiError(status, funcname)

    current_pool().run(servername, call, funcname=funcname, idempotent=False)


def NetConnectionEnum(
    servername: str | None,
    qualifier: str,
    level: int,
    prefmaxlen: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> ListEnumResult:
    r"""One NetrConnectionEnum call (MS-SRVS §3.1.4.1): the tree connects to the share ``qualifier`` (each
    ``coni1_netname`` the client's name) or from the computer ``\\qualifier`` (each ``coni1_netname`` the
    share), at level 0 or 1. A qualifier is required (ERROR_INVALID_PARAMETER, before anything is sent)."""
    funcname = "NetConnectionEnum"
    if not qualifier:
        raise NetApiError(ERROR_INVALID_PARAMETER, funcname)
    prefmaxlen = _dword(prefmaxlen, "prefmaxlen", funcname, minus_one=True)
    if resume_handle is not None:
        resume_handle = _dword(resume_handle, "resume_handle", funcname, minus_one=True)
    level = _dword(level, "level", funcname)

    def call(c: SrvsvcClient) -> ListEnumResult:
        r = c.connection_enum(qualifier, level, prefmaxlen, resume_handle)
        return list_result(r, funcname)

    return current_pool().run(servername, call, funcname=funcname, idempotent=True)
