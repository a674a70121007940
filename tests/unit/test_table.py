r"""SessionTable: the MS-SRVS §3.1.4.5 / §3.1.4.6 rules, one test per rule (FACTS.md §3)."""

from __future__ import annotations

import doctest
from collections.abc import Callable

import pytest

import netsession.table
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
)
from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS
from netsession.records import (
    MAX_PREFERRED_LENGTH,
    SESS_GUEST,
    SESSION_INFO_0,
    SESSION_INFO_502,
    SESSION_LEVELS,
    ndr_size,
    project,
)
from netsession.table import (
    DEFAULT_TRANSPORT,
    AccessPolicy,
    Caller,
    EnumResult,
    Session,
    SessionCloseError,
    SessionTable,
    unc_client_name,
)

ADMIN = Caller("admin", frozenset({ADMINISTRATORS}))
SERVER_OPERATOR = Caller("op", frozenset({SERVER_OPERATORS}))
USER = Caller("alice", frozenset({"Users"}))
ANONYMOUS = Caller("", frozenset(), authenticated=False)
GUEST = Caller("guest", frozenset({"Guests"}), authenticated=False)
ALL = MAX_PREFERRED_LENGTH


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def nothing(session: Session) -> None:
    session.remove()


def make(
    *rows: tuple[str, str], policy: AccessPolicy = AccessPolicy.CLASSIC, clock: FakeClock | None = None
) -> tuple[SessionTable, list[Session]]:
    table = SessionTable(policy, clock or FakeClock())
    return table, [table.add(c, u, on_close=nothing) for c, u in rows]


ROWS = (
    ("10.0.0.1", "alice"),
    ("10.0.0.2", "bob"),
    ("10.0.0.1", "bob"),
    ("10.0.0.3", "carol"),
    ("10.0.0.2", "alice"),
)


def enum(
    table: SessionTable,
    client: str | None = None,
    user: str | None = None,
    level: int = 10,
    prefmax: int = ALL,
    resume: int | None = None,
    caller: Caller = ADMIN,
) -> EnumResult:
    return table.enumerate(caller, client, user, level, prefmax, resume)


def names(result: EnumResult) -> list[tuple[str | None, str | None]]:
    return [(e.sesi10_cname, e.sesi10_username) for e in result.entries]  # type: ignore[union-attr]


# -- level ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [-1, 3, 11, 100, 501, 503, 0xFFFFFFFF])
def test_enumerate_invalid_level_is_error_invalid_level(level: int) -> None:
    table, _ = make(*ROWS)
    assert enum(table, level=level).status == ERROR_INVALID_LEVEL


def test_enumerate_level_checked_before_access_and_parameters() -> None:
    table, _ = make(*ROWS)
    for policy in AccessPolicy:
        table = SessionTable(policy)
        r = table.enumerate(ANONYMOUS, "no-unc", "x" * 5000, 7, ALL, None)
        assert (r.status, r.fault) == (ERROR_INVALID_LEVEL, None)


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
def test_enumerate_returns_records_of_the_requested_level(level: int) -> None:
    table, sessions = make(*ROWS)
    r = enum(table, level=level)
    assert r.status == NERR_Success and r.level == level
    assert all(type(e) is SESSION_LEVELS[level] for e in r.entries)
    assert [e[0] for e in r.entries] == [s.cname for s in sessions]


# -- access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [1, 2, 502])
def test_access_classic_privileged_levels_need_operator_stub_status(level: int) -> None:
    table, _ = make(*ROWS)
    for caller in (USER, ANONYMOUS, GUEST):
        r = enum(table, level=level, caller=caller)
        assert (r.status, r.fault, r.entries, r.total_entries) == (ERROR_ACCESS_DENIED, None, (), 0)
    for caller in (ADMIN, SERVER_OPERATOR):
        assert enum(table, level=level, caller=caller).status == NERR_Success


@pytest.mark.parametrize("level", [0, 10])
def test_access_classic_levels_0_and_10_open_to_authenticated_callers(level: int) -> None:
    table, _ = make(*ROWS)
    r = enum(table, level=level, caller=USER)
    assert (r.status, r.fault, len(r.entries)) == (NERR_Success, None, len(ROWS))


@pytest.mark.parametrize("level", [0, 10])
def test_access_classic_refuses_unauthenticated_callers_with_stub_status(level: int) -> None:
    table, _ = make(*ROWS)
    for caller in (ANONYMOUS, GUEST):
        r = enum(table, level=level, caller=caller)
        assert (r.status, r.fault, r.entries) == (ERROR_ACCESS_DENIED, None, ())


@pytest.mark.parametrize("level", [0, 1, 2, 10, 502])
def test_access_hardened_every_level_refused_with_rpc_fault_5(level: int) -> None:
    table, _ = make(*ROWS, policy=AccessPolicy.HARDENED)
    for caller in (USER, ANONYMOUS, GUEST):
        r = enum(table, level=level, caller=caller)
        assert (r.status, r.fault, r.entries) == (ERROR_ACCESS_DENIED, 5, ())
    for caller in (ADMIN, SERVER_OPERATOR):
        r = enum(table, level=level, caller=caller)
        assert (r.status, r.fault, len(r.entries)) == (NERR_Success, None, len(ROWS))


def test_access_operator_groups_case_insensitive_with_builtin_prefix() -> None:
    table, _ = make(*ROWS, policy=AccessPolicy.HARDENED)
    for group in ("administrators", "BUILTIN\\Administrators", "builtin\\server operators"):
        assert enum(table, level=502, caller=Caller("x", frozenset({group}))).status == NERR_Success
    for group in ("Account Operators", "Domain Users", "Administrators2", "NT\\Administrators"):
        assert enum(table, level=502, caller=Caller("x", frozenset({group}))).status == ERROR_ACCESS_DENIED


def test_access_unauthenticated_caller_is_never_operator() -> None:
    table, _ = make(*ROWS)
    anon_admin = Caller("x", frozenset({"Administrators"}), authenticated=False)
    assert enum(table, level=502, caller=anon_admin).status == ERROR_ACCESS_DENIED
    assert table.delete(anon_admin, None, "alice").status == ERROR_ACCESS_DENIED


def test_access_checked_before_parameters() -> None:
    table, _ = make(*ROWS, policy=AccessPolicy.HARDENED)
    r = enum(table, client="no-unc", level=1, caller=USER)
    assert (r.status, r.fault) == (ERROR_ACCESS_DENIED, 5)
    r = enum(table, client="no-unc", user="u" * 2000, level=10, caller=USER)
    assert (r.status, r.fault) == (ERROR_ACCESS_DENIED, 5)


# -- parameters and filters -----------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["10.0.0.1", "\\10.0.0.1", "/10.0.0.1", "//10.0.0.1", " \\\\10.0.0.1"])
def test_enumerate_client_without_unc_prefix_is_invalid_computer(client: str) -> None:
    table, _ = make(*ROWS)
    assert enum(table, client=client).status == NERR_InvalidComputer


def test_enumerate_client_prefix_checked_before_length() -> None:
    table, _ = make(*ROWS)
    assert enum(table, client="x" * 3000).status == NERR_InvalidComputer


@pytest.mark.parametrize("field", ["client", "user"])
def test_enumerate_name_over_1024_with_nul_is_invalid_parameter(field: str) -> None:
    table, _ = make(*ROWS)

    def call(name: str) -> EnumResult:
        return enum(table, **{field: name})  # type: ignore[arg-type]

    head = "\\\\" if field == "client" else ""
    ok = head + "a" * (1023 - len(head))  # 1023 characters + NUL = 1024: allowed
    assert call(ok).status in (NERR_ClientNameNotFound, NERR_UserNotFound)
    assert call(ok + "a").status == ERROR_INVALID_PARAMETER
    # Characters are UTF-16 code units: 511 non-BMP characters are 1022 units (+ head).
    wide = head + "\U0001f600" * ((1023 - len(head)) // 2)
    assert call(wide).status in (NERR_ClientNameNotFound, NERR_UserNotFound)
    assert call(wide + "\U0001f600").status == ERROR_INVALID_PARAMETER


def test_enumerate_empty_string_is_no_filter() -> None:
    table, _ = make(*ROWS)
    baseline = enum(table)
    assert len(baseline.entries) == len(ROWS)
    for client, user in (("", None), (None, ""), ("", "")):
        assert enum(table, client=client, user=user) == baseline


def test_enumerate_returns_only_sessions_matching_every_filter() -> None:
    table, _ = make(*ROWS)
    assert names(enum(table, client="\\\\10.0.0.1")) == [("\\\\10.0.0.1", "alice"), ("\\\\10.0.0.1", "bob")]
    assert names(enum(table, user="alice")) == [("\\\\10.0.0.1", "alice"), ("\\\\10.0.0.2", "alice")]
    assert names(enum(table, client="\\\\10.0.0.2", user="alice")) == [("\\\\10.0.0.2", "alice")]


def test_enumerate_filters_are_case_insensitive() -> None:
    table, _ = make(("PC-Émile", "Ärger"), ("pc-two", "Bob"))
    assert names(enum(table, client="\\\\pc-émile", user="äRGER")) == [("\\\\PC-Émile", "Ärger")]
    assert names(enum(table, client="\\\\PC-TWO", user="BOB")) == [("\\\\pc-two", "Bob")]


def test_enumerate_filter_folding_is_one_to_one() -> None:
    # Windows upcases character by character: "ß" stays "ß", so it never equals "SS".
    table, _ = make(("pc", "straße"))
    assert enum(table, user="STRASSE").status == NERR_UserNotFound
    assert len(enum(table, user="STRAßE").entries) == 1


def test_enumerate_no_session_with_client_is_client_name_not_found() -> None:
    table, _ = make(*ROWS)
    for user in (None, "alice", "nobody"):
        r = enum(table, client="\\\\10.9.9.9", user=user)
        assert (r.status, r.entries, r.total_entries) == (NERR_ClientNameNotFound, (), 0)


def test_enumerate_client_matches_but_user_does_not_is_user_not_found() -> None:
    table, _ = make(*ROWS)
    assert enum(table, client="\\\\10.0.0.3", user="alice").status == NERR_UserNotFound


def test_enumerate_user_filter_matching_nothing_is_user_not_found() -> None:
    table, _ = make(*ROWS)
    assert enum(table, user="nobody").status == NERR_UserNotFound


def test_enumerate_filter_on_empty_table_fails() -> None:
    table = SessionTable()
    assert enum(table, client="\\\\10.0.0.1").status == NERR_ClientNameNotFound
    assert enum(table, user="alice", resume=0).status == NERR_UserNotFound


def test_enumerate_no_filter_on_empty_table_is_success() -> None:
    r = enum(SessionTable(), resume=0)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_Success, (), 0, 0)


def test_enumerate_client_not_found_is_judged_from_resume_position() -> None:
    table, _ = make(*ROWS)  # 10.0.0.3 is at position 3 only
    assert enum(table, client="\\\\10.0.0.3", user="alice", resume=3).status == NERR_UserNotFound
    assert enum(table, client="\\\\10.0.0.3", user="alice", resume=4).status == NERR_ClientNameNotFound
    assert enum(table, client="\\\\10.0.0.3", resume=4).status == NERR_ClientNameNotFound


# -- PreferedMaximumLength ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
def test_prefmaxlen_returns_whole_entries_counted_by_ndr_size(level: int) -> None:
    table, _ = make(("10.0.0.1", "a"), ("10.0.0.22", "bbbbbbb"), ("10.0.0.333", "cc"), ("h", "d"))
    every = enum(table, level=level).entries
    sizes = [ndr_size(e) for e in every]
    for k in range(1, len(every)):
        exact = sum(sizes[:k])
        r = enum(table, level=level, prefmax=exact, resume=0)
        assert (r.status, r.entries, r.resume_handle) == (ERROR_MORE_DATA, every[:k], k)
        r = enum(table, level=level, prefmax=exact + sizes[k] - 1, resume=0)
        assert (r.status, r.entries) == (ERROR_MORE_DATA, every[:k])
    r = enum(table, level=level, prefmax=sum(sizes), resume=0)
    assert (r.status, r.entries) == (NERR_Success, every)


def test_max_preferred_length_returns_everything() -> None:
    table, _ = make(*((f"10.0.{i >> 8}.{i & 255}", "u" * 300) for i in range(2000)))
    for prefmax in (MAX_PREFERRED_LENGTH, -1):
        r = enum(table, level=502, prefmax=prefmax, resume=0)
        assert (r.status, len(r.entries), r.total_entries) == (NERR_Success, 2000, 2000)


def test_prefmaxlen_one_short_of_everything_is_more_data() -> None:
    table, _ = make(*ROWS)
    every = enum(table, level=502).entries
    r = enum(table, level=502, prefmax=sum(map(ndr_size, every)) - 1)
    assert (r.status, r.entries, r.total_entries) == (ERROR_MORE_DATA, every[:-1], len(ROWS))


def test_buf_too_small_when_not_even_one_entry_fits() -> None:
    table, _ = make(*ROWS)
    first = enum(table, level=0).entries[0]
    for prefmax in (0, 1, ndr_size(first) - 1):
        r = enum(table, level=0, prefmax=prefmax, resume=0)
        assert (r.status, r.entries, r.total_entries, r.resume_handle) == (NERR_BufTooSmall, (), 5, 0)
    assert enum(table, level=0, prefmax=ndr_size(first)).entries == (first,)
    # Nothing to return: not BufTooSmall.
    assert enum(SessionTable(), level=0, prefmax=0).status == NERR_Success


# -- TotalEntries ---------------------------------------------------------------------------------------


def test_total_entries_counts_every_entry_passing_filters_from_resume_position() -> None:
    table, _ = make(*ROWS)
    one = ndr_size(enum(table, level=0).entries[0])
    assert enum(table, level=0, prefmax=one).total_entries == 5
    assert enum(table, level=0, prefmax=one, resume=2).total_entries == 3
    assert enum(table, level=0, user="bob", prefmax=one, resume=0).total_entries == 2
    assert enum(table, level=0, user="bob", prefmax=one, resume=2).total_entries == 1
    assert enum(table, level=0, user="alice", resume=1).total_entries == 1


# -- ResumeHandle ---------------------------------------------------------------------------------------


def test_resume_handle_none_in_none_out() -> None:
    table, _ = make(*ROWS)
    assert enum(table).resume_handle is None
    assert enum(table, prefmax=1).resume_handle is None  # BufTooSmall
    r = enum(table, level=0, prefmax=ndr_size(enum(table, level=0).entries[0]))
    assert (r.status, r.resume_handle) == (ERROR_MORE_DATA, None)
    assert enum(table, level=3).resume_handle is None


def test_resume_handle_zero_starts_at_the_beginning() -> None:
    table, _ = make(*ROWS)
    assert enum(table, resume=0).entries == enum(table).entries


def test_resume_handle_at_or_past_list_size_is_success_with_zero_entries() -> None:
    table, _ = make(*ROWS)
    for resume in (5, 6, 1000, 0xFFFFFFFF):
        for client, user in ((None, None), ("\\\\nowhere", None), (None, "nobody")):
            r = enum(table, client=client, user=user, resume=resume)
            assert (r.status, r.entries, r.total_entries) == (NERR_Success, (), 0)


def test_resume_handle_on_more_data_continues_after_last_returned_entry() -> None:
    table, _ = make(*ROWS)
    one = ndr_size(enum(table, level=0).entries[0])
    r = enum(table, level=0, prefmax=2 * one, resume=0)
    assert (r.status, len(r.entries), r.resume_handle) == (ERROR_MORE_DATA, 2, 2)
    r2 = enum(table, level=0, prefmax=2 * one, resume=r.resume_handle)
    assert r2.entries == enum(table, level=0).entries[2:4]
    assert r2.resume_handle == 4


def test_resume_handle_on_more_data_is_nonzero() -> None:
    table, _ = make(*ROWS)
    r = enum(table, level=0, prefmax=ndr_size(enum(table, level=0).entries[0]), resume=0)
    assert r.status == ERROR_MORE_DATA and r.resume_handle == 1


def test_resume_handle_on_success_returns_zero_entries_when_resubmitted() -> None:
    table, _ = make(*ROWS)
    r = enum(table, resume=0)
    assert r.resume_handle == len(ROWS)
    again = enum(table, resume=r.resume_handle)
    assert (again.status, again.entries) == (NERR_Success, ())
    r = enum(table, user="bob", resume=0)
    assert r.resume_handle == len(ROWS)
    assert enum(table, user="bob", resume=r.resume_handle).entries == ()


def test_resume_handle_filters_applied_after_resume_position() -> None:
    table, _ = make(*ROWS)
    # bob is at positions 1 and 2; alice at 0 and 4.
    assert names(enum(table, user="bob", resume=2)) == [("\\\\10.0.0.1", "bob")]
    r = enum(table, user="alice", resume=1)
    assert names(r) == [("\\\\10.0.0.2", "alice")] and r.total_entries == 1
    # The filter's next match is the page's continuation, and the handle follows the list position.
    one = ndr_size(enum(table, level=0).entries[0])
    r = enum(table, level=0, user="alice", prefmax=one, resume=0)
    assert (r.status, r.resume_handle) == (ERROR_MORE_DATA, 1)
    r = enum(table, level=0, user="alice", prefmax=one, resume=1)
    assert (r.status, r.entries[0][0], r.resume_handle) == (NERR_Success, "\\\\10.0.0.2", 5)


def test_resume_handle_unchanged_on_error() -> None:
    table, _ = make(*ROWS)
    assert enum(table, client="bad", resume=3).resume_handle == 3
    assert enum(table, user="nobody", resume=2).resume_handle == 2
    assert enum(table, level=1, caller=USER, resume=1).resume_handle == 1


def test_paging_sees_every_session_once() -> None:
    table, _ = make(*ROWS)
    every = enum(table, level=502).entries
    prefmax = max(map(ndr_size, every))
    seen: list[SESSION_INFO_502] = []
    resume = 0
    while True:
        r = enum(table, level=502, prefmax=prefmax, resume=resume)
        seen.extend(r.entries)  # type: ignore[arg-type]
        if r.status != ERROR_MORE_DATA:
            break
        assert r.resume_handle is not None
        resume = r.resume_handle
    assert r.status == NERR_Success and tuple(seen) == every


def _page_all(table: SessionTable, user: str | None, one: int) -> int:
    resume, pages = 0, 0
    while True:
        r = table.enumerate(ADMIN, None, user, 0, one, resume)
        pages += 1
        if r.status != ERROR_MORE_DATA:
            return pages
        assert r.resume_handle is not None
        resume = r.resume_handle


def test_paging_is_not_quadratic(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10,000 sessions, one entry per page, with and without a filter: each call does O(page) work — it
    # builds the entry it returns and the one that does not fit, nothing else — and the ordered list and
    # the filter's matches are computed once while the table does not change.
    table, _ = make(*((f"10.1.{i >> 8}.{i & 255}", "user") for i in range(10_000)))
    one = ndr_size(SESSION_INFO_0("\\\\10.1.39.15"))
    built = 0
    info_at = Session._info_at

    def counting(self: Session, now: float) -> SESSION_INFO_502:
        nonlocal built
        built += 1
        return info_at(self, now)

    monkeypatch.setattr(Session, "_info_at", counting)
    ordered = table._ordered()
    assert _page_all(table, None, one) == 10_000
    assert built <= 2 * 10_000
    built = 0
    assert _page_all(table, "USER", one) == 10_000
    assert built <= 2 * 10_000
    assert table._ordered() is ordered  # never rebuilt
    assert len(table._matches) == 1  # one filter, scanned once


# -- get_info -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [502, 3, 11, -1])
def test_get_info_levels_other_than_0_1_2_10_are_invalid_level(level: int) -> None:
    table, _ = make(*ROWS)
    assert table.get_info(ADMIN, "\\\\10.0.0.1", "alice", level).status == ERROR_INVALID_LEVEL


@pytest.mark.parametrize("level", [0, 1, 2, 10])
def test_get_info_returns_first_match_at_level(level: int) -> None:
    table, _ = make(("10.0.0.1", "bob"), ("10.0.0.1", "BOB"), ("10.0.0.2", "bob"))
    r = table.get_info(ADMIN, "\\\\10.0.0.1", "Bob", level)
    assert (r.status, r.fault) == (NERR_Success, None)
    assert r.entry is not None and type(r.entry) is SESSION_LEVELS[level]
    assert tuple(r.entry)[:2] == ("\\\\10.0.0.1", "bob")[: 2 if level else 1]


@pytest.mark.parametrize(("client", "user"), [(None, "alice"), ("\\\\10.0.0.1", None), ("", "alice"),
                                              ("\\\\10.0.0.1", ""), (None, None)])
def test_get_info_requires_client_and_user(client: str | None, user: str | None) -> None:
    table, _ = make(*ROWS)
    r = table.get_info(ADMIN, client, user, 10)
    assert (r.status, r.entry) == (ERROR_INVALID_PARAMETER, None)


def test_get_info_applies_enumerate_parameter_rules() -> None:
    table, _ = make(*ROWS)
    assert table.get_info(ADMIN, "10.0.0.1", "alice", 10).status == NERR_InvalidComputer
    assert table.get_info(ADMIN, "\\\\" + "a" * 1022, "alice", 10).status == ERROR_INVALID_PARAMETER
    assert table.get_info(ADMIN, "\\\\10.0.0.9", "alice", 10).status == NERR_ClientNameNotFound
    assert table.get_info(ADMIN, "\\\\10.0.0.3", "alice", 10).status == NERR_UserNotFound


def test_get_info_access_follows_policy() -> None:
    classic, _ = make(*ROWS)
    assert classic.get_info(USER, "\\\\10.0.0.1", "alice", 10).status == NERR_Success
    assert classic.get_info(USER, "\\\\10.0.0.1", "alice", 1).status == ERROR_ACCESS_DENIED
    assert classic.get_info(ANONYMOUS, "\\\\10.0.0.1", "alice", 0).status == ERROR_ACCESS_DENIED
    hardened, _ = make(*ROWS, policy=AccessPolicy.HARDENED)
    r = hardened.get_info(USER, None, None, 10)  # access before parameters
    assert (r.status, r.fault) == (ERROR_ACCESS_DENIED, 5)
    r = hardened.get_info(USER, "\\\\10.0.0.1", "alice", 2)
    assert (r.status, r.fault) == (ERROR_ACCESS_DENIED, 5)
    assert hardened.get_info(SERVER_OPERATOR, "\\\\10.0.0.1", "alice", 10).status == NERR_Success


# -- delete ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(AccessPolicy))
def test_delete_needs_operator_stub_status(policy: AccessPolicy) -> None:
    table, _ = make(*ROWS, policy=policy)
    for caller in (USER, ANONYMOUS, GUEST):
        assert table.delete(caller, "bad", None) == netsession.table.DeleteResult(ERROR_ACCESS_DENIED)
    assert len(table) == len(ROWS)
    assert table.delete(SERVER_OPERATOR, "\\\\10.0.0.3", None).status == NERR_Success


@pytest.mark.parametrize("client", ["10.0.0.1", "\\10.0.0.1", "x" * 3000])
def test_delete_client_without_unc_prefix_is_client_name_not_found(client: str) -> None:
    table, _ = make(*ROWS)
    assert table.delete(ADMIN, client, "alice").status == NERR_ClientNameNotFound
    assert len(table) == len(ROWS)


@pytest.mark.parametrize(("client", "user"), [(None, None), ("", ""), ("", None), (None, "")])
def test_delete_both_names_empty_is_invalid_parameter(client: str | None, user: str | None) -> None:
    table, _ = make(*ROWS)
    assert table.delete(ADMIN, client, user).status == ERROR_INVALID_PARAMETER
    assert len(table) == len(ROWS)


def test_delete_name_over_1024_with_nul_is_invalid_parameter() -> None:
    table, _ = make(*ROWS)
    assert table.delete(ADMIN, "\\\\" + "a" * 1022, None).status == ERROR_INVALID_PARAMETER
    assert table.delete(ADMIN, None, "a" * 1024).status == ERROR_INVALID_PARAMETER
    assert table.delete(ADMIN, None, "a" * 1023).status == NERR_ClientNameNotFound


def test_delete_no_match_is_client_name_not_found() -> None:
    table, _ = make(*ROWS)
    assert table.delete(ADMIN, "\\\\10.0.0.9", None).status == NERR_ClientNameNotFound
    assert table.delete(ADMIN, None, "nobody").status == NERR_ClientNameNotFound
    assert table.delete(ADMIN, "\\\\10.0.0.3", "alice").status == NERR_ClientNameNotFound
    assert len(table) == len(ROWS)


def test_delete_ends_every_matching_session() -> None:
    table, sessions = make(*ROWS)
    closed: list[Session] = []
    for s in sessions:
        s.on_close = closed.append
    r = table.delete(ADMIN, None, "BOB")
    assert (r.status, r.closed) == (NERR_Success, (sessions[1], sessions[2]))
    assert closed == [sessions[1], sessions[2]]
    assert list(table) == [sessions[0], sessions[3], sessions[4]]
    assert table.delete(ADMIN, "\\\\10.0.0.2", "alice").closed == (sessions[4],)
    assert table.delete(ADMIN, "\\\\10.0.0.1", None).closed == (sessions[0],)
    assert list(table) == [sessions[3]]


def test_delete_removes_sessions_before_callbacks_run() -> None:
    table, sessions = make(*ROWS)
    seen: list[list[tuple[str | None, str | None]]] = []

    def on_close(session: Session) -> None:
        assert not session.active
        seen.append(names(enum(table)))

    for s in sessions:
        s.on_close = on_close
    table.delete(ADMIN, "\\\\10.0.0.1", None)
    remaining = [("\\\\10.0.0.2", "bob"), ("\\\\10.0.0.3", "carol"), ("\\\\10.0.0.2", "alice")]
    assert seen == [remaining, remaining]


def test_delete_may_close_the_callers_own_session() -> None:
    table, sessions = make(("10.0.0.1", "admin"), ("10.0.0.2", "bob"))
    events: list[str] = []

    def own_close(session: Session) -> None:
        events.append("own")
        session.remove()  # the owner tears down as for a logoff: harmless
        session.remove()

    sessions[0].on_close = own_close
    assert table.delete(ADMIN, None, "admin").status == NERR_Success
    assert events == ["own"] and list(table) == [sessions[1]]


def called_append(called: list[int]) -> Callable[[Session], None]:
    return lambda s: called.append(s.session_id)


def test_delete_callback_that_raises_does_not_stop_the_others() -> None:
    table, sessions = make(*ROWS)
    called: list[int] = []

    def boom(session: Session) -> None:
        called.append(session.session_id)
        raise RuntimeError(f"owner of {session.session_id} failed")

    for s in sessions:
        s.on_close = boom if s.username == "bob" else called_append(called)
    with pytest.raises(SessionCloseError) as info:
        table.delete(ADMIN, "\\\\10.0.0.1", None)  # sessions 1 (ok) and 3 (bob, raises)
    assert called == [1, 3]
    assert [str(e) for e in info.value.exceptions] == ["owner of 3 failed"]
    assert info.value.result.status == NERR_Success
    assert info.value.result.closed == (sessions[0], sessions[2])
    assert len(table) == 3
    with pytest.raises(SessionCloseError) as info:
        table.delete(ADMIN, None, "bob")
    assert called == [1, 3, 2]
    # except* splits the group and keeps the result.
    try:
        raise info.value
    except* RuntimeError as group:
        assert isinstance(group, SessionCloseError) and group.result.closed == (sessions[1],)


def test_delete_filters_are_case_insensitive() -> None:
    table, _ = make(("PC1", "Alice"))
    assert table.delete(ADMIN, "\\\\pc1", "ALICE").status == NERR_Success
    assert len(table) == 0


# -- the rows -------------------------------------------------------------------------------------------


def test_times_are_whole_seconds_since_add_and_since_last_touch() -> None:
    clock = FakeClock(500.0)
    table, (s,) = make(("10.0.0.1", "a"), clock=clock)
    clock.now = 559.99
    assert s.info()[3:5] == (59, 59)
    s.touch()
    clock.now = 561.5
    assert s.info()[3:5] == (61, 1)
    r = enum(table, level=10)
    assert (r.entries[0].sesi10_time, r.entries[0].sesi10_idle_time) == (61, 1)  # type: ignore[union-attr]


def test_times_never_negative_when_the_clock_steps_back() -> None:
    clock = FakeClock(500.0)
    _, (s,) = make(("10.0.0.1", "a"), clock=clock)
    clock.now = 100.0
    assert s.info()[3:5] == (0, 0)


def test_num_opens_is_the_sessions_rows_in_the_file_list() -> None:
    table, (s,) = make(("10.0.0.1", "a"))
    assert s.num_opens == 0
    tree = s.tree_connect("IPC$")
    opens = [s.open("\\PIPE\\srvsvc", tree=tree) for _ in range(3)]
    opens[0].remove()
    opens[0].remove()  # idempotent
    assert s.num_opens == 2 and enum(table, level=1).entries[0].sesi1_num_opens == 2  # type: ignore[union-attr]
    assert s.num_opens == len([o for o in s.opens if o.active])
    tree.remove()  # the tree's opens leave with it
    assert s.num_opens == 0 and not opens[1].active


def test_defaults_cltype_empty_and_transport_netbiossmb() -> None:
    table, (s,) = make(("10.0.0.1", "a"))
    assert s.info()[5:] == (0, "", DEFAULT_TRANSPORT) and DEFAULT_TRANSPORT == "\\Device\\NetbiosSmb"
    g = table.add("10.0.0.2", "guest", user_flags=SESS_GUEST, cltype_name="X", transport="\\Device\\T",
                  on_close=nothing)
    assert g.info()[5:] == (SESS_GUEST, "X", "\\Device\\T")
    assert enum(table, level=2).entries[1].sesi2_user_flags == SESS_GUEST  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        table.add("h", "u", user_flags=1 << 32, on_close=nothing)


def test_cname_is_kept_in_unc_form() -> None:
    assert unc_client_name("10.0.0.5") == "\\\\10.0.0.5"
    assert unc_client_name("2001:db8::1") == "\\\\[2001:db8::1]"
    assert unc_client_name("[2001:db8::1]") == "\\\\[2001:db8::1]"
    assert unc_client_name("\\\\PC1") == "\\\\PC1"
    table, (s,) = make(("2001:db8::1", "a"))
    assert s.cname == "\\\\[2001:db8::1]"
    assert len(enum(table, client="\\\\[2001:DB8::1]").entries) == 1


def test_session_ids_increase_and_are_never_reused() -> None:
    table, sessions = make(*ROWS)
    assert [s.session_id for s in sessions] == [1, 2, 3, 4, 5]
    sessions[4].remove()
    assert table.add("h", "u", on_close=nothing).session_id == 6
    assert table.get(6) is not None and table.get(5) is None


def test_remove_is_idempotent_and_hides_the_session() -> None:
    table, sessions = make(*ROWS)
    sessions[1].remove()
    sessions[1].remove()
    assert not sessions[1].active and len(table) == 4
    assert list(table) == [sessions[0], *sessions[2:]]
    assert ("\\\\10.0.0.2", "bob") not in names(enum(table))
    assert enum(table, resume=4).entries == enum(table).entries[4:]  # positions close up


def test_iteration_is_a_snapshot_in_list_order() -> None:
    table, sessions = make(*ROWS)
    seen = []
    for s in table:
        seen.append(s)
        s.remove()
    assert seen == sessions and len(table) == 0


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(netsession.table)
    assert tried > 10 and failures == 0


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@pytest.mark.parametrize("now", [0.0, 99.5, 100.0, 7_000.9, 2.0**40])
def test_each_level_of_an_enumeration_is_the_projection_of_the_502_source(level: int, now: float) -> None:
    # MS-SRVS §3.1.4.5: "sesiN_x MUST be set to session.sesi502_x" -- the fast path builds levels 0 and
    # 10 directly, and must give what the projection of the source record gives, clamps included.
    clock = [100.0]
    table = SessionTable(clock=lambda: clock[0])
    row = table.add("10.0.0.7", "carol", on_close=lambda s: None, created_at=50.0)
    clock[0] = now
    (entry,) = table.enumerate(Caller("admin", frozenset({"Administrators"})), None, None, level,
                               MAX_PREFERRED_LENGTH, 0).entries
    assert entry == project(row._info_at(now), level)
