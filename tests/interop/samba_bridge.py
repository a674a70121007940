"""A private smbd whose named pipes go to ``netsession samba-bridge`` (``external_rpc_pipe:socket_dir``),
and the bridge itself as a child process, for the bridge's interop tests and benchmark.

The quiet clients bind their sockets to 127.0.0.2 or 127.0.0.3 (loopback) before connecting to smbd on
127.0.0.1, so two clients of one user are told apart by their client names.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from samba import SambaServer, User

from netsession.client.auth import initiator_for
from netsession.client.loop import run
from netsession.client.pool import Credentials
from netsession.client.smb import SmbConnection
from netsession.wire.smb2.client import ClientConfig, ClientConnection

# The command, run by this interpreter.
NETSESSION = (sys.executable, "-c", "import sys; from netsession.cli import main; sys.exit(main())")
HOST = "127.0.0.1"
START_TIMEOUT = 30.0


@dataclass
class BridgedSamba(SambaServer):
    """An smbd with ``external_rpc_pipe:socket_dir`` set; :meth:`start_bridge` runs the bridge."""

    bridge: subprocess.Popen[bytes] | None = None
    policy: str = "classic"
    held_smb: list[SmbConnection] = field(default_factory=list)

    @property
    def socket_dir(self) -> Path:
        return self.root / "ext"

    @property
    def audit_log(self) -> Path:
        return self.root / "log" / "bridge-audit.log"

    @property
    def bridge_log(self) -> Path:
        return self.root / "log" / "bridge.stderr"

    def _write_conf(self) -> None:
        super()._write_conf()
        text = self.conf.read_text()
        option = f"    external_rpc_pipe:socket_dir = {self.socket_dir}\n"
        text = text.replace("[global]\n", "[global]\n" + option, 1)
        self.conf.write_text(text)

    def start_bridge(self, *extra: str) -> None:
        self.stop_bridge()
        log = open(self.bridge_log, "ab")
        self.bridge = subprocess.Popen(
            [*NETSESSION, "samba-bridge", "--smb-conf", str(self.conf),
             "--policy", self.policy, "--audit-log", str(self.audit_log), *extra],
            env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        srvsvc = self.socket_dir / "np" / "srvsvc"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.bridge.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self.bridge.returncode}: {self.bridge_tail()}")
            if srvsvc.is_socket() and (self.socket_dir / "np" / "lsarpc").is_socket():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the bridge did not listen: {self.bridge_tail()}")

    def bridge_tail(self, lines: int = 30) -> str:
        text = self.bridge_log.read_text(errors="replace") if self.bridge_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_bridge(self) -> None:
        if self.bridge is not None and self.bridge.poll() is None:
            self.bridge.terminate()
            try:
                self.bridge.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
                self.bridge.wait(timeout=10)
        self.bridge = None

    # -- quiet clients of our own ------------------------------------------------------------------------

    def hold_quiet(self, user: User, address: str = "127.0.0.1") -> SmbConnection:
        """A session of ``user`` from ``address`` (its socket bound there; NEGOTIATE, SESSION_SETUP,
        TREE_CONNECT IPC$), then nothing: unlike smbclient (an SMB2 ECHO every 5 s) it sends no data
        until :func:`speak`."""

        async def open_() -> SmbConnection:
            creds = Credentials(user.name, user.password, None, None, False, "negotiate")
            smb = await _connect_from(address, HOST, self.port)
            try:
                await smb.negotiate()
                await smb.logon(initiator_for(address, creds))
                await smb.tree_connect("IPC$")
            except BaseException:
                smb.close()
                raise
            return smb

        smb = run(open_())
        self.held_smb.append(smb)
        return smb

    def release_quiet(self) -> None:
        for smb in self.held_smb:
            with contextlib.suppress(Exception):
                run(_close(smb))
        self.held_smb.clear()

    def stop(self) -> None:
        self.release_quiet()
        self.stop_bridge()
        super().stop()


async def _connect_from(source: str, host: str, port: int) -> SmbConnection:
    """:meth:`SmbConnection.connect` with the client's socket bound to ``source`` first (on loopback
    the kernel would pick 127.0.0.1 whatever the destination)."""
    from netsession.client import smb as smb_module

    loop = asyncio.get_running_loop()
    protocol = smb_module._Protocol(ClientConnection(ClientConfig(server_name=host)), f"{host}:{port}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), START_TIMEOUT)
        await loop.create_connection(lambda: protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return SmbConnection(host, port, protocol)


async def _close(smb: SmbConnection) -> None:
    smb.close()


def speak(smb: SmbConnection) -> None:
    """One request on the session (a TREE_CONNECT): the connection receives data."""
    run(smb.tree_connect("IPC$"))


def session_count(server: SambaServer, user: str | None = None) -> int:
    return sum(1 for s in server.sessions() if user is None or s["username"] == user)


@contextlib.contextmanager
def running_bridged_samba(
    prefix: str = "netsession-bridge-smbd-", policy: str = "classic"
) -> Iterator[BridgedSamba]:
    """A started smbd (users nsadmin [Administrators, Domain Admins], alice, bob) with the bridge running;
    everything stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = BridgedSamba(root, policy=policy)
    try:
        server._write_conf()
        server.add_user("nsadmin", "Adm1n-pass!", admin=True)
        server.add_user("alice", "Al1ce-pass!")
        server.add_user("bob", "B0b-pass!")
        server.start()
        server.start_bridge()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def rpcclient(
    server: SambaServer, user: User, command: str, address: str = "127.0.0.1"
) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("rpcclient") or "/usr/bin/rpcclient"
    return subprocess.run(
        [tool, "-p", str(server.port), "-s", str(server.conf), "-U", f"{user.name}%{user.password}", address,
         "-c", command],
        env=server.env, capture_output=True, text=True, timeout=60, check=False,
    )


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())

