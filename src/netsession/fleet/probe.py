"""The one place the fleet meets the SMB client engine: open srvsvc on a host, call NetrSessionEnum.

Everything else in :mod:`netsession.fleet` sees only :class:`HostConnection`, :class:`Page` and
:class:`ProbeError` (a failure already sorted into the verdict vocabulary), so the engine below can change
without the scan noticing.

This version drives the client engine's async SMB pipe (:class:`netsession.client.smb.SmbPipe`) directly on
the scan's event loop — no threads — with our DCE/RPC association and srvsvc codecs on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Any, Final

from netsession.client import errors
from netsession.client.auth import initiator_for
from netsession.client.fragments import FragmentTracker
from netsession.client.pool import Credentials
from netsession.client.rpc import CLIENT_MAX_FRAG, SRVSVC_SYNTAX, RpcFaultError, _bind_rejection
from netsession.client.smb import SmbPipe
from netsession.client.transport import TransportError
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_MORE_DATA,
    RPC_S_PROTOCOL_ERROR,
    RPC_X_BAD_STUB_DATA,
    NERR_Success,
    NetApiError,
    status_name,
)
from netsession.fleet.results import Verdict
from netsession.records import SessionInfo
from netsession.wire.dcerpc import (
    NDR20,
    BindAccepted,
    BindRejected,
    ClientAssociation,
    FaultReceived,
    RemoteProtocolError,
    ResponseReceived,
)
from netsession.wire.ndr import NdrError
from netsession.wire.smb2.client import ClientConfig
from netsession.wire.srvsvc import SRVSVC_PIPE, NetrSessionEnumRequest, NetrSessionEnumResponse, Opnum

# MS-RPCE §2.2.2.13 / MS-ERREF: a fault PDU carrying status 5 (ERROR_ACCESS_DENIED), how a hardened
# Windows (NetCease, Server 2019+) refuses NetrSessionEnum.
FAULT_ACCESS_DENIED: Final = 5
_PROTOCOL_ERRORS: Final = frozenset((RPC_S_PROTOCOL_ERROR, RPC_X_BAD_STUB_DATA))
# What the blocking client names the steps after negotiate by, in its messages.
_LATER_STAGES: Final = ("session setup", "tree connect", "pipe open", "transceive", "read", "write")
_STATUS_NAME: Final = re.compile(r"\b(STATUS_[A-Z_]+)\b")


@dataclass(frozen=True, slots=True)
class Page:
    """One NetrSessionEnum answer, Win32's out-parameters (MS-SRVS §3.1.4.5)."""

    records: list[SessionInfo]
    entriesread: int
    totalentries: int
    resume: int | None
    more: bool


class ProbeError(Exception):
    """A failure, sorted: the verdict it means, the Windows name of the error, and what happened.

    ``stub_status`` is set when the server answered the call with a NET_API_STATUS (not a fault, not a
    transport failure): the scan steps down a level on ERROR_INVALID_LEVEL."""

    def __init__(
        self, verdict: Verdict, error: str | None, detail: str, *, stub_status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.verdict = verdict
        self.error = error
        self.detail = detail
        self.stub_status = stub_status


def stub_error(status: int) -> ProbeError:
    """What a NET_API_STATUS other than success / ERROR_MORE_DATA means."""
    verdict = Verdict.ACCESS_DENIED if status == ERROR_ACCESS_DENIED else Verdict.ERROR
    return ProbeError(verdict, status_name(status), f"NetrSessionEnum returned {status_name(status)}",
                      stub_status=status)


def classify(exc: BaseException, stage: str) -> ProbeError:
    """Sort an engine exception into the verdict vocabulary (``stage``: connect or call)."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, RpcFaultError):
        if exc.fault_status == FAULT_ACCESS_DENIED:
            return ProbeError(Verdict.HARDENED, "ERROR_ACCESS_DENIED", "DCE/RPC fault, status 5")
        name = status_name(exc.winerror)
        verdict = Verdict.PROTOCOL_ERROR if exc.winerror in _PROTOCOL_ERRORS else Verdict.ERROR
        return ProbeError(verdict, name, f"DCE/RPC fault 0x{exc.fault_status:08X}")
    if isinstance(exc, TransportError):
        return _transport_verdict(exc, stage)
    if isinstance(exc, NetApiError):
        verdict = Verdict.PROTOCOL_ERROR if exc.winerror in _PROTOCOL_ERRORS else Verdict.ERROR
        return ProbeError(verdict, exc.name, exc.strerror)
    if isinstance(exc, OSError):
        return ProbeError(Verdict.UNREACHABLE, None, str(exc))
    return ProbeError(Verdict.ERROR, type(exc).__name__, str(exc))


def _transport_verdict(exc: TransportError, stage: str) -> ProbeError:
    """A failure below the stub, by its ``reason`` (:mod:`netsession.client.errors`)."""
    detail, reason = exc.detail, exc.reason
    status_name_ = getattr(exc, "status_name", None)
    if reason in (errors.LOGON, errors.CREDENTIALS):
        found = _STATUS_NAME.search(detail)
        name = status_name_ or (found.group(1) if found else "ERROR_LOGON_FAILURE")
        return ProbeError(Verdict.LOGON_FAILED, name, detail)
    if reason == errors.UNRESOLVED:
        return ProbeError(Verdict.UNREACHABLE, "WSAHOST_NOT_FOUND", detail)
    if reason == errors.UNREACHABLE:
        low = detail.lower()
        name = "WSAECONNREFUSED" if "refused" in low else "WSAEHOSTUNREACH"
        return ProbeError(Verdict.UNREACHABLE, name, detail)
    if reason == errors.TIMEOUT:
        return ProbeError(Verdict.TIMEOUT, "WSAETIMEDOUT", detail)
    if reason == errors.PROTOCOL:
        # Not SMB at all while connecting; SMB that broke later is a protocol error.
        if stage == "connect" and "negotiate" not in detail.lower():
            return ProbeError(Verdict.NOT_SMB, None, detail)
        return ProbeError(Verdict.PROTOCOL_ERROR, status_name(exc.winerror), detail)
    if reason == errors.CLOSED and stage == "connect" and not _after_negotiate(detail):
        return ProbeError(Verdict.NOT_SMB, None, detail)
    if status_name_ == "STATUS_ACCESS_DENIED":
        return ProbeError(Verdict.ACCESS_DENIED, status_name_, detail)
    return ProbeError(Verdict.ERROR, status_name_ or status_name(exc.winerror), detail)


def _after_negotiate(detail: str) -> bool:
    low = detail.lower()
    return any(s in low for s in _LATER_STAGES)


class Engine:
    """What the scan holds for its whole run. The async engine needs nothing shared: each host gets its
    own connection on the scan's event loop."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency

    def close(self) -> None:
        pass


class HostConnection:
    """srvsvc on one host, bound, for the calls of one scan of it. Use :func:`open_host`.

    The DCE/RPC association is our sans-I/O :class:`~netsession.wire.dcerpc.ClientAssociation`; its PDUs
    travel on the engine's async :class:`~netsession.client.smb.SmbPipe` (FSCTL_PIPE_TRANSCEIVE, then
    READs with read-ahead for the fragments known to be due)."""

    def __init__(self, pipe: SmbPipe, server_name: str, local_address: str | None) -> None:
        self._pipe = pipe
        self._server_name = server_name
        self._assoc = ClientAssociation(max_xmit_frag=CLIENT_MAX_FRAG, max_recv_frag=CLIENT_MAX_FRAG)
        self.local_address = local_address

    def _events(self, data: bytes) -> list[object]:
        try:
            return list(self._assoc.receive_data(data))
        except RemoteProtocolError as exc:
            raise ProbeError(Verdict.PROTOCOL_ERROR, "RPC_S_PROTOCOL_ERROR", f"DCE/RPC: {exc}") from None

    async def _exchange(self, pdus: list[bytes], done: type[object], call_id: int | None) -> object:
        """Send ``pdus`` (the last by transceive) and read until an event of type ``done`` (or a fault,
        a bind rejection) for ``call_id``."""
        for pdu in pdus[:-1]:
            await self._pipe.write(pdu)
        tracker = FragmentTracker(self._assoc.max_recv_frag)
        data = await self._pipe.transceive(pdus[-1])
        while True:
            for event in self._events(data):
                if isinstance(event, FaultReceived) and (call_id is None or event.call_id == call_id):
                    raise RpcFaultError(event.status)
                if isinstance(event, BindRejected):
                    raise _bind_rejection(event)
                if isinstance(event, done) and call_id in (None, getattr(event, "call_id", None)):
                    return event
            tracker.feed(data)
            self._pipe.read_ahead(tracker.due())
            data = await self._pipe.read()

    async def bind(self) -> None:
        """MS-RPCE §3.3.1.5.6: bind srvsvc with NDR 2.0."""
        self._assoc.bind(SRVSVC_SYNTAX, (NDR20,))
        try:
            await self._exchange(self._assoc.data_to_send(), BindAccepted, None)
        except ProbeError:
            raise
        except Exception as exc:
            raise classify(exc, "call") from None

    async def enum(self, level: int, resume: int | None, prefmaxlen: int) -> Page:
        """One NetrSessionEnum (MS-SRVS §3.1.4.5); ERROR_MORE_DATA is ``more``; any other status raises
        ProbeError."""
        request = NetrSessionEnumRequest(self._server_name, None, None, level, prefmaxlen, resume)
        try:
            call_id = self._assoc.request(Opnum.NetrSessionEnum, request.encode())
            event = await self._exchange(self._assoc.data_to_send(), ResponseReceived, call_id)
            assert isinstance(event, ResponseReceived)
            r = NetrSessionEnumResponse.decode(event.stub)
        except ProbeError:
            raise
        except NdrError as exc:
            detail = f"NetrSessionEnum: {exc}"
            raise ProbeError(Verdict.PROTOCOL_ERROR, "RPC_X_BAD_STUB_DATA", detail) from None
        except Exception as exc:
            raise classify(exc, "call") from None
        if r.status not in (NERR_Success, ERROR_MORE_DATA):
            raise stub_error(r.status)
        if r.entries and r.level != level:
            raise ProbeError(Verdict.PROTOCOL_ERROR, "RPC_X_BAD_STUB_DATA",
                             f"asked for level {level}, the server answered {r.level}")
        more = r.status == ERROR_MORE_DATA
        return Page(list(r.entries), len(r.entries), r.total_entries, r.resume_handle, more)

    async def close(self) -> None:
        # Dropping the TCP connection ends the session, tree and open on the server (MS-SMB2 §3.3.7.1),
        # without round trips that could wait on an unresponsive host.
        self._pipe.close()


async def open_host(
    engine: Engine, address: str, port: int, credentials: Credentials, timeout: float
) -> HostConnection:
    """Connect, negotiate, log on, open and bind srvsvc, all before ``timeout`` seconds pass; raises
    ProbeError. (The caller's deadline bounds the whole host anyway.)"""
    loop = asyncio.get_running_loop()
    anonymous = credentials.username == "" and credentials.password is None and credentials.nt_hash is None
    try:
        initiator = initiator_for(address, credentials)
        config = ClientConfig(server_name=address, encryption_required=credentials.encrypt,
                              allow_guest=anonymous)
        pipe = await SmbPipe.open(address, port, initiator, pipe=SRVSVC_PIPE, config=config,
                                  deadline=loop.time() + timeout, anonymous=anonymous)
    except ProbeError:
        raise
    except Exception as exc:
        raise classify(exc, "connect") from None
    local: str | None = None
    with contextlib.suppress(Exception):
        sockname: Any = pipe.smb._protocol.transport.get_extra_info("sockname")  # type: ignore[union-attr]
        local = str(sockname[0])
    conn = HostConnection(pipe, f"\\{address}", local)
    try:
        await conn.bind()
    except BaseException:
        await conn.close()
        raise
    return conn
