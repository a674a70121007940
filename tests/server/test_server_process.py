r"""`netsession serve` as a process: graceful stop on SIGTERM, and listening on IPv6 as well as IPv4."""

from __future__ import annotations

import signal
import socket
import uuid
from pathlib import Path

import pytest
from netsession_server import ALICE, BOB, LOOPBACK_CNAME, NetsessionServerProcess, free_port, wait_until
from smbprotocol.connection import Connection, Dialects
from smbprotocol.session import Session

pytestmark = pytest.mark.interop


def _logon(host: str, port: int, user: str, password: str) -> Connection:
    connection = Connection(uuid.uuid4(), host, port, require_signing=True)
    connection.connect(dialect=Dialects.SMB_3_1_1, timeout=10)
    Session(connection, user, password, auth_protocol="ntlm").connect()
    return connection


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_sigterm_stops_the_server_gracefully(tmp_path: Path) -> None:
    server = NetsessionServerProcess(tmp_path / "state")
    server.start()
    connection = _logon("127.0.0.1", server.port, ALICE.name, ALICE.password)
    try:
        assert server.count("alice") == 1
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
        log = server.log()
        assert "stopping: 1 connections open" in log
        assert "ended (127.0.0.1)" in log
        assert not server.socket_path.exists()
    finally:
        connection.disconnect(close=False)
        server.stop()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_listener_and_bracketed_client_name(tmp_path: Path) -> None:
    port6 = free_port()
    server = NetsessionServerProcess(tmp_path / "state", ("--listen", f"[::1]:{port6}"))
    server.start()
    connections = []
    try:
        connections.append(_logon("::1", port6, BOB.name, BOB.password))
        connections.append(_logon("127.0.0.1", server.port, ALICE.name, ALICE.password))
        wait_until(lambda: len(server.sessions()) == 2, what="both sessions")
        cnames = {row.sesi502_username: row.sesi502_cname for row in server.sessions()}
        # MS-SMB2 §3.3.4.18 / FACTS.md §2: the client's address, IPv6 in brackets.
        assert cnames == {"bob": "\\\\[::1]", "alice": LOOPBACK_CNAME}
        assert [r.sesi502_username for r in server.sessions(client="\\\\[::1]")] == ["bob"]
    finally:
        for connection in connections:
            connection.disconnect(close=True)
        server.stop()
