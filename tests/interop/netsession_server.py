r"""A real `netsession serve` for tests: a subprocess on a free loopback port with its own state directory.

:class:`NetsessionServerProcess` creates the state directory's account store (an administrator, a server
operator, two plain users — :data:`ACCOUNTS`), starts ``netsession serve --listen 127.0.0.1:PORT
--state-dir DIR`` and stops it (SIGTERM, wait, then SIGKILL). Until ``src/netsession/cli.py`` exists the
command is this module run as a script, which builds the same argument parser from
:func:`netsession.server.cli.register`; afterwards it is the real ``netsession`` command's ``main``.

The server's own view of its sessions comes from its local Unix socket (srvsvc over ncalrpc, where root
is an administrator): :meth:`NetsessionServerProcess.sessions`. :class:`SrvsvcRpc` is our
``ClientAssociation`` bound to srvsvc over any transport that can send and receive DCE/RPC PDUs.

Real clients: :meth:`NetsessionServerProcess.hold_smbclient` keeps ``smbclient //127.0.0.1/IPC$`` connected
(its standard input a pipe kept open) until :meth:`HeldSmbclient.close`; :meth:`NetsessionServerProcess.
reset` ends every client process the server started and waits for the session table to be empty.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from netsession.errors import NetApiStatus
from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS, USERS
from netsession.records import MAX_PREFERRED_LENGTH, SESSION_INFO_502
from netsession.wire.dcerpc import (
    BindAccepted,
    BindRejected,
    ClientAssociation,
    Event,
    FaultReceived,
    ResponseReceived,
    ShutdownReceived,
    SyntaxId,
)
from netsession.wire.srvsvc import (
    SRVSVC_UUID,
    SRVSVC_VERSION,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
SMBCLIENT = "smbclient"
RPCCLIENT = "rpcclient"
SAMBA_CLIENT_TOOLS = (SMBCLIENT, RPCCLIENT)
LOOPBACK = "127.0.0.1"
LOOPBACK_CNAME = "\\\\127.0.0.1"
SOCKET_NAME = "srvsvc.sock"
# What the Samba client tools read instead of the host's /etc/samba/smb.conf.
CLIENT_CONF = "[global]\n    client min protocol = SMB2_02\n    client max protocol = SMB3\n"


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    groups: tuple[str, ...]

    @property
    def credentials(self) -> str:
        """``-U`` for the Samba tools."""
        return f"{self.name}%{self.password}"


ADMIN = Account("admin", "Adm1n-pw!", (ADMINISTRATORS,))
OPERATOR = Account("oper", "0per-pw!", (SERVER_OPERATORS,))
ALICE = Account("alice", "Al1ce-pw!", (USERS,))
BOB = Account("bob", "B0b-pw!", (USERS,))
ACCOUNTS: tuple[Account, ...] = (ADMIN, OPERATOR, ALICE, BOB)


def free_port() -> int:
    """A TCP port nobody listens on now (bind port 0 and read what the kernel chose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def missing_samba_clients() -> str | None:
    missing = [t for t in SAMBA_CLIENT_TOOLS if shutil.which(t) is None]
    return f"Samba client tools not installed: {', '.join(missing)}" if missing else None


T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something true; that value. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(0.02)


REAL_COMMAND = [sys.executable, "-c", "import sys; from netsession.cli import main; sys.exit(main())"]
STAND_IN_COMMAND = [sys.executable, str(Path(__file__).resolve())]


def netsession_commands() -> list[list[str]]:
    """argv prefixes that run `netsession`, best first: the real command once ``netsession.cli`` exists,
    then this module's stand-in (built from the same ``netsession.server.cli.register``)."""
    if importlib.util.find_spec("netsession.cli") is not None:
        return [REAL_COMMAND, STAND_IN_COMMAND]
    return [STAND_IN_COMMAND]


# -- DCE/RPC srvsvc over any PDU transport -----------------------------------------------------------


class PduTransport(Protocol):
    """Moves DCE/RPC PDUs: ``send`` one PDU, ``recv`` the next bytes the server sent."""

    def send(self, data: bytes) -> None: ...

    def recv(self) -> bytes: ...


class RpcFault(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"DCE/RPC fault 0x{status:08X}")
        self.status = status


SRVSVC_SYNTAX = SyntaxId.parse(SRVSVC_UUID, *SRVSVC_VERSION)
_TERMINAL_EVENTS = (BindAccepted, BindRejected, ResponseReceived, FaultReceived, ShutdownReceived)


class SrvsvcRpc:
    """Our own ClientAssociation bound to srvsvc, with the srvsvc codecs, over ``transport``."""

    def __init__(self, transport: PduTransport) -> None:
        self.transport = transport
        self.association = ClientAssociation()
        self.association.bind(SRVSVC_SYNTAX)
        event = self._exchange()
        if not isinstance(event, BindAccepted):
            raise AssertionError(f"srvsvc bind refused: {event}")

    def _exchange(self) -> Event:
        for pdu in self.association.data_to_send():
            self.transport.send(pdu)
        while True:
            data = self.transport.recv()
            if not data:
                raise ConnectionError("the server closed the RPC transport")
            for event in self.association.receive_data(data):
                if isinstance(event, _TERMINAL_EVENTS):
                    return event

    def call(self, opnum: int, stub: bytes) -> bytes:
        """The response stub; RpcFault for a fault PDU."""
        self.association.request(opnum, stub)
        event = self._exchange()
        if isinstance(event, FaultReceived):
            raise RpcFault(event.status)
        if not isinstance(event, ResponseReceived):
            raise AssertionError(f"unexpected {event}")
        return event.stub

    def session_enum(
        self,
        level: int,
        client: str | None = None,
        user: str | None = None,
        *,
        preferred_max_length: int = MAX_PREFERRED_LENGTH,
        resume_handle: int | None = 0,
    ) -> NetrSessionEnumResponse:
        """NetrSessionEnum (opnum 12): the decoded response."""
        request = NetrSessionEnumRequest(
            None, client, user, level, preferred_max_length, resume_handle
        )
        return NetrSessionEnumResponse.decode(self.call(request.opnum, request.encode()))

    def session_del(self, client: str | None, user: str | None) -> int:
        """NetrSessionDel (opnum 13): its NET_API_STATUS."""
        request = NetrSessionDelRequest(None, client, user)
        return NetrSessionDelResponse.decode(self.call(request.opnum, request.encode())).status

    def exchange(self, request: Any, response: Any, *decode_args: Any) -> Any:
        """Any srvsvc request message; the decoded ``response`` (a GetInfo response is given the
        level)."""
        return response.decode(self.call(request.opnum, request.encode()), *decode_args)


class UnixSocketTransport:
    """ncalrpc: PDUs on a SOCK_STREAM Unix socket."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def local_srvsvc(path: Path) -> Iterator[SrvsvcRpc]:
    transport = UnixSocketTransport(path)
    try:
        yield SrvsvcRpc(transport)
    finally:
        transport.close()


# -- client processes ---------------------------------------------------------------------------------


@dataclass
class HeldSmbclient:
    """``smbclient //127.0.0.1/IPC$`` at its prompt, reading commands from a pipe we keep open."""

    account: Account
    process: subprocess.Popen[bytes]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def command(self, line: str) -> None:
        """Send one smbclient command (the pipe may be broken if smbclient has gone)."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()

    def close(self) -> str:
        """End smbclient (closing its input ends it; then SIGTERM, SIGKILL); its output."""
        stdin, self.process.stdin = self.process.stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            out, _ = self.process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate(timeout=STOP_TIMEOUT)
        return (out or b"").decode(errors="replace")


# -- the server ---------------------------------------------------------------------------------------


@dataclass
class NetsessionServerProcess:
    """One `netsession serve` in ``state_dir``. ``options``: extra `serve` arguments (``--policy
    hardened``, ``--encrypt``)."""

    state_dir: Path
    options: Sequence[str] = ()
    accounts: Sequence[Account] = ACCOUNTS
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    held: list[HeldSmbclient] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return self.state_dir / SOCKET_NAME

    @property
    def log_path(self) -> Path:
        return self.state_dir / "serve.log"

    @property
    def client_conf(self) -> Path:
        return self.state_dir / "client.conf"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- lifecycle -------------------------------------------------------------------------------------

    def _add_accounts(self) -> None:
        from netsession.server.accounts import AccountStore, nt_hash

        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with AccountStore(self.state_dir / "accounts.db") as store:
            for account in self.accounts:
                store.add_user(account.name, nt_hash(account.password), account.groups)

    def start(self) -> None:
        """Start `netsession serve`; if the real command cannot (a work in progress), the stand-in, with a
        warning that carries the real one's output."""
        self._add_accounts()
        self.client_conf.write_text(CLIENT_CONF)
        commands = netsession_commands()
        for i, command in enumerate(commands):
            try:
                self._start(command)
                return
            except RuntimeError as exc:
                if i == len(commands) - 1:
                    raise
                warnings.warn(f"{' '.join(command[:2])}... failed, using the stand-in: {exc}", stacklevel=2)

    def _start(self, command: list[str]) -> None:
        argv = [
            *command,
            "serve",
            "--listen", f"{LOOPBACK}:{self.port}",
            "--state-dir", str(self.state_dir),
            "--name", "NSTEST",
            *self.options,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"netsession serve exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"netsession serve did not start in {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        """The local socket exists once every TCP listener is up; accepting on it means ready."""
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def stop(self) -> int | None:
        """End the held clients and the server: SIGTERM, wait, then SIGKILL. The server's exit status."""
        self.close_clients()
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        return process.returncode

    def close_clients(self) -> None:
        while self.held:
            self.held.pop().close()

    def reset(self) -> None:
        """End every client process we started and wait until the server's table is empty."""
        self.close_clients()
        wait_until(lambda: not self.sessions(), what="the session table to empty")

    # -- looking at the server ------------------------------------------------------------------------

    def sessions(self, client: str | None = None, user: str | None = None) -> list[SESSION_INFO_502]:
        """Every session in the server's table (level 502 over the local socket, as root)."""
        with local_srvsvc(self.socket_path) as rpc:
            response = rpc.session_enum(502, client, user, resume_handle=None)
        status = response.status
        if status in (NetApiStatus.NERR_ClientNameNotFound, NetApiStatus.NERR_UserNotFound):
            return []
        assert status == NetApiStatus.NERR_Success, status
        return [e for e in response.entries if isinstance(e, SESSION_INFO_502)]

    def count(self, user: str) -> int:
        return len(self.sessions(user=user))

    # -- Samba's client tools -------------------------------------------------------------------------

    def samba_tool(self, tool: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, "-s", str(self.client_conf), *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
        )

    def rpcclient(self, account: Account, command: str) -> subprocess.CompletedProcess[str]:
        """``rpcclient -c COMMAND`` as ``account`` (``-c`` is split by popt: quote nothing empty)."""
        return self.samba_tool(
            RPCCLIENT, "-p", str(self.port), LOOPBACK, "-U", account.credentials, "-c", command
        )

    def smbclient(self, account: Account, *args: str) -> subprocess.CompletedProcess[str]:
        return self.samba_tool(SMBCLIENT, "-p", str(self.port), "-U", account.credentials, *args)

    def hold_smbclient(self, account: Account, *, wait: bool = True) -> HeldSmbclient:
        """A live ``smbclient //127.0.0.1/IPC$`` session of ``account``; with ``wait``, returns once the
        server's table shows one more session of that user."""
        before = self.count(account.name) if wait else 0
        process = subprocess.Popen(
            [SMBCLIENT, "-s", str(self.client_conf), f"//{LOOPBACK}/IPC$", "-p", str(self.port),
             "-U", account.credentials],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        held = HeldSmbclient(account, process)
        self.held.append(held)
        if wait:
            wait_until(
                lambda: self.count(account.name) > before or not held.alive,
                what=f"the smbclient session of {account.name}",
            )
            if not held.alive:
                raise AssertionError(f"smbclient as {account.name} ended: {held.close()}")
        return held


@contextlib.contextmanager
def running_server(state_dir: Path, options: Sequence[str] = ()) -> Iterator[NetsessionServerProcess]:
    server = NetsessionServerProcess(state_dir, options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the stand-in for `netsession` until src/netsession/cli.py exists --------------------------------


def _main(argv: Sequence[str] | None = None) -> int:
    from netsession.server.cli import CommandError, register

    parser = argparse.ArgumentParser(prog="netsession")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or args.func
    try:
        status: int = handler(args)
    except CommandError as exc:
        print(f"netsession: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(_main())
