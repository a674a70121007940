"""Fuzzing the SMB2 codecs: whatever arrives, only Smb2DecodeError escapes a decoder, decoding never
allocates more than the input justifies, and valid messages round-trip."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netsession.wire.smb2 import crypto
from netsession.wire.smb2 import messages as m
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.compound import build_compound, split_compound
from netsession.wire.smb2.constants import Cipher, Command, HeaderFlags, NtStatus, TreeConnectFlags
from netsession.wire.smb2.header import Smb2Header, TransformHeader
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
)
from netsession.wire.smb2.transport import DirectTcpDeframer

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FID = m.FileId(6, 1)
CONTEXTS = (
    PreauthIntegrityCapabilities((1,), b"s" * 32),
    EncryptionCapabilities((2, 1)),
    NetnameNegotiateContextId("srv"),
    SigningCapabilities((2, 1, 0)),
    RawNegotiateContext(3, struct.pack("<HHIH", 1, 0, 0, 2)),
)
REQUESTS: list[Any] = [
    NegotiateRequest((0x0202, 0x0210, 0x0300, 0x0302, 0x0311), 1, 0x7F, negotiate_contexts=CONTEXTS),
    m.SessionSetupRequest(b"\x60\x48token", security_mode=1),
    m.LogoffRequest(),
    m.TreeConnectRequest(
        "\\\\srv\\IPC$", TreeConnectFlags.EXTENSION_PRESENT, (m.TreeConnectContext(1, b"id"),)
    ),
    m.TreeDisconnectRequest(),
    m.CreateRequest(
        "srvsvc", 0x12019F, create_contexts=(m.CreateContext(b"MxAc"), m.CreateContext(b"DH2Q", b"d" * 32))
    ),
    m.CloseRequest(FID, 1),
    m.FlushRequest(FID),
    m.ReadRequest(FID, 4280, read_channel_info=b"rdma"),
    m.WriteRequest(FID, b"\x05\x00\x0b\x03bind", write_channel_info=b"info"),
    m.IoctlRequest(0x0011C017, FID, b"\x05\x00\x00\x03pdu", max_output_response=4280),
    m.CancelRequest(),
    m.EchoRequest(),
    m.QueryInfoRequest(1, 5, FID, 24, b"input"),
]
RESPONSES: list[Any] = [
    NegotiateResponse(0x0311, 1, security_buffer=b"\x60\x28gss", negotiate_contexts=CONTEXTS[:2]),
    m.SessionSetupResponse(b"\xa1token", 1),
    m.LogoffResponse(),
    m.TreeConnectResponse(2, 0x30, 0, 0x1F01FF),
    m.TreeDisconnectResponse(),
    m.CreateResponse(FID, create_contexts=(m.CreateContext(b"MxAc", b"\x00" * 8),)),
    m.CloseResponse(1, 1, 2, 3, 4, 5, 6, 7),
    m.FlushResponse(),
    m.ReadResponse(b"\x05\x00\x02\x03data"),
    m.WriteResponse(20),
    m.IoctlResponse(0x0011C017, FID, b"out", b"in"),
    m.EchoResponse(),
    m.QueryInfoResponse(FileStandardInformation(4096, 0, 1, True).encode()),
]


def request(body: Any) -> bytes:
    return m.encode_message(Smb2Header(command=body.COMMAND, message_id=3, session_id=5, tree_id=1), body)


def response(body: Any, status: int = NtStatus.STATUS_SUCCESS) -> bytes:
    return m.encode_message(
        Smb2Header(body.COMMAND, status, flags=HeaderFlags.SERVER_TO_REDIR, credits=1), body
    )


ERROR_SEED = m.encode_message(
    Smb2Header(Command.CREATE, NtStatus.STATUS_ACCESS_DENIED, flags=HeaderFlags.SERVER_TO_REDIR),
    m.ErrorResponse(b"\x08\x00\x00\x00\x00\x00\x00\x00errdata!", 1),
)
SEEDS = [
    *(request(b) for b in REQUESTS),
    *(response(b) for b in RESPONSES),
    ERROR_SEED,
    build_compound([request(REQUESTS[5]), request(REQUESTS[9]), request(REQUESTS[8])]),
]
SMB1_SEED = Smb1NegotiateRequest(("NT LM 0.12", "SMB 2.002", "SMB 2.???")).encode()
KEY = b"k" * 16
SEALED_SEED = crypto.encrypt_message(SEEDS[0], KEY, cipher=Cipher.AES_128_GCM, session_id=9, nonce=b"n" * 12)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes overwritten, 16/32-bit fields set to extremes, and maybe truncated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            data[at] = draw(st.integers(0, 255))
        else:
            width = 2 if kind == 1 else 4
            value = draw(st.sampled_from([0, 1, 7, 8, 63, 64, 65, 0x7FFF, 0xFFFF, 0xFFFFFFFF]))
            if at + width <= len(data):
                struct.pack_into(
                    "<H" if width == 2 else "<I", data, at, value & (0xFFFF if width == 2 else 0xFFFFFFFF)
                )
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


def only_decode_errors(decode: Callable[[bytes], object], data: bytes) -> None:
    try:
        decode(data)
    except Smb2DecodeError:
        pass


BODY_DECODERS: list[Callable[[bytes], object]] = [type(b).decode for b in REQUESTS + RESPONSES] + [
    m.ErrorResponse.decode
]
MESSAGE_DECODERS: list[Callable[[bytes], object]] = [
    Smb2Header.decode,
    m.decode_request,
    m.decode_response,
    split_compound,
    lambda d: m.decode_request(d, dialect=0x0311),
    lambda d: m.decode_request(d, dialect=0x0302),
]
PAYLOAD_DECODERS: list[Callable[[bytes], object]] = [
    ValidateNegotiateInfoRequest.decode,
    ValidateNegotiateInfoResponse.decode,
    PipeWaitRequest.decode,
    FileStandardInformation.decode,
    TransformHeader.decode,
    Smb1NegotiateRequest.decode,
]


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    for decode in MESSAGE_DECODERS + BODY_DECODERS + PAYLOAD_DECODERS:
        only_decode_errors(decode, data)


@FUZZ
@given(command=st.integers(0, 0x14), flags=st.sampled_from([0, 1, 2, 3]), body=st.binary(max_size=300))
def test_valid_header_with_random_body_raises_only_decode_errors(
    command: int, flags: int, body: bytes
) -> None:
    data = Smb2Header(command, flags=flags).encode() + body
    for decode in MESSAGE_DECODERS + BODY_DECODERS:
        only_decode_errors(decode, data)


@FUZZ
@given(data=mutated(SEEDS))
def test_mutated_messages_raise_only_decode_errors(data: bytes) -> None:
    for decode in MESSAGE_DECODERS + BODY_DECODERS:
        only_decode_errors(decode, data)


@FUZZ
@given(
    data=mutated(
        [SMB1_SEED, SEALED_SEED, ValidateNegotiateInfoRequest(0, b"g" * 16, 1, (0x300, 0x302)).encode()]
    )
)
def test_mutated_payloads_raise_only_decode_errors(data: bytes) -> None:
    for decode in PAYLOAD_DECODERS:
        only_decode_errors(decode, data)
    only_decode_errors(lambda d: crypto.decrypt_message(d, KEY, cipher=Cipher.AES_128_GCM), data)


@FUZZ
@given(chunks=st.lists(st.binary(max_size=40), max_size=8), limit=st.integers(0, 100))
def test_deframer_raises_only_decode_errors(chunks: list[bytes], limit: int) -> None:
    deframer = DirectTcpDeframer(max_message_size=limit)
    try:
        for chunk in chunks:
            for message in deframer.receive_data(chunk):
                assert len(message) <= limit
    except Smb2DecodeError:
        pass


# --- no allocation beyond what the input justifies --------------------------------------------------


def inflate(body: Any, at: int, fmt: str) -> bytes:
    """A small request whose field at ``at`` claims the most it can (0xFFFF / 0xFFFFFFFF)."""
    raw = bytearray(request(body))
    struct.pack_into(fmt, raw, at, 0xFFFF if fmt == "<H" else 0xFFFFFFFF)
    return bytes(raw)


HUGE_CLAIMS = [
    inflate(REQUESTS[0], 64 + 2, "<H"),  # DialectCount
    inflate(REQUESTS[0], 64 + 32, "<H"),  # NegotiateContextCount
    inflate(REQUESTS[1], 64 + 14, "<H"),  # SecurityBufferLength
    inflate(REQUESTS[5], 64 + 52, "<I"),  # CreateContextsLength
    inflate(REQUESTS[9], 64 + 4, "<I"),  # WRITE Length
    inflate(REQUESTS[10], 64 + 28, "<I"),  # IOCTL InputCount
    inflate(REQUESTS[3], 72 + 4, "<H"),  # TreeConnectContextCount
]
HUGE_ERROR = bytearray(ERROR_SEED)
struct.pack_into("<I", HUGE_ERROR, 68, 0xFFFFFFFF)  # ERROR ByteCount


@pytest.mark.parametrize(
    "decode",
    [
        *(lambda d=d: m.decode_request(d, dialect=0x0311) for d in HUGE_CLAIMS),
        lambda: m.decode_response(HUGE_ERROR),
    ],
    ids=["dialects", "contexts", "token", "create-contexts", "write", "ioctl", "tree-contexts", "error"],
)
def test_huge_counts_in_small_messages_allocate_nothing_big(decode: Callable[[], object]) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(Smb2DecodeError):
            decode()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# --- valid messages round-trip -----------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
file_ids = st.builds(m.FileId, u64, u64)
blobs = st.binary(max_size=200)
negotiate_contexts = st.lists(
    st.one_of(
        st.builds(PreauthIntegrityCapabilities, st.lists(u16, max_size=4).map(tuple), st.binary(max_size=64)),
        st.builds(EncryptionCapabilities, st.lists(u16, max_size=5).map(tuple)),
        st.builds(SigningCapabilities, st.lists(u16, max_size=4).map(tuple)),
        st.builds(NetnameNegotiateContextId, names),
        st.builds(RawNegotiateContext, st.sampled_from([3, 6, 7, 0x100, 0x4242]), st.binary(max_size=30)),
    ),
    max_size=6,
).map(tuple)
create_contexts = st.lists(
    st.builds(m.CreateContext, st.binary(min_size=1, max_size=16), st.binary(max_size=40)), max_size=4
).map(tuple)

dialect_lists = st.lists(st.sampled_from([0x0202, 0x0210, 0x0300, 0x0302, 0x0311]), min_size=1, max_size=6)
tree_contexts = st.lists(st.builds(m.TreeConnectContext, u16, st.binary(max_size=30)), max_size=3).map(tuple)
bytes8 = st.integers(0, 255)

VALID_REQUESTS = st.one_of(
    st.builds(
        NegotiateRequest, dialect_lists.map(tuple), u16, u32, negotiate_contexts=negotiate_contexts
    ).filter(
        lambda r: 0x0311 in r.dialects or not r.negotiate_contexts  # contexts exist only with 3.1.1 offered
    ),
    st.builds(m.SessionSetupRequest, blobs, bytes8, bytes8, u32, u32, u64),
    st.builds(m.TreeConnectRequest, names, st.just(0)),
    st.builds(m.TreeConnectRequest, names, st.just(TreeConnectFlags.EXTENSION_PRESENT), tree_contexts),
    st.builds(m.CreateRequest, names, u32, u32, u32, u32, u32, create_contexts=create_contexts),
    st.builds(m.ReadRequest, file_ids, u32, u64, read_channel_info=blobs),
    st.builds(m.WriteRequest, file_ids, blobs, u64, write_channel_info=blobs),
    st.builds(m.IoctlRequest, u32, file_ids, blobs, u32, u32, u32, blobs),
    st.builds(m.QueryInfoRequest, bytes8, bytes8, file_ids, u32, blobs, u32, u32),
)
VALID_RESPONSES = st.one_of(
    st.builds(
        NegotiateResponse, st.just(0x0311), u16, security_buffer=blobs, negotiate_contexts=negotiate_contexts
    ),
    st.builds(m.SessionSetupResponse, blobs, u16),
    st.builds(m.CreateResponse, file_ids, u32, create_contexts=create_contexts),
    st.builds(m.ReadResponse, blobs, u32, u32),
    st.builds(m.IoctlResponse, u32, file_ids, blobs, blobs, u32),
    st.builds(m.QueryInfoResponse, blobs),
)


@FUZZ
@given(body=VALID_REQUESTS, message_id=u64, session_id=u64)
def test_valid_requests_round_trip(body: Any, message_id: int, session_id: int) -> None:
    header = Smb2Header(body.COMMAND, message_id=message_id, session_id=session_id)
    raw = m.encode_message(header, body)
    assert m.decode_request(raw) == (header, body)
    assert m.encode_message(header, m.decode_request(raw)[1]) == raw


WARNING_BODIES = (m.ReadResponse, m.IoctlResponse, m.QueryInfoResponse)  # partial data with BUFFER_OVERFLOW


@FUZZ
@given(body=VALID_RESPONSES, overflow=st.booleans(), message_id=u64)
def test_valid_responses_round_trip(body: Any, overflow: bool, message_id: int) -> None:
    status = NtStatus.STATUS_BUFFER_OVERFLOW if overflow and isinstance(body, WARNING_BODIES) else 0
    header = Smb2Header(body.COMMAND, status, flags=HeaderFlags.SERVER_TO_REDIR, message_id=message_id)
    raw = m.encode_message(header, body)
    assert m.decode_response(raw) == (header, body)


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(VALID_REQUESTS, min_size=1, max_size=4))
def test_compound_chains_round_trip(bodies: list[Any]) -> None:
    parts = split_compound(build_compound([request(b) for b in bodies]))
    assert [m.decode_request(p)[1] for p in parts] == bodies
