"""srvsvc calls over a :class:`~netsession.client.transport.PipeTransport`.

:class:`SrvsvcClient` binds the srvsvc interface (MS-SRVS §2.1: UUID 4b324fc8-1670-01d3-1278-5a47bf6ee188
v3.0, NDR 2.0) with our sans-I/O :class:`~netsession.wire.dcerpc.ClientAssociation` and runs one call at a
time: the request's fragments go out (the last one by transceive), the answer's fragments come back until
the association reports the whole response or a fault.

It returns the decoded response message, NET_API_STATUS included; deciding what a status means is the
caller's job. What goes wrong below the stub raises a :class:`~netsession.errors.NetApiError` with the
number Windows' RPC runtime gives the same trouble: a fault's status (access denied is 5, as a hardened
Windows sends it), nca_s_op_rng_error -> RPC_S_PROCNUM_OUT_OF_RANGE, nca_s_unknown_if -> RPC_S_UNKNOWN_IF,
a broken PDU -> RPC_S_PROTOCOL_ERROR, a stub that does not decode -> RPC_X_BAD_STUB_DATA.

>>> from netsession.client.transport import UnixSocketTransport
>>> client = SrvsvcClient(UnixSocketTransport("/run/netsession/srvsvc.sock"))  # doctest: +SKIP
>>> client.connect()                                                             # doctest: +SKIP
>>> client.session_enum(10).entries                                              # doctest: +SKIP
[SESSION_INFO_10(sesi10_cname='\\\\10.0.0.5', sesi10_username='alice', sesi10_time=42, sesi10_idle_time=3)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from netsession.client.fragments import FragmentTracker
from netsession.client.transport import PipeTransport, TransportError
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


class RpcFaultError(NetApiError):
    """The server answered the call with a fault PDU; ``fault_status`` is the status it carried."""

    def __init__(self, fault_status: int) -> None:
        winerror = fault_to_winerror(fault_status)
        super().__init__(winerror)
        self.fault_status = fault_status


def fault_to_winerror(status: int) -> int:
    """The Win32 error a fault status stands for (see the module docstring)."""
    return _FAULT_ERRORS.get(status, status)


class SrvsvcClient:
    """One srvsvc association over one pipe. Not thread-safe: one call at a time (MS-RPCE §3.3.1.5.8 —
    without PFC_CONC_MPX, call N+1 waits for the answer to call N).

    ``server_name`` is what goes in each call's ServerName argument (the server ignores it, MS-SRVS
    §2.2.1.1; Windows sends ``\\\\name``)."""

    def __init__(self, transport: PipeTransport, *, server_name: str | None = None) -> None:
        self.transport = transport
        self.server_name = server_name
        self._assoc = ClientAssociation(max_xmit_frag=CLIENT_MAX_FRAG, max_recv_frag=CLIENT_MAX_FRAG)
        self._broken = False
        self.bind_info: BindAccepted | None = None

    def __repr__(self) -> str:
        return f"SrvsvcClient({self.transport!r}, state={self._assoc.state.value})"

    @property
    def usable(self) -> bool:
        """Bound, not broken, and the pipe still looks alive."""
        return (
            not self._broken
            and self._assoc.state is AssociationState.BOUND
            and self.transport.alive()
        )

    # -- the association ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the pipe and bind srvsvc (MS-RPCE §3.3.1.5.6). Raises NetApiError; the pipe is closed then."""
        self.transport.open()
        try:
            self._assoc.bind(SRVSVC_SYNTAX, (NDR20,))
            (bind,) = self._assoc.data_to_send()
            data = self.transport.transceive(bind)
            while True:
                for event in self._receive(data):
                    if isinstance(event, BindAccepted):
                        self.bind_info = event
                        return
                    if isinstance(event, BindRejected):
                        raise _bind_rejection(event)
                    if isinstance(event, FaultReceived):
                        raise RpcFaultError(event.status)
                data = self.transport.read()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._broken = True
        self.transport.close()

    def _receive(self, data: bytes) -> list[object]:
        try:
            return list(self._assoc.receive_data(data))
        except RemoteProtocolError as exc:
            self.close()
            raise NetApiError(
                RPC_S_PROTOCOL_ERROR, "", f"{status_message(RPC_S_PROTOCOL_ERROR)} ({exc})"
            ) from None

    def call(self, opnum: int, stub: bytes) -> bytes:
        """Run one call; returns the response stub or raises :class:`RpcFaultError` / NetApiError."""
        if self._broken or self._assoc.state is not AssociationState.BOUND:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, "the srvsvc association is closed")
        call_id = self._assoc.request(opnum, stub)
        pdus = self._assoc.data_to_send()
        exchange = getattr(self.transport, "exchange", None)
        if exchange is not None:
            # The whole exchange in one go on the transport's side (the SMB engine's loop): no hand-off
            # per READ of a long answer.
            return self._exchange(exchange, call_id, pdus)
        # A transport that can keep several READs in flight is told how many bytes are certainly due.
        read_ahead = getattr(self.transport, "read_ahead", None)
        tracker = FragmentTracker(self._assoc.max_recv_frag) if read_ahead is not None else None
        try:
            for pdu in pdus[:-1]:
                self.transport.write(pdu)
            data = self.transport.transceive(pdus[-1])
            while True:
                for event in self._receive(data):
                    if isinstance(event, ResponseReceived) and event.call_id == call_id:
                        return event.stub
                    if isinstance(event, FaultReceived) and event.call_id == call_id:
                        raise RpcFaultError(event.status)
                    # ShutdownReceived (C706 §12.6.4.11) needs nothing now: the pipe closes with us.
                if tracker is not None and read_ahead is not None:
                    tracker.feed(data)
                    read_ahead(tracker.due())
                data = self.transport.read()
        except TransportError:
            self.close()
            raise

    def _exchange(self, exchange: Callable[..., None], call_id: int, pdus: list[bytes]) -> bytes:
        answer: list[bytes] = []

        def feed(data: bytes) -> bool:
            for event in self._receive(data):
                if isinstance(event, ResponseReceived) and event.call_id == call_id:
                    answer.append(event.stub)
                    return True
                if isinstance(event, FaultReceived) and event.call_id == call_id:
                    raise RpcFaultError(event.status)
            return False

        try:
            exchange(pdus, feed, self._assoc.max_recv_frag)
        except TransportError:
            self.close()
            raise
        return answer[0]

    # -- the operations ----------------------------------------------------------------------------

    def session_enum(
        self,
        level: int,
        client_name: str | None = None,
        user_name: str | None = None,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrSessionEnumResponse:
        """NetrSessionEnum (MS-SRVS §3.1.4.5)."""
        request = NetrSessionEnumRequest(
            self.server_name, client_name, user_name, level, preferred_max_length, resume_handle
        )
        stub = self.call(Opnum.NetrSessionEnum, request.encode())
        response = _decode(NetrSessionEnumResponse.decode, stub)
        if response.entries and response.level != level:
            raise NetApiError(
                RPC_X_BAD_STUB_DATA, "", f"asked for level {level}, the server answered {response.level}"
            )
        return response

    def session_del(self, client_name: str | None, user_name: str | None) -> NetrSessionDelResponse:
        """NetrSessionDel (MS-SRVS §3.1.4.6)."""
        request = NetrSessionDelRequest(self.server_name, client_name, user_name)
        return _decode(NetrSessionDelResponse.decode, self.call(Opnum.NetrSessionDel, request.encode()))

    def share_enum(
        self, level: int = 1, preferred_max_length: int = MAX_PREFERRED_LENGTH, resume_handle: int | None = 0
    ) -> NetrShareEnumResponse:
        """NetrShareEnum (MS-SRVS §3.1.4.8)."""
        request = NetrShareEnumRequest(self.server_name, level, preferred_max_length, resume_handle)
        return _decode(NetrShareEnumResponse.decode, self.call(Opnum.NetrShareEnum, request.encode()))

    def share_get_info(self, net_name: str, level: int = 1) -> NetrShareGetInfoResponse:
        """NetrShareGetInfo (MS-SRVS §3.1.4.10)."""
        request = NetrShareGetInfoRequest(self.server_name, net_name, level)
        stub = self.call(Opnum.NetrShareGetInfo, request.encode())
        return _decode(lambda s: NetrShareGetInfoResponse.decode(s, level), stub)

    def server_get_info(self, level: int = 101) -> NetrServerGetInfoResponse:
        """NetrServerGetInfo (MS-SRVS §3.1.4.17)."""
        request = NetrServerGetInfoRequest(self.server_name, level)
        stub = self.call(Opnum.NetrServerGetInfo, request.encode())
        return _decode(lambda s: NetrServerGetInfoResponse.decode(s, level), stub)

    def file_enum(
        self,
        level: int = 3,
        base_path: str | None = None,
        user_name: str | None = None,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrFileEnumResponse:
        """NetrFileEnum (MS-SRVS §3.1.4.2)."""
        request = NetrFileEnumRequest(
            self.server_name, base_path, user_name, level, preferred_max_length, resume_handle
        )
        return _decode(NetrFileEnumResponse.decode, self.call(Opnum.NetrFileEnum, request.encode()))

    def file_get_info(self, file_id: int, level: int = 3) -> NetrFileGetInfoResponse:
        """NetrFileGetInfo (MS-SRVS §3.1.4.3)."""
        request = NetrFileGetInfoRequest(self.server_name, file_id, level)
        stub = self.call(Opnum.NetrFileGetInfo, request.encode())
        return _decode(lambda s: NetrFileGetInfoResponse.decode(s, level), stub)

    def file_close(self, file_id: int) -> NetrFileCloseResponse:
        """NetrFileClose (MS-SRVS §3.1.4.4)."""
        request = NetrFileCloseRequest(self.server_name, file_id)
        return _decode(NetrFileCloseResponse.decode, self.call(Opnum.NetrFileClose, request.encode()))

    def connection_enum(
        self,
        qualifier: str,
        level: int = 1,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrConnectionEnumResponse:
        """NetrConnectionEnum (MS-SRVS §3.1.4.1): ``qualifier`` a share name or ``\\\\computer``."""
        request = NetrConnectionEnumRequest(
            self.server_name, qualifier, level, preferred_max_length, resume_handle
        )
        stub = self.call(Opnum.NetrConnectionEnum, request.encode())
        return _decode(NetrConnectionEnumResponse.decode, stub)


_T = TypeVar("_T")


def _decode(decoder: Callable[[bytes], _T], stub: bytes) -> _T:
    try:
        return decoder(stub)
    except NdrError as exc:
        raise NetApiError(RPC_X_BAD_STUB_DATA, "", f"{status_message(RPC_X_BAD_STUB_DATA)} ({exc})") from None


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
