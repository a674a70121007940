"""SMB2 message codecs (netsession.wire.smb2): round trips, Windows captures, strict decoding, and
smbprotocol's own structures as an independent oracle in both directions (impacket for SMB1)."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from smb2_vectors import (  # tests/unit/smb2_vectors.py
    WIN_NEGOTIATE_REQUEST,
    WIN_NEGOTIATE_RESPONSE,
    WIN_SESSION_SETUP_REQUEST,
    WIN_SESSION_SETUP_RESPONSE,
    WIN_WRITE_REQUEST,
    WIN_WRITE_RESPONSE,
)
from smbprotocol import connection as sp_conn
from smbprotocol import create_contexts as sp_ctx
from smbprotocol import exceptions as sp_exc
from smbprotocol import file_info as sp_info
from smbprotocol import ioctl as sp_ioctl
from smbprotocol import open as sp_open
from smbprotocol import session as sp_sess
from smbprotocol import tree as sp_tree
from smbprotocol.header import SMB2HeaderAsync, SMB2HeaderRequest, SMB2HeaderResponse

from netsession.wire.smb2 import messages as m
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.compound import build_compound, split_compound
from netsession.wire.smb2.constants import (
    Cipher,
    Command,
    CompressionAlgorithm,
    FileInformationClass,
    FsctlCode,
    HashAlgorithm,
    HeaderFlags,
    InfoType,
    NegotiateContextType,
    NtStatus,
    ShareType,
    SigningAlgorithm,
    TreeConnectFlags,
)
from netsession.wire.smb2.header import SIGNATURE_OFFSET, SIGNATURE_SIZE, Smb2Header, TransformHeader
from netsession.wire.smb2.negotiate import (
    EncryptionCapabilities,
    NegotiateRequest,
    NegotiateResponse,
    NetnameNegotiateContextId,
    PreauthIntegrityCapabilities,
    RawNegotiateContext,
    SigningCapabilities,
    Smb1NegotiateRequest,
)
from netsession.wire.smb2.payloads import (
    FileStandardInformation,
    PipeWaitRequest,
    ValidateNegotiateInfoRequest,
    ValidateNegotiateInfoResponse,
    filetime_from_unix,
)
from netsession.wire.smb2.transport import DirectTcpDeframer, frame

FID = m.FileId(0x0000000400000006, 0x0000000400000001)
GUID = uuid.UUID("326fd8ec-7662-4f02-9f77-52b89bb33f3a")
# smbprotocol writes a UUID's RFC 4122 bytes (UUID.bytes); MS-DTYP 2.3.4.2 puts Data1..3 little-endian
# (UUID.bytes_le). A GUID is opaque on the wire, so the tests compare the 16 bytes each side sent.
SP_GUID = uuid.UUID(bytes_le=GUID.bytes)  # how we read the bytes smbprotocol writes for GUID


def request(body: Any, **fields: int) -> bytes:
    """A whole request message: a plain SYNC header with ``body``'s command."""
    return m.encode_message(
        Smb2Header(command=body.COMMAND, message_id=7, session_id=0x11, tree_id=3, **fields), body
    )


def response(body: Any, command: int | None = None, status: int = NtStatus.STATUS_SUCCESS) -> bytes:
    cmd = body.COMMAND if command is None else command
    header = Smb2Header(
        command=cmd, status=status, flags=HeaderFlags.SERVER_TO_REDIR, message_id=7, credits=1
    )
    return m.encode_message(header, body)


def sp_request(body: Any, command: int) -> bytes:
    """smbprotocol's own request header around an smbprotocol body."""
    header = SMB2HeaderRequest()
    header["command"] = command
    header["message_id"] = 7
    header["session_id"] = 0x11
    header["tree_id"] = 3
    header["data"] = body.pack()
    return bytes(header.pack())


def sp_response(body: Any, command: int, status: int = 0) -> bytes:
    header = SMB2HeaderResponse()
    header["command"] = command
    header["status"] = status
    header["flags"] = HeaderFlags.SERVER_TO_REDIR
    header["message_id"] = 7
    header["data"] = body.pack()
    return bytes(header.pack())


def sp_read(structure: Any, message: bytes) -> Any:
    """An smbprotocol structure unpacked from the body of one of our messages."""
    structure.unpack(message[64:])
    return structure


def field(structure: Any, name: str) -> Any:
    return structure[name].get_value()


def filetime(structure: Any, name: str) -> int:
    return int(struct.unpack("<Q", structure[name].pack())[0])


# --- header -----------------------------------------------------------------------------------------


def test_header_sync_round_trip() -> None:
    h = Smb2Header(
        Command.CREATE, 0xC0000022, 1, 31, 0x10000008, 0, 2**63 + 5, 0xFEFF, 9, 0, 2**40, b"s" * 16
    )
    raw = h.encode()
    assert len(raw) == 64 and Smb2Header.decode(raw) == h


def test_header_async_form_carries_async_id_instead_of_tree_id() -> None:
    h = Smb2Header(
        Command.IOCTL, NtStatus.STATUS_PENDING, flags=HeaderFlags.ASYNC_COMMAND | 1, async_id=0xABCDEF
    )
    raw = h.encode()
    assert struct.unpack_from("<Q", raw, 32)[0] == 0xABCDEF
    assert Smb2Header.decode(raw) == h


def test_header_decodes_smbprotocol_request_header() -> None:
    sp = SMB2HeaderRequest()
    sp["command"] = Command.WRITE
    sp["credit_charge"] = 2
    sp["channel_sequence"] = 5
    sp["credit_request"] = 64
    sp["flags"] = HeaderFlags.SIGNED | HeaderFlags.RELATED_OPERATIONS
    sp["next_command"] = 120
    sp["message_id"] = 99
    sp["process_id"] = 0xFEFF
    sp["tree_id"] = 7
    sp["session_id"] = 0x4000000000D
    sp["signature"] = bytes(range(16))
    h = Smb2Header.decode(bytes(sp.pack()))
    assert (h.command, h.credit_charge, h.channel_sequence, h.credits, h.next_command) == (9, 2, 5, 64, 120)
    assert (h.message_id, h.process_id, h.tree_id, h.session_id) == (99, 0xFEFF, 7, 0x4000000000D)
    assert h.is_signed and h.is_related and not h.is_response and h.signature == bytes(range(16))


def test_header_encodes_what_smbprotocol_reads_as_response() -> None:
    h = Smb2Header(
        Command.TREE_CONNECT, 0xC00000CC, credits=3, flags=1, message_id=4, tree_id=8, session_id=9
    )
    sp = SMB2HeaderResponse()
    sp.unpack(h.encode())
    assert field(sp, "status") == 0xC00000CC and field(sp, "credit_response") == 3
    assert (field(sp, "message_id"), field(sp, "tree_id"), field(sp, "session_id")) == (4, 8, 9)


def test_header_async_form_matches_smbprotocol() -> None:
    sp = SMB2HeaderAsync()
    sp["command"] = Command.CANCEL
    sp["flags"] = HeaderFlags.ASYNC_COMMAND
    sp["message_id"] = 12
    sp["async_id"] = 0x1234
    sp["session_id"] = 5
    raw = bytes(sp.pack())
    h = Smb2Header.decode(raw)
    assert (h.command, h.is_async, h.async_id, h.message_id, h.session_id) == (
        Command.CANCEL,
        True,
        0x1234,
        12,
        5,
    )
    assert h.encode() == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"\xfeSMB" + bytes(59),  # 63 bytes
        b"\xffSMB" + struct.pack("<H", 64) + bytes(58),  # SMB1 protocol id
        b"\xfeSMB" + struct.pack("<H", 65) + bytes(58),  # StructureSize 65
    ],
    ids=["short", "protocol", "structure-size"],
)
def test_header_rejects_what_is_not_an_smb2_header(raw: bytes) -> None:
    with pytest.raises(Smb2DecodeError):
        Smb2Header.decode(raw)


def test_response_header_copies_request_identity() -> None:
    req = Smb2Header(
        Command.CREATE,
        credit_charge=1,
        credits=5,
        message_id=41,
        process_id=0xFEFF,
        tree_id=2,
        session_id=77,
        flags=HeaderFlags.SIGNED | HeaderFlags.DFS_OPERATIONS,
        signature=b"x" * 16,
    )
    resp = req.response(status=NtStatus.STATUS_ACCESS_DENIED, credits=10)
    assert resp.is_response and not resp.is_signed and resp.flags == HeaderFlags.SERVER_TO_REDIR
    assert (resp.command, resp.message_id, resp.credit_charge, resp.session_id, resp.tree_id) == (
        5,
        41,
        1,
        77,
        2,
    )
    assert (resp.process_id, resp.status, resp.credits, resp.signature) == (0xFEFF, 0xC0000022, 10, bytes(16))


def test_response_header_keeps_related_flag_and_can_go_async() -> None:
    req = Smb2Header(Command.IOCTL, flags=HeaderFlags.RELATED_OPERATIONS, message_id=3, tree_id=4)
    interim = req.response(status=NtStatus.STATUS_PENDING, async_id=0x55)
    assert interim.is_related and interim.is_async and interim.async_id == 0x55 and interim.tree_id == 0
    assert Smb2Header.decode(interim.encode()) == interim


def test_channel_sequence_is_low_half_of_status() -> None:
    assert Smb2Header(Command.WRITE, status=0xBEEF0007).channel_sequence == 7


def test_signature_offset_is_the_signature_field() -> None:
    raw = Smb2Header(Command.ECHO, signature=bytes(range(16))).encode()
    assert raw[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE] == bytes(range(16))


# --- Windows captures (Microsoft's published SMB 3.x test vectors, see smb2_vectors) -------------------


def test_windows_negotiate_request_decodes_and_reencodes_identically() -> None:
    header, body = m.decode_request(WIN_NEGOTIATE_REQUEST)
    assert isinstance(body, NegotiateRequest)
    assert body.dialects == (0x0202, 0x0210, 0x0300, 0x0302, 0x0311) and body.capabilities == 0x3F
    assert body.client_guid == GUID
    preauth, enc = body.negotiate_contexts
    assert isinstance(preauth, PreauthIntegrityCapabilities) and preauth.hash_algorithms == (
        HashAlgorithm.SHA_512,
    )
    assert len(preauth.salt) == 32 and enc == EncryptionCapabilities((Cipher.AES_128_GCM, Cipher.AES_128_CCM))
    assert header.encode() + body.encode() == WIN_NEGOTIATE_REQUEST


def test_windows_negotiate_response_decodes_and_reencodes_identically() -> None:
    header, body = m.decode_response(WIN_NEGOTIATE_RESPONSE)
    assert isinstance(body, NegotiateResponse)
    assert (body.dialect_revision, body.security_mode, body.capabilities) == (0x0311, 1, 0x2F)
    assert (body.max_transact_size, body.max_read_size, body.max_write_size) == (0x800000,) * 3
    assert len(body.security_buffer) == 320 and body.security_buffer[:2] == b"\x60\x82"
    assert body.negotiate_contexts[1] == EncryptionCapabilities((Cipher.AES_128_GCM,))
    assert header.encode() + body.encode() == WIN_NEGOTIATE_RESPONSE


def test_windows_session_setup_exchange_reencodes_identically() -> None:
    h1, req = m.decode_request(WIN_SESSION_SETUP_REQUEST)
    h2, resp = m.decode_response(WIN_SESSION_SETUP_RESPONSE)
    assert isinstance(req, m.SessionSetupRequest) and req.security_buffer[:2] == b"\x60\x48"
    assert (req.flags, req.security_mode) == (0, 1)
    assert isinstance(resp, m.SessionSetupResponse) and h2.status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED
    assert b"NTLMSSP\x00\x02" in resp.security_buffer and h2.session_id == 0x0000100000000019
    assert h1.encode() + req.encode() == WIN_SESSION_SETUP_REQUEST
    assert h2.encode() + resp.encode() == WIN_SESSION_SETUP_RESPONSE


def test_windows_write_request_decodes() -> None:
    header, body = m.decode_request(WIN_WRITE_REQUEST)
    assert isinstance(body, m.WriteRequest) and body.data == b"Smb3 encryption testing"
    assert body.file_id == m.FileId(0x0200003900000115, 0x0000023900000001)
    assert (header.tree_id, header.session_id, header.message_id) == (1, 0x8E40014000011, 4)


def test_write_response_is_sixteen_bytes_like_windows() -> None:
    header, body = m.decode_response(WIN_WRITE_RESPONSE)
    assert body == m.WriteResponse(count=0x17)
    assert header.encode() + body.encode() == WIN_WRITE_RESPONSE


# --- NEGOTIATE --------------------------------------------------------------------------------------


def sp_negotiate_contexts() -> list[Any]:
    preauth = sp_conn.SMB2NegotiateContextRequest()
    preauth["context_type"] = NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES
    preauth["data"] = sp_conn.SMB2PreauthIntegrityCapabilities()
    preauth["data"]["hash_algorithms"] = [HashAlgorithm.SHA_512]
    preauth["data"]["salt"] = b"\x01" * 32
    enc = sp_conn.SMB2NegotiateContextRequest()
    enc["context_type"] = NegotiateContextType.ENCRYPTION_CAPABILITIES
    enc["data"] = sp_conn.SMB2EncryptionCapabilities()
    enc["data"]["ciphers"] = [Cipher.AES_256_GCM, Cipher.AES_128_GCM, Cipher.AES_128_CCM]
    net = sp_conn.SMB2NegotiateContextRequest()
    net["context_type"] = NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID
    net["data"] = sp_conn.SMB2NetnameNegotiateContextId()
    net["data"]["net_name"] = "fileserver"
    sign = sp_conn.SMB2NegotiateContextRequest()
    sign["context_type"] = NegotiateContextType.SIGNING_CAPABILITIES
    sign["data"] = sp_conn.SMB2SigningCapabilities()
    sign["data"]["signing_algorithms"] = [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC]
    sign["padding"].size = 0
    sign["padding"] = b""
    return [preauth, enc, net, sign]


OUR_CONTEXTS = (
    PreauthIntegrityCapabilities((HashAlgorithm.SHA_512,), b"\x01" * 32),
    EncryptionCapabilities((Cipher.AES_256_GCM, Cipher.AES_128_GCM, Cipher.AES_128_CCM)),
    NetnameNegotiateContextId("fileserver"),
    SigningCapabilities((SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC)),
)


@pytest.mark.parametrize(
    "dialects", [[0x0202, 0x0210, 0x0300, 0x0302, 0x0311], [0x0300, 0x0302, 0x0210, 0x0311]]
)
def test_negotiate_request_from_smbprotocol_decodes(dialects: list[int]) -> None:
    # four dialects make smbprotocol put the first context at offset 108, not 8-aligned; read it anyway
    sp = sp_conn.SMB3NegotiateRequest()
    sp["dialects"] = dialects
    sp["security_mode"] = 1
    sp["capabilities"] = 0x7F
    sp["client_guid"] = GUID
    sp["negotiate_context_list"] = sp_negotiate_contexts()
    _, body = m.decode_request(sp_request(sp, Command.NEGOTIATE))
    assert isinstance(body, NegotiateRequest)
    assert (body.dialects, body.security_mode, body.capabilities) == (tuple(dialects), 1, 0x7F)
    assert body.client_guid == SP_GUID
    assert body.negotiate_contexts == OUR_CONTEXTS


def test_negotiate_request_encodes_what_smbprotocol_reads() -> None:
    # smbprotocol (a client) reads a request's contexts from where its own padding rule puts them, which
    # is the right place only for an odd dialect count
    ours = NegotiateRequest((0x0202, 0x0210, 0x0311), 2, 0x44, GUID, OUR_CONTEXTS)
    sp = sp_read(sp_conn.SMB3NegotiateRequest(), request(ours))
    assert (
        field(sp, "dialects") == [0x0202, 0x0210, 0x0311] and field(sp, "client_guid").bytes == GUID.bytes_le
    )
    assert field(sp, "negotiate_context_offset") % 8 == 0
    ctx = field(sp, "negotiate_context_list")
    assert [field(c, "context_type") for c in ctx] == [1, 2, 5, 8]
    assert field(ctx[0]["data"].get_value(), "salt") == b"\x01" * 32
    assert field(ctx[2]["data"].get_value(), "net_name") == "fileserver"
    assert field(ctx[3]["data"].get_value(), "signing_algorithms") == [2, 1]


def test_negotiate_request_without_0311_carries_client_start_time() -> None:
    sp = sp_conn.SMB2NegotiateRequest()
    sp["dialects"] = [0x0202, 0x0210]
    sp["client_guid"] = GUID
    sp["client_start_time"] = 0
    _, body = m.decode_request(sp_request(sp, Command.NEGOTIATE))
    assert body == NegotiateRequest((0x0202, 0x0210), 0, 0, SP_GUID)
    ours = NegotiateRequest((0x0202,), client_start_time=5)
    assert m.decode_request(request(ours))[1] == ours


def test_negotiate_contexts_are_read_only_when_0311_is_offered() -> None:
    raw = bytearray(request(NegotiateRequest((0x0311,), negotiate_contexts=OUR_CONTEXTS)))
    struct.pack_into("<H", raw, 100, 0x0302)  # the only dialect is now 3.0.2
    _, body = m.decode_request(bytes(raw))
    assert (
        isinstance(body, NegotiateRequest) and body.negotiate_contexts == () and body.client_start_time != 0
    )


@pytest.mark.parametrize("dialect", [0x0311, 0x0210])
def test_negotiate_response_encodes_what_smbprotocol_reads(dialect: int) -> None:
    contexts: tuple[Any, ...] = OUR_CONTEXTS[:2] + OUR_CONTEXTS[3:] if dialect == 0x0311 else ()
    ours = NegotiateResponse(
        dialect,
        3,
        GUID,
        0x47,
        1 << 20,
        2 << 20,
        3 << 20,
        132_000_000_000_000_000,
        0,
        b"\x60\x28" + bytes(40),
        contexts,
    )
    sp = sp_read(sp_conn.SMB2NegotiateResponse(), response(ours))
    assert (field(sp, "dialect_revision"), field(sp, "capabilities")) == (dialect, 0x47)
    assert field(sp, "server_guid").bytes == GUID.bytes_le
    assert (field(sp, "max_read_size"), field(sp, "buffer")) == (2 << 20, ours.security_buffer)
    assert filetime(sp, "system_time") == ours.system_time
    ctx = field(sp, "negotiate_context_list")
    assert [field(c, "context_type") for c in ctx] == [1, 2, 8][: len(contexts)]


def test_negotiate_response_from_smbprotocol_decodes() -> None:
    sp = sp_conn.SMB2NegotiateResponse()
    sp["security_mode"] = 1
    sp["dialect_revision"] = 0x0311
    sp["server_guid"] = GUID
    sp["capabilities"] = 0x2F
    sp["max_transact_size"] = sp["max_read_size"] = sp["max_write_size"] = 0x800000
    sp["system_time"] = 132_000_000_000_000_000
    sp["server_start_time"] = 0
    sp["buffer"] = b"\x60\x28" + bytes(40)
    sp["negotiate_context_list"] = sp_negotiate_contexts()[:2]
    body = m.decode_response(sp_response(sp, Command.NEGOTIATE))[1]
    assert body == NegotiateResponse(
        0x0311,
        1,
        SP_GUID,
        0x2F,
        0x800000,
        0x800000,
        0x800000,
        132_000_000_000_000_000,
        0,
        sp["buffer"].get_value(),
        OUR_CONTEXTS[:2],
    )


def test_unhandled_negotiate_contexts_are_kept_raw() -> None:
    compression = RawNegotiateContext(
        NegotiateContextType.COMPRESSION_CAPABILITIES,
        struct.pack("<HHIH", 1, 0, 0, CompressionAlgorithm.LZ77),
    )
    others = (
        compression,
        RawNegotiateContext(NegotiateContextType.TRANSPORT_CAPABILITIES, struct.pack("<I", 1)),
        RawNegotiateContext(
            NegotiateContextType.RDMA_TRANSFORM_CAPABILITIES, struct.pack("<HHIH", 1, 0, 0, 1)
        ),
        RawNegotiateContext(NegotiateContextType.CONTEXTTYPE_RESERVED, b"posix!"),
        RawNegotiateContext(0x7777, b""),
    )
    ours = NegotiateRequest((0x0311,), negotiate_contexts=OUR_CONTEXTS[:1] + others)
    raw = request(ours)
    body = m.decode_request(raw)[1]
    assert body == ours and isinstance(body, NegotiateRequest)
    assert body.contexts_of_type(NegotiateContextType.COMPRESSION_CAPABILITIES) == [compression]
    assert request(body) == raw


def test_netname_context_is_decoded_leniently() -> None:
    raw = NegotiateRequest((0x0311,), negotiate_contexts=(RawNegotiateContext(5, b"abc"),))
    body = m.decode_request(request(raw))[1]
    assert isinstance(body, NegotiateRequest) and isinstance(
        body.negotiate_contexts[0], NetnameNegotiateContextId
    )


def patch(message: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(message)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


NEG311 = request(NegotiateRequest((0x0311,), negotiate_contexts=OUR_CONTEXTS))
CTX0 = struct.unpack_from("<I", NEG311, 64 + 28)[0]  # NegotiateContextOffset


@pytest.mark.parametrize(
    ("offset", "fmt", "value"),
    [
        (64 + 2, "<H", 200),  # DialectCount beyond the message
        (64 + 28, "<I", 100),  # NegotiateContextOffset into the dialects
        (64 + 28, "<I", 4000),  # NegotiateContextOffset past the end
        (64 + 32, "<H", 9),  # NegotiateContextCount larger than present
        (CTX0 + 2, "<H", 500),  # first context's DataLength past the end
        (CTX0 + 8, "<H", 100),  # HashAlgorithmCount larger than the context
        (CTX0 + 10, "<H", 200),  # SaltLength larger than the context
        (64, "<H", 37),  # StructureSize
    ],
    ids=[
        "dialect-count",
        "ctx-offset-low",
        "ctx-offset-high",
        "ctx-count",
        "data-length",
        "hash-count",
        "salt",
        "structure-size",
    ],
)
def test_inconsistent_negotiate_request_is_decode_error(offset: int, fmt: str, value: int) -> None:
    with pytest.raises(Smb2DecodeError):
        m.decode_request(patch(NEG311, offset, fmt, value))


# --- SMB1 multi-protocol negotiate ------------------------------------------------------------------


def impacket_smb1_negotiate(dialects: bytes) -> bytes:
    from impacket import smb

    packet = smb.NewSMBPacket()
    command = smb.SMBCommand(smb.SMB.SMB_COM_NEGOTIATE)
    command["Data"] = dialects
    packet.addCommand(command)
    return bytes(packet.getData())


def test_smb1_negotiate_from_impacket_offers_smb2_wildcard() -> None:
    raw = impacket_smb1_negotiate(b"\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00")
    neg = Smb1NegotiateRequest.decode(raw)
    assert neg.dialects == ("NT LM 0.12", "SMB 2.002", "SMB 2.???")
    assert neg.offers_smb2_wildcard and neg.offers_smb2_002


def test_smb1_negotiate_without_smb2_dialects() -> None:
    neg = Smb1NegotiateRequest.decode(impacket_smb1_negotiate(b"\x02NT LM 0.12\x00"))
    assert not neg.offers_smb2_wildcard and not neg.offers_smb2_002


def test_smb1_negotiate_round_trip() -> None:
    neg = Smb1NegotiateRequest(
        ("SMB 2.002",), flags=0x18, flags2=0xC853, pid=0x12345, tid=0xFFFF, uid=2, mid=9
    )
    assert Smb1NegotiateRequest.decode(neg.encode()) == neg


@pytest.mark.parametrize(
    "raw",
    [
        Smb1NegotiateRequest(("SMB 2.002",)).encode()[:-1],  # ByteCount beyond the end
        Smb1NegotiateRequest(("SMB 2.002",)).encode()[:-1] + b"2",  # no NUL
        Smb1NegotiateRequest(("SMB 2.002",)).encode().replace(b"\x02SMB", b"\x03SMB"),  # BufferFormat
        b"\xffSMB\x73" + Smb1NegotiateRequest(()).encode()[5:],  # SESSION_SETUP_ANDX
        b"\xffSMB\x72" + bytes(28) + b"\x01\x00\x00\x00\x00",  # WordCount 1
        b"\xfeSMB" + bytes(40),
    ],
    ids=["bytecount", "unterminated", "buffer-format", "command", "wordcount", "protocol"],
)
def test_bad_smb1_negotiate_is_decode_error(raw: bytes) -> None:
    with pytest.raises(Smb2DecodeError):
        Smb1NegotiateRequest.decode(raw)


# --- SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT, ECHO, CANCEL, ERROR ----------------------


def test_session_setup_request_matches_smbprotocol() -> None:
    sp = sp_sess.SMB2SessionSetupRequest()
    sp["flags"] = 1
    sp["security_mode"] = 2
    sp["capabilities"] = 1
    sp["previous_session_id"] = 0x99
    sp["buffer"] = b"\x60token"
    body = m.decode_request(sp_request(sp, Command.SESSION_SETUP))[1]
    assert body == m.SessionSetupRequest(b"\x60token", 1, 2, 1, 0, 0x99)
    back = sp_read(sp_sess.SMB2SessionSetupRequest(), request(body))
    assert field(back, "buffer") == b"\x60token" and field(back, "previous_session_id") == 0x99


def test_session_setup_response_matches_smbprotocol() -> None:
    ours = m.SessionSetupResponse(b"\xa1\x07\x30\x05\xa0\x03\x0a\x01\x00", session_flags=1)
    sp = sp_read(sp_sess.SMB2SessionSetupResponse(), response(ours))
    assert field(sp, "buffer") == ours.security_buffer and field(sp, "session_flags") == 1
    assert m.decode_response(sp_response(sp, Command.SESSION_SETUP))[1] == ours


def test_empty_variable_part_is_sent_as_one_zero_byte() -> None:
    assert len(m.SessionSetupResponse().encode()) == 9
    assert m.ErrorResponse().encode() == b"\x09\x00\x00\x00\x00\x00\x00\x00\x00"
    assert len(m.TreeConnectResponse(ShareType.PIPE).encode()) == 16  # even size: no Buffer byte


@pytest.mark.parametrize(
    ("ours", "sp_class"),
    [
        (m.LogoffRequest(), sp_sess.SMB2Logoff),
        (m.LogoffResponse(), sp_sess.SMB2Logoff),
        (m.TreeDisconnectRequest(), sp_tree.SMB2TreeDisconnect),
        (m.TreeDisconnectResponse(), sp_tree.SMB2TreeDisconnect),
        (m.EchoRequest(), sp_conn.SMB2Echo),
        (m.EchoResponse(), sp_conn.SMB2Echo),
        (m.CancelRequest(), sp_conn.SMB2CancelRequest),
        (m.FlushResponse(), sp_open.SMB2FlushResponse),
    ],
)
def test_four_byte_bodies_match_smbprotocol(ours: Any, sp_class: Any) -> None:
    assert ours.encode() == bytes(sp_class().pack())
    assert type(ours).decode(b"\x00" * 64 + bytes(sp_class().pack())) == ours


def test_tree_connect_request_matches_smbprotocol() -> None:
    sp = sp_tree.SMB2TreeConnectRequest()
    sp["buffer"] = "\\\\fileserver\\IPC$".encode("utf-16-le")
    body = m.decode_request(sp_request(sp, Command.TREE_CONNECT), dialect=0x0311)[1]
    assert body == m.TreeConnectRequest("\\\\fileserver\\IPC$")
    back = sp_read(sp_tree.SMB2TreeConnectRequest(), request(body))
    assert field(back, "buffer").decode("utf-16-le") == "\\\\fileserver\\IPC$"


def test_tree_connect_response_matches_smbprotocol() -> None:
    ours = m.TreeConnectResponse(ShareType.PIPE, 0x30, 0, 0x001F01FF)
    sp = sp_read(sp_tree.SMB2TreeConnectResponse(), response(ours))
    assert (field(sp, "share_type"), field(sp, "share_flags"), field(sp, "maximal_access")) == (
        2,
        0x30,
        0x1F01FF,
    )
    assert m.decode_response(sp_response(sp, Command.TREE_CONNECT))[1] == ours


def test_tree_connect_extension_contexts_are_listed() -> None:
    ctx = (m.TreeConnectContext(1, b"remoted-identity"), m.TreeConnectContext(0x99, b"x"))
    ours = m.TreeConnectRequest("\\\\srv\\IPC$", TreeConnectFlags.EXTENSION_PRESENT, ctx)
    raw = request(ours)
    assert struct.unpack_from("<H", raw, 68)[0] == 88  # PathOffset: after the 16-byte extension
    assert m.decode_request(raw, dialect=0x0311)[1] == ours


def test_tree_connect_flags_are_ignored_before_311() -> None:
    ours = m.TreeConnectRequest(
        "\\\\srv\\IPC$", TreeConnectFlags.EXTENSION_PRESENT, (m.TreeConnectContext(1, b"x"),)
    )
    body = m.decode_request(request(ours), dialect=0x0302)[1]
    assert (
        isinstance(body, m.TreeConnectRequest)
        and body.path == "\\\\srv\\IPC$"
        and body.tree_connect_contexts == ()
    )


def test_tree_connect_extension_context_past_the_end_is_decode_error() -> None:
    ours = m.TreeConnectRequest(
        "\\\\srv\\IPC$", TreeConnectFlags.EXTENSION_PRESENT, (m.TreeConnectContext(1, b"x"),)
    )
    raw = request(ours)
    ctx_at = 64 + struct.unpack_from("<I", raw, 72)[0]
    with pytest.raises(Smb2DecodeError):
        m.decode_request(patch(raw, ctx_at + 2, "<H", 300), dialect=0x0311)


def test_error_response_matches_smbprotocol() -> None:
    ours = m.ErrorResponse()
    sp = sp_read(
        sp_exc.SMB2ErrorResponse(), response(ours, Command.CREATE, NtStatus.STATUS_OBJECT_NAME_NOT_FOUND)
    )
    assert (field(sp, "structure_size"), field(sp, "byte_count"), field(sp, "error_context_count")) == (
        9,
        0,
        0,
    )
    with_data = m.ErrorResponse(b"\x08\x00\x00\x00\x00\x00\x00\x00abcdefgh", 1)
    assert (
        m.decode_response(response(with_data, Command.TREE_CONNECT, NtStatus.STATUS_BAD_NETWORK_NAME))[1]
        == with_data
    )


# --- CREATE, CLOSE, FLUSH ---------------------------------------------------------------------------


def sp_create_request(name: str, contexts: list[Any]) -> Any:
    sp = sp_open.SMB2CreateRequest()
    sp["requested_oplock_level"] = 0
    sp["impersonation_level"] = 2
    sp["desired_access"] = 0x0012019F
    sp["share_access"] = 3
    sp["create_disposition"] = 1
    sp["create_options"] = 0x40
    sp["buffer_path"] = name.encode("utf-16-le") if name else b"\x00\x00"
    if contexts:
        sp["buffer_contexts"] = contexts
    return sp


def test_create_request_from_smbprotocol_with_contexts() -> None:
    mxac = sp_ctx.SMB2CreateContextRequest()
    mxac["buffer_name"] = b"MxAc"
    qfid = sp_ctx.SMB2CreateContextRequest()
    qfid["buffer_name"] = b"QFid"
    dh2q = sp_ctx.SMB2CreateContextRequest()
    dh2q["buffer_name"] = b"DH2Q"
    dh2q["buffer_data"] = bytes(range(32))
    sp = sp_create_request("srvsvc", [])
    sp["buffer_contexts"] = sp_ctx.SMB2CreateContextRequest.pack_multiple([mxac, dh2q, qfid])
    body = m.decode_request(sp_request(sp, Command.CREATE))[1]
    assert isinstance(body, m.CreateRequest)
    assert (body.name, body.desired_access, body.share_access, body.create_disposition) == (
        "srvsvc",
        0x12019F,
        3,
        1,
    )
    assert (body.impersonation_level, body.create_options) == (2, 0x40)
    assert body.create_contexts == (
        m.CreateContext(b"MxAc"),
        m.CreateContext(b"DH2Q", bytes(range(32))),
        m.CreateContext(b"QFid"),
    )


def test_create_request_encodes_what_smbprotocol_reads() -> None:
    ours = m.CreateRequest(
        "lsarpc",
        0x12019F,
        share_access=3,
        create_contexts=(m.CreateContext(b"DHnQ", bytes(16)), m.CreateContext(b"MxAc")),
    )
    sp = sp_read(sp_open.SMB2CreateRequest(), request(ours))
    assert (
        field(sp, "buffer_path").decode("utf-16-le") == "lsarpc"
        and field(sp, "create_contexts_offset") % 8 == 0
    )
    names = [(field(c, "buffer_name"), field(c, "buffer_data")) for c in field(sp, "buffer_contexts")]
    assert names == [(b"DHnQ", bytes(16)), (b"MxAc", b"")]


def test_create_request_with_empty_name_and_no_contexts() -> None:
    body = m.decode_request(sp_request(sp_create_request("", []), Command.CREATE))[1]
    assert isinstance(body, m.CreateRequest) and body.name == "" and body.create_contexts == ()
    assert len(m.CreateRequest("").encode()) == 57


def test_create_response_round_trips_through_smbprotocol() -> None:
    ours = m.CreateResponse(
        FID,
        1,
        0,
        0,
        132_000_000_000_000_000,
        10,
        20,
        30,
        4096,
        0,
        0x80,
        (m.CreateContext(b"MxAc", struct.pack("<II", 0, 0x1F01FF)),),
    )
    sp = sp_read(sp_open.SMB2CreateResponse(), response(ours))
    assert field(sp, "file_id") == FID.encode() and field(sp, "allocation_size") == 4096
    assert filetime(sp, "creation_time") == ours.creation_time
    assert m.decode_response(sp_response(sp, Command.CREATE))[1] == ours


def test_close_request_and_response_match_smbprotocol() -> None:
    sp = sp_open.SMB2CloseRequest()
    sp["flags"] = 1
    sp["file_id"] = FID.encode()
    assert m.decode_request(sp_request(sp, Command.CLOSE))[1] == m.CloseRequest(FID, 1)
    ours = m.CloseResponse(1, 132_000_000_000_000_000, 10, 20, 30, 4096, 5, 0x80)
    back = sp_read(sp_open.SMB2CloseResponse(), response(ours))
    assert filetime(back, "last_write_time") == 20 and field(back, "end_of_file") == 5
    assert m.decode_response(sp_response(back, Command.CLOSE))[1] == ours


def test_flush_request_matches_smbprotocol() -> None:
    sp = sp_open.SMB2FlushRequest()
    sp["file_id"] = FID.encode()
    assert m.decode_request(sp_request(sp, Command.FLUSH))[1] == m.FlushRequest(FID)
    assert m.FlushRequest(FID).encode() == bytes(sp.pack())


def create_contexts_message(contexts: bytes) -> bytes:
    """A CREATE request whose context list is exactly ``contexts`` (at offset 128, after "srvsvc")."""
    base = bytearray(request(m.CreateRequest("srvsvc", create_contexts=(m.CreateContext(b"MxAc"),))))
    del base[128:]
    struct.pack_into("<II", base, 64 + 48, 128, len(contexts))
    return bytes(base) + contexts


CTX_HEAD = struct.Struct("<IHHHHI")


@pytest.mark.parametrize(
    "contexts",
    [
        CTX_HEAD.pack(20, 16, 4, 0, 0, 0) + b"MxAc" + bytes(4) + CTX_HEAD.pack(0, 16, 4, 0, 0, 0) + b"QFid",
        CTX_HEAD.pack(8, 16, 4, 0, 0, 0) + b"MxAc" + bytes(4),  # Next inside the header
        CTX_HEAD.pack(24, 16, 4, 0, 0, 0) + b"MxAc" + bytes(4),  # Next at / past the end of the list
        CTX_HEAD.pack(0, 16, 40, 0, 0, 0) + b"MxAc",  # Name past the context
        CTX_HEAD.pack(0, 4, 4, 0, 0, 0) + b"MxAc",  # Name inside the context header
        CTX_HEAD.pack(0, 16, 4, 0, 24, 64) + b"MxAc" + bytes(4),  # Data past the context
        CTX_HEAD.pack(0, 16, 4, 0, 0, 0)[:10],  # truncated header
    ],
    ids=[
        "unaligned-next",
        "short-next",
        "next-past-end",
        "name-past",
        "name-in-header",
        "data-past",
        "truncated",
    ],
)
def test_bad_create_context_chain_is_decode_error(contexts: bytes) -> None:
    with pytest.raises(Smb2DecodeError):
        m.decode_request(create_contexts_message(contexts))


# --- READ, WRITE, IOCTL, QUERY_INFO -----------------------------------------------------------------


def test_read_request_matches_smbprotocol() -> None:
    sp = sp_open.SMB2ReadRequest()
    sp["length"] = 4280
    sp["file_id"] = FID.encode()
    sp["minimum_count"] = 1
    body = m.decode_request(sp_request(sp, Command.READ))[1]
    assert body == m.ReadRequest(FID, 4280, minimum_count=1)
    back = sp_read(sp_open.SMB2ReadRequest(), request(body))
    assert field(back, "length") == 4280 and field(back, "file_id") == FID.encode()


def test_read_response_data_at_offset_80_as_smbprotocol_reads_it() -> None:
    ours = m.ReadResponse(b"\x05\x00\x02\x03" + bytes(60), data_remaining=0)
    sp = sp_read(sp_open.SMB2ReadResponse(), response(ours))
    assert field(sp, "data_offset") == 80 and field(sp, "buffer") == ours.data
    assert m.decode_response(sp_response(sp, Command.READ))[1] == ours


def test_write_request_and_response_match_smbprotocol() -> None:
    sp = sp_open.SMB2WriteRequest()
    sp["file_id"] = FID.encode()
    sp["buffer"] = b"\x05\x00\x0b\x03rpc-bind"
    body = m.decode_request(sp_request(sp, Command.WRITE))[1]
    assert body == m.WriteRequest(FID, b"\x05\x00\x0b\x03rpc-bind")
    back = sp_read(sp_open.SMB2WriteRequest(), request(body))
    assert field(back, "buffer") == body.data and field(back, "data_offset") == 112
    resp = sp_read(sp_open.SMB2WriteResponse(), response(m.WriteResponse(12)))
    assert field(resp, "count") == 12
    assert m.decode_response(sp_response(resp, Command.WRITE))[1] == m.WriteResponse(12)


def test_ioctl_request_from_smbprotocol_pipe_transceive() -> None:
    sp = sp_ioctl.SMB2IOCTLRequest()
    sp["ctl_code"] = FsctlCode.FSCTL_PIPE_TRANSCEIVE
    sp["file_id"] = FID.encode()
    sp["max_output_response"] = 4280
    sp["flags"] = 1
    sp["buffer"] = b"\x05\x00\x00\x03request-pdu"
    body = m.decode_request(sp_request(sp, Command.IOCTL))[1]
    assert body == m.IoctlRequest(
        FsctlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"\x05\x00\x00\x03request-pdu", 0, 4280
    )
    back = sp_read(sp_ioctl.SMB2IOCTLRequest(), request(body))
    assert field(back, "buffer") == body.input and field(back, "ctl_code") == 0x0011C017
    assert field(back, "input_offset") == field(back, "output_offset") == 120  # MS-SMB2 <64>


def test_ioctl_response_output_where_smbprotocol_reads_it() -> None:
    ours = m.IoctlResponse(FsctlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"\x05\x00\x02\x03response-pdu")
    sp = sp_read(sp_ioctl.SMB2IOCTLResponse(), response(ours))
    assert (field(sp, "input_offset"), field(sp, "input_count"), field(sp, "output_offset")) == (112, 0, 112)
    assert field(sp, "buffer") == ours.output
    assert m.decode_response(sp_response(sp, Command.IOCTL))[1] == ours


def test_ioctl_response_output_follows_input_8_aligned() -> None:
    ours = m.IoctlResponse(FsctlCode.FSCTL_PIPE_PEEK, m.FILE_ID_ANY, output=b"out", input=b"in!")
    raw = response(ours)
    assert struct.unpack_from("<IIII", raw, 64 + 24) == (112, 3, 120, 3)
    assert m.decode_response(raw)[1] == ours


def test_query_info_request_and_response_match_smbprotocol() -> None:
    sp = sp_open.SMB2QueryInfoRequest()
    sp["info_type"] = InfoType.FILE
    sp["file_info_class"] = FileInformationClass.FileStandardInformation
    sp["output_buffer_length"] = 24
    sp["file_id"] = FID.encode()
    body = m.decode_request(sp_request(sp, Command.QUERY_INFO))[1]
    assert body == m.QueryInfoRequest(1, 5, FID, 24)
    info = FileStandardInformation(4096, 0, 1, True, False)
    resp = sp_read(sp_open.SMB2QueryInfoResponse(), response(m.QueryInfoResponse(info.encode())))
    assert field(resp, "output_buffer_offset") == 72 and field(resp, "buffer") == info.encode()
    parsed = resp.parse_buffer(sp_info.FileStandardInformation)
    assert (
        field(parsed, "allocation_size"),
        field(parsed, "delete_pending"),
        field(parsed, "number_of_links"),
    ) == (4096, True, 1)


def test_query_info_request_input_buffer_round_trip() -> None:
    ours = m.QueryInfoRequest(InfoType.QUOTA, 0, FID, 100, b"quota-info", 0, 0)
    assert m.decode_request(request(ours))[1] == ours


# --- strict decoding common to every body ------------------------------------------------------------

ALL_REQUESTS = [
    NegotiateRequest((0x0202, 0x0311), negotiate_contexts=OUR_CONTEXTS),
    m.SessionSetupRequest(b"token"),
    m.LogoffRequest(),
    m.TreeConnectRequest("\\\\srv\\IPC$"),
    m.TreeDisconnectRequest(),
    m.CreateRequest("srvsvc", create_contexts=(m.CreateContext(b"MxAc"),)),
    m.CloseRequest(FID),
    m.FlushRequest(FID),
    m.ReadRequest(FID, 1024),
    m.WriteRequest(FID, b"data"),
    m.IoctlRequest(FsctlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"pdu", max_output_response=4280),
    m.CancelRequest(),
    m.EchoRequest(),
    m.QueryInfoRequest(1, 5, FID, 24),
]
ALL_RESPONSES = [
    NegotiateResponse(0x0311, negotiate_contexts=OUR_CONTEXTS[:1]),
    m.SessionSetupResponse(b"token"),
    m.LogoffResponse(),
    m.TreeConnectResponse(ShareType.PIPE),
    m.TreeDisconnectResponse(),
    m.CreateResponse(FID),
    m.CloseResponse(),
    m.FlushResponse(),
    m.ReadResponse(b"data"),
    m.WriteResponse(4),
    m.IoctlResponse(FsctlCode.FSCTL_PIPE_TRANSCEIVE, FID, b"pdu"),
    m.EchoResponse(),
    m.QueryInfoResponse(b"info"),
]


@pytest.mark.parametrize("body", ALL_REQUESTS, ids=lambda b: type(b).__name__)
def test_every_request_round_trips_through_decode_request(body: Any) -> None:
    header, decoded = m.decode_request(request(body))
    assert decoded == body and header.command == body.COMMAND


@pytest.mark.parametrize("body", ALL_RESPONSES, ids=lambda b: type(b).__name__)
def test_every_response_round_trips_through_decode_response(body: Any) -> None:
    assert m.decode_response(response(body))[1] == body


@pytest.mark.parametrize("body", ALL_REQUESTS + ALL_RESPONSES, ids=lambda b: type(b).__name__)
def test_wrong_structure_size_is_decode_error(body: Any) -> None:
    raw = patch(request(body), 64, "<H", body.STRUCTURE_SIZE + 2)
    with pytest.raises(Smb2DecodeError, match="StructureSize"):
        type(body).decode(raw)


@pytest.mark.parametrize("body", ALL_REQUESTS + ALL_RESPONSES, ids=lambda b: type(b).__name__)
def test_truncated_fixed_part_is_decode_error(body: Any) -> None:
    raw = request(body)[: 64 + (body.STRUCTURE_SIZE & ~1) - 1]
    with pytest.raises(Smb2DecodeError):
        type(body).decode(raw)


# (body, offset of its Offset field, format, offset of its Length field, format)
VARIABLE_FIELDS = [
    (m.SessionSetupRequest(b"token"), 64 + 12, "<H", 64 + 14, "<H"),
    (m.SessionSetupResponse(b"token"), 64 + 4, "<H", 64 + 6, "<H"),
    (m.TreeConnectRequest("\\\\s\\IPC$"), 64 + 4, "<H", 64 + 6, "<H"),
    (m.CreateRequest("srvsvc"), 64 + 44, "<H", 64 + 46, "<H"),
    (m.WriteRequest(FID, b"data"), 64 + 2, "<H", 64 + 4, "<I"),
    (m.ReadResponse(b"data"), 64 + 2, "<B", 64 + 4, "<I"),
    (m.IoctlRequest(0x0011C017, FID, b"pdu"), 64 + 24, "<I", 64 + 28, "<I"),
    (m.IoctlResponse(0x0011C017, FID, b"pdu"), 64 + 32, "<I", 64 + 36, "<I"),
    (m.QueryInfoRequest(4, 0, FID, 8, b"in"), 64 + 8, "<H", 64 + 12, "<I"),
    (m.QueryInfoResponse(b"info"), 64 + 2, "<H", 64 + 4, "<I"),
    (NegotiateResponse(0x0202, security_buffer=b"gss"), 64 + 56, "<H", 64 + 58, "<H"),
]
VAR_IDS = [type(v[0]).__name__ for v in VARIABLE_FIELDS]


@pytest.mark.parametrize(("body", "off_at", "off_fmt", "len_at", "len_fmt"), VARIABLE_FIELDS, ids=VAR_IDS)
def test_length_past_the_end_is_decode_error(
    body: Any, off_at: int, off_fmt: str, len_at: int, len_fmt: str
) -> None:
    raw = request(body)
    with pytest.raises(Smb2DecodeError):
        type(body).decode(patch(raw, len_at, len_fmt, len(raw)))


@pytest.mark.parametrize(("body", "off_at", "off_fmt", "len_at", "len_fmt"), VARIABLE_FIELDS, ids=VAR_IDS)
def test_offset_into_the_fixed_part_is_decode_error(
    body: Any, off_at: int, off_fmt: str, len_at: int, len_fmt: str
) -> None:
    with pytest.raises(Smb2DecodeError, match="fixed part"):
        type(body).decode(patch(request(body), off_at, off_fmt, 64))


@pytest.mark.parametrize(("body", "off_at", "off_fmt", "len_at", "len_fmt"), VARIABLE_FIELDS, ids=VAR_IDS)
def test_zero_length_field_ignores_its_offset(
    body: Any, off_at: int, off_fmt: str, len_at: int, len_fmt: str
) -> None:
    raw = patch(patch(request(body), len_at, len_fmt, 0), off_at, off_fmt, 0)
    type(body).decode(raw)  # no error: an empty field's offset is not looked at


def test_error_byte_count_past_the_end_is_decode_error() -> None:
    raw = patch(response(m.ErrorResponse(b"12345678"), Command.CREATE, 0xC0000022), 68, "<I", 9)
    with pytest.raises(Smb2DecodeError):
        m.decode_response(raw)


@pytest.mark.parametrize("name", [b"s\x00r\x00v", b"\x00\xd8s\x00"], ids=["odd-length", "lone-surrogate"])
def test_bad_utf16_name_is_decode_error(name: bytes) -> None:
    raw = bytearray(request(m.CreateRequest("xxxx")))
    raw[120 : 120 + len(name)] = name
    struct.pack_into("<H", raw, 64 + 46, len(name))
    with pytest.raises(Smb2DecodeError, match="UTF-16"):
        m.decode_request(bytes(raw))


# --- dispatch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [Command.LOCK, Command.QUERY_DIRECTORY, Command.SET_INFO, 0x0099])
def test_unimplemented_commands_are_kept_raw(command: int) -> None:
    raw = Smb2Header(command=command).encode() + b"\x30\x00body"
    header, body = m.decode_request(raw)
    assert body == m.RawBody(command, b"\x30\x00body") and m.encode_message(header, body) == raw


def test_decode_request_rejects_a_response() -> None:
    with pytest.raises(Smb2DecodeError, match="SERVER_TO_REDIR"):
        m.decode_request(response(m.EchoResponse()))


def test_decode_response_rejects_a_request() -> None:
    with pytest.raises(Smb2DecodeError, match="SERVER_TO_REDIR"):
        m.decode_response(request(m.EchoRequest()))


@pytest.mark.parametrize(
    ("command", "status", "body", "expected"),
    [
        (Command.CREATE, NtStatus.STATUS_ACCESS_DENIED, m.ErrorResponse(), m.ErrorResponse),
        (
            Command.SESSION_SETUP,
            NtStatus.STATUS_MORE_PROCESSING_REQUIRED,
            m.SessionSetupResponse(b"t"),
            m.SessionSetupResponse,
        ),
        (Command.SESSION_SETUP, NtStatus.STATUS_LOGON_FAILURE, m.ErrorResponse(), m.ErrorResponse),
        (Command.IOCTL, NtStatus.STATUS_PENDING, m.ErrorResponse(), m.ErrorResponse),
        (Command.QUERY_INFO, NtStatus.STATUS_PENDING, m.ErrorResponse(), m.ErrorResponse),
        (
            Command.QUERY_INFO,
            NtStatus.STATUS_BUFFER_OVERFLOW,
            m.QueryInfoResponse(b"part"),
            m.QueryInfoResponse,
        ),
        (Command.QUERY_INFO, NtStatus.STATUS_INVALID_INFO_CLASS, m.ErrorResponse(), m.ErrorResponse),
        (Command.QUERY_DIRECTORY, NtStatus.STATUS_SUCCESS, m.QueryInfoResponse(b"entries"), m.RawBody),
        (Command.QUERY_DIRECTORY, 0x80000006, m.ErrorResponse(), m.ErrorResponse),  # STATUS_NO_MORE_FILES
        (Command.CHANGE_NOTIFY, NtStatus.STATUS_PENDING, m.ErrorResponse(), m.ErrorResponse),
        (Command.LOCK, NtStatus.STATUS_SUCCESS, m.LogoffResponse(), m.RawBody),
        (Command.READ, NtStatus.STATUS_BUFFER_OVERFLOW, m.ReadResponse(b"part"), m.ReadResponse),
        (
            Command.IOCTL,
            NtStatus.STATUS_BUFFER_OVERFLOW,
            m.IoctlResponse(0x0011C017, FID, b"p"),
            m.IoctlResponse,
        ),
    ],
    ids=[
        "error",
        "more-processing",
        "logon-failure",
        "pending",
        "pending-9",
        "overflow-qi",
        "qi-error",
        "query-directory",
        "no-more-files",
        "notify-pending",
        "lock",
        "overflow-read",
        "overflow-ioctl",
    ],
)
def test_decode_response_tells_error_bodies_from_command_bodies(
    command: int, status: int, body: Any, expected: type
) -> None:
    header = Smb2Header(command, status, flags=HeaderFlags.SERVER_TO_REDIR)
    assert isinstance(m.decode_response(header.encode() + body.encode())[1], expected)


def test_encode_message_rejects_mismatched_command() -> None:
    with pytest.raises(ValueError, match="does not match"):
        m.encode_message(Smb2Header(Command.READ), m.EchoRequest())


# --- compound chains --------------------------------------------------------------------------------


def chain_messages() -> list[bytes]:
    return [
        request(m.CreateRequest("srvsvc")),
        m.encode_message(
            Smb2Header(Command.WRITE, flags=HeaderFlags.RELATED_OPERATIONS),
            m.WriteRequest(m.FILE_ID_ANY, b"bind"),
        ),
        m.encode_message(
            Smb2Header(Command.READ, flags=HeaderFlags.RELATED_OPERATIONS), m.ReadRequest(m.FILE_ID_ANY, 4280)
        ),
    ]


def test_split_compound_of_a_single_message() -> None:
    raw = request(m.EchoRequest())
    assert split_compound(raw) == [raw]


def test_build_then_split_compound_round_trip() -> None:
    msgs = chain_messages()
    chain = build_compound(msgs)
    parts = split_compound(chain)
    assert len(parts) == 3 and b"".join(parts) == chain
    for part, original in zip(parts, msgs, strict=True):
        header = Smb2Header.decode(part)
        assert part[: len(original)][64:] == original[64:]
        assert header.next_command == (len(part) if part is not parts[-1] else 0)
        assert header.next_command % 8 == 0
    assert [type(m.decode_request(p)[1]) for p in parts] == [m.CreateRequest, m.WriteRequest, m.ReadRequest]


def test_build_compound_signs_each_element_after_padding() -> None:
    seen: list[tuple[int, int]] = []

    def signer(part: bytearray) -> None:
        seen.append((len(part), struct.unpack_from("<I", part, 20)[0]))

    msgs = chain_messages()
    build_compound(msgs, signer=signer)
    assert [n for n, _ in seen[:-1]] == [nxt for _, nxt in seen[:-1]] and seen[-1][1] == 0
    assert all(n % 8 == 0 for n, _ in seen[:-1])


@pytest.mark.parametrize(
    "next_command", [12, 60, 132, 4096], ids=["unaligned", "short", "unaligned-2", "past-end"]
)
def test_bad_next_command_is_decode_error(next_command: int) -> None:
    chain = bytearray(build_compound(chain_messages()))
    struct.pack_into("<I", chain, 20, next_command)
    with pytest.raises(Smb2DecodeError):
        split_compound(bytes(chain))


def test_compound_element_that_is_not_smb2_is_decode_error() -> None:
    chain = bytearray(build_compound(chain_messages()))
    nxt = struct.unpack_from("<I", chain, 20)[0]
    chain[nxt] = 0xFD
    with pytest.raises(Smb2DecodeError, match="ProtocolId"):
        split_compound(bytes(chain))


# --- Direct TCP framing -----------------------------------------------------------------------------


def test_frames_reassemble_from_arbitrary_pieces() -> None:
    msgs = [request(m.EchoRequest()), request(m.WriteRequest(FID, b"x" * 300))]
    stream = b"".join(frame(x) for x in msgs)
    assert frame(msgs[0])[:4] == b"\x00\x00\x00\x44"
    deframer = DirectTcpDeframer()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += deframer.receive_data(stream[i : i + 7])
    assert got == msgs and deframer.buffered == 0


def test_deframer_rejects_nonzero_first_byte_and_oversize() -> None:
    with pytest.raises(Smb2DecodeError):
        DirectTcpDeframer().receive_data(b"\x01\x00\x00\x40")
    with pytest.raises(Smb2DecodeError, match="exceeds"):
        DirectTcpDeframer(max_message_size=1024).receive_data(b"\x00\x00\x04\x01")


# --- IOCTL / QUERY_INFO payloads, TRANSFORM_HEADER -------------------------------------------------


def test_validate_negotiate_info_matches_smbprotocol() -> None:
    sp = sp_ioctl.SMB2ValidateNegotiateInfoRequest()
    sp["capabilities"] = 0x7F
    sp["guid"] = GUID
    sp["security_mode"] = 1
    sp["dialects"] = [0x0300, 0x0302]
    ours = ValidateNegotiateInfoRequest(0x7F, GUID.bytes, 1, (0x0300, 0x0302))
    assert ValidateNegotiateInfoRequest.decode(bytes(sp.pack())) == ours and ours.encode() == bytes(sp.pack())
    resp = ValidateNegotiateInfoResponse(0x47, GUID.bytes_le, 3, 0x0302)
    sp_resp = sp_ioctl.SMB2ValidateNegotiateInfoResponse()
    sp_resp.unpack(resp.encode())
    assert (field(sp_resp, "guid").bytes, field(sp_resp, "dialect"), field(sp_resp, "capabilities")) == (
        GUID.bytes_le,
        0x302,
        0x47,
    )
    with pytest.raises(Smb2DecodeError):
        ValidateNegotiateInfoRequest.decode(ours.encode()[:-1])


def test_pipe_wait_request_layout() -> None:
    # MS-FSCC 2.3.49: Timeout (8), NameLength (4), TimeoutSpecified (1), Padding (1), Name
    raw = struct.pack("<qIBB", -50_000_000, 12, 1, 0) + "srvsvc".encode("utf-16-le")
    assert PipeWaitRequest.decode(raw) == PipeWaitRequest("srvsvc", -50_000_000, True)
    assert PipeWaitRequest("srvsvc", -50_000_000, True).encode() == raw
    with pytest.raises(Smb2DecodeError):
        PipeWaitRequest.decode(raw[:-1])


def test_file_standard_information_matches_smbprotocol() -> None:
    sp = sp_info.FileStandardInformation()
    sp["allocation_size"] = 4096
    sp["end_of_file"] = 0
    sp["number_of_links"] = 1
    sp["delete_pending"] = True
    sp["directory"] = False
    assert FileStandardInformation.decode(bytes(sp.pack())) == FileStandardInformation(
        4096, 0, 1, True, False
    )
    assert FileStandardInformation(4096, 0, 1, True, False).encode() == bytes(sp.pack())


def test_filetime_from_unix() -> None:
    assert filetime_from_unix(0) == 116444736000000000
    assert filetime_from_unix(1) - filetime_from_unix(0) == 10_000_000


def test_transform_header_matches_smbprotocol() -> None:
    ours = TransformHeader(b"S" * 16, b"N" * 11 + bytes(5), 200, 0x8E40014000011)
    sp = sp_conn.SMB2TransformHeader()
    sp.unpack(ours.encode())
    assert (field(sp, "signature"), field(sp, "nonce"), field(sp, "original_message_size")) == (
        ours.signature,
        ours.nonce,
        200,
    )
    assert (field(sp, "flags"), field(sp, "session_id")) == (1, 0x8E40014000011)
    assert TransformHeader.decode(ours.encode()) == ours
    assert ours.associated_data() == ours.encode()[20:]
    with pytest.raises(Smb2DecodeError):
        TransformHeader.decode(b"\xfeSMB" + bytes(60))
