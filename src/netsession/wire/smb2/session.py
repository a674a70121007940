"""Connection- and session-level bodies (MS-SMB2): SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT,
ECHO, CANCEL and the ERROR response every failed request gets."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from .codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    Smb2DecodeError,
    align8,
    check_structure_size,
    decode_utf16,
    fixed_end,
    pad8,
    take,
    unpack_from,
    variable_field,
    with_buffer,
)
from .constants import Command, TreeConnectFlags


@dataclass(frozen=True, slots=True)
class ReservedBody:
    """StructureSize 4 + Reserved: LOGOFF, TREE_DISCONNECT, ECHO, CANCEL requests and several responses."""

    COMMAND: ClassVar[int]
    STRUCTURE_SIZE: ClassVar[int] = 4
    NAME: ClassVar[str]

    def encode(self) -> bytes:
        return _RESERVED.pack(self.STRUCTURE_SIZE, 0)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, cls.NAME)
        return cls()


_RESERVED = struct.Struct("<HH")


class LogoffRequest(ReservedBody):
    """MS-SMB2 2.2.7."""

    COMMAND = Command.LOGOFF
    NAME = "LOGOFF request"


class LogoffResponse(ReservedBody):
    """MS-SMB2 2.2.8."""

    COMMAND = Command.LOGOFF
    NAME = "LOGOFF response"


class TreeDisconnectRequest(ReservedBody):
    """MS-SMB2 2.2.11."""

    COMMAND = Command.TREE_DISCONNECT
    NAME = "TREE_DISCONNECT request"


class TreeDisconnectResponse(ReservedBody):
    """MS-SMB2 2.2.12."""

    COMMAND = Command.TREE_DISCONNECT
    NAME = "TREE_DISCONNECT response"


class EchoRequest(ReservedBody):
    """MS-SMB2 2.2.28."""

    COMMAND = Command.ECHO
    NAME = "ECHO request"


class EchoResponse(ReservedBody):
    """MS-SMB2 2.2.29."""

    COMMAND = Command.ECHO
    NAME = "ECHO response"


class CancelRequest(ReservedBody):
    """MS-SMB2 2.2.30 (no response is ever sent to a CANCEL)."""

    COMMAND = Command.CANCEL
    NAME = "CANCEL request"


# --- ERROR (2.2.2) ---------------------------------------------------------------------------------

_ERROR = struct.Struct("<HBBI")
ERROR_DATA_OFFSET = SMB2_HEADER_SIZE + _ERROR.size  # 72


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """MS-SMB2 2.2.2 SMB2 ERROR Response: the body of every failed request's response (3.3.4.4).

    ``error_data`` is kept as bytes (3.1.1 ERROR Contexts when ``error_context_count`` > 0, else
    2.2.2.2 data); an empty one is sent as the single zero byte clients expect (<5>).
    """

    error_data: bytes = b""
    error_context_count: int = 0
    COMMAND: ClassVar[int | None] = None  # any command
    STRUCTURE_SIZE: ClassVar[int] = 9

    def encode(self) -> bytes:
        fixed = _ERROR.pack(self.STRUCTURE_SIZE, self.error_context_count, 0, len(self.error_data))
        return with_buffer(fixed, self.error_data)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "ERROR response")
        _, count, _, byte_count = _ERROR.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(take(message, ERROR_DATA_OFFSET, byte_count, "ERROR response ErrorData"), count)


# --- SESSION_SETUP (2.2.5, 2.2.6) ------------------------------------------------------------------

_SS_REQ = struct.Struct("<HBBIIHHQ")
_SS_RESP = struct.Struct("<HHHH")


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    """MS-SMB2 2.2.5 SMB2 SESSION_SETUP Request; ``security_buffer`` is the GSS (SPNEGO) token."""

    security_buffer: bytes = b""
    flags: int = 0
    security_mode: int = 0
    capabilities: int = 0
    channel: int = 0
    previous_session_id: int = 0
    COMMAND: ClassVar[int] = Command.SESSION_SETUP
    STRUCTURE_SIZE: ClassVar[int] = 25

    def encode(self) -> bytes:
        fixed = _SS_REQ.pack(
            self.STRUCTURE_SIZE,
            self.flags,
            self.security_mode,
            self.capabilities,
            self.channel,
            fixed_end(self.STRUCTURE_SIZE),
            len(self.security_buffer),
            self.previous_session_id,
        )
        return with_buffer(fixed, self.security_buffer)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "SESSION_SETUP request")
        _, flags, mode, caps, channel, off, length, prev = _SS_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        token = variable_field(
            message, off, length, fixed_end(cls.STRUCTURE_SIZE), "SESSION_SETUP SecurityBuffer"
        )
        return cls(token, flags, mode, caps, channel, prev)


@dataclass(frozen=True, slots=True)
class SessionSetupResponse:
    """MS-SMB2 2.2.6 SMB2 SESSION_SETUP Response."""

    security_buffer: bytes = b""
    session_flags: int = 0
    COMMAND: ClassVar[int] = Command.SESSION_SETUP
    STRUCTURE_SIZE: ClassVar[int] = 9

    def encode(self) -> bytes:
        fixed = _SS_RESP.pack(
            self.STRUCTURE_SIZE,
            self.session_flags,
            fixed_end(self.STRUCTURE_SIZE),
            len(self.security_buffer),
        )
        return with_buffer(fixed, self.security_buffer)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "SESSION_SETUP response")
        _, flags, off, length = _SS_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        token = variable_field(
            message, off, length, fixed_end(cls.STRUCTURE_SIZE), "SESSION_SETUP SecurityBuffer"
        )
        return cls(token, flags)


# --- TREE_CONNECT (2.2.9, 2.2.10) ------------------------------------------------------------------

_TC_REQ = struct.Struct("<HHHH")
_TC_EXT = struct.Struct("<IH10s")  # 2.2.9.1 TreeConnectContextOffset, TreeConnectContextCount, Reserved
_TC_CONTEXT = struct.Struct("<HHI")  # 2.2.9.2 ContextType, DataLength, Reserved
_TC_RESP = struct.Struct("<HBBIII")


@dataclass(frozen=True, slots=True)
class TreeConnectContext:
    """MS-SMB2 2.2.9.2 SMB2_TREE_CONNECT_CONTEXT, kept as type and data (parsed past, never acted on)."""

    context_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TreeConnectRequest:
    """MS-SMB2 2.2.9 SMB2 TREE_CONNECT Request. ``path`` is "\\\\server\\share".

    With SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT in ``flags`` (3.1.1 only) the Buffer opens with the
    2.2.9.1 extension; its contexts are listed in ``tree_connect_contexts``. PathOffset/PathLength
    always locate the path (3.2.4.2.4). TreeConnectContextOffset counts from the start of the
    TREE_CONNECT request body.
    """

    path: str
    flags: int = 0
    tree_connect_contexts: tuple[TreeConnectContext, ...] = ()
    COMMAND: ClassVar[int] = Command.TREE_CONNECT
    STRUCTURE_SIZE: ClassVar[int] = 9

    @property
    def extension_present(self) -> bool:
        return bool(self.flags & TreeConnectFlags.EXTENSION_PRESENT)

    def encode(self) -> bytes:
        path = self.path.encode("utf-16-le")
        buf_start = fixed_end(self.STRUCTURE_SIZE)
        if not self.extension_present:
            return with_buffer(_TC_REQ.pack(self.STRUCTURE_SIZE, self.flags, buf_start, len(path)), path)
        path_offset = buf_start + _TC_EXT.size
        contexts = bytearray()
        for i, ctx in enumerate(self.tree_connect_contexts):
            if i:
                contexts += pad8(len(contexts))
            contexts += _TC_CONTEXT.pack(ctx.context_type, len(ctx.data), 0) + ctx.data
        ctx_start = align8(path_offset + len(path))
        ctx_offset = ctx_start - SMB2_HEADER_SIZE if contexts else 0
        ext = _TC_EXT.pack(ctx_offset, len(self.tree_connect_contexts), b"\x00" * 10)
        tail = pad8(path_offset + len(path)) + bytes(contexts) if contexts else b""
        return _TC_REQ.pack(self.STRUCTURE_SIZE, self.flags, path_offset, len(path)) + ext + path + tail

    @classmethod
    def decode(cls, message: Buffer, *, extension_allowed: bool = True) -> Self:
        """``extension_allowed``: False unless the connection's dialect is 3.1.1, where Flags is reserved
        and MUST be ignored (2.2.9)."""
        check_structure_size(message, cls.STRUCTURE_SIZE, "TREE_CONNECT request")
        _, flags, off, length = _TC_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        floor = fixed_end(cls.STRUCTURE_SIZE)
        path = decode_utf16(
            variable_field(message, off, length, floor, "TREE_CONNECT Path"), "TREE_CONNECT Path", off
        )
        contexts: list[TreeConnectContext] = []
        if extension_allowed and flags & TreeConnectFlags.EXTENSION_PRESENT:
            ctx_offset, count, _ = unpack_from(_TC_EXT, message, floor, "TREE_CONNECT request extension")
            pos = start = SMB2_HEADER_SIZE + ctx_offset
            if count and start < floor + _TC_EXT.size:
                raise Smb2DecodeError("TreeConnectContextOffset points into the fixed part", start)
            for i in range(count):
                if i:
                    pos = start + align8(pos - start)
                ctype, dlen, _ = unpack_from(_TC_CONTEXT, message, pos, f"tree connect context {i}")
                contexts.append(
                    TreeConnectContext(ctype, take(message, pos + 8, dlen, f"tree connect context {i}"))
                )
                pos += 8 + dlen
        return cls(path, flags, tuple(contexts))


@dataclass(frozen=True, slots=True)
class TreeConnectResponse:
    """MS-SMB2 2.2.10 SMB2 TREE_CONNECT Response."""

    share_type: int
    share_flags: int = 0
    capabilities: int = 0
    maximal_access: int = 0
    COMMAND: ClassVar[int] = Command.TREE_CONNECT
    STRUCTURE_SIZE: ClassVar[int] = 16

    def encode(self) -> bytes:
        return _TC_RESP.pack(
            self.STRUCTURE_SIZE, self.share_type, 0, self.share_flags, self.capabilities, self.maximal_access
        )

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "TREE_CONNECT response")
        _, share_type, _, flags, caps, access = _TC_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(share_type, flags, caps, access)
