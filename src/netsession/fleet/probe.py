"""The one place the fleet meets the SMB client engine: open srvsvc on a host, call NetrSessionEnum.

Everything else in :mod:`netsession.fleet` sees only :class:`HostConnection`, :class:`Page` and
:class:`ProbeError` (a failure already sorted into the verdict vocabulary), so the engine below can change
without the scan noticing.

This version is :mod:`netsession.aio`'s per-host API (:func:`netsession.aio.connect`, explicit credentials,
one deadline, the raw Win32 page), on the scan's own event loop: no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Any, Final

from netsession import aio
from netsession.client import errors
from netsession.client.pool import Credentials
from netsession.client.rpc import RpcFaultError
from netsession.client.transport import TransportError
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    RPC_S_PROTOCOL_ERROR,
    RPC_X_BAD_STUB_DATA,
    NetApiError,
    status_name,
)
from netsession.fleet.results import Verdict
from netsession.records import SessionInfo

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
    if status in _PROTOCOL_ERRORS:  # the answer did not decode (or was for another level)
        return ProbeError(Verdict.PROTOCOL_ERROR, status_name(status), "NetrSessionEnum's answer is broken")
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
    """srvsvc on one host, bound (an :class:`netsession.aio.Server`), for the calls of one scan of it.
    Use :func:`open_host`."""

    def __init__(self, server: aio.Server, local_address: str | None) -> None:
        self._server = server
        self.local_address = local_address

    async def enum(self, level: int, resume: int | None, prefmaxlen: int) -> Page:
        """One NetrSessionEnum page (MS-SRVS §3.1.4.5); ERROR_MORE_DATA is ``more``; any other status
        raises ProbeError."""
        try:
            page = await self._server.session_enum(level, None, None, prefmaxlen, resume)
        except (TransportError, RpcFaultError) as exc:
            raise classify(exc, "call") from None
        except NetApiError as exc:  # the call's own status, from the stub (or an answer that broke)
            error = stub_error(exc.winerror)
            if error.verdict is Verdict.PROTOCOL_ERROR:
                error.detail = exc.strerror
            raise error from None
        except Exception as exc:
            raise classify(exc, "call") from None
        return Page(list(page.records), page.entriesread, page.totalentries, page.resume_handle,
                    page.more_data)

    async def close(self) -> None:
        # Dropping the TCP connection ends the session, tree and open on the server (MS-SMB2 §3.3.7.1),
        # without round trips that could wait on an unresponsive host.
        self._server.close()


def _local_address(server: aio.Server) -> str | None:
    """The scanner's own address on this connection (what the server files our session under)."""
    with contextlib.suppress(Exception):
        pipe: Any = server._pipe
        sockname: Any = pipe.smb._protocol.transport.get_extra_info("sockname")
        return str(sockname[0])
    return None


async def open_host(
    engine: Engine, address: str, port: int, credentials: Credentials, timeout: float
) -> HostConnection:
    """Connect, negotiate, log on, open and bind srvsvc (:func:`netsession.aio.connect`), all within
    ``timeout`` seconds; raises ProbeError. (The caller's deadline bounds the whole host anyway.)"""
    server_name = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        server = await aio.connect(server_name, credentials=credentials, deadline=deadline)
    except Exception as exc:
        raise classify(exc, "connect") from None
    return HostConnection(server, _local_address(server))
