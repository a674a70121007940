"""Each attack of issue 9's table, replayed against the server's sans-I/O connections (the state a real
`netsession serve` runs on), with the bound checked structurally: bytes held, objects kept, passwords
checked. No sockets, no timing; the clock is a fake one where time matters."""

from __future__ import annotations

import random
import tracemalloc

import pytest
import spnego
from hostile_helpers import CountingStore
from smb2_harness import PASSWORDS, ClientSession, Smb2Harness

from netsession.server.app import NetsessionServer, ServerOptions
from netsession.server.pipes import SRVSVC_SYNTAX
from netsession.server.throttle import ThrottleSettings
from netsession.wire.dcerpc import ClientAssociation
from netsession.wire.smb2.connection import MAX_IN_PROGRESS_SESSIONS, PRE_LOGON_MAX_MESSAGE
from netsession.wire.smb2.constants import Dialect, FsctlCode, NtStatus
from netsession.wire.smb2.create import CreateRequest, FileId
from netsession.wire.smb2.messages import SessionSetupRequest, TreeConnectRequest
from netsession.wire.smb2.pipe_io import IoctlRequest, WriteRequest
from netsession.wire.smb2.state import MAX_OPENS_PER_SESSION, MAX_TREES_PER_SESSION
from netsession.wire.srvsvc import NetrSessionEnumRequest, Opnum


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def make_server(accounts: CountingStore, **options: object) -> NetsessionServer:
    return NetsessionServer(ServerOptions(name="FS1", **options), accounts, clock=Clock())  # type: ignore[arg-type]


def client_of(
    server: NetsessionServer, address: str = "10.0.0.5", dialect: int = Dialect.SMB_3_1_1
) -> Smb2Harness:
    return Smb2Harness.connected((dialect,), server=server.new_connection(address))


# -- row 2: unauthenticated connections holding partial frames --------------------------------------------


def test_an_unauthenticated_connection_holds_at_most_one_pre_logon_frame(accounts: CountingStore) -> None:
    server = make_server(accounts)
    held = []
    for i in range(1000):
        client = client_of(server, f"10.1.{i >> 8}.{i & 255}")
        # A frame header announcing just under the limit, and all of it but one byte.
        partial = PRE_LOGON_MAX_MESSAGE.to_bytes(4, "big") + bytes(PRE_LOGON_MAX_MESSAGE - 1)
        client.server.receive_data(partial)
        assert not client.server.closing
        held.append(client.server.buffered)
    assert max(held) <= PRE_LOGON_MAX_MESSAGE + 4
    assert sum(held) < 100 << 20  # the figure: 1,000 connections hold < 100 MB
    # What the old limit allowed (1 MiB + 4 KiB before any logon) now ends the connection at its header.
    client = client_of(server)
    client.server.receive_data((0x100000 + 0x1000).to_bytes(4, "big"))
    assert client.server.closing and client.server.buffered <= 4


# -- row 3: SESSION_SETUPs with SessionId 0 on one connection -------------------------------------------


def test_session_setups_with_session_id_zero_keep_a_few_contexts_only(accounts: CountingStore) -> None:
    server = make_server(accounts)
    client = client_of(server)
    token = spnego.client("alice", PASSWORDS["alice"], hostname="fs1", protocol="ntlm").step()
    assert token is not None
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        statuses: dict[int, int] = {}
        for _ in range(20_000):
            (reply,) = client.send(client.build(SessionSetupRequest(token), credits=1))
            statuses[reply.header.status] = statuses.get(reply.header.status, 0) + 1
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(client.server.sessions) == MAX_IN_PROGRESS_SESSIONS
    assert statuses[NtStatus.STATUS_INSUFFICIENT_RESOURCES] == 20_000 - MAX_IN_PROGRESS_SESSIONS
    assert now - base < 1 << 20  # the figure: one connection's in-progress setups < 1 MB


# -- rows 4 and 5: a plain user's opens, trees and unread replies -----------------------------------------


def _plain_user(server: NetsessionServer) -> tuple[Smb2Harness, ClientSession]:
    client = client_of(server)
    return client, client.logon("alice")


def test_opens_and_trees_per_session_are_bounded(accounts: CountingStore) -> None:
    server = make_server(accounts)
    client, session = _plain_user(server)
    tree = client.tree_connect(session)
    statuses = [
        client.request(CreateRequest("srvsvc"), session=session, tree=tree).header.status
        for _ in range(MAX_OPENS_PER_SESSION + 200)
    ]
    assert statuses.count(NtStatus.STATUS_SUCCESS) == MAX_OPENS_PER_SESSION
    assert set(statuses[MAX_OPENS_PER_SESSION:]) == {NtStatus.STATUS_INSUFFICIENT_RESOURCES}
    server_session = client.server.sessions[session.session_id]
    assert server_session.num_opens == MAX_OPENS_PER_SESSION
    trees = [
        client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session).header.status
        for _ in range(MAX_TREES_PER_SESSION + 50)
    ]
    assert len(server_session.trees) == MAX_TREES_PER_SESSION
    assert trees.count(NtStatus.STATUS_INSUFFICIENT_RESOURCES) == 51  # the first tree was there already


def _bind(client: Smb2Harness, session: ClientSession, tree: int, fid: FileId) -> int:
    rpc = ClientAssociation()
    rpc.bind(SRVSVC_SYNTAX)
    bind = b"".join(rpc.data_to_send())
    code = FsctlCode.FSCTL_PIPE_TRANSCEIVE
    request = IoctlRequest(code, fid, bind, max_output_response=4280)
    reply = client.request(request, session=session, tree=tree)
    return reply.header.status


def test_unread_replies_of_one_account_are_bounded_across_its_pipes(accounts: CountingStore) -> None:
    # The attack: many opens, each sent calls it never reads the answers of. One budget for the account.
    limit = 4 << 20
    server = make_server(accounts, max_unread_per_account=limit)
    for i in range(300):  # a table whose level-1 answer is ~25 kB
        server.table.add(f"10.2.{i >> 8}.{i & 255}", f"user{i}", on_close=lambda row: None)
    client, session = _plain_user(server)
    tree = client.tree_connect(session)
    statuses: dict[int, int] = {}
    for _ in range(30):
        fid = client.open_pipe(session, tree)
        if _bind(client, session, tree, fid) != NtStatus.STATUS_SUCCESS:
            statuses[NtStatus.STATUS_PIPE_BUSY] = statuses.get(NtStatus.STATUS_PIPE_BUSY, 0) + 1
            continue  # the account's budget is spent: even a bind's answer is refused
        for call_id in range(2, 200):
            # A request PDU written raw (call ids advance; no read ever drains the replies).
            pdu = _request_pdu(call_id, NetrSessionEnumRequest(level=10).encode())
            status = client.request(WriteRequest(fid, pdu), session=session, tree=tree).header.status
            statuses[status] = statuses.get(status, 0) + 1
            if status == NtStatus.STATUS_PIPE_BUSY:
                break
    budget = server._unread["alice"]
    assert statuses.get(NtStatus.STATUS_PIPE_BUSY, 0) >= 1
    largest_reply = 64 << 10
    assert budget.used <= limit + largest_reply


def _request_pdu(call_id: int, stub: bytes) -> bytes:
    """A one-fragment DCE/RPC request for NetrSessionEnum on context 0 (C706 §12.6.4.9)."""
    from netsession.wire.dcerpc import Request

    return Request(call_id=call_id, context_id=0, opnum=Opnum.NetrSessionEnum, stub=stub).encode()


# -- row 8: brute force -------------------------------------------------------------------------------------


def _guess(client: Smb2Harness, password: str) -> int | None:
    """One NTLM logon attempt; its final status, or None if the server is holding it back."""
    ntlm = spnego.client("admin", password, hostname="fs1", protocol="ntlm")
    token = ntlm.step()
    session_id = 0
    while True:
        assert token is not None
        draft = ClientSession(session_id)
        message = client.build(SessionSetupRequest(token), session=draft if session_id else None, sign=False)
        replies = client.send(message)
        if not replies:
            return None
        (reply,) = replies
        if reply.header.status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
            return reply.header.status
        session_id = reply.header.session_id
        token = ntlm.step(reply.body.security_buffer)  # type: ignore[union-attr]


def test_one_source_gets_at_most_one_password_check_per_delay(accounts: CountingStore) -> None:
    # 20 connections from one address guess as fast as they are let, for 60 simulated seconds. Every
    # password check is an account lookup; they are what is counted.
    settings = ThrottleSettings(delay=2.0, free_failures=5)
    server = make_server(accounts, throttle=settings)
    clock: Clock = server.throttle._clock  # type: ignore[assignment]
    clients = [client_of(server, "10.9.9.9", Dialect.SMB_2_1) for _ in range(20)]
    before = accounts.lookups
    start = clock.now
    while clock.now < start + 60:
        for client in clients:
            conn = client.server
            if conn.wait_seconds:
                continue
            _guess(client, f"guess{random.random()}")
        clock.now += 0.25
        for client in clients:  # the driver's timers: what waited its time is resumed
            if client.server.wait_seconds:
                client.server.resume()
                client.server.data_to_send()
    checks = accounts.lookups - before
    assert checks <= settings.free_failures + 60 / settings.delay + 1
    # Meanwhile the owner, on another address, logs on at once (no lockout was asked for).
    owner = client_of(server, "10.0.0.20", Dialect.SMB_2_1)
    assert owner.logon("admin").session_id


def test_every_password_check_is_audited(accounts: CountingStore) -> None:
    from netsession.server.audit import AuditTrail, LogonEvent

    events: list[object] = []

    class Sink:
        def emit(self, event: object) -> None:
            events.append(event)

        def close(self) -> None:
            return

    server = NetsessionServer(
        ServerOptions(name="FS1", throttle=ThrottleSettings(delay=0.0)), accounts,  # type: ignore[arg-type]
        audit=AuditTrail([Sink()]),
    )
    client = client_of(server, "10.9.9.9", Dialect.SMB_2_1)
    for i in range(50):
        assert _guess(client, f"wrong{i}") == NtStatus.STATUS_LOGON_FAILURE
    assert _guess(client, PASSWORDS["admin"]) == NtStatus.STATUS_SUCCESS
    logons = [e for e in events if isinstance(e, LogonEvent)]
    assert [e.success for e in logons] == [False] * 50 + [True]
    assert {e.client_address for e in logons} == {"10.9.9.9"}


# -- the churn: clients logging on, off and dropping while enumerations run ---------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_churn_leaves_no_row_behind(accounts: CountingStore, seed: int) -> None:
    rng = random.Random(seed)
    server = make_server(accounts, throttle=ThrottleSettings(delay=0.0))
    admin = client_of(server, "10.0.0.1")
    admin_session = admin.logon("admin")
    tree = admin.tree_connect(admin_session)
    fid = admin.open_pipe(admin_session, tree)
    assert _bind(admin, admin_session, tree, fid) == NtStatus.STATUS_SUCCESS
    live: list[tuple[Smb2Harness, ClientSession]] = []
    for step in range(400):
        action = rng.random()
        if action < 0.4 or not live:
            client = client_of(server, f"10.3.{step >> 8}.{step & 255}", Dialect.SMB_2_1)
            live.append((client, client.logon(rng.choice(["alice", "bob"]))))
        elif action < 0.6:
            client, session = live.pop(rng.randrange(len(live)))
            from netsession.wire.smb2.messages import LogoffRequest

            client.request(LogoffRequest(), session=session)
        elif action < 0.8:
            client, _ = live.pop(rng.randrange(len(live)))
            client.server.connection_lost()  # dropped without a word
        else:
            pdu = _request_pdu(step + 2, NetrSessionEnumRequest(level=10).encode())
            code = FsctlCode.FSCTL_PIPE_TRANSCEIVE
            reply = admin.request(
                IoctlRequest(code, fid, pdu, max_output_response=0x10000), session=admin_session, tree=tree
            )
            assert reply.header.status in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BUFFER_OVERFLOW)
        assert len(server.table) == len(live) + 1  # every live session, the admin's, nothing else
    for client, _ in live:
        client.server.connection_lost()
    admin.server.connection_lost()
    assert len(server.table) == 0 and not server.sessions and not server._unread


def test_opens_of_one_account_are_bounded_across_sessions_and_connections(accounts: CountingStore) -> None:
    server = make_server(accounts, max_opens_per_account=10)
    statuses = []
    for address in ("10.0.0.5", "10.0.0.6", "10.0.0.7"):
        client = client_of(server, address)
        session = client.logon("alice")
        tree = client.tree_connect(session)
        for _ in range(8):
            statuses.append(client.request(CreateRequest("srvsvc"), session=session, tree=tree).header.status)
    assert statuses.count(NtStatus.STATUS_SUCCESS) == 10
    assert statuses.count(NtStatus.STATUS_INSUFFICIENT_RESOURCES) == 14


def test_sessions_of_one_account_are_bounded_across_connections(accounts: CountingStore) -> None:
    from netsession.wire.smb2.messages import LogoffRequest

    server = make_server(accounts, max_sessions_per_account=5)
    clients = [client_of(server, f"10.0.0.{n}") for n in (5, 6, 7)]
    held = [clients[i % 3].logon("alice") for i in range(5)]
    for client in clients:  # a sixth on any connection is refused, and leaves nothing behind
        client.logon("alice", expect=NtStatus.STATUS_INSUFFICIENT_RESOURCES)
    assert sum(1 for row in server.table if row.username == "alice") == 5
    assert len(server.sessions) == 5
    assert clients[0].logon("bob").session_id  # another account is not held back
    reply = clients[0].request(LogoffRequest(), session=held[0])
    assert reply.status == NtStatus.STATUS_SUCCESS
    assert clients[2].logon("alice").session_id  # a session that ended makes room
    for client in clients:
        client.server.connection_lost()
    assert len(server.table) == 0 and not server._sessions_of


def test_a_logon_refused_for_too_many_sessions_is_not_a_password_guess(accounts: CountingStore) -> None:
    server = make_server(
        accounts, max_sessions_per_account=1, throttle=ThrottleSettings(delay=0.0, lockout_threshold=2)
    )
    client = client_of(server)
    client.logon("alice")
    for _ in range(4):
        client.logon("alice", expect=NtStatus.STATUS_INSUFFICIENT_RESOURCES)
    assert not server.throttle.locked_out("alice")
