"""Authenticated session setups per second: netsession beside smbd, same client, same machine.

Run by hand (not a test), as root (smbd switches uids); about 1 minute with the defaults:
    python3 bench/bench_setup_rate.py [--seconds 12] [--workers 1,4] [--servers netsession,smbd]

Each setup is a new TCP connection: NEGOTIATE (3.1.1, preauth SHA-512, signing required), SESSION_SETUP
in two legs (SPNEGO/NTLMv2 with MIC and mechListMIC), a signed LOGOFF, close — bench/_smb.py, the
same code against both servers. Every worker process runs these one after another for --seconds. The
table gives the setups per second of all workers together; the latency of one setup (median and 99th
percentile); CPU per setup — the server's (netsession: its process; smbd: the main process and the
per-connection processes it forked and reaped) and the clients' — and the server's CPU use over the run
(100% = one CPU; netsession is one thread, smbd one process per connection). netsession's memory before
and after the run shows whether setups leave anything behind.

Measured 2026-11-21 on a 2 vCPU AMD EPYC VM (Firecracker), 23.5 GiB, Linux 6.18, Python 3.11.7,
Samba 4.17.12-Debian, in the quietest moment of a shared machine (other runs, with other jobs busy:
netsession 253-408/s, smbd 28-122/s):

    server      workers  setups  setups/s  p50 ms  p99 ms  server CPU   server  client CPU  errors
                                                             ms/setup  CPU use    ms/setup
    netsession        1    3716       310    3.20    5.85        2.02      62%        1.17       0
    netsession        4    4742       395    9.61   21.36        1.86      73%        1.40       0
    smbd              1    1083        90   10.66   19.61       12.15     110%        1.90       0
    smbd              4    1666       139   28.38   48.02       11.82     164%        1.91       0
    netsession's memory: PSS 29.4 MB before, 27.2 MB after 8458 setups (RSS 38.8 -> 40.1 MB)

netsession spends ~1.9 ms of CPU per setup in its one thread (a ceiling near 500/s per server process);
smbd ~12 ms (a fork per connection) spread over every CPU. With 2 CPUs, 4 client processes and the
server share them, so the 4-worker rows are CPU-bound on both sides. Where netsession's time goes (cProfile):
the kernel's loopback send (~30%), three pure-Python RC4 key schedules per NTLM logon with KEY_EXCH
(~0.27 ms), the two INFO log lines per session (~7%), IntFlag arithmetic in header/NTLM hot paths (~5%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import _peers
from _peers import HOST, MB, USER, cpu_seconds, memory, print_table
from _smb import logon

HEADERS = [
    "server", "workers", "setups", "setups/s", "p50 ms", "p99 ms", "server CPU\nms/setup", "server\nCPU use",
    "client CPU\nms/setup", "errors",
]


def _worker(index: int, port: int, seconds: float, queue: Any) -> None:
    _peers.raise_nofile()
    latencies: list[float] = []
    errors, first = 0, ""
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        try:
            smb = logon(HOST, port, *USER)
            try:
                smb.logoff()
            finally:
                smb.close()
        except Exception as exc:  # counted and reported
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
            continue
        latencies.append(time.perf_counter() - now)
    queue.put((latencies, errors, first, time.perf_counter() - start, time.process_time() - cpu))


def _run(name: str, port: int, workers: int, seconds: float, server_cpu: Callable[[], float]) -> list[str]:
    for _ in range(20):  # warm-up
        smb = logon(HOST, port, *USER)
        smb.logoff()
        smb.close()
    cpu0, wall0 = server_cpu(), time.perf_counter()
    results = _peers.run_workers(workers, _worker, (port, seconds))
    cpu1, wall1 = server_cpu(), time.perf_counter()
    latencies = sorted(x for r in results for x in r[0])
    done = max(len(latencies), 1)
    errors = sum(r[1] for r in results)
    if errors:
        first = next(r[2] for r in results if r[2])
        print(f"{name}: {errors} setups failed, first: {first}", file=sys.stderr)
    return [
        name, str(workers), str(len(latencies)), f"{sum(len(r[0]) / r[3] for r in results):.0f}",
        f"{statistics.median(latencies) * 1e3:.2f}" if latencies else "-",
        f"{latencies[int(0.99 * (done - 1))] * 1e3:.2f}" if latencies else "-",
        f"{(cpu1 - cpu0) / done * 1e3:.2f}", f"{(cpu1 - cpu0) / (wall1 - wall0) * 100:.0f}%",
        f"{sum(r[4] for r in results) / done * 1e3:.2f}", str(errors),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per server and worker count")
    parser.add_argument("--workers", default="1,4", help="comma-separated client process counts")
    parser.add_argument("--servers", default="netsession,smbd")
    parser.add_argument("--log-level", default="info", help="the netsession server's (its default: info)")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    servers = args.servers.split(",")
    print(_peers.machine_line())
    rows, notes = [], []
    if "netsession" in servers:
        with _peers.running_netsession(log_level=args.log_level) as server:
            first = memory(server.pid)
            for workers in counts:
                print(f"netsession, {workers} workers...", file=sys.stderr)
                cpu = lambda: cpu_seconds(server.pid)  # noqa: E731
                rows.append(_run("netsession", server.port, workers, args.seconds, cpu))
            time.sleep(0.5)
            last = memory(server.pid)
        total = sum(int(r[2]) for r in rows)
        notes.append(
            f"netsession's memory: PSS {first.pss / MB:.1f} MB before, {last.pss / MB:.1f} MB after {total} "
            f"setups (RSS {first.rss / MB:.1f} -> {last.rss / MB:.1f} MB)"
        )
    if "smbd" in servers:
        with _peers.running_smbd() as samba:
            pid = samba.process.pid
            for workers in counts:
                print(f"smbd, {workers} workers...", file=sys.stderr)
                cpu = lambda: cpu_seconds(pid, reaped_children=True)  # noqa: E731
                rows.append(_run("smbd", samba.port, workers, args.seconds, cpu))
    print_table(HEADERS, rows)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
