"""The server side of one SMB2/3 connection, sans-I/O (MS-SMB2 §3.3), for a named-pipe server.

:class:`ServerConnection` is fed the bytes a client sent and queues the bytes to send back::

    conn = ServerConnection(config, authenticator, backend, clock=filetime_now)
    conn.receive_data(data)          # Direct TCP stream bytes, any split
    transport.write(conn.data_to_send())
    if conn.closing: transport.close()

It negotiates 2.0.2 to 3.1.1 (and answers an SMB1 multi-protocol NEGOTIATE so clients move to SMB2),
authenticates through an :class:`~netsession.wire.smb2.auth.Authenticator`, signs and verifies, encrypts
and decrypts, and serves one share, ``IPC$``, whose files are named pipes that a :class:`Backend` opens.
The backend also hears of every session's life (established, active, ended), which is how the server's
session table stays the truth; :meth:`ServerConnection.close_session` is how NetrSessionDel ends one.

Nothing here reads a clock or touches a socket: the FILETIME clock and the random source are passed in.
"""

from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .auth import AuthenticationFailed, Authenticator
from .codec import Smb2DecodeError
from .compound import build_compound, split_compound
from .constants import (
    Cipher,
    Command,
    Dialect,
    FsctlCode,
    GlobalCapabilities,
    HashAlgorithm,
    HeaderFlags,
    IoctlFlags,
    NegotiateContextType,
    NtStatus,
    SecurityMode,
    SessionFlags,
    SessionSetupFlags,
    SigningAlgorithm,
)
from .create import FILE_ID_ANY
from .crypto import (
    INITIAL_PREAUTH_HASH,
    SessionKeys,
    Smb2IntegrityError,
    decrypt_message,
    derive_session_keys,
    encrypt_message,
    nonce_size,
    preauth_hash,
    sign_message,
    signing_algorithm_for,
    verify_signature,
)
from .header import COMMAND_OFFSET, Smb2Header, TransformHeader
from .ipc import IpcShare
from .logons import LogonAttempt, LogonPolicy
from .messages import (
    EchoResponse,
    ErrorResponse,
    IoctlRequest,
    IoctlResponse,
    LogoffResponse,
    RawBody,
    ReadRequest,
    Request,
    SessionSetupRequest,
    SessionSetupResponse,
    TreeConnectRequest,
    WriteRequest,
    decode_request,
)
from .negotiate import (
    EncryptionCapabilities,
    NegotiateRequest,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
    Smb1NegotiateRequest,
)
from .payloads import ValidateNegotiateInfoRequest, ValidateNegotiateInfoResponse
from .state import (
    Backend,
    Chain,
    Open,
    OutOfResources,
    Pipe,
    ServerConfig,
    Session,
    SessionState,
    TreeConnect,
)
from .transport import DirectTcpDeframer, frame

SMB1_PROTOCOL_ID = b"\xffSMB"
SMB2_PROTOCOL_ID = b"\xfeSMB"
TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
DIALECT_WILDCARD = 0x02FF  # MS-SMB2 §3.3.5.3.1: "SMB 2.???"
_KNOWN_COMMANDS = frozenset(int(c) for c in Command)
# Before NEGOTIATE a peer gets no more than this (MS-SMB2 §3.3.5.2: 64 KiB without multi-credit).
PRE_NEGOTIATE_MAX_MESSAGE = 0x10000
# Until one of its sessions is established a connection sends only NEGOTIATE and SESSION_SETUP (and
# ECHO, CANCEL): the largest is a SESSION_SETUP with a GSS token, which Windows caps at MaxTokenSize
# (48,000 bytes by default, 65,535 at most), plus the 64-byte header, the 24-byte body and the 256 bytes
# MS-SMB2 §3.3.5.2 allows past a limit. So an unauthenticated connection holds at most ~64 KiB of
# partial frame, not the 1 MiB a logged-on one may send.
PRE_LOGON_MAX_MESSAGE = 0x10000 + 256
# SESSION_SETUPs in progress (SessionId 0 each time, MS-SMB2 §3.3.5.5.1) one connection may hold at once:
# a client authenticates one session at a time; past this a new one is refused with
# STATUS_INSUFFICIENT_RESOURCES, one of §3.3.5.5's listed statuses, and nothing is allocated for it.
MAX_IN_PROGRESS_SESSIONS = 4
# How many ended encrypted sessions a connection remembers the keys of (see ServerConnection._ended).
MAX_ENDED_SESSIONS = 8
# What a client may have outstanding at most, and what a response grants at most.
MAX_OUTSTANDING_CREDITS = 512
_UNIMPLEMENTED = frozenset(
    (Command.LOCK, Command.QUERY_DIRECTORY, Command.CHANGE_NOTIFY, Command.SET_INFO, Command.OPLOCK_BREAK)
)
# Commands that need no session (MS-SMB2 §3.3.5.2.9).
_SESSIONLESS = frozenset((Command.NEGOTIATE, Command.SESSION_SETUP, Command.ECHO, Command.CANCEL))


# MS-SMB2 §3.3.4.1.4: responses that Session.EncryptData alone does not encrypt.
_NEVER_ENCRYPTED_BY_SESSION = frozenset((Command.NEGOTIATE, Command.SESSION_SETUP))


def _command_of(message: bytes | bytearray) -> int:
    return int.from_bytes(message[COMMAND_OFFSET : COMMAND_OFFSET + 2], "little")


@dataclass(frozen=True, slots=True)
class Seal:
    """The keys a message was sealed with (MS-SMB2 §3.3.5.2.1.1): its session's id and keys. An ended
    session leaves only this behind (see ServerConnection._ended), not the session itself."""

    session_id: int
    keys: SessionKeys


class _Terminate(Exception):
    """The connection must end (MS-SMB2 says "disconnect" / "terminate the connection")."""


class ServerConnection:
    """One client connection's SMB2 state (MS-SMB2 §3.3.1.7) and its processing rules."""

    def __init__(
        self,
        config: ServerConfig,
        authenticator: Authenticator,
        backend: Backend,
        *,
        client_address: str = "",
        clock: Callable[[], int],
        random: Callable[[int], bytes] = os.urandom,
        logons: LogonPolicy | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.backend = backend
        self.logons = logons
        self.client_address = client_address
        self._clock = clock  # FILETIME now
        self._random = random
        self._deframer = DirectTcpDeframer(PRE_NEGOTIATE_MAX_MESSAGE)
        self._out = bytearray()
        # Throttling (see netsession.wire.smb2.logons): while ``wait_seconds`` > 0 the connection processes
        # nothing; output is held in _held and a message waiting for admission in _parked, until resume().
        self.wait_seconds = 0.0
        self._held = bytearray()
        self._parked: bytes | None = None
        self.closing = False
        self.close_reason = ""
        self.logged_on = False  # a session was established once (the driver's logon deadline stops)
        self._processing = False  # inside receive_data (a NetrSessionDel may come from our own request)
        # Negotiated state (MS-SMB2 §3.3.1.7).
        self.dialect: int | None = None
        self._smb1_wildcard_answered = False
        self.client_guid: uuid.UUID | None = None
        self.client_capabilities = 0
        self.client_security_mode = 0
        self.client_dialects: tuple[int, ...] = ()
        self.capabilities = 0
        self.cipher: int = Cipher.NONE
        self.signing_algorithm: int | None = None
        self.preauth_hash = INITIAL_PREAUTH_HASH
        self.sessions: dict[int, Session] = {}
        # Sessions ended while the connection lives on, kept only to decrypt what the client still sends
        # on them and to answer it STATUS_USER_SESSION_DELETED, encrypted as it expects (§3.3.5.2.9).
        self._ended: OrderedDict[int, Seal] = OrderedDict()
        # The command sequence window (§3.3.1.1): ids in [_seq_low, _seq_high) may be used once.
        self._seq_low = 0
        self._seq_high = 1
        self._seq_used: set[int] = set()
        self.ipc = IpcShare(config, backend)

    # -- the driver's side ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the transport. Complete messages are processed at once; their responses are
        queued for :meth:`data_to_send`. A protocol violation sets :attr:`closing`."""
        if self.closing:
            return
        self._deframer.feed(data)
        self._run()

    def resume(self) -> None:
        """The driver's timer, ``wait_seconds`` after it was set: send what was held, carry on."""
        self.wait_seconds = 0.0
        self._out += self._held
        self._held = bytearray()
        if not self.closing:
            self._run()

    def _run(self) -> None:
        """Process whole messages, one at a time (each is checked against the size limit in force after
        the one before: a NEGOTIATE raises it for the rest of the same read), until one must wait."""
        self._processing = True
        try:
            while not self.closing and not self.wait_seconds:
                message, self._parked = self._parked, None
                if message is None:
                    message = self._deframer.next_message()
                    if message is None:
                        break
                if self.logons is not None and self._verifies_credentials(message):
                    wait = self.logons.admission_delay(self)
                    if wait > 0:
                        self._parked, self.wait_seconds = message, wait
                        break
                self._process_transport_message(message)
        except (_Terminate, Smb2DecodeError) as exc:
            self._terminate(str(exc))
        finally:
            self._processing = False
            self._deframer.release()

    def _verifies_credentials(self, message: bytes) -> bool:
        """Whether a transport message holds a SESSION_SETUP whose session awaits its credentials."""
        if message[:4] != SMB2_PROTOCOL_ID:
            return False  # SMB1 NEGOTIATE; an encrypted message comes from an established session
        try:
            parts = split_compound(message)
        except Smb2DecodeError:
            return False  # processing refuses it
        for part in parts:
            if _command_of(part) != Command.SESSION_SETUP:
                continue
            session = self.sessions.get(Smb2Header.decode(part).session_id)
            if session is not None and session.auth is not None:
                if getattr(session.auth, "awaiting_credentials", True):
                    return True
        return False

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def connection_lost(self) -> None:
        """The transport is gone: every session ends (MS-SMB2 §3.3.7.1)."""
        self.closing = True
        for session in list(self.sessions.values()):
            self._end_session(session)

    def close_session(self, session_id: int) -> None:
        """End a session from outside (NetrSessionDel, MS-SMB2 §3.3.4.12): its opens are closed, its trees
        disconnected, and the client's next request on it is answered STATUS_USER_SESSION_DELETED.

        A connection left with no session is closed once what is queued has been sent — unless the
        deletion comes from a request on this very connection (a caller ending its own session): that
        client is waiting for its reply, and tearing the connection down behind it races the reply; it
        learns of the deletion from its next request, and the idle timeout ends the connection."""
        session = self.sessions.get(session_id)
        if session is not None:
            self._end_session(session)
        if not self._processing and not any(s.state is SessionState.VALID for s in self.sessions.values()):
            self._terminate("its last session was deleted")

    # -- transport messages ---------------------------------------------------------------------------

    def _terminate(self, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_reason = reason

    def _send(self, message: bytes) -> None:
        (self._held if self.wait_seconds else self._out).extend(frame(message))

    def _process_transport_message(self, message: bytes) -> None:
        protocol = message[:4]
        if protocol == SMB1_PROTOCOL_ID:
            self._smb1_negotiate(message)
            return
        encrypted_session: Seal | None = None
        if protocol == TRANSFORM_PROTOCOL_ID:
            encrypted_session, message = self._decrypt(message)
        elif protocol != SMB2_PROTOCOL_ID:
            raise _Terminate(f"unknown protocol id {protocol!r}")  # incl. compression (never negotiated)
        responses: list[tuple[bytearray, Session | None, bool]] = []
        chain = Chain()
        for i, part in enumerate(split_compound(message)):
            response = self._process_message(part, chain, first=i == 0, encrypted=encrypted_session)
            if response is not None:
                responses.append(response)
        if responses:
            self._send_responses(responses, encrypted_session)

    def _decrypt(self, message: bytes) -> tuple[Seal, bytes]:
        # MS-SMB2 §3.3.5.2.1.1.
        if self.dialect is None or self.dialect < Dialect.SMB_3_0:
            raise _Terminate("TRANSFORM_HEADER before an SMB 3.x dialect was negotiated")
        transform = TransformHeader.decode(message)
        session = self.sessions.get(transform.session_id)
        if session is not None and session.keys is not None:
            seal: Seal | None = Seal(session.session_id, session.keys)
        else:
            seal = self._ended.get(transform.session_id)
        if seal is None or seal.keys.decryption_key is None:
            raise _Terminate("encrypted message for an unknown session")
        try:
            _, plain = decrypt_message(message, seal.keys.decryption_key, cipher=self._cipher())
        except Smb2IntegrityError as exc:
            raise _Terminate(f"decryption failed: {exc}") from None
        if plain[:4] != SMB2_PROTOCOL_ID:
            raise _Terminate("decrypted message is not SMB2")
        return seal, plain

    def _cipher(self) -> int:
        return self.cipher if self.dialect == Dialect.SMB_3_1_1 else Cipher.AES_128_CCM

    def _send_responses(
        self, responses: list[tuple[bytearray, Session | None, bool]], encrypted: Seal | None
    ) -> None:
        """Chain, sign each element, encrypt the whole when the request was (MS-SMB2 §3.3.4.1)."""
        signers = []
        for _, session, sign in responses:
            signers.append(session if sign and encrypted is None else None)
        it = iter(signers)

        def signer(part: bytearray) -> None:
            session = next(it)
            if session is not None and session.keys is not None:
                sign_message(part, session.keys.signing_key, self._signing_algorithm())

        chained = build_compound([r for r, _, _ in responses], signer=signer)
        target = encrypted
        if target is None:
            # A session that requires encryption gets encrypted responses (§3.3.4.1.4), except NEGOTIATE and
            # SESSION_SETUP: the client learns of Session.EncryptData from that very (signed) response.
            target = next(
                (
                    Seal(s.session_id, s.keys)
                    for r, s, _ in responses
                    if s is not None
                    and s.keys is not None
                    and s.encrypt_data
                    and _command_of(r) not in _NEVER_ENCRYPTED_BY_SESSION
                ),
                None,
            )
        if target is not None and target.keys.encryption_key is not None:
            cipher = self._cipher()
            nonce = self._random(nonce_size(cipher))
            chained = encrypt_message(
                chained, target.keys.encryption_key, cipher=cipher, session_id=target.session_id, nonce=nonce
            )
        self._send(chained)

    def _signing_algorithm(self) -> int:
        assert self.dialect is not None
        return signing_algorithm_for(self.dialect, self.signing_algorithm)

    # -- the command sequence window (MS-SMB2 §3.3.1.1, §3.3.5.2.3) ------------------------------------

    def _consume(self, message_id: int, charge: int) -> None:
        if message_id < self._seq_low or message_id + charge > self._seq_high:
            raise _Terminate(f"MessageId {message_id} outside the window [{self._seq_low}, {self._seq_high})")
        ids = range(message_id, message_id + charge)
        if any(i in self._seq_used for i in ids):
            raise _Terminate(f"MessageId {message_id} used twice")
        self._seq_used.update(ids)
        while self._seq_low in self._seq_used:
            self._seq_used.discard(self._seq_low)
            self._seq_low += 1

    def _grant(self, requested: int) -> int:
        outstanding = self._seq_high - self._seq_low - len(self._seq_used)
        grant = max(0, min(requested, MAX_OUTSTANDING_CREDITS - outstanding))
        if outstanding + grant == 0:
            grant = 1  # never leave the client without a credit
        self._seq_high += grant
        return grant

    def _charge(self, header: Smb2Header, body: Request) -> tuple[int, bool]:
        """The credits a request consumes, and whether its CreditCharge covers its payload (§3.3.5.2.5:
        else STATUS_INVALID_PARAMETER; the credits it says it charges are consumed all the same)."""
        if (
            self.dialect is None
            or self.dialect == Dialect.SMB_2_0_2
            or not (self.capabilities & GlobalCapabilities.LARGE_MTU)
        ):
            return 1, True
        charge = max(1, header.credit_charge)
        size = 0
        if isinstance(body, ReadRequest):
            size = body.length
        elif isinstance(body, WriteRequest):
            size = len(body.data)
        elif isinstance(body, IoctlRequest):
            size = max(len(body.input), body.max_output_response)
        return charge, (size - 1) // 65536 + 1 <= charge

    # -- one SMB2 message -----------------------------------------------------------------------------

    def _process_message(
        self, message: bytes, chain: Chain, *, first: bool, encrypted: Seal | None
    ) -> tuple[bytearray, Session | None, bool] | None:
        header = Smb2Header.decode(message)
        if header.is_response:
            raise _Terminate("a response sent to the server")
        if header.command == Command.CANCEL:
            self._cancel(header)
            return None  # no response (§3.3.5.16)
        if header.command not in _KNOWN_COMMANDS:
            raise _Terminate(f"unknown command 0x{header.command:04X}")  # §3.3.5.2.6
        try:
            header, body = decode_request(message, dialect=self.dialect)
            parse_error: int | None = None
        except Smb2DecodeError:
            body = RawBody(header.command, b"")
            parse_error = NtStatus.STATUS_INVALID_PARAMETER
        charge, charge_ok = self._charge(header, body) if parse_error is None else (1, True)
        if not charge_ok:
            parse_error = NtStatus.STATUS_INVALID_PARAMETER
        self._consume(header.message_id, charge)
        credits = self._grant(max(header.credits, 1 if header.command == Command.NEGOTIATE else 0))

        if header.command == Command.NEGOTIATE:
            if self.dialect is not None:
                raise _Terminate("a second NEGOTIATE")  # §3.3.5.3
            if header.is_signed:
                return self._error(header, NtStatus.STATUS_INVALID_PARAMETER, credits, None)[0], None, False
            if not isinstance(body, NegotiateRequest):
                # An undecodable NEGOTIATE: answered, and the connection ends (nothing was negotiated).
                self._terminate("malformed NEGOTIATE request")
                return self._error(header, NtStatus.STATUS_INVALID_PARAMETER, credits, None)[0], None, False
            return self._negotiate(message, header, body, credits), None, False
        if self.dialect is None:
            raise _Terminate("a request before NEGOTIATE")

        # Related requests take SessionId/TreeId/FileId from the one before (§3.3.5.2.7.2).
        if header.is_related:
            if first:
                return self._error(header, NtStatus.STATUS_INVALID_PARAMETER, credits, None)
            header.session_id = chain.session_id
            header.tree_id = chain.tree_id
            if chain.status != NtStatus.STATUS_SUCCESS:
                return self._error(header, chain.status, credits, self.sessions.get(header.session_id))
        chain.session_id, chain.tree_id = header.session_id, header.tree_id

        session = self.sessions.get(header.session_id)
        status = self._check_session(message, header, session, encrypted)
        if status is not None:
            chain.status = status
            sign = session is not None and session.state is SessionState.VALID and header.is_signed
            return self._error(header, status, credits, session if sign else None)
        if parse_error is not None:
            chain.status = parse_error
            return self._error(header, parse_error, credits, session)
        if session is not None and session.state is SessionState.VALID:
            self.backend.session_active(session)

        if header.command == Command.SESSION_SETUP:
            assert isinstance(body, SessionSetupRequest)
            return self._session_setup(message, header, body, credits, session, chain)
        if header.command == Command.ECHO:  # §3.3.5.17: no session needed
            out = header.response(credits=credits)
            return (
                bytearray(out.encode() + EchoResponse().encode()),
                session,
                self._should_sign(header, session),
            )

        assert session is not None  # every other command needs a valid session
        if header.command == Command.LOGOFF:
            response_body, status = self._logoff(header, body, session)
        elif header.command == Command.TREE_CONNECT:
            assert isinstance(body, TreeConnectRequest)
            connected = (
                self.ipc.tree_connect(body, session)
                if len(session.trees) < self.config.max_trees_per_session
                else NtStatus.STATUS_INSUFFICIENT_RESOURCES  # §3.3.5.7
            )
            if isinstance(connected, int):
                response_body, status = None, connected
            elif connected is None:
                response_body, status = None, NtStatus.STATUS_BAD_NETWORK_NAME
            else:
                new_tree, response_body = connected
                header.tree_id, status = new_tree.tree_id, NtStatus.STATUS_SUCCESS  # the response's TreeId
        elif header.command in _UNIMPLEMENTED:
            response_body, status = None, NtStatus.STATUS_NOT_SUPPORTED
        else:
            tree = session.trees.get(header.tree_id)
            if tree is None:
                response_body, status = None, NtStatus.STATUS_NETWORK_NAME_DELETED
            else:
                if (
                    isinstance(body, IoctlRequest)
                    and body.ctl_code == FsctlCode.FSCTL_VALIDATE_NEGOTIATE_INFO
                    and body.flags & IoctlFlags.IS_FSCTL
                ):
                    response_body, status = self._validate_negotiate(body)
                else:
                    response_body, status = self.ipc.handle(header, body, session, tree, chain)
        chain.status = status if response_body is None else NtStatus.STATUS_SUCCESS
        chain.tree_id = header.tree_id  # TREE_CONNECT sets the new one
        if response_body is None:
            return self._error(header, status, credits, session)
        out = header.response(status=status, credits=credits, session_id=session.session_id)
        return bytearray(out.encode() + response_body.encode()), session, self._should_sign(header, session)

    def _check_session(
        self, message: bytes, header: Smb2Header, session: Session | None, encrypted: Seal | None
    ) -> int | None:
        """Session lookup, signature and encryption rules (§3.3.5.2.4, §3.3.5.2.9): an error, or None."""
        if encrypted is not None and encrypted.session_id not in self.sessions:
            return NtStatus.STATUS_USER_SESSION_DELETED  # sealed with an ended session's key
        if header.command == Command.ECHO:
            # §3.3.5.17: the session is verified when the ECHO is signed, or unencrypted with a SessionId.
            if not (header.is_signed or (encrypted is None and header.session_id != 0)):
                return None
        elif header.command in _SESSIONLESS and header.command != Command.SESSION_SETUP:
            return None
        if header.command == Command.SESSION_SETUP and header.session_id == 0:
            return None
        if session is None:
            return NtStatus.STATUS_USER_SESSION_DELETED
        if encrypted is not None:
            if encrypted.session_id != session.session_id:
                return NtStatus.STATUS_ACCESS_DENIED
            return None
        if session.state is SessionState.IN_PROGRESS:
            if header.command != Command.SESSION_SETUP:
                return NtStatus.STATUS_USER_SESSION_DELETED
            return None
        if session.encrypt_data and header.command != Command.SESSION_SETUP:
            return NtStatus.STATUS_ACCESS_DENIED  # §3.3.5.2.9: unencrypted request on an encrypted session
        if header.is_signed:
            if session.keys is None:
                return NtStatus.STATUS_NOT_SUPPORTED  # §3.3.5.2.4: no signing key (guest, anonymous)
            if not verify_signature(message, session.keys.signing_key, self._signing_algorithm()):
                return NtStatus.STATUS_ACCESS_DENIED
        elif session.signing_required:
            # §3.3.5.2.4, re-authentication (a SESSION_SETUP on a valid session) included.
            return NtStatus.STATUS_ACCESS_DENIED
        return None

    def _should_sign(self, header: Smb2Header, session: Session | None) -> bool:
        # §3.3.4.1.1: sign if the request was signed or the session requires it (never guest/anonymous).
        if session is None or session.keys is None or session.identity is None:
            return False
        if session.identity.is_guest or session.identity.is_anonymous:
            return False
        return header.is_signed or session.signing_required

    def _error(
        self, header: Smb2Header, status: int, credits: int, session: Session | None
    ) -> tuple[bytearray, Session | None, bool]:
        out = header.response(status=status, credits=credits)
        sign = session is not None and self._should_sign(header, session)
        return bytearray(out.encode() + ErrorResponse().encode()), session, sign

    # -- NEGOTIATE (MS-SMB2 §3.3.5.3, §3.3.5.4) -------------------------------------------------------

    def _smb1_negotiate(self, message: bytes) -> None:
        if self.dialect is not None or self._smb1_wildcard_answered:
            raise _Terminate("SMB1 message after negotiation")
        request = Smb1NegotiateRequest.decode(message)
        if request.offers_smb2_wildcard and any(d >= Dialect.SMB_2_1 for d in self.config.dialects):
            dialect = DIALECT_WILDCARD
            self._smb1_wildcard_answered = True
        elif request.offers_smb2_002 and Dialect.SMB_2_0_2 in self.config.dialects:
            dialect = Dialect.SMB_2_0_2
            self._set_dialect(dialect)
        else:
            raise _Terminate("SMB1 NEGOTIATE offers no SMB2 dialect")
        self._seq_low, self._seq_high = 1, 2  # §3.3.5.3.1: the next request is MessageId 1
        header = Smb2Header(Command.NEGOTIATE, flags=HeaderFlags.SERVER_TO_REDIR, credits=1)
        self._send(header.encode() + self._negotiate_response(dialect, ()).encode())

    def _set_dialect(self, dialect: int) -> None:
        self.dialect = dialect
        # Until a session is established (see _session_established).
        self._deframer.max_message_size = min(PRE_LOGON_MAX_MESSAGE, self.config.max_message_size)
        if dialect >= Dialect.SMB_2_1:
            self.capabilities |= GlobalCapabilities.LARGE_MTU
        if dialect in (Dialect.SMB_3_0, Dialect.SMB_3_0_2) and (
            self.client_capabilities & GlobalCapabilities.ENCRYPTION
        ):
            self.capabilities |= GlobalCapabilities.ENCRYPTION

    def _negotiate_response(self, dialect: int, contexts: tuple[Any, ...]) -> NegotiateResponse:
        mode = SecurityMode.SIGNING_ENABLED
        if self.config.require_signing:
            mode |= SecurityMode.SIGNING_REQUIRED
        return NegotiateResponse(
            dialect_revision=dialect,
            security_mode=mode,
            server_guid=self.config.server_guid,
            capabilities=self.capabilities if dialect != DIALECT_WILDCARD else 0,
            max_transact_size=self.config.max_transact_size,
            max_read_size=self.config.max_read_size,
            max_write_size=self.config.max_write_size,
            system_time=self._clock(),
            security_buffer=self.authenticator.initial_token(),
            negotiate_contexts=contexts,
        )

    def _negotiate(
        self, message: bytes, header: Smb2Header, request: NegotiateRequest, credits: int
    ) -> bytearray:
        if not request.dialects:
            self._terminate("NEGOTIATE without dialects")
            return self._error(header, NtStatus.STATUS_INVALID_PARAMETER, credits, None)[0]  # §3.3.5.4
        common = [d for d in request.dialects if d in self.config.dialects]
        if not common:
            self._terminate("no common dialect")
            return self._error(header, NtStatus.STATUS_NOT_SUPPORTED, credits, None)[0]
        dialect = max(common)
        self.client_guid = request.client_guid
        self.client_capabilities = request.capabilities
        self.client_security_mode = request.security_mode
        self.client_dialects = tuple(request.dialects)
        contexts: tuple[Any, ...] = ()
        if dialect == Dialect.SMB_3_1_1:
            contexts_or_error = self._negotiate_contexts(request)
            if isinstance(contexts_or_error, int):
                self._terminate("bad 3.1.1 negotiate contexts")
                return self._error(header, contexts_or_error, credits, None)[0]
            contexts = contexts_or_error
        self._set_dialect(dialect)
        response = header.response(credits=credits)
        out = bytearray(response.encode() + self._negotiate_response(dialect, contexts).encode())
        if dialect == Dialect.SMB_3_1_1:
            self.preauth_hash = preauth_hash(preauth_hash(INITIAL_PREAUTH_HASH, message), out)
        return out

    def _negotiate_contexts(self, request: NegotiateRequest) -> tuple[Any, ...] | int:
        """MS-SMB2 §3.3.5.4 for 3.1.1: the preauth hash, cipher and signing algorithm."""
        preauth = request.contexts_of_type(NegotiateContextType.PREAUTH_INTEGRITY_CAPABILITIES)
        if len(preauth) != 1 or not isinstance(preauth[0], PreauthIntegrityCapabilities):
            return NtStatus.STATUS_INVALID_PARAMETER
        if HashAlgorithm.SHA_512 not in preauth[0].hash_algorithms:
            return NtStatus.STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP
        out: list[Any] = [PreauthIntegrityCapabilities((HashAlgorithm.SHA_512,), self._random(32))]
        encryption = request.contexts_of_type(NegotiateContextType.ENCRYPTION_CAPABILITIES)
        if encryption and isinstance(encryption[0], EncryptionCapabilities):
            offered = encryption[0].ciphers
            self.cipher = next((c for c in self.config.ciphers if c in offered), Cipher.NONE)
            out.append(EncryptionCapabilities((self.cipher,)))
        signing = request.contexts_of_type(NegotiateContextType.SIGNING_CAPABILITIES)
        if signing and isinstance(signing[0], SigningCapabilities):
            offered = signing[0].signing_algorithms
            chosen = next(
                (a for a in self.config.signing_algorithms if a in offered), SigningAlgorithm.AES_CMAC
            )
            self.signing_algorithm = chosen
            out.append(SigningCapabilities((chosen,)))
        return tuple(out)

    @property
    def buffered(self) -> int:
        """Bytes this connection holds of its client's input and of output not yet taken (for limits)."""
        return self._deframer.buffered + len(self._out) + len(self._held) + len(self._parked or b"")

    @property
    def can_encrypt(self) -> bool:
        if self.dialect == Dialect.SMB_3_1_1:
            return self.cipher != Cipher.NONE
        return bool(self.capabilities & GlobalCapabilities.ENCRYPTION)

    # -- SESSION_SETUP and LOGOFF (MS-SMB2 §3.3.5.5, §3.3.5.6) ----------------------------------------

    def _new_session_id(self) -> int:
        while True:
            sid = int.from_bytes(self._random(8), "little") & 0x7FFFFFFFFFFFFFFF
            if sid and sid not in self.sessions:
                return sid

    def _session_setup(
        self,
        message: bytes,
        header: Smb2Header,
        request: SessionSetupRequest,
        credits: int,
        session: Session | None,
        chain: Chain,
    ) -> tuple[bytearray, Session | None, bool]:
        assert self.dialect is not None
        if request.flags & SessionSetupFlags.BINDING:
            return self._error(header, NtStatus.STATUS_REQUEST_NOT_ACCEPTED, credits, None)  # no multichannel
        if self.config.encrypt_data and not self.can_encrypt:
            # §3.3.5.5: EncryptData with RejectUnencryptedAccess refuses a 2.x dialect, and a 3.x connection
            # that negotiated no encryption, before any authentication.
            return self._error(header, NtStatus.STATUS_ACCESS_DENIED, credits, None)
        if session is None:
            in_progress = sum(1 for s in self.sessions.values() if s.state is SessionState.IN_PROGRESS)
            valid = len(self.sessions) - in_progress
            if in_progress >= MAX_IN_PROGRESS_SESSIONS or valid >= self.config.max_sessions_per_connection:
                return self._error(header, NtStatus.STATUS_INSUFFICIENT_RESOURCES, credits, None)
            session = Session(self._new_session_id(), self, preauth_hash=self.preauth_hash)
            self.sessions[session.session_id] = session
        chain.session_id = session.session_id
        reauth = session.state is SessionState.VALID
        if session.auth is None:
            session.auth = self.authenticator.new_context()
        if self.dialect == Dialect.SMB_3_1_1 and session.state is SessionState.IN_PROGRESS:
            session.preauth_hash = preauth_hash(session.preauth_hash, message)
        try:
            step = session.auth.step(request.security_buffer)
        except AuthenticationFailed as exc:
            session.auth = None
            if reauth:
                self._end_session(session)  # §3.3.5.5.3: a failed re-authentication removes the session
            else:
                del self.sessions[session.session_id]
            self._logon_finished(
                LogonAttempt(
                    self.client_address, session.session_id, False, exc.status, exc.reason, exc.user,
                    exc.domain, exc.workstation, reauthentication=reauth,
                ),
                None,
            )
            if reauth:
                # The session is gone, but the answer to its signed request is signed with its key
                # (§3.3.4.1.1), or the client cannot tell it from a forgery.
                out = header.response(status=exc.status, credits=credits, session_id=session.session_id)
                sign = session.keys is not None and (header.is_signed or session.signing_required)
                return bytearray(out.encode() + ErrorResponse().encode()), session, sign
            out = header.response(status=exc.status, credits=credits, session_id=0)
            return bytearray(out.encode() + ErrorResponse().encode()), None, False
        if not step.complete:
            out = header.response(
                status=NtStatus.STATUS_MORE_PROCESSING_REQUIRED,
                credits=credits,
                session_id=session.session_id,
            )
            data = bytearray(out.encode() + SessionSetupResponse(step.out_token).encode())
            if self.dialect == Dialect.SMB_3_1_1 and not reauth:
                session.preauth_hash = preauth_hash(session.preauth_hash, data)
            # §3.3.4.1.1: the interim response to a signed re-authentication is signed too.
            return data, session if reauth else None, reauth and header.is_signed
        return self._session_established(header, request, credits, session, step.out_token)

    def _logon_finished(self, attempt: LogonAttempt, session: Session | None) -> None:
        """Tell the logon policy; hold the response back as long as it says (wait_seconds)."""
        if self.logons is None:
            return
        delay = self.logons.logon_finished(self, attempt, session)
        if delay > 0:
            self.wait_seconds = delay

    def _session_established(
        self, header: Smb2Header, request: SessionSetupRequest, credits: int, session: Session, token: bytes
    ) -> tuple[bytearray, Session | None, bool]:
        assert self.dialect is not None and session.auth is not None
        identity = session.auth.identity
        reauth = session.state is SessionState.VALID
        flags = 0
        if identity.is_anonymous:
            flags |= SessionFlags.IS_NULL
        elif identity.is_guest:
            flags |= SessionFlags.IS_GUEST
        secure = not (identity.is_guest or identity.is_anonymous)
        attempt = LogonAttempt(
            self.client_address, session.session_id, True, NtStatus.STATUS_SUCCESS, "",
            identity.client_user, identity.client_domain, identity.workstation, identity,
            reauthentication=reauth, previous_session_id=request.previous_session_id,
        )
        if not reauth:
            if secure:
                session.keys = derive_session_keys(
                    self.dialect,
                    session.auth.session_key,
                    preauth_hash=session.preauth_hash,
                    cipher=self._cipher() if self.dialect >= Dialect.SMB_3_0 else Cipher.NONE,
                )
                session.signing_required = self.config.require_signing or bool(
                    request.security_mode & SecurityMode.SIGNING_REQUIRED
                )
            if self.config.encrypt_data and self.dialect >= Dialect.SMB_3_0:
                if not (secure and self.can_encrypt):
                    # §3.3.5.5.3: Server.RejectUnencryptedAccess — no session without encryption.
                    del self.sessions[session.session_id]
                    status = NtStatus.STATUS_ACCESS_DENIED
                    reason = "the server requires encryption, which this logon cannot have"
                    self._logon_finished(replace(attempt, success=False, status=status, reason=reason), None)
                    out = header.response(status=status, credits=credits, session_id=0)
                    return bytearray(out.encode() + ErrorResponse().encode()), None, False
                session.encrypt_data = True
        elif identity.user.casefold() != (session.identity.user.casefold() if session.identity else ""):
            # Re-authentication must be the same user (§3.3.5.5.3); otherwise the session ends.
            self._end_session(session)
            reason = f"re-authentication as another user ({identity.user})"
            self._logon_finished(
                replace(attempt, success=False, status=NtStatus.STATUS_LOGON_FAILURE, reason=reason), None
            )
            out = header.response(status=NtStatus.STATUS_LOGON_FAILURE, credits=credits, session_id=0)
            return bytearray(out.encode() + ErrorResponse().encode()), None, False
        if session.encrypt_data:
            flags |= SessionFlags.ENCRYPT_DATA
        session.identity = identity
        session.auth = None
        out = header.response(credits=credits, session_id=session.session_id)
        data = bytearray(out.encode() + SessionSetupResponse(token, flags).encode())
        if not reauth:
            try:
                self.backend.session_established(session)
            except OutOfResources as exc:
                # The backend holds no more sessions of this account (§3.3.5.5: "if the allocation
                # fails", STATUS_INSUFFICIENT_RESOURCES); nothing of the session is kept.
                del self.sessions[session.session_id]
                status = NtStatus.STATUS_INSUFFICIENT_RESOURCES
                self._logon_finished(replace(attempt, success=False, status=status, reason=str(exc)), None)
                out = header.response(status=status, credits=credits, session_id=0)
                return bytearray(out.encode() + ErrorResponse().encode()), None, False
            session.state = SessionState.VALID
            # A logged-on client may now send what the negotiated sizes allow (MS-SMB2 §3.3.5.2).
            self._deframer.max_message_size = self.config.max_message_size
            self.logged_on = True
        self._logon_finished(attempt, session)
        # §3.3.5.5.3: the final response is signed when the session can sign (3.1.1 always; others when
        # signing is required) and not encrypted.
        sign = secure and (self.dialect == Dialect.SMB_3_1_1 or session.signing_required)
        return data, session, sign

    def _logoff(self, header: Smb2Header, body: Request, session: Session) -> tuple[Any, int]:
        self._end_session(session)
        return LogoffResponse(), NtStatus.STATUS_SUCCESS

    def _end_session(self, session: Session) -> None:
        """Close every open and tree of the session and forget it; tell the backend once."""
        for tree in list(session.trees.values()):
            self.ipc.disconnect(tree)
        session.trees.clear()
        was_valid = session.state is SessionState.VALID
        self.sessions.pop(session.session_id, None)
        if session.keys is not None and session.keys.decryption_key is not None:  # a client may encrypt
            self._ended[session.session_id] = Seal(session.session_id, session.keys)
            while len(self._ended) > MAX_ENDED_SESSIONS:
                self._ended.popitem(last=False)
        if was_valid:
            session.state = SessionState.IN_PROGRESS  # no longer usable
            self.backend.session_ended(session)

    # -- CANCEL -----------------------------------------------------------------------------------------

    def _cancel(self, header: Smb2Header) -> None:
        # §3.3.5.16: nothing here ever goes asynchronous (every pipe call is answered at once), so there
        # is nothing to cancel; CANCEL takes no credit and gets no response.
        return

    def _validate_negotiate(self, request: IoctlRequest) -> tuple[Any, int]:
        # §3.3.5.15.12: anything but what was negotiated means a man in the middle: end the connection.
        assert self.dialect is not None
        info = ValidateNegotiateInfoRequest.decode(request.input)
        mode = SecurityMode.SIGNING_ENABLED | (
            SecurityMode.SIGNING_REQUIRED if self.config.require_signing else 0
        )
        if (
            info.capabilities != self.client_capabilities
            or self.client_guid is None
            or info.guid != self.client_guid.bytes_le
            or info.security_mode != self.client_security_mode
            or tuple(info.dialects) != self.client_dialects
        ):
            raise _Terminate("FSCTL_VALIDATE_NEGOTIATE_INFO does not match the negotiation")
        guid = self.config.server_guid.bytes_le
        out = ValidateNegotiateInfoResponse(self.capabilities, guid, mode, self.dialect)
        return IoctlResponse(request.ctl_code, FILE_ID_ANY, output=out.encode()), NtStatus.STATUS_SUCCESS


__all__ = [
    "Backend",
    "Open",
    "Pipe",
    "ServerConfig",
    "ServerConnection",
    "Session",
    "SessionState",
    "TreeConnect",
]
