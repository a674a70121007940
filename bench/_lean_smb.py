"""A lean, blocking SMB 3.1.1 client for the benchmarks, the same against netsession and against smbd.

Built on netsession's sans-I/O codecs and crypto (``netsession.wire.smb2``, ``.spnego``, ``.dcerpc``,
``.srvsvc``) plus an NTLMv2 initiator of its own, written to behave like a current Windows or Samba
client: SPNEGO around NTLMSSP, NTLMv2 with KEY_EXCH, the AUTHENTICATE MIC and the SPNEGO mechListMIC;
SMB 3.1.1 with preauth integrity, signing required (AES-GMAC or AES-CMAC), every request after the
logon signed. It does a fraction of smbprotocol + pyspnego's work per logon (pyspnego's NTLM client
alone takes ~4.4 ms of CPU per logon here; this whole client ~1 ms per setup, the kernel's socket work
included), so a few client processes can load one server without the client being what is measured.

Not a general client: one session per connection, one request in flight, no encryption, no Kerberos.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher

from netsession.server.accounts import nt_hash
from netsession.wire.dcerpc import NDR20, ClientAssociation, FaultReceived, ResponseReceived, SyntaxId
from netsession.wire.dcerpc import BindAccepted as _BindAccepted
from netsession.wire.ntlm import AvId, NegotiateFlags, hmac_md5, ntowfv2, sealkey, signkey
from netsession.wire.smb2 import Smb2Header, decode_response, encode_message
from netsession.wire.smb2.constants import (
    AccessMask,
    Cipher,
    Command,
    Dialect,
    FsctlCode,
    GlobalCapabilities,
    HashAlgorithm,
    ImpersonationLevel,
    NtStatus,
    SecurityMode,
    ShareAccess,
    SigningAlgorithm,
)
from netsession.wire.smb2.create import CloseRequest, CreateRequest, FileId
from netsession.wire.smb2.crypto import (
    INITIAL_PREAUTH_HASH,
    derive_session_keys,
    preauth_hash,
    sign_message,
    signing_algorithm_for,
    verify_signature,
)
from netsession.wire.smb2.negotiate import (
    EncryptionCapabilities,
    NegotiateRequest,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
)
from netsession.wire.smb2.pipe_io import IoctlRequest, IoctlResponse, ReadRequest, ReadResponse
from netsession.wire.smb2.session import (
    LogoffRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    TreeConnectRequest,
    TreeConnectResponse,
)
from netsession.wire.spnego import (
    NTLMSSP_OID,
    NegTokenResp,
    decode_token,
    encode_mech_type_list,
    encode_neg_token_init,
    encode_neg_token_resp,
)
from netsession.wire.srvsvc import (
    SRVSVC_PIPE,
    SRVSVC_UUID,
    SRVSVC_VERSION,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

F = NegotiateFlags
# What Windows 10+ and Samba's client ask for (MS-NLMP 2.2.2.5).
CLIENT_FLAGS = (
    F.NTLMSSP_NEGOTIATE_UNICODE
    | F.NTLMSSP_REQUEST_TARGET
    | F.NTLMSSP_NEGOTIATE_SIGN
    | F.NTLMSSP_NEGOTIATE_NTLM
    | F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | F.NTLMSSP_NEGOTIATE_TARGET_INFO
    | F.NTLMSSP_NEGOTIATE_VERSION
    | F.NTLMSSP_NEGOTIATE_128
    | F.NTLMSSP_NEGOTIATE_KEY_EXCH
    | F.NTLMSSP_NEGOTIATE_56
)
NTLM_VERSION = struct.pack("<BBH3xB", 10, 0, 19041, 0x0F)  # MS-NLMP 2.2.2.10: 10.0.19041, NTLMSSP rev 15
MIC_PRESENT = 0x00000002  # MS-NLMP 2.2.2.1 MsvAvFlags
MECH_TYPES = (NTLMSSP_OID,)
MECH_TYPES_DER = encode_mech_type_list(MECH_TYPES)
_FILETIME_EPOCH = 116444736000000000

PIPE_IO_SIZE = 0x10000
# What Windows asks for when it opens \\PIPE\\srvsvc (MS-SMB2 2.2.13.1.1): read/write data and attributes.
PIPE_ACCESS = (
    AccessMask.FILE_READ_DATA | AccessMask.FILE_WRITE_DATA | AccessMask.FILE_APPEND_DATA
    | AccessMask.FILE_READ_EA | AccessMask.FILE_WRITE_EA | AccessMask.FILE_READ_ATTRIBUTES
    | AccessMask.FILE_WRITE_ATTRIBUTES | AccessMask.READ_CONTROL | AccessMask.SYNCHRONIZE
)
SRVSVC_SYNTAX = SyntaxId.parse(SRVSVC_UUID, *SRVSVC_VERSION)


class SmbError(Exception):
    def __init__(self, what: str, status: int = 0) -> None:
        super().__init__(f"{what}: NTSTATUS {status:#010x}" if status else what)
        self.status = status


def _rc4(key: bytes, data: bytes) -> bytes:
    return _Cipher(ARC4(key), mode=None).encryptor().update(data)


def _av_pairs(blob: bytes) -> list[tuple[int, bytes]]:
    pairs, at = [], 0
    while at + 4 <= len(blob):
        av_id, length = struct.unpack_from("<HH", blob, at)
        if av_id == AvId.MsvAvEOL:
            break
        pairs.append((av_id, blob[at + 4 : at + 4 + length]))
        at += 4 + length
    return pairs


def _field(data: bytes, at: int) -> bytes:
    length, _, offset = struct.unpack_from("<HHI", data, at)
    return data[offset : offset + length]


@dataclass
class NtlmInitiator:
    """NTLMv2 for one logon (MS-NLMP 3.1.5.1): NEGOTIATE, then AUTHENTICATE for the server's CHALLENGE."""

    user: str
    nt_hash: bytes
    domain: str | None = None  # None: the server's NetBIOS domain from the CHALLENGE
    negotiate_message: bytes = b""
    exported_session_key: bytes = b""
    flags: int = 0

    def negotiate(self) -> bytes:
        # MS-NLMP 2.2.1.1: Signature, MessageType, NegotiateFlags, DomainNameFields, WorkstationFields,
        # Version.
        self.negotiate_message = b"NTLMSSP\x00" + struct.pack("<II16x", 1, CLIENT_FLAGS) + NTLM_VERSION
        return self.negotiate_message

    def authenticate(self, challenge: bytes) -> bytes:
        (server_flags,) = struct.unpack_from("<I", challenge, 20)
        self.flags = flags = server_flags & CLIENT_FLAGS
        server_challenge = challenge[24:32]
        target_info = _field(challenge, 40)
        pairs = _av_pairs(target_info)
        names = dict(pairs)
        domain = self.domain
        if domain is None:
            domain = names.get(AvId.MsvAvNbDomainName, b"").decode("utf-16-le")
        stamp = names.get(AvId.MsvAvTimestamp)
        timestamp = stamp if stamp is not None else struct.pack("<Q", _FILETIME_EPOCH + time.time_ns() // 100)
        # MS-NLMP 3.1.5.1.2: the server's pairs, plus MsvAvFlags saying a MIC is present.
        pairs = [p for p in pairs if p[0] != AvId.MsvAvFlags]
        pairs.append((AvId.MsvAvFlags, struct.pack("<I", MIC_PRESENT)))
        av = b"".join(struct.pack("<HH", i, len(v)) + v for i, v in pairs) + bytes(4)
        # MS-NLMP 2.2.2.7 NTLMv2_CLIENT_CHALLENGE; 3.3.2 NTProofStr, SessionBaseKey.
        blob = b"\x01\x01" + bytes(6) + timestamp + os.urandom(8) + bytes(4) + av + bytes(4)
        key = ntowfv2(self.nt_hash, self.user, domain)
        proof = hmac_md5(key, server_challenge + blob)
        key_exchange_key = hmac_md5(key, proof)
        self.exported_session_key = os.urandom(16)
        encrypted_key = _rc4(key_exchange_key, self.exported_session_key)
        nt_response = proof + blob
        lm_response = bytes(24)  # 3.1.5.1.2: Z(24) when the server sent MsvAvTimestamp
        payload = [lm_response, nt_response, domain.encode("utf-16-le"), self.user.encode("utf-16-le"),
                   b"", encrypted_key]
        offset = 88  # fixed part, Version, MIC
        fields = b""
        for item in payload:
            fields += struct.pack("<HHI", len(item), len(item), offset)
            offset += len(item)
        head = b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + struct.pack("<I", flags) + NTLM_VERSION
        message = head + bytes(16) + b"".join(payload)
        mic = hmac_md5(self.exported_session_key, self.negotiate_message + challenge + message)
        return head + mic + b"".join(payload)

    def mech_list_mic(self) -> bytes:
        """MS-NLMP 3.4.4.2 signature (sequence 0) over the SPNEGO mechTypes (RFC 4178 5, MS-SPNG 3.1.5.1)."""
        seq = struct.pack("<I", 0)
        checksum = hmac_md5(signkey(self.flags, self.exported_session_key, True), seq + MECH_TYPES_DER)[:8]
        if self.flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH:
            checksum = _rc4(sealkey(self.flags, self.exported_session_key, True), checksum)
        return struct.pack("<I", 1) + checksum + seq


@dataclass
class LeanSmb:
    """One TCP connection with at most one session and one tree."""

    host: str
    port: int
    timeout: float = 30.0
    sock: socket.socket | None = None
    message_id: int = 0
    session_id: int = 0
    tree_id: int = 0
    dialect: int = 0
    signing_key: bytes = b""
    signing_algorithm: int = SigningAlgorithm.AES_CMAC
    _hash: bytes = INITIAL_PREAUTH_HASH
    _signing_caps: int | None = None
    _buf: bytearray = field(default_factory=bytearray)

    # -- transport -------------------------------------------------------------------------------------

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _send(self, header: Smb2Header, body: object, *, sign: bool) -> bytes:
        raw = encode_message(header, body)  # type: ignore[arg-type]
        if sign:
            message = bytearray(raw)
            sign_message(message, self.signing_key, self.signing_algorithm)
            raw = bytes(message)
        assert self.sock is not None
        self.sock.sendall(struct.pack(">I", len(raw)) + raw)
        return raw

    def _recv_exact(self, n: int) -> bytes:
        assert self.sock is not None
        buf = self._buf
        while len(buf) < n:
            chunk = self.sock.recv(max(65536, n - len(buf)))
            if not chunk:
                raise SmbError("connection closed by the server")
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _recv(self) -> bytes:
        while True:
            (length,) = struct.unpack(">I", self._recv_exact(4))
            raw = self._recv_exact(length & 0xFFFFFF)
            header = Smb2Header.decode(raw)
            if header.is_async and header.status == NtStatus.STATUS_PENDING:
                continue  # interim response (MS-SMB2 3.3.4.2): the real one follows
            if header.is_signed and self.signing_key and not verify_signature(
                raw, self.signing_key, self.signing_algorithm
            ):
                raise SmbError(f"bad signature on the {Command(header.command).name} response")
            return raw

    def _request(self, command: int, body: object, *, sign: bool = True) -> tuple[bytes, Smb2Header, object]:
        header = Smb2Header(
            command, credit_charge=1, credits=64, message_id=self.message_id, session_id=self.session_id,
            tree_id=self.tree_id,
        )
        self.message_id += 1
        raw_req = self._send(header, body, sign=sign and bool(self.signing_key))
        raw = self._recv()
        resp_header, resp_body = decode_response(raw)
        if command == Command.SESSION_SETUP and self.dialect == Dialect.SMB_3_1_1:
            self._hash = preauth_hash(self._hash, raw_req)
            if resp_header.status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
                self._hash = preauth_hash(self._hash, raw)
        return raw, resp_header, resp_body

    # -- the exchanges ---------------------------------------------------------------------------------

    def negotiate(self) -> NegotiateResponse:
        request = NegotiateRequest(
            (Dialect.SMB_2_0_2, Dialect.SMB_2_1, Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1),
            security_mode=SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED,
            capabilities=GlobalCapabilities.LARGE_MTU | GlobalCapabilities.ENCRYPTION,
            client_guid=uuid.uuid4(),
            negotiate_contexts=(
                PreauthIntegrityCapabilities((HashAlgorithm.SHA_512,), os.urandom(32)),
                EncryptionCapabilities((Cipher.AES_128_GCM, Cipher.AES_128_CCM)),
                SigningCapabilities((SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC)),
            ),
        )
        header = Smb2Header(Command.NEGOTIATE, credits=64, message_id=self.message_id)
        self.message_id += 1
        raw_req = self._send(header, request, sign=False)
        raw = self._recv()
        resp_header, resp = decode_response(raw)
        if resp_header.status != NtStatus.STATUS_SUCCESS or not isinstance(resp, NegotiateResponse):
            raise SmbError("NEGOTIATE failed", resp_header.status)
        self.dialect = resp.dialect_revision
        if self.dialect == Dialect.SMB_3_1_1:
            self._hash = preauth_hash(preauth_hash(INITIAL_PREAUTH_HASH, raw_req), raw)
            for ctx in resp.negotiate_contexts:
                if isinstance(ctx, SigningCapabilities):
                    self._signing_caps = ctx.signing_algorithms[0]
        return resp

    def session_setup(self, user: str, password: str, domain: str | None = None) -> None:
        """SPNEGO/NTLMv2 in two legs (MS-SMB2 3.2.5.3); afterwards every request is signed."""
        ntlm = NtlmInitiator(user, nt_hash(password), domain)
        token = encode_neg_token_init(MECH_TYPES, mech_token=ntlm.negotiate())
        _, header, body = self._request(Command.SESSION_SETUP, SessionSetupRequest(token, security_mode=1))
        more = header.status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED
        if not more or not isinstance(body, SessionSetupResponse):
            raise SmbError("SESSION_SETUP (NEGOTIATE leg) failed", header.status)
        self.session_id = header.session_id
        resp = decode_token(body.security_buffer)
        assert isinstance(resp, NegTokenResp) and resp.response_token is not None
        auth = ntlm.authenticate(resp.response_token)
        token = encode_neg_token_resp(response_token=auth, mech_list_mic=ntlm.mech_list_mic())
        hash_before = self._hash
        request = SessionSetupRequest(token, security_mode=1)
        header_out = Smb2Header(
            Command.SESSION_SETUP, credit_charge=1, credits=64, message_id=self.message_id,
            session_id=self.session_id,
        )
        self.message_id += 1
        raw_req = self._send(header_out, request, sign=False)
        session_hash = preauth_hash(hash_before, raw_req) if self.dialect == Dialect.SMB_3_1_1 else None
        keys = derive_session_keys(self.dialect, ntlm.exported_session_key, preauth_hash=session_hash)
        self.signing_key = keys.signing_key
        self.signing_algorithm = signing_algorithm_for(self.dialect, self._signing_caps)
        raw = self._recv()  # the final response is signed with the new key (3.3.5.5.3): _recv checks it
        header, body = decode_response(raw)
        if header.status != NtStatus.STATUS_SUCCESS:
            raise SmbError("SESSION_SETUP (AUTHENTICATE leg) failed", header.status)

    def logoff(self) -> None:
        _, header, _ = self._request(Command.LOGOFF, LogoffRequest())
        if header.status != NtStatus.STATUS_SUCCESS:
            raise SmbError("LOGOFF failed", header.status)
        self.session_id = 0

    def tree_connect(self, share: str = "IPC$") -> None:
        path = f"\\\\{self.host}\\{share}"
        _, header, body = self._request(Command.TREE_CONNECT, TreeConnectRequest(path))
        if header.status != NtStatus.STATUS_SUCCESS or not isinstance(body, TreeConnectResponse):
            raise SmbError(f"TREE_CONNECT {path} failed", header.status)
        self.tree_id = header.tree_id

    def open_pipe(self, name: str) -> FileId:
        request = CreateRequest(
            name,
            desired_access=PIPE_ACCESS,
            share_access=ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
            impersonation_level=ImpersonationLevel.IMPERSONATION,
        )
        _, header, body = self._request(Command.CREATE, request)
        if header.status != NtStatus.STATUS_SUCCESS:
            raise SmbError(f"CREATE {name} failed", header.status)
        return body.file_id  # type: ignore[attr-defined, no-any-return]

    def transceive(self, fid: FileId, data: bytes) -> tuple[bytes, bool]:
        """FSCTL_PIPE_TRANSCEIVE: the first part of the answer, and whether more waits to be read."""
        request = IoctlRequest(
            FsctlCode.FSCTL_PIPE_TRANSCEIVE, fid, data, max_output_response=PIPE_IO_SIZE
        )
        _, header, body = self._request(Command.IOCTL, request)
        if header.status not in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BUFFER_OVERFLOW):
            raise SmbError("IOCTL FSCTL_PIPE_TRANSCEIVE failed", header.status)
        assert isinstance(body, IoctlResponse)
        return body.output, header.status == NtStatus.STATUS_BUFFER_OVERFLOW

    def read(self, fid: FileId) -> bytes:
        _, header, body = self._request(Command.READ, ReadRequest(fid, PIPE_IO_SIZE))
        if header.status not in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BUFFER_OVERFLOW):
            raise SmbError("READ failed", header.status)
        assert isinstance(body, ReadResponse)
        return body.data

    def close_file(self, fid: FileId) -> None:
        self._request(Command.CLOSE, CloseRequest(fid))


def logon(host: str, port: int, user: str, password: str, *, timeout: float = 30.0) -> LeanSmb:
    """A new connection with one authenticated session (NEGOTIATE + two SESSION_SETUP legs)."""
    smb = LeanSmb(host, port, timeout)
    smb.connect()
    try:
        smb.negotiate()
        smb.session_setup(user, password)
    except BaseException:
        smb.close()
        raise
    return smb


@dataclass
class SrvsvcPipe:
    """\\PIPE\\srvsvc on an IPC$ tree, bound (MS-RPCE 3.3.1.5.6) with netsession's ClientAssociation."""

    smb: LeanSmb
    fid: FileId = field(default=FileId(0, 0))
    assoc: ClientAssociation = field(
        default_factory=lambda: ClientAssociation(max_xmit_frag=0xFFF8, max_recv_frag=0xFFF8)
    )
    last_response_bytes: int = 0  # the stub of the last call
    last_pdu_bytes: int = 0  # every PDU octet of the last answer, as carried by the pipe
    last_reads: int = 0  # READs the last answer took after its FSCTL_PIPE_TRANSCEIVE

    def open(self) -> None:
        self.smb.tree_connect("IPC$")
        self.fid = self.smb.open_pipe(SRVSVC_PIPE)
        self.assoc.bind(SRVSVC_SYNTAX, (NDR20,))
        (bind,) = self.assoc.data_to_send()
        data, _ = self.smb.transceive(self.fid, bind)
        while True:
            for event in self.assoc.receive_data(data):
                if isinstance(event, _BindAccepted):
                    return
                raise SmbError(f"srvsvc bind failed: {event}")
            data = self.smb.read(self.fid)

    def call(self, opnum: int, stub: bytes) -> bytes:
        call_id = self.assoc.request(opnum, stub)
        pdus = self.assoc.data_to_send()
        assert len(pdus) == 1, "requests here fit one fragment"
        data, _ = self.smb.transceive(self.fid, pdus[0])
        total, reads = len(data), 0
        while True:
            for event in self.assoc.receive_data(data):
                if isinstance(event, ResponseReceived) and event.call_id == call_id:
                    self.last_pdu_bytes = total
                    self.last_reads = reads
                    self.last_response_bytes = len(event.stub)
                    return event.stub
                if isinstance(event, FaultReceived):
                    raise SmbError(f"srvsvc call {opnum} faulted", event.status)
            data = self.smb.read(self.fid)
            total += len(data)
            reads += 1

    def session_enum_raw(self, level: int) -> bytes:
        """NetrSessionEnum (MS-SRVS 3.1.4.5), everything at once; the undecoded response stub."""
        request = NetrSessionEnumRequest(None, None, None, level, 0xFFFFFFFF, 0)
        return self.call(Opnum.NetrSessionEnum, request.encode())

    def session_enum(self, level: int) -> NetrSessionEnumResponse:
        return NetrSessionEnumResponse.decode(self.session_enum_raw(level))


def open_srvsvc(host: str, port: int, user: str, password: str) -> SrvsvcPipe:
    pipe = SrvsvcPipe(logon(host, port, user, password))
    pipe.open()
    return pipe
