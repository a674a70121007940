"""``netsession watch`` and ``netsession history``.

``watch`` exits 0 after ``--rounds N`` rounds, 130 on Ctrl-C (what was recorded stays: each host is
committed on its own), 1 when the database cannot be used (before any traffic), 2 for usage mistakes.
``history`` exits 0, or 1 when the database cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from netsession.fleet.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    build_scan_options,
    duration,
    positive_int,
    scan_options_parser,
    targets_from_args,
)
from netsession.fleet.targets import HostTarget


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL",
        help="history database: postgresql://..., sqlite:///PATH or a file path (default: history.sqlite "
        "in the state directory)",
    )
    parser.add_argument("--state-dir", metavar="DIR", help="the state directory (default "
                        "$NETSESSION_STATE_DIR, $XDG_STATE_HOME/netsession or ~/.local/state/netsession)")


def _open(args: argparse.Namespace, *, create: bool = True) -> Any:
    from netsession.store.db import open_store

    state_dir = Path(args.state_dir).expanduser() if args.state_dir else None
    return open_store(args.db, state_dir, create=create)


# -- watch -----------------------------------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    from netsession.fleet.watch import EventWriter, SyslogSender, Watcher, WatchOptions
    from netsession.store.db import StoreError

    if "-" in args.file:
        raise CommandError("watch reads its target files again every round: give a file, not -f - (stdin)")
    options = build_scan_options(args, sys.stdin)
    # Check the targets (and their files) once before anything else; each round reads them afresh.
    first = targets_from_args(args)
    del first
    syslog = None
    if args.syslog:
        try:
            syslog = SyslogSender(args.syslog)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    events_file: TextIO | None = None
    if args.events and args.events != "-":
        try:
            events_file = open(args.events, "a", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.events}: {exc.strerror or exc}") from None
    try:
        store = _open(args)
    except StoreError as exc:
        sys.stderr.write(f"netsession: {exc}\n")
        return EXIT_FAILED

    def targets() -> Iterator[HostTarget]:
        return targets_from_args(args)

    writer = EventWriter(events_file or sys.stdout, syslog)
    watcher = Watcher(
        store, options,
        WatchOptions(every=args.every, rounds=args.rounds, lease=args.lease, batch=args.batch,
                     watcher=args.watcher_id or "", keep=args.keep),
        targets, writer,
    )
    interrupted = False
    try:
        interrupted = asyncio.run(_run(watcher))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        watcher.close()
        store.close()
        if syslog is not None:
            syslog.close()
        if events_file is not None:
            events_file.close()
    if interrupted:
        sys.stderr.write(f"netsession: watch interrupted after {watcher.rounds_done} rounds, "
                         f"{watcher.hosts_done} hosts recorded\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _run(watcher: Any) -> bool:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await watcher.run()
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return stopped


# -- history ---------------------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    """``now``, an ISO 8601 time (UTC unless it says otherwise), seconds since the epoch, or ``-2h``."""
    t = text.strip()
    if t == "now":
        return time.time()
    if t.startswith("-"):
        return time.time() - duration(t[1:])
    try:
        return float(t)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"not a time: {text!r} (ISO 8601 like 2026-12-01T10:00:00Z, epoch seconds, "
                           "now, or -2h)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _write_rows(rows: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    if not rows:
        if fmt == "table":
            out.write("There are no entries in the list.\n")
        return
    keys = list(rows[0])
    if fmt == "csv":
        w = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    cells = [[("" if r[k] is None else str(r[k])) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    out.write("  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for c in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() + "\n")


def cmd_history(args: argparse.Namespace) -> int:
    from netsession.store import queries
    from netsession.store.db import StoreError

    at = parse_time(args.at) if getattr(args, "at", None) else None
    try:
        store = _open(args, create=False)
    except StoreError as exc:
        sys.stderr.write(f"netsession: {exc}\n")
        return EXIT_FAILED
    try:
        what = args.what
        if what == "now":
            rows = queries.sessions_now(store)
        elif what == "user":
            rows = queries.user_sessions(store, args.name)
        elif what == "server":
            rows = queries.server_at(store, args.name, at if at is not None else time.time())
        elif what == "seen":
            rows = queries.first_last_seen(store, server=args.server, user=args.user, client=args.client)
        elif what == "verdicts":
            rows = queries.verdict_changes(store, server=args.server)
        else:  # prune
            removed = store.prune(time.time() - args.keep)
            rows = [{"removed": removed, "before": queries.iso(time.time() - args.keep)}]
    finally:
        store.close()
    _write_rows(rows, args.format, sys.stdout)
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch", parents=[scan_options_parser()], allow_abbrev=False,
        help="scan in rounds, emit appear/disappear events, keep the history",
        description="Scan the targets every --every; each host's sessions are diffed against the last "
        "round into appear/disappear events (jsonl; syslog RFC 5424 with --syslog) and stored in the "
        "history database. Several watchers sharing one PostgreSQL split each round's targets "
        "(row leases); a dead watcher's share is taken over when its lease expires.",
    )
    _db_option(p)
    p.add_argument("--every", type=duration, default=900.0, metavar="DURATION",
                   help="round interval, like 30s, 15m, 1h (default 15m)")
    p.add_argument("--rounds", type=positive_int, metavar="N",
                   help="stop after N rounds (default: run until stopped)")
    p.add_argument("--events", metavar="FILE", help="append the events to FILE (default: stdout)")
    p.add_argument("--syslog", metavar="URL", help="also send each event as RFC 5424 syslog: "
                   "udp://HOST:PORT or unix:///dev/log")
    p.add_argument("--lease", type=duration, default=60.0, metavar="SECONDS",
                   help="how long a claimed target stays a watcher's before another may take it over "
                   "(default 60 s, at least twice the deadline)")
    p.add_argument("--batch", type=positive_int, metavar="N",
                   help="targets claimed at a time (default: --concurrency)")
    p.add_argument("--watcher-id", metavar="NAME", help="this watcher's name in the database (default "
                   "HOST:PID)")
    p.add_argument("--keep", type=duration, metavar="DURATION",
                   help="after each round, forget history older than this (like 90d)")
    p.set_defaults(func=cmd_watch)

    h = subparsers.add_parser(
        "history", allow_abbrev=False, help="ask the history database who was logged on where and when",
        description="Query what netsession watch recorded.",
    )
    h_sub = h.add_subparsers(dest="what", metavar="QUERY", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _db_option(common)
    common.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="output format (default: table)")
    q = h_sub.add_parser("now", parents=[common], help="the sessions seen in each server's latest answer")
    q.set_defaults(func=cmd_history)
    q = h_sub.add_parser("user", parents=[common], help="where and when USER had sessions")
    q.add_argument("name", metavar="USER", help="the user name (case-insensitive)")
    q.set_defaults(func=cmd_history)
    q = h_sub.add_parser("server", parents=[common], help="who was on SERVER at a time")
    q.add_argument("name", metavar="SERVER", help="the server, as the watch named it")
    q.add_argument("--at", metavar="TIME", help="ISO 8601 time, epoch seconds, -2h (default: now)")
    q.set_defaults(func=cmd_history)
    q = h_sub.add_parser("seen", parents=[common], help="first and last seen per (server, client, user)")
    q.add_argument("--server", help="only this server")
    q.add_argument("--user", help="only this user")
    q.add_argument("--client", help="only this client (address, or name when no address)")
    q.set_defaults(func=cmd_history)
    q = h_sub.add_parser("verdicts", parents=[common], help="changes of each server's verdict")
    q.add_argument("--server", help="only this server")
    q.set_defaults(func=cmd_history)
    q = h_sub.add_parser("prune", parents=[common], help="forget history older than --keep")
    q.add_argument("--keep", type=duration, required=True, metavar="DURATION", help="like 90d")
    q.set_defaults(func=cmd_history)
