"""The fleet scan: 1,000 simulated hosts on loopback (10% tarpits that accept and never answer), one deadline
per host — `netsession scan` beside impacket with 256 threads (what NetExec does) and a thread pool over
the smbprotocol-based client, measured in the same run; then `netsession scan` over a 100,000-target file.

    python3 bench/bench_fleet.py [--hosts 1000] [--tarpits 0.1] [--deadline 3] [--threads 256]
                                 [--big 100000] [--skip impacket,smbprotocol,big]

The simulated fleet is tests/fleet/fleet_sim.py: one `netsession serve` listening on the live hosts'
127.0.10.x-127.0.13.x addresses (each scan is a full TCP connect, SMB negotiate, NTLM logon, IPC$ tree,
srvsvc pipe, bind and NetrSessionEnum level 10), tarpits on 127.0.40.x. Every client runs in a process of
its own; its wall time, CPU (user + system, from wait4) and peak RSS (ru_maxrss) are its own. The server's
CPU is measured from /proc over each run. The 100,000-target file's hosts are 127.64.0.0/10 addresses
where nothing listens (refused at once): the figure is the client's memory with a big target list.

Figures of the last run (2026-12-01, 2 CPUs; netsession on netsession.aio) are in the README's
performance section and in this file's docstring end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fleet"))
sys.path.insert(0, str(ROOT / "tests" / "interop"))
sys.path.insert(0, str(ROOT / "bench"))

USER, PASSWORD = "alice", "Al1ce-pw!"  # tests/interop/netsession_server.py's plain user


# -- the peers, each run as `bench_fleet.py --peer NAME FILE DEADLINE THREADS` in a process of its own --


def _peer_impacket(host: str, port: int, deadline: float) -> str:
    from impacket.dcerpc.v5 import srvs, transport
    from impacket.smbconnection import SMBConnection

    try:
        conn = SMBConnection(host, host, sess_port=port, timeout=deadline)
        conn.login(USER, PASSWORD)
        rpc = transport.SMBTransport(host, port, filename=r"\srvsvc", smb_connection=conn)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        answer = srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)
        n = len(answer["InfoStruct"]["SessionInfo"]["Level10"]["Buffer"])
        conn.close()
        return "sessions" if n else "no-sessions"
    except Exception as exc:
        return type(exc).__name__


def _peer_smbprotocol(host: str, port: int, deadline: float) -> str:
    from _smbprotocol_transport import SmbPipeTransport

    from netsession.client.rpc import SrvsvcClient

    client = SrvsvcClient(SmbPipeTransport(host, port, username=USER, password=PASSWORD, timeout=deadline))
    try:
        client.connect()
        r = client.session_enum(10)
        return "sessions" if r.entries else "no-sessions"
    except Exception as exc:
        return type(exc).__name__
    finally:
        client.close()


def peer_main(name: str, path: str, deadline: float, threads: int) -> None:
    fn = {"impacket": _peer_impacket, "smbprotocol": _peer_smbprotocol}[name]
    targets = []
    for line in Path(path).read_text().split():
        host, _, port = line.rpartition(":")
        targets.append((host, int(port)))
    counts: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for outcome in pool.map(lambda t: fn(t[0], t[1], deadline), targets):
            counts[outcome] = counts.get(outcome, 0) + 1
    print(json.dumps(counts))
    sys.stdout.flush()
    os._exit(0)  # do not wait for smbprotocol's reader threads of hung connections


# -- measuring --------------------------------------------------------------------------------------------


def measure(argv: list[str], server_pid: int | None) -> dict[str, Any]:
    from _peers import cpu_seconds

    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = (cpu_seconds(server_pid) - server_before) if server_pid else 0.0
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss": usage.ru_maxrss * 1024,
        "server_cpu": server_cpu,
        "out": out,
        "err": err,
        "code": proc.returncode,
    }


def ours(path: Path, deadline: float, concurrency: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "netsession.cli", "scan", "-f", str(path), "-U", f"{USER}%{PASSWORD}",
            "--deadline", str(deadline), "--concurrency", str(concurrency), "--format", "jsonl",
            "-o", str(out), "--no-progress", "--summary"]


def verdicts_of(jsonl: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(jsonl) as f:
        for line in f:
            obj = json.loads(line)
            if obj["type"] == "host":
                counts[obj["verdict"]] = counts.get(obj["verdict"], 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--tarpits", type=float, default=0.1, help="share of tarpit hosts (default 0.1)")
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=256, help="the peers' thread pools (NetExec: 256)")
    parser.add_argument("--concurrency", type=int, default=256, help="netsession's (default 256)")
    parser.add_argument("--big", type=int, default=100_000, help="targets of the memory run")
    parser.add_argument("--skip", default="", help="comma-separated: impacket, smbprotocol, big")
    parser.add_argument("--peer", nargs=4, metavar=("NAME", "FILE", "DEADLINE", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        name, path, deadline, threads = args.peer
        peer_main(name, path, float(deadline), int(threads))
        return
    from _peers import machine_line, raise_nofile
    from fleet_sim import start_fleet

    raise_nofile()
    skip = {s for s in args.skip.split(",") if s}
    tarpits = round(args.hosts * args.tarpits)
    live = args.hosts - tarpits
    print(machine_line())
    print(f"fleet: {live} live hosts (one `netsession serve` on {live} addresses), {tarpits} tarpits; "
          f"deadline {args.deadline:g} s; peers' threads {args.threads}; netsession concurrency "
          f"{args.concurrency}")
    fleet = start_fleet(classic=live, hardened=0, unused=0, tarpits=tarpits, not_smb=0)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    rows = []
    try:
        targets = work / "targets"
        targets.write_text("\n".join(fleet.targets(fleet.classic_hosts + fleet.tarpit_hosts)) + "\n")
        server_pid = fleet.classic.process.pid if fleet.classic.process else None
        runs: list[tuple[str, list[str]]] = [("netsession scan (netsession.aio)",
                                              ours(targets, args.deadline, args.concurrency, work / "out"))]
        for peer in ("impacket", "smbprotocol"):
            if peer not in skip:
                runs.append((f"{peer}, {args.threads} threads",
                             [sys.executable, __file__, "--peer", peer, str(targets), str(args.deadline),
                              str(args.threads)]))
        for name, argv in runs:
            fleet.classic.reset()
            m = measure(argv, server_pid)
            if name.startswith("netsession"):
                counts = verdicts_of(work / "out")
            else:
                counts = json.loads(m["out"].strip().splitlines()[-1]) if m["out"].strip() else {}
            answered = counts.get("sessions", 0) + counts.get("no-sessions", 0)
            rows.append((name, m, counts, answered))
            print(f"  {name}: {m['wall']:.2f} s, exit {m['code']}, {counts}", flush=True)
    finally:
        fleet.stop()
    print()
    head = f"{'client':<34} {'wall s':>7} {'hosts/s':>8} {'answered':>8} {'CPU s':>7} {'CPU ms/live':>11} " \
           f"{'peak RSS MB':>11} {'server CPU s':>12}"
    print(head)
    print("-" * len(head))
    for name, m, _, answered in rows:
        rate = args.hosts / m["wall"]
        per = m["cpu"] / max(1, answered) * 1000
        print(f"{name:<34} {m['wall']:>7.2f} {rate:>8.0f} {answered:>8} {m['cpu']:>7.2f} {per:>11.1f} "
              f"{m['maxrss'] / 1e6:>11.1f} {m['server_cpu']:>12.2f}")
    ours_rate = args.hosts / rows[0][1]["wall"]
    for name, m, _, _ in rows[1:]:
        goal = " (goal >= 5x)" if name.startswith("impacket") else ""
        print(f"netsession / {name.split(',')[0]}: {ours_rate / (args.hosts / m['wall']):.1f}x hosts/s{goal}")
    print(f"1,000-host goal: {rows[0][1]['wall']:.2f} s (goal <= 10 s, servers included)")

    if "big" not in skip:
        big = work / "big"
        with open(big, "w") as f:
            for i, host in enumerate(ipaddress.ip_network("127.64.0.0/10").hosts()):
                if i == args.big:
                    break
                f.write(f"{host}:{fleet.port}\n")
        m = measure(ours(big, args.deadline, args.concurrency, work / "big.out"), None)
        counts = verdicts_of(work / "big.out")
        print(f"\n{args.big:,}-target file (nothing listens: refused): {m['wall']:.1f} s, "
              f"{args.big / m['wall']:.0f} hosts/s, CPU {m['cpu']:.1f} s, "
              f"peak RSS {m['maxrss'] / 1e6:.0f} MB (goal <= 200 MB); {counts}")

    # the 100,000-host estate on paper, from the 1,000-host figures
    m = rows[0][1]
    live_cpu = m["cpu"] / max(1, rows[0][3])
    server_cpu = m["server_cpu"] / max(1, rows[0][3])
    estate, share = 100_000, args.tarpits
    cpu_bound = estate * (1 - share) * live_cpu  # one scan is one event loop: one CPU
    wait_bound = estate * share * args.deadline / args.concurrency
    print(f"\n100,000-host estate on paper: live hosts cost {live_cpu * 1000:.1f} ms of client CPU each "
          f"(the servers' side is theirs, not ours); {estate * (1 - share):,.0f} live hosts on one "
          f"event loop (one CPU) ~ {cpu_bound:.0f} s of CPU-bound work; {estate * share:,.0f} silent hosts "
          f"each hold one of {args.concurrency} slots for {args.deadline:g} s ~ {wait_bound:.0f} s; "
          f"so ~ {max(cpu_bound, wait_bound) / 60:.1f}-{(cpu_bound + wait_bound) / 60:.1f} minutes a round "
          f"for one scan, less split between watchers (here {server_cpu * 1000:.1f} ms of the simulated "
          f"server's CPU per host shared the 2 CPUs).")


if __name__ == "__main__":
    main()
