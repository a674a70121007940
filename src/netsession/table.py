r"""The server's session table: the MS-SRVS rules for NetrSessionEnum / NetrSessionDel, and for the
session's neighbours — NetrFileEnum / GetInfo / Close and NetrConnectionEnum.

``SessionTable`` is the **SessionList** of MS-SRVS §3.1.1.1 joined with the per-session facts MS-SMB2
§3.3.4.18 reports, and with the **FileList** and **TreeConnectList** of the same section: one table,
whose open and tree rows hang off their session (a session's ``num_opens`` is its rows in FileList).
It does no I/O: the SMB layer adds a row when a session is established and keeps the row up to date
(``touch`` on every request, ``tree_connect`` / ``open`` for its trees and opens, each row's ``remove``
when it ends, the session's ``remove`` at logoff); the srvsvc handler asks it ``enumerate`` / ``delete``
/ ``file_enum`` / ``connection_enum`` ... and marshals the result. Not thread-safe: one event loop owns it.

>>> now = [0.0]
>>> table = SessionTable(clock=lambda: now[0])
>>> s = table.add("10.0.0.5", "alice", on_close=lambda s: s.remove())
>>> pipe = s.open("\\PIPE\\srvsvc"); now[0] = 42.0
>>> admin = Caller("bob", frozenset({"Administrators"}))
>>> r = table.enumerate(admin, None, None, 10, MAX_PREFERRED_LENGTH, None)
>>> r.status.name, r.total_entries, r.resume_handle
('NERR_Success', 1, None)
>>> r.entries[0]
SESSION_INFO_10(sesi10_cname='\\\\10.0.0.5', sesi10_username='alice', sesi10_time=42, sesi10_idle_time=42)
>>> table.delete(admin, r"\\10.0.0.5", None).status
<NetApiStatus.NERR_Success: 0>
>>> len(table)
0

Choices where the spec leaves room (each is tested):

* ``cname`` is kept in UNC form, as Windows shows it: ``add("10.0.0.5", ...)`` stores ``\\10.0.0.5`` and
  an IPv6 address gets brackets (``\\[2001:db8::1]``); a name already starting with ``\\`` is kept.
* Filters compare case-insensitively with a one-to-one upper-casing, like Windows' RtlUpcaseUnicodeChar
  (``"ß"`` does not match ``"SS"``).
* ResumeHandle ``h`` (nonzero) means "start at 0-based position ``h``", i.e. after the ``h``-th session
  (§3.1.4.5 counted from one). On ERROR_MORE_DATA it becomes the 1-based position of the last returned
  session (never zero); on NERR_Success it becomes the list size, so re-submitting it returns zero
  entries until a session is added; on an error it is returned unchanged. ``None`` in gives ``None`` out.
* A ResumeHandle of 0 (or ``None``) always means "from the start", so on an empty list a filter that
  matches nothing still fails with 2312/2221; only a *nonzero* handle at or past the end succeeds empty.
* NERR_BufTooSmall when PreferedMaximumLength cannot hold even the first entry (resume handle unchanged,
  TotalEntries still counted).
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    NERR_BufTooSmall,
    NERR_ClientNameNotFound,
    NERR_FileIdNotFound,
    NERR_InvalidComputer,
    NERR_NetNameNotFound,
    NERR_Success,
    NERR_UserNotFound,
    NetApiStatus,
)
from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS
from netsession.records import (
    CONNECTION_INFO_1,
    CONNECTION_LEVELS,
    FILE_INFO_3,
    FILE_LEVELS,
    GETINFO_LEVELS,
    MAX_PREFERRED_LENGTH,
    PERM_FILE_READ,
    PERM_FILE_WRITE,
    SESSION_INFO_0,
    SESSION_INFO_10,
    SESSION_INFO_502,
    SESSION_LEVELS,
    ConnectionInfo,
    FileInfo,
    SessionInfo,
    ndr_size,
    project,
    project_connection,
    project_file,
)
from netsession.wire.ndr import utf16_units

__all__ = [
    "ADMIN_GROUPS",
    "DEFAULT_TRANSPORT",
    "MAX_NAME_LENGTH",
    "STYPE_IPC",
    "AccessPolicy",
    "Caller",
    "DeleteResult",
    "EnumResult",
    "GetInfoResult",
    "ListResult",
    "OpenRow",
    "Session",
    "SessionCloseError",
    "SessionTable",
    "TreeConnectRow",
    "paginate",
    "unc_client_name",
]

# MS-SRVS note <28>: direct TCP (port 445) shows as this transport.
DEFAULT_TRANSPORT = "\\Device\\NetbiosSmb"
# MS-SRVS §3.1.4.5/§3.1.4.6: ClientName / UserName longer than this, NUL included -> ERROR_INVALID_PARAMETER.
MAX_NAME_LENGTH = 1024
# MS-SRVS notes <52>-<55>: the local groups that may see every level and delete sessions.
ADMIN_GROUPS = frozenset((ADMINISTRATORS, SERVER_OPERATORS))
_ADMIN_KEYS = frozenset(g.casefold() for g in ADMIN_GROUPS)
# Levels Windows restricts to ADMIN_GROUPS even before the hardening (seed 001, FACTS.md §3).
_PRIVILEGED_LEVELS = frozenset((1, 2, 502))
_UNC_PREFIX = "\\\\"
# MS-SRVS §2.2.2.4: the type of IPC$ (a tree's coni1_type is its share's type).
STYPE_IPC = 0x00000003
_DWORD_MAX = 0xFFFFFFFF
# How many distinct (client, user) filters keep their match index between table changes.
_FILTER_CACHE_SIZE = 16


class AccessPolicy(enum.Enum):
    """Who may enumerate sessions (FACTS.md §3, "Access").

    CLASSIC: levels 0 and 10 are open to every authenticated caller; 1, 2, 502 need Administrators or
    Server Operators (refused with the stub status ERROR_ACCESS_DENIED).
    HARDENED (Windows 10 1607 / Server 2019, NetCease): every level needs Administrators or Server
    Operators, and a refused caller gets a DCE/RPC fault with status 5 instead of a stub status, whatever
    the level. NetrSessionDel keeps its stub status under both policies.
    """

    CLASSIC = "classic"
    HARDENED = "hardened"


@dataclass(frozen=True, slots=True)
class Caller:
    r"""Who is calling srvsvc: the authenticated user of the SMB session the pipe was opened on.

    ``groups`` are local group names, compared case-insensitively, with or without ``BUILTIN\``.

    >>> Caller("bob", frozenset({"BUILTIN\\Administrators"})).is_operator
    True
    >>> Caller("", frozenset(), authenticated=False).is_operator
    False
    """

    user: str
    groups: frozenset[str] = frozenset()
    authenticated: bool = True  # False for anonymous and guest logons

    @property
    def is_operator(self) -> bool:
        """Authenticated and in Administrators or Server Operators (MS-SRVS notes <52>, <54>)."""
        if not self.authenticated:
            return False
        for group in self.groups:
            name = group.casefold()
            name = name.removeprefix("builtin\\")
            if name in _ADMIN_KEYS:
                return True
        return False


@dataclass(frozen=True, slots=True)
class EnumResult:
    """The outcome of NetrSessionEnum (MS-SRVS §3.1.4.5).

    If ``fault`` is not None the server answers with a DCE/RPC fault PDU carrying that status and no
    stub data; otherwise it returns ``status`` with ``level``/``entries`` as InfoStruct, ``total_entries``
    as TotalEntries and ``resume_handle`` as ResumeHandle (a NULL pointer when None).
    """

    status: NetApiStatus
    level: int
    entries: tuple[SessionInfo, ...]
    total_entries: int
    resume_handle: int | None
    fault: int | None = None
    synthetic: int = 0  # how many of ``entries`` are synthetic (decoy) rows


@dataclass(frozen=True, slots=True)
class GetInfoResult:
    """The outcome of NetSessionGetInfo: the first matching session at ``level``, or None on error."""

    status: NetApiStatus
    entry: SessionInfo | None
    fault: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """The outcome of NetrSessionDel (MS-SRVS §3.1.4.6): ``closed`` are the sessions that were removed."""

    status: NetApiStatus
    closed: tuple[Session, ...] = ()


@dataclass(frozen=True, slots=True)
class ListResult:
    """The outcome of NetrFileEnum (MS-SRVS §3.1.4.2) or NetrConnectionEnum (§3.1.4.1), paged exactly as
    NetrSessionEnum; ``entries`` are FILE_INFO_x or CONNECTION_INFO_x records."""

    status: NetApiStatus
    level: int
    entries: tuple[Any, ...]
    total_entries: int
    resume_handle: int | None


@dataclass(frozen=True, slots=True)
class FileInfoResult:
    """The outcome of NetrFileGetInfo (MS-SRVS §3.1.4.3): the open at ``level``, or None on error."""

    status: NetApiStatus
    entry: FileInfo | None


class SessionCloseError(ExceptionGroup[Exception]):
    """Raised by :meth:`SessionTable.delete` after *every* on_close callback has run, when some raised.

    The sessions are already out of the table; ``result`` is the DeleteResult (NERR_Success) the srvsvc
    handler should still answer with.
    """

    result: DeleteResult

    def __new__(cls, message: str, exceptions: Sequence[Exception], result: DeleteResult) -> Self:
        self = super().__new__(cls, message, exceptions)
        self.result = result
        return self

    def derive(self, excs: Sequence[Exception]) -> SessionCloseError:  # type: ignore[override]
        return SessionCloseError(self.message, excs, self.result)


def unc_client_name(address: str) -> str:
    r"""The cname Windows shows for a client address (FACTS.md §2): UNC form, IPv6 in brackets.

    >>> unc_client_name("10.0.0.5"), unc_client_name("2001:db8::1"), unc_client_name("\\\\PC1")
    ('\\\\10.0.0.5', '\\\\[2001:db8::1]', '\\\\PC1')
    """
    if address.startswith(_UNC_PREFIX):
        return address
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return _UNC_PREFIX + address


def _fold(s: str) -> str:
    """A one-to-one upper-casing for case-insensitive compares (Windows upcases character by character)."""
    if s.isascii():
        return s.upper()
    out = []
    for c in s:
        u = c.upper()
        out.append(u if len(u) == 1 else c)
    return "".join(out)


def _too_long(name: str | None) -> bool:
    # MS-SRVS §3.1.4.5: "more than 1,024 characters, including the terminating null character".
    return name is not None and utf16_units(name) + 1 > MAX_NAME_LENGTH


def _seconds(delta: float) -> int:
    """Whole seconds, clamped to a DWORD (a clock that steps back reads as 0)."""
    if delta <= 0:
        return 0
    return int(delta) if delta < _DWORD_MAX else _DWORD_MAX


class Session:
    r"""One row of the table; the SMB layer that added it owns it and keeps it current.

    >>> now = [100.0]
    >>> table = SessionTable(clock=lambda: now[0])
    >>> s = table.add("10.0.0.7", "carol", on_close=lambda s: s.remove())
    >>> tree = s.tree_connect("IPC$")
    >>> a = s.open("\\PIPE\\srvsvc", tree=tree); b = s.open("\\PIPE\\srvsvc", tree=tree); a.remove()
    >>> now[0] = 130.0; s.touch(); now[0] = 135.5
    >>> info = s.info()
    >>> info.sesi502_num_opens, info.sesi502_time, info.sesi502_idle_time, info.sesi502_transport
    (1, 35, 5, '\\Device\\NetbiosSmb')
    >>> s.remove(); s.active
    False
    """

    __slots__ = (
        "_clock",
        "_cname_key",
        "_opens",
        "_table",
        "_trees",
        "_user_key",
        "cltype_name",
        "cname",
        "created_at",
        "last_active_at",
        "on_close",
        "session_id",
        "synthetic",
        "transport",
        "user_flags",
        "username",
    )

    def __init__(
        self,
        table: SessionTable,
        session_id: int,
        cname: str,
        username: str,
        user_flags: int,
        cltype_name: str,
        transport: str,
        on_close: Callable[[Session], object],
        now: float,
        synthetic: bool = False,
    ) -> None:
        self.session_id = session_id  # MS-SRVS §3.1.6.2 GlobalSessionId
        self.cname = cname
        self.username = username
        self.user_flags = user_flags
        self.cltype_name = cltype_name
        self.transport = transport
        self.on_close = on_close
        self.synthetic = synthetic  # a decoy row (netsession.decoy), not an SMB session
        self.created_at = now  # MS-SMB2 Session.CreationTime
        self.last_active_at = now  # MS-SMB2 Session.IdleTime
        self._opens: dict[int, OpenRow] = {}  # MS-SMB2 Session.OpenTable, by GlobalFileId
        self._trees: dict[int, TreeConnectRow] = {}  # MS-SMB2 Session.TreeConnectTable
        self._table: SessionTable | None = table
        self._clock = table._clock
        self._cname_key = _fold(cname)
        self._user_key = _fold(username)

    def __repr__(self) -> str:
        return f"<Session {self.session_id} {self.cname} {self.username!r} opens={len(self._opens)}>"

    @property
    def active(self) -> bool:
        """Still in its table."""
        return self._table is not None

    @property
    def num_opens(self) -> int:
        """Entries in the session's open table, files and named pipes (MS-SMB2 §3.3.4.18): its rows in the
        table's FileList, nothing counted apart."""
        return len(self._opens)

    @property
    def opens(self) -> tuple[OpenRow, ...]:
        return tuple(self._opens.values())

    @property
    def trees(self) -> tuple[TreeConnectRow, ...]:
        return tuple(self._trees.values())

    def tree_connect(self, share: str, share_type: int = STYPE_IPC) -> TreeConnectRow:
        """A tree connect to ``share`` was made on this session (MS-SRVS §3.1.6.6): its row in the table's
        TreeConnectList, which counts toward the share's current uses."""
        table = self._table
        if table is None:
            raise ValueError("the session has left its table")
        return table._add_tree(self, share, share_type)

    def open(
        self,
        path: str,
        *,
        tree: TreeConnectRow | None = None,
        permissions: int = PERM_FILE_READ | PERM_FILE_WRITE,
        num_locks: int = 0,
        on_close: Callable[[OpenRow], object] | None = None,
    ) -> OpenRow:
        r"""An open (file or pipe, ``path`` as NetrFileEnum shows it: ``\PIPE\srvsvc``) was made on this
        session, on ``tree`` if given (MS-SRVS §3.1.6.4). ``on_close(open)`` is how NetrFileClose reaches
        the owner (MS-SMB2 §3.3.4.17), after the row has left the table; None: the open cannot be closed
        from outside, and NetrFileClose just forgets it."""
        table = self._table
        if table is None:
            raise ValueError("the session has left its table")
        if tree is not None and tree.session is not self:
            raise ValueError("the tree connect belongs to another session")
        return table._add_open(self, tree, path, permissions, num_locks, on_close)

    def touch(self) -> None:
        """A request arrived on this session: idle time restarts from zero."""
        self.last_active_at = self._clock()

    def remove(self) -> None:
        """The owner ended the session (logoff, disconnect, or its on_close). Idempotent; no callback."""
        table = self._table
        if table is not None:
            table._discard(self)

    def info(self) -> SESSION_INFO_502:
        """The SESSION_INFO_502 source record as of now (MS-SMB2 §3.3.4.18)."""
        return self._info_at(self._clock())

    def _record(self, now: float, level: int) -> SessionInfo:
        """``project(self._info_at(now), level)``, without the 502 record in between for the levels
        that need little of it (an enumeration of 10,000 rows is this, 10,000 times)."""
        if level == 10:
            active, idle = _seconds(now - self.created_at), _seconds(now - self.last_active_at)
            return SESSION_INFO_10(self.cname, self.username, active, idle)
        if level == 0:
            return SESSION_INFO_0(self.cname)
        return project(self._info_at(now), level)

    def _info_at(self, now: float) -> SESSION_INFO_502:
        return SESSION_INFO_502(
            self.cname,
            self.username,
            len(self._opens),
            _seconds(now - self.created_at),
            _seconds(now - self.last_active_at),
            self.user_flags,
            self.cltype_name,
            self.transport,
        )


class TreeConnectRow:
    r"""One tree connect (MS-SRVS §3.1.1.5, MS-SMB2 §3.3.4.19): a row of TreeConnectList, hung off its
    session. The SMB layer that made it calls :meth:`remove` when it is disconnected.

    >>> table = SessionTable(clock=lambda: 0.0)
    >>> s = table.add("10.0.0.7", "carol", on_close=lambda s: s.remove())
    >>> tree = s.tree_connect("IPC$"); _ = s.open("\\PIPE\\srvsvc", tree=tree)
    >>> info = tree.info(r"\\10.0.0.7")
    >>> info.coni1_id, info.coni1_type, info.coni1_num_opens, info.coni1_username, info.coni1_netname
    (1, 3, 1, 'carol', '\\\\10.0.0.7')
    """

    __slots__ = ("_opens", "_table", "created_at", "session", "share", "share_type", "tree_id")

    def __init__(
        self, table: SessionTable, tree_id: int, session: Session, share: str, share_type: int, now: float
    ) -> None:
        self.tree_id = tree_id  # MS-SRVS §3.1.1.5 GlobalTreeConnectId
        self.session = session
        self.share = share
        self.share_type = share_type
        self.created_at = now  # MS-SMB2 TreeConnect.CreationTime
        self._opens: dict[int, OpenRow] = {}
        self._table: SessionTable | None = table

    def __repr__(self) -> str:
        return f"<TreeConnect {self.tree_id} {self.share!r} of session {self.session.session_id}>"

    @property
    def active(self) -> bool:
        return self._table is not None

    @property
    def num_opens(self) -> int:
        """MS-SMB2 TreeConnect.OpenCount."""
        return len(self._opens)

    def remove(self) -> None:
        """The tree was disconnected (MS-SRVS §3.1.6.7); its opens still in the table leave with it.
        Idempotent."""
        table = self._table
        if table is not None:
            table._discard_tree(self)

    def info(self, netname: str) -> CONNECTION_INFO_1:
        """CONNECTION_INFO_1 as of now, with ``netname`` (the share or the client, MS-SRVS §2.2.4.2)."""
        table = self._table
        now = self.created_at if table is None else table._clock()
        return CONNECTION_INFO_1(
            self.tree_id, self.share_type, len(self._opens), 1, _seconds(now - self.created_at),
            self.session.username, netname,
        )


class OpenRow:
    r"""One open of a file or pipe (MS-SRVS §3.1.1.6, MS-SMB2 §3.3.4.20): a row of FileList, hung off
    its session (and its tree). The owner calls :meth:`remove` when the open is closed;
    NetrFileClose removes the row first and then calls ``on_close(row)``, for the owner to close it.

    >>> table = SessionTable(clock=lambda: 0.0)
    >>> s = table.add("10.0.0.7", "carol", on_close=lambda s: s.remove())
    >>> s.open("\\PIPE\\srvsvc").info()[:4]
    (1, 3, 0, '\\PIPE\\srvsvc')
    """

    __slots__ = (
        "_path_key", "_table", "file_id", "num_locks", "on_close", "path", "permissions", "session", "tree",
    )

    def __init__(
        self,
        table: SessionTable,
        file_id: int,
        session: Session,
        tree: TreeConnectRow | None,
        path: str,
        permissions: int,
        num_locks: int,
        on_close: Callable[[OpenRow], object] | None,
    ) -> None:
        self.file_id = file_id  # MS-SRVS §3.1.1.6 GlobalFileId
        self.session = session
        self.tree = tree
        self.path = path
        self.permissions = permissions
        self.num_locks = num_locks
        self.on_close = on_close
        self._path_key = _fold(path)
        self._table: SessionTable | None = table

    def __repr__(self) -> str:
        return f"<Open {self.file_id} {self.path!r} of session {self.session.session_id}>"

    @property
    def active(self) -> bool:
        return self._table is not None

    def remove(self) -> None:
        """The open was closed (MS-SRVS §3.1.6.5). Idempotent; no callback."""
        table = self._table
        if table is not None:
            table._discard_open(self)

    def info(self) -> FILE_INFO_3:
        """The FILE_INFO_3 source record (MS-SMB2 §3.3.4.20)."""
        return FILE_INFO_3(
            self.file_id, self.permissions, self.num_locks, self.path, self.session.username
        )


def _under(path_key: str, base_key: str) -> bool:
    r"""``base`` is a prefix of ``path`` "up to a backslash" (MS-SRVS §3.1.4.2): the whole path, or its
    components up to one; ``\PIPE`` is under ``\PIPE\srvsvc``, ``\PI`` is not."""
    base_key = base_key.rstrip("\\")
    if not base_key:
        return True
    return path_key == base_key or path_key.startswith(base_key + "\\")


def paginate(
    rows: Sequence[Any],
    accept: Callable[[Any], bool],
    view: Callable[[Any], tuple[Any, ...]],
    level: int,
    preferred_max_length: int,
    resume_handle: int | None,
) -> ListResult:
    """Paging exactly as NetrSessionEnum's (table docstring): the resume handle is a position in ``rows``
    (the list in creation order), qualifiers apply after it, whole entries only."""
    n = len(rows)
    start = 0 if resume_handle is None else resume_handle & _DWORD_MAX
    end_handle = None if resume_handle is None else n
    if start >= n:
        return ListResult(NERR_Success, level, (), 0, end_handle)
    positions = [i for i in range(start, n) if accept(rows[i])]
    total = len(positions)
    budget = preferred_max_length & _DWORD_MAX
    if budget == MAX_PREFERRED_LENGTH:
        return ListResult(NERR_Success, level, tuple(view(rows[i]) for i in positions), total, end_handle)
    entries: list[Any] = []
    used = 0
    last = -1
    for i in positions:
        entry = view(rows[i])
        used += ndr_size(entry)
        if used > budget:
            break
        entries.append(entry)
        last = i
    if total and not entries:
        return ListResult(NERR_BufTooSmall, level, (), total, resume_handle)
    if len(entries) < total:
        return ListResult(
            ERROR_MORE_DATA, level, tuple(entries), total, None if resume_handle is None else last + 1
        )
    return ListResult(NERR_Success, level, tuple(entries), total, end_handle)


class SessionTable:
    """MS-SRVS §3.1.1.1 SessionList plus the NetrSessionEnum / NetrSessionDel processing rules.

    Sessions are listed in creation order; a ResumeHandle is a position in that list. The ordered list
    and, per (client, user) filter, the positions that pass it are cached until the table changes, so
    paging costs O(entries returned + log n) per call, not O(n).

    >>> table = SessionTable(policy=AccessPolicy.HARDENED, clock=lambda: 0.0)
    >>> _ = table.add("10.0.0.5", "alice", on_close=lambda s: s.remove())
    >>> user = Caller("alice", frozenset({"Users"}))
    >>> table.enumerate(user, None, None, 10, MAX_PREFERRED_LENGTH, 0).fault
    5
    >>> table.enumerate(user, None, None, 1, MAX_PREFERRED_LENGTH, 0).status.name
    'ERROR_ACCESS_DENIED'
    """

    def __init__(
        self, policy: AccessPolicy = AccessPolicy.CLASSIC, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._sessions: dict[int, Session] = {}  # insertion (= creation) order
        self._next_id = 1
        self._synthetic = 0  # how many rows are synthetic
        self._list: list[Session] | None = None
        self._matches: dict[tuple[str | None, str | None], list[int]] = {}
        # MS-SRVS §3.1.1.1 FileList and TreeConnectList, in creation order; ids are DWORDs, unique
        # among the live rows.
        self._files: dict[int, OpenRow] = {}
        self._tree_connects: dict[int, TreeConnectRow] = {}
        self._next_file_id = 1
        self._next_tree_id = 1
        self._uses: dict[str, int] = {}  # folded share name -> tree connects to it (Share.CurrentUses)

    @property
    def policy(self) -> AccessPolicy:
        return self._policy

    @property
    def clock(self) -> Callable[[], float]:
        """The clock rows are timed with (seconds, monotonic by default)."""
        return self._clock

    @property
    def synthetic_count(self) -> int:
        """How many rows are synthetic (decoys)."""
        return self._synthetic

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        """Sessions in list (creation) order; a snapshot, so sessions may come and go meanwhile."""
        return iter(self._ordered())

    def get(self, session_id: int) -> Session | None:
        """The session with this GlobalSessionId, if it is still in the table."""
        return self._sessions.get(session_id)

    # -- the SMB layer's side ------------------------------------------------------------------------

    def add(
        self,
        cname: str,
        username: str,
        *,
        user_flags: int = 0,
        cltype_name: str = "",
        transport: str = DEFAULT_TRANSPORT,
        on_close: Callable[[Session], object],
        synthetic: bool = False,
        created_at: float | None = None,
    ) -> Session:
        """Register an established session (MS-SRVS §3.1.6.2) and return its row.

        ``cname`` is the client address or name (stored via :func:`unc_client_name`); ``user_flags`` holds
        SESS_GUEST for guest logons; ``on_close(session)`` is called when NetrSessionDel removes the
        session, after it has left the table: the owner then closes its opens and trees and tears the
        SMB session down (MS-SMB2 §3.3.4.12). ``synthetic`` marks a decoy row (it behaves as any other);
        ``created_at`` backdates a row (a decoy that "has been connected" for a while).
        """
        if not 0 <= user_flags <= _DWORD_MAX:
            raise ValueError(f"user_flags is a DWORD: {user_flags}")
        session = Session(
            self, self._next_id, unc_client_name(cname), username, user_flags, cltype_name, transport,
            on_close, self._clock() if created_at is None else created_at, synthetic,
        )
        self._synthetic += synthetic
        self._next_id += 1
        self._sessions[session.session_id] = session
        self._changed()
        return session

    def _discard(self, session: Session) -> None:
        # MS-SRVS §3.1.6.3: remove it from SessionList; its opens and trees go with it.
        for open_ in list(session._opens.values()):
            self._discard_open(open_)
        for tree in list(session._trees.values()):
            self._discard_tree(tree)
        del self._sessions[session.session_id]
        self._synthetic -= session.synthetic
        session._table = None
        self._changed()

    @staticmethod
    def _free_id(rows: dict[int, Any], candidate: int) -> int:
        """The first DWORD id from ``candidate`` on (wrapping, never 0) that no live row holds."""
        while True:
            if candidate > _DWORD_MAX:
                candidate = 1
            if candidate not in rows:
                return candidate
            candidate += 1

    def _add_tree(self, session: Session, share: str, share_type: int) -> TreeConnectRow:
        # MS-SRVS §3.1.6.6.
        tree_id = self._free_id(self._tree_connects, self._next_tree_id)
        self._next_tree_id = tree_id + 1
        tree = TreeConnectRow(self, tree_id, session, share, share_type, self._clock())
        self._tree_connects[tree_id] = tree
        session._trees[tree_id] = tree
        key = _fold(share)
        self._uses[key] = self._uses.get(key, 0) + 1
        return tree

    def _discard_tree(self, tree: TreeConnectRow) -> None:
        # MS-SRVS §3.1.6.7.
        for open_ in list(tree._opens.values()):
            self._discard_open(open_)
        del self._tree_connects[tree.tree_id]
        tree.session._trees.pop(tree.tree_id, None)
        tree._table = None
        key = _fold(tree.share)
        left = self._uses[key] - 1
        if left:
            self._uses[key] = left
        else:
            del self._uses[key]

    def _add_open(
        self,
        session: Session,
        tree: TreeConnectRow | None,
        path: str,
        permissions: int,
        num_locks: int,
        on_close: Callable[[OpenRow], object] | None,
    ) -> OpenRow:
        # MS-SRVS §3.1.6.4.
        if tree is not None and not tree.active:
            raise ValueError("the tree connect has left the table")
        file_id = self._free_id(self._files, self._next_file_id)
        self._next_file_id = file_id + 1
        open_ = OpenRow(self, file_id, session, tree, path, permissions, num_locks, on_close)
        self._files[file_id] = open_
        session._opens[file_id] = open_
        if tree is not None:
            tree._opens[file_id] = open_
        return open_

    def _discard_open(self, open_: OpenRow) -> None:
        # MS-SRVS §3.1.6.5.
        del self._files[open_.file_id]
        open_.session._opens.pop(open_.file_id, None)
        if open_.tree is not None:
            open_.tree._opens.pop(open_.file_id, None)
        open_._table = None

    def _changed(self) -> None:
        self._list = None
        self._matches.clear()

    def _ordered(self) -> list[Session]:
        lst = self._list
        if lst is None:
            lst = self._list = list(self._sessions.values())
        return lst

    def _positions(self, client_key: str | None, user_key: str | None) -> list[int]:
        """Positions in the list of the sessions passing the filters (cached until the table changes)."""
        key = (client_key, user_key)
        found = self._matches.get(key)
        if found is None:
            found = [
                i for i, s in enumerate(self._ordered())
                if (client_key is None or s._cname_key == client_key)
                and (user_key is None or s._user_key == user_key)
            ]
            if len(self._matches) >= _FILTER_CACHE_SIZE:
                del self._matches[next(iter(self._matches))]
            self._matches[key] = found
        return found

    # -- the srvsvc side -----------------------------------------------------------------------------

    def _refuse(
        self, caller: Caller, level: int, policy: AccessPolicy | None = None
    ) -> tuple[NetApiStatus, int | None] | None:
        """Access check for enumerating at ``level``: None if allowed, else (status, fault)."""
        if caller.is_operator:
            return None
        if (policy or self._policy) is AccessPolicy.HARDENED:
            # The hardened server refuses before the call runs: a fault PDU, status 5, at every level
            # (FACTS.md §3: "a refused caller").
            return ERROR_ACCESS_DENIED, int(ERROR_ACCESS_DENIED)
        if level in _PRIVILEGED_LEVELS:
            return ERROR_ACCESS_DENIED, None  # MS-SRVS note <53>: a stub status
        if not caller.authenticated:
            return ERROR_ACCESS_DENIED, None
        return None

    def enumerate(
        self,
        caller: Caller,
        client: str | None,
        user: str | None,
        level: int,
        preferred_max_length: int,
        resume_handle: int | None,
        policy: AccessPolicy | None = None,
    ) -> EnumResult:
        r"""NetrSessionEnum (MS-SRVS §3.1.4.5). ``client`` / ``user`` of None or "" do not filter.
        ``policy`` overrides the table's access policy for this call (a listener's personality).

        Checks in this order: level (ERROR_INVALID_LEVEL), access, ClientName without ``\\``
        (NERR_InvalidComputer), over-long names (ERROR_INVALID_PARAMETER). ``preferred_max_length`` is a
        DWORD (-1 reads as MAX_PREFERRED_LENGTH); each entry counts ``records.ndr_size(entry)`` bytes.
        """

        def fail(status: NetApiStatus, fault: int | None = None) -> EnumResult:
            return EnumResult(status, level, (), 0, resume_handle, fault)

        if level not in SESSION_LEVELS:
            return fail(ERROR_INVALID_LEVEL)
        refused = self._refuse(caller, level, policy)
        if refused is not None:
            return fail(*refused)
        client = client or None
        user = user or None
        if client is not None and not client.startswith(_UNC_PREFIX):
            return fail(NERR_InvalidComputer)
        if _too_long(client) or _too_long(user):
            return fail(ERROR_INVALID_PARAMETER)

        lst = self._ordered()
        n = len(lst)
        start = 0 if resume_handle is None else resume_handle & _DWORD_MAX
        if start >= n and start != 0:
            # A nonzero handle at or past the end: success, nothing (even with filters).
            return EnumResult(NERR_Success, level, (), 0, None if resume_handle is None else n)

        client_key = None if client is None else _fold(client)
        user_key = None if user is None else _fold(user)
        positions: Sequence[int]
        if client_key is None and user_key is None:
            positions, first = range(n), start
        else:
            positions = self._positions(client_key, user_key)
            first = bisect_left(positions, start)
        total = len(positions) - first
        if total == 0:
            if client_key is None and user_key is None:
                return EnumResult(NERR_Success, level, (), 0, None if resume_handle is None else n)
            if client_key is not None:
                with_client = self._positions(client_key, None)
                if len(with_client) == bisect_left(with_client, start):
                    return fail(NERR_ClientNameNotFound)
            return fail(NERR_UserNotFound)

        now = self._clock()
        budget = preferred_max_length & _DWORD_MAX
        entries: list[SessionInfo]
        if budget == MAX_PREFERRED_LENGTH:
            entries = [lst[positions[j]]._record(now, level) for j in range(first, len(positions))]
            return EnumResult(
                NERR_Success, level, tuple(entries), total, None if resume_handle is None else n,
                synthetic=self._synthetic_in(lst, positions, first, len(entries)),
            )
        entries = []
        used = 0
        last = -1
        for j in range(first, len(positions)):
            entry = lst[positions[j]]._record(now, level)
            used += ndr_size(entry)
            if used > budget:
                break
            entries.append(entry)
            last = positions[j]
        if not entries:
            return EnumResult(NERR_BufTooSmall, level, (), total, resume_handle)
        if len(entries) < total:
            # "continue with this enumeration on a subsequent call": start right after `last`.
            return EnumResult(
                ERROR_MORE_DATA, level, tuple(entries), total, None if resume_handle is None else last + 1,
                synthetic=self._synthetic_in(lst, positions, first, len(entries)),
            )
        return EnumResult(
            NERR_Success, level, tuple(entries), total, None if resume_handle is None else n,
            synthetic=self._synthetic_in(lst, positions, first, len(entries)),
        )

    def _synthetic_in(self, lst: list[Session], positions: Sequence[int], first: int, count: int) -> int:
        """How many of the ``count`` rows from ``positions[first]`` on are synthetic (0 if the table has
        none)."""
        if not self._synthetic:
            return 0
        return sum(lst[positions[j]].synthetic for j in range(first, first + count))

    def get_info(
        self, caller: Caller, client: str | None, user: str | None, level: int,
        policy: AccessPolicy | None = None,
    ) -> GetInfoResult:
        """NetSessionGetInfo: NetrSessionEnum with both filters, MAX_PREFERRED_LENGTH and no resume handle
        (FACTS.md §1), returning the first match. Levels 0, 1, 2, 10 only; both names required."""
        if level not in GETINFO_LEVELS:
            return GetInfoResult(ERROR_INVALID_LEVEL, None)
        refused = self._refuse(caller, level, policy)
        if refused is not None:
            return GetInfoResult(refused[0], None, refused[1])
        if not client or not user:
            return GetInfoResult(ERROR_INVALID_PARAMETER, None)
        result = self.enumerate(caller, client, user, level, MAX_PREFERRED_LENGTH, None, policy)
        if result.status != NERR_Success:
            return GetInfoResult(result.status, None, result.fault)
        return GetInfoResult(NERR_Success, result.entries[0])

    def delete(self, caller: Caller, client: str | None, user: str | None) -> DeleteResult:
        r"""NetrSessionDel (MS-SRVS §3.1.4.6): end every session matching the given filters.

        Checks in this order: access (ERROR_ACCESS_DENIED, a stub status under both policies), ClientName
        without ``\\`` (NERR_ClientNameNotFound), both names empty (ERROR_INVALID_PARAMETER), over-long
        names (ERROR_INVALID_PARAMETER), nothing matched (NERR_ClientNameNotFound).

        Every match leaves the table first (a later enumerate does not show it); then each one's
        ``on_close`` runs, in list order — the caller's own session may be among them. If callbacks raise,
        the rest still run and :class:`SessionCloseError` (an ExceptionGroup carrying ``.result``) is
        raised at the end.
        """
        if not caller.is_operator:
            return DeleteResult(ERROR_ACCESS_DENIED)  # MS-SRVS note <55>
        client = client or None
        user = user or None
        if client is not None and not client.startswith(_UNC_PREFIX):
            return DeleteResult(NERR_ClientNameNotFound)
        if client is None and user is None:
            return DeleteResult(ERROR_INVALID_PARAMETER)
        if _too_long(client) or _too_long(user):
            return DeleteResult(ERROR_INVALID_PARAMETER)
        lst = self._ordered()
        positions = self._positions(
            None if client is None else _fold(client), None if user is None else _fold(user)
        )
        if not positions:
            return DeleteResult(NERR_ClientNameNotFound)
        return self.close_sessions(tuple(lst[i] for i in positions))

    def close_sessions(self, closed: Sequence[Session]) -> DeleteResult:
        """End these rows as NetrSessionDel does: every one leaves the table, then each one's ``on_close``
        runs in order (:class:`SessionCloseError` at the end if some raised). NERR_Success."""
        closed = tuple(closed)
        for session in closed:
            session.remove()
        result = DeleteResult(NERR_Success, closed)
        errors: list[Exception] = []
        for session in closed:
            try:
                session.on_close(session)
            except Exception as exc:  # every owner must hear of its session's end
                errors.append(exc)
        if errors:
            raise SessionCloseError("on_close callbacks failed in NetrSessionDel", errors, result)
        return result

    # -- the session's neighbours: open files and tree connects ----------------------------------------

    def current_uses(self, share: str) -> int:
        """Tree connects to ``share`` (MS-SRVS §3.1.1.7 Share.CurrentUses), compared case-insensitively."""
        return self._uses.get(_fold(share), 0)

    def open_get(self, file_id: int) -> OpenRow | None:
        """The open with this GlobalFileId, if it is still in the table."""
        return self._files.get(file_id)

    def file_enum(
        self,
        caller: Caller,
        base_path: str | None,
        user: str | None,
        level: int,
        preferred_max_length: int,
        resume_handle: int | None,
    ) -> ListResult:
        r"""NetrFileEnum (MS-SRVS §3.1.4.2). ``base_path`` keeps the opens whose path it is a prefix of,
        up to a backslash (``\PIPE`` keeps ``\PIPE\srvsvc``); ``user`` the opens of that user; None or ""
        do not filter.

        Checks in this order: level (ERROR_INVALID_LEVEL), access (Administrators and Server Operators
        only, MS-SRVS note <47>: the stub status ERROR_ACCESS_DENIED under both policies), over-long
        qualifiers (ERROR_INVALID_PARAMETER). Qualifiers that match nothing give NERR_Success and no
        entries: MS-SRVS names no "not found" status for this method. Paging as NetrSessionEnum.
        """

        def fail(status: NetApiStatus) -> ListResult:
            return ListResult(status, level, (), 0, resume_handle)

        if level not in FILE_LEVELS:
            return fail(ERROR_INVALID_LEVEL)
        if not caller.is_operator:
            return fail(ERROR_ACCESS_DENIED)
        if _too_long(base_path) or _too_long(user):
            return fail(ERROR_INVALID_PARAMETER)
        base_key = _fold(base_path) if base_path else None
        user_key = _fold(user) if user else None

        def accept(open_: OpenRow) -> bool:
            return (base_key is None or _under(open_._path_key, base_key)) and (
                user_key is None or open_.session._user_key == user_key
            )

        return paginate(
            list(self._files.values()), accept, lambda o: project_file(o.info(), level), level,
            preferred_max_length, resume_handle,
        )

    def file_get_info(self, caller: Caller, file_id: int, level: int) -> FileInfoResult:
        """NetrFileGetInfo (MS-SRVS §3.1.4.3): level (ERROR_INVALID_LEVEL), access (note <49>), then the
        open (ERROR_FILE_NOT_FOUND)."""
        if level not in FILE_LEVELS:
            return FileInfoResult(ERROR_INVALID_LEVEL, None)
        if not caller.is_operator:
            return FileInfoResult(ERROR_ACCESS_DENIED, None)
        open_ = self._files.get(file_id & _DWORD_MAX)
        if open_ is None:
            return FileInfoResult(ERROR_FILE_NOT_FOUND, None)
        return FileInfoResult(NERR_Success, project_file(open_.info(), level))

    def file_close(self, caller: Caller, file_id: int) -> NetApiStatus:
        """NetrFileClose (MS-SRVS §3.1.4.4): access (note <51>), then the open (NERR_FileIdNotFound). The
        row leaves the table, then its ``on_close`` runs: the owner closes the open for real (MS-SMB2
        §3.3.4.17), so the client's next request on it fails. An exception from ``on_close`` propagates
        (the row is already gone)."""
        if not caller.is_operator:
            return ERROR_ACCESS_DENIED
        open_ = self._files.get(file_id & _DWORD_MAX)
        if open_ is None:
            return NERR_FileIdNotFound
        open_.remove()
        if open_.on_close is not None:
            open_.on_close(open_)
        return NERR_Success

    def connection_enum(
        self,
        caller: Caller,
        qualifier: str | None,
        level: int,
        preferred_max_length: int,
        resume_handle: int | None,
        shares: Sequence[str] = (),
    ) -> ListResult:
        r"""NetrConnectionEnum (MS-SRVS §3.1.4.1). ``qualifier`` is a share name (the trees to it, each
        coni1_netname the client's computer name) or ``\computer`` (the trees from that client, each
        coni1_netname the share's name); ``shares`` are the names of the server's shares.

        Checks in this order: level (ERROR_INVALID_LEVEL), access (Administrators and Server Operators,
        note <45>, a stub status), qualifier NULL, empty or longer than 1,024 characters
        (ERROR_INVALID_PARAMETER), a share qualifier naming no share (NERR_NetNameNotFound). A computer
        that has no trees gives NERR_Success and no entries. Paging as NetrSessionEnum.
        """

        def fail(status: NetApiStatus) -> ListResult:
            return ListResult(status, level, (), 0, resume_handle)

        if level not in CONNECTION_LEVELS:
            return fail(ERROR_INVALID_LEVEL)
        if not caller.is_operator:
            return fail(ERROR_ACCESS_DENIED)
        if not qualifier or _too_long(qualifier):
            return fail(ERROR_INVALID_PARAMETER)
        key = _fold(qualifier)
        if qualifier.startswith(_UNC_PREFIX):

            def accept(tree: TreeConnectRow) -> bool:
                return tree.session._cname_key == key

            def view(tree: TreeConnectRow) -> ConnectionInfo:
                return project_connection(tree.info(tree.share), level)

        else:
            if key not in {_fold(name) for name in shares}:
                return fail(NERR_NetNameNotFound)

            def accept(tree: TreeConnectRow) -> bool:
                return _fold(tree.share) == key

            def view(tree: TreeConnectRow) -> ConnectionInfo:
                return project_connection(tree.info(tree.session.cname[len(_UNC_PREFIX):]), level)

        return paginate(
            list(self._tree_connects.values()), accept, view, level, preferred_max_length, resume_handle
        )
