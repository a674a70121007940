"""What the server benchmarks share: the two servers (netsession in a process of its own, and a private
Samba smbd), process memory from /proc, client worker processes, and the machine line.

The netsession server runs as ``python3 bench/_peers.py serve ...`` (the same objects `netsession serve`
builds: ServerOptions, NetsessionServer, AccountStore, listener.serve) so that its memory is its own.
Samba comes from tests/interop/samba.py (its own smb.conf, nss_wrapper users, loopback only), with the
same user names and passwords as the netsession server gets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The users both servers know (tests/interop/samba.py's running_samba creates the same three).
ADMIN = ("nsadmin", "Adm1n-pass!")
USER = ("alice", "Al1ce-pass!")


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    smbd = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        smbd = subprocess.run(
            [shutil.which("smbd") or "/usr/sbin/smbd", "--version"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    return (
        f"{time.strftime('%Y-%m-%d')}  {platform.node()}  {cpu}, {os.cpu_count()} CPUs, {mem:.1f} GiB  "
        f"Linux {platform.release()}  Python {platform.python_version()}  "
        f"Samba {smbd.removeprefix('Version ')}"
    )


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- memory ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Bytes. PSS counts shared pages divided among the processes mapping them, so it moves when other
    processes start or end; USS (private pages only) does not."""

    pss: int
    rss: int
    uss: int

    def __sub__(self, other: Memory) -> Memory:
        return Memory(self.pss - other.pss, self.rss - other.rss, self.uss - other.uss)

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.pss + other.pss, self.rss + other.rss, self.uss + other.uss)


def memory(pid: int) -> Memory:
    """PSS, RSS and USS of one process, from /proc/PID/smaps_rollup (kB there)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            values[name] = int(parts[0]) * 1024
    return Memory(values["Pss"], values["Rss"], values["Private_Clean"] + values["Private_Dirty"])


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """CPU time of a process. Alone: /proc/PID/schedstat, nanoseconds on a CPU of its main thread (both
    servers are single-threaded; /proc/PID/stat counts 10 ms ticks, too coarse for one call). With
    ``reaped_children``: /proc/PID/stat utime + stime + those of the children it has waited for (cutime,
    cstime) — smbd's per-connection processes."""
    if not reaped_children:
        with contextlib.suppress(OSError, ValueError):
            return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after the ")"
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


MB = 1e6


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell; the first left-aligned, the others right-aligned. A header
    may have two lines ("setups/s\nall workers")."""
    split = [h.split("\n") for h in headers]
    depth = max(len(s) for s in split)
    split = [s + [""] * (depth - len(s)) for s in split]
    widths = [max(*(len(x) for x in s), *(len(r[i]) for r in rows)) for i, s in enumerate(split)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    for level in range(depth):
        print(line([s[level] for s in split]))
    for row in rows:
        print(line(row))
    sys.stdout.flush()


# -- the netsession server -------------------------------------------------------------------------------


class NetsessionProcess:
    """``python3 bench/_peers.py serve`` in a temporary state directory, with ADMIN and USER accounts."""

    def __init__(self, *, log_level: str = "info") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netsession-bench-"))
        self.port = free_port()
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from netsession.groups import ADMINISTRATORS, USERS
        from netsession.server.accounts import AccountStore, nt_hash

        with AccountStore(str(self.root / "accounts.db")) as store:
            store.add_user(ADMIN[0], nt_hash(ADMIN[1]), (ADMINISTRATORS,))
            store.add_user(USER[0], nt_hash(USER[1]), (USERS,))
        log = open(self.root / "server.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", str(self.root), str(self.port),
             self.log_level],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"READY":
            self.stop()
            raise RuntimeError(f"the netsession server did not start: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_netsession(*, log_level: str = "info") -> Iterator[NetsessionProcess]:
    server = NetsessionProcess(log_level=log_level)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _serve_main(state_dir: str, port: int, log_level: str) -> None:
    """The server process: what `netsession serve --state-dir D --listen 127.0.0.1:PORT` runs."""
    from netsession.server.accounts import AccountStore
    from netsession.server.app import NetsessionServer, ServerOptions
    from netsession.server.listener import serve

    logging.basicConfig(
        level=getattr(logging, log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    max_frag = int(os.environ.get("NETSESSION_BENCH_MAX_FRAG", "0"))
    if max_frag:
        # An experiment, not the server's behaviour: srvsvc associations that accept fragments up to
        # max_frag (the server's own limit is 4280, what Windows offers over named pipes).
        import functools

        import netsession.server.pipes as pipes

        namespace = vars(pipes)
        namespace["ServerAssociation"] = functools.partial(
            namespace["ServerAssociation"], max_recv_frag=max_frag
        )
    store = AccountStore(str(Path(state_dir) / "accounts.db"))
    # The benchmarks hold up to 100,000 sessions of one account.
    server = NetsessionServer(ServerOptions(name="NSBENCH", max_sessions_per_account=1_000_000), store)

    async def main() -> None:
        ready = asyncio.Event()
        local = Path(state_dir) / "srvsvc.sock"
        task = asyncio.create_task(serve(server, [(HOST, port)], local, ready=ready))
        await ready.wait()
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await task

    if os.environ.get("NETSESSION_BENCH_PROFILE"):
        import cProfile

        cProfile.runctx("asyncio.run(main())", globals(), locals(), os.environ["NETSESSION_BENCH_PROFILE"])
    else:
        asyncio.run(main())
    store.close()


# -- Samba -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_smbd() -> Iterator[Any]:
    """A private smbd (tests/interop/samba.py) with ADMIN and USER; stopped and removed afterwards."""
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    try:
        from samba import missing_prerequisites, running_samba  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    why = missing_prerequisites()
    if why:
        raise SystemExit(f"cannot start smbd: {why}")
    with running_samba(prefix="netsession-bench-smbd-") as samba:
        assert samba.users[ADMIN[0]].password == ADMIN[1] and samba.users[USER[0]].password == USER[1]
        yield samba


def smbd_children(samba: Any) -> list[int]:
    """The per-connection smbd processes: children of the main smbd called plain "smbd" (not the
    notifyd/cleanupd helpers, whose comm is "smbd-notifyd" etc.; samba-dcerpcd is not smbd's child)."""
    return [pid for pid in children(samba.process.pid) if comm(pid) == "smbd"]


# -- client workers --------------------------------------------------------------------------------------


def run_workers(count: int, target: Callable[..., Any], args: tuple[Any, ...]) -> list[Any]:
    """Run ``target(index, *args, queue)`` in ``count`` processes; each puts one result in the queue."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, *args, queue), daemon=True) for i in range(count)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    return results


@dataclass
class Opened:
    """What a batch of session openings took, summed over the workers."""

    sessions: int
    errors: int
    seconds: float  # wall time of the batch
    client_cpu: float
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0


def _holder(conn: Any, host: str, port: int, user: str, password: str) -> None:
    """A worker process holding sessions: "open k" opens k more, "close" drops them all, "exit" ends."""
    from _smb import logon

    raise_nofile()
    held: list[Any] = []
    while True:
        command = conn.recv()
        if command[0] == "open":
            errors, first = 0, ""
            cpu = time.process_time()
            for _ in range(command[1]):
                try:
                    held.append(logon(host, port, user, password))
                except Exception as exc:  # counted and reported, never hidden
                    errors += 1
                    first = first or f"{type(exc).__name__}: {exc}"
            conn.send((command[1] - errors, errors, time.process_time() - cpu, first))
        elif command[0] == "close":
            for smb in held:
                smb.close()
            held.clear()
            conn.send(("closed",))
        else:
            for smb in held:
                smb.close()
            conn.send(("bye",))
            return


class SessionHolders:
    """``workers`` client processes that open authenticated sessions (one TCP connection each, NEGOTIATE
    + SESSION_SETUP, then nothing: the sessions stay) and hold them until :meth:`close`."""

    def __init__(self, host: str, port: int, user: str, password: str, workers: int = 4) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes = []
        self.procs = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_holder, args=(child, host, port, user, password), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.held = 0

    def open(self, n: int) -> Opened:
        k = len(self.pipes)
        shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
        start = time.perf_counter()
        for pipe, share in zip(self.pipes, shares):
            pipe.send(("open", share))
        replies = [pipe.recv() for pipe in self.pipes]
        seconds = time.perf_counter() - start
        opened = Opened(
            sum(r[0] for r in replies), sum(r[1] for r in replies), seconds, sum(r[2] for r in replies),
            next((r[3] for r in replies if r[3]), ""),
        )
        self.held += opened.sessions
        return opened

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close",))
        for pipe in self.pipes:
            pipe.recv()
        self.held = 0

    def stop(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs):
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                pipe.send(("exit",))
                if pipe.poll(30):
                    pipe.recv()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


@contextlib.contextmanager
def session_holders(
    host: str, port: int, user: str, password: str, workers: int = 4
) -> Iterator[SessionHolders]:
    holders = SessionHolders(host, port, user, password, workers)
    try:
        yield holders
    finally:
        holders.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the netsession server process of the benchmarks")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("state_dir")
    parser.add_argument("port", type=int)
    parser.add_argument("log_level", nargs="?", default="info")
    a = parser.parse_args()
    _serve_main(a.state_dir, a.port, a.log_level)
