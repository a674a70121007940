"""SPNEGO tokens (RFC 4178 with Microsoft's NegTokenInit2, MS-SPNG 2.2): DER in, objects out, and back.

Only what an SMB server's acceptor needs: decode a client's NegTokenInit (inside the GSS-API
InitialContextToken, RFC 2743 3.1) or NegTokenResp; encode NegTokenInit2 (the hint a server puts in its
NEGOTIATE response) and NegTokenResp. Every decoding failure raises :class:`SpnegoDecodeError`, with what
was wrong and the byte offset where; nothing is allocated beyond what the input holds.

>>> token = encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=b"x")
>>> decode_token(token)
NegTokenResp(neg_state=<NegState.ACCEPT_INCOMPLETE: 1>, supported_mech='1.3.6.1.4.1.311.2.2.10', \
response_token=b'x', mech_list_mic=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "KERBEROS_OID",
    "MS_KERBEROS_OID",
    "NEGOEX_OID",
    "NEG_HINT_NAME",
    "NTLMSSP_OID",
    "SPNEGO_OID",
    "NegState",
    "NegTokenInit",
    "NegTokenResp",
    "SpnegoDecodeError",
    "decode_oid",
    "decode_token",
    "encode_mech_type_list",
    "encode_neg_token_init",
    "encode_neg_token_init2",
    "encode_neg_token_resp",
    "encode_oid",
]

SPNEGO_OID = "1.3.6.1.5.5.2"  # RFC 4178 1
NTLMSSP_OID = "1.3.6.1.4.1.311.2.2.10"  # MS-NLMP 1.9
KERBEROS_OID = "1.2.840.113554.1.2.2"  # RFC 4121 1
MS_KERBEROS_OID = "1.2.840.48018.1.2.2"  # MS-SPNG 1.9 (the OID Windows lists first)
NEGOEX_OID = "1.3.6.1.4.1.311.2.2.30"  # MS-NEGOEX 1.9
# MS-SPNG 2.2.1 and note <6>: the hintName Windows sends.
NEG_HINT_NAME = "not_defined_in_RFC4178@please_ignore"

# X.690 identifier octets used here.
_TAG_BIT_STRING = 0x03
_TAG_OCTET_STRING = 0x04
_TAG_OID = 0x06
_TAG_ENUMERATED = 0x0A
_TAG_GENERAL_STRING = 0x1B
_TAG_SEQUENCE = 0x30
_TAG_APPLICATION_0 = 0x60  # RFC 2743 3.1: InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE


def _context(n: int) -> int:
    """The identifier octet of a constructed context-specific tag [n]."""
    return 0xA0 | n


# RFC 4178 4.2: NegotiationToken ::= CHOICE { negTokenInit [0], negTokenResp [1] }
_TAG_NEG_TOKEN_INIT = _context(0)
_TAG_NEG_TOKEN_RESP = _context(1)
# Our own bound on long-form lengths: 4 length octets cover any token an SMB buffer can carry.
_MAX_LENGTH_OCTETS = 4
# Our own bound on one OID arc: 20 base-128 octets hold 140 bits, more than the 128-bit UUID arcs of
# X.667 (2.25.N), the largest arcs in use. Without it an arc is one big integer built by shifting, which
# costs time quadratic in its length, and its decimal form cannot be printed past 4300 digits.
MAX_OID_ARC_OCTETS = 20


class SpnegoDecodeError(ValueError):
    """A token is not a well-formed SPNEGO token; ``what`` broke, at byte ``offset``."""

    def __init__(self, what: str, offset: int | None = None) -> None:
        self.what = what
        self.offset = offset
        super().__init__(what if offset is None else f"{what} (at offset {offset})")


class NegState(IntEnum):
    """RFC 4178 4.2.2 negState."""

    ACCEPT_COMPLETED = 0
    ACCEPT_INCOMPLETE = 1
    REJECT = 2
    REQUEST_MIC = 3


@dataclass(frozen=True)
class NegTokenInit:
    """RFC 4178 4.2.1 NegTokenInit (or MS-SPNG 2.2.1 NegTokenInit2).

    ``mech_types_der`` is the MechTypeList exactly as received: the mechListMIC is computed over it
    (RFC 4178 5).
    """

    mech_types: tuple[str, ...]
    mech_types_der: bytes
    mech_token: bytes | None = None
    mech_list_mic: bytes | None = None
    hint_name: str | None = None


@dataclass(frozen=True)
class NegTokenResp:
    """RFC 4178 4.2.2 NegTokenResp."""

    neg_state: NegState | None = None
    supported_mech: str | None = None
    response_token: bytes | None = None
    mech_list_mic: bytes | None = None


# ------------------------------------------------------------------------------------------ DER out


def _length(n: int) -> bytes:
    """X.690 8.1.3 definite length, in the shortest form (DER 10.1)."""
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def encode_oid(dotted: str) -> bytes:
    """The DER content octets of an OBJECT IDENTIFIER (X.690 8.19), e.g. ``"1.3.6.1.5.5.2"``."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"not an object identifier: {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


# The mechanisms every SPNEGO exchange names, by their content octets: decoded without the arithmetic.
_KNOWN_OIDS: Final[dict[bytes, str]] = {
    encode_oid(oid): oid for oid in (SPNEGO_OID, NTLMSSP_OID, KERBEROS_OID, MS_KERBEROS_OID, NEGOEX_OID)
}


def encode_mech_type_list(mech_types: tuple[str, ...] | list[str]) -> bytes:
    """RFC 4178 4.1 MechTypeList ::= SEQUENCE OF MechType, DER-encoded."""
    return _tlv(_TAG_SEQUENCE, b"".join(_tlv(_TAG_OID, encode_oid(m)) for m in mech_types))


def _initial_context_token(neg_token_init: bytes) -> bytes:
    # RFC 2743 3.1: [APPLICATION 0] { thisMech OID, innerContextToken }
    return _tlv(_TAG_APPLICATION_0, _tlv(_TAG_OID, encode_oid(SPNEGO_OID)) + neg_token_init)


def encode_neg_token_init2(mech_types: tuple[str, ...] | list[str], hint_name: str = NEG_HINT_NAME) -> bytes:
    """The server's NegTokenInit2 (MS-SPNG 2.2.1), wrapped as an InitialContextToken.

    It carries mechTypes and negHints.hintName only (hintAddress MUST be omitted).
    """
    hints = _tlv(_TAG_SEQUENCE, _tlv(_context(0), _tlv(_TAG_GENERAL_STRING, hint_name.encode("ascii"))))
    body = _tlv(_context(0), encode_mech_type_list(mech_types)) + _tlv(_context(3), hints)
    return _initial_context_token(_tlv(_TAG_NEG_TOKEN_INIT, _tlv(_TAG_SEQUENCE, body)))


def encode_neg_token_init(
    mech_types: tuple[str, ...] | list[str],
    mech_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    """An initiator's NegTokenInit (RFC 4178 4.2.1), wrapped as an InitialContextToken."""
    body = _tlv(_context(0), encode_mech_type_list(mech_types))
    if mech_token is not None:
        body += _tlv(_context(2), _tlv(_TAG_OCTET_STRING, mech_token))
    if mech_list_mic is not None:
        body += _tlv(_context(3), _tlv(_TAG_OCTET_STRING, mech_list_mic))
    return _initial_context_token(_tlv(_TAG_NEG_TOKEN_INIT, _tlv(_TAG_SEQUENCE, body)))


def encode_neg_token_resp(
    neg_state: NegState | None = None,
    *,
    supported_mech: str | None = None,
    response_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    """A NegTokenResp (RFC 4178 4.2.2); absent fields are omitted."""
    body = b""
    if neg_state is not None:
        body += _tlv(_context(0), _tlv(_TAG_ENUMERATED, bytes((int(neg_state),))))
    if supported_mech is not None:
        body += _tlv(_context(1), _tlv(_TAG_OID, encode_oid(supported_mech)))
    if response_token is not None:
        body += _tlv(_context(2), _tlv(_TAG_OCTET_STRING, response_token))
    if mech_list_mic is not None:
        body += _tlv(_context(3), _tlv(_TAG_OCTET_STRING, mech_list_mic))
    return _tlv(_TAG_NEG_TOKEN_RESP, _tlv(_TAG_SEQUENCE, body))


# ------------------------------------------------------------------------------------------- DER in


@dataclass(frozen=True)
class _Tlv:
    tag: int
    start: int  # offset of the identifier octet
    content_start: int
    end: int  # one past the last content octet


def _read_tlv(data: bytes, pos: int, end: int) -> _Tlv:
    """One DER element starting at ``pos``, which must end by ``end`` (X.690 8.1)."""
    if pos >= end:
        raise SpnegoDecodeError("element expected, token ends", pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise SpnegoDecodeError(f"high-tag-number identifier 0x{tag:02x} not used by SPNEGO", pos)
    if pos + 1 >= end:
        raise SpnegoDecodeError("length octet missing", pos + 1)
    first = data[pos + 1]
    content_start = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise SpnegoDecodeError("indefinite length is not DER", pos + 1)
    else:
        count = first & 0x7F
        if count > _MAX_LENGTH_OCTETS:
            raise SpnegoDecodeError(f"{count} length octets", pos + 1)
        if content_start + count > end:
            raise SpnegoDecodeError("length octets run past the end", pos + 1)
        length = int.from_bytes(data[content_start : content_start + count], "big")
        content_start += count
    if length > end - content_start:
        raise SpnegoDecodeError(f"element of {length} bytes overruns its container", pos)
    return _Tlv(tag, pos, content_start, content_start + length)


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> _Tlv:
    tlv = _read_tlv(data, pos, end)
    if tlv.tag != tag:
        raise SpnegoDecodeError(f"{what}: tag 0x{tlv.tag:02x}, expected 0x{tag:02x}", pos)
    return tlv


def _only(data: bytes, container: _Tlv, tag: int, what: str) -> _Tlv:
    """The single element of type ``tag`` filling ``container`` (an explicit [n] tag holds exactly one)."""
    inner = _expect(data, container.content_start, container.end, tag, what)
    if inner.end != container.end:
        raise SpnegoDecodeError(f"{what}: trailing bytes", inner.end)
    return inner


def decode_oid(content: bytes, offset: int = 0) -> str:
    """Dotted form of OBJECT IDENTIFIER content octets (X.690 8.19), strictly: no padding 0x80 octets,
    no arc longer than :data:`MAX_OID_ARC_OCTETS` octets (so the cost is linear in ``content``)."""
    known = _KNOWN_OIDS.get(content)
    if known is not None:
        return known
    if not content:
        raise SpnegoDecodeError("empty object identifier", offset)
    arcs: list[int] = []
    start = 0  # where the current arc began
    for i, octet in enumerate(content):
        if i == start and octet == 0x80:
            raise SpnegoDecodeError("object identifier arc with a leading 0x80 octet", offset + i)
        if octet & 0x80:
            if i - start + 1 >= MAX_OID_ARC_OCTETS:
                raise SpnegoDecodeError(
                    f"object identifier arc longer than {MAX_OID_ARC_OCTETS} octets", offset + start
                )
            continue
        value = 0
        for part in content[start : i + 1]:  # at most MAX_OID_ARC_OCTETS octets
            value = (value << 7) | (part & 0x7F)
        arcs.append(value)
        start = i + 1
    if start != len(content):
        raise SpnegoDecodeError("object identifier ends inside an arc", offset + len(content))
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _octets(data: bytes, field: _Tlv, what: str) -> bytes:
    inner = _only(data, field, _TAG_OCTET_STRING, what)
    return data[inner.content_start : inner.end]


def _sequence_fields(data: bytes, seq: _Tlv, allowed: tuple[int, ...], what: str) -> dict[int, _Tlv]:
    """The [n] fields of a SEQUENCE, each at most once and in increasing order (X.680 SEQUENCE)."""
    fields: dict[int, _Tlv] = {}
    pos = seq.content_start
    last = -1
    while pos < seq.end:
        field = _read_tlv(data, pos, seq.end)
        number = field.tag & 0x1F
        if field.tag & 0xE0 != 0xA0 or number not in allowed:
            raise SpnegoDecodeError(f"{what}: unexpected field tag 0x{field.tag:02x}", pos)
        if number <= last:
            raise SpnegoDecodeError(f"{what}: field [{number}] out of order or repeated", pos)
        fields[number] = field
        last = number
        pos = field.end
    return fields


def _decode_mech_type_list(data: bytes, field: _Tlv) -> tuple[tuple[str, ...], bytes]:
    seq = _only(data, field, _TAG_SEQUENCE, "mechTypes")
    mechs = []
    pos = seq.content_start
    while pos < seq.end:
        oid = _expect(data, pos, seq.end, _TAG_OID, "mechTypes element")
        mechs.append(decode_oid(data[oid.content_start : oid.end], oid.content_start))
        pos = oid.end
    if not mechs:
        raise SpnegoDecodeError("mechTypes is empty", seq.start)
    return tuple(mechs), data[seq.start : seq.end]


def _decode_neg_token_init(data: bytes, outer: _Tlv) -> NegTokenInit:
    seq = _only(data, outer, _TAG_SEQUENCE, "NegTokenInit")
    fields = _sequence_fields(data, seq, (0, 1, 2, 3, 4), "NegTokenInit")
    if 0 not in fields:
        raise SpnegoDecodeError("NegTokenInit without mechTypes", seq.start)
    mech_types, mech_types_der = _decode_mech_type_list(data, fields[0])
    if 1 in fields:  # reqFlags: legacy, ignored (MS-SPNG 3.1.5.3), but it must be a BIT STRING
        _only(data, fields[1], _TAG_BIT_STRING, "reqFlags")
    mech_token = _octets(data, fields[2], "mechToken") if 2 in fields else None
    mic: bytes | None = None
    hint_name: str | None = None
    if 3 in fields:
        # RFC 4178: [3] is mechListMIC; MS-SPNG 2.2.1 NegTokenInit2: [3] is negHints and [4] the MIC.
        if _read_tlv(data, fields[3].content_start, fields[3].end).tag == _TAG_SEQUENCE:
            hint_name = _decode_neg_hints(data, fields[3])
        else:
            mic = _octets(data, fields[3], "mechListMIC")
    if 4 in fields:
        if mic is not None:
            raise SpnegoDecodeError("NegTokenInit with two mechListMIC fields", fields[4].start)
        mic = _octets(data, fields[4], "mechListMIC")
    return NegTokenInit(mech_types, mech_types_der, mech_token, mic, hint_name)


def _decode_neg_hints(data: bytes, field: _Tlv) -> str | None:
    seq = _only(data, field, _TAG_SEQUENCE, "negHints")
    hints = _sequence_fields(data, seq, (0, 1), "negHints")
    if 0 not in hints:
        return None
    name = _only(data, hints[0], _TAG_GENERAL_STRING, "hintName")
    try:
        return data[name.content_start : name.end].decode("ascii")
    except UnicodeDecodeError:
        raise SpnegoDecodeError("hintName is not ASCII", name.content_start) from None


def _decode_neg_token_resp(data: bytes, outer: _Tlv) -> NegTokenResp:
    seq = _only(data, outer, _TAG_SEQUENCE, "NegTokenResp")
    fields = _sequence_fields(data, seq, (0, 1, 2, 3), "NegTokenResp")
    state: NegState | None = None
    if 0 in fields:
        value = _only(data, fields[0], _TAG_ENUMERATED, "negState")
        raw = data[value.content_start : value.end]
        if len(raw) != 1 or raw[0] not in NegState._value2member_map_:
            raise SpnegoDecodeError(f"negState {raw.hex()} is not one of RFC 4178's", value.content_start)
        state = NegState(raw[0])
    mech: str | None = None
    if 1 in fields:
        oid = _only(data, fields[1], _TAG_OID, "supportedMech")
        mech = decode_oid(data[oid.content_start : oid.end], oid.content_start)
    token = _octets(data, fields[2], "responseToken") if 2 in fields else None
    mic = _octets(data, fields[3], "mechListMIC") if 3 in fields else None
    return NegTokenResp(state, mech, token, mic)


def decode_token(data: bytes) -> NegTokenInit | NegTokenResp:
    """Decode an initiator's (or acceptor's) SPNEGO token.

    A NegTokenInit arrives inside the InitialContextToken (RFC 2743 3.1, tag 0x60, thisMech = SPNEGO);
    a NegTokenResp arrives bare (tag 0xA1). Trailing bytes after the token are an error.
    """
    data = bytes(data)
    top = _read_tlv(data, 0, len(data))
    if top.end != len(data):
        raise SpnegoDecodeError("trailing bytes after the token", top.end)
    if top.tag == _TAG_NEG_TOKEN_RESP:
        return _decode_neg_token_resp(data, top)
    if top.tag != _TAG_APPLICATION_0:
        raise SpnegoDecodeError(f"not a SPNEGO token: tag 0x{top.tag:02x}", 0)
    mech = _expect(data, top.content_start, top.end, _TAG_OID, "thisMech")
    this_mech = decode_oid(data[mech.content_start : mech.end], mech.content_start)
    if this_mech != SPNEGO_OID:
        raise SpnegoDecodeError(f"InitialContextToken for mechanism {this_mech}, not SPNEGO", mech.start)
    inner = _read_tlv(data, mech.end, top.end)
    if inner.end != top.end:
        raise SpnegoDecodeError("trailing bytes in the InitialContextToken", inner.end)
    if inner.tag != _TAG_NEG_TOKEN_INIT:
        raise SpnegoDecodeError(f"InitialContextToken holds tag 0x{inner.tag:02x}, not [0]", inner.start)
    return _decode_neg_token_init(data, inner)
