r"""netsession for asyncio: the session functions as coroutines, and a per-host API for scanning many
servers at once.

The pywin32-shaped coroutines take the sync functions' arguments and give their results and errors::

    from netsession import aio

    aio.register_session(r"\\fs1", "alice", "s3cret!", domain="CORP")   # shared with the sync API
    sessions = await aio.NetSessionEnum(10, r"\\fs1")                    # list of pywin32 dicts
    one = await aio.NetSessionGetInfo(10, r"\\fs1", r"\\10.0.0.5", "bob")
    await aio.NetSessionDel(r"\\fs1", client=r"\\10.0.0.5")

Each call opens its own connection and closes it, inside one deadline (``NETSESSION_TIMEOUT``, 30 s):
name resolution, TCP connect, NEGOTIATE, logon, tree connect, pipe open, bind and the call itself.

For a fleet, :func:`connect` gives one host with explicit credentials and a deadline, and the raw Win32
page (records, entriesread, totalentries, resume_handle, more_data)::

    async def sessions(host):
        async with aio.connect(host, credentials=creds, timeout=5) as srv:
            page = await srv.session_enum(10, prefmaxlen=aio.MAX_PREFERRED_LENGTH)
            return page.records

    results = await asyncio.gather(*(sessions(h) for h in hosts), return_exceptions=True)

Errors — everything is a :class:`~netsession.errors.NetApiError` (``winerror`` as Windows reports it), and
the kind of failure can be told apart:

=====================================  =========================================================
exception                              what happened
=====================================  =========================================================
``TransportError``, reason             below the RPC stub, ``reason`` says which:
  ``"unresolved"``                     the server name did not resolve (ERROR_BAD_NETPATH)
  ``"unreachable"``                    connection refused, host or network unreachable (ERROR_BAD_NETPATH)
  ``"timeout"`` (:class:`DeadlineExpired`)  the deadline passed (ERROR_BAD_NETPATH)
  ``"protocol"``                       not SMB2/3, a malformed or badly signed answer (RPC_S_PROTOCOL_ERROR)
  ``"closed"``                         the server closed the connection (RPC_S_SERVER_UNAVAILABLE)
  ``"logon"`` (:class:`LogonError`)    logon refused; ``status_name`` e.g. ``"STATUS_LOGON_FAILURE"``
  ``"status"`` (:class:`NtStatusError`)  any other NTSTATUS; ``status``, ``status_name``
  ``"unsupported"``                    encryption required but not offered; Kerberos missing
  ``"credentials"``                    no password and no Kerberos ticket
:class:`RpcFaultError`                 the server answered with a DCE/RPC fault (``fault_status``)
``NetApiError``                        the call's own status (``winerror``: 5, 124, 2312, 2221...)
=====================================  =========================================================
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Final, TypeVar

from netsession import lmshare, win32net
from netsession.client import srvsvc as calls
from netsession.client.arpc import AsyncPipe, AsyncSrvsvcClient, AsyncUnixPipe, Encodable
from netsession.client.errors import (
    DeadlineExpired,
    LogonError,
    NtStatusError,
    TransportError,
)
from netsession.client.names import Target, parse_server, unc_client
from netsession.client.pool import Credentials, current_pool, register_session
from netsession.client.smb import open_pipe
from netsession.client.srvsvc import RpcFaultError
from netsession.client.transport import DEFAULT_TIMEOUT
from netsession.errors import ERROR_INVALID_PARAMETER, NERR_Success, NetApiError
from netsession.lmshare import SessionEnumResult, check_getinfo_arguments
from netsession.paths import local_srvsvc_socket
from netsession.records import MAX_PREFERRED_LENGTH, SessionInfo, file_to_pywin32, to_pywin32

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_PREFERRED_LENGTH",
    "Credentials",
    "DeadlineExpired",
    "LogonError",
    "NetApiError",
    "NetConnectionEnum",
    "NetFileClose",
    "NetFileEnum",
    "NetFileGetInfo",
    "NetSessionDel",
    "NetSessionEnum",
    "NetSessionGetInfo",
    "NtStatusError",
    "RpcFaultError",
    "Server",
    "SessionEnumResult",
    "TransportError",
    "connect",
    "register_session",
]

_T = TypeVar("_T")
_DWORD: Final = 0xFFFFFFFF


class Server:
    """One server's srvsvc, bound and ready; made by :func:`connect`. One call at a time (calls from
    several tasks queue). ``deadline`` is the absolute ``loop.time()`` every step must finish by."""

    def __init__(self, client: AsyncSrvsvcClient, pipe: AsyncPipe, target: Target | None) -> None:
        self.client = client
        self._pipe = pipe
        self.target = target

    @property
    def deadline(self) -> float | None:
        return getattr(self._pipe, "deadline", None)

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        setattr(self._pipe, "deadline", value)  # noqa: B010 - both pipe kinds have it

    def extend(self, timeout: float) -> None:
        """Give the next calls ``timeout`` seconds from now."""
        self.deadline = asyncio.get_running_loop().time() + timeout

    async def session_enum(
        self,
        level: int,
        client: str | None = None,
        username: str | None = None,
        prefmaxlen: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> SessionEnumResult:
        """One NetrSessionEnum page (MS-SRVS §3.1.4.5), lmshare's shape; ERROR_MORE_DATA is ``more_data``."""
        r = await self.client.session_enum(
            level, unc_client(client), username or None, prefmaxlen, resume_handle
        )
        return lmshare.enum_result(r)

    async def sessions(self, level: int, client: str | None = None, username: str | None = None) -> list[Any]:
        """Every session at ``level`` (paging through ERROR_MORE_DATA), filtered as Windows would."""
        records: list[Any] = []
        resume: int | None = 0
        seen: set[int] = set()
        while resume is not None:
            page = await self.session_enum(level, client, username, MAX_PREFERRED_LENGTH, resume)
            records.extend(page.records)
            resume = win32net.next_resume(page, seen)
        return win32net.filtered(records, client, username)

    async def session_get_info(self, level: int, client: str, username: str) -> SessionInfo:
        """NetSessionGetInfo: NetrSessionEnum with both filters (FACTS.md §1)."""
        check_getinfo_arguments(client, username, level)
        unc = unc_client(client)
        r = await self.client.session_enum(level, unc, username, MAX_PREFERRED_LENGTH, None)
        return lmshare.getinfo_result(r, unc, username)

    async def session_del(self, client: str | None = None, username: str | None = None) -> None:
        """NetrSessionDel (MS-SRVS §3.1.4.6); at least one of the two is required."""
        unc = unc_client(client)
        if unc is None and not username:
            raise NetApiError(ERROR_INVALID_PARAMETER, "NetSessionDel")
        status = (await self.client.session_del(unc, username or None)).status
        if status != NERR_Success:
            raise NetApiError(status, "NetSessionDel")

    # -- the session's neighbours: open files and connections (lmshare's shapes) ----------------------

    async def file_enum(
        self,
        level: int = 3,
        basepath: str | None = None,
        username: str | None = None,
        prefmaxlen: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> lmshare.ListEnumResult:
        """One NetrFileEnum page (MS-SRVS §3.1.4.2)."""
        r = await self.client.run(
            calls.file_enum(
                self.client.server_name, level, basepath or None, username or None, prefmaxlen, resume_handle
            )
        )
        return lmshare.list_result(r, "NetFileEnum")

    async def files(
        self, level: int = 3, basepath: str | None = None, username: str | None = None
    ) -> list[Any]:
        """Every open at ``level`` (paging through ERROR_MORE_DATA)."""
        records: list[Any] = []
        resume: int | None = 0
        seen: set[int] = set()
        while resume is not None:
            page = await self.file_enum(level, basepath, username, MAX_PREFERRED_LENGTH, resume)
            records.extend(page.records)
            if not page.more_data or not page.records or page.resume_handle in seen:
                break
            resume = page.resume_handle
            if resume is not None:
                seen.add(resume)
        return records

    async def file_get_info(self, fileid: int, level: int = 3) -> Any:
        """NetrFileGetInfo (MS-SRVS §3.1.4.3): the FILE_INFO_2 / FILE_INFO_3 record."""
        r = await self.client.run(calls.file_get_info(self.client.server_name, fileid, level))
        if r.status != NERR_Success or r.info is None:
            raise NetApiError(r.status or ERROR_INVALID_PARAMETER, "NetFileGetInfo")
        return r.info

    async def file_close(self, fileid: int) -> None:
        """NetrFileClose (MS-SRVS §3.1.4.4)."""
        r = await self.client.run(calls.file_close(self.client.server_name, fileid))
        if r.status != NERR_Success:
            raise NetApiError(r.status, "NetFileClose")

    async def connection_enum(
        self,
        qualifier: str,
        level: int = 1,
        prefmaxlen: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> lmshare.ListEnumResult:
        """One NetrConnectionEnum page (MS-SRVS §3.1.4.1): a share or ``\\\\computer``."""
        if not qualifier:
            raise NetApiError(ERROR_INVALID_PARAMETER, "NetConnectionEnum")
        r = await self.client.run(
            calls.connection_enum(self.client.server_name, qualifier, level, prefmaxlen, resume_handle)
        )
        return lmshare.list_result(r, "NetConnectionEnum")

    async def call(self, opnum: int, stub: bytes) -> bytes:
        """Any srvsvc opnum with a ready-made stub; the response stub."""
        return await self.client.call(opnum, stub)

    async def invoke(self, opnum: int, request: Encodable, decoder: Any) -> Any:
        """Any srvsvc method: a request with ``encode()`` and a decoder for the response stub."""
        return await self.client.invoke(opnum, request, decoder)

    def close(self) -> None:
        """Drop the connection (the server ends the session with it, MS-SMB2 §3.3.7.1)."""
        self.client.close()

    async def aclose(self) -> None:
        self.close()


class connect:
    r"""Open ``server``'s srvsvc: ``\\name``, ``name``, an address, ``[v6]``, optionally ``:port``; None is
    the local netsession server. ``credentials`` default to the registration for that server or the
    NETSESSION_* environment (as the sync API); ``port`` defaults to the name's, the registration's, or
    445. Everything — resolution to bind, and the calls made inside ``async with`` — must be done within
    ``timeout`` seconds (or by ``deadline``, an absolute ``loop.time()``); :meth:`Server.extend` gives more.
    """

    def __init__(
        self,
        server: str | None,
        *,
        credentials: Credentials | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        port: int | None = None,
        funcname: str = "",
    ) -> None:
        self._server = server
        self._credentials = credentials
        self._timeout = timeout
        self._deadline = deadline
        self._port = port
        self._funcname = funcname
        self._opened: Server | None = None

    async def _open(self) -> Server:
        try:
            target = parse_server(self._server, self._funcname)
            creds, port, timeout = current_pool().resolve(target)
            if self._credentials is not None:
                creds = self._credentials
            if self._port is not None and (target is None or target.port is None):
                port = self._port
            if self._timeout is not None:
                timeout = self._timeout
            deadline = self._deadline
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + timeout
            pipe: AsyncPipe
            if target is None:
                pipe = await AsyncUnixPipe.open(
                    local_srvsvc_socket(current_pool().environ), deadline=deadline
                )
            else:
                pipe = await open_pipe(target.host, port, creds, deadline=deadline)
            client = AsyncSrvsvcClient(pipe, server_name=None if target is None else target.unc)
            await client.bind()
            return Server(client, pipe, target)
        except NetApiError as exc:
            raise _named(exc, self._funcname) from None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> Server:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None


def _named(exc: NetApiError, funcname: str) -> NetApiError:
    if funcname and not exc.funcname:
        exc.funcname = funcname
        exc.args = (exc.winerror, funcname, exc.strerror)
    return exc


async def _run(server: str | None, funcname: str, call: Any) -> Any:
    try:
        async with connect(server, funcname=funcname) as srv:
            return await call(srv)
    except NetApiError as exc:
        raise _named(exc, funcname) from None


async def NetSessionEnum(
    level: int, server: str | None = None, client: str | None = None, username: str | None = None
) -> list[dict[str, Any]]:
    """Every session on ``server`` at ``level``, as pywin32 dicts (like win32net.NetSessionEnum)."""

    async def call(srv: Server) -> list[dict[str, Any]]:
        return [to_pywin32(r) for r in await srv.sessions(level, client, username)]

    result: list[dict[str, Any]] = await _run(server, "NetSessionEnum", call)
    return result


async def NetSessionGetInfo(level: int, server: str | None, client: str, username: str) -> dict[str, Any]:
    """The session of ``client`` and ``username`` at ``level`` (0, 1, 2 or 10); both names are required."""
    check_getinfo_arguments(client, username, level)

    async def call(srv: Server) -> dict[str, Any]:
        return to_pywin32(await srv.session_get_info(level, client, username))

    result: dict[str, Any] = await _run(server, "NetSessionGetInfo", call)
    return result


async def NetSessionDel(
    server: str | None = None, client: str | None = None, username: str | None = None
) -> None:
    """End the sessions of ``client`` and/or ``username`` on ``server`` (at least one is required)."""
    if unc_client(client) is None and not username:
        raise NetApiError(ERROR_INVALID_PARAMETER, "NetSessionDel")

    async def call(srv: Server) -> None:
        await srv.session_del(client, username)

    await _run(server, "NetSessionDel", call)


async def NetFileEnum(
    level: int, server: str | None = None, basepath: str | None = None, username: str | None = None
) -> list[dict[str, Any]]:
    """Every open file and pipe on ``server`` as pywin32 dicts (like win32net.NetFileEnum)."""

    async def call(srv: Server) -> list[dict[str, Any]]:
        return [file_to_pywin32(r) for r in await srv.files(level, basepath, username)]

    result: list[dict[str, Any]] = await _run(server, "NetFileEnum", call)
    return result


async def NetFileGetInfo(level: int, server: str | None, fileid: int) -> dict[str, Any]:
    """The open ``fileid`` at level 2 or 3, as a pywin32 dict."""

    async def call(srv: Server) -> dict[str, Any]:
        return file_to_pywin32(await srv.file_get_info(fileid, level))

    result: dict[str, Any] = await _run(server, "NetFileGetInfo", call)
    return result


async def NetFileClose(server: str | None, fileid: int) -> None:
    """Force the open ``fileid`` closed."""

    async def call(srv: Server) -> None:
        await srv.file_close(fileid)

    await _run(server, "NetFileClose", call)


async def NetConnectionEnum(server: str | None, qualifier: str, level: int = 1) -> list[Any]:
    """Every tree connect to the share ``qualifier`` or from ``\\\\qualifier`` (CONNECTION_INFO_x)."""

    async def call(srv: Server) -> list[Any]:
        records: list[Any] = []
        resume: int | None = 0
        seen: set[int] = set()
        while resume is not None:
            page = await srv.connection_enum(qualifier, level, MAX_PREFERRED_LENGTH, resume)
            records.extend(page.records)
            if not page.more_data or not page.records or page.resume_handle in seen:
                break
            resume = page.resume_handle
            if resume is not None:
                seen.add(resume)
        return records

    result: list[Any] = await _run(server, "NetConnectionEnum", call)
    return result
