"""Samba's sessions as rows of netsession's :class:`~netsession.table.SessionTable`.

:class:`SambaFeed` keeps one table row per authenticated smbd session (keyed by the session's global
id), so srvsvc's whole rule set — levels, filters, paging with a resume handle, the access policy,
NetrSessionDel — runs unchanged over them. :meth:`SambaFeed.refresh` reads Samba's state and reconciles:
new sessions become rows in creation order (so a resume handle keeps its meaning between calls), rows of
ended sessions leave, and every row's fields are set from what smbd and the kernel report:

========================  =====================================================================
row field                 source
========================  =====================================================================
cname                     the first channel's remote address (``smbXsrv_channel_global0``)
username                  ``auth_user_info.account_name`` of the session's ``auth_session_info``
num_opens                 one open row per ``smbXsrv_open_global.tdb`` entry of the session's smbd
                          process and user SID (not disconnected durable handles); files and pipes.
                          Samba keeps no path there, so these rows have an empty path and
                          NetrFileClose cannot close them (the next refresh shows them again)
trees                     one tree row per ``smbXsrv_tcon_global.tdb`` entry of the session
time (created_at)         ``smbXsrv_session_global0.creation_time``
idle_time                 ``tcpi_last_data_recv`` of the channels' TCP connections (the newest);
                          0 when no connection is found
user_flags                SESS_GUEST for guest and anonymous tokens
========================  =====================================================================

The table's clock is wall time (``time.time``), the clock Samba's NTTIMEs count in.

NetrSessionDel removes the matching rows, and each row's ``on_close`` asks its smbd process to end that
session (:class:`~netsession.samba.messaging.Messenger`). Until smbd has done so, a refresh keeps the
session out of the table; a session still in Samba's database ``close_timeout`` seconds later is ended
with ``MSG_SHUTDOWN`` to its process — Samba's own NetSessDel behaviour, as the last resort.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from netsession.records import SESS_GUEST
from netsession.samba.messaging import Messenger
from netsession.samba.state import SambaSession, SambaState
from netsession.table import OpenRow, Session, SessionTable, TreeConnectRow
from netsession.wire.srvsvc import STYPE_DISKTREE, STYPE_IPC

log = logging.getLogger("netsession.samba")

# How long smbd gets to end a session after MSG_SMBXSRV_SESSION_CLOSE before the process is shut down.
CLOSE_TIMEOUT = 5.0


class SambaFeed:
    """Keeps ``table`` equal to smbd's sessions. ``clock`` must be the table's clock (wall time)."""

    def __init__(
        self,
        table: SessionTable,
        state: SambaState,
        messenger: Messenger,
        *,
        clock: Callable[[], float] = time.time,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.table = table
        self.state = state
        self.messenger = messenger
        self._clock = clock
        self.close_timeout = close_timeout
        self._rows: dict[int, Session] = {}  # global id -> row
        self._gid_of: dict[int, int] = {}  # row's table id -> global id
        self._samba: dict[int, SambaSession] = {}
        self._closing: dict[int, float] = {}  # global id -> when NetrSessionDel asked
        self._trees: dict[int, dict[int, TreeConnectRow]] = {}  # global id -> tcon id -> row
        self._opens: dict[int, dict[int, OpenRow]] = {}  # global id -> open id -> row

    def refresh(self) -> list[SambaSession]:
        """Read Samba's sessions and bring the table up to date; returns them. Raises
        :class:`~netsession.samba.state.SambaStateError` (the table is then left as it was)."""
        sessions = self.state.sessions()
        now = self._clock()
        live = {s.global_id: s for s in sessions}
        for gid in list(self._rows):
            if gid not in live:
                row = self._rows.pop(gid)
                self._gid_of.pop(row.session_id, None)
                row.remove()
                self._samba.pop(gid, None)
                self._trees.pop(gid, None)
                self._opens.pop(gid, None)
        for gid, asked in list(self._closing.items()):
            session = live.get(gid)
            if session is None:
                del self._closing[gid]
            elif now - asked > self.close_timeout:
                log.warning(
                    "session %d of %s did not end after MSG_SMBXSRV_SESSION_CLOSE; shutting down smbd %d",
                    gid, session.user, session.pid,
                )
                self._send(functools.partial(self.messenger.shutdown, session.channels[0].server_id))
                self._closing[gid] = now  # ask again later if even that did not end it
        for session in sessions:
            gid = session.global_id
            if gid in self._closing:
                continue
            existing = self._rows.get(gid)
            if existing is not None:
                row = existing
            else:
                row = self.table.add(
                    session.client_address,
                    session.user,
                    user_flags=SESS_GUEST if session.guest else 0,
                    on_close=self._on_close,
                )
                self._rows[gid] = row
                self._gid_of[row.session_id] = gid
            self._samba[gid] = session
            row.created_at = session.creation_time
            idle = 0.0 if session.idle_ms is None else session.idle_ms / 1000.0
            row.last_active_at = max(session.creation_time, now - idle)
            self._sync_children(gid, row, session)
        return sessions

    def _sync_children(self, gid: int, row: Session, session: SambaSession) -> None:
        """The session's tree and open rows, made equal to Samba's."""
        trees = self._trees.setdefault(gid, {})
        live_trees = {tcon_id: (share, created) for tcon_id, share, created in session.trees}
        for tcon_id in [t for t in trees if t not in live_trees]:
            trees.pop(tcon_id).remove()
        for tcon_id, (share, created) in live_trees.items():
            if tcon_id not in trees:
                share_type = STYPE_IPC if share.casefold() == "ipc$" else STYPE_DISKTREE
                tree = row.tree_connect(share, share_type)
                tree.created_at = created
                trees[tcon_id] = tree
        opens = self._opens.setdefault(gid, {})
        live_opens = set(session.opens)
        for open_id in [o for o in opens if o not in live_opens]:
            opens.pop(open_id).remove()
        for open_id in session.opens:
            if open_id not in opens:
                opens[open_id] = row.open("")

    def _send(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:  # the process has gone: its sessions end with it
            log.info("could not message smbd: %s", exc)

    def _on_close(self, row: Session) -> None:
        """NetrSessionDel took ``row`` out of the table: ask its smbd to end that session."""
        gid = self._gid_of.pop(row.session_id, None)
        if gid is None:
            return
        del self._rows[gid]
        self._trees.pop(gid, None)
        self._opens.pop(gid, None)
        session = self._samba.pop(gid)
        self._closing[gid] = self._clock()
        log.info("ending session %d of %s\\%s from %s (smbd %d)", gid, session.domain, session.user,
                 session.client_address, session.pid)
        channel = session.channels[0]
        self._send(lambda: self.messenger.close_session(
            channel.server_id, session.global_id, session.wire_id, session.creation_nttime
        ))
