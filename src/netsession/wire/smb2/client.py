"""The client side of one SMB2/3 connection, sans-I/O (MS-SMB2 §3.2), beside the server's ``connection``.

:class:`ClientConnection` turns requests into bytes and bytes into responses; it never touches a socket
or a clock. One session per connection, which is all a named-pipe client needs::

    conn = ClientConnection(ClientConfig(server_name="fs1"))
    mid = conn.negotiate()
    transport.write(conn.data_to_send())
    for event in conn.receive_data(transport.read()):   # Reply(message_id, header, body, raw, ...)
        ...
    mid = conn.session_setup(token)                      # each leg of the GSS exchange
    conn.session_established(final_response, gss_key)    # derive keys, verify the final signature
    mid = conn.request(TreeConnectRequest(r"\\\\fs1\\IPC$"))

What it does for the caller: message ids and credits (§3.2.4.1.3, §3.2.4.1.5: a request waits in a queue
until the server has granted enough credits, multi-credit charges for large READ/IOCTL/WRITE), the
3.1.1 preauth integrity hash (§3.2.5.2, §3.2.5.3.1), negotiation of dialect, signing algorithm and
cipher, session key derivation (§3.2.5.3.1), signing (§3.2.4.1.1) and encryption (§3.2.4.1.8) of
requests, decryption (§3.2.5.1.1.1) and signature verification (§3.2.5.1.3) of every response, interim
STATUS_PENDING responses (§3.2.5.1.5: absorbed, their credits counted), and the bounds of what a
response may hold: never more than the request asked for. Sequencing, credits and bounds are this
module's; the offer, the negotiation's checks, the session's preauth chain, keys, signing and sealing
are :mod:`~netsession.wire.smb2.client_state`'s, which the server's tests also build on.

Whatever the server sends, :meth:`ClientConnection.receive_data` raises only
:class:`~netsession.wire.smb2.codec.Smb2DecodeError` (or its subclasses :class:`RemoteProtocolError` and
:class:`~netsession.wire.smb2.crypto.Smb2IntegrityError`); the connection is unusable afterwards.
Misuse by the caller raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .client_state import (
    ALL_CIPHERS,
    ALL_DIALECTS,
    ALL_SIGNING_ALGORITHMS,
    ClientConfig,
    ClientSession,
    EncryptionUnavailable,
    LocalProtocolError,
    Negotiation,
    RemoteProtocolError,
    Reply,
    negotiate_request,
    negotiated,
)
from .codec import Smb2DecodeError
from .compound import split_compound
from .constants import Cipher, Command, Dialect, NtStatus, SecurityMode, ShareFlags, SigningAlgorithm
from .crypto import Smb2IntegrityError, nonce_size
from .header import Smb2Header, TransformHeader
from .messages import (
    IoctlRequest,
    IoctlResponse,
    ReadRequest,
    ReadResponse,
    Request,
    SessionSetupRequest,
    TreeConnectResponse,
    WriteRequest,
    decode_response_body,
    encode_message,
)
from .negotiate import NegotiateResponse
from .transport import DirectTcpDeframer, frame

# MS-SMB2 §3.1.5.2: one credit pays for 64 KiB of payload.
CREDIT_PAYLOAD: Final = 0x10000
# What may arrive beside the payload a request asked for: the SMB2 header, the response's fixed part,
# a transform header, compound padding. Generous; a message longer than asked + this is refused.
RESPONSE_OVERHEAD: Final = 0x1000
# Until the server has said how large its answers may be (NEGOTIATE, SESSION_SETUP tokens, errors).
SMALL_RESPONSE: Final = 0x10000
# MS-SMB2 §2.2.1: MessageId 0xFFFFFFFFFFFFFFFF marks an unsolicited OPLOCK_BREAK notification.
UNSOLICITED_MESSAGE_ID: Final = 0xFFFFFFFFFFFFFFFF
SMB1_PROTOCOL_ID: Final = b"\xffSMB"
SMB2_PROTOCOL_ID: Final = b"\xfeSMB"
TRANSFORM_PROTOCOL_ID: Final = b"\xfdSMB"
COMPRESSION_PROTOCOL_ID: Final = b"\xfcSMB"
_NEVER_SIGNED: Final = frozenset((Command.NEGOTIATE,))


@dataclass(slots=True)
class _Outstanding:
    """Connection.OutstandingRequests entry (§3.2.1.7)."""

    command: int
    raw: bytes
    session_id: int
    limit: int  # the most payload the response may carry
    sealed: bool
    async_id: int | None = None


@dataclass(slots=True)
class _Tree:
    share_type: int
    encrypt_data: bool


@dataclass(slots=True)
class _Queued:
    message_id: int
    charge: int
    build: Callable[[int], bytes]  # credits to ask for -> transport bytes


class ClientConnection:
    """One SMB2/3 client connection (see the module docstring)."""

    def __init__(
        self, config: ClientConfig | None = None, *, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.config = config or ClientConfig()
        self._random = random
        self.client_guid = self.config.client_guid or uuid.UUID(bytes=random(16))
        # Negotiated state (§3.2.1.2 Connection).
        self.negotiation: Negotiation | None = None
        self.session = ClientSession()
        self.trees: dict[int, _Tree] = {}
        # Sequence window (§3.2.4.1.6): ids are handed out in order; credits say how far we may send.
        self._next_message_id = 0
        self._credits = 1
        self._waiting: deque[_Queued] = deque()
        self._outstanding: dict[int, _Outstanding] = {}
        self._out = bytearray()
        self._deframer = DirectTcpDeframer(SMALL_RESPONSE + RESPONSE_OVERHEAD)
        self._nonce_prefix = random(4)
        self._nonce_counter = 0
        self.closed = False

    # -- what is going on ------------------------------------------------------------------------------

    @property
    def dialect(self) -> int | None:
        return self.negotiation.dialect if self.negotiation else None

    @property
    def negotiate_response(self) -> NegotiateResponse | None:
        return self.negotiation.response if self.negotiation else None

    @property
    def cipher(self) -> int:
        """The cipher requests are sealed with: the session's once it is established."""
        if self.session.established:
            return self.session.cipher
        return self.negotiation.cipher if self.negotiation else Cipher.NONE

    @property
    def signing_algorithm(self) -> int:
        return self.negotiation.signing_algorithm if self.negotiation else SigningAlgorithm.HMAC_SHA256

    @property
    def supports_multi_credit(self) -> bool:
        return self.negotiation is not None and self.negotiation.supports_multi_credit

    @property
    def max_read_size(self) -> int:
        return self.negotiation.response.max_read_size if self.negotiation else CREDIT_PAYLOAD

    @property
    def max_write_size(self) -> int:
        return self.negotiation.response.max_write_size if self.negotiation else CREDIT_PAYLOAD

    @property
    def max_transact_size(self) -> int:
        return self.negotiation.response.max_transact_size if self.negotiation else CREDIT_PAYLOAD

    @property
    def credits(self) -> int:
        """Credits granted and not yet spent."""
        return self._credits

    @property
    def outstanding(self) -> int:
        """Requests sent (or queued) and not yet answered."""
        return len(self._outstanding) + len(self._waiting)

    def data_to_send(self) -> bytes:
        """Transport bytes (Direct TCP framed) to write, in order; empty if none."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- requests --------------------------------------------------------------------------------------

    def negotiate(self) -> int:
        """Queue the NEGOTIATE request (§3.2.4.2.2.2); returns its message id."""
        if self.dialect is not None or self._next_message_id:
            raise LocalProtocolError("NEGOTIATE is the first request of a connection, and only once")
        body = negotiate_request(self.config, self.client_guid, self._random)
        return self._submit(body, charge=1, session_id=0, tree_id=0, limit=SMALL_RESPONSE)

    def session_setup(self, token: bytes) -> int:
        """Queue one SESSION_SETUP leg carrying the GSS token (§3.2.4.2.3, §3.2.5.3.1)."""
        if self.dialect is None:
            raise LocalProtocolError("SESSION_SETUP before NEGOTIATE")
        if self.session.established:
            raise LocalProtocolError("this connection's session is already established")
        mode = SecurityMode.SIGNING_REQUIRED if self.config.signing_required else SecurityMode.SIGNING_ENABLED
        body = SessionSetupRequest(token, security_mode=mode)
        return self._submit(
            body, charge=1, session_id=self.session.session_id, tree_id=0, limit=SMALL_RESPONSE
        )

    def request(self, body: Request, *, tree_id: int = 0) -> int:
        """Queue any other request on the session (TREE_CONNECT, CREATE, IOCTL, READ, WRITE, CLOSE,
        TREE_DISCONNECT, LOGOFF, ECHO...); returns its message id."""
        if not self.session.established:
            raise LocalProtocolError("no established session on this connection")
        payload, limit = _payload_sizes(body)
        charge = self._credit_charge(payload)
        return self._submit(
            body, charge=charge, session_id=self.session.session_id, tree_id=tree_id, limit=limit
        )

    def _credit_charge(self, payload: int) -> int:
        """§3.2.4.1.5: (max(send, expected response) - 1) / 65536 + 1 with multi-credit; else 1."""
        if not self.supports_multi_credit:
            if payload > CREDIT_PAYLOAD:
                raise LocalProtocolError(f"{payload} bytes in one request needs multi-credit (SMB 2.1+)")
            return 1
        return max(1, (payload - 1) // CREDIT_PAYLOAD + 1)

    def _submit(self, body: Request, *, charge: int, session_id: int, tree_id: int, limit: int) -> int:
        if self.closed:
            raise LocalProtocolError("the connection is closed")
        message_id = self._next_message_id
        self._next_message_id += charge
        command = body.command if not hasattr(body, "COMMAND") else body.COMMAND
        seal = self._seals(command, tree_id)

        def build(credit_request: int) -> bytes:
            header = Smb2Header(
                command=int(command),
                credit_charge=charge if self.dialect not in (None, Dialect.SMB_2_0_2) else 0,
                credits=credit_request,
                message_id=message_id,
                tree_id=tree_id,
                session_id=session_id,
            )
            raw = encode_message(header, body)
            if seal:
                self._outstanding[message_id] = _Outstanding(command, raw, session_id, limit, True)
                return frame(self._seal(raw))
            if self._signs(command):
                message = bytearray(raw)
                self.session.sign(message)
                raw = bytes(message)
            self._outstanding[message_id] = _Outstanding(command, raw, session_id, limit, False)
            return frame(raw)

        self._waiting.append(_Queued(message_id, charge, build))
        self._flush()
        return message_id

    def _flush(self) -> None:
        """Send what the granted credits allow, in message-id order (§3.2.4.1.6)."""
        while self._waiting and self._credits >= self._waiting[0].charge:
            queued = self._waiting.popleft()
            self._credits -= queued.charge
            # Ask for enough to keep ``config.credits`` in hand (§3.2.4.1.2), at least what this one spent.
            ask = max(queued.charge, min(self.config.credits - self._credits, 0xFFFF))
            self._out += queued.build(ask)

    def _seals(self, command: int, tree_id: int) -> bool:
        """§3.2.4.1.8: encrypt if the session or the tree says so (never NEGOTIATE or SESSION_SETUP)."""
        if command in (Command.NEGOTIATE, Command.SESSION_SETUP) or not self.session.established:
            return False
        tree = self.trees.get(tree_id)
        return self.session.encrypt_data or (tree is not None and tree.encrypt_data)

    def _signs(self, command: int) -> bool:
        """§3.2.4.1.1: sign every request of an established session that requires signing."""
        s = self.session
        return s.established and s.keys is not None and s.signing_required and command not in _NEVER_SIGNED

    def _seal(self, raw: bytes) -> bytes:
        self._nonce_counter += 1
        n = nonce_size(self.session.cipher)
        # A nonce never repeats under one key: a per-connection prefix and a counter (§3.1.4.3).
        nonce = (self._nonce_prefix + self._nonce_counter.to_bytes(8, "little"))[:n]
        return self.session.seal(raw, nonce)

    # -- the session -----------------------------------------------------------------------------------

    def session_established(
        self, response: Reply, gss_session_key: bytes, *, anonymous: bool = False
    ) -> None:
        """Finish the logon after the GSS exchange accepted the final SESSION_SETUP response (§3.2.5.3.1):
        derive the keys, apply the session flags, and verify the response's signature with the new key
        (:meth:`ClientSession.establish`). A refusal closes the connection."""
        negotiation = self.negotiation
        if negotiation is None or self.session.established:
            raise LocalProtocolError("no logon in progress")
        if response.header.command != Command.SESSION_SETUP:
            raise LocalProtocolError("the logon ends with a successful SESSION_SETUP response")
        cfg = self.config
        try:
            self.session.establish(
                negotiation,
                response,
                gss_session_key,
                anonymous=anonymous,
                allow_guest=cfg.allow_guest,
                signing_required=cfg.signing_required,
                encryption_required=cfg.encryption_required,
            )
        except (Smb2DecodeError, EncryptionUnavailable):
            self.closed = True
            raise

    @property
    def _server_encrypts(self) -> bool:
        return self.negotiation is not None and self.negotiation.server_encrypts

    # -- responses -------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Reply]:
        """Feed transport bytes; the final responses they complete, in arrival order."""
        if self.closed:
            return []
        self._deframer.max_message_size = self._largest_expected()
        try:
            messages = self._deframer.receive_data(data)
        except Smb2DecodeError:
            self.closed = True
            raise
        events: list[Reply] = []
        try:
            for message in messages:
                self._message(message, events)
        except Smb2DecodeError:
            self.closed = True
            raise
        self._flush()
        return events

    def _largest_expected(self) -> int:
        limits = [o.limit for o in self._outstanding.values()]
        return max(limits, default=SMALL_RESPONSE) + RESPONSE_OVERHEAD

    def _message(self, message: bytes, events: list[Reply]) -> None:
        protocol = message[:4]
        encrypted = protocol == TRANSFORM_PROTOCOL_ID
        if encrypted:
            message = self._decrypt(message)
            if message[:4] != SMB2_PROTOCOL_ID:
                raise RemoteProtocolError("an encrypted message holds no SMB2 message (§3.2.5.1.1.1)")
        elif protocol == SMB1_PROTOCOL_ID:
            raise RemoteProtocolError("the server answered in SMB1: it speaks no SMB2/3")
        elif protocol == COMPRESSION_PROTOCOL_ID:
            raise RemoteProtocolError("a compressed message, and no compression was negotiated")
        elif protocol != SMB2_PROTOCOL_ID:
            raise RemoteProtocolError(f"not an SMB2 message (ProtocolId {protocol.hex()})")
        for part in split_compound(message):
            self._part(part, encrypted, events)

    def _decrypt(self, message: bytes) -> bytes:
        s = self.session
        transform = TransformHeader.decode(message)
        if s.keys is None or s.keys.encryption_key is None or transform.session_id != s.session_id:
            raise RemoteProtocolError("an encrypted message for no session of ours (§3.2.5.1.1.1)")
        return s.unseal(message)

    def _part(self, raw: bytes, encrypted: bool, events: list[Reply]) -> None:
        header = Smb2Header.decode(raw)
        if not header.is_response:
            raise RemoteProtocolError("a request from the server (SERVER_TO_REDIR clear)")
        if header.message_id == UNSOLICITED_MESSAGE_ID:
            if header.command == Command.OPLOCK_BREAK:
                return  # §3.2.5.1.2: we hold no oplocks or leases; nothing to do
            raise RemoteProtocolError("MessageId 0xFFFFFFFFFFFFFFFF on something other than OPLOCK_BREAK")
        sent = self._outstanding.get(header.message_id)
        if sent is None or header.command != sent.command:
            raise RemoteProtocolError(f"a response to message {header.message_id}, which is not outstanding")
        if encrypted and header.session_id != self.session.session_id:
            raise RemoteProtocolError("an encrypted response for another session (§3.2.5.1.1.1)")
        # §3.2.5.1.4: every response grants credits, interim ones included.
        self._credits = min(self._credits + header.credits, 0xFFFF)
        if header.status == NtStatus.STATUS_PENDING and header.is_async:
            sent.async_id = header.async_id  # §3.2.5.1.5: the final response follows
            return
        self._check_signature(header, raw, sent, encrypted)
        del self._outstanding[header.message_id]
        body = decode_response_body(header, raw)
        self._check_size(body, sent)
        self._process(header, body, raw, sent)
        events.append(Reply(header.message_id, header, body, raw, encrypted))

    def _check_signature(self, header: Smb2Header, raw: bytes, sent: _Outstanding, encrypted: bool) -> None:
        """§3.2.5.1.3. Every signed response is verified; on a session that requires signing an
        unsigned (and unsealed) response is refused; a request that went sealed must come back sealed."""
        s = self.session
        if sent.sealed and not encrypted:
            raise RemoteProtocolError(f"the answer to a sealed {Command(sent.command).name} came unsealed")
        if encrypted or sent.command == Command.NEGOTIATE:
            return
        if not s.established or s.keys is None:
            return  # SESSION_SETUP legs: the final one is checked by session_established
        if header.is_signed:
            if not s.signature_valid(raw):
                raise Smb2IntegrityError(f"bad signature on the {Command(sent.command).name} response", 48)
        elif s.signing_required:
            raise RemoteProtocolError(f"the {Command(sent.command).name} response is not signed")

    def _check_size(self, body: object, sent: _Outstanding) -> None:
        data = (
            body.data
            if isinstance(body, ReadResponse)
            else body.output
            if isinstance(body, IoctlResponse)
            else None
        )
        if data is not None and len(data) > sent.limit:
            raise RemoteProtocolError(f"{len(data)} bytes in answer to a request for at most {sent.limit}")

    def _process(self, header: Smb2Header, body: object, raw: bytes, sent: _Outstanding) -> None:
        status = header.status
        if sent.command == Command.NEGOTIATE:
            if status == NtStatus.STATUS_SUCCESS:
                if not isinstance(body, NegotiateResponse):
                    raise RemoteProtocolError("NEGOTIATE succeeded without a NEGOTIATE response body")
                self._negotiated(body, sent.raw, raw)
        elif sent.command == Command.SESSION_SETUP:
            assert self.dialect is not None
            self.session.answered(self.dialect, sent.raw, header, raw)
        elif sent.command == Command.TREE_CONNECT and status == NtStatus.STATUS_SUCCESS:
            if isinstance(body, TreeConnectResponse):
                encrypt = (
                    self.dialect is not None
                    and self.dialect >= Dialect.SMB_3_0
                    and bool(body.share_flags & ShareFlags.ENCRYPT_DATA)
                )
                if encrypt and self.cipher == Cipher.NONE and not self._server_encrypts:
                    raise RemoteProtocolError("the share demands encryption, and no cipher was negotiated")
                if encrypt and self.cipher == Cipher.NONE:
                    self.session.cipher = Cipher.AES_128_CCM
                self.trees[header.tree_id] = _Tree(body.share_type, encrypt)
        elif sent.command == Command.TREE_DISCONNECT and status == NtStatus.STATUS_SUCCESS:
            self.trees.pop(header.tree_id, None)
        elif sent.command == Command.LOGOFF and status == NtStatus.STATUS_SUCCESS:
            self.closed = True  # one session per connection: nothing more to say on it

    def _negotiated(self, resp: NegotiateResponse, request: bytes, raw: bytes) -> None:
        """§3.2.5.2: check the server's choices against our offer (:func:`negotiated`) and record them."""
        self.negotiation = negotiated(self.config, resp, request, raw)
        self.session = ClientSession.starting(self.negotiation)


def _payload_sizes(body: Request) -> tuple[int, int]:
    """What a request sends and what its response may carry (for credit charges and response bounds)."""
    if isinstance(body, ReadRequest):
        return body.length, body.length
    if isinstance(body, IoctlRequest):
        return max(len(body.input), body.max_output_response), body.max_output_response
    if isinstance(body, WriteRequest):
        return len(body.data), 0
    return 0, SMALL_RESPONSE


__all__ = [
    "ALL_CIPHERS",
    "ALL_DIALECTS",
    "ALL_SIGNING_ALGORITHMS",
    "ClientConfig",
    "ClientConnection",
    "ClientSession",
    "EncryptionUnavailable",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Reply",
]
