"""`serve --alert-log/--alert-syslog`: every enumeration and deletion reaches a JSON-lines file and syslog
receivers the test starts on loopback (UDP and TCP), with the caller's identity; a collector that goes
away does not stop the server; bad targets are one line and exit status 2."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.smbconnection import SMBConnection
from netsession_server import (
    ADMIN,
    ALICE,
    LOOPBACK,
    REAL_COMMAND,
    NetsessionServerProcess,
    free_port,
    missing_samba_clients,
    wait_until,
)

pytestmark = pytest.mark.interop

SESSIONS = '[[session]]\nclient = "10.0.4.23"\nuser = "adm-jsmith"\nopens = 1\nage = "1h"\nrespawn = 3600\n'


class Receiver:
    """A syslog collector on loopback: UDP datagrams, or TCP with octet counting (RFC 6587)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.messages: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        if kind == "tcp":
            self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                if self.kind == "udp":
                    self.messages.append(self.sock.recv(65536))
                    continue
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.2)
                buffer = b""
                while self.running:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not chunk:
                        break
                    buffer += chunk
                    while b" " in buffer:
                        length, _, rest = buffer.partition(b" ")
                        if len(rest) < int(length):
                            break
                        self.messages.append(rest[: int(length)])
                        buffer = rest[int(length):]

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(m.partition(b"\xef\xbb\xbf")[2]) for m in list(self.messages)]

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()


Alerting = tuple[NetsessionServerProcess, Path, Receiver, Receiver]


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    state = tmp_path_factory.mktemp("alerts")
    (state / "s.toml").write_text(SESSIONS)
    udp, tcp = Receiver("udp"), Receiver("tcp")
    log = state / "alerts.jsonl"
    server = NetsessionServerProcess(state, (
        "--sessions", str(state / "s.toml"), "--alert-log", str(log),
        "--alert-syslog", f"udp://{LOOPBACK}:{udp.port}", "--alert-syslog", f"tcp://{LOOPBACK}:{tcp.port}",
        "--alert-on", "non-admin,decoy,decoy-delete",
    ))
    server.start()
    yield server, log, udp, tcp
    server.stop()
    udp.close()
    tcp.close()


def lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_alerts_carry_the_callers_identity_to_every_sink(
    alerting: tuple[NetsessionServerProcess, Path, Receiver, Receiver]
) -> None:
    server, log, udp, tcp = alerting
    smb = SMBConnection(LOOPBACK, LOOPBACK, sess_port=server.port, timeout=10)
    smb.login(ALICE.name, ALICE.password)
    try:
        local_port = smb.getSMBServer().get_socket().getsockname()[1]
        rpc = transport.SMBTransport(LOOPBACK, filename=r"\srvsvc", smb_connection=smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        srvs.hNetrSessionEnum(dce, srvs.NULL, "adm-jsmith\x00", 10)
    finally:
        smb.close()
    doc = wait_until(
        lambda: next((d for d in lines(log) if d["user"]["name"] == "alice"), None), what="alice's alert"
    )
    assert doc["event"]["kind"] == "alert" and doc["event"]["reason"] == "non-admin,decoy"
    assert doc["event"]["action"] == "NetrSessionEnum" and doc["netsession"]["level"] == 10
    assert doc["source"] == {"ip": LOOPBACK, "port": local_port, "domain": doc["source"]["domain"]}
    assert doc["server"] == {"address": LOOPBACK, "port": server.port}
    assert doc["netsession"]["qualifiers"] == {"client": None, "user": "adm-jsmith"}
    assert doc["netsession"]["entries"] == 1 and doc["netsession"]["decoy"] == {"rows": 1, "touched": True}
    assert doc["user"]["domain"] == "NSTEST"
    for receiver in (udp, tcp):
        wait_until(lambda r=receiver: any(d["user"]["name"] == "alice" for d in r.documents()),
                   what=f"alice's alert over {receiver.kind}")
    raw = next(m for m in udp.messages if b'user="alice"' in m)
    assert raw.startswith(b"<132>1 ") and b"[netsession@32473 kind=\"alert\"" in raw


@pytest.mark.skipif(missing_samba_clients() is not None, reason="Samba client tools not installed")
def test_decoy_delete_alert_with_the_ntlm_workstation(
    alerting: tuple[NetsessionServerProcess, Path, Receiver, Receiver]
) -> None:
    server, log, _, _ = alerting
    done = server.samba_tool(
        "rpcclient", "-p", str(server.port), LOOPBACK, "-U", ADMIN.credentials, "-n", "WSDECOYTEST",
        "-c", "netsessdel \\\\\\\\10.0.4.23 adm-jsmith",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = wait_until(
        lambda: next((d for d in lines(log) if d["event"]["action"] == "NetrSessionDel"), None),
        what="the deletion's alert",
    )
    assert doc["event"]["kind"] == "alert" and doc["event"]["reason"] == "decoy-delete"
    assert doc["event"]["type"] == ["deletion"]
    assert doc["user"]["name"] == "admin" and doc["netsession"]["caller_admin"] is True
    assert doc["netsession"]["ntlm"]["workstation"] == "WSDECOYTEST" == doc["source"]["domain"]
    assert doc["netsession"]["closed"] == 1 and doc["netsession"]["decoy"]["rows"] == 1
    # An administrator's enumeration without decoys in the answer stays a plain event.
    done = server.rpcclient(ADMIN, "netsessenum \\\\\\\\127.0.0.1 admin 10")
    assert "Received 1 entries." in done.stdout, done.stdout
    plain = wait_until(
        lambda: next((d for d in lines(log) if d["netsession"]["qualifiers"]["user"] == "admin"), None),
        what="the plain event",
    )
    assert plain["event"]["kind"] == "event" and plain["event"]["severity"] < doc["event"]["severity"]


def test_a_collector_that_goes_away_does_not_stop_the_server(
    alerting: tuple[NetsessionServerProcess, Path, Receiver, Receiver]
) -> None:
    server, log, _, tcp = alerting
    tcp.close()  # the TCP collector is gone
    before = len(lines(log))
    for _ in range(5):
        server.sessions()  # over the local socket: audited (and an event) too
        smb = SMBConnection(LOOPBACK, LOOPBACK, sess_port=server.port, timeout=10)
        smb.login(ALICE.name, ALICE.password)
        try:
            rpc = transport.SMBTransport(LOOPBACK, filename=r"\srvsvc", smb_connection=smb)
            dce = rpc.get_dce_rpc()
            dce.connect()
            dce.bind(srvs.MSRPC_UUID_SRVS)
            srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10)
        finally:
            smb.close()
    wait_until(lambda: len(lines(log)) >= before + 10, what="the file sink to keep up")
    assert server.process is not None and server.process.poll() is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--alert-syslog", "syslog.example:514"), "unknown syslog target"),
        (("--alert-syslog", "udp://nowhere"), "expected udp://HOST:PORT"),
        (("--alert-on", "always"), "unknown alert trigger 'always'"),
        (("--alert-log", "/nonexistent/dir/alerts.jsonl"), "--alert-log: cannot open"),
    ],
)
def test_bad_alert_target_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, str], message: str) -> None:
    done = subprocess.run(
        [*REAL_COMMAND, "serve", "--state-dir", str(tmp_path), "--listen", f"{LOOPBACK}:{free_port()}",
         *args],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert message in line
