"""Sans-I/O state machines for one connection-oriented DCE/RPC association, server and client.

Shaped like h2: ``receive_data(bytes) -> list[event]`` buffers and parses, action methods queue
PDUs, ``data_to_send() -> list[bytes]`` drains them one whole PDU per item (so a message-mode
named pipe keeps PDU boundaries). Nothing here does I/O, keeps time or draws random numbers.

A server association, from the bind to one response::

    >>> from netsession.wire.dcerpc import *
    >>> SRVSVC = SyntaxId.parse("4b324fc8-1670-01d3-1278-5a47bf6ee188", 3, 0)
    >>> server = ServerAssociation([Interface(SRVSVC, range(54))], assoc_group_id=0x1234)
    >>> client = ClientAssociation()
    >>> client.bind(SRVSVC)
    >>> [type(e).__name__ for e in server.receive_data(b"".join(client.data_to_send()))]
    ['Bound']
    >>> [type(e).__name__ for e in client.receive_data(b"".join(server.data_to_send()))]
    ['BindAccepted']
    >>> call_id = client.request(12, b"stub in")
    >>> request, = server.receive_data(b"".join(client.data_to_send()))
    >>> (request.opnum, request.stub)
    (12, b'stub in')
    >>> server.respond(request.call_id, b"stub out")
    >>> client.receive_data(b"".join(server.data_to_send()))
    [ResponseReceived(call_id=2, stub=b'stub out')]

Errors: `LocalProtocolError` when the caller misuses the API, `RemoteProtocolError` when the
peer breaks the protocol. The server raises the latter only after queueing the fault or bind_nak
the spec asks for, so the driver sends ``data_to_send()`` and then closes the pipe.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, NoReturn

from netsession.wire.dcerpc.pdu import (
    COMMON_HEADER_LENGTH,
    FORBIDDEN_FAULT_STATUSES,
    MAX_FRAG_LENGTH,
    MUST_RECV_FRAG_SIZE,
    NDR20,
    NULL_SYNTAX,
    AlterContext,
    AlterContextResp,
    Bind,
    BindAck,
    BindNak,
    BindTimeFeatures,
    ContextElement,
    ContextResult,
    ContResult,
    DceRpcError,
    DecodeError,
    Fault,
    FaultStatus,
    Header,
    LocalProtocolError,
    Orphaned,
    PfcFlags,
    ProviderReason,
    PType,
    RejectReason,
    RemoteProtocolError,
    Request,
    Response,
    Shutdown,
    SyntaxId,
    bind_time_feature_syntax,
    bind_time_features_offered,
    check_header,
    decode_pdu,
    encode_request_fragments,
    encode_response_fragments,
    read_header,
)

DEFAULT_MAX_FRAG: Final = 4280  # what Windows and impacket offer over named pipes
DEFAULT_MAX_REQUEST_STUB: Final = 1 << 20
DEFAULT_MAX_RESPONSE_STUB: Final = 256 << 20
# MS-RPCE §3.3.3.5.5: at most 4000 presentation contexts per registered interface.
CONTEXTS_PER_INTERFACE: Final = 4000
# MS-RPCE §3.3.3.5.6: stray fragments of a call this much older than the current one are ignored.
OLD_CALL_WINDOW: Final = 150
# Bind time features we honestly implement (MS-RPCE §3.3.1.5.3): an orphaned PDU discards its
# call and the association carries on (§3.3.1.5.10). No security contexts, so no multiplexing.
SUPPORTED_BIND_TIME_FEATURES: Final = BindTimeFeatures.KEEP_CONNECTION_ON_ORPHAN
FIRST_CLIENT_CALL_ID: Final = 1

_assoc_group_ids = itertools.count(0x00010000)


class AssociationState(Enum):
    AWAIT_BIND = "await bind"  # server: nothing received yet
    IDLE = "idle"  # client: bind not sent yet
    AWAIT_BIND_ACK = "await bind_ack"
    BOUND = "bound"
    REJECTED = "rejected"  # client: bind_nak, fault, or no context accepted
    CLOSED = "closed"  # a protocol error ended the association


# --------------------------------------------------------------------------------------------
# Interfaces and events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    """An interface a server association serves: its syntax and its valid opnums.

    A proposal matches if the UUID and major version are equal and its minor version is not
    above ours (the C706 rule for compatible interface versions).
    """

    syntax: SyntaxId
    opnums: Collection[int]

    def matches(self, proposed: SyntaxId) -> bool:
        return (
            proposed.uuid == self.syntax.uuid
            and proposed.major == self.syntax.major
            and proposed.minor <= self.syntax.minor
        )


@dataclass(frozen=True, slots=True)
class PresentationContext:
    """A negotiated presentation context: id, the served interface, the transfer syntax."""

    context_id: int
    interface: SyntaxId
    transfer_syntax: SyntaxId


@dataclass(frozen=True, slots=True)
class Bound:
    """Server: a bind was accepted (bind_ack queued); ``contexts`` are the ones accepted."""

    assoc_group_id: int
    max_xmit_frag: int
    max_recv_frag: int
    contexts: tuple[PresentationContext, ...]
    bind_time_features: BindTimeFeatures | None


@dataclass(frozen=True, slots=True)
class ContextsAltered:
    """Server: an alter_context was answered (alter_context_resp queued)."""

    contexts: tuple[PresentationContext, ...]


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """Server: a whole (reassembled) request. Answer it with respond() or fault()."""

    call_id: int
    context_id: int
    opnum: int
    interface: SyntaxId
    stub: bytes
    object_uuid: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CallRejected:
    """Server: a request the association answered with a fault itself, without dispatching it (an
    opnum outside the interface, an unknown presentation context): for the server's audit trail."""

    call_id: int
    context_id: int
    opnum: int
    status: int


@dataclass(frozen=True, slots=True)
class CallOrphaned:
    """Server: the client abandoned a dispatched call; its respond()/fault() will be dropped."""

    call_id: int


@dataclass(frozen=True, slots=True)
class BindAccepted:
    """Client: the server accepted the bind."""

    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    context_id: int
    transfer_syntax: SyntaxId
    bind_time_features: BindTimeFeatures | None
    secondary_address: str


@dataclass(frozen=True, slots=True)
class BindRejected:
    """Client: a bind_nak (``reject_reason`` set) or a bind_ack accepting no context."""

    reject_reason: int | None
    results: tuple[ContextResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """Client: the whole (reassembled) response stub of a call."""

    call_id: int
    stub: bytes


@dataclass(frozen=True, slots=True)
class FaultReceived:
    """Client: the server answered a call (or the bind) with a fault."""

    call_id: int
    status: int
    did_not_execute: bool = False


@dataclass(frozen=True, slots=True)
class ShutdownReceived:
    """Client: the server asked to close the connection when idle (C706 §12.6.4.11)."""


Event = (
    Bound
    | ContextsAltered
    | RequestReceived
    | CallRejected
    | CallOrphaned
    | BindAccepted
    | BindRejected
    | ResponseReceived
    | FaultReceived
    | ShutdownReceived
)


# --------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------


class _PduReader:
    """Cuts a byte stream into PDUs by frag_length; consumed bytes are dropped once per feed."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_pdu(self) -> tuple[Header, bytes] | None:
        available = len(self._buffer) - self._position
        if available < COMMON_HEADER_LENGTH:
            return None
        header = read_header(self._buffer, self._position)
        # A frag_length below the header size cannot be framed: hand out the header alone,
        # check_header() rejects it and the association ends.
        length = max(header.frag_length, COMMON_HEADER_LENGTH)
        if available < length:
            return None
        with memoryview(self._buffer) as view:
            raw = view[self._position : self._position + length].tobytes()
        self._position += length
        return header, raw

    def compact(self) -> None:
        del self._buffer[: self._position]
        self._position = 0

    def clear(self) -> None:
        self._buffer.clear()
        self._position = 0


class _Fatal(Exception):
    """Internal: the association is over (any reply is already queued)."""


def _check_frag_size(value: int, what: str) -> int:
    if not MUST_RECV_FRAG_SIZE <= value <= MAX_FRAG_LENGTH:
        raise LocalProtocolError(f"{what} {value} outside {MUST_RECV_FRAG_SIZE}..{MAX_FRAG_LENGTH}")
    return value


class _Association:
    """What both ends share: buffering, the outgoing queue, the fatal-error path, the fragment sizes."""

    _max_xmit_frag: int
    _max_recv_frag: int

    def __init__(self, state: AssociationState) -> None:
        self._state = state
        self._reader = _PduReader()
        self._outgoing: list[bytes] = []

    @property
    def state(self) -> AssociationState:
        return self._state

    @property
    def max_xmit_frag(self) -> int:
        """Largest fragment we send (negotiated at bind)."""
        return self._max_xmit_frag

    @property
    def max_recv_frag(self) -> int:
        """Largest fragment we accept (negotiated at bind)."""
        return self._max_recv_frag

    def data_to_send(self) -> list[bytes]:
        """Drain the queued PDUs, one whole PDU per item."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns the events they complete.

        PDUs may arrive split across calls or several in one call.
        """
        if self._state is AssociationState.CLOSED:
            raise LocalProtocolError("the association is closed")
        self._reader.feed(data)
        events: list[Event] = []
        try:
            while (item := self._reader.next_pdu()) is not None:
                self._handle(item[0], item[1], events)
        except _Fatal as exc:
            self._state = AssociationState.CLOSED
            self._reader.clear()
            error = RemoteProtocolError(str(exc))
            error.events = tuple(events)
            raise error from None
        finally:
            self._reader.compact()
        return events

    def _handle(self, header: Header, raw: bytes, events: list[Event]) -> None:
        raise NotImplementedError

    def _queue(self, pdu: Fault | BindNak | BindAck | AlterContextResp) -> None:
        self._outgoing.append(pdu.encode())


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass
class _IncomingCall:
    call_id: int
    context_id: int
    opnum: int
    interface: Interface
    object_uuid: uuid.UUID | None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class _NegotiationError(Exception):
    def __init__(self, reason: RejectReason, what: str) -> None:
        super().__init__(what)
        self.reason = reason


class ServerAssociation(_Association):
    """The server side of one association (one per pipe open).

    ``interfaces``: what this endpoint serves. ``max_recv_frag``: the largest fragment we
    accept, offered in the bind_ack (the negotiated size is the smaller of it and the client's,
    MS-RPCE/C706 minimum 1432). ``max_request_stub``: the largest reassembled request stub
    (MS-RPCE §3.3.3.5.4; a bigger one is answered with fault 5). ``assoc_group_id``: assigned to
    a client that asks for a new association group (a counter by default).
    """

    def __init__(
        self,
        interfaces: Iterable[Interface],
        *,
        max_recv_frag: int = DEFAULT_MAX_FRAG,
        max_request_stub: int = DEFAULT_MAX_REQUEST_STUB,
        assoc_group_id: int | None = None,
        secondary_address: str = "",
        max_contexts: int | None = None,
    ) -> None:
        super().__init__(AssociationState.AWAIT_BIND)
        self._interfaces = tuple(interfaces)
        self._offered_max_recv_frag = _check_frag_size(max_recv_frag, "max_recv_frag")
        if max_request_stub < 0:
            raise LocalProtocolError("max_request_stub must not be negative")
        self._max_request_stub = max_request_stub
        if not secondary_address.isascii():
            raise LocalProtocolError("secondary_address must be ASCII")
        self._secondary_address = secondary_address
        self._max_contexts = (
            CONTEXTS_PER_INTERFACE * len(self._interfaces) if max_contexts is None else max_contexts
        )
        self._assoc_group_id = next(_assoc_group_ids) if assoc_group_id is None else assoc_group_id
        self._max_xmit_frag = self._max_recv_frag = self._offered_max_recv_frag
        self._bind_time_features: BindTimeFeatures | None = None
        self._contexts: dict[int, Interface] = {}
        self._incoming: _IncomingCall | None = None
        self._dispatched: dict[int, int] = {}  # call_id -> context_id, awaiting respond()/fault()
        self._orphaned: set[int] = set()
        self._current_call_id = 0  # MS-RPCE §3.3.3.1.1 "Current call_id"

    # -- properties ------------------------------------------------------------------------

    @property
    def assoc_group_id(self) -> int:
        return self._assoc_group_id

    @property
    def bind_time_features(self) -> BindTimeFeatures | None:
        """The features acknowledged at bind, or None if the client did not negotiate."""
        return self._bind_time_features

    @property
    def contexts(self) -> dict[int, PresentationContext]:
        return {cid: PresentationContext(cid, i.syntax, NDR20) for cid, i in self._contexts.items()}

    # -- actions ---------------------------------------------------------------------------

    def respond(self, call_id: int, stub: bytes) -> None:
        """Queue the response to a dispatched call, fragmented by the negotiated max_xmit_frag."""
        context_id = self._take_dispatched(call_id)
        if context_id is not None:
            self._outgoing.extend(encode_response_fragments(call_id, context_id, stub, self._max_xmit_frag))

    def fault(self, call_id: int, status: int, *, did_not_execute: bool = False) -> None:
        """Answer a dispatched call with a fault PDU (MS-RPCE §3.3.3.4.1)."""
        if not 0 <= status <= 0xFFFFFFFF or status in FORBIDDEN_FAULT_STATUSES:
            raise LocalProtocolError(f"status {status:#x} must not be sent in a fault (MS-RPCE 3.3.3.5.1)")
        context_id = self._take_dispatched(call_id)
        if context_id is not None:
            flags = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG
            if did_not_execute:
                flags |= PfcFlags.DID_NOT_EXECUTE
            self._queue(Fault(call_id, status, context_id, flags))

    def _take_dispatched(self, call_id: int) -> int | None:
        if self._state is AssociationState.CLOSED:
            raise LocalProtocolError("the association is closed")
        if call_id in self._orphaned:  # the client gave up on it: nothing to send
            self._orphaned.discard(call_id)
            return None
        context_id = self._dispatched.pop(call_id, None)
        if context_id is None:
            raise LocalProtocolError(f"no call {call_id} awaits an answer")
        return context_id

    # -- failure helpers -------------------------------------------------------------------

    def _nak(self, call_id: int, reason: RejectReason, what: str) -> NoReturn:
        self._queue(BindNak(call_id, reason))
        raise _Fatal(f"bind_nak {reason.name}: {what}")

    def _fatal_fault(
        self,
        call_id: int,
        status: FaultStatus,
        what: str,
        *,
        context_id: int = 0,
        did_not_execute: bool = True,
    ) -> NoReturn:
        self._queue_fault(call_id, status, context_id, did_not_execute)
        raise _Fatal(f"fault {status.name}: {what}")

    def _queue_fault(self, call_id: int, status: FaultStatus, context_id: int, did_not_execute: bool) -> None:
        flags = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG
        if did_not_execute:
            flags |= PfcFlags.DID_NOT_EXECUTE
        self._queue(Fault(call_id, status, context_id, flags))

    # -- dispatch --------------------------------------------------------------------------

    def _handle(self, header: Header, raw: bytes, events: list[Event]) -> None:
        if self._state is AssociationState.AWAIT_BIND:
            self._on_first_pdu(header, raw, events)
            return
        try:
            check_header(header)  # MS-RPCE §3.3.1.5.1 and note <97>: answered as §3.3.3.5.7 says
        except DecodeError as exc:
            self._fatal_fault(header.call_id, FaultStatus.NCA_S_PROTO_ERROR, str(exc))
        ptype = header.ptype
        if ptype == PType.REQUEST:
            if header.frag_length > self._max_recv_frag:
                self._fatal_fault(
                    header.call_id,
                    FaultStatus.NCA_S_PROTO_ERROR,
                    f"fragment of {header.frag_length} octets exceeds max_recv_frag {self._max_recv_frag}",
                    did_not_execute=False,
                )
            request = self._decode(raw, header)
            assert isinstance(request, Request)
            self._on_request(request, events)
        elif ptype == PType.ALTER_CONTEXT:
            alter = self._decode(raw, header)
            assert isinstance(alter, AlterContext)
            self._on_alter_context(alter, events)
        elif ptype == PType.BIND:
            # Only one bind per association; Windows answers a second one with bind_nak and
            # disconnects.
            self._nak(header.call_id, RejectReason.REASON_NOT_SPECIFIED, "second bind on a bound association")
        elif ptype == PType.ORPHANED:
            orphaned = self._decode(raw, header)
            assert isinstance(orphaned, Orphaned)
            self._on_orphaned(orphaned.call_id, events)
        elif ptype == PType.CO_CANCEL:
            self._decode(raw, header)
            # Cancels are ignored, as Windows does by default: the call runs to completion.
        elif ptype == PType.AUTH3:
            # No security context is ever being built here (authenticated binds are refused).
            self._fatal_fault(
                header.call_id, FaultStatus.NCA_S_PROTO_ERROR, "auth3 without a security context"
            )
        else:
            self._fatal_fault(
                header.call_id, FaultStatus.NCA_S_PROTO_ERROR, f"PTYPE {ptype} is not for a server"
            )

    def _decode(self, raw: bytes, header: Header) -> object:
        try:
            return decode_pdu(raw)
        except DecodeError as exc:
            self._fatal_fault(header.call_id, FaultStatus.NCA_S_PROTO_ERROR, str(exc))

    # -- bind ------------------------------------------------------------------------------

    def _on_first_pdu(self, header: Header, raw: bytes, events: list[Event]) -> None:
        # The first PDU must be a bind; anything else, or a bind we cannot read (version, data
        # representation, layout), is refused with bind_nak protocol_version_not_supported
        # (MS-RPCE §2.2.2.5 "protocol error while processing an rpc_bind").
        try:
            check_header(header)
            if header.ptype != PType.BIND:
                raise DecodeError(f"PTYPE {header.ptype} before bind", 2)
            bind = decode_pdu(raw)
        except DecodeError as exc:
            self._nak(header.call_id, RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED, str(exc))
        assert isinstance(bind, Bind)
        if bind.auth is not None:
            # MS-RPCE §3.3.3.5.3: no security provider is implemented here.
            self._nak(
                bind.call_id,
                RejectReason.AUTHENTICATION_TYPE_NOT_RECOGNIZED,
                f"auth_type {bind.auth.auth_type} not implemented",
            )
        if not bind.contexts:
            self._nak(bind.call_id, RejectReason.REASON_NOT_SPECIFIED, "bind without presentation contexts")
        try:
            results, accepted, features = self._negotiate(bind.contexts, at_bind=True)
        except _NegotiationError as exc:
            self._nak(bind.call_id, exc.reason, str(exc))

        # Fragment sizes: one value for both directions, as Windows does; never below the
        # MustRecvFragSize every implementation must accept, a multiple of 8.
        size = min(bind.max_xmit_frag, bind.max_recv_frag, self._offered_max_recv_frag)
        size = max(size, MUST_RECV_FRAG_SIZE)
        size -= size % 8
        self._max_xmit_frag = self._max_recv_frag = size
        # MS-RPCE §3.3.1.5.7: a non-zero assoc_group_id joins that group; 0 asks for a new one.
        if bind.assoc_group_id:
            self._assoc_group_id = bind.assoc_group_id
        self._bind_time_features = features
        self._commit(accepted)
        self._queue(BindAck(bind.call_id, results, size, size, self._assoc_group_id, self._secondary_address))
        self._state = AssociationState.BOUND
        events.append(Bound(self._assoc_group_id, size, size, self._describe(accepted), features))

    def _on_alter_context(self, alter: AlterContext, events: list[Event]) -> None:
        if alter.auth is not None:
            # Building a security context on an unauthenticated association: refused.
            self._fatal_fault(alter.call_id, FaultStatus.RPC_S_ACCESS_DENIED, "alter_context with auth")
        if not alter.contexts:
            self._fatal_fault(alter.call_id, FaultStatus.NCA_S_PROTO_ERROR, "alter_context without contexts")
        try:
            results, accepted, _ = self._negotiate(alter.contexts, at_bind=False)
        except _NegotiationError as exc:
            if exc.reason is RejectReason.LOCAL_LIMIT_EXCEEDED:  # MS-RPCE §3.3.3.5.5
                self._nak(alter.call_id, exc.reason, str(exc))
            self._fatal_fault(alter.call_id, FaultStatus.NCA_S_PROTO_ERROR, str(exc))
        self._commit(accepted)
        # max_xmit_frag, max_recv_frag and assoc_group_id of an alter_context are ignored.
        self._queue(
            AlterContextResp(
                alter.call_id, results, self._max_xmit_frag, self._max_recv_frag, self._assoc_group_id
            )
        )
        events.append(ContextsAltered(self._describe(accepted)))

    def _negotiate(
        self, elements: tuple[ContextElement, ...], *, at_bind: bool
    ) -> tuple[tuple[ContextResult, ...], dict[int, Interface], BindTimeFeatures | None]:
        """One result per proposed context, in order (MS-RPCE §3.3.1.5.6, §3.3.1.5.3)."""
        results: list[ContextResult] = []
        accepted: dict[int, Interface] = {}
        features: BindTimeFeatures | None = None
        for element in elements:
            if not element.transfer_syntaxes:
                raise _NegotiationError(
                    RejectReason.REASON_NOT_SPECIFIED, "context without transfer syntaxes"
                )
            # Bind time feature negotiation: recognised by the first transfer syntax, in a bind.
            offered = bind_time_features_offered(element.transfer_syntaxes[0]) if at_bind else None
            if offered is not None:
                if features is not None:
                    raise _NegotiationError(RejectReason.REASON_NOT_SPECIFIED, "two feature negotiations")
                features = offered & SUPPORTED_BIND_TIME_FEATURES
                results.append(ContextResult(ContResult.NEGOTIATE_ACK, features, NULL_SYNTAX))
                continue
            interface = next((i for i in self._interfaces if i.matches(element.abstract_syntax)), None)
            if interface is None:
                results.append(
                    ContextResult(ContResult.PROVIDER_REJECTION, ProviderReason.ABSTRACT_SYNTAX_NOT_SUPPORTED)
                )
                continue
            ndr20 = NDR20 in element.transfer_syntaxes
            existing = self._contexts.get(element.context_id) or accepted.get(element.context_id)
            if existing is not None:
                # A context id is bound to one interface for the life of the association.
                if existing is not interface:
                    raise _NegotiationError(
                        RejectReason.REASON_NOT_SPECIFIED, f"context {element.context_id} changes interface"
                    )
                results.append(_acceptance() if ndr20 else _transfer_rejection())
                continue
            # At most one transfer syntax (hence one context) per interface is accepted per PDU;
            # the others get provider_rejection (MS-RPCE §3.3.1.5.6). NDR 2.0 is all we speak.
            if not ndr20 or interface in accepted.values():
                results.append(_transfer_rejection())
                continue
            if len(self._contexts) + len(accepted) >= self._max_contexts:
                raise _NegotiationError(RejectReason.LOCAL_LIMIT_EXCEEDED, "too many presentation contexts")
            accepted[element.context_id] = interface
            results.append(_acceptance())
        return tuple(results), accepted, features

    def _commit(self, accepted: dict[int, Interface]) -> None:
        self._contexts.update(accepted)

    @staticmethod
    def _describe(accepted: dict[int, Interface]) -> tuple[PresentationContext, ...]:
        return tuple(PresentationContext(cid, i.syntax, NDR20) for cid, i in accepted.items())

    # -- requests --------------------------------------------------------------------------

    def _on_request(self, request: Request, events: list[Event]) -> None:
        if request.auth is not None:
            # A verifier without a negotiated security context: Windows faults 5 and disconnects.
            self._fatal_fault(
                request.call_id,
                FaultStatus.RPC_S_ACCESS_DENIED,
                "request with an auth verifier on an unauthenticated association",
                context_id=request.context_id,
                did_not_execute=False,
            )
        flags = request.pfc_flags
        call = self._incoming
        if flags & PfcFlags.FIRST_FRAG:
            call = self._start_call(request, events)
            if call is None:
                return
        else:
            if call is None:
                # MS-RPCE §3.3.3.5.6: drop stray fragments of a recent call (one we already
                # faulted, say); anything else is a protocol error.
                if 0 <= self._current_call_id - request.call_id < OLD_CALL_WINDOW:
                    return
                self._fatal_fault(
                    request.call_id,
                    FaultStatus.NCA_S_PROTO_ERROR,
                    "continuation fragment without a call",
                    did_not_execute=False,
                )
            if (request.call_id, request.context_id, request.opnum) != (
                call.call_id,
                call.context_id,
                call.opnum,
            ):
                # MS-RPCE §3.3.3.5.2: all fragments of a call carry its call_id (and its
                # context and opnum). Without PFC_CONC_MPX the fault names the call in progress.
                self._fatal_fault(
                    call.call_id,
                    FaultStatus.NCA_S_PROTO_ERROR,
                    f"fragment of call {request.call_id} (context {request.context_id}, opnum "
                    f"{request.opnum}) inside call {call.call_id}",
                    context_id=call.context_id,
                    did_not_execute=False,
                )
            self._append(call, request)
        if flags & PfcFlags.LAST_FRAG:
            self._incoming = None
            self._dispatched[call.call_id] = call.context_id
            stub = call.chunks[0] if len(call.chunks) == 1 else b"".join(call.chunks)
            events.append(
                RequestReceived(
                    call.call_id, call.context_id, call.opnum, call.interface.syntax, stub, call.object_uuid
                )
            )
        else:
            self._incoming = call

    def _start_call(self, request: Request, events: list[Event]) -> _IncomingCall | None:
        if self._incoming is not None:
            previous = self._incoming
            self._fatal_fault(
                previous.call_id,
                FaultStatus.NCA_S_PROTO_ERROR,
                f"call {request.call_id} starts before call {previous.call_id} is complete",
                context_id=previous.context_id,
                did_not_execute=False,
            )
        if self._dispatched:
            # PFC_CONC_MPX is never negotiated: request N+1 must wait for response N (§3.3.1.5.8).
            self._fatal_fault(
                request.call_id,
                FaultStatus.NCA_S_PROTO_ERROR,
                f"call {request.call_id} sent while call {next(iter(self._dispatched))} awaits its response",
                did_not_execute=False,
            )
        if request.pfc_flags & PfcFlags.PENDING_CANCEL:
            # What Windows answers to a call cancelled in its first fragment.
            self._fatal_fault(
                request.call_id,
                FaultStatus.RPC_S_NO_CALL_ACTIVE,
                "first fragment with PFC_PENDING_CANCEL",
                context_id=request.context_id,
            )
        self._current_call_id = max(self._current_call_id, request.call_id)
        interface = self._contexts.get(request.context_id)
        if interface is None:
            # The association survives an unknown context (as on Windows).
            self._queue_fault(request.call_id, FaultStatus.NCA_S_UNKNOWN_IF, 0, True)
            events.append(
                CallRejected(request.call_id, request.context_id, request.opnum, FaultStatus.NCA_S_UNKNOWN_IF)
            )
            return None
        if request.opnum not in interface.opnums:
            self._queue_fault(request.call_id, FaultStatus.NCA_S_OP_RNG_ERROR, request.context_id, True)
            status = FaultStatus.NCA_S_OP_RNG_ERROR
            events.append(CallRejected(request.call_id, request.context_id, request.opnum, status))
            return None
        call = _IncomingCall(
            request.call_id, request.context_id, request.opnum, interface, request.object_uuid
        )
        # alloc_hint is never used to allocate. A first fragment announcing more than the limit is
        # refused at once, as Windows does; later alloc_hints are ignored (impacket repeats the
        # total in every fragment instead of the remainder MS-RPCE §2.2.2.6 asks for).
        if not request.pfc_flags & PfcFlags.LAST_FRAG and (request.alloc_hint or 0) > self._max_request_stub:
            self._fatal_fault(
                call.call_id,
                FaultStatus.RPC_S_ACCESS_DENIED,
                f"alloc_hint {request.alloc_hint} exceeds the {self._max_request_stub}-octet limit",
                context_id=call.context_id,
                did_not_execute=False,
            )
        self._append(call, request)
        return call

    def _append(self, call: _IncomingCall, request: Request) -> None:
        if len(request.stub) > self._max_request_stub - call.size:
            self._fatal_fault(
                call.call_id,
                FaultStatus.RPC_S_ACCESS_DENIED,
                f"request stub exceeds {self._max_request_stub} octets (MS-RPCE 3.3.3.5.4)",
                context_id=call.context_id,
                did_not_execute=False,
            )
        call.chunks.append(request.stub)
        call.size += len(request.stub)

    def _on_orphaned(self, call_id: int, events: list[Event]) -> None:
        # MS-RPCE §3.3.1.5.10: the client abandoned the call; the association carries on.
        if self._incoming is not None and self._incoming.call_id == call_id:
            self._incoming = None
        elif self._dispatched.pop(call_id, None) is not None:
            self._orphaned.add(call_id)
            events.append(CallOrphaned(call_id))


def _acceptance() -> ContextResult:
    return ContextResult(ContResult.ACCEPTANCE, ProviderReason.REASON_NOT_SPECIFIED, NDR20)


def _transfer_rejection() -> ContextResult:
    return ContextResult(
        ContResult.PROVIDER_REJECTION, ProviderReason.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED
    )


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


@dataclass
class _OutgoingCall:
    call_id: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    started: bool = False


class ClientAssociation(_Association):
    """The client side of one association.

    ``max_xmit_frag``/``max_recv_frag``: what we offer in the bind (the server's bind_ack may
    lower them). ``max_response_stub``: the largest reassembled response we accept.
    """

    def __init__(
        self,
        *,
        max_xmit_frag: int = DEFAULT_MAX_FRAG,
        max_recv_frag: int = DEFAULT_MAX_FRAG,
        max_response_stub: int = DEFAULT_MAX_RESPONSE_STUB,
        assoc_group_id: int = 0,
    ) -> None:
        super().__init__(AssociationState.IDLE)
        self._offered_max_xmit_frag = _check_frag_size(max_xmit_frag, "max_xmit_frag")
        self._max_recv_frag = _check_frag_size(max_recv_frag, "max_recv_frag")
        self._max_xmit_frag = self._offered_max_xmit_frag
        if max_response_stub < 0:
            raise LocalProtocolError("max_response_stub must not be negative")
        self._max_response_stub = max_response_stub
        self._assoc_group_id = assoc_group_id
        self._proposed: tuple[ContextElement, ...] = ()
        self._feature_index: int | None = None
        self._context_id = 0
        self._next_call_id = FIRST_CLIENT_CALL_ID
        self._bind_call_id = 0
        self._outstanding: _OutgoingCall | None = None

    @property
    def context_id(self) -> int:
        return self._context_id

    def bind(
        self,
        interface: SyntaxId,
        transfer_syntaxes: Iterable[SyntaxId] = (NDR20,),
        *,
        bind_time_features: BindTimeFeatures | int | None = None,
    ) -> None:
        """Queue a bind: one presentation context per transfer syntax (MS-RPCE §3.3.1.5.6),
        plus, if ``bind_time_features`` is given, the feature negotiation context (§3.3.1.5.3)."""
        if self._state is not AssociationState.IDLE:
            raise LocalProtocolError(f"bind() in state {self._state.value}")
        syntaxes = tuple(transfer_syntaxes)
        if not syntaxes:
            raise LocalProtocolError("at least one transfer syntax is needed")
        elements = [ContextElement(i, interface, (ts,)) for i, ts in enumerate(syntaxes)]
        if bind_time_features is not None:
            self._feature_index = len(elements)
            elements.append(
                ContextElement(len(elements), interface, (bind_time_feature_syntax(int(bind_time_features)),))
            )
        self._proposed = tuple(elements)
        self._bind_call_id = self._take_call_id()
        self._outgoing.append(
            Bind(
                self._bind_call_id,
                self._proposed,
                self._offered_max_xmit_frag,
                self._max_recv_frag,
                self._assoc_group_id,
            ).encode()
        )
        self._state = AssociationState.AWAIT_BIND_ACK

    def request(self, opnum: int, stub: bytes, *, object_uuid: uuid.UUID | None = None) -> int:
        """Queue a request, fragmented by the negotiated max_xmit_frag; returns its call_id."""
        if self._state is not AssociationState.BOUND:
            raise LocalProtocolError(f"request() in state {self._state.value}")
        if self._outstanding is not None:
            # Without PFC_CONC_MPX, call N+1 waits for the response to call N (MS-RPCE §3.3.1.5.8).
            raise LocalProtocolError(f"call {self._outstanding.call_id} still awaits its response")
        if not 0 <= opnum <= 0xFFFF:
            raise LocalProtocolError(f"opnum {opnum} out of range")
        call_id = self._take_call_id()
        self._outgoing.extend(
            encode_request_fragments(
                call_id, self._context_id, opnum, stub, self._max_xmit_frag, object_uuid=object_uuid
            )
        )
        self._outstanding = _OutgoingCall(call_id)
        return call_id

    def _take_call_id(self) -> int:
        call_id = self._next_call_id
        self._next_call_id += 1
        return call_id

    def _protocol_error(self, what: str) -> NoReturn:
        raise _Fatal(what)

    def _handle(self, header: Header, raw: bytes, events: list[Event]) -> None:
        try:
            check_header(header)
            if header.frag_length > self._max_recv_frag:
                raise DecodeError(f"fragment of {header.frag_length} octets exceeds max_recv_frag", 8)
            pdu = decode_pdu(raw)
        except DecodeError as exc:
            self._protocol_error(str(exc))
        if self._state is AssociationState.AWAIT_BIND_ACK:
            self._on_bind_reply(pdu, events)
        elif self._state is AssociationState.BOUND:
            if isinstance(pdu, Response):
                self._on_response(pdu, events)
            elif isinstance(pdu, Fault):
                self._on_fault(pdu, events)
            elif isinstance(pdu, Shutdown):
                events.append(ShutdownReceived())
            else:
                self._protocol_error(f"unexpected {type(pdu).__name__} on a bound association")
        else:
            self._protocol_error(f"unexpected {type(pdu).__name__} in state {self._state.value}")

    def _on_bind_reply(self, pdu: object, events: list[Event]) -> None:
        if isinstance(pdu, BindNak):
            self._state = AssociationState.REJECTED
            events.append(BindRejected(pdu.reject_reason))
            return
        if isinstance(pdu, Fault) and pdu.call_id == self._bind_call_id:
            self._state = AssociationState.REJECTED
            events.append(
                FaultReceived(pdu.call_id, pdu.status, bool(pdu.pfc_flags & PfcFlags.DID_NOT_EXECUTE))
            )
            return
        if not isinstance(pdu, BindAck):
            self._protocol_error(f"{type(pdu).__name__} in answer to a bind")
        if pdu.call_id != self._bind_call_id:
            self._protocol_error(f"bind_ack for call {pdu.call_id}, bind was {self._bind_call_id}")
        if len(pdu.results) != len(self._proposed):
            # C706 §12.6.3.1 / MS-RPCE §3.3.1.5.3: one result per proposed context.
            self._protocol_error(f"{len(pdu.results)} results for {len(self._proposed)} contexts")
        accepted: ContextElement | None = None
        features: BindTimeFeatures | None = None
        for index, (element, result) in enumerate(zip(self._proposed, pdu.results)):
            if index == self._feature_index:
                offered = bind_time_features_offered(element.transfer_syntaxes[0])
                if result.result == ContResult.NEGOTIATE_ACK and offered is not None:
                    # The server may only acknowledge what was offered (MS-RPCE §3.3.1.5.3).
                    features = BindTimeFeatures(result.reason) & offered
                continue
            if result.result == ContResult.ACCEPTANCE and accepted is None:
                if result.transfer_syntax not in element.transfer_syntaxes:
                    self._protocol_error(f"server accepted a transfer syntax we did not propose: {result}")
                accepted = element
        if accepted is None:
            # MS-RPCE §3.3.1.5.6: no accepted transfer syntax fails the call.
            self._state = AssociationState.REJECTED
            events.append(BindRejected(None, pdu.results))
            return
        # The server's receive size is our transmit size; it must not exceed what we offered.
        if pdu.max_recv_frag < MUST_RECV_FRAG_SIZE or pdu.max_xmit_frag > self._max_recv_frag:
            self._protocol_error(f"bind_ack fragment sizes {pdu.max_xmit_frag}/{pdu.max_recv_frag}")
        self._max_xmit_frag = min(pdu.max_recv_frag, self._offered_max_xmit_frag)
        self._assoc_group_id = pdu.assoc_group_id
        self._context_id = accepted.context_id
        self._state = AssociationState.BOUND
        events.append(
            BindAccepted(
                self._max_xmit_frag,
                self._max_recv_frag,
                pdu.assoc_group_id,
                accepted.context_id,
                accepted.transfer_syntaxes[0],
                features,
                pdu.secondary_address,
            )
        )

    def _on_response(self, response: Response, events: list[Event]) -> None:
        call = self._outstanding
        if call is None or response.call_id != call.call_id:
            self._protocol_error(f"response for call {response.call_id}, which is not outstanding")
        first = bool(response.pfc_flags & PfcFlags.FIRST_FRAG)
        if first == call.started:
            self._protocol_error(f"response fragment out of order for call {call.call_id}")
        if response.context_id != self._context_id:
            self._protocol_error(f"response on context {response.context_id}, call used {self._context_id}")
        call.started = True
        # alloc_hint is not trusted; only the octets that actually arrive count.
        call.size += len(response.stub)
        if call.size > self._max_response_stub:
            self._protocol_error(f"response exceeds {self._max_response_stub} octets")
        call.chunks.append(response.stub)
        if response.pfc_flags & PfcFlags.LAST_FRAG:
            self._outstanding = None
            stub = call.chunks[0] if len(call.chunks) == 1 else b"".join(call.chunks)
            events.append(ResponseReceived(call.call_id, stub))

    def _on_fault(self, fault: Fault, events: list[Event]) -> None:
        call = self._outstanding
        if call is None or fault.call_id != call.call_id:
            self._protocol_error(f"fault for call {fault.call_id}, which is not outstanding")
        if fault.status in FORBIDDEN_FAULT_STATUSES:
            self._protocol_error(f"fault status {fault.status:#x} is reserved (MS-RPCE 3.3.2.5.1)")
        self._outstanding = None
        # MS-RPCE §2.2.2.8: the status field is the error; stub data in a fault is ignored.
        events.append(
            FaultReceived(fault.call_id, fault.status, bool(fault.pfc_flags & PfcFlags.DID_NOT_EXECUTE))
        )


__all__ = [
    "DEFAULT_MAX_FRAG",
    "DEFAULT_MAX_REQUEST_STUB",
    "DEFAULT_MAX_RESPONSE_STUB",
    "SUPPORTED_BIND_TIME_FEATURES",
    "AssociationState",
    "BindAccepted",
    "BindRejected",
    "Bound",
    "CallOrphaned",
    "ClientAssociation",
    "ContextsAltered",
    "DceRpcError",
    "Event",
    "FaultReceived",
    "Interface",
    "PresentationContext",
    "RequestReceived",
    "ResponseReceived",
    "ServerAssociation",
    "ShutdownReceived",
]
