"""Samba's sessions as rows of the session table: the state read from TDB files (written here with
libtdb itself), the feed's reconciliation, NetrSessionDel's messages, the caller from the token, and the
fault when Samba's state cannot be read."""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from samba_vectors import ChannelSpec, Identity, open_global, session_global, tcon_global

from netsession.errors import ERROR_ACCESS_DENIED, NERR_ClientNameNotFound, NERR_Success
from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS
from netsession.records import MAX_PREFERRED_LENGTH
from netsession.samba import tdb
from netsession.samba.feed import SambaFeed
from netsession.samba.ndr import NTTIME_TICKS, NTTIME_UNIX_EPOCH
from netsession.samba.service import RPC_S_CALL_FAILED, BridgeSrvsvcService, caller_groups
from netsession.samba.smbxsrv import ServerId
from netsession.samba.state import OPEN_DB, SESSION_DB, TCON_DB, SambaSession, SambaState, SambaStateError
from netsession.server.srvsvc import CallContext, ServerIdentity
from netsession.table import AccessPolicy, Caller, SessionTable
from netsession.wire.srvsvc import NetrSessionEnumRequest, NetrSessionEnumResponse, Opnum

ADMIN = Caller("admin", frozenset({ADMINISTRATORS}))
T0 = 1_800_000_000.0


def nttime(unix: float) -> int:
    return int(unix * NTTIME_TICKS) + NTTIME_UNIX_EPOCH


class _Data(ctypes.Structure):
    _fields_ = (("dptr", ctypes.c_char_p), ("dsize", ctypes.c_size_t))


def write_tdb(path: Path, records: dict[bytes, bytes]) -> None:
    """A TDB file written with libtdb (tests only: the bridge itself never writes)."""
    lib = tdb._libtdb()
    lib.tdb_store.argtypes = (ctypes.c_void_p, _Data, _Data, ctypes.c_int)
    handle = lib.tdb_open(os.fsencode(path), 0, 0, os.O_RDWR | os.O_CREAT, 0o600)
    assert handle
    try:
        for key, value in records.items():
            assert lib.tdb_store(handle, _Data(key, len(key)), _Data(value, len(value)), 0) == 0
    finally:
        lib.tdb_close(handle)


def samba_dir(tmp_path: Path, sessions: dict[int, bytes], tcons: dict[int, bytes] | None = None,
              opens: dict[int, bytes] | None = None) -> Path:
    write_tdb(tmp_path / SESSION_DB, {struct.pack(">I", k): v for k, v in sessions.items()})
    write_tdb(tmp_path / TCON_DB, {struct.pack(">I", k): v for k, v in (tcons or {}).items()})
    write_tdb(tmp_path / OPEN_DB, {struct.pack(">I", k): v for k, v in (opens or {}).items()})
    return tmp_path


ALICE = Identity()
BOB = Identity(account="bob", sids=("S-1-5-21-1-2-3-1002", "S-1-5-11"), uid=10003)


def test_state_joins_sessions_trees_opens_and_tcp(tmp_path: Path) -> None:
    d = samba_dir(
        tmp_path,
        {
            1: session_global(1, ALICE, [ChannelSpec(10, remote="ipv4:127.0.0.2:5000")], creation=nttime(T0)),
            2: session_global(
                2, BOB, [ChannelSpec(11, remote="ipv4:127.0.0.3:5001")], creation=nttime(T0 + 5)
            ),
            3: session_global(3, None, [ChannelSpec(pid=12)]),  # not yet authenticated: not listed
        },
        {1: tcon_global(1, 1, "IPC$", 10), 2: tcon_global(2, 1, "share", 10)},
        {
            1: open_global(1, ALICE.sids[0], 10),
            2: open_global(2, ALICE.sids[0], 10),
            3: open_global(3, ALICE.sids[0], 10, disconnected=True),  # a durable handle left behind
            4: open_global(4, ALICE.sids[0], 11),  # another process
        },
    )
    tcp = {("127.0.0.1", 445, "127.0.0.2", 5000): 4200}
    sessions = SambaState(str(d), tcp_info=lambda: tcp).sessions()
    assert [s.user for s in sessions] == ["alice", "bob"]  # oldest first
    alice, bob = sessions
    assert alice.client_address == "127.0.0.2" and alice.domain == "NSTESTSRV"
    assert sorted(t[1] for t in alice.trees) == ["IPC$", "share"] and sorted(alice.opens) == [1, 2]
    assert alice.num_opens == 2 and alice.idle_ms == 4200
    assert alice.creation_time == pytest.approx(T0)
    assert bob.num_opens == 0 and bob.idle_ms is None and bob.trees == ()


def test_unreadable_database_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(SambaStateError) as info:
        SambaState(str(tmp_path)).sessions()
    assert info.value.path == str(tmp_path / SESSION_DB)
    (tmp_path / SESSION_DB).write_bytes(b"not a tdb" * 100)
    with pytest.raises(SambaStateError, match=SESSION_DB):
        SambaState(str(tmp_path)).sessions()


def test_record_of_another_layout_makes_the_read_fail(tmp_path: Path) -> None:
    d = samba_dir(tmp_path, {1: session_global(1, ALICE, [ChannelSpec()], version=1)})
    with pytest.raises(SambaStateError, match="does not decode"):
        SambaState(str(d)).sessions()


# -- the feed ------------------------------------------------------------------------------------------


def samba_session(gid: int, user: str = "alice", client: str = "127.0.0.2", *, created: float = T0,
                  idle_ms: int | None = 1000, opens: tuple[int, ...] = ()) -> SambaSession:
    from netsession.samba.smbxsrv import Channel

    channel = Channel(ServerId(100 + gid, 0, 0xFFFFFFFF, 9), 1, nttime(created), "ipv4:127.0.0.1:445",
                      f"ipv4:{client}:5000", client)
    return SambaSession(gid, gid + 1000, created, nttime(created), created, user, "D", "S-1-5-21-1-2-3-1",
                        1, False, 0x311, 0, 0, (channel,), client, (), opens, idle_ms)


class FakeState:
    def __init__(self) -> None:
        self.now: list[SambaSession] = []
        self.fail: SambaStateError | None = None

    def sessions(self) -> list[SambaSession]:
        if self.fail is not None:
            raise self.fail
        return list(self.now)


class FakeMessenger:
    def __init__(self) -> None:
        self.closed: list[tuple[int, int, int, int]] = []
        self.shut: list[int] = []

    def close_session(self, dst: ServerId, global_id: int, wire_id: int, creation: int) -> None:
        self.closed.append((dst.pid, global_id, wire_id, creation))

    def shutdown(self, dst: ServerId) -> None:
        self.shut.append(dst.pid)


def make_feed(clock: list[float]) -> tuple[SessionTable, FakeState, FakeMessenger, SambaFeed]:
    table = SessionTable(clock=lambda: clock[0])
    state, messenger = FakeState(), FakeMessenger()
    feed = SambaFeed(table, state, messenger, clock=lambda: clock[0], close_timeout=5)  # type: ignore[arg-type]
    return table, state, messenger, feed


def test_feed_rows_carry_samba_s_times_opens_and_idle() -> None:
    clock = [T0 + 100]
    table, state, _, feed = make_feed(clock)
    state.now = [samba_session(1, idle_ms=30_000, opens=(7, 8, 9)), samba_session(2, "bob", idle_ms=None)]
    feed.refresh()
    r = table.enumerate(ADMIN, None, None, 502, MAX_PREFERRED_LENGTH, None)
    alice, bob = r.entries
    assert (alice.sesi502_cname, alice.sesi502_time, alice.sesi502_idle_time, alice.sesi502_num_opens) == (
        r"\\127.0.0.2", 100, 30, 3)
    assert bob.sesi502_idle_time == 0  # no connection found: 0, as Samba itself reports


def test_feed_keeps_list_order_so_resume_handles_hold() -> None:
    clock = [T0 + 100]
    table, state, _, feed = make_feed(clock)
    state.now = [samba_session(i, f"u{i}", created=T0 + i) for i in range(1, 6)]
    feed.refresh()
    first = table.enumerate(ADMIN, None, None, 10, 200, 0)
    assert first.status.name == "ERROR_MORE_DATA"
    state.now = [*state.now, samba_session(9, "late", created=T0 + 50)]
    feed.refresh()
    rest = table.enumerate(ADMIN, None, None, 10, MAX_PREFERRED_LENGTH, first.resume_handle)
    names = [e.sesi10_username for e in first.entries + rest.entries]
    assert names == ["u1", "u2", "u3", "u4", "u5", "late"]


def test_feed_drops_rows_of_ended_sessions() -> None:
    clock = [T0]
    table, state, _, feed = make_feed(clock)
    state.now = [samba_session(1), samba_session(2, "bob")]
    feed.refresh()
    state.now = [samba_session(2, "bob")]
    feed.refresh()
    assert [s.username for s in table] == ["bob"]


def test_netrsessiondel_sends_session_close_for_exactly_the_matches() -> None:
    clock = [T0 + 10]
    table, state, messenger, feed = make_feed(clock)
    state.now = [samba_session(1, "alice", "127.0.0.2"), samba_session(2, "alice", "127.0.0.3")]
    feed.refresh()
    assert table.delete(ADMIN, r"\\127.0.0.2", "alice").status == NERR_Success
    assert messenger.closed == [(101, 1, 1001, nttime(T0))]
    # smbd has not ended it yet: it stays out of the table meanwhile.
    feed.refresh()
    assert [s.cname for s in table] == [r"\\127.0.0.3"]
    assert table.delete(ADMIN, r"\\127.0.0.2", "alice").status == NERR_ClientNameNotFound


def test_session_still_there_after_the_timeout_gets_its_process_shut_down() -> None:
    clock = [T0 + 10]
    table, state, messenger, feed = make_feed(clock)
    state.now = [samba_session(1)]
    feed.refresh()
    table.delete(ADMIN, None, "alice")
    clock[0] += 6
    feed.refresh()
    assert messenger.shut == [101] and len(table) == 0
    state.now = []
    feed.refresh()
    assert feed._closing == {}


# -- the caller and the service ---------------------------------------------------------------------------


def test_caller_groups_come_from_the_token() -> None:
    assert caller_groups(("S-1-5-21-1-2-3-1000", "S-1-5-32-544"), 10) == {ADMINISTRATORS}
    assert caller_groups(("S-1-5-21-1-2-3-1000", "S-1-5-32-549"), 10) == {SERVER_OPERATORS}
    assert ADMINISTRATORS in caller_groups(("S-1-5-21-1-2-3-1000", "S-1-5-21-1-2-3-512"), 10)
    assert caller_groups(("S-1-5-21-1-2-3-1000",), 0) == {ADMINISTRATORS}  # root
    assert caller_groups(("S-1-5-21-1-2-3-1000", "S-1-5-21-1-2-3-513"), 10) == frozenset()


def _enum(service: BridgeSrvsvcService, caller: Caller = ADMIN) -> object:
    ctx = CallContext(caller, "127.0.0.1")
    return service.call(ctx, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=10).encode())


def test_unreadable_state_is_an_rpc_fault_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = [T0]
    table, state, _, feed = make_feed(clock)
    service = BridgeSrvsvcService(table, ServerIdentity("SMB1"))
    service.attach(feed)
    state.now = [samba_session(1)]
    assert _enum(service).fault is None  # type: ignore[attr-defined]
    state.fail = SambaStateError("/var/lib/samba/lock/smbXsrv_session_global.tdb", "tdb_open failed")
    with caplog.at_level(logging.ERROR, logger="netsession.samba"):
        first, second = _enum(service), _enum(service)
    assert first.fault == second.fault == RPC_S_CALL_FAILED  # type: ignore[attr-defined]
    errors = [r for r in caplog.records if r.name == "netsession.samba" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "smbXsrv_session_global.tdb" in errors[0].getMessage()
    state.fail = None
    reply = _enum(service)
    assert NetrSessionEnumResponse.decode(reply.stub).status == NERR_Success  # type: ignore[attr-defined]


def test_non_session_calls_do_not_read_samba_s_state() -> None:
    clock = [T0]
    table, state, _, feed = make_feed(clock)
    service = BridgeSrvsvcService(table, ServerIdentity("SMB1"))
    service.attach(feed)
    state.fail = SambaStateError("x", "y")
    from netsession.wire.srvsvc import NetrServerGetInfoRequest

    stub = NetrServerGetInfoRequest(None, 101).encode()
    reply = service.call(CallContext(ADMIN, "1"), Opnum.NetrServerGetInfo, stub)
    assert reply.fault is None


def test_hardened_policy_applies_to_samba_rows() -> None:
    clock = [T0]
    table = SessionTable(AccessPolicy.HARDENED, clock=lambda: clock[0])
    feed = SambaFeed(table, FakeState(), FakeMessenger(), clock=lambda: clock[0])  # type: ignore[arg-type]
    service = BridgeSrvsvcService(table, ServerIdentity("SMB1"))
    service.attach(feed)
    assert _enum(service, replace(ADMIN, groups=frozenset())).fault == ERROR_ACCESS_DENIED  # type: ignore[attr-defined]


def test_feed_mirrors_samba_s_trees_and_opens_as_rows() -> None:
    clock = [T0 + 10]
    table, state, _, feed = make_feed(clock)
    state.now = [replace(samba_session(1, opens=(5, 6)), trees=((31, "IPC$", T0 + 1), (32, "share", T0 + 2)))]
    feed.refresh()
    (row,) = list(table)
    assert sorted(t.share for t in row.trees) == ["IPC$", "share"] and row.num_opens == 2
    state.now = [replace(samba_session(1, opens=(6,)), trees=((32, "share", T0 + 2),))]
    feed.refresh()
    assert [t.share for t in row.trees] == ["share"] and row.num_opens == 1
    assert row.trees[0].created_at == T0 + 2
