"""The client side of NTLM (MS-NLMP §3.1.5.1) inside SPNEGO (RFC 4178, MS-SPNG), sans-I/O.

:class:`NtlmInitiator` has the shape every SMB logon here drives (``step``, ``complete``,
``session_key``)::

    ntlm = NtlmInitiator("alice", nt_hash=nt_hash("pw"), target="cifs/fs1")
    token = ntlm.step(negotiate_response.security_buffer)    # NegTokenInit + NEGOTIATE_MESSAGE
    token = ntlm.step(challenge_token)                       # NegTokenResp + AUTHENTICATE_MESSAGE
    ntlm.step(final_token)                                   # checks the server's mechListMIC -> None
    ntlm.complete, ntlm.session_key                          # True, ExportedSessionKey

It speaks NTLMv2 only, as Windows at LmCompatibilityLevel 3+: extended session security, 128-bit,
KEY_EXCH (a fresh random ExportedSessionKey, RC4-sealed with the KeyExchangeKey), the AUTHENTICATE MIC
with MsvAvFlags bit 0x2, the channel-bindings and target-name AV pairs, and the SPNEGO mechListMIC in
both directions. The CHALLENGE is checked first (§3.1.5.1.2): a server that will not do NTLMv2 with
128-bit extended session security, or whose TargetInfo lacks MsvAvNbComputerName/MsvAvNbDomainName, is
refused. An empty user name with no password is the anonymous logon (§3.2.5.1.2: empty responses, no
session key, no MIC).

Every failure raises :class:`NtlmInitiatorError` (the server's tokens never raise anything else).
"""

from __future__ import annotations

import hmac
import os
import struct
import time
from collections.abc import Callable
from typing import Final

from .ntlm import AvId, NegotiateFlags, NtlmDecodeError, filetime, hmac_md5, ntowfv2, sealkey, signkey
from .spnego import (
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    SpnegoDecodeError,
    decode_token,
    encode_mech_type_list,
    encode_neg_token_init,
    encode_neg_token_resp,
)

try:  # cryptography >= 43 moved RC4 to "decrepit"; a C RC4 is ~50x faster than a Python one
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4  # type: ignore[no-redef,unused-ignore]
from cryptography.hazmat.primitives.ciphers import Cipher

F = NegotiateFlags
# What Windows 10+ and Samba's client ask for (MS-NLMP §2.2.2.5).
CLIENT_FLAGS: Final = (
    F.NTLMSSP_NEGOTIATE_UNICODE
    | F.NTLMSSP_REQUEST_TARGET
    | F.NTLMSSP_NEGOTIATE_SIGN
    | F.NTLMSSP_NEGOTIATE_NTLM
    | F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN
    | F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | F.NTLMSSP_NEGOTIATE_TARGET_INFO
    | F.NTLMSSP_NEGOTIATE_VERSION
    | F.NTLMSSP_NEGOTIATE_128
    | F.NTLMSSP_NEGOTIATE_KEY_EXCH
    | F.NTLMSSP_NEGOTIATE_56
)
# What the CHALLENGE must grant for NTLMv2 session security (§3.1.5.1.2, ClientRequire128bitEncryption).
REQUIRED_FLAGS: Final = (
    F.NTLMSSP_NEGOTIATE_UNICODE | F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | F.NTLMSSP_NEGOTIATE_128
)
NTLM_VERSION: Final = struct.pack("<BBH3xB", 10, 0, 19041, 0x0F)  # §2.2.2.10: 10.0.19041, NTLMSSP rev 15
MIC_PRESENT: Final = 0x00000002  # §2.2.2.1 MsvAvFlags
MECH_TYPES: Final = (NTLMSSP_OID,)
MECH_TYPES_DER: Final = encode_mech_type_list(MECH_TYPES)
_NEGOTIATE, _CHALLENGE, _AUTHENTICATE = 1, 2, 3
_CHALLENGE_MIN: Final = 48  # §2.2.1.2 up to TargetInfoFields (Version is optional)
_AUTH_FIXED: Final = 88  # §2.2.1.3: fields, NegotiateFlags, Version, MIC
_MAX_AV_PAIRS: Final = 64  # a CHALLENGE's TargetInfo has about 6; more is hostile


class NtlmInitiatorError(Exception):
    """The logon cannot go on: the server's token is malformed, refuses us, or is too weak."""


def _rc4(key: bytes, data: bytes) -> bytes:
    return Cipher(ARC4(key), mode=None).encryptor().update(data)


def _field(data: bytes, at: int, what: str) -> bytes:
    """§2.2.1: the payload a (Len, MaxLen, BufferOffset) triple at ``at`` describes, bounds-checked."""
    length, _, offset = struct.unpack_from("<HHI", data, at)
    if length == 0:
        return b""
    if offset > len(data) or length > len(data) - offset:
        raise NtlmInitiatorError(f"CHALLENGE_MESSAGE {what}: {length} bytes at {offset} lie outside it")
    return data[offset : offset + length]


def _av_pairs(blob: bytes) -> list[tuple[int, bytes]]:
    """§2.2.2.1 AV_PAIRs up to MsvAvEOL, bounds-checked and bounded in number."""
    pairs: list[tuple[int, bytes]] = []
    at = 0
    while True:
        if at + 4 > len(blob):
            raise NtlmInitiatorError("CHALLENGE_MESSAGE TargetInfo ends without MsvAvEOL")
        av_id, length = struct.unpack_from("<HH", blob, at)
        if av_id == AvId.MsvAvEOL:
            return pairs
        if at + 4 + length > len(blob) or len(pairs) >= _MAX_AV_PAIRS:
            raise NtlmInitiatorError("CHALLENGE_MESSAGE TargetInfo is malformed")
        pairs.append((av_id, blob[at + 4 : at + 4 + length]))
        at += 4 + length


def _mac(flags: int, exported_session_key: bytes, message: bytes, *, client: bool) -> bytes:
    """§3.4.4.2 the NTLMSSP_MESSAGE_SIGNATURE of the first message (sequence 0) one way."""
    seq = struct.pack("<I", 0)
    checksum = hmac_md5(signkey(flags, exported_session_key, client), seq + message)[:8]
    if flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH:
        checksum = _rc4(sealkey(flags, exported_session_key, client), checksum)
    return struct.pack("<I", 1) + checksum + seq


class NtlmInitiator:
    """One NTLMv2 logon through SPNEGO (see the module docstring).

    ``domain`` None uses the server's NetBIOS domain from the CHALLENGE (what a local account on the
    server needs). ``target`` is the SPN sent as MsvAvTargetName (``cifs/host``). ``clock`` and
    ``random`` are injectable for reproducible tests.
    """

    def __init__(
        self,
        user: str,
        *,
        nt_hash: bytes | None = None,
        domain: str | None = None,
        workstation: str = "",
        target: str = "",
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.user = user
        self.anonymous = not user and nt_hash is None
        if not self.anonymous and nt_hash is None:
            raise NtlmInitiatorError("NTLM needs a password or an NT hash")
        if nt_hash is not None and len(nt_hash) != 16:
            raise NtlmInitiatorError("an NT hash is 16 bytes")
        self._nt_hash = nt_hash or b""
        self.domain = domain
        self.workstation = workstation
        self.target = target
        self._clock = clock
        self._random = random
        self._state = 0
        self._negotiate = b""
        self.flags = 0
        self._session_key = b""
        self._complete = False
        self.server_names: dict[int, str] = {}

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def session_key(self) -> bytes:
        """ExportedSessionKey (MS-NLMP §3.1.5.1.2), the GSS session key SMB derives its keys from."""
        return self._session_key

    def step(self, in_token: bytes | None = None) -> bytes | None:
        """The next token to send, or None when the exchange is done (see the module docstring)."""
        try:
            if self._state == 0:
                return self._first(in_token)
            if self._state == 1:
                return self._second(in_token)
            if self._state == 2:
                self._last(in_token)
                return None
        except (SpnegoDecodeError, NtlmDecodeError, struct.error) as exc:
            raise NtlmInitiatorError(f"the server's SPNEGO/NTLM token is malformed: {exc}") from None
        raise NtlmInitiatorError("the NTLM exchange is already over")

    # -- the legs ------------------------------------------------------------------------------------

    def _first(self, hint: bytes | None) -> bytes:
        if hint:
            # MS-SPNG §3.2.5.2: the NegTokenInit2 of the NEGOTIATE response lists what the server takes.
            init = decode_token(hint)
            if isinstance(init, NegTokenInit) and NTLMSSP_OID not in init.mech_types:
                raise NtlmInitiatorError(
                    f"the server does not offer NTLM (it offers {', '.join(init.mech_types)})"
                )
        # §2.2.1.1: Signature, MessageType, NegotiateFlags, DomainNameFields, WorkstationFields, Version.
        self._negotiate = b"NTLMSSP\x00" + struct.pack("<II16x", _NEGOTIATE, CLIENT_FLAGS) + NTLM_VERSION
        self._state = 1
        return encode_neg_token_init(MECH_TYPES, mech_token=self._negotiate)

    def _second(self, in_token: bytes | None) -> bytes:
        if not in_token:
            raise NtlmInitiatorError("the server sent no CHALLENGE")
        resp = decode_token(in_token)
        if not isinstance(resp, NegTokenResp) or resp.neg_state == NegState.REJECT:
            raise NtlmInitiatorError("the server rejected NTLM")
        if resp.supported_mech not in (None, NTLMSSP_OID) or not resp.response_token:
            raise NtlmInitiatorError(f"the server chose {resp.supported_mech}, not NTLM")
        auth = self._authenticate(resp.response_token)
        self._state = 2
        mic = None if self.anonymous else _mac(self.flags, self._session_key, MECH_TYPES_DER, client=True)
        return encode_neg_token_resp(response_token=auth, mech_list_mic=mic)

    def _last(self, in_token: bytes | None) -> None:
        self._state = 3
        if in_token:
            resp = decode_token(in_token)
            if not isinstance(resp, NegTokenResp):
                raise NtlmInitiatorError("the server's last token is not a NegTokenResp")
            if resp.neg_state not in (None, NegState.ACCEPT_COMPLETED):
                raise NtlmInitiatorError(f"the server ended SPNEGO in state {resp.neg_state}")
            # MS-SPNG §3.3.5.1 / RFC 4178 §5: the acceptor's mechListMIC over our mechTypes, if sent.
            if resp.mech_list_mic is not None and not self.anonymous:
                expected = _mac(self.flags, self._session_key, MECH_TYPES_DER, client=False)
                if not hmac.compare_digest(expected, resp.mech_list_mic):
                    raise NtlmInitiatorError("the server's mechListMIC is wrong")
        self._complete = True

    def _authenticate(self, challenge: bytes) -> bytes:
        """§3.1.5.1.2: check the CHALLENGE_MESSAGE and answer it."""
        if len(challenge) < _CHALLENGE_MIN or challenge[:8] != b"NTLMSSP\x00":
            raise NtlmInitiatorError("not an NTLM CHALLENGE_MESSAGE")
        (kind,) = struct.unpack_from("<I", challenge, 8)
        if kind != _CHALLENGE:
            raise NtlmInitiatorError(f"NTLM MessageType {kind}, expected CHALLENGE (2)")
        (server_flags,) = struct.unpack_from("<I", challenge, 20)
        server_challenge = challenge[24:32]
        flags = server_flags & CLIENT_FLAGS
        if flags & REQUIRED_FLAGS != REQUIRED_FLAGS:
            raise NtlmInitiatorError(
                "the server does not offer NTLMv2 with 128-bit extended session security "
                f"(flags 0x{server_flags:08X})"
            )
        if self.anonymous:
            return self._anonymous(challenge, flags)
        target_info = _field(challenge, 40, "TargetInfo")
        pairs = _av_pairs(target_info)
        names = dict(pairs)
        if AvId.MsvAvNbComputerName not in names or AvId.MsvAvNbDomainName not in names:
            raise NtlmInitiatorError("the server's TargetInfo lacks its NetBIOS computer or domain name")
        try:
            self.server_names = {k: v.decode("utf-16-le") for k, v in pairs if k <= AvId.MsvAvDnsTreeName}
        except UnicodeDecodeError:
            raise NtlmInitiatorError("the server's TargetInfo names are not UTF-16") from None
        domain = self.domain if self.domain is not None else self.server_names[AvId.MsvAvNbDomainName]
        stamp = names.get(AvId.MsvAvTimestamp)
        if stamp is not None and len(stamp) != 8:
            raise NtlmInitiatorError("the server's MsvAvTimestamp is not 8 bytes")
        timestamp = stamp if stamp is not None else struct.pack("<Q", filetime(self._clock()))
        # §3.1.5.1.2: the server's pairs, MsvAvFlags with the MIC bit, channel bindings, target name.
        av_flags = 0
        out_pairs: list[tuple[int, bytes]] = []
        for av_id, value in pairs:
            if av_id == AvId.MsvAvFlags and len(value) == 4:
                (av_flags,) = struct.unpack("<I", value)
            elif av_id not in (AvId.MsvAvFlags, AvId.MsvAvChannelBindings, AvId.MsvAvTargetName):
                out_pairs.append((av_id, value))
        out_pairs.append((AvId.MsvAvFlags, struct.pack("<I", av_flags | MIC_PRESENT)))
        out_pairs.append((AvId.MsvAvChannelBindings, bytes(16)))
        out_pairs.append((AvId.MsvAvTargetName, self.target.encode("utf-16-le")))
        av = b"".join(struct.pack("<HH", i, len(v)) + v for i, v in out_pairs) + bytes(4)
        # §2.2.2.7 NTLMv2_CLIENT_CHALLENGE; §3.3.2 NTProofStr, SessionBaseKey.
        blob = b"\x01\x01" + bytes(6) + timestamp + self._random(8) + bytes(4) + av + bytes(4)
        key = ntowfv2(self._nt_hash, self.user, domain)
        proof = hmac_md5(key, server_challenge + blob)
        key_exchange_key = hmac_md5(key, proof)  # §3.4.5.1 KXKEY with extended session security
        if flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH:
            exported = self._random(16)
            encrypted_key = _rc4(key_exchange_key, exported)
        else:
            exported, encrypted_key = key_exchange_key, b""
        self.flags = flags
        self._session_key = exported
        lm_response = bytes(24)  # §3.1.5.1.2: Z(24) beside an NTLMv2 response
        message = self._message(flags, lm_response, proof + blob, domain, self.user, encrypted_key)
        mic = hmac_md5(exported, self._negotiate + challenge + message)
        return message[:72] + mic + message[88:]

    def _anonymous(self, challenge: bytes, flags: int) -> bytes:
        """§3.1.5.1.2, §3.2.5.1.2 anonymous: no user, NtChallengeResponse empty, LmChallengeResponse Z(1)."""
        flags = (flags | F.NTLMSSP_ANONYMOUS) & ~F.NTLMSSP_NEGOTIATE_KEY_EXCH
        self.flags = flags
        self._session_key = b""
        return self._message(flags, b"\x00", b"", "", "", b"")

    def _message(self, flags: int, lm: bytes, nt: bytes, domain: str, user: str, key: bytes) -> bytes:
        """§2.2.1.3 AUTHENTICATE_MESSAGE with a zero MIC field."""
        payload = [
            lm,
            nt,
            domain.encode("utf-16-le"),
            user.encode("utf-16-le"),
            self.workstation.encode("utf-16-le"),
            key,
        ]
        offset = _AUTH_FIXED
        fields = b""
        for item in payload:
            fields += struct.pack("<HHI", len(item), len(item), offset)
            offset += len(item)
        head = (
            b"NTLMSSP\x00"
            + struct.pack("<I", _AUTHENTICATE)
            + fields
            + struct.pack("<I", flags)
            + NTLM_VERSION
        )
        return head + bytes(16) + b"".join(payload)


__all__ = ["CLIENT_FLAGS", "NtlmInitiator", "NtlmInitiatorError"]
