"""The history database's tables, version :data:`SCHEMA_VERSION`, for SQLite and PostgreSQL alike.

=================  ====================================================================================
table              one row per
=================  ====================================================================================
netsession_meta    setting; ``schema_version`` says which schema the file or database has
rounds             watch round: its time slot (``floor(start / every)``, shared by every watcher), times
leases             target of a round: who holds it (``owner``) until when (``expires_at``), ``done``
scans              host scanned in a round: verdict, level, session count, error, when, by which watcher
hosts              target: its current verdict and since when
verdict_changes    change of a target's verdict (a host that became hardened)
spans              stretch of time a (server, client, user) was seen logged on: first/last seen, open
events             appear / disappear of a (server, client, user), as the watcher emitted it
=================  ====================================================================================

Times are seconds since the Unix epoch, UTC (DOUBLE PRECISION). Booleans are 0/1 integers in both
databases, so one set of statements serves both.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS rounds (
    id {pk},
    slot BIGINT NOT NULL UNIQUE,
    every_seconds DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS leases (
    round_id BIGINT NOT NULL,
    target TEXT NOT NULL,
    owner TEXT,
    expires_at DOUBLE PRECISION,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (round_id, target)
);
CREATE TABLE IF NOT EXISTS scans (
    id {pk},
    round_id BIGINT,
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    address TEXT,
    verdict TEXT NOT NULL,
    level INTEGER,
    sessions INTEGER NOT NULL,
    error TEXT,
    scanned_at DOUBLE PRECISION NOT NULL,
    watcher TEXT
);
CREATE INDEX IF NOT EXISTS scans_round ON scans (round_id, target);
CREATE TABLE IF NOT EXISTS hosts (
    target TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    last_scanned DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS verdict_changes (
    id {pk},
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    old_verdict TEXT,
    new_verdict TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
    id {pk},
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    client TEXT NOT NULL,
    client_name TEXT,
    user_name TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    open INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_open ON spans (target, open);
CREATE INDEX IF NOT EXISTS spans_user ON spans (user_name);
CREATE INDEX IF NOT EXISTS spans_host ON spans (host);
CREATE TABLE IF NOT EXISTS events (
    id {pk},
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    round_id BIGINT,
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    client TEXT NOT NULL,
    client_name TEXT,
    user_name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
"""

META: Final = "CREATE TABLE IF NOT EXISTS netsession_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

PRIMARY_KEY: Final = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}


def statements(dialect: str) -> list[str]:
    """The CREATE statements of the schema, one each, for ``dialect`` (sqlite / postgresql)."""
    text = _TABLES.format(pk=PRIMARY_KEY[dialect])
    return [s.strip() for s in text.split(";") if s.strip()]
