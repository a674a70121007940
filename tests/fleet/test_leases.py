"""Several `netsession watch` sharing one real PostgreSQL split each round's targets with row leases
(FOR UPDATE SKIP LOCKED); a dead watcher's share is taken over after its lease expires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
from fleet_sim import Fleet
from netsession_server import ALICE, wait_until
from postgres import PostgresServer

NETSESSION = [sys.executable, "-m", "netsession.cli"]


def _watcher(fleet: Fleet, hosts: list[str], url: str, name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*NETSESSION, "watch", *fleet.targets(hosts), "-U", f"{ALICE.name}%{ALICE.password}", "--db", url,
         "--every", "1h", "--rounds", "1", "--no-names", "--watcher-id", name, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql).fetchall())


def _count(url: str, sql: str) -> int:
    """A count, 0 while the watcher has not made the tables yet."""
    try:
        return int(_rows(url, sql)[0][0])
    except psycopg.errors.UndefinedTable:
        return 0


def test_two_watchers_split_a_round_and_scan_each_host_once(fleet: Fleet, postgres: PostgresServer) -> None:
    url = postgres.create_database("leases_split")
    hosts = fleet.classic_hosts[:60]
    a = _watcher(fleet, hosts, url, "A", "--batch", "4", "--concurrency", "4", "--deadline", "5")
    b = _watcher(fleet, hosts, url, "B", "--batch", "4", "--concurrency", "4", "--deadline", "5")
    for p in (a, b):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    scans = _rows(url, "SELECT host, watcher FROM scans")
    assert sorted(h for h, _ in scans) == sorted(hosts)  # every host once
    assert {w for _, w in scans} == {"A", "B"}  # both took a share
    assert _rows(url, "SELECT count(*) FROM leases WHERE done = 0") == [(0,)]


def test_a_killed_watchers_share_is_taken_over_after_its_lease(
    fleet: Fleet, postgres: PostgresServer
) -> None:
    url = postgres.create_database("leases_takeover")
    # the tarpits keep watcher A busy until it is killed, holding leases it will never finish
    hosts = fleet.classic_hosts[:20] + fleet.tarpit_hosts[:4]
    a = _watcher(fleet, hosts, url, "A", "--batch", "24", "--concurrency", "24", "--deadline", "3",
                 "--lease", "7")
    try:
        wait_until(lambda: _count(url, "SELECT count(*) FROM scans WHERE watcher = 'A'") >= 20,
                   timeout=60, what="watcher A to finish the live hosts")
        held = _rows(url, "SELECT target FROM leases WHERE owner = 'A' AND done = 0")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
    finally:
        if a.poll() is None:
            a.kill()
    assert len(held) == 4  # the tarpits, still leased to the dead watcher
    started = time.monotonic()
    b = _watcher(fleet, hosts, url, "B", "--batch", "8", "--concurrency", "8", "--deadline", "3",
                 "--lease", "7")
    _, err = b.communicate(timeout=120)
    assert b.returncode == 0, err
    assert time.monotonic() - started >= 2  # it had to wait for A's leases to expire
    scans = _rows(url, "SELECT target, watcher, verdict FROM scans")
    assert sorted(t for t, _, _ in scans) == sorted(f"{h}:{fleet.port}" for h in hosts)  # once each
    taken_over = {t for t, w, _ in scans if w == "B"}
    assert taken_over == {t for (t,) in held}
    assert {v for _, w, v in scans if w == "B"} == {"timeout"}
    assert _rows(url, "SELECT count(*) FROM leases WHERE done = 0") == [(0,)]
