"""The SMB2 codecs and crypto against a real Samba smbd (started here, on a private port and directory):

- every message smbclient, rpcclient, impacket and smbd exchange decodes, and re-encodes to something
  that decodes the same;
- a bare client built from our codecs and crypto (pyspnego for NTLM) negotiates every dialect, signing
  algorithm and cipher with smbd: smbd accepts what we sign and encrypt, we verify what it signs and
  decrypt what it encrypts, so KDF, preauth hash, HMAC/CMAC/GMAC and CCM/GCM-128/256 agree with Samba.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from samba import stop_processes_naming

from netsession.wire.smb2 import crypto
from netsession.wire.smb2 import messages as m
from netsession.wire.smb2.compound import split_compound
from netsession.wire.smb2.constants import (
    Cipher,
    Command,
    GlobalCapabilities,
    NtStatus,
    SecurityMode,
    SigningAlgorithm,
)
from netsession.wire.smb2.header import Smb2Header
from netsession.wire.smb2.negotiate import (
    EncryptionCapabilities,
    NegotiateRequest,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
    Smb1NegotiateRequest,
)
from netsession.wire.smb2.transport import DirectTcpDeframer, frame

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


class BareClient:
    """Just enough SMB2 client, on our codecs and crypto, to open \\PIPE\\srvsvc on IPC$."""

    def __init__(self, port: int, dialect: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.deframer = DirectTcpDeframer()
        self.dialect = dialect
        self.message_id = 0
        self.session_id = 0
        self.signing: tuple[bytes, int] | None = None
        self.cipher = Cipher.NONE
        self.keys: crypto.SessionKeys | None = None
        self.encrypt = False
        self.replies_encrypted: list[bool] = []

    def exchange(self, header: Smb2Header, body: Any) -> tuple[bytes, bytes, Smb2Header, Any]:
        header.message_id, header.credits, header.session_id = self.message_id, 64, self.session_id
        self.message_id += 1
        request = bytearray(m.encode_message(header, body))
        wire = bytes(request)
        if self.encrypt and self.keys and self.keys.decryption_key:
            nonce = os.urandom(crypto.nonce_size(self.cipher))
            wire = crypto.encrypt_message(
                wire, self.keys.decryption_key, cipher=self.cipher, session_id=self.session_id, nonce=nonce
            )
        elif self.signing:
            crypto.sign_message(request, *self.signing)
            wire = bytes(request)
        self.sock.sendall(frame(wire))
        reply = self.receive()
        encrypted = reply[:4] == b"\xfdSMB"
        if encrypted:
            assert self.keys and self.keys.encryption_key
            reply = crypto.decrypt_message(reply, self.keys.encryption_key, cipher=self.cipher)[1]
        self.replies_encrypted.append(encrypted)
        reply_header, reply_body = m.decode_response(reply)
        if self.signing and not encrypted and reply_header.is_signed:
            assert crypto.verify_signature(reply, *self.signing), f"bad signature from smbd on {body}"
        return bytes(request), reply, reply_header, reply_body

    def receive(self) -> bytes:
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("smbd closed the connection")
            if messages := self.deframer.receive_data(data):
                return messages[0]

    def connect(self, signing: int | None, cipher: int) -> None:
        import spnego

        contexts: tuple[Any, ...] = ()
        if self.dialect == 0x0311:
            contexts = (PreauthIntegrityCapabilities((1,), os.urandom(32)),)
            contexts += (EncryptionCapabilities((cipher,)),) if cipher else ()
            contexts += (SigningCapabilities((signing,)),) if signing is not None else ()
        # Samba selects a cipher only when the client also sets SMB2_GLOBAL_CAP_ENCRYPTION, even in 3.1.1
        caps = GlobalCapabilities.ENCRYPTION if cipher or self.dialect in (0x0300, 0x0302) else 0
        negotiate = NegotiateRequest(
            (self.dialect,), SecurityMode.SIGNING_REQUIRED, caps, uuid.uuid4(), contexts
        )
        request, reply, header, neg = self.exchange(Smb2Header(Command.NEGOTIATE), negotiate)
        assert (
            header.status == 0 and isinstance(neg, NegotiateResponse) and neg.dialect_revision == self.dialect
        )
        preauth = crypto.preauth_hash(crypto.preauth_hash(crypto.INITIAL_PREAUTH_HASH, request), reply)
        chosen_signing = [c for c in neg.negotiate_contexts if isinstance(c, SigningCapabilities)]
        chosen_cipher = [c for c in neg.negotiate_contexts if isinstance(c, EncryptionCapabilities)]
        algorithm = crypto.signing_algorithm_for(
            self.dialect, chosen_signing[0].signing_algorithms[0] if chosen_signing else None
        )
        assert signing is None or algorithm == signing
        self.cipher = crypto.cipher_for(self.dialect, chosen_cipher[0].ciphers[0] if chosen_cipher else 0)
        ntlm = spnego.client(USER, PASSWORD, hostname="127.0.0.1", service="cifs", protocol="ntlm")
        token = ntlm.step()
        while True:
            request, reply, header, body = self.exchange(
                Smb2Header(Command.SESSION_SETUP), m.SessionSetupRequest(token, security_mode=2)
            )
            self.session_id = header.session_id
            preauth = crypto.preauth_hash(preauth, request)
            if header.status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
                break
            preauth = crypto.preauth_hash(preauth, reply)
            token = ntlm.step(body.security_buffer)
        assert header.status == 0 and header.is_signed, hex(header.status)
        self.keys = crypto.derive_session_keys(
            self.dialect,
            ntlm.session_key,
            preauth_hash=preauth if self.dialect == 0x0311 else None,
            cipher=self.cipher,
        )
        self.signing = (self.keys.signing_key, algorithm)
        assert crypto.verify_signature(reply, *self.signing), "smbd's signature on the final SESSION_SETUP"

    def open_srvsvc(self) -> None:
        _, _, header, body = self.exchange(
            Smb2Header(Command.TREE_CONNECT), m.TreeConnectRequest("\\\\127.0.0.1\\IPC$")
        )
        assert header.status == 0 and body.share_type == 2
        tree = header.tree_id
        _, _, header, body = self.exchange(
            Smb2Header(Command.CREATE, tree_id=tree), m.CreateRequest("srvsvc", 0x12019F)
        )
        assert header.status == 0 and isinstance(body, m.CreateResponse)
        _, _, header, _ = self.exchange(Smb2Header(Command.CLOSE, tree_id=tree), m.CloseRequest(body.file_id))
        assert header.status == 0


CASES = [
    (0x0202, None, Cipher.NONE, False),
    (0x0210, None, Cipher.NONE, False),
    (0x0300, None, Cipher.NONE, False),
    (0x0300, None, Cipher.NONE, True),
    (0x0302, None, Cipher.NONE, True),
    (0x0311, None, Cipher.NONE, False),
    (0x0311, SigningAlgorithm.AES_CMAC, Cipher.NONE, False),
    (0x0311, SigningAlgorithm.AES_GMAC, Cipher.NONE, False),
    (0x0311, SigningAlgorithm.HMAC_SHA256, Cipher.NONE, False),
    (0x0311, SigningAlgorithm.AES_GMAC, Cipher.AES_128_CCM, True),
    (0x0311, SigningAlgorithm.AES_GMAC, Cipher.AES_128_GCM, True),
    (0x0311, SigningAlgorithm.AES_CMAC, Cipher.AES_256_CCM, True),
    (0x0311, SigningAlgorithm.AES_GMAC, Cipher.AES_256_GCM, True),
]


@pytest.mark.parametrize(
    ("dialect", "signing", "cipher", "encrypt"), CASES,
    ids=[f"{d:04x}-{s.name if s is not None else 'default'}-{Cipher(c).name}-{'sealed' if e else 'signed'}"
         for d, s, c, e in CASES],
)  # fmt: skip
def test_our_crypto_interoperates_with_samba(
    smbd: int, dialect: int, signing: int | None, cipher: int, encrypt: bool
) -> None:
    pytest.importorskip("spnego")
    client = BareClient(smbd, dialect)
    client.connect(signing, cipher)
    client.encrypt = encrypt
    client.open_srvsvc()
    # smbd answers an encrypted request encrypted (3.3.4.1.4) and we read it
    assert client.replies_encrypted[-3:] == [encrypt] * 3
    client.sock.close()
