r"""NetSessionEnum level 10 end to end against `netsession serve` holding 1,000 and 10,000 sessions:
netsession's client beside impacket's and Samba's rpcclient, on the same server in the same run.

Run by hand (not a test), as root or with a high RLIMIT_NOFILE (one descriptor per held session); about
two minutes:
    python3 bench/bench_client.py [--sessions 1000,10000] [--connects 5] [--calls 15] [--impacket-calls 3]
                                  [--rpcclient-calls 20] [--skip impacket,rpcclient]

The server: ``netsession serve --listen 127.0.0.1:PORT --state-dir TMP --idle-timeout 0`` with one
account (``netsession user add nsbench --group Administrators --password-stdin``). Client processes
(bench/_peers.py SessionHolders over bench/_smb.py: NEGOTIATE 3.1.1 + SPNEGO/NTLMv2, signed) log on
as that same account and hold N - 1 sessions; the client being measured has the N-th. Every client asks
the same thing: NetrSessionEnum level 10, ClientName ``\\127.0.0.1``, UserName ``nsbench``,
MAX_PREFERRED_LENGTH. The filters are there because rpcclient's ``netsessenum [client] [user] [level]``
takes the level only as its third argument and its ``-c`` line is split by popt, which drops an empty
``''``: level 10 cannot be asked of it without a client and a user filter. Every held session is
``\\127.0.0.1`` / nsbench, so the filters keep all N, and the server does the same work for each client.

Two ways, each a row:
  connect: a fresh connection per enumeration - TCP connect, NEGOTIATE, SESSION_SETUP, TREE_CONNECT
      IPC$, CREATE \PIPE\srvsvc, bind, the call, the records decoded, close. --connects timed runs after
      one untimed warm-up.
      - netsession: ``netsession.NetSessionEnum(10, "127.0.0.1", client, user)`` after
        ``netsession.register_session("127.0.0.1", username=, password=, port=PORT)`` (pywin32 dicts;
        the pool's connection is closed after each call with ``current_pool().close()``);
      - impacket: SMBConnection + login, transport.SMBTransport(filename=r"\srvsvc") + bind,
        ``srvs.hNetrSessionEnum``, disconnect, logoff, close;
      - rpcclient: the whole process, ``rpcclient -c 'netsessenum \\\\127.0.0.1 nsbench 10'`` (its
        start-up included, as a script calling it pays it; the start-up alone, ``rpcclient --version``,
        is printed apart).
  bound: the call alone on a binding already open, --calls timed calls after one untimed one.
      - netsession: ``netsession.NetSessionEnum`` on the pool's kept connection (pywin32 dicts), and
        ``SrvsvcClient.session_enum`` (SESSION_INFO_10 records) on a binding held by the caller - also
        with its association offering 4280-byte fragments, as impacket and rpcclient offer and as a
        Windows server grants everyone. The netsession server settles on the client's offer (up to
        65528): netsession's own 0xFFF8 gets the 10,000-session answer (~800 kB) in ~13 fragments, the
        4280-byte clients in ~190, one SMB2 READ each;
      - impacket: ``srvs.hNetrSessionEnum`` on one bound DCERPC_v5 (--impacket-calls calls: it is slow);
      - rpcclient: one process running the command K times in one ``-c 'cmd;cmd;...'`` (rpcclient keeps
        its srvsvc pipe open across commands) minus one running it once: per call =
        (T(K) - T(1)) / (K - 1), T the best of --rpcclient-runs runs, K = --rpcclient-calls + 1. Only
        that mean is known, so its median and best columns are the same number.
Two rows that are not clients show where the time goes: "floor", the same call over bench/_smb.py's
bare Python SMB client, no decoding (the server's work, the wire, and little more); and "decode",
netsession's ``NetrSessionEnumResponse.decode`` of that stub alone.

Columns, in milliseconds per enumeration: "median" and "best" wall time of the timed calls; "cli CPU",
the mean CPU time of the client (this process with its threads - smbprotocol has a receiving thread -
or the rpcclient process); "srv CPU", that of the server process (/proc/PID/stat, 10 ms ticks); "/ ours",
the median over netsession.NetSessionEnum's in the same mode. The machine is shared: the load average
is printed before and after; where it was high, the CPU columns are the steadier figures.

Checked, so that each client does the whole job: every timed call of every client returns N entries
(rpcclient: each "Received N entries."), each ``\\127.0.0.1`` / nsbench; a mismatch stops the run.

Results of `python3 bench/bench_client.py` (server at commit b2a4961: 65528-byte fragments for clients
that offer them), impacket 0.13.1, smbprotocol 1.17.0, pyspnego 0.12.4:

  2026-11-21  vm  AMD EPYC, 2 CPUs, 23.5 GiB  Linux 6.18.44-fc-v657  Python 3.11.7  Samba 4.17.12-Debian
  rpcclient start-up alone (rpcclient --version): 33.1 ms
  load average 0.65 1.83 2.91
       N  client                                mode    calls   median     best  cli CPU  srv CPU  / ours
    1000  netsession NetSessionEnum             connect     5     31.1     26.5     19.6     11.8    1.00
    1000  netsession NetSessionEnum             bound      15     12.0      8.1      5.7      8.0    1.00
    1000  netsession SrvsvcClient               bound      15      8.3      7.2      4.3      4.9    0.69
    1000  netsession SrvsvcClient, 4280-B frags bound      15     33.5     20.8     20.3     11.5    2.79
    1000  impacket hNetrSessionEnum             connect     3    282.4    281.9    298.5     21.2    9.08
    1000  impacket hNetrSessionEnum             bound       3    254.9    239.5    237.2     13.7   21.21
    1000  rpcclient netsessenum                 connect     5     68.7     61.8     49.5     15.6    2.21
    1000  rpcclient (T(21)-T(1))/20             bound       1     15.2     15.2      3.0     10.6    1.26
    1000  floor: bare client, no decoding       bound      15      7.5      5.2      1.2      5.9    0.62
    1000  decode: NetrSessionEnumResponse       -          15      1.3      1.0      1.4      0.0
    connect: impacket/netsession   9.1x (goal >= 10), netsession/rpcclient 0.45x (<= 2); by CPU  10.2x, 0.48x
    bound:   impacket/netsession  21.2x (goal >= 10), netsession/rpcclient 0.79x (<= 2); by CPU  18.4x, 1.00x
   10000  netsession NetSessionEnum             connect     5     95.7     77.0     43.6     49.7    1.00
   10000  netsession NetSessionEnum             bound      15     89.0     66.8     39.2     55.9    1.00
   10000  netsession SrvsvcClient               bound      15     73.5     57.5     30.4     57.9    0.83
   10000  netsession SrvsvcClient, 4280-B frags bound      15    254.6    199.0    154.8    101.0    2.86
   10000  impacket hNetrSessionEnum             connect     3   2796.5   2770.6   2676.3    181.7   29.23
   10000  impacket hNetrSessionEnum             bound       3   2860.4   2507.3   2672.6    122.0   32.12
   10000  rpcclient netsessenum                 connect     5    187.8    173.4     79.7    107.9    1.96
   10000  rpcclient (T(21)-T(1))/20             bound       1    145.3    145.3     26.6    115.9    1.63
   10000  floor: bare client, no decoding       bound      15     63.4     38.1      5.4     70.6    0.71
   10000  decode: NetrSessionEnumResponse       -          15     15.3     10.2     14.4      0.0
    connect: impacket/netsession  29.2x (goal >= 10), netsession/rpcclient 0.51x (<= 2); by CPU  30.6x, 0.50x
    bound:   impacket/netsession  32.1x (goal >= 10), netsession/rpcclient 0.61x (<= 2); by CPU  29.4x, 0.67x
  load average 1.27 1.77 2.81

Where the time goes at 10,000 sessions, bound: the server encodes and sends the ~800 kB answer (srv CPU
55-70 ms; the floor row, a client adding ~5 ms of CPU, is about that). netsession's client adds 30-40 ms
of CPU: decoding ~10-15 ms (the decode row), the ~13 READs of 64 KiB through smbprotocol and the
fragments' reassembly ~10-15 ms, and for the pywin32 shape the dicts (~6 ms), the cnames' UNC check
(~1.5 ms) and the client-side filter (~2 ms; it matters for Samba, which ignores the filters). With
4280-byte fragments, as from a Windows server, the ~190 READs cost ~0.75 ms of client CPU each in
smbprotocol (Structure-based packing of header and request, signing, and its receiving thread's parsing
and signature check): ~150 ms, against ~0.1 ms per READ for rpcclient in C; still 1.75x rpcclient.
impacket's time is its NDR decoding: its client CPU is its wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _peers
from _peers import HOST, session_holders
from _smb import SrvsvcPipe, open_srvsvc

from netsession.client.rpc import SrvsvcClient
from netsession.client.transport import SmbPipeTransport
from netsession.records import MAX_PREFERRED_LENGTH, SESSION_INFO_10, SessionInfo
from netsession.wire.dcerpc import DEFAULT_MAX_FRAG, ClientAssociation
from netsession.wire.srvsvc import NetrSessionEnumRequest, NetrSessionEnumResponse, Opnum

USER = "nsbench"
PASSWORD = "B3nch-pw!"
LEVEL = 10
CLIENT = "\\\\127.0.0.1"  # every session's cname, and the client filter
NETSESSION = [sys.executable, "-c", "import sys; from netsession.cli import main; sys.exit(main())"]
# What rpcclient reads instead of the host's smb.conf.
CLIENT_CONF = "[global]\n    client min protocol = SMB2_02\n    client max protocol = SMB3\n"
# popt reads "\\\\" as an escaped "\\": four backslashes in -c reach the wire as the two of CLIENT.
RPCCLIENT_CMD = f"netsessenum {CLIENT.replace(chr(92), chr(92) * 2)} {USER} {LEVEL}"
RECEIVED = re.compile(r"Received (\d+) entries\.")
START_TIMEOUT = 20.0


Pairs = list[tuple[Any, Any]]  # (cname, username) of each session returned


class Mismatch(Exception):
    """A client did not return the N sessions the server holds."""


# -- the server ------------------------------------------------------------------------------------------


class Server:
    """``netsession serve`` on a free loopback port, in a temporary state directory with one account."""

    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="netsession-bench-client-"))
        self.port = _peers.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.state_dir / "serve.log"

    def start(self) -> None:
        subprocess.run(
            [*NETSESSION, "user", "add", USER, "--group", "Administrators", "--password-stdin",
             "--state-dir", str(self.state_dir)],
            input=f"{PASSWORD}\n".encode(), check=True, capture_output=True, timeout=60,
        )
        (self.state_dir / "client.conf").write_text(CLIENT_CONF)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*NETSESSION, "serve", "--listen", f"{HOST}:{self.port}", "--state-dir", str(self.state_dir),
                 "--idle-timeout", "0", "--name", "NSBENCH", "--log-level", "warning",
                 "--max-sessions-per-account", "1000000"],  # the benchmark holds 10,000 of one account
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"netsession serve did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _listening(self) -> bool:
        # The local socket appears once every TCP listener is up.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.state_dir / "srvsvc.sock"))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    server = Server()
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- timing and checking ---------------------------------------------------------------------------------


def children_cpu() -> float:
    """User + system CPU of the child processes waited for so far (rpcclient's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    """Per timed call: wall seconds, CPU seconds of the client (this process with its threads, or the
    rpcclient child) and of the server process."""

    wall: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)


class Meter:
    """Runs and times jobs; knows the server's pid for its CPU time (/proc/PID/stat)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def timed(self, calls: int, job: Callable[[], Any], check: Callable[[Any], None], *,
              child: bool = False) -> Timing:
        """``job`` once untimed, then ``calls`` timed runs; each result is checked outside the timing.
        ``child``: the job is a child process, whose CPU counts as the client's."""
        check(job())
        timing = Timing()
        client_clock = children_cpu if child else time.process_time
        for _ in range(calls):
            gc.collect()  # each call starts from the same heap: the previous result is gone
            server0, client0, start = _peers.cpu_seconds(self.server_pid), client_clock(), time.perf_counter()
            result = job()
            wall = time.perf_counter() - start
            timing.client_cpu.append(client_clock() - client0)
            timing.server_cpu.append(_peers.cpu_seconds(self.server_pid) - server0)
            timing.wall.append(wall)
            check(result)
            del result
        return timing


@dataclass
class Row:
    sessions: int
    client: str
    mode: str
    timing: Timing

    @property
    def calls(self) -> int:
        return len(self.timing.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.timing.wall)

    @property
    def best(self) -> float:
        return min(self.timing.wall)

    @property
    def client_cpu(self) -> float:
        return statistics.fmean(self.timing.client_cpu)

    @property
    def server_cpu(self) -> float:
        return statistics.fmean(self.timing.server_cpu)


def pairs_of(entries: Sequence[SessionInfo]) -> Pairs:
    """(cname, username) of decoded records (a record of another level than 10 fails the check)."""
    return [
        (e.sesi10_cname, e.sesi10_username) if isinstance(e, SESSION_INFO_10) else (e, None) for e in entries
    ]


def expect(n: int, what: str) -> Callable[[Pairs], None]:
    def check(pairs: Pairs) -> None:
        if len(pairs) != n:
            raise Mismatch(f"{what}: {len(pairs)} sessions, expected {n}")
        wrong = [p for p in pairs if p != (CLIENT, USER)]
        if wrong:
            raise Mismatch(f"{what}: {len(wrong)} sessions are not {CLIENT} / {USER}, e.g. {wrong[0]}")
    return check


# -- netsession ------------------------------------------------------------------------------------------


def netsession_rows(n: int, port: int, meter: Meter, connects: int, calls: int) -> list[Row]:
    import netsession
    from netsession.client.pool import current_pool
    server = HOST  # registered with the port: what a script does
    netsession.register_session(HOST, username=USER, password=PASSWORD, port=port)

    def pairs(records: list[dict[str, Any]]) -> Pairs:
        return [(r["client_name"], r["user_name"]) for r in records]

    def connected() -> list[dict[str, Any]]:
        records = netsession.NetSessionEnum(LEVEL, server, CLIENT, USER)
        current_pool().close()
        return records

    rows = [Row(n, "netsession NetSessionEnum", "connect",
                meter.timed(connects, connected, lambda r: expect(n, "netsession (a)")(pairs(r))))]
    rows.append(Row(n, "netsession NetSessionEnum", "bound", meter.timed(
        calls, lambda: netsession.NetSessionEnum(LEVEL, server, CLIENT, USER),
        lambda r: expect(n, "netsession (b)")(pairs(r)),
    )))
    current_pool().close()

    for label, frag in (("", None), (", 4280-B frags", DEFAULT_MAX_FRAG)):
        transport = SmbPipeTransport(HOST, port, username=USER, password=PASSWORD)
        client = SrvsvcClient(transport, server_name=f"\\\\{HOST}")
        if frag is not None:
            # What every client gets from a Windows server, and what impacket and rpcclient offer (they
            # ask for 4280-byte fragments; the server settles on the client's offer): the answer comes
            # in ~190 fragments, one READ each, instead of ~13.
            client._assoc = ClientAssociation(max_xmit_frag=frag, max_recv_frag=frag)
        client.connect()
        try:
            rows.append(Row(n, f"netsession SrvsvcClient{label}", "bound",
                            meter.timed(calls, functools.partial(srvsvc_call, client),
                                        expect(n, f"SrvsvcClient{label} (b)"))))
        finally:
            client.close()
    return rows


def srvsvc_call(client: SrvsvcClient) -> Pairs:
    """One NetrSessionEnum on a held binding; the (cname, user) pairs built inside the timing stand in
    for a caller's use of the records."""
    response = client.session_enum(LEVEL, CLIENT, USER)
    if response.status != 0:
        raise Mismatch(f"SrvsvcClient: status {response.status}")
    return pairs_of(response.entries)


def floor_rows(n: int, port: int, meter: Meter, calls: int) -> list[Row]:
    """The same call over bench/_smb.py with no decoding, and netsession's decoding of its stub."""
    request = NetrSessionEnumRequest(None, CLIENT, USER, LEVEL, MAX_PREFERRED_LENGTH, 0).encode()
    pipe: SrvsvcPipe = open_srvsvc(HOST, port, USER, PASSWORD)
    try:
        stub = b""

        def raw() -> bytes:
            nonlocal stub
            stub = pipe.call(Opnum.NetrSessionEnum, request)
            return stub

        def check_stub(data: bytes) -> None:
            response = NetrSessionEnumResponse.decode(data)
            expect(n, "floor")(pairs_of(response.entries))

        floor = meter.timed(calls, raw, check_stub)
        rows = [Row(n, "floor: bare client, no decoding", "bound", floor)]
    finally:
        pipe.smb.close()
    rows.append(Row(n, "decode: NetrSessionEnumResponse", "-", meter.timed(
        calls, lambda: NetrSessionEnumResponse.decode(stub),
        lambda r: expect(n, "decode")(pairs_of(r.entries)),
    )))
    return rows


# -- impacket --------------------------------------------------------------------------------------------


def impacket_rows(n: int, port: int, meter: Meter, connects: int, calls: int) -> list[Row]:
    from impacket.dcerpc.v5 import srvs, transport  # type: ignore[import-untyped]
    from impacket.smbconnection import SMBConnection  # type: ignore[import-untyped]

    def bind() -> tuple[Any, Any]:
        smb = SMBConnection(HOST, HOST, sess_port=port, timeout=120)
        smb.login(USER, PASSWORD)
        rpc = transport.SMBTransport(HOST, filename=r"\srvsvc", smb_connection=smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        return smb, dce

    def enum(dce: Any) -> Any:
        return srvs.hNetrSessionEnum(dce, CLIENT + "\x00", USER + "\x00", LEVEL)

    def pairs(response: Any) -> Pairs:
        container = response["InfoStruct"]["SessionInfo"][f"Level{LEVEL}"]
        return [(e["sesi10_cname"][:-1], e["sesi10_username"][:-1]) for e in container["Buffer"]]

    def close(smb: Any, dce: Any) -> None:
        dce.disconnect()
        smb.logoff()
        smb.close()

    def connected() -> Any:
        smb, dce = bind()
        response = enum(dce)
        close(smb, dce)
        return response

    rows = [Row(n, "impacket hNetrSessionEnum", "connect",
                meter.timed(connects, connected, lambda r: expect(n, "impacket (a)")(pairs(r))))]
    smb, dce = bind()
    try:
        rows.append(Row(n, "impacket hNetrSessionEnum", "bound",
                        meter.timed(calls, lambda: enum(dce), lambda r: expect(n, "impacket (b)")(pairs(r)))))
    finally:
        close(smb, dce)
    return rows


# -- rpcclient -------------------------------------------------------------------------------------------


def rpcclient(server: Server, commands: int) -> str:
    done = subprocess.run(
        ["rpcclient", "-s", str(server.state_dir / "client.conf"), "-p", str(server.port), HOST,
         "-U", f"{USER}%{PASSWORD}", "-c", ";".join([RPCCLIENT_CMD] * commands)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False,
    )
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise Mismatch(f"rpcclient exited with {done.returncode}: {out[-500:]}")
    return out


def rpcclient_check(n: int, commands: int, what: str) -> Callable[[str], None]:
    def check(out: str) -> None:
        counts = [int(c) for c in RECEIVED.findall(out)]
        if counts != [n] * commands:
            raise Mismatch(f"{what}: {commands} x 'Received {n} entries.' wanted, got {counts}: {out[-200:]}")
    return check


def rpcclient_rows(n: int, server: Server, meter: Meter, connects: int, calls: int, runs: int) -> list[Row]:
    """(a) ``connects`` runs of one process each; (b) from runs of 1 and of ``calls`` + 1 commands."""
    rows = [Row(n, "rpcclient netsessenum", "connect", meter.timed(
        connects, lambda: rpcclient(server, 1), rpcclient_check(n, 1, "rpcclient (a)"), child=True))]
    k = calls + 1
    one = meter.timed(runs, lambda: rpcclient(server, 1), rpcclient_check(n, 1, "T(1)"), child=True)
    many = meter.timed(runs, lambda: rpcclient(server, k), rpcclient_check(n, k, f"T({k})"), child=True)
    # Wall: the best runs; CPU: the means (its clock ticks are 10 ms).
    per_call = Timing(
        [(min(many.wall) - min(one.wall)) / (k - 1)],
        [(statistics.fmean(many.client_cpu) - statistics.fmean(one.client_cpu)) / (k - 1)],
        [(statistics.fmean(many.server_cpu) - statistics.fmean(one.server_cpu)) / (k - 1)],
    )
    rows.append(Row(n, f"rpcclient (T({k})-T(1))/{k - 1}", "bound", per_call))
    return rows


def rpcclient_startup(runs: int) -> float:
    """The best wall time of ``rpcclient --version``: loading the program and its libraries."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(["rpcclient", "--version"], capture_output=True, check=True, timeout=60)
        times.append(time.perf_counter() - start)
    return min(times)


# -- the table -------------------------------------------------------------------------------------------


HEADER = (
    f"{'N':>6}  {'client':<37} {'mode':<7} {'calls':>5}  {'median':>7}  {'best':>7}  {'cli CPU':>7}  "
    f"{'srv CPU':>7}  {'/ ours':>6}"
)


def print_rows(rows: Sequence[Row]) -> None:
    base = {r.mode: r.median for r in rows if r.client == "netsession NetSessionEnum"}
    for r in rows:
        ratio = f"{r.median / base[r.mode]:>6.2f}" if r.mode in base else f"{'':>6}"
        print(f"{r.sessions:>6}  {r.client:<37} {r.mode:<7} {r.calls:>5}  {r.median * 1e3:>7.1f}  "
              f"{r.best * 1e3:>7.1f}  {r.client_cpu * 1e3:>7.1f}  {r.server_cpu * 1e3:>7.1f}  {ratio}",
              flush=True)


PEERS = ("netsession NetSessionEnum", "impacket", "rpcclient")


def print_goals(rows: Sequence[Row]) -> None:
    def median(client: str, mode: str) -> float:
        return next(r.median for r in rows if r.client.startswith(client) and r.mode == mode)

    def cpu(client: str, mode: str) -> float:
        row = next(r for r in rows if r.client.startswith(client) and r.mode == mode)
        return row.client_cpu + row.server_cpu

    for mode in ("connect", "bound"):
        ours, imp, rpc = (median(c, mode) for c in PEERS)
        ours_cpu, imp_cpu, rpc_cpu = (cpu(c, mode) for c in PEERS)
        print(f"  {mode + ':':<8} impacket/netsession {imp / ours:5.1f}x (goal >= 10), "
              f"netsession/rpcclient {ours / rpc:4.2f}x (<= 2); by CPU {imp_cpu / ours_cpu:5.1f}x, "
              f"{ours_cpu / rpc_cpu:4.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", default="1000,10000", help="comma-separated N, ascending")
    parser.add_argument("--connects", type=int, default=5, help="timed runs with a connection each (a)")
    parser.add_argument("--calls", type=int, default=15, help="timed calls on an open binding (b)")
    parser.add_argument("--impacket-calls", type=int, default=3, help="impacket's timed runs, (a) and (b)")
    parser.add_argument("--rpcclient-calls", type=int, default=20, help="rpcclient's K - 1 (b)")
    parser.add_argument("--rpcclient-runs", type=int, default=3, help="rpcclient runs of T(1) and T(K) (b)")
    parser.add_argument("--workers", type=int, default=4, help="client processes holding the sessions")
    parser.add_argument("--skip", default="", help="comma-separated: impacket, rpcclient")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.sessions.split(",") if x)
    skip = set(args.skip.split(","))
    _peers.raise_nofile()  # the server inherits it: one descriptor per held connection

    print(_peers.machine_line())
    if "rpcclient" not in skip:
        print(f"rpcclient start-up alone (rpcclient --version): {rpcclient_startup(5) * 1e3:.1f} ms")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(HEADER)
    with running_server() as server, \
            session_holders(HOST, server.port, USER, PASSWORD, workers=args.workers) as holders:
        try:
            for n in sizes:
                opened = holders.open(n - 1 - holders.held)
                if opened.errors:
                    raise SystemExit(f"{opened.errors} logons failed, first: {opened.first_error}")
                meter = Meter(server.pid)
                rows = netsession_rows(n, server.port, meter, args.connects, args.calls)
                if "impacket" not in skip:
                    rows += impacket_rows(n, server.port, meter, args.impacket_calls, args.impacket_calls)
                if "rpcclient" not in skip:
                    rows += rpcclient_rows(
                        n, server, meter, args.connects, args.rpcclient_calls, args.rpcclient_runs
                    )
                rows += floor_rows(n, server.port, meter, args.calls)
                print_rows(rows)
                if not skip & {"impacket", "rpcclient"}:
                    print_goals(rows)
        except Mismatch as exc:
            print(f"MISMATCH: {exc}", file=sys.stderr)
            return 1
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
