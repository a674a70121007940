"""SMB2 message bodies a named-pipe server needs, both directions, and request/response dispatch.

Every body is a frozen dataclass with ``COMMAND`` and ``STRUCTURE_SIZE``, ``encode() -> bytes`` (the body
alone; offsets inside it assume the 64-byte header before it) and ``decode(message) -> Self`` where
``message`` is the whole SMB2 message *starting at its header*, since body offsets count from there::

    header, body = decode_request(message)          # server side
    reply = encode_message(header.response(credits=1), EchoResponse())

Encoders place variable data right after the fixed part, 8-byte aligned where MS-SMB2 asks, as Windows
does (smbprotocol, for one, reads READ/IOCTL/QUERY_INFO data from there without looking at the offset).

The bodies live in ``negotiate`` (NEGOTIATE), ``session`` (SESSION_SETUP, LOGOFF, TREE_CONNECT,
TREE_DISCONNECT, ECHO, CANCEL, ERROR), ``create`` (CREATE, CLOSE, FLUSH) and ``pipe_io`` (READ, WRITE,
IOCTL, QUERY_INFO); this module re-exports them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias

from .codec import SMB2_HEADER_SIZE, Buffer, Smb2DecodeError, unpack_from
from .constants import Command, Dialect, NtStatus
from .create import (
    FILE_ID_ANY,
    CloseRequest,
    CloseResponse,
    CreateContext,
    CreateRequest,
    CreateResponse,
    FileId,
    FlushRequest,
    FlushResponse,
)
from .header import Smb2Header
from .negotiate import NegotiateRequest, NegotiateResponse
from .pipe_io import (
    IoctlRequest,
    IoctlResponse,
    QueryInfoRequest,
    QueryInfoResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
)
from .session import (
    CancelRequest,
    EchoRequest,
    EchoResponse,
    ErrorResponse,
    LogoffRequest,
    LogoffResponse,
    SessionSetupRequest,
    SessionSetupResponse,
    TreeConnectContext,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
    TreeDisconnectResponse,
)

__all__ = [
    "FILE_ID_ANY",
    "CancelRequest",
    "CloseRequest",
    "CloseResponse",
    "CreateContext",
    "CreateRequest",
    "CreateResponse",
    "EchoRequest",
    "EchoResponse",
    "ErrorResponse",
    "FileId",
    "FlushRequest",
    "FlushResponse",
    "IoctlRequest",
    "IoctlResponse",
    "LogoffRequest",
    "LogoffResponse",
    "NegotiateRequest",
    "NegotiateResponse",
    "QueryInfoRequest",
    "QueryInfoResponse",
    "RawBody",
    "ReadRequest",
    "ReadResponse",
    "Request",
    "RequestBody",
    "Response",
    "ResponseBody",
    "SessionSetupRequest",
    "SessionSetupResponse",
    "TreeConnectContext",
    "TreeConnectRequest",
    "TreeConnectResponse",
    "TreeDisconnectRequest",
    "TreeDisconnectResponse",
    "WriteRequest",
    "WriteResponse",
    "decode_request",
    "decode_response",
    "decode_response_body",
    "encode_message",
    "is_error_response",
]

_U16 = struct.Struct("<H")
# Commands whose own response has StructureSize 9 like the ERROR response, and the statuses it comes with.
_NINE_BYTE_RESPONSES: dict[int, frozenset[int]] = {
    Command.SESSION_SETUP: frozenset({NtStatus.STATUS_SUCCESS, NtStatus.STATUS_MORE_PROCESSING_REQUIRED}),
    Command.QUERY_DIRECTORY: frozenset({NtStatus.STATUS_SUCCESS}),
    Command.CHANGE_NOTIFY: frozenset({NtStatus.STATUS_SUCCESS}),
    Command.QUERY_INFO: frozenset({NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BUFFER_OVERFLOW}),
}


@dataclass(frozen=True, slots=True)
class RawBody:
    """A body kept as bytes: commands the pipe server does not implement (LOCK, QUERY_DIRECTORY,
    CHANGE_NOTIFY, SET_INFO, OPLOCK_BREAK) or command codes MS-SMB2 does not define (3.3.5.2.6: the
    server disconnects for those)."""

    command: int
    data: bytes

    def encode(self) -> bytes:
        return self.data


RequestBody: TypeAlias = (
    NegotiateRequest
    | SessionSetupRequest
    | LogoffRequest
    | TreeConnectRequest
    | TreeDisconnectRequest
    | CreateRequest
    | CloseRequest
    | FlushRequest
    | ReadRequest
    | WriteRequest
    | IoctlRequest
    | CancelRequest
    | EchoRequest
    | QueryInfoRequest
)
ResponseBody: TypeAlias = (
    NegotiateResponse
    | SessionSetupResponse
    | LogoffResponse
    | TreeConnectResponse
    | TreeDisconnectResponse
    | CreateResponse
    | CloseResponse
    | FlushResponse
    | ReadResponse
    | WriteResponse
    | IoctlResponse
    | EchoResponse
    | QueryInfoResponse
)
Request: TypeAlias = RequestBody | RawBody
Response: TypeAlias = ResponseBody | ErrorResponse | RawBody

REQUEST_BODIES: dict[int, type[RequestBody]] = {
    cls.COMMAND: cls
    for cls in (
        NegotiateRequest,
        SessionSetupRequest,
        LogoffRequest,
        TreeConnectRequest,
        TreeDisconnectRequest,
        CreateRequest,
        CloseRequest,
        FlushRequest,
        ReadRequest,
        WriteRequest,
        IoctlRequest,
        CancelRequest,
        EchoRequest,
        QueryInfoRequest,
    )
}
RESPONSE_BODIES: dict[int, type[ResponseBody]] = {
    cls.COMMAND: cls
    for cls in (
        NegotiateResponse,
        SessionSetupResponse,
        LogoffResponse,
        TreeConnectResponse,
        TreeDisconnectResponse,
        CreateResponse,
        CloseResponse,
        FlushResponse,
        ReadResponse,
        WriteResponse,
        IoctlResponse,
        EchoResponse,
        QueryInfoResponse,
    )
}


def decode_request(message: Buffer, *, dialect: int | None = None) -> tuple[Smb2Header, Request]:
    """Header and body of one SMB2 request (one element of a compound chain, see ``split_compound``).

    ``dialect`` (the connection's, if negotiated) decides whether TREE_CONNECT Flags are read (3.1.1).
    Unimplemented or unknown commands come back as :class:`RawBody`; check ``header.command in Command``
    before answering (3.3.5.2.6).
    """
    header = Smb2Header.decode(message)
    if header.is_response:
        raise Smb2DecodeError("SERVER_TO_REDIR set on a request", 16)
    cls = REQUEST_BODIES.get(header.command)
    if cls is None:
        return header, RawBody(header.command, bytes(message[SMB2_HEADER_SIZE:]))
    if cls is TreeConnectRequest:
        return header, TreeConnectRequest.decode(
            message, extension_allowed=dialect in (None, Dialect.SMB_3_1_1)
        )
    return header, cls.decode(message)


def is_error_response(header: Smb2Header, message: Buffer) -> bool:
    """Whether a response carries the 2.2.2 ERROR body rather than the command's own.

    An ERROR body has StructureSize 9. So have the responses of SESSION_SETUP, QUERY_DIRECTORY,
    CHANGE_NOTIFY and QUERY_INFO (2.2.6, 2.2.34, 2.2.36, 2.2.38); for those the status decides: their own
    body comes only with STATUS_SUCCESS, MORE_PROCESSING_REQUIRED on SESSION_SETUP (3.3.5.5.3) and
    BUFFER_OVERFLOW on QUERY_INFO (partial data); anything else (STATUS_PENDING interims, 3.3.4.2;
    errors; warnings such as STATUS_NO_MORE_FILES) is an ERROR body (3.3.4.4). Other commands' bodies
    are never 9 bytes, so READ / IOCTL with STATUS_BUFFER_OVERFLOW keep theirs.
    """
    (size,) = unpack_from(_U16, message, SMB2_HEADER_SIZE, "response StructureSize")
    if size != ErrorResponse.STRUCTURE_SIZE:
        return False
    own_body_statuses = _NINE_BYTE_RESPONSES.get(header.command)
    return own_body_statuses is None or header.status not in own_body_statuses


def decode_response(message: Buffer) -> tuple[Smb2Header, Response]:
    """Header and body of one SMB2 response (what a test client reads)."""
    header = Smb2Header.decode(message)
    if not header.is_response:
        raise Smb2DecodeError("SERVER_TO_REDIR clear on a response", 16)
    return header, decode_response_body(header, message)


def decode_response_body(header: Smb2Header, message: Buffer) -> Response:
    """The body of a response whose header is already decoded (``header`` is ``message``'s)."""
    if is_error_response(header, message):
        return ErrorResponse.decode(message)
    cls = RESPONSE_BODIES.get(header.command)
    if cls is None:
        return RawBody(header.command, bytes(message[SMB2_HEADER_SIZE:]))
    return cls.decode(message)


def encode_message(header: Smb2Header, body: Request | Response) -> bytes:
    """One SMB2 message: ``header`` then ``body``. The header's Command must be the body's."""
    command = body.command if isinstance(body, RawBody) else body.COMMAND
    if command is not None and command != header.command:
        raise ValueError(f"header Command 0x{header.command:04X} does not match body command 0x{command:04X}")
    return header.encode() + body.encode()
