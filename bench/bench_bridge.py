"""NetrSessionEnum through smbd with 1,000 sessions held: netsession samba-bridge beside Samba's own srvsvc.

Run by hand (not a test), as root (smbd switches uids); about a minute with the defaults:
    python3 bench/bench_bridge.py [--sessions 1000] [--calls 9] [--workers 4]

One private smbd (tests/interop/samba_bridge.py) with ``external_rpc_pipe:socket_dir`` set and the bridge
running; client processes (bench/_peers.py SessionHolders) hold --sessions authenticated sessions, one
TCP connection and one smbd process each. An administrator opens \\PIPE\\srvsvc through smbd and calls
NetrSessionEnum with MAX_PREFERRED_LENGTH --calls times (timed from the request to the last response
fragment, after one warm-up call):

1. through the bridge, level 502 and level 10, with the 65528-byte fragments our client offers and with
   the 4280 bytes Windows offers;
2. then the option is taken out of smb.conf and smbd reloaded (``smbcontrol smbd reload-config``): the
   same sessions, the same smbd, and srvsvc is Samba's own again (rpcd_classic via samba-dcerpcd), which
   answers level 1 only (502 and 10 are ERROR_INVALID_LEVEL) and offers 4280-byte fragments.

Server CPU is the bridge process's for (1), every process of that smbd's (smbd children, samba-dcerpcd,
rpcd_*) for (2). Every answer must hold every live session (the held ones and the administrator's).

Measured 2026-12-01 on a 2 vCPU AMD EPYC VM (Firecracker), 23.5 GiB, Linux 6.18, Python 3.11.7,
Samba 4.17.12-Debian, load ~0.5-1 (an earlier run at load 20-58 gave 42-58 ms for the bridge and 29 ms
for Samba):

    srvsvc                   live sessions  level   frag  entries   median ms  best ms  server CPU  stub kB  READs
                                                                                           ms/call
    netsession samba-bridge           1001    502  65528     1001        24.4     23.4        25.6    160.2      3
    netsession samba-bridge           1001     10  65528     1001        33.6     23.4        29.6     76.1      1
    netsession samba-bridge           1001    502   4280     1001        29.5     27.8        23.5    160.2     49
    netsession samba-bridge           1001     10   4280     1001        29.6     26.7        27.1     76.1     31
    Samba (rpcd_classic)              1001      1   4280     1001        16.7     16.2        14.6     80.1     31
    Samba (rpcd_classic)              1001    502   4280           status 124

Each bridge call re-reads Samba's state (the three TDBs, ~2,000 records, and a sock_diag dump of ~2,000
TCP sockets): ~16 ms of the ~25 ms of bridge CPU.
"""  # noqa: E501 - the recorded table is as printed

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import _peers
from _peers import ADMIN, HOST, USER, cpu_seconds, print_table, session_holders, smbd_children, wait_until
from _smb import SrvsvcPipe, open_srvsvc

from netsession.wire.srvsvc import NetrSessionEnumResponse

sys.path.insert(0, str(_peers.ROOT / "tests" / "interop"))
from samba_bridge import running_bridged_samba  # type: ignore[import-not-found]

HEADERS = [
    "srvsvc", "live sessions", "level", "frag", "entries", "median ms", "best ms", "server CPU\nms/call",
    "stub kB", "READs",
]


def _measure(
    pipe: SrvsvcPipe, level: int, calls: int, server_cpu: Callable[[], float], live: int
) -> list[str]:
    pipe.session_enum_raw(level)  # warm-up
    times = []
    cpu = server_cpu()
    for _ in range(calls):
        start = time.perf_counter()
        stub = pipe.session_enum_raw(level)
        times.append(time.perf_counter() - start)
    cpu = (server_cpu() - cpu) / calls
    response = NetrSessionEnumResponse.decode(stub)
    if response.status != 0:
        return [str(level), "", f"status {response.status}", "", "", "", "", ""]
    if len(response.entries) != live:
        print(f"level {level}: expected {live} sessions, got {len(response.entries)}", file=sys.stderr)
    return [
        str(level), str(len(response.entries)), f"{statistics.median(times) * 1e3:.1f}",
        f"{min(times) * 1e3:.1f}", f"{cpu * 1e3:.1f}", f"{pipe.last_response_bytes / 1e3:.1f}",
        str(pipe.last_reads),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="sessions held (one smbd process each)")
    parser.add_argument("--calls", type=int, default=9, help="timed calls per row")
    parser.add_argument("--workers", type=int, default=4, help="client processes holding the sessions")
    args = parser.parse_args()
    _peers.raise_nofile()
    print(_peers.machine_line())
    rows: list[list[str]] = []
    with running_bridged_samba(prefix="netsession-bench-bridge-") as samba, \
            session_holders(HOST, samba.port, *USER, workers=args.workers) as holders:
        print(f"holding {args.sessions} sessions...", file=sys.stderr)
        opened = holders.open(args.sessions)
        if opened.errors:
            print(f"{opened.errors} logons failed, first: {opened.first_error}", file=sys.stderr)
        wait_until(lambda: len(smbd_children(samba)) >= holders.held, 60)
        live = holders.held + 1  # and the administrator's
        assert samba.bridge is not None
        bridge_pid = samba.bridge.pid
        for frag in (0xFFF8, 4280):
            pipe = open_srvsvc(HOST, samba.port, *ADMIN, max_frag=frag)
            for level in (502, 10):
                row = _measure(pipe, level, args.calls, lambda: cpu_seconds(bridge_pid), live)
                rows.append(["netsession samba-bridge", str(live), row[0], str(frag), *row[1:]])
            pipe.smb.close()

        # The same smbd and sessions, with Samba's own srvsvc.
        text = samba.conf.read_text()
        samba.conf.write_text("".join(
            line for line in text.splitlines(keepends=True) if "external_rpc_pipe:socket_dir" not in line
        ))
        samba.run("smbcontrol", "-s", str(samba.conf), "smbd", "reload-config")
        time.sleep(2)

        def samba_cpu() -> float:
            total = 0.0
            for pid in samba.own_processes():
                with contextlib.suppress(OSError):
                    total += cpu_seconds(pid)
            return total

        pipe = open_srvsvc(HOST, samba.port, *ADMIN, max_frag=4280)
        for level in (1, 502):
            row = _measure(pipe, level, args.calls, samba_cpu, live)
            rows.append(["Samba (rpcd_classic)", str(live), row[0], "4280", *row[1:]])
        pipe.smb.close()
        with contextlib.suppress(subprocess.SubprocessError):
            samba.conf.write_text(text)
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
