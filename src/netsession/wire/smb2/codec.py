"""The SMB2 layer's decode error and the bounds-checked byte reading every codec here uses.

Every decoder in ``netsession.wire.smb2`` raises :class:`Smb2DecodeError` and nothing else on bad input:
a truncated buffer, an offset/length pair pointing outside the message, a wrong StructureSize, a count
larger than the bytes that arrived. No decoder allocates more than the input it was given justifies:
lengths are checked against the bytes present before anything is sliced or counted.
"""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

# MS-SMB2 2.2.1: every SMB2 message starts with a 64-byte header; offsets in bodies count from it.
SMB2_HEADER_SIZE = 64


class Smb2DecodeError(ValueError):
    """A received SMB2 message does not conform to MS-SMB2 section 2.

    ``what`` says which rule was broken, ``offset`` where (bytes from the start of the buffer decoded,
    usually the start of the SMB2 header). MS-SMB2 3.3.5.2.6: the server answers such a request with
    STATUS_INVALID_PARAMETER (or disconnects).
    """

    def __init__(self, what: str, offset: int | None = None) -> None:
        self.what = what
        self.offset = offset
        super().__init__(what if offset is None else f"{what} (at offset {offset})")


def align8(n: int) -> int:
    """``n`` rounded up to a multiple of 8 (MS-SMB2 uses 8-byte alignment for chains and contexts)."""
    return (n + 7) & ~7


def pad8(n: int) -> bytes:
    """The zero bytes that bring a length ``n`` up to a multiple of 8."""
    return b"\x00" * (align8(n) - n)


def unpack_from(fmt: struct.Struct, data: Buffer, offset: int, what: str) -> tuple[Any, ...]:
    """``fmt.unpack_from`` that raises Smb2DecodeError instead of struct.error when data is short."""
    if offset < 0 or offset + fmt.size > len(data):
        raise Smb2DecodeError(f"{what}: needs {fmt.size} bytes, {max(len(data) - offset, 0)} present", offset)
    return fmt.unpack_from(data, offset)


def take(data: Buffer, offset: int, length: int, what: str) -> bytes:
    """``length`` bytes of ``data`` at ``offset``, or Smb2DecodeError if they are not all there."""
    if offset < 0 or length < 0 or offset + length > len(data):
        raise Smb2DecodeError(
            f"{what}: {length} bytes at offset {offset} run past the end ({len(data)})", offset
        )
    return bytes(data[offset : offset + length])


def variable_field(data: Buffer, offset: int, length: int, floor: int, what: str) -> bytes:
    """A variable field given by an offset/length pair counted from the SMB2 header.

    A zero length is an empty field whatever the offset says (clients leave such offsets 0 or stale).
    Otherwise the field must lie wholly after ``floor`` (the end of the fixed part of the structure, so
    the field cannot overlap the fields that describe it) and wholly inside ``data``.
    """
    if length == 0:
        return b""
    if offset < floor:
        raise Smb2DecodeError(f"{what}: offset {offset} points into the fixed part (before {floor})", offset)
    return take(data, offset, length, what)


def decode_utf16(raw: bytes, what: str, offset: int | None = None) -> str:
    """UTF-16LE text (MS-SMB2 2.2: all strings are UTF-16); odd lengths and bad surrogates are errors."""
    if len(raw) % 2:
        raise Smb2DecodeError(f"{what}: odd UTF-16 length {len(raw)}", offset)
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError as e:
        raise Smb2DecodeError(f"{what}: invalid UTF-16 ({e.reason})", offset) from None


def check_structure_size(data: Buffer, expected: int, what: str, base: int = SMB2_HEADER_SIZE) -> None:
    """MS-SMB2 2.2.x: a body's StructureSize must be the fixed value, and its fixed part must be present.

    The fixed part is ``StructureSize & ~1`` bytes: an odd StructureSize counts one byte of the
    variable Buffer, which may be absent when that buffer is empty.
    """
    (size,) = unpack_from(_U16, data, base, f"{what} StructureSize")
    if size != expected:
        raise Smb2DecodeError(f"{what}: StructureSize {size}, expected {expected}", base)
    fixed = expected & ~1
    if len(data) < base + fixed:
        raise Smb2DecodeError(f"{what}: {len(data) - base} body bytes, the fixed part is {fixed}", base)


def fixed_end(structure_size: int) -> int:
    """Offset from the SMB2 header of the first byte after a body's fixed part (StructureSize & ~1)."""
    return SMB2_HEADER_SIZE + (structure_size & ~1)


def with_buffer(fixed: bytes, variable: bytes) -> bytes:
    """A body: fixed part, then variable part; an empty variable part becomes the one zero byte an odd
    StructureSize counts (Windows and Samba send it; MS-SMB2 <5>)."""
    return fixed + (variable or b"\x00")


_U16 = struct.Struct("<H")
