"""The SMB2 packet header (MS-SMB2 2.2.1) and the TRANSFORM_HEADER of encrypted messages (2.2.41).

A header is 64 bytes at the start of every SMB2 message; offsets in message bodies count from its first
byte. The signature sits at a fixed place, so a message can be signed in place::

    msg = bytearray(header.encode() + body.encode())
    msg[SIGNATURE_OFFSET:SIGNATURE_OFFSET + SIGNATURE_SIZE] = signature

(``netsession.wire.smb2.crypto.sign_message`` does exactly that.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from .codec import SMB2_HEADER_SIZE, Buffer, Smb2DecodeError, take, unpack_from
from .constants import SMB2_PROTOCOL_ID, SMB2_TRANSFORM_PROTOCOL_ID, HeaderFlags, NtStatus, TransformFlags

# Byte positions inside the 64-byte header (MS-SMB2 2.2.1.2).
COMMAND_OFFSET = 12
FLAGS_OFFSET = 16
NEXT_COMMAND_OFFSET = 20
MESSAGE_ID_OFFSET = 24
SESSION_ID_OFFSET = 40
SIGNATURE_OFFSET = 48
SIGNATURE_SIZE = 16

_SYNC = struct.Struct("<4sHHIHHIIQIIQ16s")
_ASYNC = struct.Struct("<4sHHIHHIIQQQ16s")
assert _SYNC.size == _ASYNC.size == SMB2_HEADER_SIZE

_ZERO_SIGNATURE = b"\x00" * SIGNATURE_SIZE
# The flags as plain ints: IntFlag arithmetic costs a few microseconds per operation, on every message.
_SERVER_TO_REDIR = int(HeaderFlags.SERVER_TO_REDIR)
_ASYNC_COMMAND = int(HeaderFlags.ASYNC_COMMAND)
_RELATED_OPERATIONS = int(HeaderFlags.RELATED_OPERATIONS)
_SIGNED = int(HeaderFlags.SIGNED)


@dataclass(slots=True)
class Smb2Header:
    """MS-SMB2 2.2.1.1 (ASYNC) / 2.2.1.2 (SYNC) packet header.

    ``status`` is the 4 bytes at offset 8: the NTSTATUS of a response; in an SMB 3.x request it holds
    ChannelSequence (low 16 bits) and Reserved. ``credits`` is CreditRequest in a request and
    CreditResponse in a response. ``tree_id`` and ``process_id`` (the SYNC "Reserved" field, which
    Windows echoes, MS-SMB2 <4>) exist in the SYNC form, ``async_id`` in the ASYNC form; which form is
    written follows ``flags & HeaderFlags.ASYNC_COMMAND``.
    """

    command: int
    status: int = NtStatus.STATUS_SUCCESS
    credit_charge: int = 0
    credits: int = 0
    flags: int = 0
    next_command: int = 0
    message_id: int = 0
    process_id: int = 0
    tree_id: int = 0
    async_id: int = 0
    session_id: int = 0
    signature: bytes = field(default=_ZERO_SIGNATURE)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & _SERVER_TO_REDIR)

    @property
    def is_async(self) -> bool:
        return bool(self.flags & _ASYNC_COMMAND)

    @property
    def is_related(self) -> bool:
        return bool(self.flags & _RELATED_OPERATIONS)

    @property
    def is_signed(self) -> bool:
        return bool(self.flags & _SIGNED)

    @property
    def channel_sequence(self) -> int:
        """SMB 3.x requests: ChannelSequence, the low half of the Status field (MS-SMB2 2.2.1.2)."""
        return self.status & 0xFFFF

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        """Decode the header at the start of ``data`` (which may hold the whole message)."""
        if len(data) < SMB2_HEADER_SIZE:
            raise Smb2DecodeError(f"SMB2 header: {len(data)} bytes, needs {SMB2_HEADER_SIZE}", 0)
        if bytes(data[:4]) != SMB2_PROTOCOL_ID:
            raise Smb2DecodeError(f"SMB2 header: ProtocolId {bytes(data[:4])!r} is not 0xFE 'SMB'", 0)
        (flags,) = unpack_from(_U32, data, FLAGS_OFFSET, "SMB2 header Flags")
        if flags & _ASYNC_COMMAND:
            _, size, charge, status, command, credits, flags, nxt, mid, async_id, sid, sig = (
                _ASYNC.unpack_from(data)
            )
            process_id = tree_id = 0
        else:
            (_, size, charge, status, command, credits, flags, nxt, mid, process_id, tree_id, sid, sig) = (
                _SYNC.unpack_from(data)
            )
            async_id = 0
        if size != SMB2_HEADER_SIZE:
            raise Smb2DecodeError(f"SMB2 header: StructureSize {size}, expected 64", 4)
        return cls(
            command=command,
            status=status,
            credit_charge=charge,
            credits=credits,
            flags=flags,
            next_command=nxt,
            message_id=mid,
            process_id=process_id,
            tree_id=tree_id,
            async_id=async_id,
            session_id=sid,
            signature=sig,
        )

    def encode(self) -> bytes:
        if len(self.signature) != SIGNATURE_SIZE:
            raise ValueError(f"signature must be {SIGNATURE_SIZE} bytes")
        head = (
            SMB2_PROTOCOL_ID,
            SMB2_HEADER_SIZE,
            self.credit_charge,
            self.status,
            self.command,
            self.credits,
        )
        tail = (self.session_id, self.signature)
        if self.flags & _ASYNC_COMMAND:
            return _ASYNC.pack(*head, self.flags, self.next_command, self.message_id, self.async_id, *tail)
        return _SYNC.pack(
            *head, self.flags, self.next_command, self.message_id, self.process_id, self.tree_id, *tail
        )

    def response(
        self,
        *,
        status: int = NtStatus.STATUS_SUCCESS,
        credits: int = 1,
        flags: int = 0,
        session_id: int | None = None,
        tree_id: int | None = None,
        async_id: int | None = None,
    ) -> Smb2Header:
        """The header of the response to this request (MS-SMB2 3.3.4.1, 3.3.4.2).

        Copies Command, MessageId, CreditCharge, SessionId, TreeId and the SYNC Reserved field; sets
        SERVER_TO_REDIR, keeps RELATED_OPERATIONS (3.3.5.2.7.2), adds ``flags`` (e.g. SIGNED is added by
        the signer). ``async_id`` makes it an ASYNC header (interim STATUS_PENDING and the final answer
        to a request that went async). NextCommand and the signature start at zero.
        """
        out_flags = HeaderFlags.SERVER_TO_REDIR | (self.flags & HeaderFlags.RELATED_OPERATIONS) | flags
        if async_id is not None:
            out_flags |= HeaderFlags.ASYNC_COMMAND
        return Smb2Header(
            command=self.command,
            status=status,
            credit_charge=self.credit_charge,
            credits=credits,
            flags=out_flags,
            message_id=self.message_id,
            process_id=self.process_id if async_id is None else 0,
            tree_id=(self.tree_id if tree_id is None else tree_id) if async_id is None else 0,
            async_id=async_id or 0,
            session_id=self.session_id if session_id is None else session_id,
        )


# MS-SMB2 2.2.41: ProtocolId, Signature, Nonce, OriginalMessageSize, Reserved, Flags, SessionId.
_TRANSFORM = struct.Struct("<4s16s16sIHHQ")
TRANSFORM_HEADER_SIZE = _TRANSFORM.size  # 52
# 3.1.4.3: the authenticated data is the transform header from Nonce onward (ProtocolId and Signature out).
TRANSFORM_AAD_OFFSET = 20


@dataclass(slots=True, frozen=True)
class TransformHeader:
    """MS-SMB2 2.2.41 SMB2 TRANSFORM_HEADER: precedes the ciphertext of an encrypted message.

    ``nonce`` is the full 16-byte field: an 11-byte AES-CCM nonce or a 12-byte AES-GCM nonce, then
    zero padding. ``flags`` is Flags (3.1.1) / EncryptionAlgorithm (3.0, 3.0.2); both use 0x0001.
    """

    signature: bytes
    nonce: bytes
    original_message_size: int
    session_id: int
    flags: int = TransformFlags.ENCRYPTED
    reserved: int = 0

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        """The transform header at the start of ``data``; the ciphertext follows it."""
        if len(data) < TRANSFORM_HEADER_SIZE:
            raise Smb2DecodeError(f"TRANSFORM_HEADER: {len(data)} bytes, needs {TRANSFORM_HEADER_SIZE}", 0)
        proto, sig, nonce, size, reserved, flags, sid = _TRANSFORM.unpack_from(data)
        if proto != SMB2_TRANSFORM_PROTOCOL_ID:
            raise Smb2DecodeError(f"TRANSFORM_HEADER: ProtocolId {proto!r} is not 0xFD 'SMB'", 0)
        return cls(
            signature=sig,
            nonce=nonce,
            original_message_size=size,
            session_id=sid,
            flags=flags,
            reserved=reserved,
        )

    def encode(self) -> bytes:
        if len(self.signature) != 16 or len(self.nonce) != 16:
            raise ValueError("TRANSFORM_HEADER signature and nonce are 16 bytes each")
        return _TRANSFORM.pack(
            SMB2_TRANSFORM_PROTOCOL_ID,
            self.signature,
            self.nonce,
            self.original_message_size,
            self.reserved,
            self.flags,
            self.session_id,
        )

    def associated_data(self) -> bytes:
        """The AEAD additional data: Nonce, OriginalMessageSize, Reserved, Flags, SessionId (3.1.4.3)."""
        return self.encode()[TRANSFORM_AAD_OFFSET:]


def protocol_id(data: Buffer) -> bytes:
    """The first 4 bytes of a message (which of SMB1, SMB2, TRANSFORM, COMPRESSION it is)."""
    return take(data, 0, 4, "ProtocolId")


_U32 = struct.Struct("<I")
