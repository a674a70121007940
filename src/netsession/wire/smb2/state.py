"""The SMB2 server's abstract data model for a named-pipe server (MS-SMB2 §3.3.1): sessions, tree
connects, opens, the server's configuration — and the two interfaces the connection is plugged into: the
:class:`Backend` (the server behind it) and the :class:`Pipe` (one open of a named pipe).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING, Any, Protocol

from .auth import AuthContext, Identity
from .constants import Cipher, Dialect, NtStatus, SigningAlgorithm
from .create import FileId
from .crypto import INITIAL_PREAUTH_HASH, SessionKeys

# What one client may make the server hold after logon (issue 9). Windows has limits of its own but
# documents no numbers; these are ours, generous for any real client (Windows opens one or two pipes per
# session, smbclient and impacket one tree) and small enough that a hostile one holds a few MB at most.
# Past a limit the request fails with STATUS_INSUFFICIENT_RESOURCES, which MS-SMB2 lists for
# SESSION_SETUP (§3.3.5.5), TREE_CONNECT (§3.3.5.7) and CREATE (§3.3.5.9: "if the allocation fails").
MAX_SESSIONS_PER_CONNECTION = 64
MAX_TREES_PER_SESSION = 128
MAX_OPENS_PER_SESSION = 256

if TYPE_CHECKING:
    from .connection import ServerConnection


class OutOfResources(Exception):
    """The backend refuses a new open because its caller holds too many already: the SMB layer answers
    STATUS_INSUFFICIENT_RESOURCES (MS-SMB2 §3.3.5.9: "if the allocation fails")."""


class PipeBusy(Exception):
    """A pipe refuses a write while too much of its output is still unread: the SMB layer answers
    STATUS_PIPE_BUSY, and what the pipe holds stays bounded whatever the client does."""


class Pipe(Protocol):
    """One open of a named pipe, in message mode: each write is a message in, replies come out as
    messages that reads take in pieces."""

    def write(self, data: bytes) -> None:
        """A message in; raises :class:`PipeBusy` while too much output is unread."""
        ...

    def read(self, max_length: int) -> tuple[bytes, int]:
        """Up to ``max_length`` bytes of the current message, and how many bytes of it remain."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """What the server behind the connection provides and is told.

    ``session_established`` / ``session_ended`` bracket every authenticated session (ended by LOGOFF,
    by the connection's loss, or by :meth:`ServerConnection.close_session`); ``session_active`` is
    called for each request on it (idle time); ``open_pipe`` opens a named pipe on IPC$ (None: no such
    pipe) and the connection closes what it opened. ``session_established`` may refuse the session by
    raising :class:`OutOfResources` (the logon then fails with STATUS_INSUFFICIENT_RESOURCES and
    ``session_ended`` is not called for it).

    The session's neighbours are told the same way (MS-SRVS §3.1.6.4-§3.1.6.7): ``tree_connected`` /
    ``tree_disconnected`` bracket every tree connect, ``pipe_opened`` / ``pipe_closed`` every open
    (after the pipe was opened and its FileId given; before it is closed), whatever ends it — CLOSE,
    TREE_DISCONNECT, LOGOFF, the connection's loss or :meth:`IpcShare.close_open`. Each object's
    ``owner`` is the backend's own handle on it.
    """

    def session_established(self, session: Session) -> None: ...

    def session_active(self, session: Session) -> None: ...

    def session_ended(self, session: Session) -> None: ...

    def open_pipe(self, session: Session, name: str) -> Pipe | None: ...

    def tree_connected(self, session: Session, tree: TreeConnect) -> None: ...

    def tree_disconnected(self, tree: TreeConnect) -> None: ...

    def pipe_opened(self, session: Session, open_: Open) -> None: ...

    def pipe_closed(self, open_: Open) -> None: ...


@dataclass
class ServerConfig:
    """How the server negotiates. Signing is required by default; ``encrypt_data`` makes every 3.x
    session encrypted (MS-SMB2 §3.3.1.5 Server.EncryptData) and refuses clients that cannot."""

    server_guid: uuid.UUID = field(default_factory=uuid.uuid4)
    dialects: tuple[int, ...] = (
        Dialect.SMB_2_0_2,
        Dialect.SMB_2_1,
        Dialect.SMB_3_0,
        Dialect.SMB_3_0_2,
        Dialect.SMB_3_1_1,
    )
    require_signing: bool = True
    encrypt_data: bool = False
    max_transact_size: int = 0x100000
    max_read_size: int = 0x100000
    max_write_size: int = 0x100000
    max_sessions_per_connection: int = MAX_SESSIONS_PER_CONNECTION
    max_trees_per_session: int = MAX_TREES_PER_SESSION
    max_opens_per_session: int = MAX_OPENS_PER_SESSION
    # Preference order for 3.1.1 (MS-SMB2 §3.3.5.4 lets the server choose among the client's offers).
    ciphers: tuple[int, ...] = (
        Cipher.AES_128_GCM,
        Cipher.AES_128_CCM,
        Cipher.AES_256_GCM,
        Cipher.AES_256_CCM,
    )
    signing_algorithms: tuple[int, ...] = (
        SigningAlgorithm.AES_GMAC,
        SigningAlgorithm.AES_CMAC,
        SigningAlgorithm.HMAC_SHA256,
    )

    @property
    def max_message_size(self) -> int:
        """The largest request the transport accepts once logged on: MS-SMB2 §3.3.5.2, "if the length of
        the message exceeds Connection.MaxTransactSize + 256, the server MUST disconnect" (the largest of
        the three sizes, so that a WRITE of MaxWriteSize always fits)."""
        return max(self.max_transact_size, self.max_read_size, self.max_write_size) + 256


class SessionState(Enum):
    IN_PROGRESS = auto()
    VALID = auto()


@dataclass(eq=False)
class Open:
    """An open of a named pipe (MS-SMB2 §3.3.1.10)."""

    file_id: FileId
    tree: TreeConnect
    name: str
    pipe: Pipe
    owner: Any = None


@dataclass(eq=False)
class TreeConnect:
    """MS-SMB2 §3.3.1.9."""

    tree_id: int
    share: str
    opens: dict[int, Open] = field(default_factory=dict)  # by volatile FileId
    owner: Any = None


@dataclass(eq=False)
class Session:
    """MS-SMB2 §3.3.1.8, the part a pipe server needs. ``owner`` is the backend's own handle on it
    (the server keeps its session-table row there)."""

    session_id: int
    connection: ServerConnection
    state: SessionState = SessionState.IN_PROGRESS
    auth: AuthContext | None = None
    identity: Identity | None = None
    keys: SessionKeys | None = None
    signing_required: bool = False
    encrypt_data: bool = False
    preauth_hash: bytes = INITIAL_PREAUTH_HASH
    trees: dict[int, TreeConnect] = field(default_factory=dict)
    owner: Any = None

    @property
    def client_address(self) -> str:
        return self.connection.client_address

    @property
    def num_opens(self) -> int:
        return sum(len(t.opens) for t in self.trees.values())


@dataclass
class Chain:
    """What a compound chain's related requests inherit (MS-SMB2 §3.3.5.2.7.2)."""

    session_id: int = 0
    tree_id: int = 0
    file_id: FileId | None = None
    status: int = NtStatus.STATUS_SUCCESS
