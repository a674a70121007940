"""Samba's sessions as they are now: the three global databases and the kernel's TCP state, joined.

:class:`SambaState` reads, for one smbd (its ``lock directory``):

* ``smbXsrv_session_global.tdb`` — one row per authenticated session: global and wire ids, creation and
  authentication time, the user (account and domain names, user SID, uid), dialect, signing and
  encryption flags, and each channel's owning smbd process and addresses;
* ``smbXsrv_tcon_global.tdb`` — the tree connects, joined to the sessions by session id;
* ``smbXsrv_open_global.tdb`` — the opens, which carry no session id: they are counted per (smbd process,
  owner SID) and credited to the session of that user in that process, as smbstatus attributes opens by
  process and uid (two sessions of one user on one connection share the count);
* the kernel's ``tcpi_last_data_recv`` of each session's connection (:mod:`netsession.samba.sockdiag`).

A record that does not decode makes the whole read fail with :class:`SambaStateError` naming the file:
the bridge answers with a fault rather than with a partial list. Decoded records are cached by their
bytes, so an unchanged session costs a dictionary lookup on the next read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from netsession.samba.ndr import nttime_to_unix
from netsession.samba.smbxsrv import (
    Channel,
    OpenGlobal,
    TconGlobal,
    decode_open_global,
    decode_session_global,
    decode_tcon_global,
    strip_watchers,
)
from netsession.samba.sockdiag import Endpoint, last_data_recv, parse_tsocket_address
from netsession.samba.tdb import TdbError, read_records
from netsession.wire.ndr import NdrError

SESSION_DB = "smbXsrv_session_global.tdb"
TCON_DB = "smbXsrv_tcon_global.tdb"
OPEN_DB = "smbXsrv_open_global.tdb"
# MS-DTYP 2.4.2.4 well-known SIDs.
SID_ANONYMOUS = "S-1-5-7"
SID_AUTHENTICATED_USERS = "S-1-5-11"
SID_BUILTIN_GUESTS = "S-1-5-32-546"
DOMAIN_GUEST_RID = 501


class SambaStateError(Exception):
    """Samba's state could not be read; ``path`` is the database at fault."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SambaSession:
    """One authenticated SMB session of smbd, with what the bridge reports about it."""

    global_id: int
    wire_id: int
    creation_time: float  # Unix seconds (smbXsrv_session_global0.creation_time)
    creation_nttime: int  # the same, as smbd stored it (MSG_SMBXSRV_SESSION_CLOSE must repeat it)
    auth_time: float
    user: str  # auth_user_info.account_name
    domain: str
    user_sid: str  # the token's first SID
    uid: int | None
    guest: bool
    dialect: int
    signing_flags: int
    encryption_flags: int
    channels: tuple[Channel, ...]
    client_address: str  # the first channel's remote address, without port
    trees: tuple[tuple[int, str, float], ...]  # its tree connects: (tcon global id, share, connect time)
    opens: tuple[int, ...]  # the open global ids credited to it (see the module docstring)
    idle_ms: int | None  # least tcpi_last_data_recv over its channels' connections; None if not found

    @property
    def num_opens(self) -> int:
        return len(self.opens)

    @property
    def pid(self) -> int:
        """The smbd process of its first channel."""
        return self.channels[0].server_id.pid


def is_guest(sids: tuple[str, ...]) -> bool:
    if not sids or sids[0] == SID_ANONYMOUS:
        return True
    if SID_BUILTIN_GUESTS in sids or sids[0].endswith(f"-{DOMAIN_GUEST_RID}"):
        return True
    return SID_AUTHENTICATED_USERS not in sids


class SambaState:
    """Reads one smbd's sessions from ``lock_dir``. ``tcp_info`` gives the connections' receive ages
    (the kernel's, by default); it is a parameter so the join can be tested on its own."""

    def __init__(self, lock_dir: str, tcp_info: Callable[[], dict[Endpoint, int]] = last_data_recv) -> None:
        self.lock_dir = lock_dir
        self._tcp_info = tcp_info
        self._cache: dict[str, dict[bytes, object]] = {SESSION_DB: {}, TCON_DB: {}, OPEN_DB: {}}

    def path(self, name: str) -> str:
        return os.path.join(self.lock_dir, name)

    def _records(self, name: str, decode: Callable[[bytes], object | None]) -> list[object]:
        path = self.path(name)
        try:
            records = read_records(path)
        except TdbError as exc:
            raise SambaStateError(path, exc.reason) from None
        old = self._cache[name]
        new: dict[bytes, object] = {}
        out = []
        for key, value in records:
            item = old.get(value)
            if item is None:
                try:
                    item = decode(value)
                except NdrError as exc:
                    raise SambaStateError(path, f"record {key.hex()} does not decode: {exc}") from None
                if item is None:
                    continue
            new[value] = item
            out.append(item)
        self._cache[name] = new
        return out

    def sessions(self) -> list[SambaSession]:
        """Every authenticated session now, oldest first. Raises :class:`SambaStateError`."""
        globals_ = [
            g for g in self._records(SESSION_DB, _decode_session)
            if isinstance(g, _Prepared)
        ]
        tcons = [t for t in self._records(TCON_DB, decode_tcon_global) if isinstance(t, TconGlobal)]
        opens = [o for o in self._records(OPEN_DB, decode_open_global) if isinstance(o, OpenGlobal)]
        trees: dict[int, list[tuple[int, str, float]]] = {}
        for t in tcons:
            trees.setdefault(t.session_global_id, []).append(
                (t.tcon_global_id, t.share_name, nttime_to_unix(t.creation_time))
            )
        open_ids: dict[tuple[int, str], list[int]] = {}
        for o in opens:
            if o.disconnect_time == 0:
                open_ids.setdefault((o.server_id.pid, o.open_owner), []).append(o.open_global_id)
        tcp = self._tcp_info() if globals_ else {}
        out = []
        for p in globals_:
            idle: int | None = None
            for endpoint in p.endpoints:
                age = tcp.get(endpoint)
                if age is not None and (idle is None or age < idle):
                    idle = age
            out.append(replace(
                p.session,
                trees=tuple(trees.get(p.session.global_id, ())),
                opens=tuple(open_ids.get((p.session.pid, p.session.user_sid), ())),
                idle_ms=idle,
            ))
        out.sort(key=lambda s: (s.creation_time, s.global_id))
        return out


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a session record says once decoded (cached with its bytes): the row without the parts that
    change without the record changing (trees, opens, idle), and its connections' endpoints."""

    session: SambaSession
    endpoints: tuple[Endpoint, ...]


def _decode_session(value: bytes) -> _Prepared | None:
    g = decode_session_global(strip_watchers(value))
    if g is None or g.session_info is None:
        return None
    si = g.session_info
    sids = si.token.sids if si.token is not None else ()
    info = si.info
    user = (info.account_name if info is not None else None) or si.unix_name or ""
    domain = (info.domain_name if info is not None else None) or ""
    endpoints = []
    client = ""
    for ch in g.channels:
        local = parse_tsocket_address(ch.local_address)
        remote = parse_tsocket_address(ch.remote_address)
        if remote is not None and not client:
            client = remote[0]
        if local is not None and remote is not None:
            endpoints.append((local[0], local[1], remote[0], remote[1]))
    session = SambaSession(
        g.session_global_id, g.session_wire_id, nttime_to_unix(g.creation_time), g.creation_time,
        nttime_to_unix(g.auth_time), user, domain, sids[0] if sids else "",
        si.unix_token.uid if si.unix_token is not None else None, is_guest(sids),
        g.connection_dialect, g.signing_flags, g.encryption_flags, g.channels,
        client or g.channels[0].remote_name, (), (), None,
    )
    return _Prepared(session, tuple(endpoints))
