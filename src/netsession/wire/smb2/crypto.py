"""SMB2/3 cryptography as small pure functions over ``cryptography``: key derivation (MS-SMB2 3.1.4.2,
3.3.5.5.3), the preauth integrity hash (3.3.5.4, 3.3.5.5), signing (3.1.4.1, 3.1.5.1) and encryption
(3.1.4.3, 3.3.5.2.1.1).

Keys are named from the server's side, as MS-SMB2 3.3.1.8 names them: the server *encrypts* with
``encryption_key`` (server-to-client) and *decrypts* with ``decryption_key`` (client-to-server). A
client uses them the other way round.

Nothing here draws randomness or reads a clock: a nonce is the caller's (see :func:`nonce_size`);
it must never repeat under one key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from .codec import SMB2_HEADER_SIZE, Buffer, Smb2DecodeError
from .constants import Cipher, Command, Dialect, HeaderFlags, SigningAlgorithm, TransformFlags
from .header import (
    COMMAND_OFFSET,
    FLAGS_OFFSET,
    MESSAGE_ID_OFFSET,
    SIGNATURE_OFFSET,
    SIGNATURE_SIZE,
    TRANSFORM_HEADER_SIZE,
    TransformHeader,
)

_SERVER_TO_REDIR = int(HeaderFlags.SERVER_TO_REDIR)
_CANCEL = int(Command.CANCEL)
_SIGNED = int(HeaderFlags.SIGNED)


class Smb2IntegrityError(Smb2DecodeError):
    """An encrypted message failed authentication (wrong key, tampering) or its size check."""


# --- key derivation (3.1.4.2) ----------------------------------------------------------------------


def kdf_counter_hmac_sha256(key: bytes, label: bytes, context: bytes, length: int = 16) -> bytes:
    """NIST SP800-108 KDF in counter mode, PRF HMAC-SHA256, r = 32 (MS-SMB2 3.1.4.2).

    K(i) = HMAC-SHA256(key, [i]_32 || Label || 0x00 || Context || [L]_32), L = 8 * ``length``. MS-SMB2's
    labels and contexts carry their own terminating NUL ("SMB2AESCMAC\\0"), before SP800-108's 0x00.
    """
    fixed = label + b"\x00" + context + struct.pack(">I", 8 * length)
    out = b"".join(
        hmac.digest(key, struct.pack(">I", i) + fixed, "sha256") for i in range(1, -(-length // 32) + 1)
    )
    return out[:length]


# 3.3.5.5.3 labels and contexts, dialects 3.0 / 3.0.2 ...
SMB30_SIGNING = (b"SMB2AESCMAC\x00", b"SmbSign\x00")
SMB30_APPLICATION = (b"SMB2APP\x00", b"SmbRpc\x00")
SMB30_SERVER_OUT = (b"SMB2AESCCM\x00", b"ServerOut\x00")  # Session.EncryptionKey
SMB30_SERVER_IN = (b"SMB2AESCCM\x00", b"ServerIn \x00")  # Session.DecryptionKey (note the space)
# ... and 3.1.1, whose context is Session.PreauthIntegrityHashValue.
SMB311_SIGNING_LABEL = b"SMBSigningKey\x00"
SMB311_APPLICATION_LABEL = b"SMBAppKey\x00"
SMB311_S2C_CIPHER_LABEL = b"SMBS2CCipherKey\x00"  # Session.EncryptionKey
SMB311_C2S_CIPHER_LABEL = b"SMBC2SCipherKey\x00"  # Session.DecryptionKey

AES_256_CIPHERS = frozenset({Cipher.AES_256_CCM, Cipher.AES_256_GCM})


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """A session's keys, server's view (MS-SMB2 3.3.1.8). ``session_key`` is Session.SessionKey, the
    first 16 bytes of the GSS key, zero-padded; for 2.0.2/2.1 it is also the signing key and there are
    no cipher keys."""

    session_key: bytes
    signing_key: bytes
    application_key: bytes
    encryption_key: bytes | None  # server -> client
    decryption_key: bytes | None  # client -> server


def derive_session_keys(
    dialect: int, gss_session_key: bytes, *, preauth_hash: bytes | None = None, cipher: int = Cipher.NONE
) -> SessionKeys:
    """Session keys for ``dialect`` from the GSS session key (NTLM: ExportedSessionKey).

    3.1.1 needs ``preauth_hash`` (Session.PreauthIntegrityHashValue after the final SESSION_SETUP
    request). With an AES-256 ``cipher`` the cipher keys are 32 bytes (L = 256) derived from the full
    GSS key (Session.FullSessionKey); signing and application keys stay 16 bytes from SessionKey.
    """
    session_key = gss_session_key[:16].ljust(16, b"\x00")
    if dialect < Dialect.SMB_3_0:
        return SessionKeys(session_key, session_key, session_key, None, None)
    if dialect == Dialect.SMB_3_1_1:
        if preauth_hash is None or len(preauth_hash) != PREAUTH_HASH_SIZE:
            raise ValueError("SMB 3.1.1 key derivation needs the 64-byte preauth integrity hash")
        wide = cipher in AES_256_CIPHERS
        cipher_kdk, cipher_len = (gss_session_key, 32) if wide else (session_key, 16)
        return SessionKeys(
            session_key,
            kdf_counter_hmac_sha256(session_key, SMB311_SIGNING_LABEL, preauth_hash),
            kdf_counter_hmac_sha256(session_key, SMB311_APPLICATION_LABEL, preauth_hash),
            kdf_counter_hmac_sha256(cipher_kdk, SMB311_S2C_CIPHER_LABEL, preauth_hash, cipher_len),
            kdf_counter_hmac_sha256(cipher_kdk, SMB311_C2S_CIPHER_LABEL, preauth_hash, cipher_len),
        )
    return SessionKeys(
        session_key,
        kdf_counter_hmac_sha256(session_key, *SMB30_SIGNING),
        kdf_counter_hmac_sha256(session_key, *SMB30_APPLICATION),
        kdf_counter_hmac_sha256(session_key, *SMB30_SERVER_OUT),
        kdf_counter_hmac_sha256(session_key, *SMB30_SERVER_IN),
    )


# --- preauth integrity (3.3.5.4, 3.3.5.5.3) --------------------------------------------------------

PREAUTH_HASH_SIZE = 64
INITIAL_PREAUTH_HASH = b"\x00" * PREAUTH_HASH_SIZE


def preauth_hash(previous: bytes, message: Buffer) -> bytes:
    """SHA-512(previous || message): one link of the 3.1.1 preauth integrity chain.

    Connection: H0 = 64 zero bytes, then the NEGOTIATE request, then the NEGOTIATE response.
    Session: starts from the connection's value; each SESSION_SETUP request is added, and each response
    that says STATUS_MORE_PROCESSING_REQUIRED; the final (SUCCESS) response is not. Messages are hashed
    whole, from their SMB2 header to their last byte.
    """
    return hashlib.sha512(previous + bytes(message)).digest()


# --- signing (3.1.4.1, 3.1.5.1) --------------------------------------------------------------------


def signing_algorithm_for(dialect: int, negotiated: int | None = None) -> SigningAlgorithm:
    """2.0.2/2.1: HMAC-SHA256; 3.0/3.0.2: AES-CMAC; 3.1.1: the SIGNING_CAPABILITIES choice, else AES-CMAC."""
    if dialect < Dialect.SMB_3_0:
        return SigningAlgorithm.HMAC_SHA256
    if dialect == Dialect.SMB_3_1_1 and negotiated is not None:
        return SigningAlgorithm(negotiated)
    return SigningAlgorithm.AES_CMAC


def gmac_nonce(message: Buffer) -> bytes:
    """3.1.4.1 AES-GMAC nonce: MessageId, then 4 bytes whose bit 0 says "sent by the server"
    (SERVER_TO_REDIR) and bit 1 "an SMB2 CANCEL request"."""
    (flags,) = struct.unpack_from("<I", message, FLAGS_OFFSET)
    (command,) = struct.unpack_from("<H", message, COMMAND_OFFSET)
    info = (1 if flags & _SERVER_TO_REDIR else 0) | (2 if command == _CANCEL else 0)
    return bytes(message[MESSAGE_ID_OFFSET : MESSAGE_ID_OFFSET + 8]) + struct.pack("<I", info)


def compute_signature(message: Buffer, key: bytes, algorithm: int) -> bytes:
    """The 16-byte signature of one SMB2 message (a compound element with its padding), computed with
    its Signature field taken as zero."""
    if len(message) < SMB2_HEADER_SIZE:
        raise Smb2DecodeError(f"cannot sign {len(message)} bytes: shorter than an SMB2 header", 0)
    data = bytearray(message)
    data[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE] = bytes(SIGNATURE_SIZE)
    if algorithm == SigningAlgorithm.HMAC_SHA256:
        return hmac.digest(key, data, "sha256")[:SIGNATURE_SIZE]
    if algorithm == SigningAlgorithm.AES_CMAC:
        mac = cmac.CMAC(algorithms.AES(key))
        mac.update(bytes(data))
        return mac.finalize()
    if algorithm == SigningAlgorithm.AES_GMAC:
        return AESGCM(key).encrypt(gmac_nonce(data), b"", bytes(data))  # empty plaintext: the tag alone
    raise ValueError(f"unknown signing algorithm {algorithm}")


def sign_message(message: bytearray, key: bytes, algorithm: int) -> None:
    """Sign an SMB2 message in place: set SMB2_FLAGS_SIGNED, then write the signature at offset 48."""
    (flags,) = struct.unpack_from("<I", message, FLAGS_OFFSET)
    struct.pack_into("<I", message, FLAGS_OFFSET, flags | _SIGNED)
    message[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE] = compute_signature(message, key, algorithm)


def verify_signature(message: Buffer, key: bytes, algorithm: int) -> bool:
    """3.1.5.1: whether the Signature field of ``message`` is right (constant-time comparison)."""
    if len(message) < SMB2_HEADER_SIZE:
        return False
    received = bytes(message[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIGNATURE_SIZE])
    return hmac.compare_digest(received, compute_signature(message, key, algorithm))


# --- encryption (3.1.4.3, 3.3.5.2.1.1) -------------------------------------------------------------


def cipher_for(dialect: int, negotiated: int = Cipher.NONE) -> Cipher:
    """3.0/3.0.2 always use AES-128-CCM; 3.1.1 the cipher chosen from ENCRYPTION_CAPABILITIES."""
    return Cipher(negotiated) if dialect == Dialect.SMB_3_1_1 else Cipher.AES_128_CCM


def nonce_size(cipher: int) -> int:
    """2.2.41: 11-byte AES_CCM_Nonce or 12-byte AES_GCM_Nonce (the rest of the 16-byte field is zero)."""
    if cipher in (Cipher.AES_128_CCM, Cipher.AES_256_CCM):
        return 11
    if cipher in (Cipher.AES_128_GCM, Cipher.AES_256_GCM):
        return 12
    raise ValueError(f"no encryption with cipher {cipher}")


def _aead(cipher: int, key: bytes) -> AESCCM | AESGCM:
    expected = 32 if cipher in AES_256_CIPHERS else 16
    if len(key) != expected:
        raise ValueError(f"cipher {cipher} needs a {expected}-byte key, got {len(key)}")
    return AESCCM(key) if nonce_size(cipher) == 11 else AESGCM(key)


def encrypt_message(message: bytes, key: bytes, *, cipher: int, session_id: int, nonce: bytes) -> bytes:
    """TRANSFORM_HEADER + ciphertext of ``message`` (one SMB2 message or a whole compound chain).

    ``nonce`` is the 11-byte (CCM) or 12-byte (GCM) nonce, zero-padded into the 16-byte Nonce field, or
    the whole 16-byte field (Windows 2012 left bytes in the CCM "Reserved" part; they are authenticated).
    The AEAD's additional data is the transform header from Nonce on; its 16-byte tag is the Signature.
    """
    n = nonce_size(cipher)
    if len(nonce) not in (n, 16):
        raise ValueError(f"cipher {cipher} takes a {n}-byte nonce (or the 16-byte Nonce field)")
    header = TransformHeader(
        signature=bytes(16),
        nonce=nonce.ljust(16, b"\x00"),
        original_message_size=len(message),
        session_id=session_id,
        flags=TransformFlags.ENCRYPTED,
    )
    sealed = _aead(cipher, key).encrypt(nonce[:n], message, header.associated_data())
    return replace(header, signature=sealed[-16:]).encode() + sealed[:-16]


def decrypt_message(data: Buffer, key: bytes, *, cipher: int) -> tuple[TransformHeader, bytes]:
    """The transform header and the plaintext of an encrypted message (3.3.5.2.1.1).

    Raises Smb2DecodeError when the message is no longer than a transform header or its
    Flags/EncryptionAlgorithm is not 0x0001, and Smb2IntegrityError when authentication fails or
    OriginalMessageSize is not the plaintext's size. The session to use (its key) is looked up by the
    caller from ``TransformHeader.decode(data).session_id``.
    """
    header = TransformHeader.decode(data)
    if len(data) <= TRANSFORM_HEADER_SIZE:
        raise Smb2DecodeError("encrypted message is no longer than its TRANSFORM_HEADER", 0)
    if header.flags != TransformFlags.ENCRYPTED:
        raise Smb2DecodeError(f"TRANSFORM_HEADER Flags 0x{header.flags:04X}, expected 0x0001", 42)
    n = nonce_size(cipher)
    sealed = bytes(data[TRANSFORM_HEADER_SIZE:]) + header.signature
    try:
        plain = _aead(cipher, key).decrypt(header.nonce[:n], sealed, header.associated_data())
    except InvalidTag:
        raise Smb2IntegrityError("encrypted message failed authentication", 4) from None
    if len(plain) != header.original_message_size:
        raise Smb2IntegrityError(
            f"OriginalMessageSize {header.original_message_size} but {len(plain)} bytes decrypted", 36
        )
    return header, plain
