"""What ``netsession history`` asks the history database.

Each function returns a list of dicts with stable keys (times as ISO 8601 UTC strings):

- :func:`sessions_now`: the (server, client, user) seen in each server's latest answer;
- :func:`user_sessions`: where and when a user had sessions (every span, newest first);
- :func:`server_at`: who was on a server at a given time (spans covering it, to the second);
- :func:`first_last_seen`: first and last seen per (server, client, user), optionally filtered;
- :func:`verdict_changes`: each change of a server's verdict (a host that became hardened).

A span runs from the first round that saw a session to the last one that did; a session that came and
went between two rounds is not in it (the watch interval is the resolution).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from netsession.store.db import Store


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(float(t), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _spans(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"server": h, "client": c, "client_name": n, "user_name": u, "first_seen": iso(f),
         "last_seen": iso(last), "open": bool(o)}
        for h, c, n, u, f, last, o in rows
    ]


# Times are printed to the second: a time given back as printed still falls inside the span it came from.
TIME_RESOLUTION = 1.0
_SPAN_COLUMNS = "host, client, client_name, user_name, first_seen, last_seen, open"


def sessions_now(store: Store) -> list[dict[str, Any]]:
    rows = store.query(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE open = 1 ORDER BY host, user_name, client")
    store.commit()
    return _spans(rows)


def user_sessions(store: Store, user: str) -> list[dict[str, Any]]:
    rows = store.query(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE lower(user_name) = lower(?) ORDER BY first_seen DESC, host",
        (user,),
    )
    store.commit()
    return _spans(rows)


def server_at(store: Store, server: str, at: float) -> list[dict[str, Any]]:
    rows = store.query(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE lower(host) = lower(?) AND first_seen < ? "
        "AND last_seen > ? ORDER BY user_name, client",
        (server, at + TIME_RESOLUTION, at - TIME_RESOLUTION),
    )
    store.commit()
    return _spans(rows)


def first_last_seen(
    store: Store, *, server: str | None = None, user: str | None = None, client: str | None = None
) -> list[dict[str, Any]]:
    where, params = [], []
    for column, value in (("host", server), ("user_name", user), ("client", client)):
        if value:
            where.append(f"lower({column}) = lower(?)")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(
        f"SELECT host, client, user_name, min(first_seen), max(last_seen), max(open), count(*) FROM spans "
        f"{clause} GROUP BY host, client, user_name ORDER BY host, user_name, client",
        params,
    )
    store.commit()
    return [
        {"server": h, "client": c, "user_name": u, "first_seen": iso(f), "last_seen": iso(last),
         "open": bool(o), "spans": int(n)}
        for h, c, u, f, last, o, n in rows
    ]


def verdict_changes(store: Store, *, server: str | None = None) -> list[dict[str, Any]]:
    clause, params = ("WHERE lower(host) = lower(?)", [server]) if server else ("", [])
    rows = store.query(
        f"SELECT host, target, at, old_verdict, new_verdict FROM verdict_changes {clause} ORDER BY at, host",
        params,
    )
    store.commit()
    return [
        {"server": h, "target": t, "at": iso(a), "old_verdict": o, "new_verdict": n}
        for h, t, a, o, n in rows
    ]
