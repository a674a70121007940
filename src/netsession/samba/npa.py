"""The named-pipe hand-over between smbd and a pipe server: ``named_pipe_auth_req`` / ``_rep``.

With ``external_rpc_pipe:socket_dir = DIR`` in smb.conf, smbd connects to the Unix socket
``DIR/np/<pipe name, lowercased>`` for every named-pipe open and first writes a ``named_pipe_auth_req``
(``librpc/idl/named_pipe_auth.idl``): a big-endian u32 length of what follows, the magic ``NPAM``, the
level (7 in Samba 4.17, 8 from 4.18 on, with the same layout), then ``named_pipe_auth_req_info7``:
transport, the client's address and port, the server's name, address and port, and the caller's
``auth_session_info_transport`` (token SIDs, user and domain names). The answer is a
``named_pipe_auth_rep`` — length, ``NPAM``, level, file type, device state, allocation size, NTSTATUS — and
after it the pipe's data flows: in message mode each message is a little-endian u16 length and the bytes
(``libcli/named_pipe_auth/npa_tstream.c``).

Sans-I/O: :class:`HandshakeReader` is fed bytes and says when a whole request is there;
:func:`decode_request` is strict (every byte accounted for) and bounded; :func:`encode_reply` builds the
answer; :class:`MessageReader` / :func:`encode_message` frame the pipe data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from struct import Struct
from typing import Final

from netsession.samba.ndr import SambaNdrReader, SessionInfo, read_session_info
from netsession.wire.ndr import NdrError

NPA_MAGIC: Final = b"NPAM"
# The levels whose info has the info7 layout: 7 (Samba 4.17), 8 (4.18 on; only the number changed).
INFO7_LEVELS: Final = frozenset((7, 8))
# smbd's own request for a caller with a thousand groups is ~30 KiB; samba-dcerpcd accepts up to
# 0x00FFFFFF. We refuse anything past 1 MiB before reading it.
MAX_REQUEST: Final = 1 << 20
_BE_U32: Final = Struct(">I")
_U16: Final = Struct("<H")
# The reply: length (BE), magic, level, union discriminant, file_type, device_state, pad to 8,
# allocation_size, status.
_REPLY: Final = Struct("<4sIIHH4xQI")

# MS-FSCC 2.4.29 (FilePipeInformation) / Samba's smb.h.
FILE_TYPE_BYTE_MODE_PIPE: Final = 0x0001
FILE_TYPE_MESSAGE_MODE_PIPE: Final = 0x0002
# What samba-dcerpcd answers (source3/rpc_server/rpc_host.c): message mode, 0xff|0x0400|0x0100, 4096.
DEVICE_STATE: Final = 0x00FF | 0x0400 | 0x0100
ALLOCATION_SIZE: Final = 4096
MAX_MESSAGE: Final = 0xFFFF


class NtStatus(enum.IntEnum):
    """The NTSTATUS values a reply may carry (MS-ERREF 2.3.1)."""

    STATUS_SUCCESS = 0x00000000
    STATUS_INVALID_PARAMETER = 0xC000000D
    STATUS_INVALID_ADDRESS = 0xC0000141
    STATUS_INVALID_LEVEL = 0xC0000148
    STATUS_INVALID_BUFFER_SIZE = 0xC0000206


class NpaError(ValueError):
    """A request that cannot be served; ``status`` is the NTSTATUS its reply carries."""

    def __init__(self, message: str, status: NtStatus, level: int = 7) -> None:
        super().__init__(message)
        self.status = status
        self.level = level


@dataclass(frozen=True, slots=True)
class NamedPipeAuthReq:
    """A decoded ``named_pipe_auth_req`` at level 7 or 8."""

    level: int
    transport: int
    remote_client_name: str | None
    remote_client_addr: str
    remote_client_port: int
    local_server_name: str | None
    local_server_addr: str
    local_server_port: int
    session_info: SessionInfo | None


class HandshakeReader:
    """Collects the request's bytes: ``feed`` returns the whole request (length prefix included) once it
    has arrived, and the bytes after it; raises :class:`NpaError` for a wrong magic or an oversized
    length as soon as the first 8 bytes show it."""

    def __init__(self, max_request: int = MAX_REQUEST) -> None:
        self._buf = bytearray()
        self._max = max_request

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        self._buf += data
        if len(self._buf) < 8:
            return None
        (length,) = _BE_U32.unpack_from(self._buf, 0)
        if self._buf[4:8] != NPA_MAGIC:
            raise NpaError("not a named_pipe_auth_req (no NPAM magic)", NtStatus.STATUS_INVALID_PARAMETER)
        if length > self._max:
            raise NpaError(
                f"named_pipe_auth_req of {length} bytes (limit {self._max})",
                NtStatus.STATUS_INVALID_BUFFER_SIZE,
            )
        if len(self._buf) < 4 + length:
            return None
        whole = bytes(self._buf[: 4 + length])
        rest = bytes(self._buf[4 + length :])
        self._buf.clear()
        return whole, rest


def decode_request(blob: bytes) -> NamedPipeAuthReq:
    """Decode a whole request (as :class:`HandshakeReader` returns it). Every byte must be accounted
    for, as Samba's ``ndr_pull_struct_blob_all`` requires."""
    if len(blob) < 16:
        raise NpaError(f"named_pipe_auth_req of {len(blob)} bytes", NtStatus.STATUS_INVALID_PARAMETER)
    (length,) = _BE_U32.unpack_from(blob, 0)
    if length != len(blob) - 4 or blob[4:8] != NPA_MAGIC:
        raise NpaError("named_pipe_auth_req length or magic wrong", NtStatus.STATUS_INVALID_PARAMETER)
    r = SambaNdrReader(blob)
    r.pos = 8
    try:
        level = r.u32()
        if level not in INFO7_LEVELS:
            raise NpaError(f"named_pipe_auth_req level {level}", NtStatus.STATUS_INVALID_LEVEL)
        discriminant = r.u32()
        if discriminant != level:
            raise NdrError(f"union discriminant {discriminant} != level {level}", r.pos - 4)
        transport = r.u8()
        name_ref, addr_ref = r.pointer(), r.pointer()
        client_port = r.u16()
        server_name_ref, server_addr_ref = r.pointer(), r.pointer()
        server_port = r.u16()
        session_ref = r.pointer()
        client_name = r.cstring("remote_client_name") if name_ref else None
        client_addr = r.cstring("remote_client_addr") if addr_ref else None
        server_name = r.cstring("local_server_name") if server_name_ref else None
        server_addr = r.cstring("local_server_addr") if server_addr_ref else None
        session: SessionInfo | None = None
        if session_ref:
            # auth_session_info_transport {auth_session_info *session_info;
            #                              DATA_BLOB exported_gssapi_credentials}
            r.align(4)
            inner_ref = r.pointer()
            r.data_blob()
            if inner_ref:
                session = read_session_info(r)
        if r.remaining:
            raise NdrError(f"{r.remaining} bytes left after the request", r.pos)
    except NdrError as exc:
        raise NpaError(f"malformed named_pipe_auth_req: {exc}", NtStatus.STATUS_INVALID_PARAMETER) from None
    if client_addr is None or server_addr is None:
        # npa_tstream.c: a request without the addresses is refused with NT_STATUS_INVALID_ADDRESS.
        raise NpaError("named_pipe_auth_req without addresses", NtStatus.STATUS_INVALID_ADDRESS, level)
    return NamedPipeAuthReq(
        level, transport, client_name, client_addr, client_port, server_name, server_addr, server_port,
        session,
    )


def encode_reply(
    status: int,
    level: int = 7,
    file_type: int = FILE_TYPE_MESSAGE_MODE_PIPE,
    device_state: int = DEVICE_STATE,
    allocation_size: int = ALLOCATION_SIZE,
) -> bytes:
    """A ``named_pipe_auth_rep`` at ``level`` (7 or 8: the info7 layout)."""
    body = _REPLY.pack(NPA_MAGIC, level, level, file_type, device_state, allocation_size, status)
    return _BE_U32.pack(len(body)) + body


def encode_message(data: bytes) -> bytes:
    """One message-mode pipe message: a little-endian u16 length, then the bytes."""
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"a pipe message holds at most {MAX_MESSAGE} bytes, not {len(data)}")
    return _U16.pack(len(data)) + data


class MessageReader:
    """Splits message-mode pipe data into messages (bounded: a message is at most 64 KiB)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 2:
            (n,) = _U16.unpack_from(buf, pos)
            if len(buf) - pos - 2 < n:
                break
            out.append(bytes(buf[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        del buf[:pos]
        return out
