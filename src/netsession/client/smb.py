r"""The asyncio driver of the SMB2/3 client: a socket under a sans-I/O
:class:`~netsession.wire.smb2.client.ClientConnection`, and the named pipe on top.

:class:`SmbPipe` is ``\\host\IPC$\<pipe>`` opened end to end — name resolution, TCP, NEGOTIATE, logon,
TREE_CONNECT, CREATE — inside the caller's deadline (an absolute ``loop.time()``, or none)::

    pipe = await SmbPipe.open("fs1", 445, initiator, deadline=loop.time() + 10)
    first = await pipe.transceive(pdu)              # FSCTL_PIPE_TRANSCEIVE
    more = await pipe.read()                        # the rest of a long answer
    pipe.close()

Several READs may be in flight at once (:meth:`SmbPipe.read_ahead`): the DCE/RPC layer above knows how
many bytes are still due at least and asks for them in one round trip. Every failure is a
:class:`~netsession.client.errors.TransportError` whose ``reason`` says what kind it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from netsession.client.auth import Initiator, initiator_for
from netsession.client.errors import (
    CLOSED,
    LOGON_FAILURES,
    PROTOCOL,
    UNREACHABLE,
    UNRESOLVED,
    UNSUPPORTED,
    DeadlineExpired,
    LogonError,
    NtStatusError,
    TransportError,
)
from netsession.errors import ERROR_BAD_NETPATH, RPC_S_SERVER_UNAVAILABLE
from netsession.wire.ntlm_initiator import NtlmInitiatorError
from netsession.wire.smb2.client import (
    ClientConfig,
    ClientConnection,
    EncryptionUnavailable,
    LocalProtocolError,
    Reply,
)
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.constants import (
    AccessMask,
    FsctlCode,
    ImpersonationLevel,
    NtStatus,
    ShareAccess,
)
from netsession.wire.smb2.create import CloseRequest, CreateRequest, CreateResponse, FileId
from netsession.wire.smb2.messages import (
    IoctlRequest,
    IoctlResponse,
    LogoffRequest,
    ReadRequest,
    ReadResponse,
    Request,
    SessionSetupResponse,
    TreeConnectRequest,
    TreeDisconnectRequest,
    WriteRequest,
)
from netsession.wire.srvsvc import SRVSVC_PIPE

# How much one IOCTL or READ asks for: 64 KiB, one credit (MS-SMB2 §3.1.5.2), more than a DCE/RPC
# fragment can be (frag_length is 16 bits). A longer message comes back as STATUS_BUFFER_OVERFLOW with the
# first part, and READ fetches the rest (MS-SMB2 §3.3.4.4 for pipes).
PIPE_IO_SIZE: Final = 0x10000
# At most this many READs in flight for one answer (each one credit).
MAX_READ_AHEAD: Final = 32
# What Windows asks for when it opens \PIPE\srvsvc (MS-SMB2 §2.2.13.1.1).
PIPE_ACCESS: Final = (
    AccessMask.FILE_READ_DATA
    | AccessMask.FILE_WRITE_DATA
    | AccessMask.FILE_APPEND_DATA
    | AccessMask.FILE_READ_EA
    | AccessMask.FILE_WRITE_EA
    | AccessMask.FILE_READ_ATTRIBUTES
    | AccessMask.FILE_WRITE_ATTRIBUTES
    | AccessMask.READ_CONTROL
    | AccessMask.SYNCHRONIZE
)
_PIPE_DATA_STATUSES: Final = frozenset((NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BUFFER_OVERFLOW))

_T = TypeVar("_T")

if TYPE_CHECKING:
    from netsession.client.pool import Credentials


def unc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _numeric(host: str, port: int) -> list[Any] | None:
    """getaddrinfo for an address literal, without the resolver's thread; None for a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST
    )


class _Protocol(asyncio.Protocol):
    """Bytes in and out of one ClientConnection; one future per outstanding message id."""

    def __init__(self, conn: ClientConnection, where: str) -> None:
        self.conn = conn
        self.where = where
        self.transport: asyncio.Transport | None = None
        self.waiters: dict[int, asyncio.Future[Reply]] = {}
        self.error: TransportError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.conn.receive_data(data)
        except Smb2DecodeError as exc:
            self.fail(TransportError(None, f"{self.where}: {exc}", delivered=True, reason=PROTOCOL))
            return
        for reply in replies:
            waiter = self.waiters.pop(reply.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        detail = f"{self.where}: the server closed the connection"
        if exc is not None:
            detail = f"{self.where}: {exc}"
        self.fail(TransportError(RPC_S_SERVER_UNAVAILABLE, detail, delivered=True, reason=CLOSED))

    def fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        waiters, self.waiters = self.waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(self.error)
        if self.transport is not None:
            self.transport.abort()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def submit(self, message_id: int) -> asyncio.Future[Reply]:
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            waiter.set_exception(self.error)
            return waiter
        self.waiters[message_id] = waiter
        self.flush()
        return waiter


async def _within(
    awaitable: Awaitable[_T], deadline: float | None, what: str, *, delivered: bool = False
) -> _T:
    """``awaitable`` before ``deadline`` (a loop.time()), else DeadlineExpired naming ``what``."""
    if deadline is None:
        return await awaitable
    try:
        async with asyncio.timeout_at(deadline):
            return await awaitable
    except TimeoutError:
        raise DeadlineExpired(f"{what}: no answer before the deadline", delivered=delivered) from None


def _in_thread(
    step: Callable[[bytes | None], bytes | None], token: bytes | None
) -> asyncio.Future[bytes | None]:
    """``step(token)`` in a daemon thread of its own: not the loop's default executor, whose shutdown
    (``asyncio.run``'s exit) would wait for a step the deadline gave up on."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes | None] = loop.create_future()

    def settle(result: bytes | None, error: BaseException | None) -> None:
        if future.done():
            return  # the deadline passed first
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result: bytes | None = None
        error: BaseException | None = None
        try:
            result = step(token)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="netsession-gss-step", daemon=True).start()
    return future


class SmbConnection:
    """One TCP connection, one session: the async face of a ClientConnection."""

    def __init__(self, host: str, port: int, protocol: _Protocol) -> None:
        self.host = host
        self.port = port
        self._protocol = protocol
        self.conn = protocol.conn
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def deadline(self) -> float | None:
        """When (``loop.time()``) everything in progress must be done; None: no limit. One timer per
        connection: when it fires, whatever is awaited fails with DeadlineExpired and the connection is
        dropped (an answer that comes later would find the connection out of step)."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = value
        if value is not None and self._protocol.error is None:
            self._timer = asyncio.get_running_loop().call_at(value, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._protocol.fail(DeadlineExpired(f"{self.where}: no answer before the deadline", delivered=True))

    @property
    def where(self) -> str:
        return f"{unc_host(self.host)}:{self.port}"

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        config: ClientConfig | None = None,
        deadline: float | None = None,
        bind_address: str | None = None,
    ) -> SmbConnection:
        """Resolve ``host`` and connect (MS-SMB2 §2.1 Direct TCP), from ``bind_address`` if given (our
        end's address: which interface a multi-homed scanner speaks from)."""
        loop = asyncio.get_running_loop()
        where = f"{unc_host(host)}:{port}"
        try:
            numeric = _numeric(host, port)
            infos: list[Any] = numeric if numeric is not None else await _within(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
                deadline,
                f"{where}: name resolution",
            )
        except socket.gaierror as exc:
            raise TransportError(
                ERROR_BAD_NETPATH, f"{where}: {exc.strerror or exc}", reason=UNRESOLVED
            ) from None
        conn = ClientConnection(config or ClientConfig(server_name=host))
        protocol = _Protocol(conn, where)
        last: OSError | None = None
        for family, kind, proto, _, address in infos:
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if bind_address is not None:
                    _bind(sock, bind_address, where)
                await _within(loop.sock_connect(sock, address), deadline, f"{where}: TCP connect")
                await loop.create_connection(lambda: protocol, sock=sock)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            self = cls(host, port, protocol)
            self.deadline = deadline
            return self
        raise _connect_error(last, where)

    # -- one exchange ----------------------------------------------------------------------------------

    async def _await(self, message_id: int, what: str) -> Reply:
        return await self._protocol.submit(message_id)

    async def call(self, body: Request, *, tree_id: int = 0, what: str = "") -> Reply:
        """Send one request on the session and return its final response."""
        try:
            message_id = self.conn.request(body, tree_id=tree_id)
        except LocalProtocolError as exc:
            raise TransportError(None, f"{self.where}: {exc}", reason=CLOSED) from None
        return await self._await(message_id, what or type(body).__name__)

    def _status(
        self, reply: Reply, what: str, ok: frozenset[int] = frozenset((NtStatus.STATUS_SUCCESS,))
    ) -> None:
        if reply.status not in ok:
            raise NtStatusError(reply.status, f"{self.where}: {what}", delivered=True)

    # -- the steps -------------------------------------------------------------------------------------

    async def negotiate(self) -> None:
        """NEGOTIATE (MS-SMB2 §3.2.4.2.2)."""
        reply = await self._await(self.conn.negotiate(), "NEGOTIATE")
        self._status(reply, "NEGOTIATE")

    async def _step(self, initiator: Initiator, token: bytes | None) -> bytes | None:
        """One initiator step. An initiator that may block (``may_block``: Kerberos asks the KDC for a
        service ticket inside its first step, and a silent KDC holds it for the library's own ~25 s) runs
        in a worker thread, so the loop goes on and the call's deadline still holds."""
        if not getattr(initiator, "may_block", False):
            return initiator.step(token)
        step = _in_thread(initiator.step, token)
        return await _within(step, self.deadline, f"{self.where}: Kerberos (KDC)")

    async def logon(self, initiator: Initiator, *, anonymous: bool = False) -> None:
        """SESSION_SETUP legs through ``initiator`` (MS-SMB2 §3.2.4.2.3, §3.2.5.3.1)."""
        hint = self.conn.negotiate_response.security_buffer if self.conn.negotiate_response else b""
        try:
            token = await self._step(initiator, hint or None)
            while True:
                if token is None:
                    raise TransportError(
                        None, f"{self.where}: the initiator stopped mid-logon", reason=PROTOCOL
                    )
                reply = await self._await(self.conn.session_setup(token), "SESSION_SETUP")
                status = reply.status
                if status not in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_MORE_PROCESSING_REQUIRED):
                    if status in LOGON_FAILURES or status == NtStatus.STATUS_ACCESS_DENIED:
                        raise LogonError(status, f"{self.where}: logon refused")
                    raise NtStatusError(status, f"{self.where}: SESSION_SETUP", delivered=True)
                body = reply.body
                assert isinstance(body, SessionSetupResponse)
                token = await self._step(initiator, body.security_buffer or None)
                if status == NtStatus.STATUS_SUCCESS:
                    if token is not None or not initiator.complete:
                        raise TransportError(
                            None,
                            f"{self.where}: the server ended the logon before the initiator",
                            reason=PROTOCOL,
                        )
                    self.conn.session_established(reply, initiator.session_key, anonymous=anonymous)
                    return
        except NtlmInitiatorError as exc:
            raise TransportError(None, f"{self.where}: {exc}", reason=PROTOCOL) from None
        except EncryptionUnavailable as exc:
            raise TransportError(None, f"{self.where}: {exc}", reason=UNSUPPORTED) from None
        except Smb2DecodeError as exc:
            self._protocol.fail(TransportError(None, f"{self.where}: {exc}", reason=PROTOCOL))
            raise TransportError(None, f"{self.where}: {exc}", delivered=True, reason=PROTOCOL) from None
        except LocalProtocolError as exc:
            raise TransportError(None, f"{self.where}: {exc}", reason=PROTOCOL) from None

    async def tree_connect(self, share: str = "IPC$") -> int:
        """TREE_CONNECT ``\\host\\share`` (MS-SMB2 §3.2.4.2.4); the TreeId."""
        path = rf"\\{unc_host(self.host)}\{share}"
        reply = await self.call(TreeConnectRequest(path), what=f"TREE_CONNECT {share}")
        if reply.status == NtStatus.STATUS_BAD_NETWORK_NAME:
            raise NtStatusError(reply.status, f"{self.where}: no {share} share")
        self._status(reply, f"TREE_CONNECT {share}")
        return reply.header.tree_id

    async def create_pipe(self, tree_id: int, name: str) -> FileId:
        """CREATE of a named pipe (MS-SMB2 §3.2.4.3.1)."""
        request = CreateRequest(
            name,
            desired_access=PIPE_ACCESS,
            share_access=ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
            impersonation_level=ImpersonationLevel.IMPERSONATION,
        )
        reply = await self.call(request, tree_id=tree_id, what=f"CREATE {name}")
        if reply.status in (NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, NtStatus.STATUS_OBJECT_PATH_NOT_FOUND):
            raise NtStatusError(reply.status, f"{self.where}: no {name} pipe")
        self._status(reply, f"CREATE {name}")
        assert isinstance(reply.body, CreateResponse)
        return reply.body.file_id

    def close(self) -> None:
        """Drop the connection: the server ends the session, tree and opens (MS-SMB2 §3.3.7.1)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._protocol.transport
        if transport is not None:
            transport.abort()
        self._protocol.fail(TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: closed", reason=CLOSED))

    async def logoff(self) -> None:
        """TREE_DISCONNECT is implied; LOGOFF (MS-SMB2 §3.2.4.5), then the connection is closed."""
        try:
            await self.call(LogoffRequest(), what="LOGOFF")
        finally:
            self.close()

    @property
    def local_address(self) -> str | None:
        """The address our end of the TCP connection has (what the server sees as the client's)."""
        transport = self._protocol.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return str(sockname[0]) if sockname else None

    @property
    def alive(self) -> bool:
        return self._protocol.error is None and self._protocol.transport is not None and not self.conn.closed


class SmbPipe:
    r"""An open named pipe: ``\\host\IPC$\name`` on its own connection (see the module docstring)."""

    def __init__(self, smb: SmbConnection, tree_id: int, file_id: FileId, name: str) -> None:
        self.smb = smb
        self.tree_id = tree_id
        self.file_id = file_id
        self.name = name
        self._reads: deque[tuple[int, asyncio.Future[Reply]]] = deque()
        self._in_flight = 0  # bytes the READs in flight asked for
        self._dirty = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        initiator: Initiator,
        *,
        pipe: str,
        config: ClientConfig | None = None,
        deadline: float | None = None,
        anonymous: bool = False,
    ) -> SmbPipe:
        smb = await SmbConnection.connect(host, port, config=config, deadline=deadline)
        try:
            await smb.negotiate()
            await smb.logon(initiator, anonymous=anonymous)
            tree = await smb.tree_connect("IPC$")
            fid = await smb.create_pipe(tree, pipe)
        except BaseException:
            smb.close()
            raise
        return cls(smb, tree, fid, pipe)

    @property
    def deadline(self) -> float | None:
        return self.smb.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.smb.deadline = value

    @property
    def alive(self) -> bool:
        return self.smb.alive and not self._reads and not self._dirty

    async def transceive(self, data: bytes) -> bytes:
        """FSCTL_PIPE_TRANSCEIVE (MS-SMB2 §3.2.4.20.4): write ``data``, the first bytes of the answer."""
        request = IoctlRequest(
            FsctlCode.FSCTL_PIPE_TRANSCEIVE, self.file_id, data, max_output_response=PIPE_IO_SIZE
        )
        reply = await self.smb.call(request, tree_id=self.tree_id, what="FSCTL_PIPE_TRANSCEIVE")
        self.smb._status(reply, "FSCTL_PIPE_TRANSCEIVE", _PIPE_DATA_STATUSES)
        assert isinstance(reply.body, IoctlResponse)
        return reply.body.output if reply.body.output else await self.read()

    async def write(self, data: bytes) -> None:
        """WRITE one message to the pipe (MS-SMB2 §3.2.4.7)."""
        reply = await self.smb.call(WriteRequest(self.file_id, data), tree_id=self.tree_id, what="WRITE")
        self.smb._status(reply, "WRITE")

    def read_ahead(self, due: int) -> None:
        """Keep READs in flight for up to ``due`` bytes in all: bytes the caller knows are coming (the
        DCE/RPC layer knows it from the fragments' lengths). Asking for no more than is due means no READ
        ever waits on an empty pipe: each returns at least one byte. :meth:`read` returns them in order."""
        conn = self.smb.conn
        while self._in_flight < due and len(self._reads) < MAX_READ_AHEAD:
            length = min(due - self._in_flight, PIPE_IO_SIZE)
            try:
                message_id = conn.request(ReadRequest(self.file_id, length), tree_id=self.tree_id)
            except LocalProtocolError:
                return
            self._reads.append((length, self.smb._protocol.submit(message_id)))
            self._in_flight += length

    async def read(self) -> bytes:
        """The next bytes of the answer (at least one)."""
        if not self._reads:
            self.read_ahead(PIPE_IO_SIZE)
        if not self._reads:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.smb.where}: the connection is closed", reason=CLOSED
            )
        length, waiter = self._reads.popleft()
        self._in_flight -= length
        try:
            reply = await waiter
        except BaseException:
            self._cancel_reads()
            raise
        if reply.status not in _PIPE_DATA_STATUSES:
            self._cancel_reads()
            raise NtStatusError(reply.status, f"{self.smb.where}: READ", delivered=True)
        assert isinstance(reply.body, ReadResponse)
        if not reply.body.data:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE,
                f"{self.smb.where}: empty pipe read",
                delivered=True,
                reason=PROTOCOL,
            )
        return reply.body.data

    def _cancel_reads(self) -> None:
        for _, waiter in self._reads:
            waiter.cancel()
            self._dirty = True  # its answer may still come: the pipe is out of step
        self._reads.clear()
        self._in_flight = 0

    async def close_pipe(self) -> None:
        """CLOSE, TREE_DISCONNECT and LOGOFF, in one round trip each, then the connection."""
        try:
            await self.smb.call(CloseRequest(self.file_id), tree_id=self.tree_id, what="CLOSE")
            await self.smb.call(TreeDisconnectRequest(), tree_id=self.tree_id, what="TREE_DISCONNECT")
            await self.smb.logoff()
        finally:
            self.close()

    def close(self) -> None:
        self._cancel_reads()
        self.smb.close()


async def open_pipe(
    host: str,
    port: int,
    creds: Credentials,
    *,
    pipe: str = SRVSVC_PIPE,
    deadline: float | None = None,
    allow_guest: bool = False,
) -> SmbPipe:
    r"""``\\host\IPC$\pipe`` opened with ``creds`` (see :func:`~netsession.client.auth.initiator_for`):
    encryption if ``creds.encrypt``, every response signed otherwise; an anonymous logon when the user
    name is empty and there is no secret."""
    initiator = initiator_for(host, creds)
    anonymous = creds.username == "" and creds.password is None and creds.nt_hash is None
    config = ClientConfig(
        server_name=host,
        encryption_required=creds.encrypt,
        allow_guest=allow_guest or anonymous or creds.allow_guest,
    )
    return await SmbPipe.open(
        host, port, initiator, pipe=pipe, config=config, deadline=deadline, anonymous=anonymous
    )


def _bind(sock: socket.socket, address: str, where: str) -> None:
    try:
        sock.bind((address, 0))
    except (OSError, ValueError) as exc:
        why = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        raise TransportError(
            ERROR_BAD_NETPATH, f"{where}: cannot connect from {address}: {why}", reason=UNREACHABLE
        ) from None


def _connect_error(exc: OSError | None, where: str) -> TransportError:
    if exc is None:
        return TransportError(ERROR_BAD_NETPATH, f"{where}: no address", reason=UNRESOLVED)
    text = f"{where}: {os.strerror(exc.errno) if exc.errno else exc}"
    unreachable = (
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
    )
    if exc.errno in unreachable:
        return TransportError(ERROR_BAD_NETPATH, text, reason=UNREACHABLE)
    return TransportError(RPC_S_SERVER_UNAVAILABLE, text, reason=CLOSED)


__all__ = ["MAX_READ_AHEAD", "PIPE_IO_SIZE", "SmbConnection", "SmbPipe", "open_pipe", "unc_host"]
