"""NDR 2.0 (C706 chapter 14, MS-RPCE §2.2.5), little-endian, the subset MS-SRVS needs.

Two small cursors, :class:`NdrWriter` and :class:`NdrReader`, carry the primitives: alignment, DWORDs,
unique and ref pointers (a unique pointer is a referent id, 0 for NULL; its referent follows later — at
once for a top-level parameter, after the enclosing construct for an embedded one), conformant arrays and
UTF-16 ``[string]`` (conformant-varying) arrays. The message codecs in :mod:`netsession.wire.srvsvc` lay
out each structure with them, deferring embedded referents in NDR order.

Alignment is relative to the start of the stub, which the PDU layer keeps 8-aligned (MS-RPCE §2.2.2.x).

Decoding is strict and bounded: every read is checked against the bytes that arrived and raises
:class:`NdrError` (with the offset) when something is missing or inconsistent; a conformance count is
checked against what the remaining bytes could hold *before* anything is allocated for it.
"""

from __future__ import annotations

from codecs import utf_16_le_decode, utf_16_le_encode
from itertools import chain
from struct import Struct
from struct import error as struct_error
from typing import Final

_U32: Final = Struct("<I")
_U16: Final = Struct("<H")
STRING_HEADER: Final = Struct("<III")  # max_count, offset, actual_count (C706 §14.3.3.4)

# First referent id, and the step between ids, as Windows' NDR engine writes them.
REFERENT_BASE: Final = 0x00020000
REFERENT_STEP: Final = 4

# The NUL that ends a string, and the padding that realigns to 4 after it (by the count's parity).
_TERMINATOR: Final = (b"\0\0", b"\0\0\0\0")
_PAD: Final = (b"", b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0", b"\0\0\0\0\0", b"\0\0\0\0\0\0", b"\0" * 7)


class NdrError(ValueError):
    """Stub data that is truncated or inconsistent; ``offset`` is where in the stub it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at stub offset {offset})")
        self.offset = offset


# -- strings -------------------------------------------------------------------------------------------

def encode_wstring(s: str) -> bytes:
    """The referent of a ``[string] wchar_t*``: max_count = offset-0 = actual_count = characters with the
    terminating NUL, the UTF-16LE characters, padded to 4 bytes (C706 §14.3.4)."""
    # codecs' functions, not str.encode: no codec lookup per call, 4-8x faster on short names.
    body = utf_16_le_encode(s, "surrogatepass")[0]
    count = (len(body) >> 1) + 1
    return b"".join((STRING_HEADER.pack(count, 0, count), body, _TERMINATOR[count & 1]))


def decode_wstring(data: bytes, pos: int) -> tuple[str, int]:
    """Read a ``[string] wchar_t*`` referent at ``pos`` (4-aligned); returns the string without its NUL
    and the 4-aligned position after it."""
    if pos + 12 > len(data):
        raise NdrError("string header truncated", pos)
    max_count, offset, actual = STRING_HEADER.unpack_from(data, pos)
    end = pos + 12 + 2 * actual
    if offset != 0 or actual > max_count or actual == 0:
        raise NdrError(f"bad string counts max={max_count} offset={offset} actual={actual}", pos)
    if end > len(data):
        raise NdrError(f"string of {actual} characters overruns the stub", pos)
    if data[end - 2 : end] != b"\0\0":
        raise NdrError("string is not NUL-terminated", end - 2)
    return utf_16_le_decode(data[pos + 12 : end - 2], "surrogatepass", True)[0], (end + 3) & ~3


def encode_wstrings(strings: list[str]) -> bytes:
    """The referents of a run of ``[string]`` pointers, back to back, each 4-aligned — the deferred
    strings of an array of records.

    Built as one ``str`` whose UTF-16LE encoding *is* the NDR, then encoded once: each header DWORD is
    written as two code units (the count, then 0, for counts below 65536), the terminator and padding as
    NUL units. Every code point added is at most U+FFFF, so units map one to one (a count in the surrogate
    range passes through as itself), and a string's own characters encode as they would alone. Headers and
    tails depend only on the count: one per distinct count, interleaved with the strings by ``zip`` and
    ``chain``, so no Python code runs per string."""
    if "".join(strings).isascii():
        counts = list(map((1).__add__, map(len, strings)))  # characters and the NUL
    else:
        counts = [utf16_units(s) + 1 for s in strings]
    if counts and max(counts) > 0xFFFF:  # a header would need its high unit: bytes, one by one
        return b"".join(map(encode_wstring, strings))
    distinct = set(counts)
    heads = {c: f"{chr(c)}\0\0\0{chr(c)}\0" for c in distinct}  # max_count, offset 0, actual_count
    tails = {c: "\0\0" if c & 1 else "\0" for c in distinct}  # the NUL, and padding to 4 bytes
    text = "".join(
        chain.from_iterable(zip(map(heads.__getitem__, counts), strings, map(tails.__getitem__, counts)))
    )
    return utf_16_le_encode(text, "surrogatepass")[0]


def utf16_units(s: str) -> int:
    """Length of ``s`` in UTF-16 code units (characters outside the BMP take two)."""
    return len(s) if s.isascii() else len(utf_16_le_encode(s, "surrogatepass")[0]) >> 1


def decode_wstrings(data: bytes, pos: int, referents: list[int]) -> tuple[list[str | None], int]:
    """Read the referents of a run of ``[string]`` pointers, in order, starting at ``pos``; a referent id
    of 0 is a NULL pointer and has none. Returns the strings (None for NULL) and the position after.

    Names repeat (user, client type, transport), so a string's bytes with their header are the key of a
    cache: a repeat costs one slice and one lookup, and was validated the first time."""
    strings: list[str | None] = []
    append = strings.append
    header = STRING_HEADER.unpack_from
    seen: dict[bytes, str] = {}
    try:
        for ref in referents:
            if not ref:
                append(None)
                continue
            max_count, offset, actual = header(data, pos)
            end = pos + 12 + 2 * actual
            raw = data[pos:end]
            text = seen.get(raw)
            if text is None:
                if offset or not actual or actual > max_count:
                    raise NdrError(f"bad string counts max={max_count} offset={offset} actual={actual}", pos)
                if len(raw) != end - pos:
                    raise NdrError(f"string of {actual} characters overruns the stub", pos)
                if raw[-2:] != b"\0\0":
                    raise NdrError("string is not NUL-terminated", end - 2)
                text = seen[raw] = utf_16_le_decode(raw[12:-2], "surrogatepass", True)[0]
            append(text)
            pos = (end + 3) & ~3
    except struct_error:
        raise NdrError("string header truncated", pos) from None
    return strings, pos


# -- writer --------------------------------------------------------------------------------------------

class NdrWriter:
    """Appends NDR primitives to a growing buffer.

    >>> w = NdrWriter()
    >>> w.unique_wstring("IPC$")        # top-level [in, string, unique] wchar_t*
    >>> w.u32(1)
    >>> len(w.getvalue())
    32
    """

    __slots__ = ("_ref", "buf")

    def __init__(self) -> None:
        self.buf = bytearray()
        self._ref = REFERENT_BASE

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def align(self, n: int) -> None:
        self.buf += _PAD[-len(self.buf) % n]

    def u32(self, value: int) -> None:
        self.align(4)
        self.buf += _U32.pack(value)

    def u16(self, value: int) -> None:
        self.align(2)
        self.buf += _U16.pack(value)

    def next_referent(self) -> int:
        """A fresh non-zero referent id (unique pointers need not be distinct; Windows makes them so)."""
        ref = self._ref
        self._ref = ref + REFERENT_STEP
        return ref

    def referents(self, count: int) -> int:
        """Reserve ``count`` consecutive referent ids; returns the first."""
        ref = self._ref
        self._ref = ref + REFERENT_STEP * count
        return ref

    def pointer(self, present: bool) -> None:
        """A unique pointer's representation: a referent id, or 0 for NULL."""
        self.u32(self.next_referent() if present else 0)

    def wstring(self, s: str) -> None:
        """A ``[string]`` referent (conformant-varying array of wchar_t with its NUL)."""
        self.align(4)
        self.buf += encode_wstring(s)

    def unique_wstring(self, s: str | None) -> None:
        """A top-level ``[string, unique] wchar_t*``: the pointer and, at once, its referent."""
        self.pointer(s is not None)
        if s is not None:
            self.wstring(s)

    def raw(self, data: bytes) -> None:
        self.buf += data


# -- reader --------------------------------------------------------------------------------------------

class NdrReader:
    """Reads NDR primitives from stub bytes, checking every length against what arrived.

    >>> r = NdrReader(bytes.fromhex("0000020005000000000000000500000049005000430024000000000001000000"))
    >>> r.unique_wstring(), r.u32()
    ('IPC$', 1)
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = bytes(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def align(self, n: int) -> None:
        pos = self.pos + (-self.pos % n)
        if pos > len(self.data):
            raise NdrError("alignment padding runs past the end", self.pos)
        self.pos = pos

    def u32(self) -> int:
        self.align(4)
        pos = self.pos
        if pos + 4 > len(self.data):
            raise NdrError("DWORD truncated", pos)
        self.pos = pos + 4
        value: int = _U32.unpack_from(self.data, pos)[0]
        return value

    def u16(self) -> int:
        self.align(2)
        pos = self.pos
        if pos + 2 > len(self.data):
            raise NdrError("WORD truncated", pos)
        self.pos = pos + 2
        value: int = _U16.unpack_from(self.data, pos)[0]
        return value

    def pointer(self) -> int:
        """A unique pointer's referent id (0 = NULL)."""
        return self.u32()

    def wstring(self) -> str:
        self.align(4)
        s, self.pos = decode_wstring(self.data, self.pos)
        return s

    def unique_wstring(self) -> str | None:
        """A top-level ``[string, unique] wchar_t*``."""
        return self.wstring() if self.pointer() else None

    def conformance(self, element_size: int) -> int:
        """An array's max_count, refused unless ``count * element_size`` bytes could follow — nothing is
        allocated for a count the input cannot back."""
        at = self.pos
        count = self.u32()
        if count * element_size > self.remaining:
            raise NdrError(f"array of {count} elements cannot fit in {self.remaining} bytes", at)
        return count

    def done(self) -> None:
        """The stub must end here, but for alignment padding (fewer than 8 bytes): a decoder that stops
        short has misread the layout, and says so instead of returning wrong values."""
        if self.remaining >= 8:
            raise NdrError(f"{self.remaining} bytes left after the last parameter", self.pos)

    def take(self, n: int) -> bytes:
        """``n`` raw bytes."""
        pos = self.pos
        if n < 0 or pos + n > len(self.data):
            raise NdrError(f"{n} bytes wanted, {len(self.data) - pos} left", pos)
        self.pos = pos + n
        return self.data[pos : pos + n]
