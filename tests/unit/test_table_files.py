r"""The session's neighbours in the one table: opens (FileList) and tree connects (TreeConnectList), and
the MS-SRVS rules of NetrFileEnum / NetrFileGetInfo / NetrFileClose (§3.1.4.2-4) and NetrConnectionEnum
(§3.1.4.1), one test per rule."""

from __future__ import annotations

from typing import Any

import pytest

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    NERR_BufTooSmall,
    NERR_FileIdNotFound,
    NERR_NetNameNotFound,
    NERR_Success,
)
from netsession.records import (
    CONNECTION_INFO_0,
    CONNECTION_INFO_1,
    FILE_INFO_2,
    FILE_INFO_3,
    MAX_PREFERRED_LENGTH,
    file_to_pywin32,
    ndr_size,
)
from netsession.table import AccessPolicy, Caller, OpenRow, Session, SessionTable

ADMIN = Caller("admin", frozenset({"Administrators"}))
OPER = Caller("oper", frozenset({"Server Operators"}))
USER = Caller("alice", frozenset({"Users"}))
ANON = Caller("", frozenset(), authenticated=False)
PIPE = "\\PIPE\\srvsvc"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def world(policy: AccessPolicy = AccessPolicy.CLASSIC) -> tuple[SessionTable, Clock, list[Session]]:
    """Three sessions: alice from .5 (one IPC$ tree, two pipe opens), bob from .6 (one tree, one open),
    ALICE from .7 (a tree, no opens)."""
    clock = Clock()
    table = SessionTable(policy, clock=clock)
    a = table.add("10.0.0.5", "alice", on_close=lambda s: s.remove())
    b = table.add("10.0.0.6", "bob", on_close=lambda s: s.remove())
    c = table.add("10.0.0.7", "ALICE", on_close=lambda s: s.remove())
    ta = a.tree_connect("IPC$")
    a.open(PIPE, tree=ta)
    clock.now += 5
    a.open(PIPE, tree=ta, permissions=1)
    tb = b.tree_connect("ipc$")
    b.open("\\PIPE\\lsarpc", tree=tb)
    c.tree_connect("IPC$")
    clock.now += 10
    return table, clock, [a, b, c]


def files(table: SessionTable, **kw: Any) -> Any:
    args: dict[str, Any] = {"base_path": None, "user": None, "level": 3, "prefmax": MAX_PREFERRED_LENGTH,
                            "resume": None, "caller": ADMIN}
    args.update(kw)
    return table.file_enum(
        args["caller"], args["base_path"], args["user"], args["level"], args["prefmax"], args["resume"]
    )


def conns(table: SessionTable, qualifier: str | None, **kw: Any) -> Any:
    args: dict[str, Any] = {"level": 1, "prefmax": MAX_PREFERRED_LENGTH, "resume": None, "caller": ADMIN}
    args.update(kw)
    return table.connection_enum(
        args["caller"], qualifier, args["level"], args["prefmax"], args["resume"], ["IPC$"]
    )


# -- the one table --------------------------------------------------------------------------------------


def test_num_opens_is_the_sessions_entries_in_the_file_list() -> None:
    table, _, (a, b, c) = world()
    assert (a.num_opens, b.num_opens, c.num_opens) == (2, 1, 0)
    listed = files(table).entries
    for s in (a, b, c):
        assert s.num_opens == sum(1 for e in listed if e.fi3_username == s.username)
        assert s.info().sesi502_num_opens == s.num_opens


def test_current_uses_counts_tree_connects_case_insensitively() -> None:
    table, _, (_a, _b, c) = world()
    assert table.current_uses("IPC$") == table.current_uses("ipc$") == 3
    c.trees[0].remove()
    assert table.current_uses("IPC$") == 2
    assert table.current_uses("C$") == 0


def test_a_session_leaving_the_table_takes_its_opens_and_trees() -> None:
    table, _, (a, _b, _c) = world()
    opens = a.opens
    a.remove()
    assert not any(o.active for o in opens)
    assert table.current_uses("IPC$") == 2
    assert [e.fi3_username for e in files(table).entries] == ["bob"]


def test_a_tree_leaving_the_table_takes_its_opens() -> None:
    _table, _, (a, _b, _c) = world()
    a.trees[0].remove()
    assert a.num_opens == 0 and not a.trees


def test_file_ids_are_unique_dwords_and_wrap_past_live_rows() -> None:
    table = SessionTable(clock=lambda: 0.0)
    s = table.add("10.0.0.1", "u", on_close=lambda s: s.remove())
    first = s.open(PIPE)
    table._next_file_id = 0xFFFFFFFF
    last = s.open(PIPE)
    wrapped = s.open(PIPE)  # 1 is still live: the next free id is 2
    assert (first.file_id, last.file_id, wrapped.file_id) == (1, 0xFFFFFFFF, 2)


def test_an_open_on_another_sessions_tree_is_refused() -> None:
    _table, _, (a, b, _c) = world()
    with pytest.raises(ValueError):
        a.open(PIPE, tree=b.trees[0])


def test_a_session_out_of_the_table_cannot_open() -> None:
    _table, _, (a, _b, _c) = world()
    a.remove()
    with pytest.raises(ValueError):
        a.open(PIPE)
    with pytest.raises(ValueError):
        a.tree_connect("IPC$")


# -- NetrFileEnum ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 4, 502])
def test_file_enum_other_levels_are_invalid(level: int) -> None:
    table, _, _ = world()
    assert files(table, level=level).status == ERROR_INVALID_LEVEL


@pytest.mark.parametrize("caller", [USER, ANON])
@pytest.mark.parametrize("policy", list(AccessPolicy))
def test_file_enum_is_for_administrators_and_server_operators(caller: Caller, policy: AccessPolicy) -> None:
    table, _, _ = world(policy)
    r = files(table, caller=caller)
    assert (r.status, r.entries) == (ERROR_ACCESS_DENIED, ())
    assert files(table, caller=OPER).status == NERR_Success


def test_file_enum_level_3_reports_each_open() -> None:
    table, _, (a, b, _c) = world()
    r = files(table)
    assert r.status == NERR_Success and r.total_entries == 3
    assert r.entries[0] == FILE_INFO_3(a.opens[0].file_id, 3, 0, PIPE, "alice")
    assert r.entries[1].fi3_permissions == 1
    assert r.entries[2] == FILE_INFO_3(b.opens[0].file_id, 3, 0, "\\PIPE\\lsarpc", "bob")


def test_file_enum_level_2_is_the_ids() -> None:
    table, _, (a, b, _c) = world()
    assert files(table, level=2).entries == tuple(FILE_INFO_2(o.file_id) for o in (*a.opens, *b.opens))


@pytest.mark.parametrize(
    ("base", "paths"),
    [
        ("\\PIPE", [PIPE, PIPE, "\\PIPE\\lsarpc"]),
        ("\\pipe\\", [PIPE, PIPE, "\\PIPE\\lsarpc"]),
        ("\\PIPE\\SRVSVC", [PIPE, PIPE]),
        ("\\PI", []),
        ("\\PIPE\\srv", []),
        ("", [PIPE, PIPE, "\\PIPE\\lsarpc"]),
    ],
)
def test_file_enum_base_path_is_a_prefix_up_to_a_backslash(base: str, paths: list[str]) -> None:
    table, _, _ = world()
    r = files(table, base_path=base)
    got = (r.status, [e.fi3_pathname for e in r.entries], r.total_entries)
    assert got == (NERR_Success, paths, len(paths))


def test_file_enum_user_name_matches_case_insensitively() -> None:
    table, _, _ = world()
    r = files(table, user="ALICE")
    assert [e.fi3_username for e in r.entries] == ["alice", "alice"]
    assert files(table, user="nobody").entries == ()
    assert files(table, user="nobody").status == NERR_Success


def test_file_enum_qualifiers_longer_than_1024_characters_are_invalid() -> None:
    table, _, _ = world()
    assert files(table, base_path="x" * 1024).status == ERROR_INVALID_PARAMETER
    assert files(table, user="x" * 1024).status == ERROR_INVALID_PARAMETER
    assert files(table, user="x" * 1023).status == NERR_Success


def test_file_enum_pages_with_prefered_maximum_length_and_a_resume_handle() -> None:
    table, _, _ = world()
    everything = files(table).entries
    size = ndr_size(everything[0])
    r = files(table, prefmax=size, resume=0)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (ERROR_MORE_DATA, everything[:1], 3, 1)
    r = files(table, prefmax=size * 2 + 30, resume=r.resume_handle)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_Success, everything[1:], 2, 3)
    r = files(table, prefmax=size, resume=r.resume_handle)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_Success, (), 0, 3)


def test_file_enum_buffer_too_small_for_one_entry() -> None:
    table, _, _ = world()
    r = files(table, prefmax=10, resume=0)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_BufTooSmall, (), 3, 0)


def test_file_enum_qualifiers_apply_after_the_resume_position() -> None:
    table, _, _ = world()
    r = files(table, user="bob", resume=1)
    assert [e.fi3_username for e in r.entries] == ["bob"] and r.resume_handle == 3


def test_file_enum_without_a_resume_handle_returns_none() -> None:
    table, _, _ = world()
    assert files(table).resume_handle is None
    assert files(table, prefmax=60).resume_handle is None


# -- NetrFileGetInfo / NetrFileClose ---------------------------------------------------------------------


def test_file_get_info_levels_access_and_missing_ids() -> None:
    table, _, (a, _b, _c) = world()
    fid = a.opens[0].file_id
    assert table.file_get_info(ADMIN, fid, 3).entry == FILE_INFO_3(fid, 3, 0, PIPE, "alice")
    assert table.file_get_info(OPER, fid, 2).entry == FILE_INFO_2(fid)
    assert table.file_get_info(ADMIN, fid, 1).status == ERROR_INVALID_LEVEL
    assert table.file_get_info(USER, fid, 3).status == ERROR_ACCESS_DENIED
    assert table.file_get_info(ADMIN, 0xDEAD, 3).status == ERROR_FILE_NOT_FOUND


def test_file_close_removes_the_row_then_asks_its_owner_to_close_it() -> None:
    table = SessionTable(clock=lambda: 0.0)
    s = table.add("10.0.0.1", "u", on_close=lambda s: s.remove())
    seen: list[tuple[bool, int]] = []

    def owner_closes(row: OpenRow) -> None:
        seen.append((row.active, s.num_opens))

    row = s.open(PIPE, on_close=owner_closes)
    assert table.file_close(ADMIN, row.file_id) == NERR_Success
    assert seen == [(False, 0)] and s.num_opens == 0
    assert table.file_close(ADMIN, row.file_id) == NERR_FileIdNotFound


def test_file_close_is_for_administrators_and_server_operators() -> None:
    table, _, (a, _b, _c) = world()
    fid = a.opens[0].file_id
    assert table.file_close(USER, fid) == ERROR_ACCESS_DENIED and a.num_opens == 2
    assert table.file_close(OPER, fid) == NERR_Success and a.num_opens == 1


def test_file_close_of_an_open_without_an_owner_callback_just_forgets_it() -> None:
    table, _, (a, _b, _c) = world()
    assert table.file_close(ADMIN, a.opens[0].file_id) == NERR_Success and a.num_opens == 1


# -- NetrConnectionEnum --------------------------------------------------------------------------------


def test_connection_enum_by_share_gives_each_tree_with_the_clients_name() -> None:
    table, _, (a, _b, _c) = world()
    r = conns(table, "ipc$")
    assert r.status == NERR_Success and r.total_entries == 3
    assert r.entries[0] == CONNECTION_INFO_1(a.trees[0].tree_id, 3, 2, 1, 15, "alice", "10.0.0.5")
    assert [e.coni1_netname for e in r.entries] == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert [e.coni1_num_opens for e in r.entries] == [2, 1, 0]


def test_connection_enum_by_computer_gives_its_trees_with_the_share_name() -> None:
    table, _, (_a, b, _c) = world()
    r = conns(table, "\\\\10.0.0.6")
    assert r.entries == (CONNECTION_INFO_1(b.trees[0].tree_id, 3, 1, 1, 10, "bob", "ipc$"),)
    r = conns(table, "\\\\10.9.9.9")
    assert (r.status, r.entries) == (NERR_Success, ())


def test_connection_enum_level_0_is_the_ids() -> None:
    table, _, sessions = world()
    ids = tuple(CONNECTION_INFO_0(s.trees[0].tree_id) for s in sessions)
    assert conns(table, "IPC$", level=0).entries == ids


@pytest.mark.parametrize("level", [2, 3, 10, 502])
def test_connection_enum_other_levels_are_invalid(level: int) -> None:
    table, _, _ = world()
    assert conns(table, "IPC$", level=level).status == ERROR_INVALID_LEVEL


@pytest.mark.parametrize("qualifier", [None, "", "x" * 1024, "\\\\" + "x" * 1022])
def test_connection_enum_needs_a_qualifier_of_at_most_1024_characters(qualifier: str | None) -> None:
    table, _, _ = world()
    assert conns(table, qualifier).status == ERROR_INVALID_PARAMETER


def test_connection_enum_of_a_share_that_does_not_exist() -> None:
    table, _, _ = world()
    assert conns(table, "ADMIN$").status == NERR_NetNameNotFound


@pytest.mark.parametrize("caller", [USER, ANON])
def test_connection_enum_is_for_administrators_and_server_operators(caller: Caller) -> None:
    table, _, _ = world()
    assert conns(table, "IPC$", caller=caller).status == ERROR_ACCESS_DENIED
    assert conns(table, "IPC$", caller=OPER).status == NERR_Success


def test_connection_enum_pages_as_session_enum() -> None:
    table, _, _ = world()
    everything = conns(table, "IPC$").entries
    r = conns(table, "IPC$", prefmax=ndr_size(everything[0]) + ndr_size(everything[1]), resume=0)
    assert (r.status, r.entries, r.resume_handle) == (ERROR_MORE_DATA, everything[:2], 2)
    r = conns(table, "IPC$", prefmax=1000, resume=2)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_Success, everything[2:], 1, 3)
    assert conns(table, "IPC$", prefmax=8, resume=0).status == NERR_BufTooSmall


def test_file_records_have_pywin32s_keys() -> None:
    rec = FILE_INFO_3(7, 3, 0, PIPE, "alice")
    assert file_to_pywin32(rec) == {
        "id": 7, "permissions": 3, "num_locks": 0, "path_name": PIPE, "user_name": "alice"
    }
    assert file_to_pywin32(FILE_INFO_2(7)) == {"id": 7}
