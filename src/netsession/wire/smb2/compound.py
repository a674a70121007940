"""Compound chains (MS-SMB2 3.2.4.1.4, 3.3.4.1.3, 3.3.5.2.7): several SMB2 messages in one transport
message, each header's NextCommand pointing at the next 8-byte aligned header."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from .codec import SMB2_HEADER_SIZE, Buffer, Smb2DecodeError, pad8
from .header import NEXT_COMMAND_OFFSET, Smb2Header

_U32 = struct.Struct("<I")


def split_compound(data: Buffer) -> list[bytes]:
    """The SMB2 messages of one transport message, in order (a lone message gives a list of one).

    Each element runs from its header to the next header, padding included, as signatures are computed
    over it (3.1.5.1); the last runs to the end of ``data`` (3.3.5.2.7.1). NextCommand must be a
    multiple of 8 (3.3.5.2.7: the server SHOULD disconnect otherwise), at least a header long, and
    leave a next header inside ``data``. Related/unrelated flags are the caller's to check.
    """
    if len(data) >= SMB2_HEADER_SIZE and data[NEXT_COMMAND_OFFSET : NEXT_COMMAND_OFFSET + 4] == b"\0\0\0\0":
        Smb2Header.decode(data)  # a lone message: still a header, but nothing to split
        return [bytes(data)]
    view = memoryview(data)
    parts: list[bytes] = []
    pos = 0
    while True:
        nxt = Smb2Header.decode(view[pos:]).next_command
        if nxt == 0:
            parts.append(bytes(view[pos:]))
            return parts
        if nxt < SMB2_HEADER_SIZE or nxt % 8 or pos + nxt >= len(view):
            raise Smb2DecodeError(
                f"NextCommand {nxt} is not an 8-aligned step to a following header", pos + 20
            )
        parts.append(bytes(view[pos : pos + nxt]))
        pos += nxt


def build_compound(
    messages: Sequence[bytes | bytearray], *, signer: Callable[[bytearray], None] | None = None
) -> bytes:
    """Chain ``messages`` into one compounded message (3.3.4.1.3).

    Every message but the last is padded to a multiple of 8 and gets NextCommand = its padded length;
    the last gets NextCommand 0. ``signer`` (e.g. ``lambda m: sign_message(m, key, alg)``) is called on
    each element after that, so padding is covered by its signature (3.1.4.1). Setting
    RELATED_OPERATIONS on the headers is the caller's business (3.3.5.2.7.2).
    """
    out = bytearray()
    for i, message in enumerate(messages):
        part = bytearray(message)
        if len(part) < SMB2_HEADER_SIZE:
            raise ValueError("a compound element must be a whole SMB2 message")
        last = i == len(messages) - 1
        if not last:
            part += pad8(len(part))
        _U32.pack_into(part, NEXT_COMMAND_OFFSET, 0 if last else len(part))
        if signer is not None:
            signer(part)
        out += part
    return bytes(out)
