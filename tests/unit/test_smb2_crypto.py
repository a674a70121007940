"""SMB2/3 crypto (netsession.wire.smb2.crypto): Microsoft's published test vectors, and smbprotocol's and
impacket's own KDF / signing / encryption code as independent oracles."""

from __future__ import annotations

import struct
import uuid
from binascii import unhexlify
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from smb2_vectors import (  # tests/unit/smb2_vectors.py: Microsoft's published test vectors
    WIN_NEGOTIATE_REQUEST,
    WIN_NEGOTIATE_RESPONSE,
    WIN_SESSION_SETUP_REQUEST,
    WIN_SESSION_SETUP_REQUEST_2,
    WIN_SESSION_SETUP_RESPONSE,
    WIN_WRITE_REQUEST,
    WIN_WRITE_RESPONSE,
)
from smbprotocol.connection import Connection, SMB2TransformHeader
from smbprotocol.session import Session

from netsession.wire.smb2 import crypto
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.constants import Cipher, Command, HeaderFlags, SigningAlgorithm
from netsession.wire.smb2.create import FileId
from netsession.wire.smb2.header import SIGNATURE_OFFSET, Smb2Header, TransformHeader
from netsession.wire.smb2.messages import CancelRequest, EchoRequest, WriteRequest, encode_message

H = unhexlify
PREAUTH_AFTER = [  # the hash after each message of the exchange
    H(
        "DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0"
        "CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426"
    ),
    H(
        "324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E99"
        "7E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513"
    ),
    H(
        "AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33"
        "197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9"
    ),
    H(
        "2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B8835740A7376008563336"
        "4C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387"
    ),
]
PREAUTH_FINAL = H(
    "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D97"
    "51640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01"
)


def test_preauth_hash_chain_matches_microsoft_vector() -> None:
    h = crypto.INITIAL_PREAUTH_HASH
    for message, expected in zip(
        [
            WIN_NEGOTIATE_REQUEST,
            WIN_NEGOTIATE_RESPONSE,
            WIN_SESSION_SETUP_REQUEST,
            WIN_SESSION_SETUP_RESPONSE,
        ],
        PREAUTH_AFTER,
        strict=True,
    ):
        h = crypto.preauth_hash(h, message)
        assert h == expected
    h = crypto.preauth_hash(h, WIN_SESSION_SETUP_REQUEST_2)  # the final request; its response is not hashed
    assert h == PREAUTH_FINAL


def test_smb311_signing_key_matches_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(
        0x0311, H("270E1BA896585EEB7AF3472D3B4C75A7"), preauth_hash=PREAUTH_FINAL
    )
    assert keys.signing_key == H("73FE7A9A77BEF0BDE49C650D8CCB5F76")


SMB30_SESSION_KEY = H("B4546771B515F766A86735532DD6C4F0")
SMB30_SESSION_ID = 0x8E40014000011
SMB311_SESSION_KEY = H("419FDDF34C1E001909D362AE7FB6AF79")
SMB311_PREAUTH = H(
    "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9"
    "77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770"
)
SMB311_SESSION_ID = 0x100000000025
SMB311_WRITE_REQUEST = H(
    "FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000"
    "25000000001000000000000000000000000000000000000031007000170000000000000000000000"
    "0600000004000000010000000400000000000000000000007000000000000000536D623320656E63"
    "72797074696F6E2074657374696E67"
)
SMB311_WRITE_RESPONSE = H(
    "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000"
    "25000000001000000000000000000000000000000000000011000000170000000000000000000000"
)


def test_smb30_cipher_keys_match_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0300, SMB30_SESSION_KEY)
    # the blog is the client's view: it encrypts with "ServerIn " (our decryption key) and decrypts with
    # "ServerOut" (our encryption key)
    assert keys.decryption_key == H("261B72350558F2E9DCF613070383EDBF")
    assert keys.encryption_key == H("8FE2B57EC34D2DB5B1A9727F526BBDB5")


def test_smb311_cipher_keys_match_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0311, SMB311_SESSION_KEY, preauth_hash=SMB311_PREAUTH, cipher=2)
    assert keys.decryption_key == H("A2F5E80E5D59103034F32E52F698E5EC")
    assert keys.encryption_key == H("748C50868C90F302962A5C35F5F9A8BF")


def test_smb30_encryption_matches_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0300, SMB30_SESSION_KEY)
    assert keys.decryption_key is not None
    sealed = crypto.encrypt_message(
        WIN_WRITE_REQUEST,
        keys.decryption_key,
        cipher=Cipher.AES_128_CCM,
        session_id=SMB30_SESSION_ID,
        nonce=H("66E69A111892584FB5ED524A744DA3EE"),  # the whole field: Windows filled "Reserved" too
    )
    assert sealed == H(
        "FD534D4281A286535415445DAE393921E44FA42E66E69A111892584FB5ED524A"
        "744DA3EE87000000000001001100001400E4080025C8FEE16605A437832D1CD5"
        "2DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A4"
        "4C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5"
        "AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6"
        "C627297075D84B7803912D0A9639634453595EF3E33FFE4E7AC2AB"
    )
    header, plain = crypto.decrypt_message(sealed, keys.decryption_key, cipher=Cipher.AES_128_CCM)
    assert plain == WIN_WRITE_REQUEST and header.session_id == SMB30_SESSION_ID


def test_smb30_decryption_matches_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0300, SMB30_SESSION_KEY)
    assert keys.encryption_key is not None
    sealed = H(
        "FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014"
        "00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079"
        "E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787"
        "1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1"
        "77309E5B"
    )
    header, plain = crypto.decrypt_message(sealed, keys.encryption_key, cipher=Cipher.AES_128_CCM)
    assert plain == WIN_WRITE_RESPONSE and header.original_message_size == 0x50


def test_smb311_gcm_encryption_matches_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0311, SMB311_SESSION_KEY, preauth_hash=SMB311_PREAUTH, cipher=2)
    assert keys.decryption_key is not None
    sealed = crypto.encrypt_message(
        SMB311_WRITE_REQUEST,
        keys.decryption_key,
        cipher=Cipher.AES_128_GCM,
        session_id=SMB311_SESSION_ID,
        nonce=H("C7D6822D269CAF48904C664C"),
    )
    assert sealed == H(
        "FD534D42BD73D97D2BC9001BCAFAC0FDFF5FEEBCC7D6822D269CAF48904C664C0000000087000000"
        "0000010025000000001000006ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02"
        "D14EF247F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A4A394BB4"
        "4576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299F48E29E53D6B61D1C13A19E9"
        "1AF013F00D17E3ABC2FC3D36C8C1B6B93973253852DBD442E46EE8"
    )


def test_smb311_gcm_decryption_matches_microsoft_vector() -> None:
    keys = crypto.derive_session_keys(0x0311, SMB311_SESSION_KEY, preauth_hash=SMB311_PREAUTH, cipher=2)
    assert keys.encryption_key is not None
    sealed = H(
        "FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000"
        "00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8"
        "F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B"
        "82E03C9E18A050FF0EA1C967"
    )
    assert (
        crypto.decrypt_message(sealed, keys.encryption_key, cipher=Cipher.AES_128_GCM)[1]
        == SMB311_WRITE_RESPONSE
    )


# --- KDF against smbprotocol and impacket -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    label=st.binary(max_size=24),
    context=st.binary(max_size=80),
    length=st.sampled_from([16, 32]),
)
def test_kdf_matches_smbprotocol_and_impacket(key: bytes, label: bytes, context: bytes, length: int) -> None:
    from impacket.crypto import KDF_CounterMode

    ours = crypto.kdf_counter_hmac_sha256(key, label, context, length)
    assert ours == Session._smb3kdf(None, key, label, context, length=length)
    assert ours == KDF_CounterMode(key, label, context, 8 * length)


def test_smb30_keys_match_smbprotocol_labels() -> None:
    kdf = Session._smb3kdf
    keys = crypto.derive_session_keys(0x0302, SMB30_SESSION_KEY)
    assert keys.signing_key == kdf(None, SMB30_SESSION_KEY, b"SMB2AESCMAC\x00", b"SmbSign\x00")
    assert keys.application_key == kdf(None, SMB30_SESSION_KEY, b"SMB2APP\x00", b"SmbRpc\x00")
    # smbprotocol names keys from the client's side: its encryption key is our decryption key
    assert keys.decryption_key == kdf(None, SMB30_SESSION_KEY, b"SMB2AESCCM\x00", b"ServerIn \x00")
    assert keys.encryption_key == kdf(None, SMB30_SESSION_KEY, b"SMB2AESCCM\x00", b"ServerOut\x00")


@pytest.mark.parametrize("cipher", [Cipher.AES_256_CCM, Cipher.AES_256_GCM])
def test_aes256_cipher_keys_are_32_bytes_from_the_full_session_key(cipher: int) -> None:
    full_key = bytes(range(32))  # a Kerberos-sized GSS key: SessionKey is its first 16 bytes
    keys = crypto.derive_session_keys(0x0311, full_key, preauth_hash=SMB311_PREAUTH, cipher=cipher)
    kdf = Session._smb3kdf
    assert keys.session_key == full_key[:16]
    assert keys.signing_key == kdf(None, full_key[:16], b"SMBSigningKey\x00", SMB311_PREAUTH)
    assert keys.application_key == kdf(None, full_key[:16], b"SMBAppKey\x00", SMB311_PREAUTH)
    assert keys.decryption_key == kdf(None, full_key, b"SMBC2SCipherKey\x00", SMB311_PREAUTH, length=32)
    assert keys.encryption_key == kdf(None, full_key, b"SMBS2CCipherKey\x00", SMB311_PREAUTH, length=32)


def test_smb2_keys_are_the_session_key() -> None:
    keys = crypto.derive_session_keys(0x0210, b"\x01" * 8)
    assert keys.session_key == keys.signing_key == b"\x01" * 8 + bytes(8)  # right-padded to 16 (3.3.1.8)
    assert keys.encryption_key is None and keys.decryption_key is None


def test_smb311_keys_need_the_preauth_hash() -> None:
    with pytest.raises(ValueError, match="preauth"):
        crypto.derive_session_keys(0x0311, SMB311_SESSION_KEY)


# --- signing ------------------------------------------------------------------------------------------


def sp_connection(dialect: int, signing_algorithm: int | None = None) -> Any:
    conn = Connection(uuid.uuid4(), "server")
    conn.dialect = dialect
    conn.signing_algorithm_id = signing_algorithm
    return conn


def message(command: int = Command.ECHO, flags: int = 0, message_id: int = 5) -> bytearray:
    body = {Command.ECHO: EchoRequest(), Command.CANCEL: CancelRequest()}.get(command) or WriteRequest(
        FileId(1, 2), b"payload"
    )
    return bytearray(
        encode_message(Smb2Header(command, flags=flags, message_id=message_id, session_id=9), body)
    )


@pytest.mark.parametrize(
    ("dialect", "negotiated", "algorithm"),
    [
        (0x0202, None, SigningAlgorithm.HMAC_SHA256),
        (0x0210, None, SigningAlgorithm.HMAC_SHA256),
        (0x0300, None, SigningAlgorithm.AES_CMAC),
        (0x0302, None, SigningAlgorithm.AES_CMAC),
        (0x0311, None, SigningAlgorithm.AES_CMAC),
        (0x0311, SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_GMAC),
        (0x0311, SigningAlgorithm.HMAC_SHA256, SigningAlgorithm.HMAC_SHA256),
    ],
)
def test_signing_algorithm_per_dialect(dialect: int, negotiated: int | None, algorithm: int) -> None:
    assert crypto.signing_algorithm_for(dialect, negotiated) == algorithm


@pytest.mark.parametrize(
    ("dialect", "algorithm"),
    [
        (0x0210, SigningAlgorithm.HMAC_SHA256),
        (0x0300, SigningAlgorithm.AES_CMAC),
        (0x0311, SigningAlgorithm.AES_GMAC),
    ],
)
@pytest.mark.parametrize(
    ("command", "flags"),
    [(Command.WRITE, 0), (Command.WRITE, HeaderFlags.SERVER_TO_REDIR), (Command.CANCEL, 0)],
    ids=["request", "response", "cancel"],
)
def test_signature_matches_smbprotocol(dialect: int, algorithm: int, command: int, flags: int) -> None:
    key = bytes(range(16))
    msg = message(command, flags | HeaderFlags.SIGNED, message_id=0x0102030405)
    sp = sp_connection(dialect, algorithm if dialect == 0x0311 else None)
    expected = sp._generate_signature(bytes(msg), key, 0x0102030405, bool(flags), command)
    assert crypto.compute_signature(msg, key, algorithm) == expected


def test_gmac_nonce_has_server_and_cancel_bits() -> None:
    assert crypto.gmac_nonce(message(Command.WRITE, message_id=7)) == struct.pack("<QI", 7, 0)
    assert crypto.gmac_nonce(message(Command.WRITE, HeaderFlags.SERVER_TO_REDIR, 7)) == struct.pack(
        "<QI", 7, 1
    )
    assert crypto.gmac_nonce(message(Command.CANCEL, message_id=7)) == struct.pack("<QI", 7, 2)


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
def test_sign_message_sets_flag_and_verifies(algorithm: int) -> None:
    key = b"k" * 16
    msg = message(Command.WRITE)
    crypto.sign_message(msg, key, algorithm)
    assert Smb2Header.decode(msg).is_signed and msg[SIGNATURE_OFFSET : SIGNATURE_OFFSET + 16] != bytes(16)
    assert crypto.verify_signature(msg, key, algorithm)
    assert not crypto.verify_signature(msg, b"K" * 16, algorithm)
    tampered = bytearray(msg)
    tampered[-1] ^= 1
    assert not crypto.verify_signature(tampered, key, algorithm)


def test_signature_covers_compound_padding() -> None:
    key = b"k" * 16
    padded = message(Command.ECHO) + bytes(4)
    assert crypto.compute_signature(padded, key, SigningAlgorithm.AES_CMAC) != crypto.compute_signature(
        padded[:-4], key, SigningAlgorithm.AES_CMAC
    )


def test_verify_signature_of_a_short_message_is_false() -> None:
    assert not crypto.verify_signature(b"\xfeSMB", b"k" * 16, SigningAlgorithm.AES_CMAC)
    with pytest.raises(Smb2DecodeError):
        crypto.compute_signature(b"\xfeSMB", b"k" * 16, SigningAlgorithm.AES_CMAC)


# --- encryption ---------------------------------------------------------------------------------------

CIPHER_KEY = {
    Cipher.AES_128_CCM: b"c" * 16,
    Cipher.AES_128_GCM: b"g" * 16,
    Cipher.AES_256_CCM: b"C" * 32,
    Cipher.AES_256_GCM: b"G" * 32,
}


@pytest.mark.parametrize("cipher", list(CIPHER_KEY))
def test_encryption_round_trip_and_nonce_sizes(cipher: int) -> None:
    plain = bytes(message(Command.WRITE))
    nonce = b"n" * crypto.nonce_size(cipher)
    sealed = crypto.encrypt_message(plain, CIPHER_KEY[cipher], cipher=cipher, session_id=77, nonce=nonce)
    header = TransformHeader.decode(sealed)
    assert header.nonce == nonce.ljust(16, b"\x00") and header.original_message_size == len(plain)
    assert (header.flags, header.session_id, len(sealed)) == (1, 77, 52 + len(plain))
    assert crypto.decrypt_message(sealed, CIPHER_KEY[cipher], cipher=cipher) == (header, plain)
    assert crypto.nonce_size(cipher) == (11 if cipher in (Cipher.AES_128_CCM, Cipher.AES_256_CCM) else 12)


@pytest.mark.parametrize("cipher", list(CIPHER_KEY))
def test_encryption_interoperates_with_smbprotocol(cipher: int) -> None:
    plain = bytes(message(Command.WRITE))
    sp = sp_connection(0x0311)
    sp.cipher_id = cipher
    # smbprotocol is a client: it encrypts with session.encryption_key, decrypts with decryption_key
    session = SimpleNamespace(
        session_id=0x1234, encryption_key=CIPHER_KEY[cipher], decryption_key=CIPHER_KEY[cipher]
    )
    sp.session_table = {0x1234: session}
    theirs = sp._encrypt(plain, session)
    assert crypto.decrypt_message(bytes(theirs.pack()), CIPHER_KEY[cipher], cipher=cipher)[1] == plain
    nonce = b"\x07" * crypto.nonce_size(cipher)
    ours = crypto.encrypt_message(plain, CIPHER_KEY[cipher], cipher=cipher, session_id=0x1234, nonce=nonce)
    header = SMB2TransformHeader()
    header.unpack(ours)
    assert sp._decrypt(header) == plain


def test_smb30_encryption_interoperates_with_smbprotocol() -> None:
    keys = crypto.derive_session_keys(0x0300, SMB30_SESSION_KEY)
    assert keys.encryption_key is not None and keys.decryption_key is not None
    sp = sp_connection(0x0300)
    client = SimpleNamespace(
        session_id=5, encryption_key=keys.decryption_key, decryption_key=keys.encryption_key
    )
    sp.session_table = {5: client}
    request_sealed = bytes(sp._encrypt(WIN_WRITE_REQUEST, client).pack())
    assert (
        crypto.decrypt_message(request_sealed, keys.decryption_key, cipher=Cipher.AES_128_CCM)[1]
        == WIN_WRITE_REQUEST
    )
    reply = crypto.encrypt_message(
        WIN_WRITE_RESPONSE,
        keys.encryption_key,
        cipher=crypto.cipher_for(0x0300),
        session_id=5,
        nonce=b"\x01" * 11,
    )
    header = SMB2TransformHeader()
    header.unpack(reply)
    assert sp._decrypt(header) == WIN_WRITE_RESPONSE


def sealed_gcm() -> bytes:
    return crypto.encrypt_message(
        bytes(message()),
        CIPHER_KEY[Cipher.AES_128_GCM],
        cipher=Cipher.AES_128_GCM,
        session_id=3,
        nonce=b"n" * 12,
    )


@pytest.mark.parametrize(
    "offset",
    [4, 20, 36, 44, 60],
    ids=["signature", "nonce", "original-size", "session-id", "ciphertext"],
)
def test_tampered_encrypted_message_fails_authentication(offset: int) -> None:
    sealed = bytearray(sealed_gcm())
    sealed[offset] ^= 0x80
    with pytest.raises(crypto.Smb2IntegrityError):
        crypto.decrypt_message(bytes(sealed), CIPHER_KEY[Cipher.AES_128_GCM], cipher=Cipher.AES_128_GCM)


def test_wrong_key_fails_authentication() -> None:
    with pytest.raises(crypto.Smb2IntegrityError):
        crypto.decrypt_message(sealed_gcm(), b"x" * 16, cipher=Cipher.AES_128_GCM)


def test_transform_flags_other_than_encrypted_are_decode_error() -> None:
    sealed = bytearray(sealed_gcm())
    struct.pack_into("<H", sealed, 42, 2)
    with pytest.raises(Smb2DecodeError, match="Flags"):
        crypto.decrypt_message(bytes(sealed), CIPHER_KEY[Cipher.AES_128_GCM], cipher=Cipher.AES_128_GCM)


def test_transform_header_without_ciphertext_is_decode_error() -> None:
    with pytest.raises(Smb2DecodeError):
        crypto.decrypt_message(sealed_gcm()[:52], CIPHER_KEY[Cipher.AES_128_GCM], cipher=Cipher.AES_128_GCM)


def test_original_message_size_must_match_plaintext() -> None:
    # a correctly authenticated message whose OriginalMessageSize lies (3.3.5.2.1.1 SHOULD disconnect)
    key, plain = CIPHER_KEY[Cipher.AES_128_GCM], bytes(message())
    header = TransformHeader(bytes(16), b"n" * 12 + bytes(4), len(plain) + 1, 3)
    sealed = AESGCM(key).encrypt(b"n" * 12, plain, header.associated_data())
    raw = TransformHeader(sealed[-16:], header.nonce, len(plain) + 1, 3).encode() + sealed[:-16]
    with pytest.raises(crypto.Smb2IntegrityError, match="OriginalMessageSize"):
        crypto.decrypt_message(raw, key, cipher=Cipher.AES_128_GCM)


def test_wrong_key_or_nonce_size_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="key"):
        crypto.encrypt_message(b"x" * 64, b"k" * 16, cipher=Cipher.AES_256_GCM, session_id=1, nonce=b"n" * 12)
    with pytest.raises(ValueError, match="nonce"):
        crypto.encrypt_message(b"x" * 64, b"k" * 16, cipher=Cipher.AES_128_CCM, session_id=1, nonce=b"n" * 12)
    with pytest.raises(ValueError):
        crypto.nonce_size(Cipher.NONE)


def test_smb30_always_uses_aes_128_ccm() -> None:
    assert crypto.cipher_for(0x0300) == crypto.cipher_for(0x0302, Cipher.AES_128_GCM) == Cipher.AES_128_CCM
    assert crypto.cipher_for(0x0311, Cipher.AES_256_GCM) == Cipher.AES_256_GCM
