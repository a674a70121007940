"""Property tests for SessionTable: paging sees every session once; the cached table agrees with a naive
model of MS-SRVS §3.1.4.5 / §3.1.4.6 through any sequence of adds, removes, touches and deletes."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from netsession.errors import (
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    NERR_BufTooSmall,
    NERR_ClientNameNotFound,
    NERR_InvalidComputer,
    NERR_Success,
    NERR_UserNotFound,
)
from netsession.records import MAX_PREFERRED_LENGTH, SESSION_INFO_502, SESSION_LEVELS, ndr_size, project
from netsession.table import Caller, Session, SessionTable

ADMIN = Caller("admin", frozenset({"Administrators"}))
# Small alphabets so that names repeat, differ only in case, and hit the one-to-one folding rule.
NAMES = st.text(alphabet="abAB\u00df\u00e9\u00c9", min_size=1, max_size=3)
CLIENTS = st.sampled_from(["10.0.0.1", "10.0.0.2", "pc", "PC", "2001:db8::1"])
LEVELS = st.sampled_from(sorted(SESSION_LEVELS))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _remove(session: Session) -> None:
    session.remove()


def _fold(s: str) -> str:
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _filter_strategy(values: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.just(""), values, values.map(str.swapcase))


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(CLIENTS, NAMES), max_size=25),
    level=LEVELS,
    client=_filter_strategy(CLIENTS.map(lambda c: "\\\\" + (f"[{c}]" if ":" in c else c))),
    user=_filter_strategy(NAMES),
    slack=st.integers(0, 400),
    data=st.data(),
)
def test_paging_sees_every_session_exactly_once(
    rows: list[tuple[str, str]], level: int, client: str | None, user: str | None, slack: int,
    data: st.DataObject,
) -> None:
    clock = Clock()
    table = SessionTable(clock=clock)
    for cname, username in rows:
        s = table.add(cname, username, on_close=_remove)
        for _ in range(data.draw(st.integers(0, 3))):
            s.open("\\PIPE\\srvsvc")
        clock.now += data.draw(st.integers(0, 5))
    everything = table.enumerate(ADMIN, client, user, level, MAX_PREFERRED_LENGTH, 0)
    # Any PreferedMaximumLength that fits the largest entry pages through everything.
    prefmax = max((ndr_size(e) for e in everything.entries), default=0) + slack
    seen: list[object] = []
    resume: int | None = 0
    last_handle = 0
    while True:
        r = table.enumerate(ADMIN, client, user, level, prefmax, resume)
        if r.status in (NERR_Success, ERROR_MORE_DATA):
            assert r.total_entries == everything.total_entries - len(seen)
        seen.extend(r.entries)
        if r.status != ERROR_MORE_DATA:
            break
        assert r.entries and r.resume_handle is not None and r.resume_handle > last_handle
        last_handle = resume = r.resume_handle
    assert r.status == everything.status
    assert tuple(seen) == everything.entries
    if r.status == NERR_Success:
        # A naive caller re-submitting the final handle gets nothing more.
        again = table.enumerate(ADMIN, client, user, level, prefmax, r.resume_handle)
        assert again.entries == ()
        assert again.status in (NERR_Success, NERR_ClientNameNotFound, NERR_UserNotFound)


@dataclass
class Row:
    session: Session
    cname: str
    username: str
    created: float
    last: float
    opens: int = 0
    closed_by_delete: list[int] = field(default_factory=list)


def _unc(address: str) -> str:
    return "\\\\" + (f"[{address}]" if ":" in address else address)


class TableModel(RuleBasedStateMachine):
    """The real table against a plain list re-scanned from scratch on every call."""

    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.table = SessionTable(clock=self.clock)
        self.rows: list[Row] = []
        self.closed: list[int] = []

    def _on_close(self, session: Session) -> None:
        self.closed.append(session.session_id)
        session.remove()

    @rule(target=sessions, cname=CLIENTS, username=NAMES)
    def add(self, cname: str, username: str) -> Session:
        s = self.table.add(cname, username, on_close=self._on_close)
        self.rows.append(Row(s, _unc(cname), username, self.clock.now, self.clock.now))
        return s

    def _row(self, session: Session) -> Row | None:
        return next((r for r in self.rows if r.session is session), None)

    @rule(session=consumes(sessions))
    def remove(self, session: Session) -> None:
        session.remove()
        self.rows = [r for r in self.rows if r.session is not session]

    @rule(session=sessions, opens=st.integers(-2, 3))
    def use(self, session: Session, opens: int) -> None:
        session.touch()
        for _ in range(abs(opens)):
            if opens > 0 and session.active:
                session.open("\\PIPE\\srvsvc")
            elif session.opens:
                session.opens[0].remove()
        row = self._row(session)
        if row is not None:
            row.last = self.clock.now
            row.opens = max(0, row.opens + opens)  # nothing to close below zero

    @rule(seconds=st.floats(0, 100))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    def _expected(self, client: str | None, user: str | None, level: int, prefmax: int,
                  resume: int | None) -> tuple[int, tuple[object, ...], int, int | None]:
        if client and not client.startswith("\\\\"):
            return NERR_InvalidComputer, (), 0, resume
        if (client and len(client) >= 1024) or (user and len(user) >= 1024):
            return ERROR_INVALID_PARAMETER, (), 0, resume
        n = len(self.rows)
        start = resume or 0

        def out(handle: int) -> int | None:
            return None if resume is None else handle

        if start and start >= n:
            return NERR_Success, (), 0, out(n)

        def client_ok(r: Row) -> bool:
            return not client or _fold(r.cname) == _fold(client)

        def ok(r: Row) -> bool:
            return client_ok(r) and (not user or _fold(r.username) == _fold(user))

        chosen = [(i, r) for i, r in enumerate(self.rows) if i >= start and ok(r)]
        if not chosen:
            if not client and not user:
                return NERR_Success, (), 0, out(n)
            if client and not any(client_ok(r) for r in self.rows[start:]):
                return NERR_ClientNameNotFound, (), 0, resume
            return NERR_UserNotFound, (), 0, resume
        now = self.clock.now
        entries = [
            project(SESSION_INFO_502(r.cname, r.username, r.opens, max(0, int(now - r.created)),
                                     max(0, int(now - r.last)), 0, "", "\\Device\\NetbiosSmb"), level)
            for _, r in chosen
        ]
        if prefmax == MAX_PREFERRED_LENGTH:
            return NERR_Success, tuple(entries), len(entries), out(n)
        k, used = 0, 0
        while k < len(entries) and used + ndr_size(entries[k]) <= prefmax:
            used += ndr_size(entries[k])
            k += 1
        if k == 0:
            return NERR_BufTooSmall, (), len(entries), resume
        if k < len(entries):
            return ERROR_MORE_DATA, tuple(entries[:k]), len(entries), out(chosen[k - 1][0] + 1)
        return NERR_Success, tuple(entries), len(entries), out(n)

    @rule(
        client=_filter_strategy(CLIENTS.map(_unc)) | st.just("pc"),
        user=_filter_strategy(NAMES),
        level=LEVELS,
        prefmax=st.one_of(st.just(MAX_PREFERRED_LENGTH), st.integers(0, 300)),
        resume=st.one_of(st.none(), st.integers(0, 12)),
    )
    def enumerate(self, client: str | None, user: str | None, level: int, prefmax: int,
                  resume: int | None) -> None:
        r = self.table.enumerate(ADMIN, client, user, level, prefmax, resume)
        assert (r.status, r.entries, r.total_entries, r.resume_handle) == self._expected(
            client, user, level, prefmax, resume)

    @rule(client=_filter_strategy(CLIENTS.map(_unc)), user=_filter_strategy(NAMES))
    def delete(self, client: str | None, user: str | None) -> None:
        self.closed.clear()
        r = self.table.delete(ADMIN, client, user)
        if not client and not user:
            assert r.status == ERROR_INVALID_PARAMETER
            return
        gone = [
            row for row in self.rows
            if (not client or _fold(row.cname) == _fold(client))
            and (not user or _fold(row.username) == _fold(user))
        ]
        assert r.status == (NERR_Success if gone else NERR_ClientNameNotFound)
        assert list(r.closed) == [row.session for row in gone]
        assert self.closed == [row.session.session_id for row in gone]
        self.rows = [row for row in self.rows if row not in gone]

    @invariant()
    def same_sessions_in_the_same_order(self) -> None:
        assert list(self.table) == [r.session for r in self.rows]
        assert len(self.table) == len(self.rows)


TableModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_table_agrees_with_naive_model = TableModel.TestCase
