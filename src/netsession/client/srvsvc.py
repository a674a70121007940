"""The client's srvsvc, sans-I/O: the association over one pipe, and every call as a value.

:class:`SrvsvcAssociation` binds the srvsvc interface (MS-SRVS §2.1: UUID
4b324fc8-1670-01d3-1278-5a47bf6ee188 v3.0, NDR 2.0) with the sans-I/O
:class:`~netsession.wire.dcerpc.ClientAssociation` and runs one call at a time (MS-RPCE §3.3.1.5.8:
without PFC_CONC_MPX, call N+1 waits for the answer to call N). It turns bytes from the pipe into the
bind's outcome or the call's response stub, and everything that goes wrong into the error Windows' RPC
runtime gives the same trouble: a fault's status (access denied is 5, as a hardened Windows sends it),
nca_s_op_rng_error -> RPC_S_PROCNUM_OUT_OF_RANGE, nca_s_unknown_if -> RPC_S_UNKNOWN_IF, a broken PDU ->
RPC_S_PROTOCOL_ERROR (the association is ``broken`` then), a stub that does not decode ->
RPC_X_BAD_STUB_DATA.

A :class:`Call` is one operation ready to go: opnum, request stub, and how to read the response
(:func:`session_enum`, :func:`session_del`, :func:`file_enum`...). The drivers —
:class:`~netsession.client.rpc.SrvsvcClient` (blocking) and
:class:`~netsession.client.arpc.AsyncSrvsvcClient` (asyncio) — only move bytes between a pipe and this.

The decoded response keeps its NET_API_STATUS; what a status means is the caller's to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from netsession.client.errors import CLOSED, TransportError
from netsession.errors import (
    RPC_S_PROCNUM_OUT_OF_RANGE,
    RPC_S_PROTOCOL_ERROR,
    RPC_S_SERVER_UNAVAILABLE,
    RPC_S_UNKNOWN_IF,
    RPC_X_BAD_STUB_DATA,
    NetApiError,
    status_message,
)
from netsession.records import MAX_PREFERRED_LENGTH
from netsession.wire.dcerpc import (
    NDR20,
    AssociationState,
    BindAccepted,
    BindRejected,
    ClientAssociation,
    FaultReceived,
    FaultStatus,
    ProviderReason,
    RejectReason,
    RemoteProtocolError,
    ResponseReceived,
    SyntaxId,
)
from netsession.wire.ndr import NdrError
from netsession.wire.srvsvc import (
    SRVSVC_UUID,
    SRVSVC_VERSION,
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
    Opnum,
)

SRVSVC_SYNTAX: Final = SyntaxId.parse(SRVSVC_UUID, *SRVSVC_VERSION)
# The fragment size we offer in both directions. The server answers with the smaller of this and its own
# limit (MS-RPCE §3.3.1.5.6 / C706 §12.6.3.1); a large offer saves round trips on servers that allow it.
CLIENT_MAX_FRAG: Final = 0xFFF8

# Fault statuses (C706 appendix E, MS-RPCE §2.2.2.13) and the Win32 error Windows' runtime returns for them.
# A fault status below 0x10000 already is a Win32 error (5 = ERROR_ACCESS_DENIED, 0x6F7 =
# RPC_X_BAD_STUB_DATA) and is passed through.
_FAULT_ERRORS: Final[dict[int, int]] = {
    FaultStatus.NCA_S_OP_RNG_ERROR: RPC_S_PROCNUM_OUT_OF_RANGE,
    FaultStatus.NCA_S_UNKNOWN_IF: RPC_S_UNKNOWN_IF,
    FaultStatus.NCA_S_PROTO_ERROR: RPC_S_PROTOCOL_ERROR,
    FaultStatus.NCA_S_FAULT_NDR: RPC_X_BAD_STUB_DATA,
    FaultStatus.NCA_S_FAULT_INVALID_TAG: RPC_X_BAD_STUB_DATA,
    FaultStatus.NCA_S_FAULT_INVALID_BOUND: RPC_X_BAD_STUB_DATA,
}

_T = TypeVar("_T")


class RpcFaultError(NetApiError):
    """The server answered the call with a fault PDU; ``fault_status`` is the status it carried."""

    def __init__(self, fault_status: int) -> None:
        winerror = fault_to_winerror(fault_status)
        super().__init__(winerror)
        self.fault_status = fault_status


def fault_to_winerror(status: int) -> int:
    """The Win32 error a fault status stands for (see the module docstring)."""
    return _FAULT_ERRORS.get(status, status)


# -- the association ----------------------------------------------------------------------------------------


class SrvsvcAssociation:
    """srvsvc on one pipe: :meth:`bind`, then :meth:`request` / :meth:`response_received`, one call at a
    time. Bytes in, results out; a driver does the pipe's I/O and closes it when ``broken``."""

    def __init__(self) -> None:
        self._assoc = ClientAssociation(max_xmit_frag=CLIENT_MAX_FRAG, max_recv_frag=CLIENT_MAX_FRAG)
        self._call_id: int | None = None
        self.broken = False
        self.bind_info: BindAccepted | None = None

    @property
    def state(self) -> AssociationState:
        return self._assoc.state

    @property
    def bound(self) -> bool:
        return not self.broken and self._assoc.state is AssociationState.BOUND

    @property
    def max_recv_frag(self) -> int:
        """The fragment size agreed for the server's PDUs (what read-ahead counts in)."""
        return self._assoc.max_recv_frag

    def bind(self) -> bytes:
        """The bind PDU (MS-RPCE §3.3.1.5.6): srvsvc, NDR 2.0."""
        self._assoc.bind(SRVSVC_SYNTAX, (NDR20,))
        (pdu,) = self._assoc.data_to_send()
        return pdu

    def bind_received(self, data: bytes) -> bool:
        """Bytes after the bind: True once it is accepted, False while more must be read. A rejection, a
        fault or a broken PDU raises (a NetApiError; the association is ``broken``)."""
        try:
            for event in self._receive(data):
                if isinstance(event, BindAccepted):
                    self.bind_info = event
                    return True
                if isinstance(event, BindRejected):
                    raise _bind_rejection(event)
                if isinstance(event, FaultReceived):
                    raise RpcFaultError(event.status)
        except NetApiError:
            self.broken = True
            raise
        return False

    def request(self, opnum: int, stub: bytes) -> list[bytes]:
        """The request PDUs of one call (fragmented to the agreed size): write all, the last by transceive."""
        if not self.bound:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, "the srvsvc association is closed", reason=CLOSED)
        if self._call_id is not None:
            raise RuntimeError("one srvsvc call at a time on an association (MS-RPCE §3.3.1.5.8)")
        self._call_id = self._assoc.request(opnum, stub)
        return self._assoc.data_to_send()

    def response_received(self, data: bytes) -> bytes | None:
        """Bytes during the call: its response stub once complete, None while more must be read. A fault
        raises :class:`RpcFaultError` (the association stays usable); a broken PDU a NetApiError."""
        for event in self._receive(data):
            if isinstance(event, ResponseReceived) and event.call_id == self._call_id:
                self._call_id = None
                return event.stub
            if isinstance(event, FaultReceived) and event.call_id == self._call_id:
                self._call_id = None
                raise RpcFaultError(event.status)
            # ShutdownReceived (C706 §12.6.4.11) needs nothing now: the pipe closes with us.
        return None

    def abandon(self) -> None:
        """The call will not be answered here (the pipe failed, the caller gave up): the association is
        out of step for good."""
        self.broken = True

    def _receive(self, data: bytes) -> list[object]:
        try:
            return list(self._assoc.receive_data(data))
        except RemoteProtocolError as exc:
            self.broken = True
            raise NetApiError(
                RPC_S_PROTOCOL_ERROR, "", f"{status_message(RPC_S_PROTOCOL_ERROR)} ({exc})"
            ) from None


def _bind_rejection(event: BindRejected) -> NetApiError:
    """MS-RPCE §3.3.1.5.6: a bind_nak, or a bind_ack that accepted no context."""
    if event.reject_reason is not None:
        try:
            reason = RejectReason(event.reject_reason).name
        except ValueError:
            reason = str(event.reject_reason)
        return NetApiError(
            RPC_S_SERVER_UNAVAILABLE, "", f"{status_message(RPC_S_SERVER_UNAVAILABLE)} (bind_nak: {reason})"
        )
    if any(r.reason == ProviderReason.ABSTRACT_SYNTAX_NOT_SUPPORTED for r in event.results):
        return NetApiError(RPC_S_UNKNOWN_IF, "", f"{status_message(RPC_S_UNKNOWN_IF)} (srvsvc is not served)")
    return NetApiError(
        RPC_S_PROTOCOL_ERROR, "", f"{status_message(RPC_S_PROTOCOL_ERROR)} (NDR 2.0 was not accepted)"
    )


# -- the calls ----------------------------------------------------------------------------------------------


class Encodable(Protocol):
    def encode(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Call(Generic[_T]):
    """One srvsvc operation ready to run: its opnum, its request stub, and how to read the response."""

    opnum: int
    stub: bytes
    decode: Callable[[bytes], _T]

    def result(self, stub: bytes) -> _T:
        """The decoded response; a stub that does not decode is RPC_X_BAD_STUB_DATA."""
        try:
            return self.decode(stub)
        except NdrError as exc:
            raise NetApiError(
                RPC_X_BAD_STUB_DATA, "", f"{status_message(RPC_X_BAD_STUB_DATA)} ({exc})"
            ) from None


def invoke(opnum: int, request: Encodable, decoder: Callable[[bytes], _T]) -> Call[_T]:
    """Any srvsvc method: a request with ``encode()`` and a decoder for the response stub."""
    return Call(opnum, request.encode(), decoder)


def session_enum(
    server_name: str | None,
    level: int,
    client_name: str | None = None,
    user_name: str | None = None,
    preferred_max_length: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> Call[NetrSessionEnumResponse]:
    """NetrSessionEnum (MS-SRVS §3.1.4.5); an answer at another level than asked is RPC_X_BAD_STUB_DATA."""
    request = NetrSessionEnumRequest(
        server_name, client_name, user_name, level, preferred_max_length, resume_handle
    )

    def decode(stub: bytes) -> NetrSessionEnumResponse:
        response = NetrSessionEnumResponse.decode(stub)
        if response.entries and response.level != level:
            raise NetApiError(
                RPC_X_BAD_STUB_DATA, "", f"asked for level {level}, the server answered {response.level}"
            )
        return response

    return Call(Opnum.NetrSessionEnum, request.encode(), decode)


def session_del(
    server_name: str | None, client_name: str | None, user_name: str | None
) -> Call[NetrSessionDelResponse]:
    """NetrSessionDel (MS-SRVS §3.1.4.6)."""
    request = NetrSessionDelRequest(server_name, client_name, user_name)
    return invoke(Opnum.NetrSessionDel, request, NetrSessionDelResponse.decode)


def share_enum(
    server_name: str | None,
    level: int = 1,
    preferred_max_length: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> Call[NetrShareEnumResponse]:
    """NetrShareEnum (MS-SRVS §3.1.4.8)."""
    request = NetrShareEnumRequest(server_name, level, preferred_max_length, resume_handle)
    return invoke(Opnum.NetrShareEnum, request, NetrShareEnumResponse.decode)


def share_get_info(server_name: str | None, net_name: str, level: int = 1) -> Call[NetrShareGetInfoResponse]:
    """NetrShareGetInfo (MS-SRVS §3.1.4.10)."""
    request = NetrShareGetInfoRequest(server_name, net_name, level)
    return invoke(Opnum.NetrShareGetInfo, request, lambda s: NetrShareGetInfoResponse.decode(s, level))


def server_get_info(server_name: str | None, level: int = 101) -> Call[NetrServerGetInfoResponse]:
    """NetrServerGetInfo (MS-SRVS §3.1.4.17)."""
    request = NetrServerGetInfoRequest(server_name, level)
    return invoke(Opnum.NetrServerGetInfo, request, lambda s: NetrServerGetInfoResponse.decode(s, level))


def file_enum(
    server_name: str | None,
    level: int = 3,
    base_path: str | None = None,
    user_name: str | None = None,
    preferred_max_length: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> Call[NetrFileEnumResponse]:
    """NetrFileEnum (MS-SRVS §3.1.4.2)."""
    request = NetrFileEnumRequest(
        server_name, base_path, user_name, level, preferred_max_length, resume_handle
    )
    return invoke(Opnum.NetrFileEnum, request, NetrFileEnumResponse.decode)


def file_get_info(server_name: str | None, file_id: int, level: int = 3) -> Call[NetrFileGetInfoResponse]:
    """NetrFileGetInfo (MS-SRVS §3.1.4.3)."""
    request = NetrFileGetInfoRequest(server_name, file_id, level)
    return invoke(Opnum.NetrFileGetInfo, request, lambda s: NetrFileGetInfoResponse.decode(s, level))


def file_close(server_name: str | None, file_id: int) -> Call[NetrFileCloseResponse]:
    """NetrFileClose (MS-SRVS §3.1.4.4)."""
    request = NetrFileCloseRequest(server_name, file_id)
    return invoke(Opnum.NetrFileClose, request, NetrFileCloseResponse.decode)


def connection_enum(
    server_name: str | None,
    qualifier: str,
    level: int = 1,
    preferred_max_length: int = MAX_PREFERRED_LENGTH,
    resume_handle: int | None = 0,
) -> Call[NetrConnectionEnumResponse]:
    """NetrConnectionEnum (MS-SRVS §3.1.4.1): ``qualifier`` a share name or ``\\\\computer``."""
    request = NetrConnectionEnumRequest(server_name, qualifier, level, preferred_max_length, resume_handle)
    return invoke(Opnum.NetrConnectionEnum, request, NetrConnectionEnumResponse.decode)


__all__ = [
    "CLIENT_MAX_FRAG",
    "SRVSVC_SYNTAX",
    "Call",
    "Encodable",
    "RpcFaultError",
    "SrvsvcAssociation",
    "connection_enum",
    "fault_to_winerror",
    "file_close",
    "file_enum",
    "file_get_info",
    "invoke",
    "server_get_info",
    "session_del",
    "session_enum",
    "share_enum",
    "share_get_info",
]
