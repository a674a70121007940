"""Named pipes whose far end is a DCE/RPC server association: ``\\PIPE\\srvsvc``.

The layers nest the way wsproto nests h11: an SMB open of the pipe (:class:`RpcPipe`) feeds what the
client writes to a :class:`~netsession.wire.dcerpc.ServerAssociation`, hands each reassembled request to
the :class:`~netsession.server.srvsvc.SrvsvcService` with the caller of the SMB session, and keeps the
response PDUs as the pipe's messages, which reads and transceives take (MS-SMB2 §3.3.5.15.6: a message
longer than the read is returned in parts, with STATUS_BUFFER_OVERFLOW until its end).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from netsession.server.srvsvc import CallContext, SrvsvcService
from netsession.wire.dcerpc import (
    CallRejected,
    DceRpcError,
    Interface,
    RequestReceived,
    ServerAssociation,
    SyntaxId,
)
from netsession.wire.smb2.state import PipeBusy
from netsession.wire.srvsvc import SRVSVC_UUID, SRVSVC_VERSION

log = logging.getLogger("netsession.server")

SRVSVC_SYNTAX: Final = SyntaxId.parse(SRVSVC_UUID, *SRVSVC_VERSION)
# The largest fragment we offer to receive and send (the bind settles on the smaller of this and the
# client's offer, C706 §12.6.3.1): Windows and Samba clients offer 4280 and get it; a client offering
# more gets a 10,000-session answer in a few dozen fragments instead of hundreds of round trips.
MAX_FRAG: Final = 0xFFF8
MAX_UNREAD: Final = 32 << 20


class RpcEndpoint:
    """One DCE/RPC association serving srvsvc for one caller: PDUs in, PDUs out (sans-I/O)."""

    def __init__(self, service: SrvsvcService, context: CallContext) -> None:
        self.service = service
        self.context = context
        self.association = ServerAssociation(
            [Interface(SRVSVC_SYNTAX, service.opnums)], max_recv_frag=MAX_FRAG
        )
        self.broken = False

    def receive(self, data: bytes) -> list[bytes]:
        """Feed client bytes; returns the PDUs to send back. After a protocol error the association has
        queued its fault or bind_nak (returned here) and :attr:`broken` is set."""
        try:
            events = self.association.receive_data(data)
        except DceRpcError as exc:
            log.info("DCE/RPC protocol error from %s: %s", self.context.client_address, exc)
            self.broken = True
            events = []
        for event in events:
            if isinstance(event, RequestReceived):
                reply = self.service.call(self.context, event.opnum, event.stub)
                if reply.fault is not None:
                    self.association.fault(event.call_id, reply.fault)
                else:
                    self.association.respond(event.call_id, reply.stub)
            elif isinstance(event, CallRejected):
                self.service.rejected(self.context, event.opnum, event.status)
        return self.association.data_to_send()


class Budget(Protocol):
    """Unread bytes shared by several pipes (one account's, see NetsessionServer.open_pipe)."""

    limit: int
    used: int


class RpcPipe:
    """An SMB open of the srvsvc pipe, in message mode (the :class:`~netsession.wire.smb2.state.Pipe`
    the SMB layer drives). ``on_close`` runs once, when the open is closed.

    A client that writes call after call without reading would make the replies pile up: past
    ``max_unread`` bytes of unread output a write is refused (:class:`PipeBusy`). The default holds two of
    the largest answers (100,000 sessions at level 502 take 17 MB)."""

    def __init__(
        self,
        endpoint: RpcEndpoint,
        on_close: Callable[[], None],
        *,
        max_unread: int = MAX_UNREAD,
        budget: Budget | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._messages: deque[memoryview] = deque()
        self._unread = 0
        self._max_unread = max_unread
        self._budget = budget
        self._on_close: Callable[[], None] | None = on_close

    def write(self, data: bytes) -> None:
        if self._unread > self._max_unread:
            raise PipeBusy(f"{self._unread} bytes unread")
        if self._budget is not None and self._budget.used > self._budget.limit:
            raise PipeBusy(f"{self._budget.used} bytes unread on all of this account's pipes")
        for pdu in self._endpoint.receive(data):
            self._messages.append(memoryview(pdu))
            self._unread += len(pdu)
            if self._budget is not None:
                self._budget.used += len(pdu)

    def read(self, max_length: int) -> tuple[bytes, int]:
        """Up to ``max_length`` bytes of the first pending message and how much of it is left. Replies
        already queued stay readable after close (the caller may have ended its own session)."""
        if not self._messages:
            return b"", 0
        message = self._messages[0]
        chunk, rest = message[:max_length], message[max_length:]
        if len(rest):
            self._messages[0] = rest
        else:
            self._messages.popleft()
        self._unread -= len(chunk)
        if self._budget is not None:
            self._budget.used -= len(chunk)
        return bytes(chunk), len(rest)

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            # What was never read stops counting against the account (it stays readable, see read()).
            if self._budget is not None:
                self._budget.used -= self._unread
                self._budget = None
            on_close()
