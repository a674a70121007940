"""Synthetic rows in the session table: ticking times (an injected clock, no sleeps), the same srvsvc rules
as real rows (levels, paging, filters, counts, deletion), respawn, reload, the control channel."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from netsession.decoy.control import MAX_REQUEST, ControlError, ControlHandler, ControlServer, request
from netsession.decoy.sessions import DecoySet
from netsession.decoy.spec import DecoySpec, generate
from netsession.errors import ERROR_MORE_DATA, NERR_ClientNameNotFound, NERR_Success
from netsession.records import MAX_PREFERRED_LENGTH, SESS_GUEST, SESSION_INFO_502, SESSION_LEVELS
from netsession.server.srvsvc import CallContext, ServerIdentity, SrvsvcService
from netsession.table import DEFAULT_TRANSPORT, Caller, SessionTable
from netsession.wire.srvsvc import (
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

ADMIN = Caller("admin", frozenset({"Administrators"}))


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def setup(*specs: DecoySpec, seed: int = 5) -> tuple[Clock, SessionTable, DecoySet]:
    clock = Clock()
    table = SessionTable(clock=clock)
    decoys = DecoySet(table, seed=seed)
    decoys.load(specs)
    return clock, table, decoys


def test_decoy_row_starts_with_its_age_and_idle_time() -> None:
    _, table, _ = setup(DecoySpec("10.0.0.9", "adm-kim", opens=4, age=3600, idle=30, speak_every=100))
    (row,) = list(table)
    assert row.synthetic
    assert row.info() == SESSION_INFO_502("\\\\10.0.0.9", "adm-kim", 4, 3600, 30, 0, "", DEFAULT_TRANSPORT)


def test_decoy_idle_time_resets_when_it_speaks_and_time_grows() -> None:
    clock, table, decoys = setup(DecoySpec("PC1", "bob", age=600, idle=0, speak_every=50, jitter=0.5))
    (row,) = list(table)
    seen_idle = []
    for _ in range(400):  # 400 steps of 7 s
        clock.now += 7
        decoys.tick()
        info = row.info()
        assert info.sesi502_time == 600 + round(clock.now - 10_000.0)
        seen_idle.append(info.sesi502_idle_time)
    # It speaks every 25-75 s: idle never reaches 75 + one step, resets to small values, grows between.
    assert max(seen_idle) <= 75 + 7
    assert min(seen_idle) <= 7
    resets = sum(1 for a, b in itertools.pairwise(seen_idle) if b < a)
    assert 2800 / 75 <= resets <= 2800 / 25 + 1
    gaps = {b - a for a, b in itertools.pairwise(seen_idle) if b > a}
    assert gaps == {7}


def test_decoy_activity_is_repeatable_with_a_seed() -> None:
    def run(seed: int) -> list[int]:
        clock, table, decoys = setup(*generate(50, seed=1).sessions, seed=seed)
        out = []
        for _ in range(30):
            clock.now += 13
            decoys.tick()
            out.extend(r.info().sesi502_idle_time for r in table)
        return out

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_silent_decoy_never_speaks() -> None:
    clock, table, decoys = setup(DecoySpec("PC1", "bob", age=100, speak_every=0))
    clock.now += 1000
    decoys.tick()
    info = next(iter(table)).info()
    assert info.sesi502_time == info.sesi502_idle_time == 1100


def _mixed() -> tuple[Clock, SessionTable, DecoySet, SrvsvcService]:
    clock, table, decoys = setup(
        DecoySpec("10.0.0.9", "adm-kim", opens=2, age=50, idle=5),
        DecoySpec("WS01", "carol", guest=True, age=20, idle=20),
    )
    real = table.add("127.0.0.1", "admin", on_close=lambda s: s.remove())
    real.open("\\PIPE\\srvsvc")
    service = SrvsvcService(table, ServerIdentity("FS1"))
    service.before_call.append(decoys.tick)
    return clock, table, decoys, service


def enum(service: SrvsvcService, level: int, client: str | None = None, user: str | None = None,
         prefmax: int = MAX_PREFERRED_LENGTH, resume: int | None = 0) -> NetrSessionEnumResponse:
    ctx = CallContext(ADMIN, "127.0.0.1")
    stub = NetrSessionEnumRequest(None, client, user, level, prefmax, resume).encode()
    return NetrSessionEnumResponse.decode(service.call(ctx, Opnum.NetrSessionEnum, stub).stub)


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
def test_decoys_listed_at_every_level_like_real_sessions(level: int) -> None:
    _, _, _, service = _mixed()
    r = enum(service, level)
    assert r.status == NERR_Success and r.total_entries == 3
    assert {type(e) for e in r.entries} == {SESSION_LEVELS[level]}
    assert [e[0] for e in r.entries] == ["\\\\10.0.0.9", "\\\\WS01", "\\\\127.0.0.1"]
    if level in (1, 2, 502):
        assert [e[5] for e in r.entries] == [0, SESS_GUEST, 0]


def test_decoys_paged_filtered_and_counted_like_real_sessions() -> None:
    _, _, _, service = _mixed()
    first = enum(service, 10, prefmax=100)
    assert first.status == ERROR_MORE_DATA and len(first.entries) == 1 and first.total_entries == 3
    rest = enum(service, 10, resume=first.resume_handle)
    assert rest.status == NERR_Success and len(rest.entries) == 2 and rest.total_entries == 2
    only = enum(service, 502, client="\\\\ws01")
    assert [e.sesi502_username for e in only.entries] == ["carol"] and only.total_entries == 1
    assert enum(service, 10, client="\\\\nobody").status == NERR_ClientNameNotFound


def test_netrsessiondel_removes_a_decoy_and_respawn_brings_it_back() -> None:
    clock, table, decoys = setup(DecoySpec("10.0.0.9", "adm-kim", age=50, respawn=120))
    service = SrvsvcService(table, ServerIdentity("FS1"))
    service.before_call.append(decoys.tick)
    ctx = CallContext(ADMIN, "127.0.0.1")
    stub = NetrSessionDelRequest(None, "\\\\10.0.0.9", None).encode()
    status = NetrSessionDelResponse.decode(service.call(ctx, Opnum.NetrSessionDel, stub).stub).status
    assert status == NERR_Success
    assert enum(service, 10).total_entries == 0
    clock.now += 119
    assert enum(service, 10).total_entries == 0
    clock.now += 11
    back = enum(service, 10)
    assert [(e.sesi10_cname, e.sesi10_time) for e in back.entries] == [("\\\\10.0.0.9", 10)]
    assert decoys.describe()[0]["deletions"] == 1


def test_deleted_decoy_without_respawn_stays_gone() -> None:
    clock, table, decoys = setup(DecoySpec("10.0.0.9", "adm-kim"))
    assert table.delete(ADMIN, None, "ADM-KIM").status == NERR_Success
    clock.now += 10**6
    decoys.tick()
    assert len(table) == 0 and decoys.describe()[0]["active"] is False


def test_reload_keeps_unchanged_rows_and_replaces_changed_ones() -> None:
    a = DecoySpec("PC1", "a", age=10)
    b = DecoySpec("PC2", "b", age=10)
    clock, table, decoys = setup(a, b)
    row_a = next(r for r in table if r.username == "a")
    decoys.add(DecoySpec("PC9", "manual"))
    clock.now += 5
    assert decoys.load([a, DecoySpec("PC2", "b", age=99), DecoySpec("PC3", "c")]) == (1, 1, 2)
    assert row_a.active and row_a.info().sesi502_time == 15
    assert sorted(r.username for r in table) == ["a", "b", "c", "manual"]
    assert next(r for r in table if r.username == "b").info().sesi502_time == 99


def test_synthetic_count_in_enum_result() -> None:
    _, table, _, _ = _mixed()
    r = table.enumerate(ADMIN, None, None, 10, MAX_PREFERRED_LENGTH, 0)
    assert r.synthetic == 2
    assert table.enumerate(ADMIN, "\\\\127.0.0.1", None, 10, MAX_PREFERRED_LENGTH, 0).synthetic == 0


def test_ten_thousand_random_decoys_enumerate_in_one_answer() -> None:
    _, table, decoys = setup(*generate(10_000, seed=3).sessions)
    r = table.enumerate(ADMIN, None, None, 502, MAX_PREFERRED_LENGTH, 0)
    assert r.total_entries == len(r.entries) == r.synthetic == 10_000
    assert decoys.active == 10_000


# -- the control channel ------------------------------------------------------------------------------


def test_control_handler_adds_lists_removes() -> None:
    _, table, decoys = setup()
    handler = ControlHandler(decoys)
    assert handler.handle_line(b'{"op": "add", "session": {"client": "PC7", "user": "eve", "opens": 2}}') == {
        "ok": True, "added": 1,
    }
    listed = handler.handle_line(b'{"op": "list"}')["decoys"]
    got = [(d["client"], d["user"], d["opens"], d["source"]) for d in listed]
    assert got == [("PC7", "eve", 2, "control")]
    assert handler.handle_line(b'{"op": "remove", "user": "EVE"}') == {"ok": True, "removed": 1}
    assert len(table) == 0


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json", "not a JSON request"),
        (b"[1]", "JSON object"),
        (b'{"op": "dance"}', "unknown op"),
        (b'{"op": "add", "session": {"client": "a"}}', "'user' is required"),
        (b'{"op": "remove"}', "name a client"),
        (b'{"op": "reload"}', "no sessions file"),
    ],
)
def test_control_handler_refuses_bad_requests_in_one_line(line: bytes, error: str) -> None:
    _, _, decoys = setup()
    answer = ControlHandler(decoys).handle_line(line)
    assert answer["ok"] is False and error in answer["error"] and "\n" not in answer["error"]


def test_control_socket_serves_requests_and_bounds_them(tmp_path: Path) -> None:
    _, table, decoys = setup()
    path = tmp_path / "decoy.sock"

    async def main() -> None:
        server = ControlServer(ControlHandler(decoys), path)
        await server.start()
        try:
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            loop = asyncio.get_running_loop()
            added = await loop.run_in_executor(
                None, request, path, {"op": "add", "session": {"client": "PC1", "user": "u"}}
            )
            assert added["added"] == 1
            with pytest.raises(ControlError, match="unknown op"):
                await loop.run_in_executor(None, request, path, {"op": "nope"})
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"x" * (MAX_REQUEST + 10))
            answer = json.loads(await reader.readline())
            assert "request over" in answer["error"]
            assert await reader.read() == b""  # and the connection is closed
            writer.close()
        finally:
            await server.stop()
        assert not path.exists()

    asyncio.run(main())
    assert [r.username for r in table] == ["u"]
    with pytest.raises(ControlError, match="no decoy control socket"):
        request(path, {"op": "list"})


def test_reload_brings_back_a_deleted_decoy_the_file_still_describes() -> None:
    spec = DecoySpec("PC1", "a", age=10)
    _clock, table, decoys = setup(spec)
    assert table.delete(ADMIN, "\\\\PC1", None).status == NERR_Success
    assert len(table) == 0
    assert decoys.load([spec]) == (0, 1, 1)
    assert [r.info().sesi502_time for r in table] == [10]
