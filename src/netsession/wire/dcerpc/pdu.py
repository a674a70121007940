"""Connection-oriented DCE/RPC PDUs: constants, `SyntaxId`, encoders and a strict decoder.

The layouts are C706 §12.6 (common header §12.6.1, PDUs §12.6.4) with the MS-RPCE §2.2.2
extensions. Only the little-endian, ASCII, IEEE data representation is produced or decoded
(drep ``10 00 00 00``); `read_header` still reads a big-endian header so that the association can
frame the PDU and answer it with the protocol error the spec asks for.

The auth verifier (sec_trailer + auth_value, MS-RPCE §2.2.2.11) is parsed past, not interpreted:
`AuthVerifier` keeps its fields and `decode_pdu` strips it (and its padding) from the stub.

>>> pdu = decode_pdu(Request(call_id=2, context_id=0, opnum=12, stub=b"abc").encode())
>>> (pdu.call_id, pdu.opnum, pdu.stub)
(2, 12, b'abc')
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Final

from netsession.errors import NetApiStatus

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class DceRpcError(Exception):
    """Base class of every error raised by the DCE/RPC layer."""


class LocalProtocolError(DceRpcError):
    """The caller misused the API (e.g. a request before the bind was accepted)."""


class RemoteProtocolError(DceRpcError):
    """The peer broke the protocol.

    Raised by ``receive_data`` *after* queueing whatever the spec says to answer (a fault or a
    bind_nak): the driver sends ``data_to_send()`` and then closes the connection.
    ``events`` holds the events decoded from the same input before the error.
    """

    events: tuple[object, ...] = ()


class DecodeError(RemoteProtocolError):
    """A PDU is truncated or inconsistent: ``what`` was wrong at byte ``offset`` of the PDU."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} (at offset {offset})")
        self.what = what
        self.offset = offset


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

RPC_VERS: Final = 5  # C706 §12.6.1; MS-RPCE §3.3.1.5.1: only 5.0 is recognised
RPC_VERS_MINOR: Final = 0
# Integers little-endian, characters ASCII, floats IEEE (C706 ch. 14, data representation label).
DREP_LITTLE_ENDIAN: Final = b"\x10\x00\x00\x00"

COMMON_HEADER_LENGTH: Final = 16  # C706 §12.6.1
REQUEST_HEADER_LENGTH: Final = 24  # + 16 when PFC_OBJECT_UUID (C706 §12.6.4.9)
RESPONSE_HEADER_LENGTH: Final = 24  # C706 §12.6.4.10
FAULT_HEADER_LENGTH: Final = 32  # C706 §12.6.4.7 (status and reserved2 included)
SEC_TRAILER_LENGTH: Final = 8  # MS-RPCE §2.2.2.11
CONTEXT_RESULT_LENGTH: Final = 24  # p_result_t: result, reason, transfer_syntax
SYNTAX_ID_LENGTH: Final = 20  # p_syntax_id_t: if_uuid + if_version

# C706 chapter 12: every implementation must accept fragments of MustRecvFragSize octets.
MUST_RECV_FRAG_SIZE: Final = 1432
MAX_FRAG_LENGTH: Final = 0xFFFF  # frag_length is an unsigned short
# Stub bytes per fragment are kept a multiple of 8, NDR's largest alignment, so that every
# fragment but the last ends on an 8-octet boundary of the stub.
FRAGMENT_STUB_ALIGNMENT: Final = 8


class PType(IntEnum):
    """PTYPE values (C706 chapter 12, table "RPC Protocol Data Units"; auth3 is MS-RPCE §2.2.2.10)."""

    REQUEST = 0
    PING = 1
    RESPONSE = 2
    FAULT = 3
    WORKING = 4
    NOCALL = 5
    REJECT = 6
    ACK = 7
    CL_CANCEL = 8
    FACK = 9
    CANCEL_ACK = 10
    BIND = 11
    BIND_ACK = 12
    BIND_NAK = 13
    ALTER_CONTEXT = 14
    ALTER_CONTEXT_RESP = 15
    AUTH3 = 16
    SHUTDOWN = 17
    CO_CANCEL = 18
    ORPHANED = 19


class PfcFlags(IntFlag):
    """pfc_flags (C706 §12.6.3.1); 0x04 is PFC_SUPPORT_HEADER_SIGN on bind, bind_ack,
    alter_context, alter_context_resp and auth3, PFC_PENDING_CANCEL elsewhere (MS-RPCE §2.2.2.3)."""

    FIRST_FRAG = 0x01
    LAST_FRAG = 0x02
    PENDING_CANCEL = 0x04
    SUPPORT_HEADER_SIGN = 0x04
    RESERVED_1 = 0x08
    CONC_MPX = 0x10
    DID_NOT_EXECUTE = 0x20
    MAYBE = 0x40
    OBJECT_UUID = 0x80


FIRST_AND_LAST: Final = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG


class ContResult(IntEnum):
    """p_cont_def_result_t (C706 §12.6.3.1, negotiate_ack from MS-RPCE §2.2.2.4)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    PROVIDER_REJECTION = 2
    NEGOTIATE_ACK = 3


class ProviderReason(IntEnum):
    """p_provider_reason_t (C706 §12.6.3.1)."""

    REASON_NOT_SPECIFIED = 0
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
    PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
    LOCAL_LIMIT_EXCEEDED = 3


class RejectReason(IntEnum):
    """bind_nak provider_reject_reason (C706 §12.6.3.1, MS-RPCE §2.2.2.5)."""

    REASON_NOT_SPECIFIED = 0
    TEMPORARY_CONGESTION = 1
    LOCAL_LIMIT_EXCEEDED = 2
    CALLED_PADDR_UNKNOWN = 3
    PROTOCOL_VERSION_NOT_SUPPORTED = 4
    DEFAULT_CONTEXT_NOT_SUPPORTED = 5
    USER_DATA_NOT_READABLE = 6
    NO_PSAP_AVAILABLE = 7
    AUTHENTICATION_TYPE_NOT_RECOGNIZED = 8
    INVALID_CHECKSUM = 9


class BindTimeFeatures(IntFlag):
    """BindTimeFeatureNegotiationBitmask bits (MS-RPCE §2.2.2.14, §2.2.2.15)."""

    SECURITY_CONTEXT_MULTIPLEXING = 0x01
    KEEP_CONNECTION_ON_ORPHAN = 0x02


class AuthnType(IntEnum):
    """auth_type values of the sec_trailer (MS-RPCE §2.2.1.1.7)."""

    NONE = 0x00
    GSS_NEGOTIATE = 0x09
    WINNT = 0x0A
    GSS_SCHANNEL = 0x0E
    GSS_KERBEROS = 0x10
    NETLOGON = 0x44
    DEFAULT = 0xFF


class FaultStatus(IntEnum):
    """Fault PDU status values: C706 Appendix N.2 nca_s_* codes and the Win32 codes Windows uses."""

    RPC_S_ACCESS_DENIED = NetApiStatus.ERROR_ACCESS_DENIED  # MS-RPCE §3.3.3.5.4, §2.2.2.13
    RPC_S_NO_CALL_ACTIVE = 0x000006BD  # MS-ERREF §2.2
    NCA_S_FAULT_NDR = NetApiStatus.RPC_X_BAD_STUB_DATA  # 0x6F7, MS-RPCE §3.1.3.5.2
    NCA_S_FAULT_INT_DIV_BY_ZERO = 0x1C000001
    NCA_S_FAULT_ADDR_ERROR = 0x1C000002
    NCA_S_FAULT_INVALID_TAG = 0x1C000006
    NCA_S_FAULT_INVALID_BOUND = 0x1C000007
    NCA_S_RPC_VERSION_MISMATCH = 0x1C000008
    NCA_S_FAULT_CANCEL = 0x1C00000D
    NCA_S_FAULT_UNSPEC = 0x1C000012
    NCA_S_FAULT_CONTEXT_MISMATCH = 0x1C00001A
    NCA_S_FAULT_REMOTE_NO_MEMORY = 0x1C00001B
    NCA_S_INVALID_PRES_CONTEXT_ID = 0x1C00001C
    NCA_S_UNSUPPORTED_AUTHN_LEVEL = 0x1C00001D
    NCA_S_COMM_FAILURE = 0x1C010001
    NCA_S_OP_RNG_ERROR = 0x1C010002
    NCA_S_UNKNOWN_IF = 0x1C010003
    NCA_S_WRONG_BOOT_TIME = 0x1C010006
    NCA_S_YOU_CRASHED = 0x1C010009
    NCA_S_PROTO_ERROR = 0x1C01000B
    NCA_S_OUT_ARGS_TOO_BIG = 0x1C010013
    NCA_S_SERVER_TOO_BUSY = 0x1C010014
    NCA_S_UNSUPPORTED_TYPE = 0x1C010017


# MS-RPCE §3.3.3.5.1: a server MUST NOT send these in a fault; a client MAY treat them as a
# protocol error (§3.3.2.5.1).
FORBIDDEN_FAULT_STATUSES: Final = frozenset(
    {
        0x00000000,
        0x80000001,
        0x80000002,
        0x80000003,
        0xC0000005,
        0xC0000006,
        0xC000001D,
        0xC0000096,
        0xC00000AA,
        0xC00000FD,
        0xC0000194,
        0xC0000235,
        0xC0000409,
        0xC0000420,
    }
)


# --------------------------------------------------------------------------------------------
# Syntax identifiers
# --------------------------------------------------------------------------------------------

_SYNTAX = struct.Struct("<16sHH")


@dataclass(frozen=True, slots=True)
class SyntaxId:
    """p_syntax_id_t / RPC_SYNTAX_IDENTIFIER (MS-RPCE §2.2.2.7): a UUID and a version.

    On the wire: the UUID in its little-endian field layout, then ``if_version`` as one 32-bit
    integer whose low half is the major and high half the minor version.

    >>> NDR20
    SyntaxId('8a885d04-1ceb-11c9-9fe8-08002b104860', 2, 0)
    """

    uuid: uuid.UUID
    major: int
    minor: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.major <= 0xFFFF and 0 <= self.minor <= 0xFFFF):
            raise ValueError(f"syntax version {self.major}.{self.minor} out of range")

    @classmethod
    def parse(cls, text: str, major: int, minor: int = 0) -> SyntaxId:
        return cls(uuid.UUID(text), major, minor)

    def encode(self) -> bytes:
        return _SYNTAX.pack(self.uuid.bytes_le, self.major, self.minor)

    @classmethod
    def decode(cls, data: bytes | memoryview, offset: int = 0) -> SyntaxId:
        if len(data) - offset < SYNTAX_ID_LENGTH:
            raise DecodeError("truncated syntax identifier", offset)
        raw, major, minor = _SYNTAX.unpack_from(data, offset)
        return cls(uuid.UUID(bytes_le=raw), major, minor)

    def __repr__(self) -> str:
        return f"SyntaxId('{self.uuid}', {self.major}, {self.minor})"


NULL_SYNTAX: Final = SyntaxId(uuid.UUID(int=0), 0, 0)
# MS-RPCE §2.2.4.12
NDR20: Final = SyntaxId.parse("8a885d04-1ceb-11c9-9fe8-08002b104860", 2, 0)
# MS-RPCE §2.2.5.1
NDR64: Final = SyntaxId.parse("71710533-beba-4937-8319-b5dbef9ccc36", 1, 0)
# MS-RPCE §3.3.1.5.3: a transfer syntax whose if_uuid starts 6CB71C2C-9812-4540, version 1.0,
# carries the BindTimeFeatureNegotiationBitmask in the eight octets after that prefix.
BIND_TIME_FEATURE_PREFIX: Final = uuid.UUID("6cb71c2c-9812-4540-0000-000000000000").bytes_le[:8]
BIND_TIME_FEATURE_VERSION: Final = (1, 0)
_DEFINED_FEATURE_BITS: Final = (
    BindTimeFeatures.SECURITY_CONTEXT_MULTIPLEXING | BindTimeFeatures.KEEP_CONNECTION_ON_ORPHAN
)


def bind_time_feature_syntax(features: int) -> SyntaxId:
    """The transfer syntax a client proposes to offer bind time features (MS-RPCE §3.3.1.5.3)."""
    if not 0 <= features <= 0xFF:
        raise ValueError("only the first octet of the feature bitmask is defined")
    raw = BIND_TIME_FEATURE_PREFIX + bytes([features]) + bytes(7)
    return SyntaxId(uuid.UUID(bytes_le=raw), *BIND_TIME_FEATURE_VERSION)


def bind_time_features_offered(syntax: SyntaxId) -> BindTimeFeatures | None:
    """The features a bind-time-negotiation transfer syntax offers, or None if it is not one."""
    raw = syntax.uuid.bytes_le
    if raw[:8] != BIND_TIME_FEATURE_PREFIX or (syntax.major, syntax.minor) != BIND_TIME_FEATURE_VERSION:
        return None
    # Bitmask[0] holds the only defined bits (MS-RPCE §2.2.2.14); the rest are reserved.
    return BindTimeFeatures(raw[8] & _DEFINED_FEATURE_BITS)


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------

_HEADER_LE = struct.Struct("<BBBB4sHHI")
_HEADER_BE = struct.Struct(">BBBB4sHHI")


@dataclass(frozen=True, slots=True)
class Header:
    """The 16-octet common header (C706 §12.6.1), read in the byte order its drep announces."""

    rpc_vers: int
    rpc_vers_minor: int
    ptype: int
    pfc_flags: int
    drep: bytes
    frag_length: int
    auth_length: int
    call_id: int

    @property
    def little_endian(self) -> bool:
        # C706 chapter 14: the high nibble of drep[0] is the integer representation, 1 = little-endian.
        return (self.drep[0] >> 4) == 1

    @property
    def supported_drep(self) -> bool:
        """Little-endian integers, ASCII characters, IEEE floats: the only representation we do."""
        return self.drep[:2] == DREP_LITTLE_ENDIAN[:2]


def read_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """Read the common header at ``offset``; frag_length etc. in the byte order drep announces."""
    if len(data) - offset < COMMON_HEADER_LENGTH:
        raise DecodeError("truncated common header", offset)
    drep0 = data[offset + 4]
    layout = _HEADER_LE if (drep0 >> 4) == 1 else _HEADER_BE
    return Header(*layout.unpack_from(data, offset))


def _pack_header(ptype: int, pfc_flags: int, frag_length: int, auth_length: int, call_id: int) -> bytes:
    return _HEADER_LE.pack(
        RPC_VERS, RPC_VERS_MINOR, ptype, pfc_flags, DREP_LITTLE_ENDIAN, frag_length, auth_length, call_id
    )


# --------------------------------------------------------------------------------------------
# Auth verifier (MS-RPCE §2.2.2.11): parsed past, not interpreted
# --------------------------------------------------------------------------------------------

_SEC_TRAILER = struct.Struct("<BBBBI")


@dataclass(frozen=True, slots=True)
class AuthVerifier:
    """sec_trailer + auth_value. ``auth_pad_length`` octets precede the trailer."""

    auth_type: int
    auth_level: int
    auth_context_id: int
    auth_value: bytes
    auth_pad_length: int = 0


def _encode_with_verifier(
    body_end: int, auth: AuthVerifier | None, body_start: int, align: int
) -> tuple[bytes, bytes]:
    """Padding + sec_trailer + auth_value for a body ending at ``body_end`` (PDU offset); the
    trailer is ``align``-aligned relative to ``body_start``."""
    if auth is None:
        return b"", b""
    pad = (body_start - body_end) % align
    trailer = _SEC_TRAILER.pack(auth.auth_type, auth.auth_level, pad, 0, auth.auth_context_id)
    return bytes(pad), trailer + auth.auth_value


# --------------------------------------------------------------------------------------------
# PDUs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContextElement:
    """p_cont_elem_t (C706 §12.6.3.1): one presentation context proposed by the client."""

    context_id: int
    abstract_syntax: SyntaxId
    transfer_syntaxes: tuple[SyntaxId, ...]

    def encode(self) -> bytes:
        if not 0 <= len(self.transfer_syntaxes) <= 0xFF:
            raise ValueError("at most 255 transfer syntaxes per context")
        head = struct.pack("<HBB", self.context_id, len(self.transfer_syntaxes), 0)
        return b"".join([head, self.abstract_syntax.encode(), *(t.encode() for t in self.transfer_syntaxes)])


@dataclass(frozen=True, slots=True)
class ContextResult:
    """p_result_t (C706 §12.6.3.1). For negotiate_ack, ``reason`` is the
    BindTimeFeatureNegotiationResponseBitmask (MS-RPCE §3.3.1.5.3)."""

    result: int
    reason: int
    transfer_syntax: SyntaxId = NULL_SYNTAX

    def encode(self) -> bytes:
        return struct.pack("<HH", self.result, self.reason) + self.transfer_syntax.encode()


_BIND_FIXED = struct.Struct("<HHIBBH")  # max_xmit_frag, max_recv_frag, assoc_group_id, n, rsv, rsv2
_ACK_FIXED = struct.Struct("<HHIH")  # max_xmit_frag, max_recv_frag, assoc_group_id, sec_addr length
_REQUEST_FIXED = struct.Struct("<IHH")  # alloc_hint, p_cont_id, opnum
_RESPONSE_FIXED = struct.Struct("<IHBB")  # alloc_hint, p_cont_id, cancel_count, reserved
_FAULT_FIXED = struct.Struct("<IHBBII")  # ... status, reserved2


@dataclass(frozen=True, slots=True)
class BindLike:
    """The layout bind and alter_context share (C706 §12.6.4.1, §12.6.4.3)."""

    call_id: int
    contexts: tuple[ContextElement, ...]
    max_xmit_frag: int = 4280
    max_recv_frag: int = 4280
    assoc_group_id: int = 0
    pfc_flags: int = FIRST_AND_LAST
    auth: AuthVerifier | None = None

    PTYPE: ClassVar[PType]

    def encode(self) -> bytes:
        return _encode_bind_like(self)


@dataclass(frozen=True, slots=True)
class Bind(BindLike):
    """bind (C706 §12.6.4.3)."""

    PTYPE = PType.BIND


@dataclass(frozen=True, slots=True)
class AlterContext(BindLike):
    """alter_context (C706 §12.6.4.1): same layout as bind."""

    PTYPE = PType.ALTER_CONTEXT


@dataclass(frozen=True, slots=True)
class AckLike:
    """The layout bind_ack and alter_context_resp share (C706 §12.6.4.2, §12.6.4.4).
    ``secondary_address`` is the port_any_t, without its NUL."""

    call_id: int
    results: tuple[ContextResult, ...]
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    secondary_address: str = ""
    pfc_flags: int = FIRST_AND_LAST
    auth: AuthVerifier | None = None

    PTYPE: ClassVar[PType]

    def encode(self) -> bytes:
        return _encode_ack_like(self)


@dataclass(frozen=True, slots=True)
class BindAck(AckLike):
    """bind_ack (C706 §12.6.4.4)."""

    PTYPE = PType.BIND_ACK


@dataclass(frozen=True, slots=True)
class AlterContextResp(AckLike):
    """alter_context_resp (C706 §12.6.4.2): same layout as bind_ack."""

    PTYPE = PType.ALTER_CONTEXT_RESP


def _encode_bind_like(pdu: BindLike) -> bytes:
    if len(pdu.contexts) > 0xFF:
        raise ValueError("at most 255 presentation contexts per PDU")
    body = _BIND_FIXED.pack(
        pdu.max_xmit_frag, pdu.max_recv_frag, pdu.assoc_group_id, len(pdu.contexts), 0, 0
    ) + b"".join(c.encode() for c in pdu.contexts)
    return _assemble(pdu.PTYPE, pdu.pfc_flags, pdu.call_id, body, pdu.auth, body_start=0, align=4)


def _encode_ack_like(pdu: AckLike) -> bytes:
    if len(pdu.results) > 0xFF:
        raise ValueError("at most 255 results per PDU")
    # port_any_t: length (NUL included), then the octets; empty means length 0 and no octets.
    address = pdu.secondary_address.encode("ascii") + b"\0" if pdu.secondary_address else b""
    head = _ACK_FIXED.pack(pdu.max_xmit_frag, pdu.max_recv_frag, pdu.assoc_group_id, len(address))
    # The result list is 4-aligned with respect to the PDU start.
    offset = COMMON_HEADER_LENGTH + len(head) + len(address)
    body = b"".join(
        [
            head,
            address,
            bytes((-offset) % 4),
            struct.pack("<BBH", len(pdu.results), 0, 0),
            *(r.encode() for r in pdu.results),
        ]
    )
    return _assemble(pdu.PTYPE, pdu.pfc_flags, pdu.call_id, body, pdu.auth, body_start=0, align=4)


@dataclass(frozen=True, slots=True)
class BindNak:
    """bind_nak (C706 §12.6.4.5, MS-RPCE §2.2.2.9); the optional Signature is not sent."""

    call_id: int
    reject_reason: int
    versions: tuple[tuple[int, int], ...] = ((RPC_VERS, RPC_VERS_MINOR),)

    PTYPE = PType.BIND_NAK

    def encode(self) -> bytes:
        body = struct.pack("<HB", self.reject_reason, len(self.versions)) + b"".join(
            bytes(v) for v in self.versions
        )
        body += bytes((-(COMMON_HEADER_LENGTH + len(body))) % 4)  # Windows pads to 4 (24 octets)
        return _assemble(self.PTYPE, FIRST_AND_LAST, self.call_id, body, None, body_start=0, align=4)


@dataclass(frozen=True, slots=True)
class Request:
    """request (C706 §12.6.4.9). ``object_uuid`` is present iff PFC_OBJECT_UUID is set."""

    call_id: int
    context_id: int
    opnum: int
    stub: bytes
    alloc_hint: int | None = None  # None: len(stub)
    pfc_flags: int = FIRST_AND_LAST
    object_uuid: uuid.UUID | None = None
    auth: AuthVerifier | None = None

    PTYPE = PType.REQUEST

    def encode(self) -> bytes:
        flags = self.pfc_flags & ~PfcFlags.OBJECT_UUID
        head = _REQUEST_FIXED.pack(
            len(self.stub) if self.alloc_hint is None else self.alloc_hint, self.context_id, self.opnum
        )
        if self.object_uuid is not None:
            flags |= PfcFlags.OBJECT_UUID
            head += self.object_uuid.bytes_le
        # MS-RPCE §2.2.2.11: the sec_trailer is 16-aligned relative to the start of the PDU body.
        return _assemble(
            PType.REQUEST,
            flags,
            self.call_id,
            head + self.stub,
            self.auth,
            body_start=COMMON_HEADER_LENGTH + len(head),
            align=16,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """response (C706 §12.6.4.10)."""

    call_id: int
    context_id: int
    stub: bytes
    alloc_hint: int | None = None  # None: len(stub)
    pfc_flags: int = FIRST_AND_LAST
    cancel_count: int = 0
    auth: AuthVerifier | None = None

    PTYPE = PType.RESPONSE

    def encode(self) -> bytes:
        head = _RESPONSE_FIXED.pack(
            len(self.stub) if self.alloc_hint is None else self.alloc_hint,
            self.context_id,
            self.cancel_count,
            0,
        )
        return _assemble(
            PType.RESPONSE,
            self.pfc_flags,
            self.call_id,
            head + self.stub,
            self.auth,
            body_start=RESPONSE_HEADER_LENGTH,
            align=16,
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """fault (C706 §12.6.4.7, MS-RPCE §2.2.2.8). Servers send no stub; ``flags`` is the reserved
    octet whose low bit announces extended error information."""

    call_id: int
    status: int
    context_id: int = 0
    pfc_flags: int = FIRST_AND_LAST
    alloc_hint: int = FAULT_HEADER_LENGTH  # what Windows sends; ext. error length = alloc_hint - 0x20
    cancel_count: int = 0
    flags: int = 0
    stub: bytes = b""
    auth: AuthVerifier | None = None

    PTYPE = PType.FAULT

    def encode(self) -> bytes:
        head = _FAULT_FIXED.pack(
            self.alloc_hint, self.context_id, self.cancel_count, self.flags, self.status, 0
        )
        return _assemble(
            PType.FAULT,
            self.pfc_flags,
            self.call_id,
            head + self.stub,
            self.auth,
            body_start=FAULT_HEADER_LENGTH,
            align=16,
        )


@dataclass(frozen=True, slots=True)
class Auth3:
    """rpc_auth_3 (MS-RPCE §2.2.2.10): 4 octets of pad, then the sec_trailer."""

    call_id: int
    auth: AuthVerifier
    pfc_flags: int = FIRST_AND_LAST

    PTYPE = PType.AUTH3

    def encode(self) -> bytes:
        return _assemble(
            PType.AUTH3, self.pfc_flags, self.call_id, bytes(4), self.auth, body_start=0, align=4
        )


@dataclass(frozen=True, slots=True)
class Shutdown:
    """shutdown (C706 §12.6.4.11): server to client, header only."""

    call_id: int = 0

    PTYPE = PType.SHUTDOWN

    def encode(self) -> bytes:
        return _assemble(PType.SHUTDOWN, FIRST_AND_LAST, self.call_id, b"", None, body_start=0, align=4)


@dataclass(frozen=True, slots=True)
class CoCancel:
    """co_cancel (C706 §12.6.4.6): header and an optional auth verifier."""

    call_id: int
    pfc_flags: int = FIRST_AND_LAST
    auth: AuthVerifier | None = None

    PTYPE = PType.CO_CANCEL

    def encode(self) -> bytes:
        return _assemble(PType.CO_CANCEL, self.pfc_flags, self.call_id, b"", self.auth, body_start=0, align=4)


@dataclass(frozen=True, slots=True)
class Orphaned:
    """orphaned (C706 §12.6.4.8): header and an optional auth verifier."""

    call_id: int
    pfc_flags: int = FIRST_AND_LAST
    auth: AuthVerifier | None = None

    PTYPE = PType.ORPHANED

    def encode(self) -> bytes:
        return _assemble(PType.ORPHANED, self.pfc_flags, self.call_id, b"", self.auth, body_start=0, align=4)


Pdu = (
    Bind
    | AlterContext
    | BindAck
    | AlterContextResp
    | BindNak
    | Request
    | Response
    | Fault
    | Auth3
    | Shutdown
    | CoCancel
    | Orphaned
)


def _assemble(
    ptype: int,
    pfc_flags: int,
    call_id: int,
    body: bytes,
    auth: AuthVerifier | None,
    *,
    body_start: int,
    align: int,
) -> bytes:
    pad, verifier = _encode_with_verifier(COMMON_HEADER_LENGTH + len(body), auth, body_start, align)
    frag_length = COMMON_HEADER_LENGTH + len(body) + len(pad) + len(verifier)
    if frag_length > MAX_FRAG_LENGTH:
        raise ValueError(f"PDU of {frag_length} octets exceeds frag_length's range")
    auth_length = len(auth.auth_value) if auth is not None else 0
    return b"".join([_pack_header(ptype, pfc_flags, frag_length, auth_length, call_id), body, pad, verifier])


# --------------------------------------------------------------------------------------------
# Fragmented encoding: one memoryview over the stub, one join per PDU (linear in the stub size)
# --------------------------------------------------------------------------------------------


def fragment_stub_size(max_frag: int, header_length: int) -> int:
    """Stub octets that fit in one fragment of at most ``max_frag`` octets."""
    size = (max_frag - header_length) // FRAGMENT_STUB_ALIGNMENT * FRAGMENT_STUB_ALIGNMENT
    if size <= 0:
        raise ValueError(f"fragment size {max_frag} leaves no room for stub data")
    return size


def _fragments(stub: bytes, chunk: int) -> Iterable[tuple[int, memoryview, int]]:
    """(pfc_flags, piece, alloc_hint) per fragment; alloc_hint is the stub still to come
    including this piece (MS-RPCE §2.2.2.6)."""
    view = memoryview(stub)
    total = len(view)
    if total == 0:
        yield FIRST_AND_LAST, view, 0
        return
    for start in range(0, total, chunk):
        flags = PfcFlags.FIRST_FRAG if start == 0 else 0
        if start + chunk >= total:
            flags |= PfcFlags.LAST_FRAG
        yield flags, view[start : start + chunk], total - start


def encode_request_fragments(
    call_id: int,
    context_id: int,
    opnum: int,
    stub: bytes,
    max_frag: int,
    *,
    object_uuid: uuid.UUID | None = None,
) -> list[bytes]:
    """A request split into PDUs of at most ``max_frag`` octets (C706 §12.6 fragmentation)."""
    extra = object_uuid.bytes_le if object_uuid is not None else b""
    obj_flag = PfcFlags.OBJECT_UUID if object_uuid is not None else 0
    header_length = REQUEST_HEADER_LENGTH + len(extra)
    out = []
    for flags, piece, alloc_hint in _fragments(stub, fragment_stub_size(max_frag, header_length)):
        header = _pack_header(PType.REQUEST, flags | obj_flag, header_length + len(piece), 0, call_id)
        out.append(b"".join((header, _REQUEST_FIXED.pack(alloc_hint, context_id, opnum), extra, piece)))
    return out


def encode_response_fragments(call_id: int, context_id: int, stub: bytes, max_frag: int) -> list[bytes]:
    """A response split into PDUs of at most ``max_frag`` octets (C706 §12.6 fragmentation)."""
    out = []
    for flags, piece, alloc_hint in _fragments(stub, fragment_stub_size(max_frag, RESPONSE_HEADER_LENGTH)):
        header = _pack_header(PType.RESPONSE, flags, RESPONSE_HEADER_LENGTH + len(piece), 0, call_id)
        out.append(b"".join((header, _RESPONSE_FIXED.pack(alloc_hint, context_id, 0, 0), piece)))
    return out


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _split_verifier(
    data: bytes | memoryview, header: Header, body_start: int
) -> tuple[int, AuthVerifier | None]:
    """Locate the auth verifier (MS-RPCE §2.2.2.11): returns (end of the body proper, verifier).

    The sec_trailer starts at frag_length - auth_length - 8; auth_pad_length octets before it
    are padding, not body.
    """
    if header.auth_length == 0:
        return header.frag_length, None
    trailer_at = header.frag_length - header.auth_length - SEC_TRAILER_LENGTH
    if trailer_at < body_start:
        raise DecodeError(f"auth_length {header.auth_length} leaves no room for the PDU body", 10)
    auth_type, auth_level, pad, _reserved, context_id = _SEC_TRAILER.unpack_from(data, trailer_at)
    body_end = trailer_at - pad
    if body_end < body_start:
        raise DecodeError(f"auth_pad_length {pad} reaches into the PDU header", trailer_at + 2)
    value = bytes(data[trailer_at + SEC_TRAILER_LENGTH : header.frag_length])
    return body_end, AuthVerifier(auth_type, auth_level, context_id, value, pad)


def _need(header: Header, length: int, what: str) -> None:
    if header.frag_length < length:
        raise DecodeError(f"{what}: frag_length {header.frag_length} shorter than {length}", 8)


def _decode_contexts(data: bytes | memoryview, offset: int, end: int) -> tuple[ContextElement, ...]:
    if end - offset < 4:
        raise DecodeError("truncated p_context_elem", offset)
    count = data[offset]
    offset += 4
    contexts = []
    for _ in range(count):
        if end - offset < 4 + SYNTAX_ID_LENGTH:
            raise DecodeError("truncated p_cont_elem_t", offset)
        context_id, n_transfer = struct.unpack_from("<HB", data, offset)
        abstract = SyntaxId.decode(data, offset + 4)
        offset += 4 + SYNTAX_ID_LENGTH
        if end - offset < n_transfer * SYNTAX_ID_LENGTH:
            raise DecodeError("truncated transfer_syntaxes", offset)
        transfers = tuple(SyntaxId.decode(data, offset + i * SYNTAX_ID_LENGTH) for i in range(n_transfer))
        offset += n_transfer * SYNTAX_ID_LENGTH
        contexts.append(ContextElement(context_id, abstract, transfers))
    return tuple(contexts)


def _decode_bind(data: bytes | memoryview, header: Header) -> Bind | AlterContext:
    start = COMMON_HEADER_LENGTH
    _need(header, start + _BIND_FIXED.size, "bind")
    end, auth = _split_verifier(data, header, start)
    if end < start + _BIND_FIXED.size:
        raise DecodeError("bind body overlaps its auth verifier", start)
    max_xmit, max_recv, group, *_ = _BIND_FIXED.unpack_from(data, start)
    contexts = _decode_contexts(data, start + 8, end)
    cls = Bind if header.ptype == PType.BIND else AlterContext
    return cls(header.call_id, contexts, max_xmit, max_recv, group, header.pfc_flags, auth)


def _decode_bind_ack(data: bytes | memoryview, header: Header) -> BindAck | AlterContextResp:
    start = COMMON_HEADER_LENGTH
    _need(header, start + _ACK_FIXED.size, "bind_ack")
    end, auth = _split_verifier(data, header, start)
    max_xmit, max_recv, group, address_length = _ACK_FIXED.unpack_from(data, start)
    offset = start + _ACK_FIXED.size
    if end - offset < address_length:
        raise DecodeError("truncated sec_addr", offset)
    raw = bytes(data[offset : offset + address_length])
    address = raw.rstrip(b"\0").decode("latin-1")  # port_any_t: NUL-terminated octets
    offset += address_length
    offset += (-offset) % 4
    if end - offset < 4:
        raise DecodeError("truncated p_result_list", offset)
    count = data[offset]
    offset += 4
    if end - offset < count * CONTEXT_RESULT_LENGTH:
        raise DecodeError("truncated p_results", offset)
    results = []
    for i in range(count):
        at = offset + i * CONTEXT_RESULT_LENGTH
        result, reason = struct.unpack_from("<HH", data, at)
        results.append(ContextResult(result, reason, SyntaxId.decode(data, at + 4)))
    cls = BindAck if header.ptype == PType.BIND_ACK else AlterContextResp
    return cls(header.call_id, tuple(results), max_xmit, max_recv, group, address, header.pfc_flags, auth)


def _decode_bind_nak(data: bytes | memoryview, header: Header) -> BindNak:
    start = COMMON_HEADER_LENGTH
    _need(header, start + 3, "bind_nak")
    reason, count = struct.unpack_from("<HB", data, start)
    offset = start + 3
    if header.frag_length - offset < 2 * count:
        raise DecodeError("truncated p_rt_versions_supported_t", offset)
    versions = tuple((data[offset + 2 * i], data[offset + 2 * i + 1]) for i in range(count))
    # Whatever follows (padding, the optional Signature and extended error information,
    # MS-RPCE §2.2.2.9) MAY be ignored by clients.
    return BindNak(header.call_id, reason, versions)


def _decode_request(data: bytes | memoryview, header: Header) -> Request:
    start = REQUEST_HEADER_LENGTH
    object_uuid = None
    if header.pfc_flags & PfcFlags.OBJECT_UUID:
        start += 16
    _need(header, start, "request")
    end, auth = _split_verifier(data, header, start)
    alloc_hint, context_id, opnum = _REQUEST_FIXED.unpack_from(data, COMMON_HEADER_LENGTH)
    if header.pfc_flags & PfcFlags.OBJECT_UUID:
        object_uuid = uuid.UUID(bytes_le=bytes(data[REQUEST_HEADER_LENGTH:start]))
    stub = bytes(data[start:end])
    return Request(header.call_id, context_id, opnum, stub, alloc_hint, header.pfc_flags, object_uuid, auth)


def _decode_response(data: bytes | memoryview, header: Header) -> Response:
    start = RESPONSE_HEADER_LENGTH
    _need(header, start, "response")
    end, auth = _split_verifier(data, header, start)
    alloc_hint, context_id, cancel_count, _ = _RESPONSE_FIXED.unpack_from(data, COMMON_HEADER_LENGTH)
    stub = bytes(data[start:end])
    return Response(header.call_id, context_id, stub, alloc_hint, header.pfc_flags, cancel_count, auth)


def _decode_fault(data: bytes | memoryview, header: Header) -> Fault:
    start = FAULT_HEADER_LENGTH
    _need(header, start, "fault")
    end, auth = _split_verifier(data, header, start)
    alloc_hint, context_id, cancel_count, flags, status, _ = _FAULT_FIXED.unpack_from(
        data, COMMON_HEADER_LENGTH
    )
    stub = bytes(data[start:end])
    return Fault(
        header.call_id, status, context_id, header.pfc_flags, alloc_hint, cancel_count, flags, stub, auth
    )


def _decode_auth3(data: bytes | memoryview, header: Header) -> Auth3:
    start = COMMON_HEADER_LENGTH + 4
    _need(header, start + SEC_TRAILER_LENGTH, "auth3")
    if header.auth_length == 0:
        raise DecodeError("auth3 without auth_length", 10)  # MS-RPCE §2.2.2.10: MUST be > 0
    _, auth = _split_verifier(data, header, start)
    assert auth is not None
    return Auth3(header.call_id, auth, header.pfc_flags)


def _decode_bare(data: bytes | memoryview, header: Header) -> Shutdown | CoCancel | Orphaned:
    _, auth = _split_verifier(data, header, COMMON_HEADER_LENGTH)
    if header.ptype == PType.SHUTDOWN:
        return Shutdown(header.call_id)
    if header.ptype == PType.CO_CANCEL:
        return CoCancel(header.call_id, header.pfc_flags, auth)
    return Orphaned(header.call_id, header.pfc_flags, auth)


_DECODERS = {
    PType.BIND: _decode_bind,
    PType.ALTER_CONTEXT: _decode_bind,
    PType.BIND_ACK: _decode_bind_ack,
    PType.ALTER_CONTEXT_RESP: _decode_bind_ack,
    PType.BIND_NAK: _decode_bind_nak,
    PType.REQUEST: _decode_request,
    PType.RESPONSE: _decode_response,
    PType.FAULT: _decode_fault,
    PType.AUTH3: _decode_auth3,
    PType.SHUTDOWN: _decode_bare,
    PType.CO_CANCEL: _decode_bare,
    PType.ORPHANED: _decode_bare,
}


def check_header(header: Header) -> None:
    """Raise DecodeError unless the header is one we can decode: version 5.0, little-endian
    drep, consistent lengths (C706 §12.6.1, MS-RPCE §3.3.1.5.1)."""
    if (header.rpc_vers, header.rpc_vers_minor) != (RPC_VERS, RPC_VERS_MINOR):
        raise DecodeError(f"unsupported RPC version {header.rpc_vers}.{header.rpc_vers_minor}", 0)
    if not header.supported_drep:
        raise DecodeError(f"unsupported data representation {header.drep.hex()}", 4)
    if header.frag_length < COMMON_HEADER_LENGTH:
        raise DecodeError(f"frag_length {header.frag_length} shorter than the header", 8)
    room = header.frag_length - COMMON_HEADER_LENGTH
    if header.auth_length and header.auth_length + SEC_TRAILER_LENGTH > room:
        raise DecodeError(f"auth_length {header.auth_length} exceeds the PDU", 10)


def decode_pdu(data: bytes | memoryview) -> Pdu:
    """Decode one whole PDU. ``len(data)`` must equal its frag_length.

    Raises DecodeError (a RemoteProtocolError) for anything truncated, inconsistent, of another
    data representation, or of a connectionless PTYPE.
    """
    header = read_header(data)
    check_header(header)
    if header.frag_length != len(data):
        raise DecodeError(f"frag_length {header.frag_length} but {len(data)} octets given", 8)
    try:
        decoder = _DECODERS[PType(header.ptype)]
    except (ValueError, KeyError):
        raise DecodeError(f"PTYPE {header.ptype} is not a connection-oriented PDU", 2) from None
    return decoder(data, header)
