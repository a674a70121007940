"""The asyncio drivers: thin layers that move bytes between sockets and the sans-I/O connections.

* :class:`SmbProtocol` — one per TCP connection (Direct TCP, MS-SMB2 §2.1): bytes in to a
  :class:`~netsession.wire.smb2.connection.ServerConnection`, its output back out, closed when it says so.
* :class:`LocalRpcProtocol` — one per connection on the state directory's Unix socket: the local
  computer's srvsvc (ncalrpc), the caller decided by the peer's uid.
* :func:`serve` — listens, limits, logs, and stops gracefully on SIGINT/SIGTERM.

One bad client never disturbs another: whatever one connection's bytes cause is caught and ends that
connection alone; a client that does not read its responses has its reading paused (back-pressure); an
idle connection is dropped after ``idle_timeout``, and one that has not logged on ``logon_timeout``
seconds after it connected is dropped too (a client trickling bytes is not idle, but gets nowhere). A
connection the logon throttle holds (``ServerConnection.wait_seconds``) is not read from until its
timer fires; nothing sleeps. The Unix socket has its own connection limit and the same idle timeout.
A resource error in accept() (out of file descriptors) is logged once per ``ACCEPT_ERROR_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from netsession.errors import shown
from netsession.server.app import NetsessionServer
from netsession.server.pipes import RpcEndpoint
from netsession.server.srvsvc import CallContext
from netsession.server.statelock import remove_own_socket, socket_identity
from netsession.wire.smb2.connection import ServerConnection

log = logging.getLogger("netsession.server")

DEFAULT_LISTEN = "127.0.0.1:4445"
# How often at most an accept() resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) is logged.
ACCEPT_ERROR_INTERVAL = 60.0
# File descriptors kept free for everything but client connections (listeners, the account store, logs).
RESERVED_FDS = 64
# After a connection ends, memory the allocator holds is handed back to the system at most this often.
TRIM_INTERVAL = 5.0


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, or ``PORT`` alone (every address) -> (host, port)."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{shown(value)}: expected [IPv6]:PORT")
    elif value.isdigit():
        host, port = "", value
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError(f"{shown(value)}: expected HOST:PORT")
    if not port.isdigit():
        raise ValueError(f"{shown(value)}: the port is not a number")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"{shown(value)}: the port is out of range (0-65535)")
    return host, number


def listener_label(host: str, port: int) -> str:
    """How a listener is named (personalities, logs): ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` for all."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Connections:
    """The live SMB connections, by their sans-I/O objects (for NetrSessionDel across connections), and
    the local socket's connections (counted for its limit)."""

    def __init__(self, max_connections: int) -> None:
        self.by_conn: dict[ServerConnection, SmbProtocol] = {}
        self.local: set[LocalRpcProtocol] = set()
        self.max_connections = max_connections
        self._trim = _MemoryTrimmer()

    def ended(self) -> None:
        self._trim.soon()


class _MemoryTrimmer:
    """glibc keeps freed memory for reuse; after connections end, give it back (malloc_trim), debounced."""

    def __init__(self) -> None:
        self._last = 0.0
        self._pending = False
        self._trim: Callable[[int], Any] | None = None
        name = ctypes.util.find_library("c")
        if name:
            with contextlib.suppress(OSError, AttributeError):
                self._trim = ctypes.CDLL(name).malloc_trim

    def soon(self) -> None:
        if self._trim is None or self._pending:
            return
        self._pending = True
        delay = max(0.0, self._last + TRIM_INTERVAL - time.monotonic())
        asyncio.get_running_loop().call_later(delay, self._run)

    def _run(self) -> None:
        self._pending = False
        self._last = time.monotonic()
        if self._trim is not None:
            self._trim(0)


class _IdleTimer:
    """Closes a transport silent for ``timeout`` seconds (re-armed lazily: one timer per period)."""

    def __init__(self, timeout: float, on_idle: Callable[[], None]) -> None:
        self.timeout = timeout
        self._on_idle = on_idle
        self._handle: asyncio.TimerHandle | None = None
        self._active = False

    def touch(self) -> None:
        self._active = True
        if self._handle is None and self.timeout > 0:
            self._handle = asyncio.get_running_loop().call_later(self.timeout, self._check)

    def _check(self) -> None:
        self._handle = None
        if self._active:  # something arrived since the timer was set: wait one more period
            self._active = False
            self._handle = asyncio.get_running_loop().call_later(self.timeout, self._check)
            return
        self._on_idle()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SmbProtocol(asyncio.Protocol):
    def __init__(
        self, server: NetsessionServer, registry: _Connections, idle_timeout: float, listener: str = ""
    ) -> None:
        self.server = server
        self.listener = listener  # HOST:PORT as given to --listen
        self.registry = registry
        self.idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self._idle = _IdleTimer(idle_timeout, self._idle_close)
        self._deadline: asyncio.TimerHandle | None = None
        self._wait: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if len(self.registry.by_conn) >= self.registry.max_connections:
            log.warning("refusing connection from %s: %d connections open", host, len(self.registry.by_conn))
            self.server.observer.connection_rejected(self.listener, "max_connections")
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else 0
        self.conn = self.server.new_connection(host.split("%")[0], listener=self.listener, client_port=port)
        self.server.observer.connection_opened(self.listener)
        self.registry.by_conn[self.conn] = self
        self._idle.touch()
        timeout = self.server.options.logon_timeout
        if timeout > 0:
            self._deadline = asyncio.get_running_loop().call_later(timeout, self._logon_deadline)

    def _idle_close(self) -> None:
        if self.transport is not None:
            log.info("dropping idle connection from %s", self.conn.client_address if self.conn else "?")
            self.server.observer.limit_hit("idle_timeout")
            self.transport.close()

    def _logon_deadline(self) -> None:
        self._deadline = None
        conn = self.conn
        if conn is not None and not conn.logged_on and self.transport is not None:
            log.info(
                "dropping connection from %s: no logon within %g s", conn.client_address,
                self.server.options.logon_timeout,
            )
            self.server.observer.limit_hit("logon_timeout")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        self.server.observer.received(self.listener, len(data))
        self._idle.touch()
        try:
            conn.receive_data(data)
        except Exception:  # a bug must cost this connection, never the server
            log.exception("internal error on connection from %s; closing it", conn.client_address)
            conn.closing = True
        self.flush()

    def _resume(self) -> None:
        """The logon throttle's wait is over: release the held answer, go on reading."""
        self._wait = None
        conn, transport = self.conn, self.transport
        if conn is None or transport is None:
            return
        try:
            conn.resume()
        except Exception:
            log.exception("internal error on connection from %s; closing it", conn.client_address)
            conn.closing = True
        self.flush()

    def flush(self) -> None:
        """Send what the connection queued; close when it asks to, after that."""
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        out = conn.data_to_send()
        if out:
            transport.write(out)
            self.server.observer.sent(self.listener, len(out))
        if conn.closing:
            if conn.close_reason:
                log.info("closing connection from %s: %s", conn.client_address, conn.close_reason)
            transport.close()
        elif conn.wait_seconds > 0:
            if self._wait is None:
                transport.pause_reading()  # nothing is read from it while it waits
                self._wait = asyncio.get_running_loop().call_later(conn.wait_seconds, self._resume)
        elif self._wait is None and not transport.is_reading() and transport.get_write_buffer_size() == 0:
            transport.resume_reading()  # the wait is over (and the client reads what it is sent)
        if self._deadline is not None and conn.logged_on:
            self._deadline.cancel()
            self._deadline = None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # the client does not read: stop reading its requests

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and self._wait is None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._idle.cancel()
        for handle in (self._deadline, self._wait):
            if handle is not None:
                handle.cancel()
        self._deadline = self._wait = None
        conn, self.conn = self.conn, None
        if conn is not None:
            self.server.observer.connection_closed(self.listener)
            self.registry.by_conn.pop(conn, None)
            try:
                conn.connection_lost()
            except Exception:
                log.exception("error while ending the sessions of %s", conn.client_address)
            self.registry.ended()
        self.transport = None


class LocalRpcProtocol(asyncio.Protocol):
    """srvsvc over the Unix socket: DCE/RPC PDUs on a stream, the peer's uid deciding the caller."""

    def __init__(self, server: NetsessionServer, registry: _Connections) -> None:
        self.server = server
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.endpoint: RpcEndpoint | None = None
        self.uid = -1
        self._idle = _IdleTimer(server.options.idle_timeout, self._idle_close)

    def _idle_close(self) -> None:
        if self.transport is not None:
            log.info("dropping idle local connection")
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
        except (OSError, AttributeError):
            log.warning("local connection without peer credentials; refusing it")
            transport.abort()
            return
        options = self.server.options
        mine = sum(1 for p in self.registry.local if p.uid == uid)
        if len(self.registry.local) >= options.max_local_connections or (
            uid not in (0, os.geteuid()) and mine >= options.max_local_connections_per_uid
        ):
            log.warning(
                "refusing local connection from uid %d: %d local connections open (%d of its own)",
                uid, len(self.registry.local), mine,
            )
            self.server.observer.connection_rejected("local", "max_local_connections")
            transport.abort()
            return
        self.uid = uid
        self.registry.local.add(self)
        self._idle.touch()
        caller = self.server.local_caller(uid)
        self.endpoint = RpcEndpoint(self.server.service, CallContext(caller, f"local:uid={uid}"))

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # the peer does not read its replies: stop reading its calls

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._idle.cancel()
        if self in self.registry.local:
            self.registry.local.discard(self)
            self.registry.ended()
        self.transport = None
        self.endpoint = None

    def data_received(self, data: bytes) -> None:
        if self.endpoint is None or self.transport is None:
            return
        self._idle.touch()
        try:
            pdus = self.endpoint.receive(data)
        except Exception:
            log.exception("internal error on a local srvsvc connection; closing it")
            self.transport.close()
            return
        for pdu in pdus:
            self.transport.write(pdu)
        if self.endpoint.broken:
            self.transport.close()


def _raise_fd_limit() -> int:
    """Each session holds a socket: let the process have as many as the system allows; the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


class _AcceptErrors:
    """The event loop's exception handler: an accept() resource error is one line per interval (with how
    many were not logged), not a traceback per attempt; everything else goes to the default handler."""

    def __init__(self, interval: float = ACCEPT_ERROR_INTERVAL) -> None:
        self.interval = interval
        self._last = -interval
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if "accept" not in str(context.get("message", "")) or not isinstance(exc, OSError):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.error("cannot accept connections: %s%s; retrying", exc.strerror or exc, more)
        self._last, self.suppressed = now, 0


async def serve(
    server: NetsessionServer,
    listen: Sequence[tuple[str, int]],
    local_socket: Path | None,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Listen on every address and on ``local_socket`` until SIGINT/SIGTERM (or ``stop`` is set)."""
    fds = _raise_fd_limit()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_AcceptErrors())
    local_max = server.options.max_local_connections if local_socket is not None else 0
    max_connections = min(server.options.max_connections, max(1, fds - RESERVED_FDS - local_max))
    if max_connections < server.options.max_connections:
        log.warning(
            "at most %d connections: the process may open %d files (ulimit -n)", max_connections, fds
        )
    registry = _Connections(max_connections)

    def changed(conn: ServerConnection) -> None:
        protocol = registry.by_conn.get(conn)
        if protocol is not None:
            loop.call_soon(protocol.flush)  # after the current request's own response has gone out

    server.on_connection_changed = changed
    servers: list[asyncio.base_events.Server] = []
    for host, port in listen:
        label = listener_label(host, port)
        server.listening(label)  # a transport of NetrServerTransportEnum
        srv = await loop.create_server(
            lambda label=label: SmbProtocol(server, registry, server.options.idle_timeout, label),
            host or None, port, reuse_address=True, backlog=1024,
        )
        servers.append(srv)
        for sock in srv.sockets:
            log.info("listening on %s (SMB2/3 over TCP)", sock.getsockname()[:2])
    own_socket: tuple[int, int] | None = None
    if local_socket is not None:
        # The caller holds the state directory's lock (netsession.server.statelock): a socket already
        # there is a dead server's, never a running one's.
        local_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            local_socket.unlink()
        srv = await loop.create_unix_server(lambda: LocalRpcProtocol(server, registry), str(local_socket))
        own_socket = socket_identity(local_socket)
        os.chmod(local_socket, 0o666)  # anyone may ask; the uid decides what they get
        servers.append(srv)
        log.info("listening on %s (local srvsvc)", local_socket)

    for extension in server.extensions:
        await extension.start()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("stopping: %d connections open", len(registry.by_conn))
        for extension in reversed(server.extensions):
            with contextlib.suppress(Exception):
                await extension.stop()
        for srv in servers:
            srv.close()
        for protocol in list(registry.by_conn.values()):
            if protocol.transport is not None:
                protocol.transport.close()
        for srv in servers:
            await srv.wait_closed()
        if local_socket is not None:
            remove_own_socket(local_socket, own_socket)  # never a socket another server made
        for local_protocol in list(registry.local):
            if local_protocol.transport is not None:
                local_protocol.transport.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
