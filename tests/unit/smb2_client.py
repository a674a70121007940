r"""An in-memory SMB2 client for driving :class:`~netsession.wire.smb2.connection.ServerConnection` in tests.

Everything deterministic: a fixed FILETIME clock, a seeded random source, a fake backend that records what
it is told and opens echo pipes, an in-memory account lookup behind the real
:class:`~netsession.wire.smb2.auth.NtlmAuthenticator`, and our own NTLMv2 initiator
(:class:`~netsession.wire.ntlm_initiator.NtlmInitiator`, the client engine's) as the token source. This is
a request-crafting harness for the server's tests (malformed, out-of-order and compound requests); the
client itself is :class:`~netsession.wire.smb2.client.ClientConnection`.
Requests are built with the project's own encoders and responses read with its decoders; signing,
encryption and the 3.1.1 preauth integrity hash are done on the client side with
``netsession.wire.smb2.crypto`` the way MS-SMB2 §3.2 describes it, so a response the server signed or
sealed is checked, not trusted.

    client = Smb2TestClient.connected()                  # NEGOTIATE done (3.1.1 by default)
    session = client.logon("alice", "Al1ce-pw!")         # SESSION_SETUP legs, keys derived
    tree = client.tree_connect(session)
    header, body = client.request(CreateRequest("srvsvc"), session=session, tree=tree)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any

from netsession.groups import ADMINISTRATORS, USERS
from netsession.server.accounts import nt_hash
from netsession.wire.ntlm_initiator import NtlmInitiator
from netsession.wire.smb2.auth import NtlmAuthenticator
from netsession.wire.smb2.compound import build_compound, split_compound
from netsession.wire.smb2.connection import ServerConfig, ServerConnection, Session
from netsession.wire.smb2.constants import (
    Cipher,
    Dialect,
    GlobalCapabilities,
    HashAlgorithm,
    HeaderFlags,
    NtStatus,
    SecurityMode,
    SigningAlgorithm,
)
from netsession.wire.smb2.create import CreateRequest, FileId
from netsession.wire.smb2.crypto import (
    INITIAL_PREAUTH_HASH,
    SessionKeys,
    decrypt_message,
    derive_session_keys,
    encrypt_message,
    nonce_size,
    preauth_hash,
    sign_message,
    signing_algorithm_for,
    verify_signature,
)
from netsession.wire.smb2.header import Smb2Header
from netsession.wire.smb2.messages import (
    Request,
    Response,
    SessionSetupRequest,
    SessionSetupResponse,
    TreeConnectRequest,
    decode_response,
)
from netsession.wire.smb2.negotiate import (
    EncryptionCapabilities,
    NegotiateRequest,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
)
from netsession.wire.smb2.state import Open, TreeConnect
from netsession.wire.smb2.transport import DirectTcpDeframer, frame

ALL_DIALECTS = (Dialect.SMB_2_0_2, Dialect.SMB_2_1, Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1)
ALL_CIPHERS = (Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM)
ALL_SIGNING = (SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256)
FIXED_FILETIME = 133_000_000_000_000_000  # 2022-06-15, any fixed value will do
FIXED_UNIX_TIME = 1_655_251_200.0
SERVER_GUID = uuid.UUID("6e657473-6573-7369-6f6e-2d7465737473")
CLIENT_GUID = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
PASSWORDS = {"alice": "Al1ce-pw!", "bob": "B0b-pw!", "admin": "Adm1n-pw!"}


# -- the server's collaborators --------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryAccount:
    name: str
    nt_hash: bytes
    groups: Set[str]


class MemoryAccounts:
    """The AccountLookup the authenticator needs, in a dict (case-insensitive names)."""

    def __init__(self, passwords: dict[str, str] = PASSWORDS) -> None:
        self.accounts = {
            name.casefold(): MemoryAccount(
                name, nt_hash(pw), frozenset({ADMINISTRATORS if name == "admin" else USERS})
            )
            for name, pw in passwords.items()
        }

    def get(self, name: str) -> MemoryAccount | None:
        return self.accounts.get(name.casefold())


class DeterministicRandom:
    """``random(n) -> n bytes`` from a seeded generator: the same run, the same bytes."""

    def __init__(self, seed: int = 1) -> None:
        self._rng = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._rng.randbytes(n)


class EchoPipe:
    """A message-mode pipe whose reply to each message is the message reversed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[bytes] = []
        self.closed = 0

    def write(self, data: bytes) -> None:
        self.messages.append(data[::-1])

    def read(self, max_length: int) -> tuple[bytes, int]:
        if not self.messages:
            return b"", 0
        head = self.messages[0]
        chunk, rest = head[:max_length], head[max_length:]
        if rest:
            self.messages[0] = rest
        else:
            self.messages.pop(0)
        return chunk, len(rest)

    def close(self) -> None:
        self.closed += 1


@dataclass
class RecordingBackend:
    """The Backend: records every call; ``srvsvc`` (any case) is the only pipe."""

    events: list[tuple[str, int]] = field(default_factory=list)
    pipes: list[EchoPipe] = field(default_factory=list)
    sessions: dict[int, Session] = field(default_factory=dict)

    def session_established(self, session: Session) -> None:
        self.events.append(("established", session.session_id))
        self.sessions[session.session_id] = session

    def session_active(self, session: Session) -> None:
        self.events.append(("active", session.session_id))

    def session_ended(self, session: Session) -> None:
        self.events.append(("ended", session.session_id))
        self.sessions.pop(session.session_id, None)

    def open_pipe(self, session: Session, name: str) -> EchoPipe | None:
        if name.casefold() != "srvsvc":
            return None
        pipe = EchoPipe(name)
        self.pipes.append(pipe)
        return pipe

    def tree_connected(self, session: Session, tree: TreeConnect) -> None:
        self.events.append(("tree_connected", tree.tree_id))

    def tree_disconnected(self, tree: TreeConnect) -> None:
        self.events.append(("tree_disconnected", tree.tree_id))

    def pipe_opened(self, session: Session, open_: Open) -> None:
        self.events.append(("pipe_opened", open_.file_id.volatile))

    def pipe_closed(self, open_: Open) -> None:
        self.events.append(("pipe_closed", open_.file_id.volatile))

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.events if k == kind)


_ACCOUNTS: list[MemoryAccounts] = []


def default_accounts() -> MemoryAccounts:
    """One shared lookup (the NT hashes are computed once)."""
    if not _ACCOUNTS:
        _ACCOUNTS.append(MemoryAccounts())
    return _ACCOUNTS[0]


def make_server(config: ServerConfig | None = None, *, seed: int = 1, **auth: Any) -> ServerConnection:
    """A ServerConnection with the fixed clock, a seeded random source and a RecordingBackend: the same
    seed and the same input give the same output, byte for byte."""
    config = config or ServerConfig(server_guid=SERVER_GUID)
    authenticator = NtlmAuthenticator(
        default_accounts(), server_name="FS1", entropy=DeterministicRandom(seed + 1000),
        clock=lambda: FIXED_UNIX_TIME, **auth,
    )
    return ServerConnection(
        config, authenticator, RecordingBackend(), client_address="10.0.0.5",
        clock=lambda: FIXED_FILETIME, random=DeterministicRandom(seed),
    )


# -- the client ------------------------------------------------------------------------------------------


@dataclass
class ClientSession:
    session_id: int
    keys: SessionKeys | None
    user: str
    flags: int = 0
    encrypt: bool = False


class ServerClosed(Exception):
    """The server set ``closing`` (and queued nothing more for this request)."""


@dataclass
class Reply:
    header: Smb2Header
    body: Response
    raw: bytes  # the SMB2 message as received (after decryption), padding included
    encrypted: bool


class Smb2TestClient:
    """Builds requests, feeds them to the server connection and decodes what comes back."""

    def __init__(self, server: ServerConnection | None = None) -> None:
        self.server = server or make_server()
        self.message_id = 0
        self.dialect: int | None = None
        self.negotiate_response: NegotiateResponse | None = None
        self.cipher = Cipher.NONE
        self.signing_algorithm: int | None = None
        self.preauth = INITIAL_PREAUTH_HASH
        self.sessions: dict[int, ClientSession] = {}
        self._deframer = DirectTcpDeframer()
        self._nonce = 0

    @property
    def backend(self) -> RecordingBackend:
        backend = self.server.backend
        assert isinstance(backend, RecordingBackend)
        return backend

    @classmethod
    def connected(cls, dialects: Sequence[int] = (Dialect.SMB_3_1_1,), **kwargs: Any) -> Smb2TestClient:
        client = cls(kwargs.pop("server", None))
        client.negotiate(dialects, **kwargs)
        return client

    # -- bytes in, bytes out --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Give the server transport bytes; the transport messages it sends back."""
        self.server.receive_data(data)
        return self._deframer.receive_data(self.server.data_to_send())

    def replies(self, transport_messages: list[bytes]) -> list[Reply]:
        out: list[Reply] = []
        for message in transport_messages:
            encrypted = message[:4] == b"\xfdSMB"
            if encrypted:
                from netsession.wire.smb2.header import TransformHeader

                session = self.sessions[TransformHeader.decode(message).session_id]
                assert session.keys is not None and session.keys.encryption_key is not None
                _, message = decrypt_message(message, session.keys.encryption_key, cipher=self._cipher())
            for part in split_compound(message):
                header, body = decode_response(part)
                out.append(Reply(header, body, part, encrypted))
        return out

    def _cipher(self) -> int:
        return self.cipher if self.dialect == Dialect.SMB_3_1_1 else Cipher.AES_128_CCM

    def next_ids(self, n: int = 1) -> list[int]:
        ids = list(range(self.message_id, self.message_id + n))
        self.message_id += n
        return ids

    def build(
        self,
        body: Request,
        *,
        session: ClientSession | None = None,
        tree: int = 0,
        message_id: int | None = None,
        credits: int = 1,
        flags: int = 0,
        sign: bool | None = None,
        credit_charge: int = 1,
        command: int | None = None,
    ) -> bytearray:
        """One request message (signed when ``sign``, by default when the session has keys and is not
        encrypting)."""
        if message_id is None:
            (message_id,) = self.next_ids()
        cmd = command if command is not None else getattr(body, "COMMAND", None)
        if cmd is None:
            cmd = body.command  # type: ignore[union-attr]
        header = Smb2Header(
            command=cmd,
            credit_charge=credit_charge,
            credits=credits,
            flags=flags,
            message_id=message_id,
            tree_id=tree,
            session_id=session.session_id if session else 0,
        )
        message = bytearray(header.encode() + body.encode())
        if sign is None:
            sign = session is not None and session.keys is not None and not session.encrypt
        if sign:
            assert session is not None and session.keys is not None
            self.sign(message, session)
        return message

    def sign(self, message: bytearray, session: ClientSession) -> None:
        assert self.dialect is not None and session.keys is not None
        algorithm = signing_algorithm_for(self.dialect, self.signing_algorithm)
        sign_message(message, session.keys.signing_key, algorithm)

    def seal(self, message: bytes, session: ClientSession) -> bytes:
        assert session.keys is not None and session.keys.decryption_key is not None
        self._nonce += 1
        nonce = self._nonce.to_bytes(nonce_size(self._cipher()), "little")
        key = session.keys.decryption_key  # the server's DecryptionKey is the client's encryption key
        cipher = self._cipher()
        return encrypt_message(message, key, cipher=cipher, session_id=session.session_id, nonce=nonce)

    def send(self, *messages: bytes | bytearray, encrypt_for: ClientSession | None = None) -> list[Reply]:
        """Send messages as one transport message (a compound if several); the replies."""
        if len(messages) == 1:
            data = bytes(messages[0])
        else:
            data = build_compound(list(messages))
        if encrypt_for is not None:
            data = self.seal(data, encrypt_for)
        return self.replies(self.feed(frame(data)))

    def request(self, body: Request, **kwargs: Any) -> Reply:
        """One request, one reply (sealed when the session encrypts)."""
        session: ClientSession | None = kwargs.get("session")
        encrypt = session is not None and session.encrypt
        (reply,) = self.send(self.build(body, **kwargs), encrypt_for=session if encrypt else None)
        return reply

    def verify(self, reply: Reply, session: ClientSession) -> bool:
        """Whether the reply's signature is right under the session's signing key."""
        assert self.dialect is not None and session.keys is not None
        algorithm = signing_algorithm_for(self.dialect, self.signing_algorithm)
        return bool(reply.header.flags & HeaderFlags.SIGNED) and verify_signature(
            reply.raw, session.keys.signing_key, algorithm
        )

    # -- the protocol's steps -----------------------------------------------------------------------------

    def negotiate_request(
        self,
        dialects: Sequence[int],
        *,
        ciphers: Sequence[int] = ALL_CIPHERS,
        signing: Sequence[int] | None = ALL_SIGNING,
        security_mode: int = SecurityMode.SIGNING_ENABLED,
        capabilities: int = GlobalCapabilities.LARGE_MTU | GlobalCapabilities.ENCRYPTION,
        hashes: Sequence[int] = (HashAlgorithm.SHA_512,),
    ) -> NegotiateRequest:
        contexts: list[Any] = []
        if Dialect.SMB_3_1_1 in dialects:
            contexts.append(PreauthIntegrityCapabilities(tuple(hashes), bytes(range(32))))
            if ciphers:
                contexts.append(EncryptionCapabilities(tuple(ciphers)))
            if signing:
                contexts.append(SigningCapabilities(tuple(signing)))
        return NegotiateRequest(
            tuple(dialects), security_mode, capabilities, CLIENT_GUID, tuple(contexts)
        )

    def negotiate(self, dialects: Sequence[int] = (Dialect.SMB_3_1_1,), **kwargs: Any) -> Reply:
        request = self.negotiate_request(dialects, **kwargs)
        message = self.build(request)
        (reply,) = self.send(message)
        if reply.header.status == NtStatus.STATUS_SUCCESS:
            assert isinstance(reply.body, NegotiateResponse)
            self.negotiate_response = reply.body
            self.dialect = reply.body.dialect_revision
            for ctx in reply.body.negotiate_contexts:
                if isinstance(ctx, EncryptionCapabilities):
                    self.cipher = Cipher(ctx.ciphers[0])
                elif isinstance(ctx, SigningCapabilities):
                    self.signing_algorithm = ctx.signing_algorithms[0]
            if self.dialect == Dialect.SMB_3_1_1:
                self.preauth = preauth_hash(preauth_hash(INITIAL_PREAUTH_HASH, message), reply.raw)
        return reply

    def logon(
        self,
        user: str,
        password: str | None = None,
        *,
        security_mode: int = SecurityMode.SIGNING_ENABLED,
        expect: int = NtStatus.STATUS_SUCCESS,
    ) -> ClientSession:
        """SESSION_SETUP legs with our NTLMv2 initiator until the server answers something other than
        MORE_PROCESSING_REQUIRED; that final status must be ``expect``."""
        assert self.dialect is not None
        password = password if password is not None else PASSWORDS[user]
        ntlm = NtlmInitiator(user, nt_hash=nt_hash(password), workstation="FS1", target="cifs/fs1")
        token = ntlm.step(None)
        session_id = 0
        session_hash = self.preauth
        while True:
            assert token is not None
            request = SessionSetupRequest(token, security_mode=security_mode)
            draft = ClientSession(session_id, None, user)
            message = self.build(request, session=draft if session_id else None, sign=False)
            if self.dialect == Dialect.SMB_3_1_1:
                session_hash = preauth_hash(session_hash, message)
            (reply,) = self.send(message)
            status = reply.header.status
            if status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
                break
            assert isinstance(reply.body, SessionSetupResponse)
            session_id = reply.header.session_id
            if self.dialect == Dialect.SMB_3_1_1:
                session_hash = preauth_hash(session_hash, reply.raw)
            token = ntlm.step(reply.body.security_buffer)
        assert status == expect, f"SESSION_SETUP ended with 0x{status:08X}"
        if status != NtStatus.STATUS_SUCCESS:
            return ClientSession(0, None, user)
        assert isinstance(reply.body, SessionSetupResponse)
        if reply.body.security_buffer:
            ntlm.step(reply.body.security_buffer)
        keys = derive_session_keys(
            self.dialect,
            ntlm.session_key,
            preauth_hash=session_hash if self.dialect == Dialect.SMB_3_1_1 else None,
            cipher=self._cipher() if self.dialect >= Dialect.SMB_3_0 else Cipher.NONE,
        )
        session = ClientSession(reply.header.session_id, keys, user, reply.body.session_flags)
        session.encrypt = bool(reply.body.session_flags & 0x0004)
        self.sessions[session.session_id] = session
        self.last_reply = reply
        return session

    def tree_connect(self, session: ClientSession, share: str = "IPC$") -> int:
        reply = self.request(TreeConnectRequest(f"\\\\fs1\\{share}"), session=session)
        assert reply.header.status == NtStatus.STATUS_SUCCESS, hex(reply.header.status)
        return reply.header.tree_id

    def open_pipe(self, session: ClientSession, tree: int, name: str = "srvsvc") -> FileId:
        from netsession.wire.smb2.create import CreateResponse

        reply = self.request(CreateRequest(name), session=session, tree=tree)
        assert reply.header.status == NtStatus.STATUS_SUCCESS, hex(reply.header.status)
        assert isinstance(reply.body, CreateResponse)
        return reply.body.file_id


def ready(
    dialect: int = Dialect.SMB_3_1_1, user: str = "alice", **kwargs: Any
) -> tuple[Smb2TestClient, ClientSession, int]:
    """A client negotiated at ``dialect``, logged on as ``user``, connected to IPC$."""
    client = Smb2TestClient.connected((dialect,), **kwargs)
    session = client.logon(user)
    return client, session, client.tree_connect(session)


def with_flags(message: bytearray, flags: int) -> bytearray:
    header = Smb2Header.decode(message)
    return bytearray(replace(header, flags=header.flags | flags).encode() + bytes(message[64:]))


Send = Callable[..., list[Reply]]
