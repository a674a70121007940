"""Personalities as policies the srvsvc service consults: windows, windows-hardened, samba-4.17 (each of
Samba's quirks from FACTS.md §6 and srv_srvsvc_nt.c), over one table of real-like and decoy rows."""

from __future__ import annotations

import pytest

from netsession.decoy.personality import (
    PERSONALITIES,
    SambaPersonality,
    UnknownPersonality,
    personality,
    samba_connect_time,
    split_listen,
)
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    NERR_ClientNameNotFound,
    NERR_InvalidComputer,
    NERR_Success,
)
from netsession.records import SESS_GUEST, SESSION_INFO_0, SESSION_INFO_1
from netsession.server.srvsvc import CallContext, ServerIdentity, SrvsvcService
from netsession.table import Caller, Session, SessionTable
from netsession.wire.srvsvc import (
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

ADMIN = Caller("admin", frozenset({"Administrators"}))
OPERATOR = Caller("oper", frozenset({"Server Operators"}))
USER = Caller("alice", frozenset({"Users"}))


class World:
    """A table with two "connections" (rows grouped as one client's process) and a decoy, a service."""

    def __init__(self) -> None:
        self.now = 1000.25
        self.table = SessionTable(clock=lambda: self.now)
        self.closed: list[str] = []
        self.conn_a = [self._row("127.0.0.1", "admin"), self._row("127.0.0.1", "bob")]
        self.conn_b = [self._row("127.0.0.1", "alice")]
        self.guest = self._row("::1", "nobody", guest=True)
        self.decoy = self.table.add("10.0.0.9", "adm-kim", on_close=self._close, synthetic=True,
                                    created_at=self.now - 500)
        files = self.decoy.tree_connect("Users", 0)
        for name in ("a.txt", "b.txt", "c.txt"):
            self.decoy.open("C:\\Shares\\Users\\" + name, tree=files)
        self.decoy.open("\\PIPE\\srvsvc")  # not a file: Samba does not count it
        self.conn_a[0].open("\\PIPE\\srvsvc")  # the caller's srvsvc pipe
        self.service = SrvsvcService(self.table, ServerIdentity("FS1"))
        self.service.peers_of = self.peers

    def _close(self, row: Session) -> None:
        self.closed.append(row.username)

    def _row(self, addr: str, user: str, guest: bool = False) -> Session:
        return self.table.add(addr, user, user_flags=SESS_GUEST if guest else 0, on_close=self._close)

    def peers(self, row: Session) -> list[Session]:
        for conn in (self.conn_a, self.conn_b):
            if row in conn:
                return conn
        return [row]

    def enum(self, who: Caller, name: str, level: int, client: str | None = None, user: str | None = None,
             prefmax: int = 0xFFFFFFFF, resume: int | None = 0) -> NetrSessionEnumResponse:
        ctx = CallContext(who, "127.0.0.1", personality(name))
        stub = NetrSessionEnumRequest(None, client, user, level, prefmax, resume).encode()
        reply = self.service.call(ctx, Opnum.NetrSessionEnum, stub)
        if reply.fault is not None:
            raise AssertionError(f"fault {reply.fault}")
        return NetrSessionEnumResponse.decode(reply.stub)

    def delete(self, who: Caller, name: str, client: str | None, user: str | None) -> int:
        ctx = CallContext(who, "127.0.0.1", personality(name))
        stub = NetrSessionDelRequest(None, client, user).encode()
        return NetrSessionDelResponse.decode(self.service.call(ctx, Opnum.NetrSessionDel, stub).stub).status


def test_personality_names_and_listen_values() -> None:
    assert set(PERSONALITIES) == {"windows", "windows-hardened", "samba-4.17"}
    with pytest.raises(UnknownPersonality, match="unknown personality 'os2'"):
        personality("os2")
    assert split_listen("127.0.0.1:1=windows-hardened") == ("127.0.0.1:1", "windows-hardened")
    with pytest.raises(UnknownPersonality):
        split_listen("127.0.0.1:1=")


def test_windows_personality_is_the_classic_rules() -> None:
    w = World()
    assert w.enum(USER, "windows", 10).status == NERR_Success
    assert w.enum(USER, "windows", 502).status == ERROR_ACCESS_DENIED
    assert w.enum(ADMIN, "windows", 10, client="127.0.0.1").status == NERR_InvalidComputer
    assert w.delete(ADMIN, "windows", "\\\\nowhere", None) == NERR_ClientNameNotFound


def test_windows_hardened_personality_faults_plain_users_at_every_level() -> None:
    w = World()
    for level in (0, 10):
        ctx = CallContext(USER, "127.0.0.1", personality("windows-hardened"))
        reply = w.service.call(ctx, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=level).encode())
        assert reply.fault == ERROR_ACCESS_DENIED
    assert w.enum(OPERATOR, "windows-hardened", 10).total_entries == 5


def test_samba_enum_needs_administrators_even_before_the_level() -> None:
    w = World()
    for who in (USER, OPERATOR, Caller("", frozenset(), authenticated=False)):
        r = w.enum(who, "samba-4.17", 10)
        assert r.status == ERROR_ACCESS_DENIED and r.entries == [] and r.total_entries == 0


@pytest.mark.parametrize("level", [2, 10, 502])
def test_samba_serves_levels_0_and_1_only(level: int) -> None:
    r = World().enum(ADMIN, "samba-4.17", level)
    assert r.status == ERROR_INVALID_LEVEL and r.level == level and r.entries == []


def test_samba_ignores_filters_and_preferred_maximum_length() -> None:
    w = World()
    full = w.enum(ADMIN, "samba-4.17", 1)
    for kwargs in ({"client": "\\\\10.0.0.9"}, {"user": "nobody-such"}, {"client": "junk"}, {"prefmax": 1}):
        r = w.enum(ADMIN, "samba-4.17", 1, **kwargs)  # type: ignore[arg-type]
        assert r.status == NERR_Success and r.entries == full.entries and r.total_entries == 5


def test_samba_level1_records_cname_without_backslashes_idle_zero_files_only() -> None:
    w = World()
    w.now += 30
    r = w.enum(ADMIN, "samba-4.17", 1)
    assert r.entries == [
        SESSION_INFO_1("127.0.0.1", "admin", 0, 30, 0, 0),  # its pipe is not a file
        SESSION_INFO_1("127.0.0.1", "bob", 0, 30, 0, 0),
        SESSION_INFO_1("127.0.0.1", "alice", 0, 30, 0, 0),
        SESSION_INFO_1("::1", "nobody", 0, 30, 0, 1),
        SESSION_INFO_1("10.0.0.9", "adm-kim", 3, 530, 0, 0),
    ]
    assert w.enum(ADMIN, "samba-4.17", 0).entries[0] == SESSION_INFO_0("127.0.0.1")


def test_samba_resume_handle_and_total_entries() -> None:
    w = World()
    r = w.enum(ADMIN, "samba-4.17", 1, resume=3)
    assert [e.sesi1_username for e in r.entries] == ["nobody", "adm-kim"]
    assert r.total_entries == 5 and r.resume_handle == 5
    past = w.enum(ADMIN, "samba-4.17", 0, resume=5)
    assert past.status == NERR_Success and past.entries == [] and past.total_entries == 5
    assert past.resume_handle == 0
    assert w.enum(ADMIN, "samba-4.17", 0, resume=None).resume_handle is None


def test_samba_brand_new_session_active_time_is_0xffffffff() -> None:
    table = SessionTable(clock=lambda: 2000.9)
    table.add("127.0.0.1", "new", on_close=lambda s: None, created_at=2000.7)
    r = SambaPersonality().session_enum(table, ADMIN, NetrSessionEnumRequest(level=1))
    assert r.entries[0].sesi1_time == 0xFFFFFFFF  # type: ignore[union-attr]
    assert samba_connect_time(2000.9, 2000.4) == 0
    assert samba_connect_time(2001.1, 2000.7) == 0


def test_samba_del_no_match_is_access_denied_not_2312() -> None:
    w = World()
    assert w.delete(ADMIN, "samba-4.17", "\\\\10.9.9.9", None) == ERROR_ACCESS_DENIED
    assert w.delete(ADMIN, "samba-4.17", None, "bob") == ERROR_ACCESS_DENIED  # no client: nothing matches
    assert w.delete(OPERATOR, "samba-4.17", "\\\\127.0.0.1", "bob") == ERROR_ACCESS_DENIED
    assert w.closed == []


def test_samba_del_tears_down_the_whole_client() -> None:
    w = World()
    assert w.delete(ADMIN, "samba-4.17", "\\\\127.0.0.1", "bob") == NERR_Success
    assert sorted(w.closed) == ["admin", "bob"]  # bob's connection also held the caller's own session
    assert [r.username for r in w.table] == ["alice", "nobody", "adm-kim"]


def test_samba_del_without_user_ends_every_session_of_that_client() -> None:
    w = World()
    assert w.delete(ADMIN, "samba-4.17", "127.0.0.1", None) == NERR_Success
    assert sorted(w.closed) == ["admin", "alice", "bob"]
    assert w.delete(ADMIN, "samba-4.17", "\\\\10.0.0.9", "ADM-KIM") == NERR_Success
    assert [r.username for r in w.table] == ["nobody"]
