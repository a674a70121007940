"""srvsvc calls over an async pipe: the asyncio counterpart of :class:`~netsession.client.rpc.SrvsvcClient`.

:class:`AsyncSrvsvcClient` binds srvsvc with the same sans-I/O
:class:`~netsession.wire.dcerpc.ClientAssociation` and runs one call at a time over an :class:`AsyncPipe`
(:class:`~netsession.client.smb.SmbPipe`, or :class:`AsyncUnixPipe` for the local server). Its call path is
generic: :meth:`AsyncSrvsvcClient.invoke` takes any request (``encode()``) and any response decoder, so
every srvsvc method the sync client has fits without a second copy of the plumbing; the errors are the
sync client's (``RpcFaultError``, RPC_S_PROTOCOL_ERROR, RPC_X_BAD_STUB_DATA, TransportError).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from netsession.client.errors import CLOSED, DeadlineExpired, TransportError
from netsession.client.fragments import FragmentTracker
from netsession.client.rpc import (
    CLIENT_MAX_FRAG,
    SRVSVC_SYNTAX,
    RpcFaultError,
    _bind_rejection,
    _decode,
)
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    RPC_S_PROTOCOL_ERROR,
    RPC_S_SERVER_UNAVAILABLE,
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
    RemoteProtocolError,
    ResponseReceived,
)
from netsession.wire.srvsvc import (
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

_T = TypeVar("_T")
UNIX_READ_SIZE = 0x10000


class Encodable(Protocol):
    def encode(self) -> bytes: ...


class AsyncPipe(Protocol):
    """A message pipe to one srvsvc endpoint, async (the shape of :class:`~netsession.client.smb.SmbPipe`)."""

    async def transceive(self, data: bytes) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


class AsyncUnixPipe:
    """The local netsession server's srvsvc socket (plain DCE/RPC PDUs, see UnixSocketTransport)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: Path) -> None:
        self._reader = reader
        self._writer = writer
        self.path = path
        self.deadline: float | None = None

    @classmethod
    async def open(cls, path: Path, *, deadline: float | None = None) -> AsyncUnixPipe:
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_unix_connection(str(path))
        except TimeoutError:
            raise DeadlineExpired(f"{path}: no answer before the deadline") from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"no local netsession server is listening on {path}", reason=CLOSED
            ) from None
        except PermissionError:
            raise TransportError(ERROR_ACCESS_DENIED, f"{path}: permission denied", reason=CLOSED) from None
        except OSError as exc:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{path}: {exc.strerror or exc}", reason=CLOSED
            ) from None
        pipe = cls(reader, writer, path)
        pipe.deadline = deadline
        return pipe

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout_at(self.deadline):
                await self._writer.drain()
        except TimeoutError:
            raise DeadlineExpired(f"{self.path}: no answer before the deadline") from None
        except OSError as exc:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.path}: {exc.strerror or exc}", reason=CLOSED
            ) from None

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self.deadline):
                data = await self._reader.read(UNIX_READ_SIZE)
        except TimeoutError:
            raise DeadlineExpired(f"{self.path}: no answer before the deadline", delivered=True) from None
        except OSError as exc:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.path}: {exc.strerror or exc}", delivered=True, reason=CLOSED
            ) from None
        if not data:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE,
                f"{self.path}: the server closed the connection",
                delivered=True,
                reason=CLOSED,
            )
        return data

    async def transceive(self, data: bytes) -> bytes:
        await self.write(data)
        return await self.read()

    def close(self) -> None:
        self._writer.close()


class AsyncSrvsvcClient:
    """One srvsvc association over one async pipe; one call at a time (MS-RPCE §3.3.1.5.8)."""

    def __init__(self, pipe: AsyncPipe, *, server_name: str | None = None) -> None:
        self.pipe = pipe
        self.server_name = server_name
        self._assoc = ClientAssociation(max_xmit_frag=CLIENT_MAX_FRAG, max_recv_frag=CLIENT_MAX_FRAG)
        self._broken = False
        self.bind_info: BindAccepted | None = None
        self._lock = asyncio.Lock()

    @property
    def usable(self) -> bool:
        return not self._broken and self._assoc.state is AssociationState.BOUND

    def close(self) -> None:
        self._broken = True
        self.pipe.close()

    def _receive(self, data: bytes) -> list[object]:
        try:
            return list(self._assoc.receive_data(data))
        except RemoteProtocolError as exc:
            self.close()
            raise NetApiError(
                RPC_S_PROTOCOL_ERROR, "", f"{status_message(RPC_S_PROTOCOL_ERROR)} ({exc})"
            ) from None

    async def bind(self) -> None:
        """Bind srvsvc (MS-RPCE §3.3.1.5.6). Raises NetApiError; the pipe is closed then."""
        try:
            self._assoc.bind(SRVSVC_SYNTAX, (NDR20,))
            (bind,) = self._assoc.data_to_send()
            data = await self.pipe.transceive(bind)
            while True:
                for event in self._receive(data):
                    if isinstance(event, BindAccepted):
                        self.bind_info = event
                        return
                    if isinstance(event, BindRejected):
                        raise _bind_rejection(event)
                    if isinstance(event, FaultReceived):
                        raise RpcFaultError(event.status)
                data = await self.pipe.read()
        except BaseException:
            self.close()
            raise

    async def call(self, opnum: int, stub: bytes) -> bytes:
        """Run one call; the response stub, or RpcFaultError / NetApiError."""
        async with self._lock:
            if not self.usable:
                raise TransportError(
                    RPC_S_SERVER_UNAVAILABLE, "the srvsvc association is closed", reason=CLOSED
                )
            call_id = self._assoc.request(opnum, stub)
            pdus = self._assoc.data_to_send()
            read_ahead = getattr(self.pipe, "read_ahead", None)
            tracker = FragmentTracker(self._assoc.max_recv_frag) if read_ahead is not None else None
            try:
                for pdu in pdus[:-1]:
                    await self.pipe.write(pdu)
                data = await self.pipe.transceive(pdus[-1])
                while True:
                    for event in self._receive(data):
                        if isinstance(event, ResponseReceived) and event.call_id == call_id:
                            return event.stub
                        if isinstance(event, FaultReceived) and event.call_id == call_id:
                            raise RpcFaultError(event.status)
                    if tracker is not None and read_ahead is not None:
                        tracker.feed(data)
                        read_ahead(tracker.due())
                    data = await self.pipe.read()
            except TransportError:
                self.close()
                raise
            except asyncio.CancelledError:
                self.close()  # the answer may still come: the association is out of step
                raise

    async def invoke(self, opnum: int, request: Encodable, decoder: Callable[[bytes], _T]) -> _T:
        """Any srvsvc method: encode ``request``, call ``opnum``, decode the stub with ``decoder``."""
        return _decode(decoder, await self.call(opnum, request.encode()))

    async def session_enum(
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
        response = await self.invoke(Opnum.NetrSessionEnum, request, NetrSessionEnumResponse.decode)
        if response.entries and response.level != level:
            raise NetApiError(
                RPC_X_BAD_STUB_DATA, "", f"asked for level {level}, the server answered {response.level}"
            )
        return response

    async def session_del(self, client_name: str | None, user_name: str | None) -> NetrSessionDelResponse:
        """NetrSessionDel (MS-SRVS §3.1.4.6)."""
        request = NetrSessionDelRequest(self.server_name, client_name, user_name)
        return await self.invoke(Opnum.NetrSessionDel, request, NetrSessionDelResponse.decode)


__all__ = ["AsyncPipe", "AsyncSrvsvcClient", "AsyncUnixPipe"]
