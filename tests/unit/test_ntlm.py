"""The NTLM acceptor (MS-NLMP): spec test vectors, and real initiators (pyspnego, impacket) as oracles."""

from __future__ import annotations

import struct
import time

import pytest
import spnego
from Cryptodome.Cipher import ARC4
from hypothesis import given, settings
from hypothesis import strategies as st
from impacket import ntlm as impacket_ntlm

from netsession.server.accounts import nt_hash
from netsession.wire.ntlm import (
    MAX_LIFETIME,
    AuthenticateMessage,
    AvId,
    NegotiateFlags,
    NtlmAcceptor,
    NtlmAuthError,
    NtlmDecodeError,
    NtlmSession,
    Rc4,
    ServerNames,
    filetime,
    hmac_md5,
    ntowfv2,
    sealkey,
    signkey,
)

F = NegotiateFlags
NAMES = ServerNames("FS1", "FS1", "fs1.example")
NOW = filetime(1_700_000_000.0)
SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# ------------------------------------------------------------------------ MS-NLMP 4.2.4 test vectors

SPEC_AUTHENTICATE = h("""
4e544c4d53535000 03000000 18001800 6c000000 54005400 84000000 0c000c00 48000000
08000800 54000000 10001000 5c000000 10001000 d8000000 358288e2 0501280a 0000000f
44006f006d00610069006e00 5500730065007200 43004f004d0050005500540045005200
86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa
68cd0ab851e51c96aabc927bebef6a1c 0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa
00000000 02000c0044006f006d00610069006e00 01000c00530065007200760065007200
0000000000000000
c5dad2544fc9799094ce1ce90bc9d03e
""")
SPEC_FLAGS = 0xE28A8233  # MS-NLMP 4.2.4: the challenge flags listed there


def test_ntowfv2_spec_vector() -> None:
    # MS-NLMP 4.2.4.1.1: NTOWFv2("Password", "User", "Domain").
    assert ntowfv2(nt_hash("Password"), "User", "Domain").hex() == "0c868a403bfd7a93a3001ef22ef02e3f"


def test_spec_authenticate_message_decodes() -> None:
    auth = AuthenticateMessage.decode(SPEC_AUTHENTICATE)
    assert (auth.user_name, auth.domain_name, auth.workstation) == ("User", "Domain", "COMPUTER")
    assert auth.is_ntlmv2 and not auth.is_anonymous and auth.mic is None
    assert auth.client_timestamp == 0


def _spec_acceptor() -> NtlmAcceptor:
    acceptor = NtlmAcceptor(ServerNames("Server", "Domain"))
    negotiate = b"NTLMSSP\x00" + struct.pack("<II", 1, SPEC_FLAGS | F.NTLMSSP_NEGOTIATE_UNICODE) + bytes(16)
    acceptor.challenge(negotiate, server_challenge=h("0123456789abcdef"), timestamp=0)
    return acceptor


def test_spec_vector_verifies_to_the_random_session_key() -> None:
    # MS-NLMP 4.2.4.2.3: EncryptedRandomSessionKey = RC4(KeyExchangeKey, RandomSessionKey = 0x55 * 16).
    acceptor = _spec_acceptor()
    session = acceptor.verify(acceptor.authenticate(SPEC_AUTHENTICATE), nt_hash("Password"), now=0)
    assert session.exported_session_key == b"\x55" * 16


def test_spec_vector_session_base_key() -> None:
    # MS-NLMP 4.2.4.1.2: SessionBaseKey; it is the KeyExchangeKey that decrypts EncryptedRandomSessionKey.
    key = ntowfv2(nt_hash("Password"), "User", "Domain")
    proof = SPEC_AUTHENTICATE[0x84 : 0x84 + 16]
    assert hmac_md5(key, proof).hex() == "8de40ccadbc14a82f15cb0ad0de95ca3"
    assert Rc4(hmac_md5(key, proof)).update(b"\x55" * 16).hex() == "c5dad2544fc9799094ce1ce90bc9d03e"


def test_spec_vector_wrong_password_fails() -> None:
    acceptor = _spec_acceptor()
    with pytest.raises(NtlmAuthError, match="does not match"):
        acceptor.verify(acceptor.authenticate(SPEC_AUTHENTICATE), nt_hash("password"), now=0)


def test_spec_signing_and_sealing_keys_and_checksum() -> None:
    # MS-NLMP 4.2.4.4: client keys from RandomSessionKey, SEAL of "Plaintext" then the RC4'd checksum.
    key = b"\x55" * 16
    assert sealkey(SPEC_FLAGS, key, client=True).hex() == "59f600973cc4960a25480a7c196e4c58"
    assert signkey(SPEC_FLAGS, key, client=True).hex() == "4788dc861b4782f35d43fd98fe1a2d39"
    plaintext = "Plaintext".encode("utf-16-le")
    handle = Rc4(sealkey(SPEC_FLAGS, key, client=True))
    assert handle.update(plaintext).hex() == "54e50165bf1936dc996020c1811b0f06fb5f"
    checksum = hmac_md5(signkey(SPEC_FLAGS, key, client=True), bytes(4) + plaintext)[:8]
    assert checksum.hex() == "70352851f2564309"
    assert handle.update(checksum).hex() == "7fb38ec5c55d4976"


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=64), st.lists(st.binary(max_size=50), max_size=4))
def test_rc4_agrees_with_pycryptodome(key: bytes, chunks: list[bytes]) -> None:
    key = key if len(key) >= 5 else key * 5  # pycryptodome wants keys of 40 bits or more
    ours, theirs = Rc4(key), ARC4.new(key)
    for chunk in chunks:
        assert ours.update(chunk) == theirs.encrypt(chunk)


# ----------------------------------------------------------------------------------- CHALLENGE


def _negotiate(flags: int) -> bytes:
    return b"NTLMSSP\x00" + struct.pack("<II", 1, flags) + bytes(16)


def test_challenge_is_read_by_impacket() -> None:
    t1 = impacket_ntlm.getNTLMSSPType1("WS", "", True)
    raw = NtlmAcceptor(NAMES).challenge(t1.getData(), server_challenge=SERVER_CHALLENGE, timestamp=NOW)
    challenge = impacket_ntlm.NTLMAuthChallenge(raw)
    assert challenge["challenge"] == SERVER_CHALLENGE
    assert challenge["domain_name"] == "FS1".encode("utf-16-le")  # TargetName: the server's name
    info = impacket_ntlm.AV_PAIRS(challenge["TargetInfoFields"])
    assert info[impacket_ntlm.NTLMSSP_AV_HOSTNAME][1] == "FS1".encode("utf-16-le")
    assert info[impacket_ntlm.NTLMSSP_AV_DOMAINNAME][1] == "FS1".encode("utf-16-le")
    assert info[impacket_ntlm.NTLMSSP_AV_DNS_HOSTNAME][1] == "fs1.example".encode("utf-16-le")
    assert info[impacket_ntlm.NTLMSSP_AV_TIME][1] == struct.pack("<Q", NOW)


def test_challenge_flags_echo_supported_requests_only() -> None:
    requested = (
        F.NTLMSSP_NEGOTIATE_UNICODE
        | F.NTLM_NEGOTIATE_OEM
        | F.NTLMSSP_NEGOTIATE_SIGN
        | F.NTLMSSP_NEGOTIATE_LM_KEY
        | F.NTLMSSP_NEGOTIATE_DATAGRAM
        | F.NTLMSSP_NEGOTIATE_KEY_EXCH
        | F.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    )
    raw = NtlmAcceptor(NAMES).challenge(
        _negotiate(requested), server_challenge=SERVER_CHALLENGE, timestamp=NOW
    )
    flags = F(struct.unpack_from("<I", raw, 20)[0])
    assert flags & F.NTLMSSP_NEGOTIATE_UNICODE and not flags & F.NTLM_NEGOTIATE_OEM  # MS-NLMP 2.2.2.5 A/B
    assert flags & F.NTLMSSP_NEGOTIATE_SIGN and flags & F.NTLMSSP_NEGOTIATE_KEY_EXCH
    assert not flags & (F.NTLMSSP_NEGOTIATE_LM_KEY | F.NTLMSSP_NEGOTIATE_DATAGRAM)
    # MS-NLMP 3.2.5.1.1: always set by a server outside a domain.
    for always in (
        F.NTLMSSP_REQUEST_TARGET,
        F.NTLMSSP_NEGOTIATE_NTLM,
        F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN,
        F.NTLMSSP_NEGOTIATE_TARGET_INFO,
        F.NTLMSSP_TARGET_TYPE_SERVER,
    ):
        assert flags & always
    assert not flags & F.NTLMSSP_NEGOTIATE_VERSION and raw[48:56] == bytes(8)  # Version zero unless asked


def test_challenge_oem_only_uses_oem_target_name() -> None:
    raw = NtlmAcceptor(NAMES).challenge(
        _negotiate(F.NTLM_NEGOTIATE_OEM), server_challenge=SERVER_CHALLENGE, timestamp=NOW
    )
    length, _, offset = struct.unpack_from("<HHI", raw, 12)
    assert raw[offset : offset + length] == b"FS1"


def test_challenge_without_unicode_or_oem_is_refused() -> None:
    with pytest.raises(NtlmAuthError, match="neither Unicode nor OEM"):
        NtlmAcceptor(NAMES).challenge(
            _negotiate(F.NTLMSSP_NEGOTIATE_SIGN), server_challenge=SERVER_CHALLENGE, timestamp=NOW
        )


def test_second_negotiate_is_refused() -> None:
    acceptor = NtlmAcceptor(NAMES)
    acceptor.challenge(
        _negotiate(F.NTLMSSP_NEGOTIATE_UNICODE), server_challenge=SERVER_CHALLENGE, timestamp=NOW
    )
    with pytest.raises(NtlmDecodeError, match="second NEGOTIATE"):
        acceptor.challenge(
            _negotiate(F.NTLMSSP_NEGOTIATE_UNICODE), server_challenge=SERVER_CHALLENGE, timestamp=NOW
        )


def test_authenticate_before_challenge_is_refused() -> None:
    with pytest.raises(NtlmDecodeError, match="before any CHALLENGE"):
        NtlmAcceptor(NAMES).authenticate(SPEC_AUTHENTICATE)


# --------------------------------------------------------------------- real initiators as oracles


def impacket_logon(
    user: str, password: str, domain: str, *, signing: bool = True, v2: bool = True, tamper=None
) -> tuple[NtlmAcceptor, AuthenticateMessage, bytes]:
    acceptor = NtlmAcceptor(NAMES)
    t1 = impacket_ntlm.getNTLMSSPType1("WS", domain, signing, use_ntlmv2=v2)
    challenge = acceptor.challenge(t1.getData(), server_challenge=SERVER_CHALLENGE, timestamp=NOW)
    t3, key = impacket_ntlm.getNTLMSSPType3(t1, challenge, user, password, domain, use_ntlmv2=v2)
    if tamper is not None:
        tamper(t3)
    return acceptor, acceptor.authenticate(t3.getData()), key


def pyspnego_logon(user: str, password: str) -> tuple[NtlmAcceptor, AuthenticateMessage, object]:
    client = spnego.client(user, password, hostname="fs1", protocol="ntlm")
    acceptor = NtlmAcceptor(NAMES)
    challenge = acceptor.challenge(client.step(), server_challenge=SERVER_CHALLENGE, timestamp=NOW)
    return acceptor, acceptor.authenticate(client.step(challenge)), client


@pytest.mark.parametrize("signing", [True, False])
def test_impacket_ntlmv2_verifies_with_the_same_session_key(signing: bool) -> None:
    # impacket's NTLMv2_CLIENT_CHALLENGE has no trailing Z(4): the proof must cover the bytes as received.
    acceptor, auth, key = impacket_logon("alice", "Passw0rd", "WORKGROUP", signing=signing)
    assert not auth.nt_challenge_response.endswith(bytes(8))
    session = acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)
    assert session.exported_session_key == key


def test_pyspnego_ntlmv2_with_mic_verifies_with_the_same_session_key() -> None:
    acceptor, auth, client = pyspnego_logon("alice", "Passw0rd")
    assert auth.mic is not None  # our CHALLENGE carries MsvAvTimestamp, so the client adds a MIC
    session = acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)
    assert session.exported_session_key == client.session_key  # type: ignore[attr-defined]


def test_wrong_password_is_refused() -> None:
    acceptor, auth, _ = impacket_logon("alice", "wrong", "")
    with pytest.raises(NtlmAuthError, match="does not match"):
        acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)


def test_user_name_is_upper_cased_in_ntowfv2() -> None:
    acceptor, auth, key = impacket_logon("ALICE", "Passw0rd", "dom")
    assert acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW).exported_session_key == key


def test_nil_domain_retry() -> None:
    # MS-NLMP 3.2.5.1.2: a client that computed NTOWFv2 with an empty domain but sent a DomainName.
    def send_other_domain(t3: impacket_ntlm.NTLMAuthChallengeResponse) -> None:
        t3["domain_name"] = "SOMEDOM".encode("utf-16-le")

    acceptor, auth, key = impacket_logon("alice", "Passw0rd", "", tamper=send_other_domain)
    assert auth.domain_name == "SOMEDOM"
    assert acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW).exported_session_key == key


def test_ntlmv1_response_is_refused() -> None:
    acceptor, auth, _ = impacket_logon("alice", "Passw0rd", "", v2=False)
    assert len(auth.nt_challenge_response) == 24 and not auth.is_ntlmv2
    with pytest.raises(NtlmAuthError, match="NTLMv2 is required"):
        acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)


def test_lm_only_response_is_refused() -> None:
    # An LM response alone, as an attacker holding a known LM hash would send: never accepted.
    def lm_only(t3: impacket_ntlm.NTLMAuthChallengeResponse) -> None:
        t3["ntlm"] = b""
        t3["lanman"] = b"\x11" * 24

    acceptor, auth, _ = impacket_logon("alice", "Passw0rd", "", tamper=lm_only)
    with pytest.raises(NtlmAuthError, match="NTLMv2 is required"):
        acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)


def test_tampered_mic_is_refused() -> None:
    acceptor, auth, _ = pyspnego_logon("alice", "Passw0rd")
    raw = bytearray(auth.raw)
    raw[72] ^= 1
    with pytest.raises(NtlmAuthError, match="MIC"):
        acceptor.verify(AuthenticateMessage.decode(bytes(raw)), nt_hash("Passw0rd"), now=NOW)


def test_message_changed_under_the_mic_is_refused() -> None:
    acceptor, auth, _ = pyspnego_logon("alice", "Passw0rd")
    raw = bytearray(auth.raw)
    _length, _, offset = struct.unpack_from("<HHI", raw, 44)  # Workstation: covered by the MIC only
    raw[offset] ^= 0x20
    with pytest.raises(NtlmAuthError, match="MIC"):
        acceptor.verify(AuthenticateMessage.decode(bytes(raw)), nt_hash("Passw0rd"), now=NOW)


def test_response_outside_max_lifetime_is_refused() -> None:
    acceptor, auth, _ = impacket_logon("alice", "Passw0rd", "")
    assert auth.client_timestamp == NOW  # the client echoes our MsvAvTimestamp
    acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW + MAX_LIFETIME)
    with pytest.raises(NtlmAuthError, match="MaxLifetime"):
        acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW + MAX_LIFETIME + 1)


def test_key_exch_without_encrypted_session_key_is_refused() -> None:
    def drop_key(t3: impacket_ntlm.NTLMAuthChallengeResponse) -> None:
        t3["session_key"] = b""

    acceptor, auth, _ = impacket_logon("alice", "Passw0rd", "", signing=True, tamper=drop_key)
    with pytest.raises(NtlmAuthError, match="EncryptedRandomSessionKey"):
        acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)


def test_anonymous_authenticate_is_recognised() -> None:
    _, auth, _ = impacket_logon("", "", "")
    assert auth.is_anonymous and auth.lm_challenge_response == b"\x00"


def test_empty_user_with_a_response_is_not_anonymous() -> None:
    _, auth, _ = impacket_logon("", "x", "")
    assert not auth.is_anonymous


def test_session_signatures_interoperate_with_pyspnego() -> None:
    # The first signature in each direction (what SPNEGO's mechListMIC is), checked by pyspnego itself.
    acceptor, auth, client = pyspnego_logon("alice", "Passw0rd")
    session = acceptor.verify(auth, nt_hash("Passw0rd"), now=NOW)
    message = b"mech list"
    assert session.verify_signature(message, client.sign(message))  # type: ignore[attr-defined]
    client.verify(message, session.sign(message))  # type: ignore[attr-defined]  # raises if wrong


def test_signature_without_sign_or_seal_is_the_constant_one() -> None:
    # MS-NLMP 3.4.4.3.
    session = NtlmSession(F.NTLMSSP_NEGOTIATE_ALWAYS_SIGN, bytes(16))
    assert session.sign(b"x") == b"\x01" + bytes(15)
    assert session.verify_signature(b"y", b"\x01" + bytes(15))


# ------------------------------------------------------------------------------ decode strictness


def _valid_authenticate() -> bytes:
    return pyspnego_logon("alice", "Passw0rd")[1].raw


def test_every_truncation_is_a_decode_error() -> None:
    raw = _valid_authenticate()
    for n in range(len(raw)):
        try:
            AuthenticateMessage.decode(raw[:n])
        except NtlmDecodeError:
            continue
        pytest.fail(f"a {n}-byte prefix decoded")


def test_field_outside_the_message_is_refused() -> None:
    raw = bytearray(SPEC_AUTHENTICATE)
    struct.pack_into("<HHI", raw, 36, 8, 8, len(raw) - 4)  # UserName runs past the end
    with pytest.raises(NtlmDecodeError, match="UserName"):
        AuthenticateMessage.decode(bytes(raw))


def test_odd_length_unicode_string_is_refused() -> None:
    raw = bytearray(SPEC_AUTHENTICATE)
    struct.pack_into("<HH", raw, 36, 7, 7)
    with pytest.raises(NtlmDecodeError, match="odd length"):
        AuthenticateMessage.decode(bytes(raw))


def test_wrong_message_type_is_refused() -> None:
    raw = bytearray(SPEC_AUTHENTICATE)
    raw[8] = 2
    with pytest.raises(NtlmDecodeError, match="MessageType"):
        AuthenticateMessage.decode(bytes(raw))


def test_av_pairs_without_eol_are_refused() -> None:
    raw = bytearray(SPEC_AUTHENTICATE)
    # The AV_PAIR list ends 8 bytes before the EncryptedRandomSessionKey (EOL + Z(4)); cut the NT response
    # so that it ends inside the Server name pair.
    struct.pack_into("<HH", raw, 20, 0x54 - 10, 0x54 - 10)
    with pytest.raises(NtlmDecodeError, match="AV_PAIR"):
        AuthenticateMessage.decode(bytes(raw))


def test_short_ntlmv2_response_is_refused() -> None:
    raw = bytearray(SPEC_AUTHENTICATE)
    struct.pack_into("<HH", raw, 20, 30, 30)
    with pytest.raises(NtlmDecodeError, match="too short"):
        AuthenticateMessage.decode(bytes(raw))


def test_mic_flag_without_room_for_a_mic_is_refused() -> None:
    # Announce a MIC (MsvAvFlags 0x2) in a message whose payload starts at 72, where the MIC would be.
    av_flags = struct.pack("<HHI", AvId.MsvAvFlags, 4, 2)
    blob = bytes.fromhex("0101000000000000") + bytes(8) + b"\xaa" * 8 + bytes(4) + av_flags + bytes(4)
    nt = b"\x00" * 16 + blob
    payload = nt
    header = b"NTLMSSP\x00" + struct.pack("<I", 3) + struct.pack("<HHI", 0, 0, 72)
    header += struct.pack("<HHI", len(nt), len(nt), 72) + struct.pack("<HHI", 0, 0, 72) * 4
    header += struct.pack("<I", F.NTLMSSP_NEGOTIATE_UNICODE) + bytes(8)
    with pytest.raises(NtlmDecodeError, match="no room"):
        AuthenticateMessage.decode(header + payload)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        AuthenticateMessage.decode(b"NTLMSSP\x00\x03\x00\x00\x00" + data)
    except NtlmDecodeError:
        pass


_VALID = [_valid_authenticate(), SPEC_AUTHENTICATE]


@settings(max_examples=500)
@given(st.sampled_from(_VALID), st.data())
def test_fuzz_mutated_messages_raise_only_decode_errors(raw: bytes, data: st.DataObject) -> None:
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, 100))  # the fixed fields and the start of the payload
        mutated[i] = data.draw(st.integers(0, 255))
    try:
        AuthenticateMessage.decode(bytes(mutated))
    except NtlmDecodeError:
        pass


def test_filetime_epoch() -> None:
    # MS-DTYP 2.3.3: 1970-01-01 is 116444736000000000 ticks after 1601-01-01.
    assert filetime(0) == 116444736000000000
    assert abs(filetime(time.time()) - filetime(time.time())) < 10_000_000
