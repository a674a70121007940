"""Sessions held open at once by one server process, and the memory each costs: netsession beside smbd.

Run by hand (not a test), as root (smbd switches uids); about 2 minutes:
    python3 bench/bench_sessions.py [--sessions 1000,10000] [--samba-sessions 200] [--workers 4]

netsession: one server process (bench/_peers.py serve: the objects `netsession serve` builds, log level
info, to a file). After a warm-up logon, PSS and RSS of the server process (/proc/PID/smaps_rollup) are
taken; --workers client processes then open N authenticated sessions — each its own TCP connection,
NEGOTIATE 3.1.1 + SPNEGO/NTLMv2 SESSION_SETUP with signing (bench/_smb.py) — and hold them. Memory is
taken again, and an administrator's NetrSessionEnum (level 10 over \\PIPE\\srvsvc) confirms that the table
holds the N sessions. Per session = (memory with N - memory before) / N. Then every client connection is
dropped, and memory is taken a third time: what the process keeps once the sessions are gone (freed
memory stays in Python's and malloc's pools, for the next sessions: repeated connect/disconnect cycles
of 5,000 sessions hold a flat 52 MB since commit f43598d). A fresh server for each N.

smbd: a private smbd (tests/interop/samba.py). smbd forks one process per connection, so the same
clients open fewer sessions (they are heavy); per session is the PSS (and RSS) of those per-connection
smbd processes divided by their number, and the 10,000 column is that times 10,000 (plus the main smbd).
Its own NetrSessionEnum (level 1: the only level besides 0 Samba answers, FACTS.md §6) confirms the count.

Measured 2026-11-21 on a 2 vCPU AMD EPYC VM (Firecracker), 23.5 GiB, Linux 6.18, Python 3.11.7,
Samba 4.17.12-Debian; other jobs shared the machine (load 5-6), which moves the logon rates by +-50% and
PSS (shared pages, divided among every process mapping them) by a few MB; USS does not move:

    server      sessions  in table  PSS before  PSS held   RSS held  PSS/session  RSS/session  USS/session  PSS for 10,000  logons/s  PSS after
    netsession      1000      1000     29.1 MB   33.4 MB    45.6 MB       4.4 kB       5.7 kB       5.7 kB           73 MB       536    35.8 MB
    netsession     10000     10000     26.4 MB   87.8 MB    99.9 MB       6.1 kB       6.0 kB       6.0 kB           88 MB       199    91.9 MB
    smbd             200       200     16.2 MB  153.5 MB  3045.6 MB     723.5 kB      15.1 MB     651.4 kB         7244 MB       147

So 10,000 sessions take ~88 MB in one netsession process (the issue's goal: under 500 MB), and would take
~7.2 GB as 10,000 smbd processes. Three earlier runs: netsession 10,000 at 84.4-86.8 MB PSS (5.7-6.0 kB
per session), smbd 722-723 kB PSS per connection.
"""  # noqa: E501 - the recorded tables are as printed

from __future__ import annotations

import argparse
import sys
import time

import _peers
from _peers import (
    ADMIN,
    HOST,
    MB,
    USER,
    Memory,
    memory,
    print_table,
    session_holders,
    smbd_children,
    wait_until,
)
from _smb import logon, open_srvsvc

HEADERS = [
    "server", "sessions", "in table", "PSS before", "PSS held", "RSS held", "PSS/session", "RSS/session",
    "USS/session", "PSS for 10,000", "logons/s", "PSS after",
]


def _count(port: int, level: int) -> tuple[int, int]:
    """(sessions of USER in the table, total entries), by an administrator's NetrSessionEnum."""
    pipe = open_srvsvc(HOST, port, *ADMIN)
    try:
        response = pipe.session_enum(level)
    finally:
        pipe.smb.close()
    if response.status != 0:
        raise RuntimeError(f"NetrSessionEnum level {level}: status {response.status}")
    users = [getattr(e, f"sesi{level}_username") for e in response.entries]
    return users.count(USER[0]), response.total_entries


def _warm_up(port: int) -> None:
    """One logon first: it loads the lazily imported code paths on the server."""
    smb = logon(HOST, port, *USER)
    smb.logoff()
    smb.close()


def _mb(value: float) -> str:
    return f"{value / MB:.1f} MB"


def _kb(value: float) -> str:
    return f"{value / 1e3:.1f} kB" if value < 1e6 else f"{value / MB:.1f} MB"


def bench_netsession(n: int, workers: int) -> list[str]:
    with _peers.running_netsession() as server:
        _warm_up(server.port)
        with session_holders(HOST, server.port, *USER, workers=workers) as holders:
            # Measured with the client processes already running: they map the same shared libraries
            # (libpython, libcrypto), which lowers the server's PSS share of those pages.
            time.sleep(0.5)
            before = memory(server.pid)
            opened = holders.open(n)
            if opened.errors:
                print(f"netsession: {opened.errors} logons failed: {opened.first_error}", file=sys.stderr)
            held = memory(server.pid)
            in_table, _ = _count(server.port, 10)
            holders.close()
        wait_until(lambda: _count(server.port, 10)[1] == 1, 60)  # only the administrator's own
        time.sleep(0.5)
        after = memory(server.pid)
    grown = held - before
    per = grown.pss / max(opened.sessions, 1)
    return [
        "netsession", str(opened.sessions), str(in_table), _mb(before.pss), _mb(held.pss), _mb(held.rss),
        _kb(per), _kb(grown.rss / max(opened.sessions, 1)), _kb(grown.uss / max(opened.sessions, 1)),
        f"{(before.pss + per * 10_000) / MB:.0f} MB",
        f"{opened.rate:.0f}", _mb(after.pss),
    ]


def bench_samba(n: int, workers: int) -> list[str]:
    with _peers.running_smbd() as samba:
        _warm_up(samba.port)
        wait_until(lambda: not smbd_children(samba), 10)
        with session_holders(HOST, samba.port, *USER, workers=workers) as holders:
            before = memory(samba.process.pid)
            opened = holders.open(n)
            if opened.errors:
                print(f"smbd: {opened.errors} logons failed, first: {opened.first_error}", file=sys.stderr)
            wait_until(lambda: len(smbd_children(samba)) >= opened.sessions, 30)
            time.sleep(1.0)
            kids = smbd_children(samba)
            children = Memory(0, 0, 0)
            for pid in kids:
                children = children + memory(pid)
            parent = memory(samba.process.pid)
            in_table, _ = _count(samba.port, 1)
            holders.close()
    count = max(len(kids), 1)
    per = children.pss / count
    return [
        "smbd", str(opened.sessions), str(in_table), _mb(before.pss), _mb(parent.pss + children.pss),
        _mb(parent.rss + children.rss), _kb(per), _kb(children.rss / count), _kb(children.uss / count),
        f"{(parent.pss + per * 10_000) / MB:.0f} MB", f"{opened.rate:.0f}", "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", default="1000,10000", help="netsession: comma-separated N")
    parser.add_argument("--samba-sessions", type=int, default=200, help="smbd: N (0 = skip smbd)")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    args = parser.parse_args()
    _peers.raise_nofile()
    print(_peers.machine_line())
    rows = []
    for n in (int(x) for x in args.sessions.split(",") if x):
        print(f"netsession: {n} sessions...", file=sys.stderr)
        rows.append(bench_netsession(n, args.workers))
    if args.samba_sessions:
        print(f"smbd: {args.samba_sessions} sessions...", file=sys.stderr)
        rows.append(bench_samba(args.samba_sessions, args.workers))
    print_table(HEADERS, rows)
    print(
        "PSS/RSS held: the server process (smbd: the main process and its per-connection processes); "
        "per session: the growth\nover 'before' / N (smbd: per per-connection process); USS: private "
        "memory only; PSS for 10,000: before + 10,000 x PSS/session."
    )


if __name__ == "__main__":
    main()
