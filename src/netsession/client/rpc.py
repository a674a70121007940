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
from typing import TypeVar

from netsession.client import srvsvc as calls
from netsession.client.fragments import FragmentTracker
from netsession.client.srvsvc import (
    CLIENT_MAX_FRAG,
    SRVSVC_SYNTAX,
    Call,
    RpcFaultError,
    SrvsvcAssociation,
    fault_to_winerror,
)
from netsession.client.transport import PipeTransport
from netsession.records import MAX_PREFERRED_LENGTH
from netsession.wire.dcerpc import BindAccepted
from netsession.wire.srvsvc import (
    NetrConnectionEnumResponse,
    NetrFileCloseResponse,
    NetrFileEnumResponse,
    NetrFileGetInfoResponse,
    NetrServerGetInfoResponse,
    NetrSessionDelResponse,
    NetrSessionEnumResponse,
    NetrShareEnumResponse,
    NetrShareGetInfoResponse,
)

_T = TypeVar("_T")


class SrvsvcClient:
    """One srvsvc association (:class:`~netsession.client.srvsvc.SrvsvcAssociation`) over one blocking
    pipe. Not thread-safe: one call at a time.

    ``server_name`` is what goes in each call's ServerName argument (the server ignores it, MS-SRVS
    §2.2.1.1; Windows sends ``\\\\name``)."""

    def __init__(self, transport: PipeTransport, *, server_name: str | None = None) -> None:
        self.transport = transport
        self.server_name = server_name
        self._rpc = SrvsvcAssociation()

    def __repr__(self) -> str:
        return f"SrvsvcClient({self.transport!r}, state={self._rpc.state.value})"

    @property
    def bind_info(self) -> BindAccepted | None:
        return self._rpc.bind_info

    @property
    def usable(self) -> bool:
        """Bound, not broken, and the pipe still looks alive."""
        return self._rpc.bound and self.transport.alive()

    # -- the association ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the pipe and bind srvsvc (MS-RPCE §3.3.1.5.6). Raises NetApiError; the pipe is closed then."""
        self.transport.open()
        try:
            data = self.transport.transceive(self._rpc.bind())
            while not self._rpc.bind_received(data):
                data = self.transport.read()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._rpc.abandon()
        self.transport.close()

    def call(self, opnum: int, stub: bytes) -> bytes:
        """Run one call; returns the response stub or raises :class:`RpcFaultError` / NetApiError."""
        pdus = self._rpc.request(opnum, stub)
        try:
            exchange = getattr(self.transport, "exchange", None)
            if exchange is not None:
                # The whole exchange in one go on the transport's side (the SMB engine's loop): no
                # hand-off per READ of a long answer.
                return self._exchange(exchange, pdus)
            # A transport that can keep several READs in flight is told how many bytes are certainly due.
            read_ahead = getattr(self.transport, "read_ahead", None)
            tracker = FragmentTracker(self._rpc.max_recv_frag) if read_ahead is not None else None
            for pdu in pdus[:-1]:
                self.transport.write(pdu)
            data = self.transport.transceive(pdus[-1])
            while (answer := self._rpc.response_received(data)) is None:
                if tracker is not None and read_ahead is not None:
                    tracker.feed(data)
                    read_ahead(tracker.due())
                data = self.transport.read()
            return answer
        except RpcFaultError:
            raise  # a fault answers the call: the association goes on
        except BaseException:
            self.close()  # the pipe failed, the answer was broken, or the caller gave up: out of step
            raise

    def _exchange(self, exchange: Callable[..., None], pdus: list[bytes]) -> bytes:
        answer: list[bytes] = []

        def feed(data: bytes) -> bool:
            stub = self._rpc.response_received(data)
            if stub is None:
                return False
            answer.append(stub)
            return True

        exchange(pdus, feed, self._rpc.max_recv_frag)
        return answer[0]

    def run(self, call: Call[_T]) -> _T:
        """Run a prepared :class:`~netsession.client.srvsvc.Call`; its decoded response."""
        return call.result(self.call(call.opnum, call.stub))

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
        return self.run(
            calls.session_enum(
                self.server_name, level, client_name, user_name, preferred_max_length, resume_handle
            )
        )

    def session_del(self, client_name: str | None, user_name: str | None) -> NetrSessionDelResponse:
        """NetrSessionDel (MS-SRVS §3.1.4.6)."""
        return self.run(calls.session_del(self.server_name, client_name, user_name))

    def share_enum(
        self, level: int = 1, preferred_max_length: int = MAX_PREFERRED_LENGTH, resume_handle: int | None = 0
    ) -> NetrShareEnumResponse:
        """NetrShareEnum (MS-SRVS §3.1.4.8)."""
        return self.run(calls.share_enum(self.server_name, level, preferred_max_length, resume_handle))

    def share_get_info(self, net_name: str, level: int = 1) -> NetrShareGetInfoResponse:
        """NetrShareGetInfo (MS-SRVS §3.1.4.10)."""
        return self.run(calls.share_get_info(self.server_name, net_name, level))

    def server_get_info(self, level: int = 101) -> NetrServerGetInfoResponse:
        """NetrServerGetInfo (MS-SRVS §3.1.4.17)."""
        return self.run(calls.server_get_info(self.server_name, level))

    def file_enum(
        self,
        level: int = 3,
        base_path: str | None = None,
        user_name: str | None = None,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrFileEnumResponse:
        """NetrFileEnum (MS-SRVS §3.1.4.2)."""
        return self.run(
            calls.file_enum(
                self.server_name, level, base_path, user_name, preferred_max_length, resume_handle
            )
        )

    def file_get_info(self, file_id: int, level: int = 3) -> NetrFileGetInfoResponse:
        """NetrFileGetInfo (MS-SRVS §3.1.4.3)."""
        return self.run(calls.file_get_info(self.server_name, file_id, level))

    def file_close(self, file_id: int) -> NetrFileCloseResponse:
        """NetrFileClose (MS-SRVS §3.1.4.4)."""
        return self.run(calls.file_close(self.server_name, file_id))

    def connection_enum(
        self,
        qualifier: str,
        level: int = 1,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrConnectionEnumResponse:
        """NetrConnectionEnum (MS-SRVS §3.1.4.1): ``qualifier`` a share name or ``\\\\computer``."""
        return self.run(
            calls.connection_enum(self.server_name, qualifier, level, preferred_max_length, resume_handle)
        )


__all__ = ["CLIENT_MAX_FRAG", "SRVSVC_SYNTAX", "RpcFaultError", "SrvsvcClient", "fault_to_winerror"]
