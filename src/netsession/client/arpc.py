"""srvsvc calls over an async pipe: the asyncio counterpart of :class:`~netsession.client.rpc.SrvsvcClient`.

:class:`AsyncSrvsvcClient` drives the same sans-I/O :class:`~netsession.client.srvsvc.SrvsvcAssociation`
over an :class:`AsyncPipe` (:class:`~netsession.client.smb.SmbPipe`, or :class:`AsyncUnixPipe` for the
local server), one call at a time, and runs any prepared :class:`~netsession.client.srvsvc.Call`
(:meth:`AsyncSrvsvcClient.run`); the errors are the sync client's (``RpcFaultError``,
RPC_S_PROTOCOL_ERROR, RPC_X_BAD_STUB_DATA, TransportError).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from netsession.client import srvsvc as calls
from netsession.client.errors import CLOSED, DeadlineExpired, TransportError
from netsession.client.fragments import FragmentTracker
from netsession.client.srvsvc import Call, Encodable, RpcFaultError, SrvsvcAssociation
from netsession.errors import ERROR_ACCESS_DENIED, RPC_S_SERVER_UNAVAILABLE
from netsession.records import MAX_PREFERRED_LENGTH
from netsession.wire.dcerpc import BindAccepted
from netsession.wire.srvsvc import NetrSessionDelResponse, NetrSessionEnumResponse

_T = TypeVar("_T")
UNIX_READ_SIZE = 0x10000


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
    """One srvsvc association over one async pipe; one call at a time (calls from several tasks queue)."""

    def __init__(self, pipe: AsyncPipe, *, server_name: str | None = None) -> None:
        self.pipe = pipe
        self.server_name = server_name
        self._rpc = SrvsvcAssociation()
        self._lock = asyncio.Lock()

    @property
    def bind_info(self) -> BindAccepted | None:
        return self._rpc.bind_info

    @property
    def usable(self) -> bool:
        return self._rpc.bound

    def close(self) -> None:
        self._rpc.abandon()
        self.pipe.close()

    async def bind(self) -> None:
        """Bind srvsvc (MS-RPCE §3.3.1.5.6). Raises NetApiError; the pipe is closed then."""
        try:
            data = await self.pipe.transceive(self._rpc.bind())
            while not self._rpc.bind_received(data):
                data = await self.pipe.read()
        except BaseException:
            self.close()
            raise

    async def call(self, opnum: int, stub: bytes) -> bytes:
        """Run one call; the response stub, or RpcFaultError / NetApiError."""
        async with self._lock:
            pdus = self._rpc.request(opnum, stub)
            read_ahead = getattr(self.pipe, "read_ahead", None)
            tracker = FragmentTracker(self._rpc.max_recv_frag) if read_ahead is not None else None
            try:
                for pdu in pdus[:-1]:
                    await self.pipe.write(pdu)
                data = await self.pipe.transceive(pdus[-1])
                while (answer := self._rpc.response_received(data)) is None:
                    if tracker is not None and read_ahead is not None:
                        tracker.feed(data)
                        read_ahead(tracker.due())
                    data = await self.pipe.read()
                return answer
            except RpcFaultError:
                raise  # a fault answers the call: the association goes on
            except BaseException:
                # The pipe failed, the answer was broken, or the task was cancelled (the answer may still
                # come): the association is out of step.
                self.close()
                raise

    async def run(self, call: Call[_T]) -> _T:
        """Run a prepared :class:`~netsession.client.srvsvc.Call`; its decoded response."""
        return call.result(await self.call(call.opnum, call.stub))

    async def invoke(self, opnum: int, request: Encodable, decoder: Callable[[bytes], _T]) -> _T:
        """Any srvsvc method: encode ``request``, call ``opnum``, decode the stub with ``decoder``."""
        return await self.run(calls.invoke(opnum, request, decoder))

    async def session_enum(
        self,
        level: int,
        client_name: str | None = None,
        user_name: str | None = None,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrSessionEnumResponse:
        """NetrSessionEnum (MS-SRVS §3.1.4.5)."""
        return await self.run(
            calls.session_enum(
                self.server_name, level, client_name, user_name, preferred_max_length, resume_handle
            )
        )

    async def session_del(self, client_name: str | None, user_name: str | None) -> NetrSessionDelResponse:
        """NetrSessionDel (MS-SRVS §3.1.4.6)."""
        return await self.run(calls.session_del(self.server_name, client_name, user_name))


__all__ = ["AsyncPipe", "AsyncSrvsvcClient", "AsyncUnixPipe", "Encodable"]
