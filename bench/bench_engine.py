r"""netsession's own SMB2/3 client engine beside the peers, in one run (issue 7's three figures).

Run by hand (not a test), as root or with a high RLIMIT_NOFILE; a few minutes:
    python3 bench/bench_engine.py [--hosts 100] [--fleet 1000] [--sessions 10000] [--calls 10]
                                  [--skip impacket,smbprotocol,fleet,enum]

1. Client CPU per host: a new connection, NEGOTIATE 3.1.1, logon (SPNEGO/NTLMv2), TREE_CONNECT IPC$,
   CREATE \PIPE\srvsvc, bind, NetrSessionEnum level 10, close — --hosts times in a row against one
   `netsession serve` holding a single session; CPU of this process (all its threads) per host:
     - netsession.aio: ``async with aio.connect(host, credentials=, timeout=) as srv: await
       srv.session_enum(10)`` (the per-host API a fleet scanner uses);
     - netsession sync: ``netsession.NetSessionEnum(10, host)`` then ``current_pool().close()`` (the
       blocking face: the same engine on its background loop);
     - smbprotocol transport: the client transport netsession had before (smbprotocol + pyspnego,
       bench/_smbprotocol_transport.py) under the same SrvsvcClient;
     - impacket: SMBConnection + login, SMBTransport + bind, hNetrSessionEnum, close.
   Goal: <= 2.5 ms for netsession.
2. --fleet hosts at once from one process: one `netsession serve --listen 127.0.X.Y:PORT` on --fleet
   loopback addresses, and a child process that runs ``asyncio.gather`` of one aio.connect +
   session_enum + close per address: wall time, and the child's peak RSS (ru_maxrss) beside its RSS
   after importing netsession (before any connection).
3. NetrSessionEnum level 10 of --sessions sessions on an open binding (held by 4 worker processes over
   bench/_smb.py), with 4,280-byte fragments (what a Windows server sends) and with 65,528-byte ones:
   median wall time of --calls calls; netsession sync (SrvsvcClient on the engine, READs in flight for
   what the fragments say is due) and aio (AsyncSrvsvcClient), beside the smbprotocol transport.
   Goals: <= 150 ms (4,280) and <= 60 ms (64 KiB). Every answer is checked for N entries.

Results of ``python3 bench/bench_engine.py --hosts 200 --calls 5`` (the machine is shared: at load average
6-8 the per-host CPU figures roughly double, for every client alike):

  2026-12-02  vm  AMD EPYC, 2 CPUs, 23.5 GiB  Linux 6.18.44-fc-v1045  Python 3.11.7  Samba 4.17.12-Debian
  cryptography 50.0.2, impacket 0.13.1, smbprotocol 1.17.0, pyspnego 0.12.4
  load average 1.79 3.03 3.90

  1. client CPU per host (connect, logon, bind, NetrSessionEnum 10, close; 200 hosts)
    client                                   CPU ms/host wall ms/host CPU / aio
    netsession.aio connect + session_enum           1.58         3.30       1.0
    netsession sync NetSessionEnum                  1.98         3.76       1.3
    smbprotocol transport (before)                  4.85         7.67       3.1
    impacket                                       12.77        15.52       8.1
    goal: netsession <= 2.5 ms of client CPU per host: met

  2. 1000 hosts at once from one process (netsession.aio, asyncio.gather)
    ok 1000/1000  wall 5.06 s  client CPU 1.93 s (1.93 ms/host)  RSS after import 31.8 MiB
    peak RSS 164.8 MiB  (136.2 KiB/host)

  3. NetrSessionEnum level 10 of 10000 sessions on an open binding (median of 5)
    client                                   fragment median ms cli CPU srv CPU
    netsession sync (engine)                     4280      49.9    17.7    32.3
    smbprotocol transport (before)               4280      91.7    53.8    38.7
    netsession.aio AsyncSrvsvcClient             4280      48.9    17.0    75.0
    netsession sync (engine)                    65528      32.4     9.1    23.1
    smbprotocol transport (before)              65528      37.3    12.8    24.5
    netsession.aio AsyncSrvsvcClient            65528      33.9     9.3    70.2
    goals: <= 150 ms with 4280-byte fragments, <= 60 ms with 64 KiB ones

  load average 2.86 3.14 3.90
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _peers
from _peers import HOST

USER = "nsbench"
PASSWORD = "B3nch-pw!"
LEVEL = 10
NETSESSION = [sys.executable, "-c", "import sys; from netsession.cli import main; sys.exit(main())"]
START_TIMEOUT = 120.0


class Serve:
    """``netsession serve`` on ``addresses`` (one port), a temporary state directory, one admin account."""

    def __init__(self, addresses: list[str]) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="netsession-bench-engine-"))
        self.port = _peers.free_port()
        self.addresses = addresses
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Serve:
        subprocess.run(
            [*NETSESSION, "user", "add", USER, "--group", "Administrators", "--password-stdin",
             "--state-dir", str(self.state_dir)],
            input=f"{PASSWORD}\n".encode(), check=True, capture_output=True, timeout=60,
        )
        listen = [arg for a in self.addresses for arg in ("--listen", f"{a}:{self.port}")]
        log = open(self.state_dir / "serve.log", "wb")
        self.process = subprocess.Popen(
            [*NETSESSION, "serve", *listen, "--state-dir", str(self.state_dir), "--idle-timeout", "0",
             "--name", "NSBENCH", "--log-level", "warning",
             "--max-sessions-per-account", "1000000"],  # section 3 holds 10,000 sessions of one account
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._up():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.state_dir / "serve.log").read_text())
            time.sleep(0.1)
        return self

    def _up(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.state_dir / "srvsvc.sock"))
            except OSError:
                return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def per_host(count: int, job: Callable[[], int], expect: int) -> tuple[float, float]:
    """``job`` once untimed, then ``count`` times: (CPU ms per host, wall ms per host)."""
    if job() < expect:
        raise SystemExit("the warm-up call returned too few sessions")
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        if job() < expect:
            raise SystemExit("a call returned too few sessions")
    return (time.process_time() - cpu) / count * 1e3, (time.perf_counter() - wall) / count * 1e3


# -- 1. client CPU per host ------------------------------------------------------------------------------


def cpu_rows(port: int, hosts: int, skip: set[str]) -> list[tuple[str, float, float]]:
    import netsession
    from netsession import aio
    from netsession.client.pool import Credentials, current_pool
    from netsession.client.rpc import SrvsvcClient

    creds = Credentials(USER, PASSWORD)
    where = f"{HOST}:{port}"
    rows = []

    async def aio_hosts(n: int) -> int:
        total = 0
        for _ in range(n):
            async with aio.connect(where, credentials=creds, timeout=30) as srv:
                total = len((await srv.session_enum(LEVEL)).records)
        return total

    def aio_job() -> int:
        return asyncio.run(aio_hosts(1))

    # One event loop for all hosts, as a scanner has: asyncio.run's own set-up is left out.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(aio_hosts(1))
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    loop.run_until_complete(aio_hosts(hosts))
    rows.append(("netsession.aio connect + session_enum", (time.process_time() - cpu) / hosts * 1e3,
                 (time.perf_counter() - wall) / hosts * 1e3))
    loop.close()

    netsession.register_session(HOST, username=USER, password=PASSWORD, port=port)

    def sync_job() -> int:
        n = len(netsession.NetSessionEnum(LEVEL, HOST))
        current_pool().close()
        return n

    rows.append(("netsession sync NetSessionEnum", *per_host(hosts, sync_job, 1)))

    if "smbprotocol" not in skip:
        from _smbprotocol_transport import SmbPipeTransport as OldTransport

        def old_job() -> int:
            client = SrvsvcClient(OldTransport(HOST, port, username=USER, password=PASSWORD))
            client.connect()
            try:
                return len(client.session_enum(LEVEL).entries)
            finally:
                client.close()

        rows.append(("smbprotocol transport (before)", *per_host(max(hosts // 2, 5), old_job, 1)))

    if "impacket" not in skip:
        from impacket.dcerpc.v5 import srvs, transport  # type: ignore[import-untyped]
        from impacket.smbconnection import SMBConnection  # type: ignore[import-untyped]

        def impacket_job() -> int:
            smb = SMBConnection(HOST, HOST, sess_port=port, timeout=60)
            smb.login(USER, PASSWORD)
            rpc = transport.SMBTransport(HOST, filename=r"\srvsvc", smb_connection=smb)
            dce = rpc.get_dce_rpc()
            dce.connect()
            dce.bind(srvs.MSRPC_UUID_SRVS)
            response = srvs.hNetrSessionEnum(dce, "\x00", "\x00", LEVEL)
            dce.disconnect()
            smb.logoff()
            smb.close()
            return len(response["InfoStruct"]["SessionInfo"][f"Level{LEVEL}"]["Buffer"])

        rows.append(("impacket", *per_host(max(hosts // 5, 5), impacket_job, 1)))
    return rows


# -- 2. a fleet at once ----------------------------------------------------------------------------------


def fleet_addresses(n: int) -> list[str]:
    return [f"127.0.{10 + i // 250}.{1 + i % 250}" for i in range(n)]


FLEET_CHILD = r"""
import asyncio, json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from netsession import aio
from netsession.client.pool import Credentials
rss0 = int(open("/proc/self/statm").read().split()[1]) * 4096
port, addresses = int(sys.argv[1]), sys.argv[2].split(",")
creds = Credentials(sys.argv[4], sys.argv[5])

async def one(address):
    async with aio.connect(f"{address}:{port}", credentials=creds, timeout=120) as srv:
        return len((await srv.session_enum(10)).records)

async def main():
    return await asyncio.gather(*(one(a) for a in addresses), return_exceptions=True)

cpu, wall = time.process_time(), time.perf_counter()
results = asyncio.run(main())
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
errors = [repr(r) for r in results if isinstance(r, BaseException)]
print(json.dumps({"wall": wall, "cpu": cpu, "ok": len(results) - len(errors), "errors": errors[:3],
                  "rss0": rss0, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def fleet_row(n: int) -> dict[str, Any]:
    import json

    addresses = fleet_addresses(n)
    with Serve([HOST, *addresses]) as serve:
        done = subprocess.run(
            [sys.executable, "-c", FLEET_CHILD, str(serve.port), ",".join(addresses),
             str(Path(__file__).parent), USER, PASSWORD],
            capture_output=True, text=True, timeout=900, check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"fleet child failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


# -- 3. a long answer on an open binding -----------------------------------------------------------------


def enum_rows(sessions: int, calls: int, skip: set[str]) -> list[tuple[str, int, float, float, float]]:
    from netsession.client.arpc import AsyncSrvsvcClient
    from netsession.client.pool import Credentials
    from netsession.client.rpc import SrvsvcClient
    from netsession.client.smb import open_pipe
    from netsession.client.transport import SmbPipeTransport
    from netsession.wire.dcerpc import ClientAssociation

    rows = []
    with Serve([HOST]) as serve, \
            _peers.session_holders(HOST, serve.port, USER, PASSWORD, workers=4) as holders:
        opened = holders.open(sessions - 1)
        if opened.errors:
            raise SystemExit(f"{opened.errors} logons failed: {opened.first_error}")
        clients: list[tuple[str, Any]] = [("netsession sync (engine)", SmbPipeTransport)]
        if "smbprotocol" not in skip:
            from _smbprotocol_transport import SmbPipeTransport as OldTransport

            clients.append(("smbprotocol transport (before)", OldTransport))
        for frag in (4280, 0xFFF8):
            for label, kind in clients:
                client = SrvsvcClient(kind(HOST, serve.port, username=USER, password=PASSWORD, timeout=120))
                client._assoc = ClientAssociation(max_xmit_frag=frag, max_recv_frag=frag)
                client.connect()
                try:
                    times, cpus, srv = [], [], []
                    for i in range(calls + 1):
                        gc.collect()
                        s0 = _peers.cpu_seconds(serve.pid)
                        cpu, start = time.process_time(), time.perf_counter()
                        r = client.session_enum(LEVEL)
                        wall = time.perf_counter() - start
                        if len(r.entries) != sessions:
                            raise SystemExit(f"{label}: {len(r.entries)} entries, expected {sessions}")
                        if i:
                            times.append(wall)
                            cpus.append(time.process_time() - cpu)
                            srv.append(_peers.cpu_seconds(serve.pid) - s0)
                    rows.append((label, frag, statistics.median(times) * 1e3, statistics.fmean(cpus) * 1e3,
                                 statistics.fmean(srv) * 1e3))
                finally:
                    client.close()

            async def aio_calls(frag: int = frag) -> tuple[float, float, float]:
                loop = asyncio.get_running_loop()
                creds = Credentials(USER, PASSWORD)
                pipe = await open_pipe(HOST, serve.port, creds, deadline=loop.time() + 120)
                client = AsyncSrvsvcClient(pipe)
                client._assoc = ClientAssociation(max_xmit_frag=frag, max_recv_frag=frag)
                await client.bind()
                pipe.deadline = None
                times, cpus, srv = [], [], []
                try:
                    for i in range(calls + 1):
                        gc.collect()
                        s0 = _peers.cpu_seconds(serve.pid)
                        cpu, start = time.process_time(), time.perf_counter()
                        r = await client.session_enum(LEVEL)
                        wall = time.perf_counter() - start
                        if len(r.entries) != sessions:
                            raise SystemExit(f"aio: {len(r.entries)} entries, expected {sessions}")
                        if i:
                            times.append(wall)
                            cpus.append(time.process_time() - cpu)
                            srv.append(_peers.cpu_seconds(serve.pid) - s0)
                finally:
                    client.close()
                return (statistics.median(times) * 1e3, statistics.fmean(cpus) * 1e3,
                        statistics.fmean(srv) * 1e3)

            rows.append(("netsession.aio AsyncSrvsvcClient", frag, *asyncio.run(aio_calls())))
    return rows


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n{title}", flush=True)
    yield


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    _peers.raise_nofile()
    from importlib.metadata import version

    print(_peers.machine_line())
    print(", ".join(f"{p} {version(p)}" for p in ("cryptography", "impacket", "smbprotocol", "pyspnego")))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    title = f"1. client CPU per host (connect, logon, bind, NetrSessionEnum 10, close; {args.hosts} hosts)"
    with section(title):
        with Serve([HOST]) as serve:
            rows = cpu_rows(serve.port, args.hosts, skip)
        base = rows[0][1]
        print(f"  {'client':<40} {'CPU ms/host':>11} {'wall ms/host':>12} {'CPU / aio':>9}")
        for name, cpu, wall in rows:
            print(f"  {name:<40} {cpu:>11.2f} {wall:>12.2f} {cpu / base:>9.1f}")
        print(f"  goal: netsession <= 2.5 ms of client CPU per host: {'met' if base <= 2.5 else 'NOT met'}")
    if "fleet" not in skip:
        with section(f"2. {args.fleet} hosts at once from one process (netsession.aio, asyncio.gather)"):
            r = fleet_row(args.fleet)
            per_host_cpu = r["cpu"] / args.fleet * 1e3
            per_host_mem = (r["peak"] - r["rss0"]) / args.fleet / 1024
            print(f"  ok {r['ok']}/{args.fleet}  wall {r['wall']:.2f} s  client CPU {r['cpu']:.2f} s "
                  f"({per_host_cpu:.2f} ms/host)  RSS after import {r['rss0'] / 2**20:.1f} MiB  "
                  f"peak RSS {r['peak'] / 2**20:.1f} MiB  ({per_host_mem:.1f} KiB/host)")
            if r["errors"]:
                print(f"  errors, first: {r['errors']}")
    if "enum" not in skip:
        with section(f"3. NetrSessionEnum level 10 of {args.sessions} sessions on an open binding "
                     f"(median of {args.calls})"):
            rows3 = enum_rows(args.sessions, args.calls, skip)
            print(f"  {'client':<40} {'fragment':>8} {'median ms':>9} {'cli CPU':>7} {'srv CPU':>7}")
            for name, frag, median, cpu, srv in rows3:
                print(f"  {name:<40} {frag:>8} {median:>9.1f} {cpu:>7.1f} {srv:>7.1f}")
            print("  goals: <= 150 ms with 4280-byte fragments, <= 60 ms with 64 KiB ones")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
