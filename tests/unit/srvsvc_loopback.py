"""In-memory srvsvc servers for client tests: a PipeTransport whose far end is our ServerAssociation and a
srvsvc service (the project's SrvsvcService over a SessionTable, or a scripted stand-in for a peer such as
Samba), with knobs to cut reads short, break the pipe, or count what was sent."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from netsession.client.pool import ConnectionPool, Credentials
from netsession.client.rpc import SRVSVC_SYNTAX
from netsession.client.transport import TransportError
from netsession.errors import ERROR_INVALID_LEVEL, RPC_S_SERVER_UNAVAILABLE
from netsession.records import SESSION_INFO_1
from netsession.server.srvsvc import CallContext, Reply, ServerIdentity, SrvsvcService
from netsession.table import Caller, SessionTable
from netsession.wire.dcerpc import Interface, RequestReceived, ServerAssociation
from netsession.wire.srvsvc import NetrSessionEnumRequest, NetrSessionEnumResponse, Opnum

ADMIN = Caller("admin", frozenset({"Administrators"}))
PLAIN = Caller("bob", frozenset({"Users"}))


class Service(Protocol):
    @property
    def opnums(self) -> frozenset[int]: ...

    def call(self, ctx: CallContext, opnum: int, stub: bytes) -> Reply: ...


def table_service(table: SessionTable | None = None) -> SrvsvcService:
    if table is None:
        table = SessionTable(clock=lambda: 100.0)
    return SrvsvcService(table, ServerIdentity("FS1"))


@dataclass
class LoopbackTransport:
    """PipeTransport to ``service`` through a real ServerAssociation.

    ``read_size`` cuts every read to that many bytes (continuation reads); ``max_recv_frag`` is the
    server's fragment limit; ``broken`` makes the next operation fail as a dropped connection would;
    ``drop_after_request`` makes the next request reach the service and its answer get lost."""

    service: Service
    caller: Caller = ADMIN
    read_size: int = 1 << 16
    max_recv_frag: int = 4280
    interfaces: tuple[Interface, ...] | None = None
    opened: int = 0
    closed: int = 0
    is_open: bool = False
    broken: bool = False
    drop_after_request: bool = False
    calls: list[tuple[int, bytes]] = field(default_factory=list)
    _out: bytearray = field(default_factory=bytearray)
    _server: ServerAssociation | None = None

    def open(self) -> None:
        if self.broken:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, "loopback: refused")
        interfaces = self.interfaces or (Interface(SRVSVC_SYNTAX, self.service.opnums),)
        self._server = ServerAssociation(interfaces, max_recv_frag=self.max_recv_frag)
        self._out.clear()
        self.opened += 1
        self.is_open = True

    def _check(self, delivered: bool) -> ServerAssociation:
        if self.broken or not self.is_open or self._server is None:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, "loopback: broken", delivered=delivered)
        return self._server

    def write(self, data: bytes) -> None:
        server = self._check(False)
        for event in server.receive_data(data):
            if isinstance(event, RequestReceived):
                self.calls.append((event.opnum, event.stub))
                reply = self.service.call(CallContext(self.caller, "127.0.0.1"), event.opnum, event.stub)
                if reply.fault is not None:
                    server.fault(event.call_id, reply.fault)
                else:
                    server.respond(event.call_id, reply.stub)
                if self.drop_after_request:
                    self.drop_after_request = False
                    self.broken = True
        self._out += b"".join(server.data_to_send())

    def read(self) -> bytes:
        self._check(True)
        if not self._out:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, "loopback: nothing to read", delivered=True)
        chunk = bytes(self._out[: self.read_size])
        del self._out[: self.read_size]
        return chunk

    def transceive(self, data: bytes) -> bytes:
        self.write(data)
        return self.read()

    def alive(self) -> bool:
        return self.is_open and not self.broken

    def close(self) -> None:
        self.closed += 1
        self.is_open = False


@dataclass
class LoopbackFactory:
    """A transport factory for ConnectionPool: one LoopbackTransport per connection, all kept."""

    service: Service
    caller: Caller = ADMIN
    options: dict[str, Any] = field(default_factory=dict)
    made: list[LoopbackTransport] = field(default_factory=list)
    seen: list[tuple[Any, Credentials, int, float]] = field(default_factory=list)

    def __call__(self, target: Any, creds: Credentials, port: int, timeout: float) -> LoopbackTransport:
        self.seen.append((target, creds, port, timeout))
        t = LoopbackTransport(self.service, self.caller, **self.options)
        self.made.append(t)
        return t


def loopback_pool(
    service: Service, caller: Caller = ADMIN, **options: Any
) -> tuple[ConnectionPool, LoopbackFactory]:
    factory = LoopbackFactory(service, caller, options)
    return ConnectionPool(factory, environ={}), factory


@dataclass
class ScriptedService:
    """A srvsvc stand-in answering each opnum with ``handler(stub) -> Reply`` (to play peers whose
    behaviour our table does not have)."""

    handlers: dict[int, Callable[[bytes], Reply]]

    @property
    def opnums(self) -> frozenset[int]:
        return frozenset(self.handlers)

    def call(self, ctx: CallContext, opnum: int, stub: bytes) -> Reply:
        return self.handlers[opnum](stub)


def samba_like(entries: list[Any], level: int = 1) -> ScriptedService:
    """Samba 4.17: filters ignored, cname without ``\\``."""

    def enum(stub: bytes) -> Reply:
        req = NetrSessionEnumRequest.decode(stub)
        if req.level != level:
            return Reply(NetrSessionEnumResponse(req.level, [], 0, 0, ERROR_INVALID_LEVEL).encode())
        return Reply(NetrSessionEnumResponse(level, entries, len(entries), len(entries), 0).encode())

    return ScriptedService({Opnum.NetrSessionEnum: enum})


SAMBA_ENTRIES = [
    SESSION_INFO_1("127.0.0.1", "nsadmin", 0, 5, 0, 0),
    SESSION_INFO_1("10.0.0.7", "alice", 1, 9, 0, 0),
    SESSION_INFO_1("::1", "bob", 0, 2, 0, 0),
]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
