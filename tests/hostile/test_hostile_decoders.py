"""Hostile input to the decoders a client reaches before logon: each bound holds structurally, and only
the layer's own decode error escapes (issue 9, row 1: a 60 KB SPNEGO OID arc)."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from netsession.wire.ntlm import AuthenticateMessage, NtlmDecodeError
from netsession.wire.smb2.auth import AuthenticationFailed, NtlmAuthenticator
from netsession.wire.spnego import (
    MAX_OID_ARC_OCTETS,
    NTLMSSP_OID,
    SpnegoDecodeError,
    decode_oid,
    decode_token,
    encode_neg_token_init,
)


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def _token_with_oid(arc: bytes) -> bytes:
    """A NegTokenInit whose mechTypes holds one OID with the given content octets."""
    mech_types = _der(0x30, _der(0x06, arc))
    init = _der(0xA0, _der(0x30, _der(0xA0, mech_types)))
    return _der(0x60, _der(0x06, bytes.fromhex("2b0601050502")) + init)


def test_oid_arc_is_bounded_so_decoding_is_linear() -> None:
    # The attack: one arc of 60,000 continuation octets. Its integer would need 420,000 bits, built by
    # shifting (quadratic) and unprintable in decimal (ValueError past 4300 digits).
    arc = b"\x2b" + b"\xff" * 60_000 + b"\x01"
    with pytest.raises(SpnegoDecodeError, match="longer than"):
        decode_oid(arc)
    with pytest.raises(SpnegoDecodeError):
        decode_token(_token_with_oid(arc))


def test_oid_arc_at_the_bound_still_decodes() -> None:
    longest = b"\xff" * (MAX_OID_ARC_OCTETS - 1) + b"\x7f"
    dotted = decode_oid(b"\x69" + longest)  # 2.25.<140-bit arc>, the X.667 UUID form
    assert dotted == f"2.25.{(1 << (7 * MAX_OID_ARC_OCTETS)) - 1}"
    with pytest.raises(SpnegoDecodeError):
        decode_oid(b"\x69\xff" + longest)


def test_many_oids_in_mech_types_stay_a_decode_error_or_a_result() -> None:
    many = b"".join(_der(0x06, b"\x2b\x06\x01") for _ in range(20_000))
    mech_types = _der(0x30, many)
    init = _der(0xA0, _der(0x30, _der(0xA0, mech_types)))
    token = _der(0x60, _der(0x06, bytes.fromhex("2b0601050502")) + init)
    decoded = decode_token(token)
    assert len(decoded.mech_types) == 20_000  # type: ignore[union-attr]


def test_only_the_authentication_error_escapes_a_hostile_first_leg() -> None:
    # What the server's SESSION_SETUP sees: every malformed token becomes AuthenticationFailed (the
    # SMB layer answers STATUS_LOGON_FAILURE), never ValueError or "internal error".
    auth = NtlmAuthenticator(_NoAccounts(), server_name="FS1", entropy=os.urandom, clock=lambda: 0.0)
    hostile = [
        _token_with_oid(b"\x2b" + b"\xff" * 60_000 + b"\x01"),
        _token_with_oid(b"\x2b" + b"\x80\x01"),
        _token_with_oid(b"\x2b\xff"),
        b"\x60\x84\xff\xff\xff\xff",
        b"\xa1\x00",
        os.urandom(4096),
        encode_neg_token_init([NTLMSSP_OID], mech_token=b"NTLMSSP\x00\x01\x00\x00\x00"),
    ]
    for token in hostile:
        with pytest.raises(AuthenticationFailed):
            auth.new_context().step(token)


class _NoAccounts:
    def get(self, name: str) -> None:
        return None


def test_av_pair_list_decoding_allocates_only_what_arrived() -> None:
    # MS-NLMP 2.2.2.1: thousands of AV_PAIRs in an NTLMv2 response are read once each, first wins.
    pairs = b"".join(bytes((9, 0, 4, 0)) + b"abcd" for _ in range(8000)) + bytes(4)
    blob = bytes((1, 1)) + bytes(6) + bytes(8) + bytes(8) + bytes(4) + pairs
    nt = bytes(16) + blob
    header = b"NTLMSSP\x00" + (3).to_bytes(4, "little")
    fixed_size = 88
    fields = b""
    payload = b""
    for value in (b"", nt, b"", b"u\x00", b"", b""):
        offset = fixed_size + len(payload)
        fields += len(value).to_bytes(2, "little") * 2 + offset.to_bytes(4, "little")
        payload += value
    message = header + fields + (0x00000001).to_bytes(4, "little") + bytes(fixed_size - 64) + payload
    tracemalloc.start()
    try:
        decoded = AuthenticateMessage.decode(message)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.user_name == "u"
    assert peak < 4 * len(message) + 65536
    with pytest.raises(NtlmDecodeError):
        AuthenticateMessage.decode(message[:-4])  # no MsvAvEOL
