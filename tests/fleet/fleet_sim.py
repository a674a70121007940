"""A simulated fleet on loopback, for the fleet tests and bench/bench_fleet.py.

One port for every host: one ``netsession serve`` (classic) listening on many 127.0.10.x / 127.0.11.x
addresses, another hardened one on a few dozen 127.0.20.x, addresses where nothing listens (127.0.30.x),
tarpits that accept and never answer (127.0.40.x: a listening socket nobody accepts on — the kernel
completes the handshake, then nothing), and not-SMB hosts (127.0.50.x: an HTTP-ish banner, then close).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from netsession_server import NetsessionServerProcess, free_port


def addresses(prefix: str, count: int, start: int = 1) -> list[str]:
    """``count`` addresses from ``prefix.start``, spilling into the next /24 (.254 is followed by .1)."""
    a, b, c = (int(x) for x in prefix.split("."))
    out = []
    n = start
    while len(out) < count:
        third, fourth = c + (n - 1) // 254, (n - 1) % 254 + 1
        out.append(f"{a}.{b}.{third}.{fourth}")
        n += 1
    return out


class Tarpits:
    """Listening sockets that are never accepted from: connections complete and then hang."""

    def __init__(self, hosts: list[str], port: int) -> None:
        self.hosts = hosts
        self.sockets: list[socket.socket] = []
        for host in hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(1024)
            self.sockets.append(s)

    def close(self) -> None:
        for s in self.sockets:
            s.close()


class NotSmb:
    """Hosts that answer every connection with an HTTP error line and close it."""

    BANNER = b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, hosts: list[str], port: int) -> None:
        self.hosts = hosts
        self.sockets = []
        for host in hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(64)
            s.settimeout(0.2)
            self.sockets.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.sockets:
            sel.register(s, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    conn, _ = sock.accept()
                    with conn:
                        with contextlib.suppress(OSError):
                            conn.recv(4096)
                            conn.sendall(self.BANNER)
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.sockets:
            s.close()


@dataclass
class Fleet:
    port: int
    classic_hosts: list[str]
    hardened_hosts: list[str]
    unused_hosts: list[str]
    tarpit_hosts: list[str]
    not_smb_hosts: list[str]
    classic: NetsessionServerProcess
    hardened: NetsessionServerProcess
    closers: list[object] = field(default_factory=list)

    def targets(self, hosts: list[str]) -> list[str]:
        return [f"{h}:{self.port}" for h in hosts]

    def stop(self) -> None:
        for c in self.closers:
            c.close()  # type: ignore[attr-defined]
        self.classic.stop()
        self.hardened.stop()


def start_fleet(
    *, classic: int = 200, hardened: int = 30, unused: int = 20, tarpits: int = 10, not_smb: int = 5,
    root: Path | None = None,
) -> Fleet:
    root = root or Path(tempfile.mkdtemp(prefix="netsession-fleet-"))
    port = free_port()
    classic_hosts = addresses("127.0.10", classic)
    hardened_hosts = addresses("127.0.20", hardened)
    unused_hosts = addresses("127.0.30", unused)
    tarpit_hosts = addresses("127.0.40", tarpits)
    not_smb_hosts = addresses("127.0.50", not_smb)
    listen = [a for h in classic_hosts for a in ("--listen", f"{h}:{port}")] + ["--allow-guest"]
    classic_server = NetsessionServerProcess(root / "classic", listen, port=port)
    hard_listen = [a for h in hardened_hosts for a in ("--listen", f"{h}:{port}")]
    hard_port = free_port()
    hardened_server = NetsessionServerProcess(
        root / "hardened", [*hard_listen, "--policy", "hardened"], port=hard_port
    )
    classic_server.start()
    try:
        hardened_server.start()
    except BaseException:
        classic_server.stop()
        raise
    fleet = Fleet(port, classic_hosts, hardened_hosts, unused_hosts, tarpit_hosts, not_smb_hosts,
                  classic_server, hardened_server)
    try:
        fleet.closers.append(Tarpits(tarpit_hosts, port))
        fleet.closers.append(NotSmb(not_smb_hosts, port))
    except BaseException:
        fleet.stop()
        raise
    return fleet


@contextlib.contextmanager
def running_fleet(**kwargs: int) -> Iterator[Fleet]:
    fleet = start_fleet(**kwargs)  # type: ignore[arg-type]
    try:
        yield fleet
    finally:
        fleet.stop()
