r"""Personalities: how one listener answers NetrSessionEnum / NetrSessionDel over the one session table.

A personality is a policy object the srvsvc service consults (:class:`~netsession.server.srvsvc.
SessionPersonality`); every row — a real SMB session, a decoy — stays a row of the same
:class:`~netsession.table.SessionTable`. One process can so stand in for a Windows server, a hardened one
and a Samba smbd, each on its own port (``--listen 127.0.0.1:4445=samba-4.17``).

* ``windows`` — the classic rules (MS-SRVS §3.1.4.5/§3.1.4.6, FACTS.md §3): levels 0 and 10 for every
  authenticated user, 1, 2, 502 and deletion for Administrators and Server Operators.
* ``windows-hardened`` — Windows 10 1607 / Server 2019 and NetCease: every level for those groups only, a
  refused enumeration is a DCE/RPC fault, status 5.
* ``samba-4.17`` — what Samba 4.17's smbd answers (``source3/rpc_server/srvsvc/srv_srvsvc_nt.c``,
  FACTS.md §6, checked against a real smbd in ``tests/interop/test_personality_samba.py``):

  - NetSessEnum needs BUILTIN\Administrators (Server Operators are refused) *before* the level is looked
    at; then only levels 0 and 1 exist (2, 10, 502: ERROR_INVALID_LEVEL);
  - ClientName, UserName and PreferedMaximumLength are ignored: every session from the resume position
    on, TotalEntries the whole list; the resume handle comes back as the list size (0 if it was already
    at or past the end, or if the list is empty);
  - cname is the bare address (no ``\\``, no IPv6 brackets); idle_time is always 0; num_opens counts
    open *files* only (a pipe is not one); user_flags is 1 for the guest account;
  - ``time`` is ``(uint32)(time(NULL) - nt_time_to_unix(creation))``: ``now`` truncated, the creation time
    rounded to the nearest second, so a session younger than half a second whose creation fell in the
    second half of a second reads 0xFFFFFFFF;
  - NetSessDel: only root or Domain Admins (here: Administrators); leading ``\\`` stripped from the
    client; a match needs the client name (a user name, if given, must match too); no match is
    ERROR_ACCESS_DENIED, not NERR_ClientNameNotFound; each match's whole smbd process goes — every
    session on that client's connection, the caller's own included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from netsession.errors import ERROR_ACCESS_DENIED, ERROR_INVALID_LEVEL, NERR_Success
from netsession.groups import ADMINISTRATORS
from netsession.records import SESS_GUEST, SESSION_INFO_0, SESSION_INFO_1, SessionInfo
from netsession.server.srvsvc import SessionPersonality
from netsession.table import AccessPolicy, Caller, DeleteResult, EnumResult, Session, SessionTable
from netsession.wire.srvsvc import NetrSessionDelRequest, NetrSessionEnumRequest

__all__ = [
    "DEFAULT_PERSONALITY",
    "PERSONALITIES",
    "SambaPersonality",
    "UnknownPersonality",
    "WindowsPersonality",
    "personality",
    "split_listen",
]

_DWORD = 0xFFFFFFFF
# Samba 4.17: _srvsvc_NetSessEnum's switch has these two arms only.
SAMBA_SESSION_LEVELS: Final = frozenset((0, 1))


class UnknownPersonality(ValueError):
    """A personality name no listener can have."""


@dataclass(frozen=True, slots=True)
class WindowsPersonality:
    """The table's own MS-SRVS rules, with the access policy of this kind of Windows."""

    name: str
    policy: AccessPolicy

    def session_enum(self, table: SessionTable, caller: Caller, req: NetrSessionEnumRequest) -> EnumResult:
        return table.enumerate(
            caller, req.client_name, req.user_name, req.level, req.preferred_max_length, req.resume_handle,
            self.policy,
        )

    def session_del(
        self,
        table: SessionTable,
        caller: Caller,
        req: NetrSessionDelRequest,
        peers_of: Callable[[Session], Sequence[Session]],
    ) -> DeleteResult:
        return table.delete(caller, req.client_name, req.user_name)


def _in_administrators(caller: Caller) -> bool:
    """BUILTIN\\Administrators (Samba's nt_token_check_sid(S-1-5-32-544)); Server Operators are not."""
    if not caller.authenticated:
        return False
    key = ADMINISTRATORS.casefold()
    return any(g.casefold().removeprefix("builtin\\") == key for g in caller.groups)


def samba_cname(cname: str) -> str:
    r"""The remote_machine Samba shows for an SMB2 client: its address, no ``\\``, no brackets.

    >>> samba_cname("\\\\10.0.0.5"), samba_cname("\\\\[::1]"), samba_cname("\\\\WS01")
    ('10.0.0.5', '::1', 'WS01')
    """
    name = cname.removeprefix("\\\\")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name


def _files(row: Session) -> int:
    """Samba's num_open: share mode entries, i.e. open files; a ``\\PIPE\\`` open is not one."""
    return sum(1 for o in row.opens if not o.path.upper().startswith("\\PIPE\\"))


def _nt_time_to_unix(t: float) -> int:
    # Samba's convert_timespec_to_time_t: up when the fraction is above one half.
    whole = math.floor(t)
    return whole + 1 if t - whole > 0.5 else whole


def samba_connect_time(now: float, created_at: float) -> int:
    """``(uint32_t)(now - connect_start)`` with Samba's roundings (see the module docstring).

    >>> samba_connect_time(100.9, 100.6), samba_connect_time(130.2, 100.6), samba_connect_time(100.9, 100.4)
    (4294967295, 29, 0)
    """
    return (math.floor(now) - _nt_time_to_unix(created_at)) & _DWORD


@dataclass(frozen=True, slots=True)
class SambaPersonality:
    """Samba 4.17 smbd's srvsvc session calls (see the module docstring)."""

    name: str = "samba-4.17"

    def session_enum(self, table: SessionTable, caller: Caller, req: NetrSessionEnumRequest) -> EnumResult:
        level = req.level
        if not _in_administrators(caller):
            return EnumResult(ERROR_ACCESS_DENIED, level, (), 0, req.resume_handle)
        if level not in SAMBA_SESSION_LEVELS:
            return EnumResult(ERROR_INVALID_LEVEL, level, (), 0, req.resume_handle)
        rows = list(table)
        total = len(rows)
        start = req.resume_handle or 0
        if start >= total:
            return EnumResult(NERR_Success, level, (), total, None if req.resume_handle is None else 0)
        now = table.clock()
        entries: list[SessionInfo] = []
        synthetic = 0
        for row in rows[start:]:
            synthetic += row.synthetic
            cname = samba_cname(row.cname)
            if level == 0:
                entries.append(SESSION_INFO_0(cname))
            else:
                entries.append(SESSION_INFO_1(
                    cname,
                    row.username,
                    _files(row),
                    samba_connect_time(now, row.created_at),
                    0,
                    SESS_GUEST if row.user_flags & SESS_GUEST else 0,
                ))
        resume = None if req.resume_handle is None else total
        return EnumResult(NERR_Success, level, tuple(entries), total, resume, synthetic=synthetic)

    def session_del(
        self,
        table: SessionTable,
        caller: Caller,
        req: NetrSessionDelRequest,
        peers_of: Callable[[Session], Sequence[Session]],
    ) -> DeleteResult:
        if not _in_administrators(caller):
            return DeleteResult(ERROR_ACCESS_DENIED)
        if req.client_name is None:
            return DeleteResult(ERROR_ACCESS_DENIED)  # strequal(remote_machine, NULL) never holds
        machine = req.client_name.removeprefix("\\\\").casefold()
        user = (req.user_name or "").casefold()
        matched = [
            row for row in table
            if samba_cname(row.cname).casefold() == machine and (not user or row.username.casefold() == user)
        ]
        if not matched:
            return DeleteResult(ERROR_ACCESS_DENIED)  # werr starts as WERR_ACCESS_DENIED
        doomed: dict[int, Session] = {}
        for row in matched:
            for peer in peers_of(row):  # MSG_SHUTDOWN: the client's whole smbd process
                if peer.active:
                    doomed.setdefault(peer.session_id, peer)
        return table.close_sessions(list(doomed.values()))


PERSONALITIES: Final[dict[str, SessionPersonality]] = {
    "windows": WindowsPersonality("windows", AccessPolicy.CLASSIC),
    "windows-hardened": WindowsPersonality("windows-hardened", AccessPolicy.HARDENED),
    "samba-4.17": SambaPersonality(),
}
DEFAULT_PERSONALITY: Final = "windows"
# The access policy names of `serve --policy` and the personality each stands for.
POLICY_PERSONALITY: Final = {AccessPolicy.CLASSIC: "windows", AccessPolicy.HARDENED: "windows-hardened"}


def personality(name: str) -> SessionPersonality:
    """The personality called ``name`` (case-insensitive); :class:`UnknownPersonality` otherwise.

    >>> personality("Samba-4.17").name
    'samba-4.17'
    """
    found = PERSONALITIES.get(name.strip().lower())
    if found is None:
        raise UnknownPersonality(f"unknown personality {name!r} (choose from {', '.join(PERSONALITIES)})")
    return found


def split_listen(value: str) -> tuple[str, str | None]:
    """``ADDR:PORT[=PERSONALITY]`` -> (``ADDR:PORT``, personality name or None).

    >>> split_listen("127.0.0.1:4445=samba-4.17"), split_listen("[::1]:4445")
    (('127.0.0.1:4445', 'samba-4.17'), ('[::1]:4445', None))
    """
    address, sep, name = value.partition("=")
    if sep and not name:
        raise UnknownPersonality(f"empty personality in {value!r}")
    return address, (name if sep else None)
