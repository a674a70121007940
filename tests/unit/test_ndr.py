"""NDR 2.0 primitives (C706 chapter 14, MS-RPCE §2.2.5): layout, strictness, bounded allocation, UTF-16
round trips, the fast string-run path against the simple one, and records.ndr_size against real encodings."""

from __future__ import annotations

import doctest
import struct
import tracemalloc
from collections.abc import Callable

import pytest

import netsession.wire.ndr
from netsession.records import (
    SESSION_INFO_0,
    SESSION_INFO_1,
    SESSION_INFO_2,
    SESSION_INFO_10,
    SESSION_INFO_502,
    SESSION_LEVELS,
    ndr_size,
    project,
)
from netsession.wire.ndr import (
    REFERENT_BASE,
    REFERENT_STEP,
    NdrError,
    NdrReader,
    NdrWriter,
    decode_wstring,
    decode_wstrings,
    encode_wstring,
    encode_wstrings,
)
from netsession.wire.srvsvc import NetrSessionEnumResponse


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def utf16(s: str) -> bytes:
    return s.encode("utf-16-le", "surrogatepass")


def as_utf16(s: str) -> str:
    """What a string reads back as after a trip through UTF-16: adjacent high+low surrogate code points
    become the one character they encode (the wire cannot tell them apart)."""
    return utf16(s).decode("utf-16-le", "surrogatepass")


def test_module_doctests_pass() -> None:
    result = doctest.testmod(netsession.wire.ndr)
    assert result.attempted >= 2
    assert result.failed == 0


# -- writer primitives ---------------------------------------------------------------------------------

def test_writer_u32_is_little_endian_and_4_aligned() -> None:
    w = NdrWriter()
    w.raw(b"\x01")
    w.u32(0x11223344)
    assert w.getvalue() == b"\x01\0\0\0" + bytes.fromhex("44332211")


def test_writer_u16_is_2_aligned() -> None:
    w = NdrWriter()
    w.raw(b"\x01")
    w.u16(0xABCD)
    assert w.getvalue() == b"\x01\0" + bytes.fromhex("cdab")


@pytest.mark.parametrize("n", [1, 2, 4, 8])
@pytest.mark.parametrize("start", range(9))
def test_writer_align_pads_with_zeros_to_the_boundary(n: int, start: int) -> None:
    w = NdrWriter()
    w.raw(b"\xff" * start)
    w.align(n)
    out = w.getvalue()
    assert len(out) % n == 0
    assert len(out) - start < n
    assert out[start:] == b"\0" * (len(out) - start)


def test_writer_referent_ids_start_at_0x20000_and_step_by_4() -> None:
    w = NdrWriter()
    w.pointer(True)
    w.pointer(False)
    w.pointer(True)
    first = w.referents(3)
    assert w.next_referent() == first + 3 * REFERENT_STEP
    assert w.getvalue() == u32(REFERENT_BASE, 0, REFERENT_BASE + REFERENT_STEP)
    assert (REFERENT_BASE, REFERENT_STEP) == (0x00020000, 4)
    assert first == REFERENT_BASE + 2 * REFERENT_STEP


def test_writer_unique_wstring_none_is_a_null_pointer_only() -> None:
    w = NdrWriter()
    w.unique_wstring(None)
    assert w.getvalue() == u32(0)


def test_wstring_layout_is_max_offset_actual_chars_nul_and_pad() -> None:
    # C706 §14.3.3.4: conformant-varying array: max_count, offset 0, actual_count, elements (with the NUL).
    assert encode_wstring("IPC$") == u32(5, 0, 5) + utf16("IPC$") + b"\0\0" + b"\0\0"
    assert encode_wstring("abc") == u32(4, 0, 4) + utf16("abc") + b"\0\0"
    assert encode_wstring("") == u32(1, 0, 1) + b"\0\0" + b"\0\0"


def test_wstring_counts_utf16_units_not_code_points() -> None:
    # U+1F600 is two UTF-16 units: count = 2 + NUL.
    assert encode_wstring("\U0001f600")[:12] == u32(3, 0, 3)


def test_writer_wstring_aligns_to_4_first() -> None:
    w = NdrWriter()
    w.u16(7)
    w.wstring("a")
    assert w.getvalue() == b"\x07\0\0\0" + encode_wstring("a")


# -- reader primitives ---------------------------------------------------------------------------------

def test_reader_u32_u16_align_and_remaining() -> None:
    r = NdrReader(b"\x01\0\xcd\xab" + u32(0x11223344) + b"\x05\0")
    assert r.u16() == 1
    assert r.u16() == 0xABCD
    assert r.u32() == 0x11223344
    assert r.remaining == 2
    assert r.u16() == 5
    assert r.remaining == 0


def test_reader_u32_skips_padding_to_4() -> None:
    r = NdrReader(b"\x09\0\0\0" + u32(7))
    r.take(1)
    assert r.u32() == 7


def test_reader_accepts_bytearray_and_memoryview() -> None:
    data = u32(1, 2)
    assert NdrReader(bytearray(data)).u32() == 1
    assert NdrReader(memoryview(data)).u32() == 1


@pytest.mark.parametrize(
    ("data", "read", "offset"),
    [
        (b"\0\0\0", NdrReader.u32, 0),
        (b"", NdrReader.u32, 0),
        (b"\0", NdrReader.u16, 0),
        (b"\0\0\0\0\0", NdrReader.pointer, 4),
    ],
)
def test_reader_truncated_primitive_raises_ndr_error_with_offset(
    data: bytes, read: Callable[[NdrReader], int], offset: int
) -> None:
    r = NdrReader(data)
    if len(data) > 4:
        r.u32()
    with pytest.raises(NdrError) as e:
        read(r)
    assert e.value.offset == offset
    assert f"offset {offset}" in str(e.value)


def test_reader_align_past_the_end_raises() -> None:
    r = NdrReader(b"\0\0")
    r.take(1)
    with pytest.raises(NdrError) as e:
        r.align(4)
    assert e.value.offset == 1


def test_reader_take_refuses_negative_and_overlong() -> None:
    r = NdrReader(b"abcd")
    assert r.take(2) == b"ab"
    with pytest.raises(NdrError) as e:
        r.take(3)
    assert e.value.offset == 2
    with pytest.raises(NdrError):
        r.take(-1)
    assert r.take(2) == b"cd"


def test_reader_unique_wstring_null_and_present() -> None:
    r = NdrReader(u32(0) + u32(REFERENT_BASE) + encode_wstring("x") + u32(9))
    assert r.unique_wstring() is None
    assert r.unique_wstring() == "x"
    assert r.u32() == 9


def test_reader_conformance_accepts_what_fits_exactly() -> None:
    r = NdrReader(u32(3) + b"\0" * 12)
    assert r.conformance(4) == 3
    assert r.remaining == 12


def test_reader_conformance_refuses_a_count_the_bytes_cannot_hold() -> None:
    r = NdrReader(u32(0, 4) + b"\0" * 15)
    r.u32()
    with pytest.raises(NdrError) as e:
        r.conformance(4)
    assert e.value.offset == 4


def test_ndr_error_is_a_value_error_carrying_the_offset() -> None:
    err = NdrError("boom", 12)
    assert isinstance(err, ValueError)
    assert err.offset == 12


# -- strictness of [string] referents ------------------------------------------------------------------

PREFIX = b"\xee" * 8  # the string under test starts at stub offset 8, so offsets are not trivially 0
GOOD = encode_wstring("ab")  # 3, 0, 3, 'a' 'b' NUL, pad


def _decode_one(data: bytes) -> str | None:
    return decode_wstring(data, len(PREFIX))[0]


def _decode_run(data: bytes) -> str | None:
    return decode_wstrings(data, len(PREFIX), [REFERENT_BASE])[0][0]


def _decode_reader(data: bytes) -> str | None:
    r = NdrReader(data)
    r.take(len(PREFIX))
    return r.wstring()


DECODERS = pytest.mark.parametrize("decode", [_decode_one, _decode_run, _decode_reader])
START = len(PREFIX)

MALFORMED = [
    pytest.param(u32(3, 1, 3) + utf16("ab\0") + b"\0\0", START, id="offset-not-zero"),
    pytest.param(u32(2, 0, 3) + utf16("ab\0") + b"\0\0", START, id="actual-greater-than-max"),
    pytest.param(u32(3, 0, 0) + utf16("ab\0") + b"\0\0", START, id="actual-zero"),
    pytest.param(u32(3, 0, 3) + utf16("abc") + b"\0\0", START + 12 + 4, id="missing-nul"),
    pytest.param(u32(3, 0, 3) + utf16("ab"), START, id="overrun-by-the-nul"),
    pytest.param(u32(9, 0, 9) + utf16("ab\0") + b"\0\0", START, id="overrun"),
    pytest.param(u32(4_000_000_000, 0, 2_000_000_000) + b"\0" * 4, START, id="overrun-huge"),
    pytest.param(u32(3, 0), START, id="header-truncated-8"),
    pytest.param(b"\x03\0\0", START, id="header-truncated-3"),
    pytest.param(b"", START, id="header-missing"),
]


@DECODERS
def test_wellformed_string_decodes(decode: Callable[[bytes], str | None]) -> None:
    assert decode(PREFIX + GOOD) == "ab"


@DECODERS
@pytest.mark.parametrize(("body", "offset"), MALFORMED)
def test_malformed_string_raises_ndr_error_at_its_offset(
    decode: Callable[[bytes], str | None], body: bytes, offset: int
) -> None:
    with pytest.raises(NdrError) as e:
        decode(PREFIX + body)
    assert e.value.offset == offset


def test_string_with_max_count_above_actual_is_accepted() -> None:
    # Conformant-varying: max_count ≥ actual_count with offset 0 is well-formed (C706 §14.3.3.4).
    data = u32(10, 0, 3) + utf16("ab\0") + b"\0\0"
    assert decode_wstring(data, 0) == ("ab", 20)
    assert decode_wstrings(data, 0, [1]) == (["ab"], 20)


def test_decode_wstrings_reports_the_offset_of_the_bad_string_not_the_first() -> None:
    data = encode_wstring("ok") + encode_wstring("ok") + u32(3, 0, 3) + utf16("abc")
    with pytest.raises(NdrError) as e:
        decode_wstrings(data, 0, [1, 2, 3])
    assert e.value.offset == 2 * 20 + 12 + 4  # two 20-byte "ok"s, the header, then "ab" before "c"


def test_decode_wstrings_cache_does_not_bypass_the_overrun_check() -> None:
    # The same header twice; the second copy is cut short: a cached first copy must not satisfy it.
    full = encode_wstring("abc")
    data = full + full[:-4]
    with pytest.raises(NdrError) as e:
        decode_wstrings(data, 0, [1, 2])
    assert e.value.offset == len(full)


def test_decode_wstrings_null_referents_take_no_bytes() -> None:
    data = encode_wstring("a") + encode_wstring("b")
    strings, pos = decode_wstrings(data, 0, [0, 7, 0, 0, 9, 0])
    assert strings == [None, "a", None, None, "b", None]
    assert pos == len(data)


def test_decoded_position_is_4_aligned_after_the_padding() -> None:
    for s in ("", "a", "ab", "abc", "abcd"):
        data = encode_wstring(s)
        assert len(data) % 4 == 0
        assert decode_wstring(data, 0) == (s, len(data))


# -- bounded allocation ----------------------------------------------------------------------------------

HUGE = 4_000_000_000


def _stub_100(head: bytes) -> bytes:
    return head + b"\0" * (100 - len(head))


def _assert_refused_small_and_fast(call: Callable[[], object]) -> NdrError:
    # Refused before anything is allocated for the count: the peak stays tiny (an allocation sized by a
    # count of 4 billion would be gigabytes). Memory, not time: tests do not time code.
    tracemalloc.start()
    try:
        with pytest.raises(NdrError) as e:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    return e.value


def test_conformance_of_4e9_in_a_100_byte_stub_is_refused_before_allocation() -> None:
    # SESSION_ENUM_STRUCT level 502 -> container: EntriesRead = Buffer max_count = 4,000,000,000.
    stub = _stub_100(u32(502, 502, REFERENT_BASE, HUGE, REFERENT_BASE + 4, HUGE))
    err = _assert_refused_small_and_fast(lambda: NetrSessionEnumResponse.decode(stub))
    assert err.offset == 20
    assert "4000000000" in str(err)


def test_reader_conformance_of_4e9_is_refused_before_allocation() -> None:
    stub = _stub_100(u32(HUGE))
    err = _assert_refused_small_and_fast(lambda: NdrReader(stub).conformance(1))
    assert err.offset == 0


def test_string_count_of_4e9_in_a_100_byte_stub_is_refused_before_allocation() -> None:
    stub = _stub_100(u32(HUGE, 0, HUGE))
    _assert_refused_small_and_fast(lambda: decode_wstring(stub, 0))
    _assert_refused_small_and_fast(lambda: decode_wstrings(stub, 0, [1]))


# -- UTF-16 round trips ---------------------------------------------------------------------------------

TEXTS = [
    pytest.param("", id="empty"),
    pytest.param("IPC$", id="ascii"),
    pytest.param("\u00e9", id="e-acute"),
    pytest.param("Ren\u00e9e", id="latin1"),
    pytest.param("\u4e2d\u6587", id="cjk"),
    pytest.param("\U0001f600", id="emoji-outside-bmp"),
    pytest.param("a\U0001f600b\U00010000", id="astral-mixed"),
    pytest.param("\ud800", id="lone-high-surrogate"),
    pytest.param("\udfff", id="lone-low-surrogate"),
    pytest.param("x\udc00y\ud83d", id="lone-surrogates-inside"),
    pytest.param("\ufffe\uffff", id="nonchars"),
    pytest.param("a\0b", id="embedded-nul"),
]


@pytest.mark.parametrize("text", TEXTS)
def test_wstring_round_trips(text: str) -> None:
    data = encode_wstring(text)
    assert decode_wstring(data, 0) == (text, len(data))
    assert data[12 : 12 + len(utf16(text)) + 2] == utf16(text) + b"\0\0"


@pytest.mark.parametrize("text", TEXTS)
def test_wstrings_round_trip_and_match_encode_wstring(text: str) -> None:
    run = [text, "a", text, "\u4e2d", text]
    data = encode_wstrings(run)
    assert data == b"".join(map(encode_wstring, run))
    assert decode_wstrings(data, 0, [1] * len(run)) == (run, len(data))


def test_adjacent_surrogate_code_points_read_back_as_the_pair_they_encode() -> None:
    # UTF-16 cannot tell "\ud83d\ude00" (two code points) from U+1F600: both are the same four bytes.
    text = "\ud83d\ude00"
    assert encode_wstring(text) == encode_wstring("\U0001f600")
    assert decode_wstring(encode_wstring(text), 0)[0] == as_utf16(text) == "\U0001f600"
    assert encode_wstrings([text]) == encode_wstring(text)


def test_encode_wstrings_empty_run_is_empty() -> None:
    assert encode_wstrings([]) == b""
    assert decode_wstrings(b"", 0, []) == ([], 0)


# -- long strings: the fallback past 65535 UTF-16 units -------------------------------------------------

# Characters (with the NUL) -> the header unit: 0xD7FF/0xD800/0xDFFF are surrogate values in the str
# trick, 0xFFFF is the last that fits one unit, 0x10000 needs the fallback.
LONG_COUNTS = [0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFFFE, 0xFFFF, 0x10000, 0x10001, 70000]


@pytest.mark.parametrize("count", LONG_COUNTS, ids=hex)
def test_long_ascii_string_matches_the_simple_encoding_and_round_trips(count: int) -> None:
    text = "x" * (count - 1)
    data = encode_wstrings([text, "short", text])
    assert data == b"".join(map(encode_wstring, [text, "short", text]))
    assert data[:12] == u32(count, 0, count)
    assert decode_wstrings(data, 0, [1, 2, 3]) == ([text, "short", text], len(data))


@pytest.mark.parametrize(("emoji", "extra"), [(32767, ""), (32767, "a"), (32768, ""), (40000, "\u00e9")])
def test_long_non_bmp_string_counts_units_and_takes_the_fallback(emoji: int, extra: str) -> None:
    text = "\U0001f600" * emoji + extra  # 2 units each
    count = 2 * emoji + len(extra) + 1
    data = encode_wstrings(["\u00e9", text])
    assert data == encode_wstring("\u00e9") + encode_wstring(text)
    assert data[len(encode_wstring("\u00e9")) :][:12] == u32(count, 0, count)
    assert decode_wstrings(data, 0, [1, 1])[0] == ["\u00e9", text]


def test_long_string_with_surrogates_round_trips() -> None:
    text = ("\ud800a\U0001f600" * 30000)[:70000]
    data = encode_wstrings([text])
    assert data == encode_wstring(text)
    assert decode_wstring(data, 0)[0] == text


# -- records.ndr_size is what one more entry adds to a NetrSessionEnumResponse ------------------------------

def _source(
    cname: str | None, user: str | None, cltype: str | None, transport: str | None
) -> SESSION_INFO_502:
    return SESSION_INFO_502(cname, user, 3, 0xFFFFFFFF, 0, 1, cltype, transport)


ENTRIES = {
    "ascii": _source("\\\\10.0.0.5", "alice", "", "\\Device\\NetbiosSmb"),
    "ascii-odd-even": _source("ab", "abc", "a", "abcd"),
    "non-ascii": _source("\\\\h\u00f4te", "\u4e2d\u6587\U0001f600", "\u00e9", "\ud800"),
    "nulls": _source(None, None, None, None),
    "some-nulls": _source("\\\\pc", None, "", None),
    "long": _source("c" * 70000, "u" * 65534, "\U0001f600" * 33000, "t"),
}


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@pytest.mark.parametrize("name", sorted(ENTRIES))
@pytest.mark.parametrize("base_size", [1, 2])
def test_ndr_size_is_the_bytes_one_more_entry_adds_to_a_response(
    level: int, name: str, base_size: int
) -> None:
    base = [project(_source("\\\\10.0.0.1", "bob", "", "x"), level)] * base_size
    entry = project(ENTRIES[name], level)
    for before in (base, [*base, entry]):  # a repeat of the same entry costs the same again
        without = NetrSessionEnumResponse(level, before, len(before)).encode()
        with_one = NetrSessionEnumResponse(level, [*before, entry], len(before) + 1).encode()
        assert len(with_one) - len(without) == ndr_size(entry)


def test_ndr_size_by_hand() -> None:
    # 2 pointers + 2 DWORDs, "ab" (3 units -> 6 bytes, padded to 8) and "abc" (4 units -> 8 bytes).
    assert ndr_size(SESSION_INFO_10("ab", "abc", 1, 2)) == 16 + (12 + 8) + (12 + 8)
    assert ndr_size(SESSION_INFO_0(None)) == 4
    assert ndr_size(SESSION_INFO_1("\U0001f600", None, 0, 0, 0, 0)) == 24 + 12 + 8
    assert ndr_size(SESSION_INFO_2("", "", 0, 0, 0, 0, "")) == 28 + 3 * 16

