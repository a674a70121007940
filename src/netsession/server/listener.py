"""The asyncio drivers: thin layers that move bytes between sockets and the sans-I/O connections.

* :class:`SmbProtocol` — one per TCP connection (Direct TCP, MS-SMB2 §2.1): bytes in to a
  :class:`~netsession.wire.smb2.connection.ServerConnection`, its output back out, closed when it says so.
* :class:`LocalRpcProtocol` — one per connection on the state directory's Unix socket: the local
  computer's srvsvc (ncalrpc), the caller decided by the peer's uid.
* :func:`serve` — listens, limits, logs, and stops gracefully on SIGINT/SIGTERM.

One bad client never disturbs another: whatever one connection's bytes cause is caught and ends that
connection alone; a client that does not read its responses has its reading paused (back-pressure); an
idle connection is dropped after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import struct
from collections.abc import Sequence
from pathlib import Path

from netsession.server.app import NetsessionServer
from netsession.server.pipes import RpcEndpoint
from netsession.server.srvsvc import CallContext
from netsession.wire.smb2.connection import ServerConnection

log = logging.getLogger("netsession.server")

DEFAULT_LISTEN = "127.0.0.1:4445"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, or ``PORT`` alone (every address) -> (host, port)."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
    elif value.isdigit():
        host, port = "", value
    else:
        host, sep, port = value.rpartition(":")
        if not sep:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host, number


def listener_label(host: str, port: int) -> str:
    """How a listener is named (personalities, logs): ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` for all."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Connections:
    """The live SMB connections, by their sans-I/O objects (for NetrSessionDel across connections)."""

    def __init__(self) -> None:
        self.by_conn: dict[ServerConnection, SmbProtocol] = {}


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
        self._idle: asyncio.TimerHandle | None = None
        self._active = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if len(self.registry.by_conn) >= self.server.options.max_connections:
            log.warning("refusing connection from %s: %d connections open", host, len(self.registry.by_conn))
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = self.server.new_connection(host.split("%")[0], listener=self.listener)
        self.registry.by_conn[self.conn] = self
        self._arm_idle()

    def _arm_idle(self) -> None:
        self._active = True
        if self._idle is None and self.idle_timeout > 0:
            self._idle = asyncio.get_running_loop().call_later(self.idle_timeout, self._idle_check)

    def _idle_check(self) -> None:
        self._idle = None
        if self._active:  # something arrived since the timer was set: wait one more period
            self._active = False
            self._idle = asyncio.get_running_loop().call_later(self.idle_timeout, self._idle_check)
            return
        if self.transport is not None:
            log.info("dropping idle connection from %s", self.conn.client_address if self.conn else "?")
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        self._active = True
        try:
            conn.receive_data(data)
        except Exception:  # a bug must cost this connection, never the server
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
        if conn.closing:
            if conn.close_reason:
                log.info("closing connection from %s: %s", conn.client_address, conn.close_reason)
            transport.close()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # the client does not read: stop reading its requests

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        conn, self.conn = self.conn, None
        if conn is not None:
            self.registry.by_conn.pop(conn, None)
            try:
                conn.connection_lost()
            except Exception:
                log.exception("error while ending the sessions of %s", conn.client_address)
        self.transport = None


class LocalRpcProtocol(asyncio.Protocol):
    """srvsvc over the Unix socket: DCE/RPC PDUs on a stream, the peer's uid deciding the caller."""

    def __init__(self, server: NetsessionServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.endpoint: RpcEndpoint | None = None

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
        caller = self.server.local_caller(uid)
        self.endpoint = RpcEndpoint(self.server.service, CallContext(caller, f"local:uid={uid}"))

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # the peer does not read its replies: stop reading its calls

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.endpoint is None or self.transport is None:
            return
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


def _raise_fd_limit() -> None:
    """Each session holds a socket: let the process have as many as the system allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(
    server: NetsessionServer,
    listen: Sequence[tuple[str, int]],
    local_socket: Path | None,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Listen on every address and on ``local_socket`` until SIGINT/SIGTERM (or ``stop`` is set)."""
    _raise_fd_limit()
    loop = asyncio.get_running_loop()
    registry = _Connections()

    def changed(conn: ServerConnection) -> None:
        protocol = registry.by_conn.get(conn)
        if protocol is not None:
            loop.call_soon(protocol.flush)  # after the current request's own response has gone out

    server.on_connection_changed = changed
    servers: list[asyncio.base_events.Server] = []
    for host, port in listen:
        label = listener_label(host, port)
        srv = await loop.create_server(
            lambda label=label: SmbProtocol(server, registry, server.options.idle_timeout, label),
            host or None, port, reuse_address=True, backlog=1024,
        )
        servers.append(srv)
        for sock in srv.sockets:
            log.info("listening on %s (SMB2/3 over TCP)", sock.getsockname()[:2])
    if local_socket is not None:
        local_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            local_socket.unlink()
        srv = await loop.create_unix_server(lambda: LocalRpcProtocol(server), str(local_socket))
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
            with contextlib.suppress(FileNotFoundError):
                local_socket.unlink()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
