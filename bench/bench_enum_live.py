"""NetrSessionEnum round trip against a server holding many live sessions: netsession beside smbd.

Run by hand (not a test), as root (smbd switches uids); about 1 minute with the defaults:
    python3 bench/bench_enum_live.py [--sessions 100,10000] [--samba-sessions 200] [--calls 9]
                                     [--server-max-frag 65528]

netsession: client processes (bench/_peers.py SessionHolders) open and hold sessions, growing the table
to each size in turn; an administrator, its \\PIPE\\srvsvc already open and bound (netsession's
ClientAssociation + srvsvc codecs over bench/_smb.py's signed SMB 3.1.1), then calls NetrSessionEnum
level 502 with MAX_PREFERRED_LENGTH --calls times. A call is timed from the request going out to the last
response fragment in (FSCTL_PIPE_TRANSCEIVE, then a READ per further fragment: the pipe is in message
mode and each fragment is a message); the table gives the median and the best call, the server's CPU per
call, the client's decoding of the stub into SESSION_INFO_502 records (apart, not in the round trip), the
stub's size, the DCE/RPC octets carried and the READs needed. The decoded count must equal the live
sessions (the held ones + the administrator's).

--server-max-frag runs netsession a second time with its srvsvc associations accepting larger fragments
(an experiment done by patching the server process from the bench; the server's own limit is 4280
octets, what Windows offers over named pipes).

smbd: the same with fewer sessions (one smbd process each), at level 1: Samba answers levels 0 and 1
only (502 is ERROR_INVALID_LEVEL, FACTS.md §6). Its server CPU is that of every process of that smbd
(the enumerating connection's smbd and rpcd_classic, which serves srvsvc).

Measured 2026-11-21 on a 2 vCPU AMD EPYC VM (Firecracker), 23.5 GiB, Linux 6.18, Python 3.11.7,
Samba 4.17.12-Debian; other jobs shared the machine (load 3-19 during this run), so medians wander and
"best" is the steadier figure:

    server                  live sessions  level  entries  median ms  best ms  server CPU  client decode  stub kB  PDUs kB  READs
                                                                                  ms/call             ms
    netsession                        101    502      101        3.0      2.8         1.9            2.8     16.2     16.3      3
    netsession                      10001    502    10001      540.6    206.4       172.0           25.4   1600.2   1609.2    375
    netsession, frag 65528            101    502      101        1.0      0.8         0.7            0.3     16.2     16.2      0
    netsession, frag 65528          10001    502    10001       78.4     44.0        72.0           40.9   1600.2   1600.8     24
    smbd                              201      1      201        8.5      6.0         5.5            0.6     16.1     16.2      2

(an earlier run, load ~3: netsession 10,001 median 366 / best 218 ms, 192 ms server CPU; with 65528-octet
fragments 106 / 54 ms.) With 10,000 sessions the 1.6 MB answer goes out in 4280-octet fragments, one READ
round trip each: 375 of them cost more than building the answer (table walk ~20 ms + NDR encoding ~18 ms
for 10,000 level-502 records, measured in-process). Accepting the client's larger max_recv_frag (the
project's own client offers 0xFFF8) cuts the call 4-5x.
"""  # noqa: E501 - the recorded tables are as printed

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable

import _peers
from _peers import ADMIN, HOST, USER, cpu_seconds, print_table, session_holders, smbd_children, wait_until
from _smb import SrvsvcPipe, open_srvsvc

from netsession.wire.srvsvc import NetrSessionEnumResponse

HEADERS = [
    "server", "live sessions", "level", "entries", "median ms", "best ms", "server CPU\nms/call",
    "client decode\nms", "stub kB", "PDUs kB", "READs",
]


def _measure(pipe: SrvsvcPipe, level: int, calls: int, server_cpu: Callable[[], float]) -> list[str]:
    pipe.session_enum_raw(level)  # warm-up
    times = []
    cpu = server_cpu()
    for _ in range(calls):
        start = time.perf_counter()
        stub = pipe.session_enum_raw(level)
        times.append(time.perf_counter() - start)
    cpu = (server_cpu() - cpu) / calls
    start = time.perf_counter()
    response = NetrSessionEnumResponse.decode(stub)
    decode = time.perf_counter() - start
    if response.status != 0:
        raise RuntimeError(f"NetrSessionEnum level {level}: status {response.status}")
    return [
        str(level), str(len(response.entries)), f"{statistics.median(times) * 1e3:.1f}",
        f"{min(times) * 1e3:.1f}", f"{cpu * 1e3:.1f}", f"{decode * 1e3:.1f}",
        f"{pipe.last_response_bytes / 1e3:.1f}", f"{pipe.last_pdu_bytes / 1e3:.1f}", str(pipe.last_reads),
    ]


def bench_netsession(sizes: list[int], calls: int, workers: int, label: str) -> list[list[str]]:
    rows = []
    with _peers.running_netsession() as server, \
            session_holders(HOST, server.port, *USER, workers=workers) as holders:
        pipe = open_srvsvc(HOST, server.port, *ADMIN)
        for size in sizes:
            print(f"{label}: {size} sessions...", file=sys.stderr)
            opened = holders.open(size - holders.held)
            if opened.errors:
                print(f"{opened.errors} logons failed, first: {opened.first_error}", file=sys.stderr)
            row = _measure(pipe, 502, calls, lambda: cpu_seconds(server.pid))
            live = holders.held + 1
            if int(row[1]) != live:
                print(f"expected {live} sessions, enumerated {row[1]}", file=sys.stderr)
            rows.append([label, str(live), *row])
        pipe.smb.close()
    return rows


def bench_samba(size: int, calls: int, workers: int) -> list[str]:
    with _peers.running_smbd() as samba, session_holders(HOST, samba.port, *USER, workers=workers) as holders:
        print(f"smbd: {size} sessions...", file=sys.stderr)
        pipe = open_srvsvc(HOST, samba.port, *ADMIN)
        opened = holders.open(size)
        if opened.errors:
            print(f"{opened.errors} logons failed, first: {opened.first_error}", file=sys.stderr)
        wait_until(lambda: len(smbd_children(samba)) >= size + 1, 30)

        def cpu() -> float:
            total = 0.0
            for pid in samba.own_processes():
                with contextlib.suppress(OSError):
                    total += cpu_seconds(pid)
            return total

        row = ["smbd", str(holders.held + 1), *_measure(pipe, 1, calls, cpu)]
        pipe.smb.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", default="100,10000", help="netsession: comma-separated sizes")
    parser.add_argument("--samba-sessions", type=int, default=200, help="smbd: sessions (0 = skip smbd)")
    parser.add_argument("--calls", type=int, default=9, help="timed calls per size")
    parser.add_argument("--workers", type=int, default=4, help="client processes holding the sessions")
    parser.add_argument(
        "--server-max-frag", type=int, default=0, metavar="OCTETS",
        help="also run netsession with srvsvc associations accepting fragments this large (an experiment)",
    )
    args = parser.parse_args()
    _peers.raise_nofile()
    sizes = sorted(int(x) for x in args.sessions.split(",") if x)
    print(_peers.machine_line())
    rows = bench_netsession(sizes, args.calls, args.workers, "netsession")
    if args.server_max_frag:
        os.environ["NETSESSION_BENCH_MAX_FRAG"] = str(args.server_max_frag)  # read by the server process
        try:
            label = f"netsession, frag {args.server_max_frag}"
            rows += bench_netsession(sizes, args.calls, args.workers, label)
        finally:
            del os.environ["NETSESSION_BENCH_MAX_FRAG"]
    if args.samba_sessions:
        rows.append(bench_samba(args.samba_sessions, args.calls, args.workers))
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
