"""The records of smbd's global state databases (``source3/librpc/idl/smbXsrv.idl``, Samba 4.17).

``smbXsrv_session_global.tdb`` (key: the session's global id, a big-endian u32) holds an
``smbXsrv_session_globalB`` per SMB session: its ids, creation/expiration/authentication NTTIMEs, the
caller's ``auth_session_info``, the dialect, signing and encryption, and one ``smbXsrv_channel_global0``
per channel with the owning smbd's ``server_id`` and the connection's addresses. That database is opened
with ``db_open_watched`` (``source3/lib/dbwrap/dbwrap_watch.c``), so each value starts with a u32 count
of watchers and 32 bytes per watcher before the NDR blob.

``smbXsrv_tcon_global.tdb`` holds an ``smbXsrv_tcon_globalB`` per tree connect (share name, session id,
connect time); ``smbXsrv_open_global.tdb`` an ``smbXsrv_open_globalB`` per open (owning process, owner
SID, open time — but no session id). Neither is watched.

Each decoder is strict: the version must be 0 (SMBXSRV_VERSION_0), every byte must be accounted for, and
a record that does not fit is an :class:`~netsession.wire.ndr.NdrError` — a Samba whose layout differs is
refused, not misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from netsession.samba.ndr import SambaNdrReader, SessionInfo, read_session_info
from netsession.wire.ndr import NdrError

SMBXSRV_VERSION_0: Final = 0
# dbwrap_watch.c: DBWRAP_WATCHER_BUF_LENGTH = SERVER_ID_BUF_LENGTH (24) + sizeof(uint64_t).
WATCHER_LENGTH: Final = 32
# smbXsrv.idl: [range(1, 1024)] uint32 num_channels.
MAX_CHANNELS: Final = 1024
# smbXsrv.idl: smbXsrv_encrpytion_flags / smbXsrv_signing_flags.
SMBXSRV_ENCRYPTION_REQUIRED: Final = 0x01
SMBXSRV_ENCRYPTION_DESIRED: Final = 0x02
SMBXSRV_PROCESSED_ENCRYPTED_PACKET: Final = 0x04
SMBXSRV_SIGNING_REQUIRED: Final = 0x01
SMBXSRV_PROCESSED_SIGNED_PACKET: Final = 0x02


@dataclass(frozen=True, slots=True)
class ServerId:
    """server_id.idl ``server_id``: which smbd process (pid, task, cluster node, unique id)."""

    pid: int
    task_id: int
    vnn: int
    unique_id: int


@dataclass(frozen=True, slots=True)
class Channel:
    """``smbXsrv_channel_global0``: one connection of a session."""

    server_id: ServerId
    channel_id: int
    creation_time: int
    local_address: str  # tsocket form, e.g. "ipv4:127.0.0.1:445"
    remote_address: str
    remote_name: str


@dataclass(frozen=True, slots=True)
class SessionGlobal:
    """``smbXsrv_session_global0``: one SMB session as smbd publishes it."""

    session_global_id: int
    session_wire_id: int
    creation_time: int
    expiration_time: int
    auth_time: int
    session_info: SessionInfo | None  # None until the session is valid for the first time
    connection_dialect: int
    signing_flags: int
    signing_algo: int
    encryption_flags: int
    encryption_cipher: int
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class TconGlobal:
    """``smbXsrv_tcon_global0``: one tree connect."""

    tcon_global_id: int
    server_id: ServerId
    creation_time: int
    share_name: str
    session_global_id: int


@dataclass(frozen=True, slots=True)
class OpenGlobal:
    """``smbXsrv_open_global0``: one open (file or pipe)."""

    open_global_id: int
    server_id: ServerId
    open_owner: str  # the owner's SID
    open_time: int
    disconnect_time: int
    durable: bool


def strip_watchers(value: bytes) -> bytes:
    """The NDR blob of a value of a watched database (dbwrap_watch.c's header removed)."""
    if len(value) < 4:
        raise NdrError(f"watched record of {len(value)} bytes", 0)
    count = int.from_bytes(value[:4], "little")
    skip = 4 + count * WATCHER_LENGTH
    if skip > len(value):
        raise NdrError(f"{count} watchers do not fit in {len(value)} bytes", 0)
    return value[skip:]


def _server_id(r: SambaNdrReader) -> ServerId:
    pid = r.hyper()
    task_id = r.u32()
    vnn = r.u32()
    unique_id = r.hyper()
    return ServerId(pid, task_id, vnn, unique_id)


def _blob_header(r: SambaNdrReader, what: str) -> bool:
    """``smbXsrv_*_globalB``: version, seqnum, the union's discriminant and its pointer; True if the
    record has its info0."""
    version = r.u32()
    if version != SMBXSRV_VERSION_0:
        raise NdrError(f"{what}: version {version} (this bridge reads SMBXSRV_VERSION_0)", 0)
    r.u32()  # seqnum
    discriminant = r.u32()
    if discriminant != version:
        raise NdrError(f"{what}: union discriminant {discriminant} != version {version}", 8)
    return r.pointer() != 0


def _finish(r: SambaNdrReader, what: str) -> None:
    if r.remaining:
        raise NdrError(f"{what}: {r.remaining} bytes left over", r.pos)


def decode_session_global(blob: bytes) -> SessionGlobal | None:
    """An ``smbXsrv_session_globalB`` (watcher header already removed); None if it has no info0."""
    r = SambaNdrReader(blob)
    if not _blob_header(r, "smbXsrv_session_globalB"):
        _finish(r, "smbXsrv_session_globalB")
        return None
    r.align(8)
    r.null_pointer("db_rec")
    global_id = r.u32()
    wire_id = r.hyper()
    creation = r.nttime()
    expiration = r.nttime()
    auth_time = r.nttime()
    r.u32()  # auth_session_info_seqnum
    session_ref = r.pointer()
    dialect = r.u16()
    signing_flags = r.u8()
    signing_algo = r.u16()
    encryption_flags = r.u8()
    encryption_cipher = r.u16()
    for key in ("signing_key", "encryption_key", "decryption_key", "application_key"):
        r.data_blob()
        r.null_pointer(key)
    at = r.pos
    num_channels = r.u32()
    if not 1 <= num_channels <= MAX_CHANNELS:
        raise NdrError(f"num_channels {num_channels} outside [1, {MAX_CHANNELS}]", at)
    # A channel takes at least 88 bytes: check before building any.
    if num_channels * 88 > r.remaining:
        raise NdrError(f"{num_channels} channels cannot fit in {r.remaining} bytes", at)
    channels = []
    for _ in range(num_channels):
        r.align(8)
        server_id = _server_id(r)
        channel_id = r.hyper()
        channel_created = r.nttime()
        local = r.cstring("local_address")
        remote = r.cstring("remote_address")
        remote_name = r.cstring("remote_name")
        r.data_blob()  # signing_key_blob
        r.null_pointer("signing_key")
        r.u32()  # auth_session_info_seqnum
        r.null_pointer("connection")
        r.u16()  # signing_algo
        r.u16()  # encryption_cipher
        channels.append(Channel(server_id, channel_id, channel_created, local, remote, remote_name))
    session_info = read_session_info(r) if session_ref else None
    _finish(r, "smbXsrv_session_globalB")
    return SessionGlobal(
        global_id, wire_id, creation, expiration, auth_time, session_info, dialect, signing_flags,
        signing_algo, encryption_flags, encryption_cipher, tuple(channels),
    )


def decode_tcon_global(blob: bytes) -> TconGlobal | None:
    """An ``smbXsrv_tcon_globalB``; None if it has no info0."""
    r = SambaNdrReader(blob)
    if not _blob_header(r, "smbXsrv_tcon_globalB"):
        _finish(r, "smbXsrv_tcon_globalB")
        return None
    r.align(8)
    r.null_pointer("db_rec")
    tcon_id = r.u32()
    r.u32()  # tcon_wire_id
    server_id = _server_id(r)
    creation = r.nttime()
    share = r.cstring("share_name")
    r.u8()  # encryption_flags
    session_id = r.u32()
    r.u8()  # signing_flags
    _finish(r, "smbXsrv_tcon_globalB")
    return TconGlobal(tcon_id, server_id, creation, share, session_id)


def decode_open_global(blob: bytes) -> OpenGlobal | None:
    """An ``smbXsrv_open_globalB``; None if it has no info0."""
    r = SambaNdrReader(blob)
    if not _blob_header(r, "smbXsrv_open_globalB"):
        _finish(r, "smbXsrv_open_globalB")
        return None
    r.align(8)
    r.null_pointer("db_rec")
    server_id = _server_id(r)
    open_id = r.u32()
    r.hyper()  # open_persistent_id
    r.hyper()  # open_volatile_id
    owner = r.dom_sid()
    open_time = r.nttime()
    r.guid()  # create_guid
    r.guid()  # client_guid
    r.guid()  # app_instance_id
    disconnect_time = r.nttime()
    r.u32()  # durable_timeout_msec
    durable = r.u8()
    r.data_blob()  # backend_cookie
    r.u16()  # channel_sequence
    r.hyper()  # channel_generation
    r.take(64)  # lock_sequence_array
    _finish(r, "smbXsrv_open_globalB")
    return OpenGlobal(open_id, server_id, owner, open_time, disconnect_time, durable != 0)
