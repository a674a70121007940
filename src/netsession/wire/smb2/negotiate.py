"""NEGOTIATE: the SMB2 request and response with their negotiate contexts (MS-SMB2 2.2.3, 2.2.4), and
the SMB1 multi-protocol SMB_COM_NEGOTIATE a client may open with (MS-SMB2 3.3.5.3).

Negotiate contexts the server acts on are typed (PREAUTH_INTEGRITY, ENCRYPTION and SIGNING
capabilities, strictly decoded); the NETNAME context is decoded leniently (the server ignores it,
3.3.5.4); every other context -- compression, transport, RDMA, reserved, unknown -- is kept as a
:class:`RawNegotiateContext` (type and data bytes) and parsed past.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import ClassVar, Self, TypeAlias

from .codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    Smb2DecodeError,
    align8,
    check_structure_size,
    pad8,
    take,
    unpack_from,
    variable_field,
)
from .constants import SMB1_PROTOCOL_ID, Command, Dialect, NegotiateContextType


@dataclass(frozen=True, slots=True)
class PreauthIntegrityCapabilities:
    """MS-SMB2 2.2.3.1.1 SMB2_PREAUTH_INTEGRITY_CAPABILITIES."""

    hash_algorithms: tuple[int, ...]
    salt: bytes = b""
    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES

    def encode_data(self) -> bytes:
        n = len(self.hash_algorithms)
        return struct.pack(f"<HH{n}H", n, len(self.salt), *self.hash_algorithms) + self.salt

    @classmethod
    def decode_data(cls, data: bytes, offset: int) -> Self:
        count, salt_len = unpack_from(_HH, data, 0, "PREAUTH_INTEGRITY_CAPABILITIES")
        algs = _u16_array(data, 4, count, "HashAlgorithms", offset)
        salt = take(data, 4 + 2 * count, salt_len, "PREAUTH_INTEGRITY_CAPABILITIES Salt")
        return cls(algs, salt)


@dataclass(frozen=True, slots=True)
class EncryptionCapabilities:
    """MS-SMB2 2.2.3.1.2 SMB2_ENCRYPTION_CAPABILITIES (most preferred cipher first)."""

    ciphers: tuple[int, ...]
    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.ENCRYPTION_CAPABILITIES

    def encode_data(self) -> bytes:
        return struct.pack(f"<H{len(self.ciphers)}H", len(self.ciphers), *self.ciphers)

    @classmethod
    def decode_data(cls, data: bytes, offset: int) -> Self:
        (count,) = unpack_from(_H, data, 0, "ENCRYPTION_CAPABILITIES")
        return cls(_u16_array(data, 2, count, "Ciphers", offset))


@dataclass(frozen=True, slots=True)
class SigningCapabilities:
    """MS-SMB2 2.2.3.1.7 SMB2_SIGNING_CAPABILITIES (most preferred algorithm first)."""

    signing_algorithms: tuple[int, ...]
    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SIGNING_CAPABILITIES

    def encode_data(self) -> bytes:
        n = len(self.signing_algorithms)
        return struct.pack(f"<H{n}H", n, *self.signing_algorithms)

    @classmethod
    def decode_data(cls, data: bytes, offset: int) -> Self:
        (count,) = unpack_from(_H, data, 0, "SIGNING_CAPABILITIES")
        return cls(_u16_array(data, 2, count, "SigningAlgorithms", offset))


@dataclass(frozen=True, slots=True)
class NetnameNegotiateContextId:
    """MS-SMB2 2.2.3.1.4: the server name the client asked for. Ignored by servers; decoded leniently."""

    net_name: str
    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.NETNAME_NEGOTIATE_CONTEXT_ID

    def encode_data(self) -> bytes:
        return self.net_name.encode("utf-16-le")

    @classmethod
    def decode_data(cls, data: bytes, offset: int) -> Self:
        return cls(data.decode("utf-16-le", errors="replace"))


@dataclass(frozen=True, slots=True)
class RawNegotiateContext:
    """A negotiate context kept as bytes: compression (2.2.3.1.3), transport (2.2.3.1.5), RDMA
    (2.2.3.1.6), SMB2_CONTEXTTYPE_RESERVED and any unknown type."""

    context_type: int
    data: bytes

    def encode_data(self) -> bytes:
        return self.data


NegotiateContext: TypeAlias = (
    PreauthIntegrityCapabilities
    | EncryptionCapabilities
    | SigningCapabilities
    | NetnameNegotiateContextId
    | RawNegotiateContext
)

_TYPED: dict[
    int,
    type[
        PreauthIntegrityCapabilities
        | EncryptionCapabilities
        | SigningCapabilities
        | NetnameNegotiateContextId
    ],
] = {
    c.CONTEXT_TYPE: c
    for c in (
        PreauthIntegrityCapabilities,
        EncryptionCapabilities,
        SigningCapabilities,
        NetnameNegotiateContextId,
    )
}


def context_type(context: NegotiateContext) -> int:
    return context.context_type if isinstance(context, RawNegotiateContext) else context.CONTEXT_TYPE


def encode_negotiate_contexts(contexts: tuple[NegotiateContext, ...]) -> bytes:
    """MS-SMB2 2.2.3.1: each context is ContextType, DataLength, Reserved, Data; every context after the
    first starts 8-byte aligned, so all but the last are padded (the last is not, as Windows sends it)."""
    out = bytearray()
    for i, ctx in enumerate(contexts):
        if i:
            out += pad8(len(out))
        data = ctx.encode_data()
        out += _CONTEXT_HEAD.pack(context_type(ctx), len(data), 0) + data
    return bytes(out)


def decode_negotiate_contexts(
    message: Buffer, offset: int, count: int, floor: int
) -> tuple[NegotiateContext, ...]:
    """``count`` contexts starting at ``offset`` (from the SMB2 header) of ``message``.

    Alignment is counted from the first context, which lies at the 8-aligned offset every conforming
    sender uses; a sender that misplaces the first one (smbprotocol does with an even dialect count)
    is still read consistently, as Samba and smbprotocol read it.
    """
    if count == 0:
        return ()
    if offset < floor:
        raise Smb2DecodeError(f"NegotiateContextOffset {offset} points before the end of {floor}", offset)
    contexts: list[NegotiateContext] = []
    pos = offset
    for i in range(count):
        if i:
            pos = offset + align8(pos - offset)
        ctype, length, _ = unpack_from(_CONTEXT_HEAD, message, pos, f"negotiate context {i}")
        data = take(message, pos + 8, length, f"negotiate context {i} Data")
        typed = _TYPED.get(ctype)
        contexts.append(typed.decode_data(data, pos + 8) if typed else RawNegotiateContext(ctype, data))
        pos += 8 + length
    return tuple(contexts)


def _u16_array(data: bytes, at: int, count: int, what: str, offset: int) -> tuple[int, ...]:
    if at + 2 * count > len(data):
        raise Smb2DecodeError(
            f"{what}: {count} entries need {2 * count} bytes, {len(data) - at} present", offset
        )
    return struct.unpack_from(f"<{count}H", data, at)


NIL_GUID = uuid.UUID(int=0)

# MS-SMB2 2.2.3: StructureSize, DialectCount, SecurityMode, Reserved, Capabilities, ClientGuid, then
# NegotiateContextOffset/NegotiateContextCount/Reserved2 or ClientStartTime (8 bytes).
_NEG_REQ = struct.Struct("<HHHHI16s8s")
_NEG_REQ_CTX = struct.Struct("<IHH")
NEGOTIATE_REQUEST_DIALECTS_OFFSET = SMB2_HEADER_SIZE + 36


@dataclass(frozen=True, slots=True)
class NegotiateRequest:
    """MS-SMB2 2.2.3 SMB2 NEGOTIATE Request.

    ``negotiate_contexts`` are carried only when ``dialects`` holds 0x0311; otherwise those 8 bytes
    are ``client_start_time`` (MUST be 0 and ignored).
    """

    dialects: tuple[int, ...]
    security_mode: int = 0
    capabilities: int = 0
    client_guid: uuid.UUID = NIL_GUID
    negotiate_contexts: tuple[NegotiateContext, ...] = ()
    client_start_time: int = 0
    COMMAND: ClassVar[int] = Command.NEGOTIATE
    STRUCTURE_SIZE: ClassVar[int] = 36

    def contexts_of_type(self, ctype: int) -> list[NegotiateContext]:
        return [c for c in self.negotiate_contexts if context_type(c) == ctype]

    def encode(self) -> bytes:
        dialects = struct.pack(f"<{len(self.dialects)}H", *self.dialects)
        tail = b""
        if Dialect.SMB_3_1_1 in self.dialects:
            ctx_offset = align8(NEGOTIATE_REQUEST_DIALECTS_OFFSET + len(dialects))
            ctx_bytes = encode_negotiate_contexts(self.negotiate_contexts)
            third = _NEG_REQ_CTX.pack(ctx_offset if ctx_bytes else 0, len(self.negotiate_contexts), 0)
            if ctx_bytes:
                tail = pad8(NEGOTIATE_REQUEST_DIALECTS_OFFSET + len(dialects)) + ctx_bytes
        else:
            third = struct.pack("<Q", self.client_start_time)
        fixed = _NEG_REQ.pack(
            self.STRUCTURE_SIZE,
            len(self.dialects),
            self.security_mode,
            0,
            self.capabilities,
            self.client_guid.bytes_le,
            third,
        )
        return fixed + dialects + tail

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "NEGOTIATE request")
        _, count, mode, _, caps, guid, third = _NEG_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        dialects_raw = take(
            message, NEGOTIATE_REQUEST_DIALECTS_OFFSET, 2 * count, "NEGOTIATE request Dialects"
        )
        dialects = struct.unpack(f"<{count}H", dialects_raw)
        contexts: tuple[NegotiateContext, ...] = ()
        start_time = 0
        if Dialect.SMB_3_1_1 in dialects:
            ctx_offset, ctx_count, _ = _NEG_REQ_CTX.unpack(third)
            floor = NEGOTIATE_REQUEST_DIALECTS_OFFSET + 2 * count
            contexts = decode_negotiate_contexts(message, ctx_offset, ctx_count, floor)
        else:
            (start_time,) = struct.unpack("<Q", third)
        return cls(dialects, mode, caps, uuid.UUID(bytes_le=guid), contexts, start_time)


# MS-SMB2 2.2.4 fixed part: StructureSize .. NegotiateContextOffset (64 bytes).
_NEG_RESP = struct.Struct("<HHHH16sIIIIQQHHI")
NEGOTIATE_RESPONSE_BUFFER_OFFSET = SMB2_HEADER_SIZE + _NEG_RESP.size  # 128


@dataclass(frozen=True, slots=True)
class NegotiateResponse:
    """MS-SMB2 2.2.4 SMB2 NEGOTIATE Response.

    ``system_time`` and ``server_start_time`` are FILETIMEs (100 ns since 1601, MS-DTYP 2.3.3).
    ``negotiate_contexts`` are written and read only for dialect 0x0311.
    """

    dialect_revision: int
    security_mode: int = 0
    server_guid: uuid.UUID = NIL_GUID
    capabilities: int = 0
    max_transact_size: int = 65536
    max_read_size: int = 65536
    max_write_size: int = 65536
    system_time: int = 0
    server_start_time: int = 0
    security_buffer: bytes = b""
    negotiate_contexts: tuple[NegotiateContext, ...] = ()
    COMMAND: ClassVar[int] = Command.NEGOTIATE
    STRUCTURE_SIZE: ClassVar[int] = 65

    def contexts_of_type(self, ctype: int) -> list[NegotiateContext]:
        return [c for c in self.negotiate_contexts if context_type(c) == ctype]

    def encode(self) -> bytes:
        ctx_bytes = b""
        ctx_offset = 0
        count = 0
        if self.dialect_revision == Dialect.SMB_3_1_1 and self.negotiate_contexts:
            ctx_offset = align8(NEGOTIATE_RESPONSE_BUFFER_OFFSET + len(self.security_buffer))
            ctx_bytes = pad8(NEGOTIATE_RESPONSE_BUFFER_OFFSET + len(self.security_buffer)) + (
                encode_negotiate_contexts(self.negotiate_contexts)
            )
            count = len(self.negotiate_contexts)
        fixed = _NEG_RESP.pack(
            self.STRUCTURE_SIZE,
            self.security_mode,
            self.dialect_revision,
            count,
            self.server_guid.bytes_le,
            self.capabilities,
            self.max_transact_size,
            self.max_read_size,
            self.max_write_size,
            self.system_time,
            self.server_start_time,
            NEGOTIATE_RESPONSE_BUFFER_OFFSET,
            len(self.security_buffer),
            ctx_offset,
        )
        body = fixed + self.security_buffer + ctx_bytes
        return body if len(body) > _NEG_RESP.size else body + b"\x00"

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "NEGOTIATE response")
        (
            _,
            mode,
            dialect,
            ctx_count,
            guid,
            caps,
            max_t,
            max_r,
            max_w,
            systime,
            start,
            buf_off,
            buf_len,
            ctx_off,
        ) = _NEG_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        buf = variable_field(message, buf_off, buf_len, NEGOTIATE_RESPONSE_BUFFER_OFFSET, "SecurityBuffer")
        contexts: tuple[NegotiateContext, ...] = ()
        if dialect == Dialect.SMB_3_1_1:
            contexts = decode_negotiate_contexts(
                message, ctx_off, ctx_count, NEGOTIATE_RESPONSE_BUFFER_OFFSET
            )
        return cls(
            dialect, mode, uuid.UUID(bytes_le=guid), caps, max_t, max_r, max_w, systime, start, buf, contexts
        )


# MS-CIFS 2.2.3.1 SMB header: Protocol, Command, Status, Flags, Flags2, PIDHigh, SecurityFeatures,
# Reserved, TID, PIDLow, UID, MID.
_SMB1_HEADER = struct.Struct("<4sBIBHH8sHHHHH")
SMB1_HEADER_SIZE = _SMB1_HEADER.size  # 32
SMB_COM_NEGOTIATE = 0x72
SMB1_DIALECT_BUFFER_FORMAT = 0x02  # MS-CIFS 2.2.4.52.1: each dialect string is prefixed by 0x02
# MS-SMB2 3.3.5.3.1 / 3.3.5.3.2: the dialect strings an SMB2 server looks for.
SMB1_DIALECT_SMB2_002 = "SMB 2.002"
SMB1_DIALECT_SMB2_WILDCARD = "SMB 2.???"


@dataclass(frozen=True, slots=True)
class Smb1NegotiateRequest:
    """An SMB1 SMB_COM_NEGOTIATE request (MS-CIFS 2.2.4.52.1), as a multi-protocol client opens with.

    MS-SMB2 3.3.5.3: if "SMB 2.???" is offered the server answers with an SMB2 NEGOTIATE response for
    dialect 0x02FF; else if "SMB 2.002" is offered, with dialect 0x0202.
    """

    dialects: tuple[str, ...]
    flags: int = 0
    flags2: int = 0
    pid: int = 0
    tid: int = 0
    uid: int = 0
    mid: int = 0

    @property
    def offers_smb2_wildcard(self) -> bool:
        return SMB1_DIALECT_SMB2_WILDCARD in self.dialects

    @property
    def offers_smb2_002(self) -> bool:
        return SMB1_DIALECT_SMB2_002 in self.dialects

    def encode(self) -> bytes:
        strings = b"".join(
            bytes([SMB1_DIALECT_BUFFER_FORMAT]) + d.encode("latin-1") + b"\x00" for d in self.dialects
        )
        header = _SMB1_HEADER.pack(
            SMB1_PROTOCOL_ID,
            SMB_COM_NEGOTIATE,
            0,
            self.flags,
            self.flags2,
            self.pid >> 16,
            b"\x00" * 8,
            0,
            self.tid,
            self.pid & 0xFFFF,
            self.uid,
            self.mid,
        )
        return header + struct.pack("<BH", 0, len(strings)) + strings

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        proto, command, _, flags, flags2, pid_high, _, _, tid, pid_low, uid, mid = unpack_from(
            _SMB1_HEADER, message, 0, "SMB1 header"
        )
        if proto != SMB1_PROTOCOL_ID:
            raise Smb2DecodeError(f"SMB1 header: Protocol {proto!r} is not 0xFF 'SMB'", 0)
        if command != SMB_COM_NEGOTIATE:
            raise Smb2DecodeError(f"SMB1 command 0x{command:02X} is not SMB_COM_NEGOTIATE", 4)
        (word_count,) = unpack_from(_B, message, SMB1_HEADER_SIZE, "SMB1 WordCount")
        if word_count != 0:
            raise Smb2DecodeError(f"SMB_COM_NEGOTIATE: WordCount {word_count}, expected 0", SMB1_HEADER_SIZE)
        (byte_count,) = unpack_from(_H, message, SMB1_HEADER_SIZE + 1, "SMB1 ByteCount")
        raw = take(message, SMB1_HEADER_SIZE + 3, byte_count, "SMB_COM_NEGOTIATE dialects")
        dialects: list[str] = []
        pos = 0
        while pos < len(raw):
            if raw[pos] != SMB1_DIALECT_BUFFER_FORMAT:
                raise Smb2DecodeError(
                    "SMB_COM_NEGOTIATE: dialect without BufferFormat 0x02", SMB1_HEADER_SIZE + 3 + pos
                )
            end = raw.find(b"\x00", pos + 1)
            if end < 0:
                raise Smb2DecodeError(
                    "SMB_COM_NEGOTIATE: unterminated dialect string", SMB1_HEADER_SIZE + 3 + pos
                )
            dialects.append(raw[pos + 1 : end].decode("latin-1"))
            pos = end + 1
        return cls(tuple(dialects), flags, flags2, (pid_high << 16) | pid_low, tid, uid, mid)


_B = struct.Struct("<B")
_H = struct.Struct("<H")
_HH = struct.Struct("<HH")
_CONTEXT_HEAD = struct.Struct("<HHI")
