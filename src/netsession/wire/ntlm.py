"""The server side of NTLM (MS-NLMP): messages, NTLMv2 verification, the session security SPNEGO needs.

Sans-I/O and clock-free: the caller supplies the server challenge (8 random bytes), the times, and the
NT hash of the account being checked. The flow of one logon (MS-NLMP 3.2.5.1)::

    acceptor = NtlmAcceptor(names)
    challenge = acceptor.challenge(negotiate, server_challenge=os.urandom(8), timestamp=filetime(now))
    auth = acceptor.authenticate(authenticate_bytes)       # decoded, not yet verified
    session = acceptor.verify(auth, nt_hash, now=filetime(now))    # NtlmAuthError if wrong
    session.exported_session_key                           # the GSS session key SMB signs with

Only NTLMv2 responses are accepted (MS-NLMP 3.3.2), like Windows at LmCompatibilityLevel 5: an LM or
NTLMv1 response is refused, so no LM hash is ever needed. Malformed messages raise
:class:`NtlmDecodeError`; a well-formed logon that fails raises :class:`NtlmAuthError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

__all__ = [
    "NTLMSSP_SIGNATURE",
    "AuthenticateMessage",
    "AvId",
    "NegotiateFlags",
    "NtlmAcceptor",
    "NtlmAuthError",
    "NtlmDecodeError",
    "NtlmSession",
    "Rc4",
    "ServerNames",
    "filetime",
    "hmac_md5",
    "ntowfv2",
    "sealkey",
    "signkey",
]

NTLMSSP_SIGNATURE = b"NTLMSSP\x00"  # MS-NLMP 2.2.1
# MS-NLMP 2.2.1: MessageType values.
_NTLM_NEGOTIATE = 1
_NTLM_CHALLENGE = 2
_NTLM_AUTHENTICATE = 3

# MS-NLMP 2.2.1.3: fixed part of AUTHENTICATE_MESSAGE up to NegotiateFlags; Version follows at 64, MIC at 72.
_AUTHENTICATE_FIXED = 64
_VERSION_OFFSET = 64
_MIC_OFFSET = 72
_MIC_SIZE = 16
# MS-NLMP 2.2.1.2: CHALLENGE_MESSAGE fixed part including Version.
_CHALLENGE_FIXED = 56
# MS-NLMP 2.2.2.6 / 2.2.2.8: an NTLMv1 response is 24 bytes; an NTLMv2 response is NTProofStr (16 bytes)
# followed by NTLMv2_CLIENT_CHALLENGE, whose fixed part is 28 bytes (2.2.2.7).
_NTLMV1_RESPONSE_SIZE = 24
_NT_PROOF_SIZE = 16
_CLIENT_CHALLENGE_FIXED = 28
_SESSION_KEY_SIZE = 16
_SERVER_CHALLENGE_SIZE = 8

# MS-NLMP 3.1.1.1 MaxLifetime and note <39>: 36 hours, in FILETIME ticks (100 ns).
MAX_LIFETIME = 36 * 3600 * 10_000_000
# MS-DTYP 2.3.3: FILETIME counts 100 ns ticks since 1601-01-01; Unix time starts 11644473600 s later.
_FILETIME_UNIX_EPOCH = 116444736000000000

# MS-NLMP 2.2.2.10 VERSION: for debugging only. 6.1 build 0, NTLMSSP_REVISION_W2K3 (15).
DEFAULT_VERSION = struct.pack("<BBH3xB", 6, 1, 0, 0x0F)

# MS-NLMP 3.4.5.2 / 3.4.5.3: the magic constants (null-terminated).
_CLIENT_SIGNING = b"session key to client-to-server signing key magic constant\x00"
_SERVER_SIGNING = b"session key to server-to-client signing key magic constant\x00"
_CLIENT_SEALING = b"session key to client-to-server sealing key magic constant\x00"
_SERVER_SEALING = b"session key to server-to-client sealing key magic constant\x00"
# MS-NLMP 2.2.2.9: NTLMSSP_MESSAGE_SIGNATURE.Version.
_SIGNATURE_VERSION = 1


class NegotiateFlags(IntFlag):
    """MS-NLMP 2.2.2.5 NEGOTIATE flags."""

    NTLMSSP_NEGOTIATE_UNICODE = 0x00000001  # A
    NTLM_NEGOTIATE_OEM = 0x00000002  # B
    NTLMSSP_REQUEST_TARGET = 0x00000004  # C
    NTLMSSP_NEGOTIATE_SIGN = 0x00000010  # D
    NTLMSSP_NEGOTIATE_SEAL = 0x00000020  # E
    NTLMSSP_NEGOTIATE_DATAGRAM = 0x00000040  # F
    NTLMSSP_NEGOTIATE_LM_KEY = 0x00000080  # G
    NTLMSSP_NEGOTIATE_NTLM = 0x00000200  # H
    NTLMSSP_ANONYMOUS = 0x00000800  # J
    NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED = 0x00001000  # K
    NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED = 0x00002000  # L
    NTLMSSP_NEGOTIATE_ALWAYS_SIGN = 0x00008000  # M
    NTLMSSP_TARGET_TYPE_DOMAIN = 0x00010000  # N
    NTLMSSP_TARGET_TYPE_SERVER = 0x00020000  # O
    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000  # P
    NTLMSSP_NEGOTIATE_IDENTIFY = 0x00100000  # Q
    NTLMSSP_REQUEST_NON_NT_SESSION_KEY = 0x00400000  # R
    NTLMSSP_NEGOTIATE_TARGET_INFO = 0x00800000  # S
    NTLMSSP_NEGOTIATE_VERSION = 0x02000000  # T
    NTLMSSP_NEGOTIATE_128 = 0x20000000  # U
    NTLMSSP_NEGOTIATE_KEY_EXCH = 0x40000000  # V
    NTLMSSP_NEGOTIATE_56 = 0x80000000  # W


F = NegotiateFlags

# What this acceptor can do; a client's other requests are not echoed (MS-NLMP 3.2.5.1.1 "SHOULD return only
# the capabilities it supports"). Not supported: LM_KEY, DATAGRAM, IDENTIFY, NON_NT_SESSION_KEY.
_SUPPORTED_FLAGS = (
    F.NTLMSSP_NEGOTIATE_UNICODE
    | F.NTLM_NEGOTIATE_OEM
    | F.NTLMSSP_REQUEST_TARGET
    | F.NTLMSSP_NEGOTIATE_SIGN
    | F.NTLMSSP_NEGOTIATE_SEAL
    | F.NTLMSSP_NEGOTIATE_NTLM
    | F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | F.NTLMSSP_NEGOTIATE_TARGET_INFO
    | F.NTLMSSP_NEGOTIATE_VERSION
    | F.NTLMSSP_NEGOTIATE_128
    | F.NTLMSSP_NEGOTIATE_KEY_EXCH
    | F.NTLMSSP_NEGOTIATE_56
)
# MS-NLMP 3.2.5.1.1: always set in a CHALLENGE_MESSAGE from a server that is not domain joined.
_ALWAYS_SET = (
    F.NTLMSSP_REQUEST_TARGET
    | F.NTLMSSP_NEGOTIATE_NTLM
    | F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | F.NTLMSSP_NEGOTIATE_TARGET_INFO
    | F.NTLMSSP_TARGET_TYPE_SERVER
)


class AvId(IntEnum):
    """MS-NLMP 2.2.2.1 AV_PAIR AvId."""

    MsvAvEOL = 0x0000
    MsvAvNbComputerName = 0x0001
    MsvAvNbDomainName = 0x0002
    MsvAvDnsComputerName = 0x0003
    MsvAvDnsDomainName = 0x0004
    MsvAvDnsTreeName = 0x0005
    MsvAvFlags = 0x0006
    MsvAvTimestamp = 0x0007
    MsvAvSingleHost = 0x0008
    MsvAvTargetName = 0x0009
    MsvAvChannelBindings = 0x000A


# MS-NLMP 2.2.2.1 MsvAvFlags: 0x2 = the AUTHENTICATE_MESSAGE carries a MIC.
_AV_FLAG_MIC_PRESENT = 0x00000002


class NtlmDecodeError(ValueError):
    """An NTLM message is malformed; ``what`` broke, at byte ``offset`` of the message."""

    def __init__(self, what: str, offset: int | None = None) -> None:
        self.what = what
        self.offset = offset
        super().__init__(what if offset is None else f"{what} (at offset {offset})")


class NtlmAuthError(Exception):
    """A well-formed logon was refused (wrong password, refused NTLM variant, bad MIC, stale response)."""


# ---------------------------------------------------------------------------------------- crypto


def hmac_md5(key: bytes, data: bytes) -> bytes:
    """MS-NLMP 6 HMAC_MD5 (RFC 2104 with MD5)."""
    return hmac.new(key, data, "md5").digest()


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


class Rc4:
    """RC4 key state (MS-NLMP 6 RC4Init / RC4): successive :meth:`update` calls continue one key stream."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("RC4 needs a key")
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s = s
        self._i = 0
        self._j = 0

    def update(self, data: bytes) -> bytes:
        s, i, j = self._s, self._i, self._j
        out = bytearray(len(data))
        for n, byte in enumerate(data):
            i = (i + 1) & 0xFF
            j = (j + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
            out[n] = byte ^ s[(s[i] + s[j]) & 0xFF]
        self._i, self._j = i, j
        return bytes(out)


def _uppercase(text: str) -> str:
    """MS-NLMP 3.3.2 Uppercase(User): Windows' one-to-one upcase table, so "ß" stays "ß" (not "SS")."""
    return "".join(u if len(u := ch.upper()) == 1 else ch for ch in text)


def _unicode(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def ntowfv2(nt_hash: bytes, user: str, domain: str) -> bytes:
    """MS-NLMP 3.3.2 NTOWFv2 = HMAC_MD5(MD4(UNICODE(Passwd)), UNICODE(Uppercase(User) + UserDom))."""
    return hmac_md5(nt_hash, _unicode(_uppercase(user) + domain))


def signkey(flags: int, exported_session_key: bytes, client: bool) -> bytes:
    """MS-NLMP 3.4.5.2 SIGNKEY (extended session security only)."""
    return _md5(exported_session_key + (_CLIENT_SIGNING if client else _SERVER_SIGNING))


def sealkey(flags: int, exported_session_key: bytes, client: bool) -> bytes:
    """MS-NLMP 3.4.5.3 SEALKEY with extended session security: 128, 56 or 40 bits of the key, then MD5."""
    if flags & F.NTLMSSP_NEGOTIATE_128:
        key = exported_session_key
    elif flags & F.NTLMSSP_NEGOTIATE_56:
        key = exported_session_key[:7]
    else:
        key = exported_session_key[:5]
    return _md5(key + (_CLIENT_SEALING if client else _SERVER_SEALING))


def filetime(unix_seconds: float) -> int:
    """MS-DTYP 2.3.3 FILETIME (100 ns ticks since 1601) of a Unix time."""
    return _FILETIME_UNIX_EPOCH + round(unix_seconds * 10_000_000)


# -------------------------------------------------------------------------------------- messages


def _fields(data: bytes, at: int, what: str) -> bytes:
    """The payload bytes described by the (Len, MaxLen, BufferOffset) triple at ``at`` (MS-NLMP 2.2.1)."""
    length, _max_length, offset = struct.unpack_from("<HHI", data, at)
    if length == 0:
        return b""
    if offset > len(data) or length > len(data) - offset:
        raise NtlmDecodeError(f"{what}: {length} bytes at offset {offset} lie outside the message", at)
    return data[offset : offset + length]


def _header(data: bytes, message_type: int, minimum: int, what: str) -> None:
    if len(data) < minimum:
        raise NtlmDecodeError(f"{what}: {len(data)} bytes, at least {minimum} needed", len(data))
    if data[:8] != NTLMSSP_SIGNATURE:
        raise NtlmDecodeError(f"{what}: no NTLMSSP signature", 0)
    (found,) = struct.unpack_from("<I", data, 8)
    if found != message_type:
        raise NtlmDecodeError(f"{what}: MessageType {found}, expected {message_type}", 8)


def message_type(data: bytes) -> int | None:
    """The MessageType of an NTLM message, or None if ``data`` is not one."""
    if len(data) < 12 or data[:8] != NTLMSSP_SIGNATURE:
        return None
    return int(struct.unpack_from("<I", data, 8)[0])


def _text(raw: bytes, unicode: bool, what: str, at: int) -> str:
    if unicode:
        if len(raw) % 2:
            raise NtlmDecodeError(f"{what}: odd length {len(raw)} for UTF-16", at)
        return raw.decode("utf-16-le", "surrogatepass")
    try:
        return raw.decode("ascii")  # OEM character set: only its ASCII part is unambiguous
    except UnicodeDecodeError:
        raise NtlmDecodeError(f"{what}: non-ASCII OEM string", at) from None


def _av_pairs(data: bytes, start: int, what: str) -> tuple[dict[int, bytes], int]:
    """MS-NLMP 2.2.2.1: AV_PAIRs from ``start`` up to MsvAvEOL; returns them and the offset after EOL."""
    pairs: dict[int, bytes] = {}
    pos = start
    while True:
        if pos + 4 > len(data):
            raise NtlmDecodeError(f"{what}: AV_PAIR list ends without MsvAvEOL", pos)
        av_id, av_len = struct.unpack_from("<HH", data, pos)
        if av_len > len(data) - pos - 4:
            raise NtlmDecodeError(f"{what}: AV_PAIR {av_id} of {av_len} bytes overruns", pos)
        if av_id == AvId.MsvAvEOL:
            return pairs, pos + 4 + av_len
        pairs.setdefault(av_id, data[pos + 4 : pos + 4 + av_len])
        pos += 4 + av_len


def _encode_av_pairs(pairs: list[tuple[AvId, bytes]]) -> bytes:
    out = b"".join(struct.pack("<HH", av_id, len(value)) + value for av_id, value in pairs)
    return out + struct.pack("<HH", AvId.MsvAvEOL, 0)


@dataclass(frozen=True)
class AuthenticateMessage:
    """A decoded AUTHENTICATE_MESSAGE (MS-NLMP 2.2.1.3), plus the parts of its NTLMv2 response we use."""

    raw: bytes
    flags: NegotiateFlags
    lm_challenge_response: bytes
    nt_challenge_response: bytes
    domain_name: str
    user_name: str
    workstation: str
    encrypted_random_session_key: bytes
    mic: bytes | None  # present when the NTLMv2 response's MsvAvFlags says so
    client_timestamp: int | None  # NTLMv2_CLIENT_CHALLENGE.TimeStamp, if NTLMv2

    @property
    def is_anonymous(self) -> bool:
        """MS-NLMP 3.2.5.1.2: UserName empty, NtChallengeResponse empty, LmChallengeResponse Z(1) or empty."""
        return (
            not self.user_name
            and not self.nt_challenge_response
            and self.lm_challenge_response in (b"", b"\x00")
        )

    @property
    def is_ntlmv2(self) -> bool:
        """MS-NLMP 3.2.5.1.2: an NtChallengeResponse longer than 0x18 bytes is an NTLMv2_RESPONSE."""
        return len(self.nt_challenge_response) > _NTLMV1_RESPONSE_SIZE

    @classmethod
    def decode(cls, data: bytes) -> AuthenticateMessage:
        data = bytes(data)
        _header(data, _NTLM_AUTHENTICATE, _AUTHENTICATE_FIXED, "AUTHENTICATE_MESSAGE")
        (raw_flags,) = struct.unpack_from("<I", data, 60)
        flags = NegotiateFlags(raw_flags)
        unicode = bool(flags & F.NTLMSSP_NEGOTIATE_UNICODE)
        lm = _fields(data, 12, "LmChallengeResponse")
        nt = _fields(data, 20, "NtChallengeResponse")
        domain = _text(_fields(data, 28, "DomainName"), unicode, "DomainName", 28)
        user = _text(_fields(data, 36, "UserName"), unicode, "UserName", 36)
        workstation = _text(_fields(data, 44, "Workstation"), unicode, "Workstation", 44)
        session_key = _fields(data, 52, "EncryptedRandomSessionKey")
        mic: bytes | None = None
        timestamp: int | None = None
        if len(nt) > _NTLMV1_RESPONSE_SIZE:
            if len(nt) < _NT_PROOF_SIZE + _CLIENT_CHALLENGE_FIXED:
                raise NtlmDecodeError(f"NTLMv2 response of {len(nt)} bytes is too short", 20)
            blob = nt[_NT_PROOF_SIZE:]
            # MS-NLMP 2.2.2.7: RespType, HiRespType, Reserved1, Reserved2, TimeStamp, ChallengeFromClient...
            (timestamp,) = struct.unpack_from("<Q", blob, 8)
            pairs, _ = _av_pairs(blob, _CLIENT_CHALLENGE_FIXED, "NTLMv2_CLIENT_CHALLENGE")
            av_flags = pairs.get(AvId.MsvAvFlags, b"")
            if len(av_flags) == 4 and struct.unpack("<I", av_flags)[0] & _AV_FLAG_MIC_PRESENT:
                payload_start = min(
                    (o for at in (12, 20, 28, 36, 44, 52) if (o := _payload_offset(data, at)) is not None),
                    default=len(data),
                )
                if payload_start < _MIC_OFFSET + _MIC_SIZE or len(data) < _MIC_OFFSET + _MIC_SIZE:
                    raise NtlmDecodeError("MsvAvFlags announces a MIC but the message has no room for it", 72)
                mic = data[_MIC_OFFSET : _MIC_OFFSET + _MIC_SIZE]
        return cls(data, flags, lm, nt, domain, user, workstation, session_key, mic, timestamp)


def _payload_offset(data: bytes, at: int) -> int | None:
    length, _max, offset = struct.unpack_from("<HHI", data, at)
    return offset if length else None


def _negotiate_flags(data: bytes) -> NegotiateFlags:
    """MS-NLMP 2.2.1.1: the NegotiateFlags of a NEGOTIATE_MESSAGE (the rest is informational)."""
    _header(data, _NTLM_NEGOTIATE, 16, "NEGOTIATE_MESSAGE")
    return NegotiateFlags(struct.unpack_from("<I", data, 12)[0])


@dataclass(frozen=True)
class ServerNames:
    """The names a server announces in its CHALLENGE_MESSAGE TargetInfo (MS-NLMP 3.2.5.1.1)."""

    nb_computer_name: str
    nb_domain_name: str
    dns_computer_name: str = ""
    dns_domain_name: str = ""


@dataclass(frozen=True)
class NtlmSession:
    """What a successful logon yields: the negotiated flags and ExportedSessionKey (MS-NLMP 3.2.5.1.2).

    :meth:`sign` and :meth:`verify_signature` are the MAC of MS-NLMP 3.4.4 for the first message in each
    direction (sequence number 0, fresh RC4 state), which is what SPNEGO's mechListMIC uses (MS-SPNG
    3.2.5.1: the RC4 state after the mechListMIC is reset to its state before it).
    """

    flags: NegotiateFlags
    exported_session_key: bytes

    def _mac(self, message: bytes, seq_num: int, client: bool) -> bytes:
        # MS-NLMP 3.4.4.3: with neither SIGN nor SEAL negotiated the signature is Version 1 and zeros.
        if not self.flags & (F.NTLMSSP_NEGOTIATE_SIGN | F.NTLMSSP_NEGOTIATE_SEAL):
            return struct.pack("<I", _SIGNATURE_VERSION) + bytes(12)
        if not self.flags & F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY:
            raise NtlmAuthError("message signatures without extended session security are not supported")
        seq = struct.pack("<I", seq_num)
        # MS-NLMP 3.4.4.2: HMAC_MD5(SigningKey, SeqNum + Message)[0..7], RC4-sealed if KEY_EXCH.
        checksum = hmac_md5(signkey(self.flags, self.exported_session_key, client), seq + message)[:8]
        if self.flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH:
            checksum = Rc4(sealkey(self.flags, self.exported_session_key, client)).update(checksum)
        return struct.pack("<I", _SIGNATURE_VERSION) + checksum + seq

    def sign(self, message: bytes, seq_num: int = 0) -> bytes:
        """The server's NTLMSSP_MESSAGE_SIGNATURE over ``message`` (server-to-client keys)."""
        return self._mac(message, seq_num, client=False)

    def verify_signature(self, message: bytes, signature: bytes, seq_num: int = 0) -> bool:
        """Whether ``signature`` is the client's NTLMSSP_MESSAGE_SIGNATURE over ``message``."""
        return hmac.compare_digest(self._mac(message, seq_num, client=True), signature)


class NtlmAcceptor:
    """One logon on the server side (MS-NLMP 3.2.5.1): NEGOTIATE in, CHALLENGE out, AUTHENTICATE in."""

    def __init__(self, names: ServerNames, version: bytes = DEFAULT_VERSION) -> None:
        self._names = names
        self._version = version
        self._negotiate: bytes | None = None
        self._challenge: bytes | None = None
        self._server_challenge = b""
        self._flags = NegotiateFlags(0)

    def challenge(self, negotiate: bytes, *, server_challenge: bytes, timestamp: int) -> bytes:
        """Answer a NEGOTIATE_MESSAGE with a CHALLENGE_MESSAGE (MS-NLMP 3.2.5.1.1).

        ``server_challenge`` is an 8-byte nonce for this logon only; ``timestamp`` the server time (FILETIME)
        for MsvAvTimestamp.
        """
        if self._negotiate is not None:
            raise NtlmDecodeError("a second NEGOTIATE_MESSAGE in one logon", 0)
        if len(server_challenge) != _SERVER_CHALLENGE_SIZE:
            raise ValueError("the server challenge is 8 bytes")
        negotiate = bytes(negotiate)
        requested = _negotiate_flags(negotiate)
        flags = (requested & _SUPPORTED_FLAGS) | _ALWAYS_SET
        # MS-NLMP 2.2.2.5 A/B: Unicode if offered, else OEM, else SEC_E_INVALID_TOKEN.
        if requested & F.NTLMSSP_NEGOTIATE_UNICODE:
            flags &= ~F.NTLM_NEGOTIATE_OEM
        elif not requested & F.NTLM_NEGOTIATE_OEM:
            raise NtlmAuthError("NEGOTIATE_MESSAGE offers neither Unicode nor OEM strings")
        unicode = bool(flags & F.NTLMSSP_NEGOTIATE_UNICODE)
        names = self._names
        target_name = _unicode(names.nb_computer_name) if unicode else names.nb_computer_name.encode("ascii")
        pairs = [
            (AvId.MsvAvNbComputerName, _unicode(names.nb_computer_name)),
            (AvId.MsvAvNbDomainName, _unicode(names.nb_domain_name)),
        ]
        if names.dns_computer_name:
            pairs.append((AvId.MsvAvDnsComputerName, _unicode(names.dns_computer_name)))
        if names.dns_domain_name:
            pairs.append((AvId.MsvAvDnsDomainName, _unicode(names.dns_domain_name)))
        pairs.append((AvId.MsvAvTimestamp, struct.pack("<Q", timestamp)))
        target_info = _encode_av_pairs(pairs)
        version = self._version if flags & F.NTLMSSP_NEGOTIATE_VERSION else bytes(8)
        # MS-NLMP 2.2.1.2: Signature, MessageType, TargetNameFields, NegotiateFlags, ServerChallenge,
        # Reserved, TargetInfoFields, Version, then the payload (TargetName, TargetInfo).
        name_offset = _CHALLENGE_FIXED
        info_offset = name_offset + len(target_name)
        message = (
            NTLMSSP_SIGNATURE
            + struct.pack("<I", _NTLM_CHALLENGE)
            + struct.pack("<HHI", len(target_name), len(target_name), name_offset)
            + struct.pack("<I", int(flags))
            + server_challenge
            + bytes(8)
            + struct.pack("<HHI", len(target_info), len(target_info), info_offset)
            + version
            + target_name
            + target_info
        )
        self._negotiate = negotiate
        self._challenge = message
        self._server_challenge = server_challenge
        self._flags = flags
        return message

    def authenticate(self, data: bytes) -> AuthenticateMessage:
        """Decode the AUTHENTICATE_MESSAGE that answers our challenge (no verification yet)."""
        if self._challenge is None:
            raise NtlmDecodeError("AUTHENTICATE_MESSAGE before any CHALLENGE_MESSAGE", 0)
        return AuthenticateMessage.decode(data)

    def verify(self, auth: AuthenticateMessage, nt_hash: bytes, *, now: int) -> NtlmSession:
        """Check an NTLMv2 response against the account's NT hash (MS-NLMP 3.2.5.1.2, 3.3.2).

        The NT proof is computed over the NTLMv2_CLIENT_CHALLENGE bytes exactly as received. The domain is
        the one the client sent; if that fails, NIL is tried (MS-NLMP 3.2.5.1.2: servers SHOULD support
        clients that used NIL for UserDom). Raises :class:`NtlmAuthError`.
        """
        if self._challenge is None or self._negotiate is None:
            raise NtlmDecodeError("AUTHENTICATE_MESSAGE before any CHALLENGE_MESSAGE", 0)
        if not auth.is_ntlmv2:
            raise NtlmAuthError("LM and NTLMv1 responses are refused; NTLMv2 is required")
        # The client can only choose among what we offered (connection-oriented NegFlg, MS-NLMP 3.1.1).
        flags = NegotiateFlags(auth.flags & self._flags)
        response = auth.nt_challenge_response
        proof, blob = response[:_NT_PROOF_SIZE], response[_NT_PROOF_SIZE:]
        for domain in dict.fromkeys((auth.domain_name, "")):
            response_key = ntowfv2(nt_hash, auth.user_name, domain)
            expected = hmac_md5(response_key, self._server_challenge + blob)
            if hmac.compare_digest(expected, proof):
                break
        else:
            raise NtlmAuthError("the NTLMv2 response does not match the account's password")
        # MS-NLMP 3.3.2 / 3.4.5.1: SessionBaseKey = HMAC_MD5(ResponseKeyNT, NTProofStr) = KeyExchangeKey.
        key_exchange_key = hmac_md5(response_key, proof)
        session_security = flags & (F.NTLMSSP_NEGOTIATE_SIGN | F.NTLMSSP_NEGOTIATE_SEAL)
        if flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH and session_security:
            if len(auth.encrypted_random_session_key) != _SESSION_KEY_SIZE:
                raise NtlmAuthError("KEY_EXCH negotiated but no 16-byte EncryptedRandomSessionKey")
            exported = Rc4(key_exchange_key).update(auth.encrypted_random_session_key)
        else:
            exported = key_exchange_key
        # MS-NLMP 3.2.5.1.2: a response whose TimeStamp is more than MaxLifetime from the server time fails.
        if auth.client_timestamp is not None and abs(now - auth.client_timestamp) > MAX_LIFETIME:
            raise NtlmAuthError("the NTLMv2 response's timestamp is outside MaxLifetime (36 hours)")
        if auth.mic is not None:
            zeroed = auth.raw[:_MIC_OFFSET] + bytes(_MIC_SIZE) + auth.raw[_MIC_OFFSET + _MIC_SIZE :]
            expected_mic = hmac_md5(exported, self._negotiate + self._challenge + zeroed)
            if not hmac.compare_digest(expected_mic, auth.mic):
                raise NtlmAuthError("the AUTHENTICATE_MESSAGE MIC is wrong")
        return NtlmSession(flags, exported)
