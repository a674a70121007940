"""The SMB2 codecs and crypto against a real Samba smbd (started here, on a private port and directory):

every message smbclient, rpcclient, impacket and smbd exchange decodes, and re-encodes to something that
decodes the same. (That our KDF, preauth hash, HMAC/CMAC/GMAC and CCM/GCM-128/256 agree with Samba's is
tested by the client engine against smbd: ``test_client_engine_samba.py``.)
"""

from __future__ import annotations

import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from samba import stop_processes_naming

from netsession.wire.smb2 import messages as m
from netsession.wire.smb2.compound import split_compound
from netsession.wire.smb2.constants import Command
from netsession.wire.smb2.negotiate import Smb1NegotiateRequest
from netsession.wire.smb2.transport import DirectTcpDeframer

pytestmark = pytest.mark.interop

USER, PASSWORD = "daemon", "Passw0rd!"  # an existing Unix account, given a password in smbd's private passdb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def smbd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not shutil.which("smbd") or not shutil.which("smbpasswd"):
        pytest.skip("Samba's smbd is not installed")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no Unix account {USER!r} to map a Samba user to")
    root = tmp_path_factory.mktemp("smbd")
    for d in ("private", "lock", "state", "cache", "pid", "ncalrpc", "share"):
        (root / d).mkdir()
    port = free_port()
    conf = root / "smb.conf"
    conf.write_text(
        f"""[global]
workgroup = TESTGRP
server role = standalone server
map to guest = Bad User
private dir = {root}/private
lock directory = {root}/lock
state directory = {root}/state
cache directory = {root}/cache
pid directory = {root}/pid
ncalrpc dir = {root}/ncalrpc
smb ports = {port}
disable netbios = yes
interfaces = lo
bind interfaces only = yes
server min protocol = SMB2_02
load printers = no
disable spoolss = yes
[share]
path = {root}/share
guest ok = yes
read only = yes
"""
    )
    subprocess.run(
        ["smbpasswd", "-c", str(conf), "-a", "-s", USER],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        ["smbd", "-F", "--no-process-group", "-s", str(conf), "--debug-stdout", "-d", "0"],
        stdin=subprocess.PIPE,  # smbd -F exits when its stdin reaches EOF: keep it open until teardown
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # smbd signals its whole process group when it stops
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("smbd did not start")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdin is not None
        proc.stdin.close()
        stop_processes_naming(conf)  # samba-dcerpcd and rpcd_* detach from smbd and outlive it


class Recorder:
    """A TCP proxy in front of smbd that keeps each connection's bytes, per direction."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.streams: list[tuple[bytearray, bytearray]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            c2s, s2c = bytearray(), bytearray()
            self.streams.append((c2s, s2c))
            threading.Thread(target=self._pump, args=(client, upstream, c2s), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, s2c), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, log: bytearray) -> None:
        try:
            while data := src.recv(65536):
                log += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def run_clients(port: int) -> None:
    for protocol in ("SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11"):
        subprocess.run(
            ["smbclient", "-N", "-p", str(port), "-L", "//127.0.0.1", "-m", protocol],
            capture_output=True,
            timeout=30,
        )
    subprocess.run(
        ["smbclient", "-N", "-p", str(port), "//127.0.0.1/share", "-c", "ls"], capture_output=True, timeout=30
    )
    subprocess.run(
        ["rpcclient", "-N", "-U%", "-p", str(port), "127.0.0.1", "-c", "srvinfo;netshareenumall"],
        capture_output=True,
        timeout=30,
    )
    from impacket.smbconnection import SMBConnection

    conn = SMBConnection(
        "127.0.0.1", "127.0.0.1", sess_port=port
    )  # opens with an SMB1 multi-protocol negotiate
    conn.login("", "")
    conn.listShares()
    conn.logoff()


def test_samba_traffic_decodes(smbd: int) -> None:
    if not (shutil.which("smbclient") and shutil.which("rpcclient")):
        pytest.skip("smbclient/rpcclient not installed")
    recorder = Recorder(smbd)
    try:
        run_clients(recorder.port)
        time.sleep(0.3)
    finally:
        recorder.close()
    seen: set[str] = set()
    decoded = 0
    for c2s, s2c in recorder.streams:
        for stream, decode in ((bytes(c2s), m.decode_request), (bytes(s2c), m.decode_response)):
            for message in DirectTcpDeframer().receive_data(stream):
                if message[:4] == b"\xffSMB":
                    seen.update(f"SMB1 {d}" for d in Smb1NegotiateRequest.decode(message).dialects)
                    continue
                if message[:4] == b"\xfdSMB":  # sealed: no keys here (the crypto test below covers it)
                    continue
                for part in split_compound(message):
                    header, body = decode(part)
                    assert decode(m.encode_message(header, body)) == (header, body)
                    seen.add(f"{Command(header.command).name} {type(body).__name__}")
                    decoded += 1
    expected = {
        "SMB1 SMB 2.???", "SMB1 SMB 2.002",
        "NEGOTIATE NegotiateRequest", "NEGOTIATE NegotiateResponse",
        "SESSION_SETUP SessionSetupRequest", "SESSION_SETUP SessionSetupResponse",
        "TREE_CONNECT TreeConnectRequest", "TREE_CONNECT TreeConnectResponse",
        "CREATE CreateRequest", "CREATE CreateResponse",
        "WRITE WriteRequest", "WRITE WriteResponse", "READ ReadRequest", "READ ReadResponse",
        "IOCTL IoctlRequest", "IOCTL IoctlResponse", "CLOSE CloseRequest", "CLOSE CloseResponse",
        "TREE_DISCONNECT TreeDisconnectRequest", "LOGOFF LogoffRequest",
    }  # fmt: skip
    assert expected <= seen and decoded > 100
