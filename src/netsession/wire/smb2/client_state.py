"""What an SMB2/3 client knows apart from sequencing: its offer, the negotiation, and each session.

MS-SMB2 §3.2.1.1 (global settings: :class:`ClientConfig`), §3.2.4.2.2.2 (the NEGOTIATE request:
:func:`negotiate_request`), §3.2.5.2 (checking the server's choices: :func:`negotiated`), §3.2.1.3 and
§3.2.5.3.1 (a session: its preauth integrity chain, its keys, the checks of the final SESSION_SETUP
response: :class:`ClientSession`), §3.2.4.1.1 / §3.2.5.1.3 (signing and verifying) and §3.2.4.1.8 /
§3.2.5.1.1.1 (sealing and opening).

:class:`~netsession.wire.smb2.client.ClientConnection` composes these with message ids, credits and the
bounds of what it asked for. The server's tests compose the same pieces around requests they craft
(wrong message ids, compounds, several sessions on one connection), so both sides of every test speak
through one client's rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .codec import Smb2DecodeError
from .constants import (
    Cipher,
    Dialect,
    GlobalCapabilities,
    HashAlgorithm,
    NtStatus,
    SecurityMode,
    SessionFlags,
    SigningAlgorithm,
)
from .crypto import (
    INITIAL_PREAUTH_HASH,
    SessionKeys,
    Smb2IntegrityError,
    decrypt_message,
    derive_session_keys,
    encrypt_message,
    preauth_hash,
    sign_message,
    signing_algorithm_for,
    verify_signature,
)
from .header import Smb2Header
from .messages import Response, SessionSetupResponse
from .negotiate import (
    EncryptionCapabilities,
    NegotiateContext,
    NegotiateRequest,
    NegotiateResponse,
    NetnameNegotiateContextId,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
)

ALL_DIALECTS: Final = (
    Dialect.SMB_2_0_2,
    Dialect.SMB_2_1,
    Dialect.SMB_3_0,
    Dialect.SMB_3_0_2,
    Dialect.SMB_3_1_1,
)
# Most preferred first, as Windows 11 orders them (MS-SMB2 §3.2.4.2.2.2).
ALL_CIPHERS: Final = (Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM)
ALL_SIGNING_ALGORITHMS: Final = (
    SigningAlgorithm.AES_GMAC,
    SigningAlgorithm.AES_CMAC,
    SigningAlgorithm.HMAC_SHA256,
)


class RemoteProtocolError(Smb2DecodeError):
    """The server broke MS-SMB2 §3.2.5 (an answer to nothing, a refused negotiation, an unsigned response
    where a signature is due...). The connection must be dropped (§3.2.7.1)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)


class LocalProtocolError(Exception):
    """The caller asked for something the connection's state does not allow."""


class EncryptionUnavailable(LocalProtocolError):
    """Encryption is required but the server offers none (no SMB 3.x, or no common cipher)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What the client offers and insists on (MS-SMB2 §3.2.1.1 global settings).

    ``signing_required`` is RequireMessageSigning: every response on an authenticated (not guest, not
    anonymous) session must be signed or sealed. ``encryption_required`` seals every request after the
    logon and fails if the server cannot. ``allow_guest`` is AllowInsecureGuestAccess.
    """

    dialects: tuple[int, ...] = ALL_DIALECTS
    signing_required: bool = True
    encryption_required: bool = False
    ciphers: tuple[int, ...] = ALL_CIPHERS
    signing_algorithms: tuple[int, ...] = ALL_SIGNING_ALGORITHMS
    client_guid: uuid.UUID | None = None
    server_name: str = ""
    allow_guest: bool = False
    credits: int = 64  # how many credits to keep asking for


@dataclass(frozen=True, slots=True)
class Reply:
    """A response to the request ``message_id`` (the final one: interim responses are absorbed).

    ``raw`` is the SMB2 message as received (after decryption); ``encrypted`` whether it came sealed.
    """

    message_id: int
    header: Smb2Header
    body: Response
    raw: bytes
    encrypted: bool

    @property
    def status(self) -> int:
        return self.header.status


# -- NEGOTIATE ---------------------------------------------------------------------------------------------


def negotiate_request(
    config: ClientConfig, client_guid: uuid.UUID, random: Callable[[int], bytes]
) -> NegotiateRequest:
    """The NEGOTIATE request that offers what ``config`` says (§3.2.4.2.2.2)."""
    mode = SecurityMode.SIGNING_ENABLED | (SecurityMode.SIGNING_REQUIRED if config.signing_required else 0)
    capabilities = GlobalCapabilities.LARGE_MTU
    if any(d >= Dialect.SMB_3_0 for d in config.dialects) and config.ciphers:
        capabilities |= GlobalCapabilities.ENCRYPTION
    contexts: list[NegotiateContext] = []
    if Dialect.SMB_3_1_1 in config.dialects:
        contexts.append(PreauthIntegrityCapabilities((HashAlgorithm.SHA_512,), random(32)))
        if config.ciphers:
            contexts.append(EncryptionCapabilities(tuple(config.ciphers)))
        if config.signing_algorithms:
            contexts.append(SigningCapabilities(tuple(config.signing_algorithms)))
        if config.server_name:
            contexts.append(NetnameNegotiateContextId(config.server_name))
    return NegotiateRequest(tuple(config.dialects), mode, capabilities, client_guid, tuple(contexts))


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What a successful NEGOTIATE settled (the §3.2.1.2 Connection fields it sets)."""

    response: NegotiateResponse
    dialect: int
    server_signing_required: bool
    supports_multi_credit: bool
    signing_algorithm: int
    cipher: int
    # Connection.PreauthIntegrityHashValue after NEGOTIATE: where each session's chain starts (3.1.1).
    preauth_hash: bytes

    @property
    def server_encrypts(self) -> bool:
        return bool(self.response.capabilities & GlobalCapabilities.ENCRYPTION)


def negotiated(config: ClientConfig, response: NegotiateResponse, request: bytes, raw: bytes) -> Negotiation:
    """§3.2.5.2: the server's choices, checked against the offer in ``config``.

    ``request`` and ``raw`` are the NEGOTIATE request and response messages as they crossed the wire
    (3.1.1 hashes both into the preauth integrity chain). Raises :class:`RemoteProtocolError`.
    """
    dialect = response.dialect_revision
    if dialect not in config.dialects:
        raise RemoteProtocolError(f"the server chose dialect 0x{dialect:04X}, which was not offered")
    signing_algorithm = signing_algorithm_for(dialect)
    cipher: int = Cipher.NONE
    chain = INITIAL_PREAUTH_HASH
    if dialect == Dialect.SMB_3_1_1:
        preauth = [c for c in response.negotiate_contexts if isinstance(c, PreauthIntegrityCapabilities)]
        if len(preauth) != 1 or preauth[0].hash_algorithms != (HashAlgorithm.SHA_512,):
            raise RemoteProtocolError(
                "a 3.1.1 NEGOTIATE response without exactly one SHA-512 preauth context"
            )
        for ctx in response.negotiate_contexts:
            if isinstance(ctx, EncryptionCapabilities):
                if len(ctx.ciphers) != 1 or (ctx.ciphers[0] and ctx.ciphers[0] not in config.ciphers):
                    raise RemoteProtocolError(f"the server chose cipher(s) {ctx.ciphers}, not one we offered")
                cipher = ctx.ciphers[0]
            elif isinstance(ctx, SigningCapabilities):
                alg = ctx.signing_algorithms
                if len(alg) != 1 or alg[0] not in config.signing_algorithms:
                    raise RemoteProtocolError(
                        f"the server chose signing algorithm(s) {alg}, not one we offered"
                    )
                signing_algorithm = signing_algorithm_for(dialect, alg[0])
        chain = preauth_hash(preauth_hash(INITIAL_PREAUTH_HASH, request), raw)
    elif dialect >= Dialect.SMB_3_0 and response.capabilities & GlobalCapabilities.ENCRYPTION:
        cipher = Cipher.AES_128_CCM
    return Negotiation(
        response=response,
        dialect=dialect,
        server_signing_required=bool(response.security_mode & SecurityMode.SIGNING_REQUIRED),
        supports_multi_credit=dialect != Dialect.SMB_2_0_2
        and bool(response.capabilities & GlobalCapabilities.LARGE_MTU),
        signing_algorithm=signing_algorithm,
        cipher=cipher,
        preauth_hash=chain,
    )


# -- a session ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ClientSession:
    """The client's Session (§3.2.1.3)."""

    session_id: int = 0
    preauth_hash: bytes = INITIAL_PREAUTH_HASH
    keys: SessionKeys | None = None
    signing_required: bool = False
    encrypt_data: bool = False
    is_guest: bool = False
    is_anonymous: bool = False
    established: bool = False
    hash_before_final: bytes | None = None  # Session.PreauthIntegrityHashValue after the last request
    signing_algorithm: int = SigningAlgorithm.HMAC_SHA256
    cipher: int = Cipher.NONE

    @classmethod
    def starting(cls, negotiation: Negotiation) -> ClientSession:
        """A new session's logon state on a negotiated connection (its chain starts at NEGOTIATE's)."""
        return cls(preauth_hash=negotiation.preauth_hash)

    def answered(self, dialect: int, request: bytes, header: Smb2Header, response: bytes) -> None:
        """One SESSION_SETUP leg came back (§3.2.5.3.1): SessionId and the 3.1.1 preauth chain — the
        request always, the response only when more processing follows. A failed leg changes nothing."""
        status = header.status
        if status not in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_MORE_PROCESSING_REQUIRED):
            return
        if self.session_id and header.session_id != self.session_id:
            raise RemoteProtocolError("SESSION_SETUP answered for another SessionId")
        self.session_id = header.session_id
        if dialect != Dialect.SMB_3_1_1:
            self.hash_before_final = b""
            return
        self.preauth_hash = preauth_hash(self.preauth_hash, request)
        if status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
            self.preauth_hash = preauth_hash(self.preauth_hash, response)
        else:
            self.hash_before_final = self.preauth_hash

    def establish(
        self,
        negotiation: Negotiation,
        response: Reply,
        gss_session_key: bytes,
        *,
        anonymous: bool = False,
        allow_guest: bool = False,
        signing_required: bool = True,
        encryption_required: bool = False,
    ) -> None:
        """Finish the logon after the GSS exchange accepted the final SESSION_SETUP ``response``
        (§3.2.5.3.1): derive the keys, apply the session flags, and verify the response's signature with
        the new key. ``signing_required`` and ``encryption_required`` are the client's own settings."""
        dialect = negotiation.dialect
        if self.established:
            raise LocalProtocolError("this session is already established")
        body = response.body
        if not isinstance(body, SessionSetupResponse) or response.status != NtStatus.STATUS_SUCCESS:
            raise LocalProtocolError("the logon ends with a successful SESSION_SETUP response")
        if dialect == Dialect.SMB_3_1_1 and self.hash_before_final is None:
            raise LocalProtocolError("no final SESSION_SETUP request was hashed")
        flags = body.session_flags
        self.session_id = response.header.session_id
        self.is_guest = bool(flags & SessionFlags.IS_GUEST)
        self.is_anonymous = anonymous or bool(flags & SessionFlags.IS_NULL)
        if self.is_guest and not allow_guest:
            # §3.2.5.3.1: AllowInsecureGuestAccess FALSE and RequireMessageSigning TRUE -> terminate.
            raise RemoteProtocolError("the server logged us on as guest, and guest access is not allowed")
        unauthenticated = self.is_guest or self.is_anonymous
        cipher = (
            negotiation.cipher
            if dialect == Dialect.SMB_3_1_1
            else (Cipher.AES_128_CCM if negotiation.server_encrypts else Cipher.NONE)
        )
        if not unauthenticated or gss_session_key:
            self.keys = derive_session_keys(
                dialect,
                gss_session_key or bytes(16),
                preauth_hash=self.hash_before_final if dialect == Dialect.SMB_3_1_1 else None,
                cipher=cipher,
            )
        self.signing_algorithm = negotiation.signing_algorithm
        self.cipher = cipher
        self.signing_required = not unauthenticated and (
            signing_required or negotiation.server_signing_required
        )
        if dialect >= Dialect.SMB_3_0 and flags & SessionFlags.ENCRYPT_DATA:
            self.encrypt_data = True
            self.signing_required = False
        if encryption_required and not unauthenticated:
            self.encrypt_data = True
        if self.encrypt_data and (
            cipher == Cipher.NONE or self.keys is None or self.keys.decryption_key is None
        ):
            raise EncryptionUnavailable(f"the server offers no SMB 3 encryption (dialect 0x{dialect:04X})")
        # The final response: signed with the new key (3.1.1 MUST, §3.2.5.3.1; otherwise when signing).
        if not unauthenticated:
            if response.header.is_signed:
                if not self.signature_valid(response.raw):
                    raise Smb2IntegrityError("the final SESSION_SETUP response has a bad signature", 48)
            elif not response.encrypted and (dialect == Dialect.SMB_3_1_1 or self.signing_required):
                raise RemoteProtocolError("the final SESSION_SETUP response is not signed")
        self.established = True

    # -- what the keys are for -----------------------------------------------------------------------------

    def sign(self, message: bytearray) -> None:
        """Sign one SMB2 message in place (§3.2.4.1.1)."""
        if self.keys is None:
            raise LocalProtocolError("this session has no keys to sign with")
        sign_message(message, self.keys.signing_key, self.signing_algorithm)

    def signature_valid(self, raw: bytes) -> bool:
        """Whether ``raw`` carries this session's signature (§3.2.5.1.3)."""
        return self.keys is not None and verify_signature(raw, self.keys.signing_key, self.signing_algorithm)

    def seal(self, raw: bytes, nonce: bytes) -> bytes:
        """The TRANSFORM message carrying ``raw`` (§3.2.4.1.8); ``nonce`` must never repeat under the key."""
        keys = self.keys
        if keys is None or keys.decryption_key is None:
            raise LocalProtocolError("this session has no key to encrypt with")
        # The server's DecryptionKey (client-to-server) is what the client encrypts with.
        return encrypt_message(
            raw, keys.decryption_key, cipher=self.cipher, session_id=self.session_id, nonce=nonce
        )

    def unseal(self, message: bytes) -> bytes:
        """The SMB2 message inside a TRANSFORM message from the server (§3.2.5.1.1.1)."""
        keys = self.keys
        if keys is None or keys.encryption_key is None:
            raise RemoteProtocolError("an encrypted message for a session without keys (§3.2.5.1.1.1)")
        _, plain = decrypt_message(message, keys.encryption_key, cipher=self.cipher)
        return plain


__all__ = [
    "ALL_CIPHERS",
    "ALL_DIALECTS",
    "ALL_SIGNING_ALGORITHMS",
    "ClientConfig",
    "ClientSession",
    "EncryptionUnavailable",
    "LocalProtocolError",
    "Negotiation",
    "RemoteProtocolError",
    "Reply",
    "negotiate_request",
    "negotiated",
]
