"""Telling an smbd process to end one session: Samba's messaging, spoken directly.

smbd processes talk to each other with datagrams on Unix sockets ``<lock dir>/msg.sock/<pid>``
(``lib/messaging/messages_dgm.c``): a message shorter than 1016 bytes is one datagram of a u64 cookie 0,
then the header of ``source3/lib/messages_util.c`` — destination and source ``server_id`` (u64 pid, u32
task_id, u32 vnn, u64 unique_id, little-endian), u32 message type — then the payload.

When a client reconnects with a PreviousSessionId, smbd ends the old session by sending the process that
holds it ``MSG_SMBXSRV_SESSION_CLOSE`` (0x0600) with an ``smbXsrv_session_closeB`` naming the session's
global id, wire id and creation time (``source3/smbd/smbXsrv_session.c``); that process checks all three
against the session it holds, shuts it down (its opens closed, its trees disconnected) and logs it off —
that session only, the connection and its other sessions stay. NetrSessionDel sends exactly that.
``MSG_SHUTDOWN`` (0x000D, what ``smbcontrol PID shutdown`` sends and what Samba's own NetSessDel uses)
ends the whole process: the fallback for a session the first message did not end.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from typing import Final

from netsession.samba.smbxsrv import ServerId

MSG_SHUTDOWN: Final = 0x000D
MSG_SMBXSRV_SESSION_CLOSE: Final = 0x0600
NONCLUSTER_VNN: Final = 0xFFFFFFFF
_SERVER_ID: Final = struct.Struct("<QIIQ")
_CLOSE0: Final = struct.Struct("<IIIIIIQQQ")  # version, reserved, switch, ptr, id, pad, wire, nttime, new
_REFERENT: Final = 0x00020000


def session_close_blob(global_id: int, wire_id: int, creation_nttime: int) -> bytes:
    """An ``smbXsrv_session_closeB`` (version 0) for the session; new_session_wire_id 0 (only logged)."""
    return _CLOSE0.pack(0, 0, 0, _REFERENT, global_id, 0, wire_id, creation_nttime, 0)


def datagram(dst: ServerId, src: ServerId, msg_type: int, payload: bytes) -> bytes:
    """One unfragmented messaging_dgm datagram."""
    return b"".join((
        bytes(8),  # cookie 0: not fragmented
        _SERVER_ID.pack(dst.pid, dst.task_id, dst.vnn, dst.unique_id),
        _SERVER_ID.pack(src.pid, src.task_id, src.vnn, src.unique_id),
        struct.pack("<I", msg_type),
        payload,
    ))


def own_server_id() -> ServerId:
    """A server_id for this process as a sender (smbd ignores messages from itself only)."""
    return ServerId(os.getpid(), 0, NONCLUSTER_VNN, random.getrandbits(63) + 1)


class Messenger:
    """Sends messages to the smbd processes of one ``lock directory``."""

    def __init__(self, lock_dir: str) -> None:
        self.socket_dir = os.path.join(lock_dir, "msg.sock")
        self.me = own_server_id()

    def send(self, dst: ServerId, msg_type: int, payload: bytes = b"") -> None:
        """Raises OSError when the process has no socket (it has gone) or the send fails."""
        path = os.path.join(self.socket_dir, str(dst.pid))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(datagram(dst, self.me, msg_type, payload), path)

    def close_session(self, dst: ServerId, global_id: int, wire_id: int, creation_nttime: int) -> None:
        self.send(dst, MSG_SMBXSRV_SESSION_CLOSE, session_close_blob(global_id, wire_id, creation_nttime))

    def shutdown(self, dst: ServerId) -> None:
        self.send(dst, MSG_SHUTDOWN)
