"""Fuzzing the NDR and srvsvc decoders: on arbitrary bytes and on mutated valid encodings only NdrError may
escape (never IndexError, struct.error, UnicodeDecodeError, MemoryError...); every proper prefix of a valid
stub is refused; and decode∘encode / encode∘decode are identities on generated messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netsession.records import SESSION_LEVELS
from netsession.wire.ndr import NdrError, NdrReader, decode_wstring, decode_wstrings, encode_wstrings
from netsession.wire.srvsvc import (
    CONNECTION_ARRAYS,
    FILE_ARRAYS,
    SERVER_INFOS,
    SESSION_ARRAYS,
    SHARE_ARRAYS,
    TIME_OF_DAY_INFO,
    TRANSPORT_ARRAYS,
    InfoArray,
    NetrCharDevEnumRequest,
    NetrCharDevEnumResponse,
    NetrCharDevQEnumRequest,
    NetrCharDevQEnumResponse,
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
    NetrRemoteTODRequest,
    NetrRemoteTODResponse,
    NetrServerDiskEnumRequest,
    NetrServerDiskEnumResponse,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrServerTransportEnumRequest,
    NetrServerTransportEnumResponse,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareCheckRequest,
    NetrShareCheckResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------------------------------

# Any code point, with the awkward ones made common: lone and pairable surrogates, astral, NUL, non-ASCII.
SPECIAL = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00", "\U0001f600", "\u00e9", "\u4e2d", "\0"]
CHAR = st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL))
TEXT = st.text(CHAR, max_size=12)
OPT_TEXT = st.none() | TEXT
DWORD = st.integers(0, 2**32 - 1)
OPT_DWORD = st.none() | DWORD


def records(layout: InfoArray) -> st.SearchStrategy[Any]:
    parts = [OPT_TEXT if is_string else DWORD for is_string in layout.is_string]
    for i in layout.byte_fields:  # bytes whose count is another field (layout.size_of)
        parts[i] = st.one_of(st.none(), st.binary(max_size=64))
    return st.tuples(*parts).map(lambda values: layout.record(*_sized(layout, list(values))))


def _sized(layout: InfoArray, values: list[object]) -> list[object]:
    for i in layout.byte_fields:
        data = values[i]
        values[layout.size_of[i]] = 0 if data is None else len(data)  # type: ignore[arg-type]
    return values


def _enum_response(cls: Any, arrays: dict[int, InfoArray]) -> st.SearchStrategy[Any]:
    return st.sampled_from(sorted(set(arrays) & cls.arms)).flatmap(
        lambda level: st.builds(
            cls, st.just(level), st.lists(records(arrays[level]), max_size=6), DWORD, OPT_DWORD, DWORD
        )
    )


def _info_response(cls: Any, infos: dict[int, InfoArray]) -> st.SearchStrategy[Any]:
    return st.sampled_from(sorted(set(infos) & cls.arms)).flatmap(
        lambda level: st.builds(cls, st.just(level), st.none() | records(infos[level]), DWORD)
    )


SESSION_LEVEL = st.sampled_from(sorted(SESSION_LEVELS))
SHARE_LEVEL = st.sampled_from(sorted(SHARE_ARRAYS))

# Every message, at levels that have a layout, so that a round trip is exact.
MESSAGES: st.SearchStrategy[Any] = st.one_of(
    st.builds(NetrSessionEnumRequest, OPT_TEXT, OPT_TEXT, OPT_TEXT, SESSION_LEVEL, DWORD, OPT_DWORD),
    _enum_response(NetrSessionEnumResponse, SESSION_ARRAYS),
    st.builds(NetrSessionDelRequest, OPT_TEXT, OPT_TEXT, OPT_TEXT),
    st.builds(NetrSessionDelResponse, DWORD),
    st.builds(NetrShareEnumRequest, OPT_TEXT, SHARE_LEVEL, DWORD, OPT_DWORD),
    _enum_response(NetrShareEnumResponse, SHARE_ARRAYS),
    st.builds(NetrShareGetInfoRequest, OPT_TEXT, TEXT, DWORD),
    _info_response(NetrShareGetInfoResponse, SHARE_ARRAYS),
    st.builds(NetrServerGetInfoRequest, OPT_TEXT, DWORD),
    _info_response(NetrServerGetInfoResponse, SERVER_INFOS),
    st.builds(NetrFileEnumRequest, OPT_TEXT, OPT_TEXT, OPT_TEXT, st.sampled_from([2, 3]), DWORD, OPT_DWORD),
    _enum_response(NetrFileEnumResponse, FILE_ARRAYS),
    st.builds(NetrFileGetInfoRequest, OPT_TEXT, DWORD, DWORD),
    _info_response(NetrFileGetInfoResponse, FILE_ARRAYS),
    st.builds(NetrFileCloseRequest, OPT_TEXT, DWORD),
    st.builds(NetrFileCloseResponse, DWORD),
    st.builds(NetrConnectionEnumRequest, OPT_TEXT, OPT_TEXT, st.sampled_from([0, 1]), DWORD, OPT_DWORD),
    _enum_response(NetrConnectionEnumResponse, CONNECTION_ARRAYS),
    st.builds(NetrShareCheckRequest, OPT_TEXT, TEXT),
    st.builds(NetrShareCheckResponse, DWORD, DWORD),
    st.builds(NetrServerDiskEnumRequest, OPT_TEXT, DWORD, DWORD, OPT_DWORD),
    st.builds(
        NetrServerDiskEnumResponse,
        st.lists(st.text(CHAR, max_size=2).filter(lambda t: len(t.encode("utf-16-le", "surrogatepass")) <= 4),
                 max_size=5),
        DWORD, OPT_DWORD, DWORD,
    ),
    st.builds(NetrServerTransportEnumRequest, OPT_TEXT, st.sampled_from([0, 1, 2]), DWORD, OPT_DWORD),
    _enum_response(NetrServerTransportEnumResponse, TRANSPORT_ARRAYS),
    st.builds(NetrRemoteTODRequest, OPT_TEXT),
    st.builds(
        NetrRemoteTODResponse,
        st.none() | st.tuples(*[DWORD] * 6, st.integers(-(2**31), 2**31 - 1), *[DWORD] * 5).map(
            lambda v: TIME_OF_DAY_INFO(*v)
        ),
        DWORD,
    ),
    st.builds(NetrCharDevEnumRequest, OPT_TEXT, st.sampled_from([0, 1]) | DWORD, DWORD, OPT_DWORD),
    st.builds(NetrCharDevEnumResponse, st.sampled_from([0, 1]) | DWORD, st.just([]), DWORD, OPT_DWORD, DWORD),
    st.builds(NetrCharDevQEnumRequest, OPT_TEXT, OPT_TEXT, st.sampled_from([0, 1]), DWORD, OPT_DWORD),
    st.builds(NetrCharDevQEnumResponse, st.sampled_from([0, 1]), st.just([]), DWORD, OPT_DWORD, DWORD),
)

# GetInfo responses need the level of their request; fuzzing uses the message's own and any other.
LEVELED = (NetrShareGetInfoResponse, NetrServerGetInfoResponse, NetrFileGetInfoResponse)
# Stubs whose last parameter is a string: NDR pads *before* an aligned item, so a cut that only takes
# the padding after it still reads as the same message.
ENDS_WITH_A_STRING = (NetrSessionDelRequest, NetrShareCheckRequest, NetrRemoteTODRequest)
PLAIN_DECODERS: list[Callable[[bytes], Any]] = [
    NetrSessionEnumRequest.decode,
    NetrSessionEnumResponse.decode,
    NetrSessionDelRequest.decode,
    NetrSessionDelResponse.decode,
    NetrShareEnumRequest.decode,
    NetrShareEnumResponse.decode,
    NetrShareGetInfoRequest.decode,
    NetrServerGetInfoRequest.decode,
    NetrFileEnumRequest.decode,
    NetrFileEnumResponse.decode,
    NetrFileGetInfoRequest.decode,
    NetrFileCloseRequest.decode,
    NetrFileCloseResponse.decode,
    NetrConnectionEnumRequest.decode,
    NetrConnectionEnumResponse.decode,
    NetrShareCheckRequest.decode,
    NetrShareCheckResponse.decode,
    NetrServerDiskEnumRequest.decode,
    NetrServerDiskEnumResponse.decode,
    NetrServerTransportEnumRequest.decode,
    NetrServerTransportEnumResponse.decode,
    NetrRemoteTODRequest.decode,
    NetrRemoteTODResponse.decode,
    NetrCharDevEnumRequest.decode,
    NetrCharDevEnumResponse.decode,
    NetrCharDevQEnumRequest.decode,
    NetrCharDevQEnumResponse.decode,
]
ANY_LEVEL = st.sampled_from([0, 1, 2, 10, 100, 101, 102, 502]) | DWORD


def decode(msg: Any, stub: bytes) -> Any:
    if isinstance(msg, LEVELED):
        return type(msg).decode(stub, msg.level)
    return type(msg).decode(stub)


def as_utf16(value: Any) -> Any:
    """What a value reads back as: strings through UTF-16 (adjacent surrogate code points pair up)."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, tuple):
        return type(value)(*map(as_utf16, value))
    if isinstance(value, list):
        return [as_utf16(v) for v in value]
    return value


def expected_after_trip(msg: Any) -> Any:
    return replace(msg, **{f.name: as_utf16(getattr(msg, f.name)) for f in fields(msg)})


def only_ndr_error(call: Callable[[], Any]) -> None:
    try:
        call()
    except NdrError:
        pass


# -- properties -----------------------------------------------------------------------------------------

@FUZZ
@given(MESSAGES)
def test_decode_of_encode_is_the_identity_up_to_utf16(msg: Any) -> None:
    assert decode(msg, msg.encode()) == expected_after_trip(msg)


@FUZZ
@given(MESSAGES)
def test_encode_of_decode_is_the_identity_on_valid_stubs(msg: Any) -> None:
    stub = msg.encode()
    assert decode(msg, stub).encode() == stub


@settings(max_examples=200, deadline=None)
@given(st.lists(OPT_TEXT, max_size=20))
def test_string_runs_round_trip(strings: list[str | None]) -> None:
    present = [s for s in strings if s is not None]
    data = encode_wstrings(present)
    referents = [0 if s is None else 4 for s in strings]
    assert decode_wstrings(data, 0, referents) == ([as_utf16(s) for s in strings], len(data))


@settings(max_examples=200, deadline=None)
@given(MESSAGES)
def test_every_proper_prefix_of_a_valid_stub_is_refused(msg: Any) -> None:
    # Every srvsvc stub ends with a DWORD it needs (status, level, resume handle), except NetrSessionDel's,
    # which ends with UserName: NDR pads *before* an aligned item, so the padding after a final string may
    # be absent, and a cut that takes only that padding is still the same message.
    stub = msg.encode()
    whole = decode(msg, stub)
    for length in range(len(stub)):
        try:
            got = decode(msg, stub[:length])
        except NdrError:
            continue
        assert isinstance(msg, ENDS_WITH_A_STRING)
        assert len(stub) - length < 4 and not any(stub[length:])
        assert got == whole


# -- (a) arbitrary bytes --------------------------------------------------------------------------------

@FUZZ
@given(st.sampled_from(PLAIN_DECODERS), st.binary(max_size=256))
def test_arbitrary_bytes_raise_only_ndr_error(decoder: Callable[[bytes], Any], data: bytes) -> None:
    only_ndr_error(lambda: decoder(data))


@FUZZ
@given(st.sampled_from(LEVELED), ANY_LEVEL, st.binary(max_size=256))
def test_arbitrary_bytes_raise_only_ndr_error_in_get_info_responses(
    cls: Any, level: int, data: bytes
) -> None:
    only_ndr_error(lambda: cls.decode(data, level))


# Stubs that start like a real one (a plausible level and discriminant, small counts), then go random:
# random bytes rarely get past the first DWORD otherwise.
@FUZZ
@given(
    st.sampled_from([NetrSessionEnumResponse.decode, NetrShareEnumResponse.decode]),
    st.sampled_from([0, 1, 2, 10, 502]),
    st.lists(st.integers(0, 40) | st.sampled_from([0x20000, 0x20004, 2**32 - 1]), max_size=12),
    st.binary(max_size=200),
)
def test_plausible_headers_with_random_bodies_raise_only_ndr_error(
    decoder: Callable[[bytes], Any], level: int, dwords: list[int], tail: bytes
) -> None:
    head = b"".join(n.to_bytes(4, "little") for n in [level, level, *dwords])
    only_ndr_error(lambda: decoder(head + tail))


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 210), st.lists(st.integers(0, 2**32 - 1), max_size=8))
def test_decode_wstrings_on_arbitrary_bytes_raises_only_ndr_error(
    data: bytes, pos: int, refs: list[int]
) -> None:
    only_ndr_error(lambda: decode_wstrings(data, pos, refs))
    only_ndr_error(lambda: decode_wstring(data, pos))


READS = st.sampled_from(
    ["u32", "u16", "pointer", "wstring", "unique_wstring", "align", "conformance", "take"]
)


@FUZZ
@given(st.binary(max_size=128), st.lists(st.tuples(READS, st.integers(0, 64)), max_size=12))
def test_ndr_reader_primitives_on_arbitrary_bytes_raise_only_ndr_error(
    data: bytes, program: list[tuple[str, int]]
) -> None:
    r = NdrReader(data)

    def run() -> None:
        for op, arg in program:
            if op == "align":
                r.align((1, 2, 4, 8)[arg % 4])
            elif op == "conformance":
                r.conformance(1 + arg % 32)
            elif op == "take":
                r.take(arg)
            else:
                getattr(r, op)()

    only_ndr_error(run)


# -- (b) valid encodings, mutated -----------------------------------------------------------------------

MUTATION = st.sampled_from(["flip", "truncate", "insert", "overwrite-dword"])


@FUZZ
@given(MESSAGES, MUTATION, st.data())
def test_mutated_stubs_raise_only_ndr_error(msg: Any, mutation: str, data: st.DataObject) -> None:
    stub = bytearray(msg.encode())
    at = data.draw(st.integers(0, len(stub)), label="at")
    if mutation == "flip" and at < len(stub):
        stub[at] ^= data.draw(st.integers(1, 255), label="xor")
    elif mutation == "truncate":
        del stub[at:]
    elif mutation == "insert":
        stub[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
    else:
        at &= ~3
        value = data.draw(st.sampled_from([0, 1, 2, 3, 0xFFFF, 0x10000, 0x7FFFFFFF, 2**32 - 1]) | DWORD)
        stub[at : at + 4] = value.to_bytes(4, "little")
    mutated = bytes(stub)
    if isinstance(msg, LEVELED):
        level = data.draw(st.just(msg.level) | ANY_LEVEL, label="level")
        only_ndr_error(lambda: type(msg).decode(mutated, level))
    else:
        only_ndr_error(lambda: decode(msg, mutated))
