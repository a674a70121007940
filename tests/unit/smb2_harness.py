r"""Requests crafted for :class:`~netsession.wire.smb2.connection.ServerConnection`, in memory, on the
client engine's own rules.

The server's tests send what a correct client never would: message ids out of order or reused, compounds,
unsigned requests on signing sessions, several sessions on one connection, a logon left half done. So
this harness does its own sequencing (message ids, credits, framing) and nothing else: the offer, the
negotiation's checks, each session's preauth chain, keys, the checks of the final SESSION_SETUP response,
signing, sealing and verifying are :mod:`netsession.wire.smb2.client_state`, the pieces the client's
:class:`~netsession.wire.smb2.client.ClientConnection` is made of, and the tokens come from its NTLMv2
initiator. Every response the server signed or sealed is checked, not trusted.

Everything is deterministic: a fixed FILETIME clock, a seeded random source, a fake backend that records
what it is told and opens echo pipes, an in-memory account lookup behind the real
:class:`~netsession.wire.smb2.auth.NtlmAuthenticator`.

    client = Smb2Harness.connected()                     # NEGOTIATE done (3.1.1 by default)
    session = client.logon("alice", "Al1ce-pw!")         # SESSION_SETUP legs, keys derived
    tree = client.tree_connect(session)
    reply = client.request(CreateRequest("srvsvc"), session=session, tree=tree)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any

from netsession.groups import ADMINISTRATORS, USERS
from netsession.server.accounts import nt_hash
from netsession.wire.ntlm_initiator import NtlmInitiator
from netsession.wire.smb2.auth import NtlmAuthenticator
from netsession.wire.smb2.client_state import (
    ALL_CIPHERS,
    ALL_SIGNING_ALGORITHMS,
    ClientConfig,
    ClientSession,
    Negotiation,
    Reply,
    negotiate_request,
    negotiated,
)
from netsession.wire.smb2.compound import build_compound, split_compound
from netsession.wire.smb2.connection import ServerConfig, ServerConnection, Session
from netsession.wire.smb2.constants import (
    Dialect,
    GlobalCapabilities,
    HashAlgorithm,
    NtStatus,
    SecurityMode,
)
from netsession.wire.smb2.create import CreateRequest, CreateResponse, FileId
from netsession.wire.smb2.crypto import nonce_size
from netsession.wire.smb2.header import Smb2Header, TransformHeader
from netsession.wire.smb2.messages import (
    Request,
    SessionSetupRequest,
    SessionSetupResponse,
    TreeConnectRequest,
    decode_response,
)
from netsession.wire.smb2.negotiate import NegotiateRequest, NegotiateResponse, PreauthIntegrityCapabilities
from netsession.wire.smb2.state import Open, TreeConnect
from netsession.wire.smb2.transport import DirectTcpDeframer, frame

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
        default_accounts(),
        server_name="FS1",
        entropy=DeterministicRandom(seed + 1000),
        clock=lambda: FIXED_UNIX_TIME,
        **auth,
    )
    return ServerConnection(
        config,
        authenticator,
        RecordingBackend(),
        client_address="10.0.0.5",
        clock=lambda: FIXED_FILETIME,
        random=DeterministicRandom(seed),
    )


# -- the harness -----------------------------------------------------------------------------------------


class Smb2Harness:
    """Builds requests, feeds them to the server connection and decodes what comes back."""

    def __init__(self, server: ServerConnection | None = None) -> None:
        self.server = server or make_server()
        # What this client offers; guests are let in (the server's tests log on as guest on purpose).
        self.config = ClientConfig(client_guid=CLIENT_GUID, allow_guest=True, signing_required=False)
        self.negotiation: Negotiation | None = None
        self.message_id = 0
        self.sessions: dict[int, ClientSession] = {}
        self.last_reply: Reply | None = None
        self._deframer = DirectTcpDeframer()
        self._nonce = 0

    @property
    def backend(self) -> RecordingBackend:
        backend = self.server.backend
        assert isinstance(backend, RecordingBackend)
        return backend

    @property
    def dialect(self) -> int | None:
        return self.negotiation.dialect if self.negotiation else None

    @property
    def signing_algorithm(self) -> int | None:
        return self.negotiation.signing_algorithm if self.negotiation else None

    @classmethod
    def connected(cls, dialects: Sequence[int] = (Dialect.SMB_3_1_1,), **kwargs: Any) -> Smb2Harness:
        client = cls(kwargs.pop("server", None))
        client.negotiate(dialects, **kwargs)
        return client

    # -- bytes in, bytes out --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Give the server transport bytes; the transport messages it sends back."""
        self.server.receive_data(data)
        return self._deframer.receive_data(self.server.data_to_send())

    def replies(self, transport_messages: list[bytes]) -> list[Reply]:
        """Decode transport messages from the server: opened with the session's keys when sealed."""
        out: list[Reply] = []
        for message in transport_messages:
            encrypted = message[:4] == b"\xfdSMB"
            if encrypted:
                message = self.sessions[TransformHeader.decode(message).session_id].unseal(message)
            for part in split_compound(message):
                header, body = decode_response(part)
                out.append(Reply(header.message_id, header, body, part, encrypted))
        return out

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
            sign = session is not None and session.keys is not None and not session.encrypt_data
        if sign:
            assert session is not None
            session.sign(message)
        return message

    def seal(self, message: bytes, session: ClientSession) -> bytes:
        self._nonce += 1
        return session.seal(message, self._nonce.to_bytes(nonce_size(session.cipher), "little"))

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
        encrypt = session is not None and session.encrypt_data
        (reply,) = self.send(self.build(body, **kwargs), encrypt_for=session if encrypt else None)
        return reply

    @staticmethod
    def verify(reply: Reply, session: ClientSession) -> bool:
        """Whether the reply is signed, and rightly, under the session's signing key."""
        return reply.header.is_signed and session.signature_valid(reply.raw)

    # -- the protocol's steps -----------------------------------------------------------------------------

    def negotiate_request(
        self,
        dialects: Sequence[int],
        *,
        ciphers: Sequence[int] = ALL_CIPHERS,
        signing: Sequence[int] | None = ALL_SIGNING_ALGORITHMS,
        security_mode: int = SecurityMode.SIGNING_ENABLED,
        capabilities: int = GlobalCapabilities.LARGE_MTU | GlobalCapabilities.ENCRYPTION,
        hashes: Sequence[int] = (HashAlgorithm.SHA_512,),
    ) -> NegotiateRequest:
        """The client's offer (:func:`negotiate_request`) for these dialects, ciphers and signing
        algorithms, with the security mode, capabilities and preauth hashes set as asked."""
        self.config = replace(
            self.config,
            dialects=tuple(dialects),
            ciphers=tuple(ciphers),
            signing_algorithms=tuple(signing or ()),
        )
        offer = negotiate_request(self.config, CLIENT_GUID, lambda n: bytes(range(n)))
        contexts = tuple(
            replace(c, hash_algorithms=tuple(hashes)) if isinstance(c, PreauthIntegrityCapabilities) else c
            for c in offer.negotiate_contexts
        )
        return replace(
            offer, security_mode=security_mode, capabilities=capabilities, negotiate_contexts=contexts
        )

    def negotiate(self, dialects: Sequence[int] = (Dialect.SMB_3_1_1,), **kwargs: Any) -> Reply:
        message = self.build(self.negotiate_request(dialects, **kwargs))
        (reply,) = self.send(message)
        if reply.status == NtStatus.STATUS_SUCCESS:
            self.accept_negotiation(reply, bytes(message))
        return reply

    def accept_negotiation(self, reply: Reply, request: bytes = b"") -> Negotiation:
        """Take the server's NEGOTIATE response, checked as the client checks it (§3.2.5.2)."""
        assert isinstance(reply.body, NegotiateResponse)
        self.negotiation = negotiated(self.config, reply.body, request, reply.raw)
        return self.negotiation

    def logon(
        self,
        user: str,
        password: str | None = None,
        *,
        security_mode: int = SecurityMode.SIGNING_ENABLED,
        expect: int = NtStatus.STATUS_SUCCESS,
    ) -> ClientSession:
        """SESSION_SETUP legs with our NTLMv2 initiator until the server answers something other than
        MORE_PROCESSING_REQUIRED; that final status must be ``expect``. A new session each time."""
        negotiation = self.negotiation
        assert negotiation is not None, "NEGOTIATE first"
        password = password if password is not None else PASSWORDS[user]
        ntlm = NtlmInitiator(user, nt_hash=nt_hash(password), workstation="FS1", target="cifs/fs1")
        session = ClientSession.starting(negotiation)
        token = ntlm.step(None)
        while True:
            assert token is not None
            message = self.build(SessionSetupRequest(token, security_mode=security_mode), session=session)
            (reply,) = self.send(message)
            session.answered(negotiation.dialect, bytes(message), reply.header, reply.raw)
            if reply.status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
                break
            assert isinstance(reply.body, SessionSetupResponse)
            token = ntlm.step(reply.body.security_buffer)
        assert reply.status == expect, f"SESSION_SETUP ended with 0x{reply.status:08X}"
        if reply.status != NtStatus.STATUS_SUCCESS:
            return ClientSession()
        assert isinstance(reply.body, SessionSetupResponse)
        if reply.body.security_buffer:
            ntlm.step(reply.body.security_buffer)
        session.establish(
            negotiation,
            reply,
            ntlm.session_key,
            allow_guest=True,
            signing_required=bool(security_mode & SecurityMode.SIGNING_REQUIRED),
        )
        self.sessions[session.session_id] = session
        self.last_reply = reply
        return session

    def tree_connect(self, session: ClientSession, share: str = "IPC$") -> int:
        reply = self.request(TreeConnectRequest(f"\\\\fs1\\{share}"), session=session)
        assert reply.status == NtStatus.STATUS_SUCCESS, hex(reply.status)
        return reply.header.tree_id

    def open_pipe(self, session: ClientSession, tree: int, name: str = "srvsvc") -> FileId:
        reply = self.request(CreateRequest(name), session=session, tree=tree)
        assert reply.status == NtStatus.STATUS_SUCCESS, hex(reply.status)
        assert isinstance(reply.body, CreateResponse)
        return reply.body.file_id


def ready(
    dialect: int = Dialect.SMB_3_1_1, user: str = "alice", **kwargs: Any
) -> tuple[Smb2Harness, ClientSession, int]:
    """A client negotiated at ``dialect``, logged on as ``user``, connected to IPC$."""
    client = Smb2Harness.connected((dialect,), **kwargs)
    session = client.logon(user)
    return client, session, client.tree_connect(session)


def with_flags(message: bytearray, flags: int) -> bytearray:
    header = Smb2Header.decode(message)
    return bytearray(replace(header, flags=header.flags | flags).encode() + bytes(message[64:]))

