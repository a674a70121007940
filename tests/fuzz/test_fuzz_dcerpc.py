"""Fuzzing the DCE/RPC layer: whatever the peer sends, only DceRpcError subclasses escape, and a
valid fragmented stream cut at arbitrary points gives the same events as the whole stream."""

from __future__ import annotations

import itertools
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netsession.wire.dcerpc import (
    NDR20,
    NDR64,
    Bind,
    BindAck,
    ClientAssociation,
    ContextElement,
    ContextResult,
    DceRpcError,
    DecodeError,
    Interface,
    Request,
    RequestReceived,
    Response,
    ServerAssociation,
    SyntaxId,
    bind_time_feature_syntax,
    decode_pdu,
    encode_request_fragments,
    encode_response_fragments,
)

SRVSVC = SyntaxId.parse("4b324fc8-1670-01d3-1278-5a47bf6ee188", 3, 0)
LSARPC = SyntaxId.parse("12345778-1234-abcd-ef00-0123456789ab", 0, 0)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def new_server() -> ServerAssociation:
    return ServerAssociation(
        [Interface(SRVSVC, range(54)), Interface(LSARPC, range(10))],
        max_recv_frag=5840,
        max_request_stub=64 << 10,
        assoc_group_id=1,
    )


def bound_server() -> ServerAssociation:
    server = new_server()
    server.receive_data(Bind(1, (ContextElement(0, SRVSVC, (NDR20,)),)).encode())
    server.data_to_send()
    return server


def bound_client() -> tuple[ClientAssociation, int]:
    client = ClientAssociation()
    client.bind(SRVSVC)
    client.data_to_send()
    client.receive_data(BindAck(1, (ContextResult(0, 0, NDR20),), 4280, 4280, 1).encode())
    return client, client.request(12, b"")


def feed(assoc: ServerAssociation | ClientAssociation, chunks: list[bytes]) -> None:
    """Feed chunks; only DceRpcError may escape, and once closed the association stays closed."""
    try:
        for chunk in chunks:
            assoc.receive_data(chunk)
            assoc.data_to_send()
    except DceRpcError:
        assoc.data_to_send()
        try:
            assoc.receive_data(b"\x05")
        except DceRpcError:
            return
        raise AssertionError("a closed association accepted more data") from None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# A header that frames correctly (version 5.0, little-endian, frag_length = real length) over a
# random body, so the fuzzing reaches past the common header.
@st.composite
def pdu_like(draw: st.DrawFn) -> bytes:
    ptype = draw(st.integers(0, 21))
    flags = draw(st.integers(0, 255))
    body = draw(st.binary(max_size=300))
    auth_length = draw(st.one_of(st.just(0), st.integers(0, len(body) + 8)))
    call_id = draw(st.integers(0, 5))
    header = struct.pack(
        "<BBBB4sHHI", 5, 0, ptype, flags, b"\x10\0\0\0", 16 + len(body), auth_length, call_id
    )
    return header + body


garbage = st.lists(st.one_of(st.binary(max_size=200), pdu_like()), max_size=6)


@FUZZ
@given(garbage)
def test_fuzz_fresh_server_only_raises_dcerpc_errors(chunks: list[bytes]) -> None:
    feed(new_server(), chunks)


@FUZZ
@given(garbage)
def test_fuzz_bound_server_only_raises_dcerpc_errors(chunks: list[bytes]) -> None:
    feed(bound_server(), chunks)


@FUZZ
@given(garbage)
def test_fuzz_client_awaiting_bind_ack_only_raises_dcerpc_errors(chunks: list[bytes]) -> None:
    client = ClientAssociation()
    client.bind(SRVSVC, (NDR20, NDR64), bind_time_features=3)
    feed(client, chunks)


@FUZZ
@given(garbage)
def test_fuzz_client_awaiting_response_only_raises_dcerpc_errors(chunks: list[bytes]) -> None:
    client, _ = bound_client()
    feed(client, chunks)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_decode_pdu_only_raises_decode_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except DecodeError:
        pass


@FUZZ
@given(pdu_like())
def test_fuzz_framed_pdus_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except DecodeError:
        pass


def valid_server_segments(stub_sizes: list[int], max_frag: int) -> list[bytes]:
    """A bind, then one request per stub size (each possibly fragmented), as separate segments:
    without PFC_CONC_MPX a client sends call N+1 only after the response to call N."""
    contexts = (
        ContextElement(0, SRVSVC, (NDR64,)),
        ContextElement(1, SRVSVC, (NDR20,)),
        ContextElement(2, SRVSVC, (bind_time_feature_syntax(2),)),
    )
    segments = [Bind(1, contexts, max_frag, max_frag).encode()]
    negotiated = max_frag - max_frag % 8  # the server offers 5840, more than any max_frag here
    for i, size in enumerate(stub_sizes):
        stub = bytes((i + j) % 251 for j in range(size))
        segments.append(b"".join(encode_request_fragments(2 + i, 1, i % 54, stub, negotiated)))
    return segments


def run_segments(segments: list[list[bytes]]) -> list[object]:
    """Feed each segment's chunks, answering every request before the next segment."""
    server = new_server()
    events: list[object] = []
    for chunks in segments:
        for chunk in chunks:
            for event in server.receive_data(chunk):
                events.append(event)
                if isinstance(event, RequestReceived):
                    server.respond(event.call_id, b"")
    return events


@FUZZ
@given(
    st.lists(st.integers(0, 12_000), min_size=1, max_size=3),
    st.integers(1432, 5840),
    st.lists(st.integers(0, 1 << 20), max_size=30),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
)
def test_fuzz_mutated_valid_stream_into_server_only_raises_dcerpc_errors(
    sizes: list[int], max_frag: int, cuts: list[int], mutations: list[tuple[int, int]]
) -> None:
    data = bytearray(b"".join(valid_server_segments(sizes, max_frag)))
    for position, value in mutations:
        data[position % len(data)] = value
    feed(new_server(), split(bytes(data), cuts))


@FUZZ
@given(
    st.lists(st.integers(0, 12_000), min_size=1, max_size=3),
    st.integers(1432, 5840),
    st.lists(st.integers(0, 1 << 20), max_size=30),
)
def test_fuzz_valid_request_stream_split_anywhere_gives_the_same_events(
    sizes: list[int], max_frag: int, cuts: list[int]
) -> None:
    segments = valid_server_segments(sizes, max_frag)
    whole = run_segments([[segment] for segment in segments])
    assert len(whole) == 1 + len(sizes)
    assert run_segments([split(segment, cuts) for segment in segments]) == whole


@FUZZ
@given(
    st.integers(0, 40_000),
    st.integers(1432, 4280),
    st.lists(st.integers(0, 1 << 20), max_size=40),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4),
)
def test_fuzz_response_stream_split_anywhere_into_client(
    size: int, max_frag: int, cuts: list[int], mutations: list[tuple[int, int]]
) -> None:
    stub = bytes(j % 253 for j in range(size))
    data = b"".join(encode_response_fragments(2, 0, stub, max_frag))
    client, call_id = bound_client()
    events = [e for chunk in split(data, cuts) for e in client.receive_data(chunk)]
    assert [(e.call_id, e.stub) for e in events] == [(call_id, stub)]  # type: ignore[union-attr]
    mutated = bytearray(data)
    for position, value in mutations:
        mutated[position % len(mutated)] = value
    feed(bound_client()[0], split(bytes(mutated), cuts))


@FUZZ
@given(
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=500),
    st.integers(0, 0xFFFFFFFF),
)
def test_fuzz_request_and_response_roundtrip(
    call_id: int, context_id: int, opnum: int, stub: bytes, alloc_hint: int
) -> None:
    request = Request(call_id, context_id, opnum, stub, alloc_hint)
    assert decode_pdu(request.encode()) == request
    response = Response(call_id, context_id, stub, alloc_hint)
    assert decode_pdu(response.encode()) == response
