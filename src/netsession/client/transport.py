r"""Byte pipes to a srvsvc endpoint: the ``\PIPE\srvsvc`` named pipe over SMB 2/3, or the local server's
Unix socket.

A :class:`PipeTransport` moves whole DCE/RPC PDUs and knows nothing of their content: ``transceive`` writes a
request and returns the first bytes of the answer (one round trip, FSCTL_PIPE_TRANSCEIVE on SMB);
``read`` returns more when an answer spans several fragments; ``write`` sends a PDU that expects no answer
of its own (the leading fragments of a long request). The DCE/RPC association on top reassembles.

Failures become :class:`TransportError`, a :class:`~netsession.errors.NetApiError` with the number Windows
reports for the same trouble (name not found or connection refused -> ERROR_BAD_NETPATH; bad password ->
ERROR_LOGON_FAILURE; no srvsvc pipe or the connection dropped -> RPC_S_SERVER_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from netsession.client.errors import (  # TransportError is re-exported here
    CLOSED,
    TIMEOUT,
    UNREACHABLE,
    UNRESOLVED,
    TransportError,
)
from netsession.client.fragments import FragmentTracker
from netsession.client.loop import call_soon, in_engine_thread, submit, wait
from netsession.client.smb import SmbPipe, open_pipe
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NETPATH,
    RPC_S_SERVER_UNAVAILABLE,
)
from netsession.wire.srvsvc import SRVSVC_PIPE

_T = TypeVar("_T")

# MS-FSCC §2.3.30 FSCTL_PIPE_TRANSCEIVE; MS-SMB2 §2.2.31 SMB2_0_IOCTL_IS_FSCTL.
FSCTL_PIPE_TRANSCEIVE: Final = 0x0011C017
SMB2_0_IOCTL_IS_FSCTL: Final = 0x00000001
# How much one IOCTL or READ asks for: 64 KiB, one credit (MS-SMB2 §3.2.4.1.5), more than a DCE/RPC
# fragment can be (frag_length is 16 bits). A longer message comes back as STATUS_BUFFER_OVERFLOW with the
# first part, and READ fetches the rest (MS-SMB2 §3.3.4.4 for pipes).
PIPE_IO_SIZE: Final = 0x10000
DEFAULT_TIMEOUT: Final = 30.0

STATUS_BUFFER_OVERFLOW: Final = 0x80000005  # MS-ERREF §2.3.1
# The empty password's LM hash (LMOWFv1("")), sent beside an NT hash as pyspnego's "LM:NT" form.
EMPTY_LM_HASH: Final = "aad3b435b51404eeaad3b435b51404ee"


class PipeTransport(Protocol):
    """A message pipe to one srvsvc endpoint."""

    def open(self) -> None:
        """Connect and open the pipe; raises :class:`TransportError`."""

    def transceive(self, data: bytes) -> bytes:
        """Write one PDU and return the first bytes of the answer (at least one byte)."""

    def write(self, data: bytes) -> None:
        """Write one PDU that expects no answer of its own."""

    def read(self) -> bytes:
        """More bytes of the answer in progress (at least one byte)."""

    def alive(self) -> bool:
        """Whether the pipe still looks usable (a cheap local check, no round trip)."""

    def close(self) -> None:
        """Release everything; never raises."""


def _os_error(exc: OSError, where: str, *, delivered: bool = False) -> TransportError:
    """The Windows number for a socket failure."""
    text = f"{where}: {exc.strerror or exc}"
    if isinstance(exc, socket.gaierror):
        return TransportError(ERROR_BAD_NETPATH, text, delivered=delivered, reason=UNRESOLVED)
    if isinstance(exc, TimeoutError):
        return TransportError(ERROR_BAD_NETPATH, text, delivered=delivered, reason=TIMEOUT)
    unreachable = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)
    if exc.errno in unreachable:
        return TransportError(ERROR_BAD_NETPATH, text, delivered=delivered, reason=UNREACHABLE)
    return TransportError(RPC_S_SERVER_UNAVAILABLE, text, delivered=delivered, reason=CLOSED)


# --------------------------------------------------------------------------------------------------------
# SMB 2/3 through our own engine
# --------------------------------------------------------------------------------------------------------


class SmbPipeTransport:
    r"""``\\host\IPC$\srvsvc`` over SMB 2/3 with netsession's own client (:mod:`netsession.client.smb`),
    run on the background engine loop (:mod:`netsession.client.loop`).

    Signing is always required of the session (every response verified); ``encrypt=True`` requires SMB 3
    encryption and fails with ERROR_NOT_SUPPORTED if the server cannot (a server or share that demands
    encryption gets it either way). Authentication is SPNEGO: our NTLMv2 with the password or ``nt_hash``
    (32 hex digits), an empty user name for the anonymous logon, or Kerberos when no password is given and
    a ticket is available (``auth_protocol="kerberos"`` forces it). ``timeout`` bounds the opening (name
    resolution to CREATE) and then each exchange (a request and every READ of its answer).
    """

    def __init__(
        self,
        host: str,
        port: int = 445,
        *,
        username: str | None = None,
        password: str | None = None,
        domain: str | None = None,
        nt_hash: str | None = None,
        encrypt: bool = False,
        auth_protocol: str = "negotiate",
        timeout: float = DEFAULT_TIMEOUT,
        pipe: str = SRVSVC_PIPE,
        allow_guest: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.pipe = pipe
        self.encrypt = encrypt
        self.timeout = timeout
        self.allow_guest = allow_guest
        self._auth = (username, password, domain, nt_hash, auth_protocol)
        self._username = f"{domain}\\{username}" if domain and username else username
        self._pipe: SmbPipe | None = None
        self._due = 0
        self._running: concurrent.futures.Future[object] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SmbPipeTransport({self.host!r}, {self.port}, username={self._username!r})"

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def open_async(self) -> SmbPipe:
        """Open the pipe on the running loop (what :meth:`open` runs on the engine loop)."""
        from netsession.client.pool import Credentials

        username, password, domain, nt_hash, auth_protocol = self._auth
        creds = Credentials(username, password, domain, nt_hash, self.encrypt, auth_protocol)
        deadline = asyncio.get_running_loop().time() + self.timeout
        pipe = await open_pipe(
            self.host, self.port, creds, pipe=self.pipe, deadline=deadline, allow_guest=self.allow_guest
        )
        pipe.deadline = None  # a kept connection has no deadline between calls
        self._pipe = pipe
        return pipe

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run on the engine loop; :meth:`close` from another thread cancels what is running."""
        if self._closed:
            coro.close()
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: the pipe is closed", reason=CLOSED)
        future = submit(coro)
        self._running = future  # type: ignore[assignment]
        try:
            return wait(future)
        except concurrent.futures.CancelledError:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.where}: closed while in use", delivered=True, reason=CLOSED
            ) from None
        finally:
            self._running = None

    def open(self) -> None:
        self._closed = False
        self._run(self.open_async())

    def _open_pipe(self) -> SmbPipe:
        if self._pipe is None:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.where}: the pipe is not open", reason=CLOSED
            )
        return self._pipe

    async def _exchange(self, pipe: SmbPipe, data: bytes, transceive: bool) -> bytes:
        pipe.deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            if transceive:
                return await pipe.transceive(data)
            await pipe.write(data)
            return b""
        finally:
            pipe.deadline = None

    def transceive(self, data: bytes) -> bytes:
        self._due = 0
        return self._run(self._exchange(self._open_pipe(), data, True))

    def write(self, data: bytes) -> None:
        self._run(self._exchange(self._open_pipe(), data, False))

    def exchange(self, pdus: list[bytes], feed: Callable[[bytes], bool], max_frag: int) -> None:
        """One call on the engine loop: the leading PDUs written, the last one transceived, then READs
        (several in flight, for what the fragments say is due) until ``feed(data)`` says the answer is
        whole. ``timeout`` bounds the whole exchange."""
        self._run(self._exchange_all(self._open_pipe(), pdus, feed, max_frag))

    async def _exchange_all(
        self, pipe: SmbPipe, pdus: list[bytes], feed: Callable[[bytes], bool], max_frag: int
    ) -> None:
        pipe.deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            for pdu in pdus[:-1]:
                await pipe.write(pdu)
            data = await pipe.transceive(pdus[-1])
            tracker = FragmentTracker(max_frag)
            while not feed(data):
                tracker.feed(data)
                pipe.read_ahead(tracker.due())
                data = await pipe.read()
        finally:
            pipe.deadline = None

    def read_ahead(self, due: int) -> None:
        """How many bytes of the answer are certainly still coming (see SmbPipe.read_ahead); applied by
        the next :meth:`read`, in the same hand-off to the engine loop."""
        self._due = due

    async def _read(self, pipe: SmbPipe, due: int) -> bytes:
        pipe.deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            if due:
                pipe.read_ahead(due)
            return await pipe.read()
        finally:
            pipe.deadline = None

    def read(self) -> bytes:
        due, self._due = self._due, 0
        return self._run(self._read(self._open_pipe(), due))

    @property
    def local_address(self) -> str | None:
        """Our end's address on the open connection (None if not open)."""
        pipe = self._pipe
        return pipe.smb.local_address if pipe is not None else None

    def alive(self) -> bool:
        """Whether the SMB connection still looks usable (open, in step, no failure seen)."""
        pipe = self._pipe
        return pipe is not None and pipe.alive

    def close(self) -> None:
        # Closing the TCP connection ends the session, its tree connect and the pipe open on the server
        # (MS-SMB2 §3.3.7.1), without round trips that could hang on an unresponsive server.
        pipe, self._pipe = self._pipe, None
        running = self._running
        if running is not None and not in_engine_thread():  # on the loop: the running call is ours
            self._closed = True  # an open in progress must not leave a pipe behind
            running.cancel()
        if pipe is not None:
            call_soon(pipe.close)


# --------------------------------------------------------------------------------------------------------
# The local server: DCE/RPC PDUs over a Unix socket
# --------------------------------------------------------------------------------------------------------


class UnixSocketTransport:
    """The local netsession server's srvsvc endpoint: a SOCK_STREAM Unix socket carrying plain
    connection-oriented DCE/RPC PDUs, each framed by its own frag_length (ncalrpc style). The server learns
    who is calling from the socket's peer credentials; no authentication is sent."""

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"UnixSocketTransport({str(self.path)!r})"

    def open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"no local netsession server is listening on {self.path}"
            ) from None
        except PermissionError:
            sock.close()
            raise TransportError(ERROR_ACCESS_DENIED, f"{self.path}: permission denied") from None
        except OSError as exc:
            sock.close()
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.path}: {exc.strerror or exc}") from None
        self._sock = sock

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.path}: the socket is not open")
        return self._sock

    def write(self, data: bytes) -> None:
        try:
            self._socket().sendall(data)
        except OSError as exc:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.path}: {exc.strerror or exc}") from None

    def read(self) -> bytes:
        try:
            data = self._socket().recv(PIPE_IO_SIZE)
        except OSError as exc:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.path}: {exc.strerror or exc}", delivered=True
            ) from None
        if not data:
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.path}: the server closed the connection", delivered=True
            )
        return data

    def transceive(self, data: bytes) -> bytes:
        self.write(data)
        return self.read()

    def alive(self) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            # Nothing is due between calls: readable now means end-of-stream or a stray byte; either way
            # the association is no longer in step.
            sock.setblocking(False)
            try:
                sock.recv(1, socket.MSG_PEEK)
                return False
            finally:
                sock.settimeout(self.timeout)
        except BlockingIOError:
            return True
        except OSError:
            return False

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


__all__ = [
    "FSCTL_PIPE_TRANSCEIVE",
    "PIPE_IO_SIZE",
    "PipeTransport",
    "SmbPipeTransport",
    "TransportError",
    "UnixSocketTransport",
]
