"""`netsession watch` and `netsession history` against the simulated fleet, on SQLite and a real
PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_sim import Fleet
from netsession_server import ALICE, BOB, OPERATOR, wait_until
from postgres import PostgresServer

from netsession.cli import main
from netsession.fleet.results import HostResult, Session, Verdict
from netsession.store.db import open_store

ALICE_U = f"{ALICE.name}%{ALICE.password}"
NETSESSION = [sys.executable, "-m", "netsession.cli"]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "history.sqlite")
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        yield pg.create_database(f"watch_{int(time.time() * 1000) % 10**9}")


def _watch(fleet: Fleet, hosts: list[str], db: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*NETSESSION, "watch", *fleet.targets(hosts), "-U", ALICE_U, "--db", db, "--deadline", "3",
         "--exclude-self", "--no-names", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_events(proc: subprocess.Popen[str], until: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Events from the watcher's stdout until ``until(events)`` is true."""
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        if time.monotonic() > deadline:
            raise AssertionError(f"no such events in {timeout} s: {events}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the watcher ended: {proc.stderr.read() if proc.stderr else ''}")
        events.append(json.loads(line))
    return events


def test_watch_events_when_a_held_session_ends_and_another_starts(
    fleet: Fleet, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = fleet.classic_hosts[:2]
    fleet.classic.reset()
    bob = fleet.classic.hold_smbclient(BOB)
    proc = _watch(fleet, hosts, db_url, "--every", "3s", "--rounds", "3")
    try:
        def appeared(user: str) -> Any:
            return lambda ev: {e["server"] for e in ev if e["type"] == "appear" and e["user_name"] == user} \
                == set(hosts)

        first = _read_events(proc, appeared("bob"))
        bob.close()
        fleet.classic.hold_smbclient(OPERATOR)
        wait_until(lambda: fleet.classic.count("bob") == 0, what="bob's session to end")
        later = _read_events(proc, lambda ev: appeared("oper")(ev) and
                             {e["server"] for e in ev if e["type"] == "disappear"} == set(hosts))
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fleet.classic.close_clients()
    events = first + later + jsonl(out)
    gone = [e for e in events if e["type"] == "disappear"]
    expected = {(h, "bob", "127.0.0.1") for h in hosts}
    assert {(e["server"], e["user_name"], e["client"]) for e in gone} == expected
    assert not any(e["user_name"] == "alice" for e in events if e["type"] != "verdict")  # --exclude-self
    # the history remembers it
    code = main(["history", "user", "bob", "--db", db_url, "--format", "jsonl"])
    spans = jsonl(capsys.readouterr().out)
    assert code == 0 and {s["server"] for s in spans} == set(hosts)
    assert all(not s["open"] and s["client"] == "127.0.0.1" for s in spans)
    main(["history", "now", "--db", db_url, "--format", "jsonl"])
    now = jsonl(capsys.readouterr().out)
    assert {(s["server"], s["user_name"]) for s in now} == {(h, "oper") for h in hosts}
    bob_seen = next(s["first_seen"] for s in spans if s["server"] == hosts[0])
    main(["history", "server", hosts[0], "--at", bob_seen, "--db", db_url, "--format", "jsonl"])
    at_t = jsonl(capsys.readouterr().out)
    assert [s["user_name"] for s in at_t] == ["bob"]
    main(["history", "seen", "--user", "oper", "--db", db_url, "--format", "jsonl"])
    seen = jsonl(capsys.readouterr().out)
    assert len(seen) == 2 and all(s["first_seen"] <= s["last_seen"] and s["open"] for s in seen)


def test_history_verdict_changes_and_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "h.sqlite")
    store = open_store(db)
    old = time.time() - 100 * 86400
    sessions = [Session("\\\\10.0.0.5", "alice", client_address="10.0.0.5")]
    store.record(HostResult("fs1", 445, Verdict.SESSIONS, sessions=sessions), round_id=None, watcher="t",
                 at=old)
    store.record(HostResult("fs1", 445, Verdict.NO_SESSIONS), round_id=None, watcher="t", at=old + 60)
    events = store.record(HostResult("fs1", 445, Verdict.HARDENED, error="ERROR_ACCESS_DENIED"),
                          round_id=None, watcher="t")
    store.close()
    kinds = [(e.kind, e.old_verdict, e.new_verdict) for e in events]
    assert kinds == [("verdict", "no-sessions", "hardened")]
    main(["history", "verdicts", "--server", "fs1", "--db", db, "--format", "jsonl"])
    changes = [(c["old_verdict"], c["new_verdict"]) for c in jsonl(capsys.readouterr().out)]
    assert changes == [(None, "sessions"), ("sessions", "no-sessions"), ("no-sessions", "hardened")]
    assert main(["history", "prune", "--keep", "90d", "--db", db, "--format", "jsonl"]) == 0
    (pruned,) = jsonl(capsys.readouterr().out)
    assert pruned["removed"] > 0
    main(["history", "user", "alice", "--db", db, "--format", "jsonl"])
    assert jsonl(capsys.readouterr().out) == []  # the 100-day-old span is gone
    main(["history", "verdicts", "--db", db, "--format", "jsonl"])
    assert [c["new_verdict"] for c in jsonl(capsys.readouterr().out)] == ["hardened"]


def _listener() -> tuple[socket.socket, str]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(0.3)
    return s, f"127.0.0.1:{s.getsockname()[1]}"


def _no_connection(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


def test_newer_schema_is_one_line_and_exit_before_any_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.sqlite"
    open_store(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE netsession_meta SET value = '99' WHERE key = 'schema_version'")
    s, target = _listener()
    try:
        code = main(["watch", target, "--db", str(db), "--every", "1s", "--rounds", "1", "-U", ALICE_U])
        err = capsys.readouterr().err
        assert code == 1
        assert len(err.strip().splitlines()) == 1 and "schema version 99" in err
        assert _no_connection(s)
    finally:
        s.close()


def test_database_that_does_not_connect_is_one_line_and_exit_before_any_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s, target = _listener()
    try:
        url = f"postgresql:///nope?host={tmp_path}/nosocket&port=5432"
        code = main(["watch", target, "--db", url, "--every", "1s", "--rounds", "1", "-U", ALICE_U])
        err = capsys.readouterr().err
        assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot connect" in err
        assert _no_connection(s)
    finally:
        s.close()


def test_syslog_rfc5424_on_request(fleet: Fleet, tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(20)
    port = receiver.getsockname()[1]
    fleet.classic.reset()
    bob = fleet.classic.hold_smbclient(BOB)
    try:
        proc = _watch(fleet, fleet.classic_hosts[:1], str(tmp_path / "h.sqlite"), "--every", "1h",
                      "--rounds", "1", "--syslog", f"udp://127.0.0.1:{port}",
                      "--events", str(tmp_path / "ev"))
        data, _ = receiver.recvfrom(65536)
        proc.communicate(timeout=30)
    finally:
        bob.close()
        receiver.close()
    text = data.decode()
    # RFC 5424 §6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP BOM MSG
    m = re.match(r"^<13>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \S+ netsession \d+ appear "
                 r"\[netsession@32473 ([^\]]*)\] \ufeff(.*)$", text)
    assert m, text
    assert 'user_name="bob"' in m.group(2) and 'client="127.0.0.1"' in m.group(2)
    assert [e["user_name"] for e in jsonl((tmp_path / "ev").read_text()) if e["type"] == "appear"] == ["bob"]


def test_killed_watcher_loses_nothing_already_written(fleet: Fleet, tmp_path: Path) -> None:
    db = str(tmp_path / "h.sqlite")
    hosts = fleet.classic_hosts[:6] + fleet.tarpit_hosts[:2]
    proc = _watch(fleet, hosts, db, "--every", "1h", "--rounds", "1", "--deadline", "30", "--lease", "61")

    def recorded() -> int:
        try:
            with sqlite3.connect(db) as conn:
                return int(conn.execute("SELECT count(*) FROM scans").fetchone()[0])
        except sqlite3.Error:
            return 0

    try:
        wait_until(lambda: recorded() >= 6, timeout=30, what="the live hosts to be recorded")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT host, verdict FROM scans").fetchall()
    assert {h for h, _ in rows} == set(fleet.classic_hosts[:6])
    assert {v for _, v in rows} == {"sessions"} or {v for _, v in rows} <= {"sessions", "no-sessions"}


def test_watch_refuses_stdin_targets_it_could_not_read_again(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["watch", "-f", "-", "--every", "1m", "--rounds", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "every round" in err
