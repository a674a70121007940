"""The netsession server's state: one session table, the srvsvc service, the accounts, and the SMB
backend that ties every authenticated SMB session to its row in the table.

:class:`NetsessionServer` is the :class:`~netsession.wire.smb2.connection.Backend` of every SMB
connection: it adds a row when a session is established, touches it on each request, adds a tree row
for each tree connect and an open row for each pipe open (the table's TreeConnectList and FileList),
removes each when it ends — and, when NetrSessionDel or NetrFileClose hands a row back, ends that SMB
session or closes that open for real through its connection. The asyncio listeners
(:mod:`netsession.server.listener`) drive it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from netsession.groups import ADMINISTRATORS, USERS
from netsession.records import SESS_GUEST
from netsession.server.accounts import AccountStore
from netsession.server.audit import AuditTrail, LogonEvent, LogSink
from netsession.server.pipes import RpcEndpoint, RpcPipe
from netsession.server.srvsvc import CallContext, ServerIdentity, SessionPersonality, SrvsvcService, Transport
from netsession.server.throttle import LogonThrottle, ThrottleSettings
from netsession.table import STYPE_IPC, AccessPolicy, Caller, OpenRow, SessionTable, TreeConnectRow
from netsession.table import Session as TableRow
from netsession.wire.smb2.auth import Authenticator, Identity, NtlmAuthenticator
from netsession.wire.smb2.connection import ServerConfig, ServerConnection, Session
from netsession.wire.smb2.constants import NtStatus
from netsession.wire.smb2.logons import LogonAttempt
from netsession.wire.smb2.state import Open, OutOfResources, TreeConnect
from netsession.wire.srvsvc import SRVSVC_PIPE

log = logging.getLogger("netsession.server")

# 100-ns intervals between 1601-01-01 and 1970-01-01 (MS-DTYP §2.3.3 FILETIME).
_FILETIME_EPOCH = 116444736000000000


def filetime_now() -> int:
    return _FILETIME_EPOCH + time.time_ns() // 100


@dataclass
class ServerOptions:
    """What `netsession serve` is told."""

    name: str = field(default_factory=lambda: socket.gethostname().split(".")[0].upper()[:15] or "NETSESSION")
    policy: AccessPolicy = AccessPolicy.CLASSIC
    allow_guest: bool = False
    require_signing: bool = True
    encrypt_data: bool = False
    max_connections: int = 16384
    idle_timeout: float = 900.0  # seconds without a byte before a connection is dropped (Windows: 15 min)
    # Seconds an unauthenticated connection has to finish NEGOTIATE and its first logon (see listener).
    logon_timeout: float = 30.0
    # Connections on the local Unix socket, in all and per uid (other than root and the server's own).
    max_local_connections: int = 256
    max_local_connections_per_uid: int = 16
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    # What all the pipes of one account may hold of unread replies, across its sessions and connections.
    max_unread_per_account: int = 64 << 20
    # Pipe opens of one account over all its sessions and connections (each holds an RPC association).
    max_opens_per_account: int = 2048
    # Sessions of one account over all its connections (guest and anonymous are one account each): what
    # one set of credentials can make the table hold.
    max_sessions_per_account: int = 4096
    # A keytab: Kerberos logons beside NTLM (netsession.server.kerberos); None: NTLM only.
    keytab: str | None = None


def _status_name(status: int) -> str:
    try:
        return NtStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


class UnreadBudget:
    """Unread pipe output shared by every pipe of one account (``used`` bytes of ``limit``)."""

    __slots__ = ("limit", "pipes", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.pipes = 0


class Extension(Protocol):
    """Something that runs beside the listeners (decoys' control socket, metrics): started once every
    listener is up, stopped before they close."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServerObserver:
    """What the drivers tell about traffic (counted by ``serve --metrics``); this one ignores it all."""

    def connection_opened(self, listener: str) -> None: ...

    def connection_closed(self, listener: str) -> None: ...

    def connection_rejected(self, listener: str, reason: str) -> None: ...

    def received(self, listener: str, n: int) -> None: ...

    def sent(self, listener: str, n: int) -> None: ...

    def limit_hit(self, limit: str) -> None: ...


def caller_of(identity: Identity) -> Caller:
    """The srvsvc caller for an SMB logon: guests and anonymous are not authenticated users."""
    return Caller(identity.user, identity.groups, not (identity.is_guest or identity.is_anonymous))


class NetsessionServer:
    """The server's state and the SMB backend. ``on_connection_changed(conn)`` is the driver's hook:
    called when something outside a connection's own traffic (NetrSessionDel from another client) has
    queued output for it or decided it must close."""

    def __init__(
        self,
        options: ServerOptions,
        accounts: AccountStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        audit: AuditTrail | None = None,
    ) -> None:
        self.options = options
        self.accounts = accounts
        self.audit = audit if audit is not None else AuditTrail([LogSink()])
        self.table = SessionTable(options.policy, clock=clock)
        # The transports it listens on (MS-SRVS §3.1.1.2 TransportList), by their listener label.
        self._listening: dict[str, None] = {}
        self.service = SrvsvcService(
            self.table, ServerIdentity(options.name, transports=self.transports), audit=self.audit
        )
        self.throttle = LogonThrottle(options.throttle, clock=clock)
        ntlm = NtlmAuthenticator(
            accounts, server_name=options.name, entropy=os.urandom, clock=time.time,
            # Issue and Windows alike: guest and anonymous (null session) logons together, or neither.
            allow_guest=options.allow_guest,
            allow_anonymous=options.allow_guest,
            locked_out=self.throttle.locked_out,
        )
        self.authenticator: Authenticator = ntlm
        if options.keytab is not None:
            from netsession.server.kerberos import NegotiateAuthenticator

            self.authenticator = NegotiateAuthenticator(ntlm, options.keytab, accounts)
        # Established SMB sessions by SessionId, for PreviousSessionId (MS-SMB2 §3.3.5.5.3).
        self.sessions: dict[int, Session] = {}
        # Unread pipe output per account (casefolded user name): one budget across all its pipes.
        self._unread: dict[str, UnreadBudget] = {}
        # Established sessions per account (casefolded user name), against max_sessions_per_account.
        self._sessions_of: dict[str, int] = {}
        self.smb_config = ServerConfig(
            require_signing=options.require_signing, encrypt_data=options.encrypt_data
        )
        self.on_connection_changed: Callable[[ServerConnection], None] = lambda conn: None
        # Per listener (HOST:PORT as given to --listen): the personality its srvsvc answers with (None: the
        # table's own rules under options.policy); see netsession.decoy.personality.
        self.personalities: dict[str, SessionPersonality] = {}
        self.default_personality: SessionPersonality | None = None
        self.extensions: list[Extension] = []
        self.observer: ServerObserver = ServerObserver()
        self._listener_of: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()
        self._port_of: weakref.WeakKeyDictionary[ServerConnection, int] = weakref.WeakKeyDictionary()
        self._smb_sessions: dict[int, Session] = {}  # table row id -> its SMB session
        self.service.peers_of = self._peers_of

    def new_connection(
        self, client_address: str, *, listener: str = "", client_port: int = 0
    ) -> ServerConnection:
        conn = ServerConnection(
            self.smb_config, self.authenticator, self, client_address=client_address, clock=filetime_now,
            logons=self,
        )
        if listener:
            self._listener_of[conn] = listener
        if client_port:
            self._port_of[conn] = client_port
        return conn

    def _peers_of(self, row: TableRow) -> Sequence[TableRow]:
        """The rows of every session on ``row``'s connection (a decoy row is alone)."""
        session = self._smb_sessions.get(row.session_id)
        if session is None:
            return (row,)
        peers: list[Any] = [s.owner for s in session.connection.sessions.values() if s.owner is not None]
        return peers or (row,)

    # -- LogonPolicy (netsession.wire.smb2.logons) --------------------------------------------------------

    def admission_delay(self, connection: ServerConnection) -> float:
        return self.throttle.admission_delay(connection.client_address)

    def logon_finished(
        self, connection: ServerConnection, attempt: LogonAttempt, session: Session | None
    ) -> float:
        identity = attempt.identity
        delay = 0.0
        if attempt.success:
            if identity is not None and not (identity.is_guest or identity.is_anonymous):
                self.throttle.succeeded(identity.user)
            if attempt.previous_session_id and session is not None:
                self._end_previous(attempt.previous_session_id, session)
        elif identity is None:
            # A password that did not check out (or a locked account): the throttle's business. A logon
            # refused after its credentials were verified (encryption demanded, too many sessions of the
            # account) carries its identity and is no guess.
            locked = attempt.status == NtStatus.STATUS_ACCOUNT_LOCKED_OUT
            delay = self.throttle.failed(attempt.client_address, attempt.user, count_for_account=not locked)
        self.audit.emit(
            LogonEvent(
                client_address=attempt.client_address,
                success=attempt.success,
                status=_status_name(attempt.status),
                user=attempt.user,
                domain=attempt.domain,
                workstation=attempt.workstation,
                account=identity.user if identity is not None else "",
                session_id=attempt.session_id,
                reauthentication=attempt.reauthentication,
                guest=bool(identity and identity.is_guest),
                anonymous=bool(identity and identity.is_anonymous),
                reason=attempt.reason,
                delay=delay,
            )
        )
        return delay

    def _end_previous(self, previous_id: int, session: Session) -> None:
        """MS-SMB2 §3.3.5.5.3: PreviousSessionId names the session a reconnecting client had; if it is the
        same user's, it is torn down (its opens closed, its row gone)."""
        old = self.sessions.get(previous_id)
        if old is None or old is session or old.identity is None or session.identity is None:
            return
        if old.identity.user.casefold() != session.identity.user.casefold():
            return
        log.info("session %#x replaced by %#x (PreviousSessionId)", previous_id, session.session_id)
        old.connection.close_session(previous_id)
        if old.connection is not session.connection:
            self.on_connection_changed(old.connection)

    # -- the transports (NetrServerTransportEnum) ------------------------------------------------------

    def listening(self, label: str) -> None:
        """The driver listens on ``label`` (``HOST:PORT``): a transport of NetrServerTransportEnum."""
        self._listening[label] = None

    def transports(self) -> list[Transport]:
        """Each listener with the connections it has now (svti*_numberofvcs)."""
        counts = dict.fromkeys(self._listening, 0)
        for conn, label in list(self._listener_of.items()):
            if not conn.closing:
                counts[label] = counts.get(label, 0) + 1
        return [Transport(label, n) for label, n in counts.items()]

    # -- Backend -------------------------------------------------------------------------------------

    def session_established(self, session: Session) -> None:
        identity = session.identity
        assert identity is not None
        account = identity.user.casefold()
        held = self._sessions_of.get(account, 0)
        if held >= self.options.max_sessions_per_account:
            raise OutOfResources(f"{held} sessions of {identity.user or '(anonymous)'} already")
        self._sessions_of[account] = held + 1
        # MS-SMB2 §3.3.4.18: cname is the client's address (the table writes it \\a.b.c.d / \\[v6]).
        session.owner = self.table.add(
            session.client_address,
            identity.user,
            user_flags=SESS_GUEST if identity.is_guest else 0,
            on_close=lambda row: self._end_deleted(session),
        )
        self._smb_sessions[session.owner.session_id] = session
        self.sessions[session.session_id] = session
        log.info(
            "session %#x established: %s from %s", session.session_id, identity.principal or "(anonymous)",
            session.client_address,
        )

    def session_active(self, session: Session) -> None:
        row: TableRow | None = session.owner
        if row is not None:
            row.touch()

    def session_ended(self, session: Session) -> None:
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]
        if session.identity is not None:
            account = session.identity.user.casefold()
            left = self._sessions_of.get(account, 0) - 1
            if left > 0:
                self._sessions_of[account] = left
            else:
                self._sessions_of.pop(account, None)
        row: TableRow | None = session.owner
        if row is not None:
            row.remove()
            self._smb_sessions.pop(row.session_id, None)
            # The row's on_close closure holds the session: without this link cut, every ended session
            # (and its connection, keys, buffers) would wait for the cyclic garbage collector.
            session.owner = None
        log.info("session %#x ended (%s)", session.session_id, session.client_address)

    def open_pipe(self, session: Session, name: str) -> RpcPipe | None:
        if name.casefold() != SRVSVC_PIPE or session.identity is None:
            return None
        listener = self._listener_of.get(session.connection, "")
        personality = self.personalities.get(listener, self.default_personality)
        identity = session.identity
        context = CallContext(
            caller_of(identity), session.client_address, personality, listener,
            {
                "caller_domain": identity.domain,
                "client_user": identity.client_user,
                "client_domain": identity.client_domain,
                "workstation": identity.workstation,
                "client_port": self._port_of.get(session.connection, 0),
                "caller_admin": caller_of(identity).is_operator,
                "personality": personality.name if personality is not None else (
                    "windows-hardened" if self.options.policy is AccessPolicy.HARDENED else "windows"
                ),
            },
        )
        key = session.identity.user.casefold()
        budget = self._unread.get(key)
        if budget is None:
            budget = self._unread[key] = UnreadBudget(self.options.max_unread_per_account)
        if budget.pipes >= self.options.max_opens_per_account:
            raise OutOfResources(f"{budget.pipes} pipes open for {session.identity.user}")

        def closed() -> None:
            budget.pipes -= 1
            if not budget.pipes and self._unread.get(key) is budget:
                del self._unread[key]

        budget.pipes += 1
        return RpcPipe(RpcEndpoint(self.service, context), on_close=closed, budget=budget)

    def tree_connected(self, session: Session, tree: TreeConnect) -> None:
        row: TableRow | None = session.owner
        if row is not None and row.active:
            tree.owner = row.tree_connect(tree.share, STYPE_IPC)

    def tree_disconnected(self, tree: TreeConnect) -> None:
        row: TreeConnectRow | None = tree.owner
        if row is not None:
            row.remove()
            tree.owner = None

    def pipe_opened(self, session: Session, open_: Open) -> None:
        # MS-SMB2 §3.3.4.20: fi3_pathname is Open.PathName, which Windows shows as \PIPE\<name>.
        tree: TreeConnectRow | None = open_.tree.owner
        row: TableRow | None = session.owner
        if row is None or not row.active or tree is None or not tree.active:
            return
        connection = session.connection
        open_.owner = row.open(
            "\\PIPE\\" + open_.name, tree=tree,
            on_close=lambda _row: self._close_open(connection, open_),
        )

    def pipe_closed(self, open_: Open) -> None:
        row: OpenRow | None = open_.owner
        if row is not None:
            row.remove()
            # The row's on_close closure holds the open (and its connection): cut the cycle.
            open_.owner = None

    def _close_open(self, connection: ServerConnection, open_: Open) -> None:
        """NetrFileClose chose this open: close it in its connection (MS-SMB2 §3.3.4.17)."""
        log.info("open %s closed by NetrFileClose (%s)", open_.name, connection.client_address)
        connection.ipc.close_open(open_)

    def _end_deleted(self, session: Session) -> None:
        """NetrSessionDel chose this session: end it in its connection (MS-SRVS §3.1.4.6)."""
        log.info("session %#x deleted by NetrSessionDel (%s)", session.session_id, session.client_address)
        session.connection.close_session(session.session_id)
        self.on_connection_changed(session.connection)

    # -- the local computer (ncalrpc) ----------------------------------------------------------------

    def local_caller(self, uid: int) -> Caller:
        """FACTS/issue: root or the server's own user is an administrator; anyone else an authenticated
        user."""
        try:
            import pwd

            user = pwd.getpwuid(uid).pw_name
        except (ImportError, KeyError):
            user = f"uid{uid}"
        if uid in (0, os.geteuid()):
            return Caller(user, frozenset({ADMINISTRATORS}))
        return Caller(user, frozenset({USERS}))
