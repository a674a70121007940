"""The history database: SQLite (a file in the state directory, nothing to install) or PostgreSQL
(``postgresql://...``, with psycopg 3: ``pip install 'netsession[postgresql]'``).

:func:`open_store` connects, creates the schema if the database is empty and refuses one written by a
newer netsession (:class:`StoreError`, before any traffic). A :class:`Store` is used from one thread at a
time; every :meth:`Store.record` is its own transaction (commit per host), so a killed watcher loses
nothing already written.

Rounds are split between watchers with row leases: each round has a lease row per target; a watcher
claims a batch of unclaimed or expired rows with ``UPDATE ... WHERE (round_id, target) IN (SELECT ...
FOR UPDATE SKIP LOCKED)`` (PostgreSQL: concurrent watchers skip each other's locked rows instead of
waiting), scans them, and marks each done in the same transaction as its results. A watcher that dies
leaves its rows leased until ``expires_at``; then another claims them. SQLite serialises writers itself,
so the same statement without the locking clause does there.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from netsession.fleet.results import HostResult
from netsession.store.schema import META, SCHEMA_VERSION, statements

SQLITE_FILE: Final = "history.sqlite"
# pg_advisory_xact_lock key held while the schema is checked or created ("nsfleet" in ASCII).
SCHEMA_LOCK_KEY: Final = 0x6E73666C656574


class StoreError(Exception):
    """The database cannot be used (one line for the user)."""


@dataclass(frozen=True, slots=True)
class Event:
    """A (server, client, user) appeared or disappeared, or a server's verdict changed."""

    kind: str  # appear, disappear, verdict
    at: float
    target: str
    host: str
    client: str | None = None
    client_name: str | None = None
    user_name: str | None = None
    old_verdict: str | None = None
    new_verdict: str | None = None
    round_id: int | None = None


def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class Store:
    """One connection to the history database."""

    def __init__(self, conn: Any, dialect: str, url: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self.url = url

    # -- plumbing ------------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return _pg_sql(sql) if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:
            pass

    def now(self) -> float:
        """The database's clock (PostgreSQL) or ours (SQLite): what leases are compared against, so
        watchers on several machines agree."""
        if self.dialect == "postgresql":
            (value,) = self.query("SELECT extract(epoch from clock_timestamp())")[0]
            self.commit()
            return float(value)
        return time.time()

    # -- schema --------------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables if missing; StoreError for a schema from a newer netsession."""
        if self.dialect == "postgresql":
            # Two watchers starting together would race on CREATE TABLE IF NOT EXISTS: one at a time.
            self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
        self.execute(META)
        rows = self.query("SELECT value FROM netsession_meta WHERE key = 'schema_version'")
        if rows:
            version = int(rows[0][0])
            if version > SCHEMA_VERSION:
                self.rollback()
                raise StoreError(
                    f"the history database {self.url} has schema version {version}, newer than this "
                    f"netsession's ({SCHEMA_VERSION}): upgrade netsession"
                )
        for statement in statements(self.dialect):
            self.execute(statement)
        if not rows:
            self.execute("INSERT INTO netsession_meta (key, value) VALUES ('schema_version', ?) "
                         "ON CONFLICT (key) DO NOTHING", (str(SCHEMA_VERSION),))
        self.commit()

    # -- rounds and leases ---------------------------------------------------------------------------

    def begin_round(self, slot: int, every: float, targets: Iterable[str]) -> int:
        """The round of time slot ``slot`` (created if no watcher did yet), with a lease row per target."""
        now = self.now()
        self.execute("INSERT INTO rounds (slot, every_seconds, started_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (slot) DO NOTHING", (slot, every, now))
        (round_id,) = self.query("SELECT id FROM rounds WHERE slot = ?", (slot,))[0]
        self.commit()
        batch: list[tuple[Any, ...]] = []
        for target in targets:
            batch.append((round_id, target))
            if len(batch) >= 1000:
                self._add_leases(batch)
                batch = []
        if batch:
            self._add_leases(batch)
        return int(round_id)

    def _add_leases(self, rows: list[tuple[Any, ...]]) -> None:
        cur = self._conn.cursor()
        cur.executemany(self._sql("INSERT INTO leases (round_id, target) VALUES (?, ?) "
                                  "ON CONFLICT (round_id, target) DO NOTHING"), rows)
        self.commit()

    def claim(self, round_id: int, owner: str, count: int, lease: float) -> list[str]:
        """Lease up to ``count`` targets of the round that nobody holds (or whose lease expired)."""
        now = self.now()
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        rows = self.query(
            "UPDATE leases SET owner = ?, expires_at = ? WHERE round_id = ? AND target IN ("
            "SELECT target FROM leases WHERE round_id = ? AND done = 0 AND (owner IS NULL OR expires_at < ?) "
            f"ORDER BY target LIMIT ?{lock}) RETURNING target",
            (owner, now + lease, round_id, round_id, now, count),
        )
        self.commit()
        return [r[0] for r in rows]

    def pending(self, round_id: int) -> int:
        """Targets of the round not done yet (leased by someone or not)."""
        (n,) = self.query("SELECT count(*) FROM leases WHERE round_id = ? AND done = 0", (round_id,))[0]
        self.commit()
        return int(n)

    def finish_round(self, round_id: int) -> None:
        self.execute("UPDATE rounds SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                     (self.now(), round_id))
        self.commit()

    # -- results -------------------------------------------------------------------------------------

    def record(
        self, result: HostResult, *, round_id: int | None, watcher: str | None, at: float | None = None
    ) -> list[Event]:
        """Store one host's result, diff its sessions against what was open, mark its lease done — one
        transaction. Returns the events it made (appear / disappear / verdict)."""
        at = time.time() if at is None else at
        target, host = result.key, result.host
        try:
            events = self._record(result, target, host, round_id, watcher, at)
        except BaseException:
            self.rollback()
            raise
        self.commit()
        return events

    def _record(
        self, result: HostResult, target: str, host: str, round_id: int | None, watcher: str | None, at: float
    ) -> list[Event]:
        verdict = result.verdict.value
        self.execute(
            "INSERT INTO scans (round_id, target, host, port, address, verdict, level, sessions, error, "
            "scanned_at, watcher) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (round_id, target, host, result.port, result.address, verdict, result.level,
             len(result.sessions), result.error, at, watcher),
        )
        events: list[Event] = []
        rows = self.query("SELECT verdict FROM hosts WHERE target = ?", (target,))
        old = rows[0][0] if rows else None
        if old != verdict:
            self.execute("INSERT INTO verdict_changes (target, host, at, old_verdict, new_verdict) "
                         "VALUES (?, ?, ?, ?, ?)", (target, host, at, old, verdict))
            events.append(Event("verdict", at, target, host, old_verdict=old, new_verdict=verdict,
                                round_id=round_id))
        self.execute(
            "INSERT INTO hosts (target, host, port, verdict, since, last_scanned) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (target) DO UPDATE SET verdict = excluded.verdict, "
            "last_scanned = excluded.last_scanned, "
            "since = CASE WHEN hosts.verdict = excluded.verdict THEN hosts.since ELSE excluded.since END",
            (target, host, result.port, verdict, at, at),
        )
        if result.verdict.answered:
            events += self._diff(result, target, host, round_id, at)
        if round_id is not None:
            self.execute("UPDATE leases SET done = 1 WHERE round_id = ? AND target = ?", (round_id, target))
        return events

    def _diff(
        self, result: HostResult, target: str, host: str, round_id: int | None, at: float
    ) -> list[Event]:
        seen: dict[tuple[str, str], str | None] = {}
        for s in result.sessions:
            key = (s.client, s.user_name or "")
            seen.setdefault(key, s.client_name)
        open_rows = self.query(
            "SELECT id, client, user_name, client_name FROM spans WHERE target = ? AND open = 1", (target,)
        )
        open_keys = {(c, u): i for i, c, u, _ in open_rows}
        open_names = {(c, u): n for _, c, u, n in open_rows}
        events: list[Event] = []
        for key, span_id in open_keys.items():
            if key in seen:
                self.execute("UPDATE spans SET last_seen = ? WHERE id = ?", (at, span_id))
            else:
                self.execute("UPDATE spans SET open = 0 WHERE id = ?", (span_id,))
                events.append(Event("disappear", at, target, host, key[0], open_names.get(key), key[1],
                                    round_id=round_id))
        for key, name in seen.items():
            if key not in open_keys:
                self.execute(
                    "INSERT INTO spans (target, host, client, client_name, user_name, first_seen, last_seen, "
                    "open) VALUES (?, ?, ?, ?, ?, ?, ?, 1)", (target, host, key[0], name, key[1], at, at),
                )
                events.append(Event("appear", at, target, host, key[0], name, key[1], round_id=round_id))
        for e in events:
            if e.kind in ("appear", "disappear"):
                self.execute(
                    "INSERT INTO events (at, kind, round_id, target, host, client, client_name, user_name) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.at, e.kind, round_id, target, host, e.client, e.client_name, e.user_name),
                )
        return events

    # -- retention -----------------------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Forget what ended before ``before``: closed spans, events, scans, verdict changes, rounds.
        Returns the number of rows removed."""
        removed = 0
        for sql in (
            "DELETE FROM spans WHERE open = 0 AND last_seen < ?",
            "DELETE FROM events WHERE at < ?",
            "DELETE FROM scans WHERE scanned_at < ?",
            "DELETE FROM verdict_changes WHERE at < ?",
            "DELETE FROM leases WHERE round_id IN (SELECT id FROM rounds WHERE started_at < ?)",
            "DELETE FROM rounds WHERE started_at < ?",
        ):
            removed += max(0, self.execute(sql, (before,)).rowcount or 0)
        self.commit()
        return removed


def _sqlite(path: Path, url: str, create: bool) -> Store:
    if not create and not path.exists():
        raise StoreError(f"no history database at {path} (netsession watch records one; --db names another)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the history database {url}: {exc}") from None
    return Store(conn, "sqlite", url)


def _postgresql(url: str) -> Store:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "PostgreSQL needs psycopg: pip install 'netsession[postgresql]'"
        ) from None
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot connect to the history database: {first}") from None
    return Store(conn, "postgresql", url)


def open_store(url: str | None = None, state_dir: Path | None = None, *, create: bool = True) -> Store:
    """The history database ``url`` (``postgresql://...``, ``sqlite:///path`` or a file path); by
    default ``history.sqlite`` in the state directory. ``create=False`` (a reader: ``history``) refuses
    an SQLite file that does not exist rather than making an empty one."""
    from netsession.paths import state_dir as default_state_dir

    if not url:
        path = (state_dir or default_state_dir()) / SQLITE_FILE
        store = _sqlite(path, str(path), create)
    elif url.startswith(("postgresql://", "postgres://")):
        store = _postgresql(url)
    elif url.startswith("sqlite://"):
        store = _sqlite(Path(url[len("sqlite://"):]).expanduser(), url, create)
    elif "://" in url:
        raise StoreError(f"unknown database URL {url!r} (postgresql://... or sqlite:///path)")
    else:
        store = _sqlite(Path(url).expanduser(), url, create)
    try:
        store.ensure_schema()
    except StoreError:
        store.close()
        raise
    except Exception as exc:
        store.close()
        raise StoreError(f"cannot use the history database {store.url}: {exc}") from None
    return store
