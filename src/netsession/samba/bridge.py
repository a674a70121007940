"""The bridge's asyncio driver: smbd's pipe sockets in, srvsvc served here, every other pipe forwarded.

For each pipe name it listens on ``<socket dir>/np/<name>`` (the directory smbd's
``external_rpc_pipe:socket_dir`` names). On a connection smbd first sends its ``named_pipe_auth_req``:

* on ``srvsvc`` the bridge decodes it (:mod:`netsession.samba.npa`), answers message mode, and serves the
  DCE/RPC PDUs that follow with netsession's srvsvc over Samba's sessions, as the caller the token names;
* on any other name it connects to samba-dcerpcd's socket ``<ncalrpc dir>/np/<name>``, replays the
  request as it arrived, and from then on copies bytes both ways untouched (samba-dcerpcd's reply
  included). samba-dcerpcd is started the way smbd starts it (``--libexec-rpcds --np-helper
  --ready-signal-fd``) when its socket does not answer.

A malformed or oversized request ends that connection alone, after a reply carrying the NTSTATUS
(:class:`~netsession.samba.npa.NpaError`); an error on one connection never touches another.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from netsession.samba.config import SambaConfig
from netsession.samba.feed import SambaFeed
from netsession.samba.messaging import Messenger
from netsession.samba.npa import (
    HandshakeReader,
    MessageReader,
    NpaError,
    NtStatus,
    decode_request,
    encode_message,
    encode_reply,
)
from netsession.samba.service import BridgeSrvsvcService, caller_from_session_info
from netsession.samba.state import SambaState
from netsession.server.pipes import RpcEndpoint
from netsession.server.srvsvc import CallContext, ServerIdentity
from netsession.table import AccessPolicy, Caller, SessionTable

log = logging.getLogger("netsession.samba")

SRVSVC: Final = "srvsvc"
# The pipes samba-dcerpcd 4.17's rpcd_* helpers serve (its <ncalrpc dir>/np after start); the bridge
# listens on these and on whatever else that directory holds.
DEFAULT_PIPES: Final = (
    "epmapper", "eventlog", "fssagentrpc", "initshutdown", "lsarpc", "lsass", "mdssvc", "netdfs",
    "netlogon", "ntsvcs", "plugplay", "samr", "spoolss", "srvsvc", "svcctl", "winreg", "wkssvc",
)
DEFAULT_DCERPCD: Final = "/usr/libexec/samba/samba-dcerpcd"
DCERPCD_START_TIMEOUT: Final = 30.0
HANDSHAKE_TIMEOUT: Final = 30.0


class Bridge:
    """One bridge for one smbd (its smb.conf)."""

    def __init__(
        self,
        config: SambaConfig,
        socket_dir: str,
        *,
        policy: AccessPolicy = AccessPolicy.CLASSIC,
        dcerpcd: str = DEFAULT_DCERPCD,
    ) -> None:
        self.config = config
        self.np_dir = Path(socket_dir) / "np"
        self.upstream_dir = Path(config.ncalrpc_dir) / "np"
        self.dcerpcd = dcerpcd
        self.table = SessionTable(policy, clock=time.time)  # Samba's NTTIMEs are wall time
        self.service = BridgeSrvsvcService(self.table, ServerIdentity(config.netbios_name), config.shares)
        self.feed = SambaFeed(self.table, SambaState(config.lock_dir), Messenger(config.lock_dir))
        self.service.attach(self.feed)
        self._servers: list[asyncio.AbstractServer] = []
        self._paths: list[Path] = []
        self._dcerpcd_lock = asyncio.Lock()
        self._dcerpcd: asyncio.subprocess.Process | None = None

    # -- samba-dcerpcd -------------------------------------------------------------------------------

    def upstream(self, name: str) -> Path:
        return self.upstream_dir / name

    async def start_dcerpcd(self) -> None:
        """Start samba-dcerpcd as smbd does and wait until it says it is ready."""
        async with self._dcerpcd_lock:
            if _connectable(self.upstream(SRVSVC)) or _connectable(self.upstream("epmapper")):
                return
            read_fd, write_fd = os.pipe()
            try:
                argv = [
                    self.dcerpcd, f"--configfile={self.config.smb_conf}", "--libexec-rpcds",
                    f"--ready-signal-fd={write_fd}", "--np-helper",
                ]
                log.info("starting %s", " ".join(argv))
                self._dcerpcd = await asyncio.create_subprocess_exec(
                    *argv, pass_fds=(write_fd,), stdin=asyncio.subprocess.DEVNULL, start_new_session=True
                )
                os.close(write_fd)
                write_fd = -1
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(loop.run_in_executor(None, os.read, read_fd, 1), DCERPCD_START_TIMEOUT)
            finally:
                os.close(read_fd)
                if write_fd >= 0:
                    os.close(write_fd)

    def pipe_names(self) -> list[str]:
        names = set(DEFAULT_PIPES)
        with contextlib.suppress(OSError):
            names.update(p.name for p in self.upstream_dir.iterdir() if p.is_socket())
        return sorted(names)

    # -- listening -----------------------------------------------------------------------------------

    async def start(self, names: Iterable[str] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.np_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.np_dir.resolve() == self.upstream_dir.resolve():
            raise OSError(errno.EINVAL, "the socket dir is the ncalrpc dir, which samba-dcerpcd empties")
        for name in names if names is not None else self.pipe_names():
            path = self.np_dir / name
            _remove_stale_socket(path)
            if name == SRVSVC:
                server = await loop.create_unix_server(lambda: SrvsvcPipe(self), str(path))
            else:
                server = await loop.create_unix_server(_forward_factory(self, name), str(path))
            self._servers.append(server)
            self._paths.append(path)
        log.info("serving srvsvc and forwarding %d pipes on %s", len(self._paths) - 1, self.np_dir)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for path in self._paths:
            with contextlib.suppress(OSError):
                path.unlink()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._paths.clear()


def _forward_factory(bridge: Bridge, name: str) -> Callable[[], ForwardPipe]:
    return lambda: ForwardPipe(bridge, name)


def _connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    path.unlink()


class _PipeBase(asyncio.Protocol):
    """What both kinds of pipe connection share: the handshake's first bytes, its deadline, back-pressure."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.transport: asyncio.Transport | None = None
        self.handshake: HandshakeReader | None = HandshakeReader()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._deadline = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        if self.handshake is not None and self.transport is not None:
            log.info("no named_pipe_auth_req within %.0f s; closing", HANDSHAKE_TIMEOUT)
            self.transport.abort()

    def _refuse(self, exc: NpaError) -> None:
        log.warning("refusing a pipe connection: %s (%s)", exc, NtStatus(exc.status).name)
        assert self.transport is not None
        self.transport.write(encode_reply(exc.status, exc.level))
        self.transport.close()

    def _handshake_done(self) -> None:
        self.handshake = None
        if self._deadline is not None:
            self._deadline.cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()


class SrvsvcPipe(_PipeBase):
    """srvsvc, served here: message-mode pipe data carrying DCE/RPC PDUs."""

    def __init__(self, bridge: Bridge) -> None:
        super().__init__(bridge)
        self.endpoint: RpcEndpoint | None = None
        self.messages = MessageReader()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            if self.handshake is not None:
                try:
                    got = self.handshake.feed(data)
                    if got is None:
                        return
                    request, data = got
                    req = decode_request(request)
                except NpaError as exc:
                    self._refuse(exc)
                    return
                self._handshake_done()
                user, groups, authenticated = caller_from_session_info(req.session_info)
                caller = Caller(user, groups, authenticated)
                address = req.remote_client_addr
                self.endpoint = RpcEndpoint(self.bridge.service, CallContext(caller, address))
                log.debug("srvsvc opened by %s from %s:%d", user, address, req.remote_client_port)
                self.transport.write(encode_reply(NtStatus.STATUS_SUCCESS, req.level))
            assert self.endpoint is not None
            for message in self.messages.feed(data):
                for pdu in self.endpoint.receive(message):
                    self.transport.write(encode_message(pdu))
            if self.endpoint.broken:
                self.transport.close()
        except Exception:
            log.exception("internal error on a srvsvc pipe; closing it")
            self.transport.abort()


class _Upstream(asyncio.Protocol):
    def __init__(self, down: ForwardPipe) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.down.transport is not None:
            self.down.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.down.transport is not None:
            self.down.transport.close()

    def pause_writing(self) -> None:
        if self.down.transport is not None:
            self.down.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.down.transport is not None and not self.down.transport.is_closing():
            self.down.transport.resume_reading()


class ForwardPipe(_PipeBase):
    """Any other pipe: replayed to samba-dcerpcd, then bytes copied both ways."""

    def __init__(self, bridge: Bridge, name: str) -> None:
        super().__init__(bridge)
        self.name = name
        self.up: _Upstream | None = None
        self._pending: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.handshake is not None:
            try:
                got = self.handshake.feed(data)
                if got is None:
                    return
                request, rest = got
                decode_request(request)  # the same strict check as for srvsvc
            except NpaError as exc:
                self._refuse(exc)
                return
            self._handshake_done()
            self._pending = [request, rest]
            self.transport.pause_reading()
            self._task = asyncio.get_running_loop().create_task(self._connect())
            return
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(data)
        else:
            self._pending.append(data)

    async def _connect(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        path = str(self.bridge.upstream(self.name))
        for attempt in (1, 2):
            try:
                _, up = await loop.create_unix_connection(lambda: _Upstream(self), path)
                break
            except OSError as exc:
                if attempt == 2:
                    log.warning("cannot reach samba-dcerpcd for %s at %s: %s", self.name, path, exc)
                    self.transport.close()
                    return
                try:
                    await self.bridge.start_dcerpcd()
                except (TimeoutError, OSError) as start_exc:
                    log.error("cannot start samba-dcerpcd (%s): %s", self.bridge.dcerpcd, start_exc)
                    self.transport.close()
                    return
        self.up = up
        assert up.transport is not None
        for chunk in self._pending:
            if chunk:
                up.transport.write(chunk)
        self._pending.clear()
        if not self.transport.is_closing():
            self.transport.resume_reading()
        else:
            up.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()
        elif self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None and not self.up.transport.is_closing():
            self.up.transport.resume_reading()


async def run(bridge: Bridge) -> None:
    """Start (samba-dcerpcd first if its sockets are not there, to learn its pipe names), serve until
    SIGINT/SIGTERM, then remove the sockets."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start_dcerpcd()
    except (TimeoutError, OSError) as exc:
        log.warning("samba-dcerpcd not started (%s); forwarding will try again on demand", exc)
    await bridge.start()
    try:
        await stop.wait()
    finally:
        await bridge.close()
