r"""The server's session table: the MS-SRVS rules for NetrSessionEnum / NetrSessionDel.

``SessionTable`` is the **SessionList** of MS-SRVS §3.1.1.1 joined with the per-session facts MS-SMB2
§3.3.4.18 reports. It does no I/O: the SMB layer adds a row when a session is established and keeps the
row up to date (``touch`` on every request, ``opened``/``closed`` per open, ``remove`` at logoff); the
srvsvc handler asks it ``enumerate`` / ``delete`` and marshals the result. Not thread-safe: one event loop
owns it.

>>> now = [0.0]
>>> table = SessionTable(clock=lambda: now[0])
>>> s = table.add("10.0.0.5", "alice", on_close=lambda s: s.remove())
>>> s.opened(); now[0] = 42.0
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
from typing import Self

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    NERR_BufTooSmall,
    NERR_ClientNameNotFound,
    NERR_InvalidComputer,
    NERR_Success,
    NERR_UserNotFound,
    NetApiStatus,
)
from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS
from netsession.records import (
    GETINFO_LEVELS,
    MAX_PREFERRED_LENGTH,
    SESSION_INFO_502,
    SESSION_LEVELS,
    SessionInfo,
    ndr_size,
    project,
)
from netsession.wire.ndr import utf16_units

__all__ = [
    "ADMIN_GROUPS",
    "DEFAULT_TRANSPORT",
    "MAX_NAME_LENGTH",
    "AccessPolicy",
    "Caller",
    "DeleteResult",
    "EnumResult",
    "GetInfoResult",
    "Session",
    "SessionCloseError",
    "SessionTable",
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
    return min(int(delta), _DWORD_MAX)


class Session:
    r"""One row of the table; the SMB layer that added it owns it and keeps it current.

    >>> now = [100.0]
    >>> table = SessionTable(clock=lambda: now[0])
    >>> s = table.add("10.0.0.7", "carol", on_close=lambda s: s.remove())
    >>> s.opened(); s.opened(); s.closed(); now[0] = 130.0; s.touch(); now[0] = 135.5
    >>> info = s.info()
    >>> info.sesi502_num_opens, info.sesi502_time, info.sesi502_idle_time, info.sesi502_transport
    (1, 35, 5, '\\Device\\NetbiosSmb')
    >>> s.remove(); s.active
    False
    """

    __slots__ = (
        "_clock",
        "_cname_key",
        "_num_opens",
        "_table",
        "_user_key",
        "cltype_name",
        "cname",
        "created_at",
        "last_active_at",
        "on_close",
        "session_id",
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
    ) -> None:
        self.session_id = session_id  # MS-SRVS §3.1.6.2 GlobalSessionId
        self.cname = cname
        self.username = username
        self.user_flags = user_flags
        self.cltype_name = cltype_name
        self.transport = transport
        self.on_close = on_close
        self.created_at = now  # MS-SMB2 Session.CreationTime
        self.last_active_at = now  # MS-SMB2 Session.IdleTime
        self._num_opens = 0
        self._table: SessionTable | None = table
        self._clock = table._clock
        self._cname_key = _fold(cname)
        self._user_key = _fold(username)

    def __repr__(self) -> str:
        return f"<Session {self.session_id} {self.cname} {self.username!r} opens={self._num_opens}>"

    @property
    def active(self) -> bool:
        """Still in its table."""
        return self._table is not None

    @property
    def num_opens(self) -> int:
        """Entries in the session's open table, files and named pipes (MS-SMB2 §3.3.4.18)."""
        return self._num_opens

    @num_opens.setter
    def num_opens(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"num_opens cannot be negative: {value}")
        self._num_opens = value

    def opened(self) -> None:
        """An open (file or pipe) was added to the session's open table."""
        self._num_opens += 1

    def closed(self) -> None:
        """An open left the session's open table. Never goes below zero."""
        if self._num_opens > 0:
            self._num_opens -= 1

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

    def _info_at(self, now: float) -> SESSION_INFO_502:
        return SESSION_INFO_502(
            self.cname,
            self.username,
            self._num_opens,
            _seconds(now - self.created_at),
            _seconds(now - self.last_active_at),
            self.user_flags,
            self.cltype_name,
            self.transport,
        )


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
        self._list: list[Session] | None = None
        self._matches: dict[tuple[str | None, str | None], list[int]] = {}

    @property
    def policy(self) -> AccessPolicy:
        return self._policy

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
    ) -> Session:
        """Register an established session (MS-SRVS §3.1.6.2) and return its row.

        ``cname`` is the client address or name (stored via :func:`unc_client_name`); ``user_flags`` holds
        SESS_GUEST for guest logons; ``on_close(session)`` is called when NetrSessionDel removes the
        session, after it has left the table: the owner then closes its opens and trees and tears the
        SMB session down (MS-SMB2 §3.3.4.12).
        """
        if not 0 <= user_flags <= _DWORD_MAX:
            raise ValueError(f"user_flags is a DWORD: {user_flags}")
        session = Session(
            self, self._next_id, unc_client_name(cname), username, user_flags, cltype_name, transport,
            on_close, self._clock(),
        )
        self._next_id += 1
        self._sessions[session.session_id] = session
        self._changed()
        return session

    def _discard(self, session: Session) -> None:
        # MS-SRVS §3.1.6.3: remove it from SessionList.
        del self._sessions[session.session_id]
        session._table = None
        self._changed()

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

    def _refuse(self, caller: Caller, level: int) -> tuple[NetApiStatus, int | None] | None:
        """Access check for enumerating at ``level``: None if allowed, else (status, fault)."""
        if caller.is_operator:
            return None
        if self._policy is AccessPolicy.HARDENED:
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
    ) -> EnumResult:
        r"""NetrSessionEnum (MS-SRVS §3.1.4.5). ``client`` / ``user`` of None or "" do not filter.

        Checks in this order: level (ERROR_INVALID_LEVEL), access, ClientName without ``\\``
        (NERR_InvalidComputer), over-long names (ERROR_INVALID_PARAMETER). ``preferred_max_length`` is a
        DWORD (-1 reads as MAX_PREFERRED_LENGTH); each entry counts ``records.ndr_size(entry)`` bytes.
        """

        def fail(status: NetApiStatus, fault: int | None = None) -> EnumResult:
            return EnumResult(status, level, (), 0, resume_handle, fault)

        if level not in SESSION_LEVELS:
            return fail(ERROR_INVALID_LEVEL)
        refused = self._refuse(caller, level)
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
        entries: list[SessionInfo] = []
        if budget == MAX_PREFERRED_LENGTH:
            for j in range(first, len(positions)):
                entries.append(project(lst[positions[j]]._info_at(now), level))
            return EnumResult(
                NERR_Success, level, tuple(entries), total, None if resume_handle is None else n
            )
        used = 0
        last = -1
        for j in range(first, len(positions)):
            entry = project(lst[positions[j]]._info_at(now), level)
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
                ERROR_MORE_DATA, level, tuple(entries), total, None if resume_handle is None else last + 1
            )
        return EnumResult(NERR_Success, level, tuple(entries), total, None if resume_handle is None else n)

    def get_info(self, caller: Caller, client: str | None, user: str | None, level: int) -> GetInfoResult:
        """NetSessionGetInfo: NetrSessionEnum with both filters, MAX_PREFERRED_LENGTH and no resume handle
        (FACTS.md §1), returning the first match. Levels 0, 1, 2, 10 only; both names required."""
        if level not in GETINFO_LEVELS:
            return GetInfoResult(ERROR_INVALID_LEVEL, None)
        refused = self._refuse(caller, level)
        if refused is not None:
            return GetInfoResult(refused[0], None, refused[1])
        if not client or not user:
            return GetInfoResult(ERROR_INVALID_PARAMETER, None)
        result = self.enumerate(caller, client, user, level, MAX_PREFERRED_LENGTH, None)
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
        closed = tuple(lst[i] for i in positions)
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
