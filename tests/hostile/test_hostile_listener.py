"""The attacks of issue 9's table that need the asyncio driver: the Unix socket's connection limit and
idle timeout, the logon deadline against a client trickling a NEGOTIATE, accept() resource errors logged
once per interval, the throttle's wait not blocking other clients. A real `serve()` runs in a thread on
loopback; the bounds are checked by counting connections and log records."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_helpers import CountingStore

from netsession.server.app import NetsessionServer, ServerOptions
from netsession.server.listener import _AcceptErrors, serve
from netsession.server.throttle import ThrottleSettings


class Running:
    def __init__(self, server: NetsessionServer, sock_path: Path) -> None:
        self.server = server
        self.sock_path = sock_path
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.ensure_future(serve(self.server, [("127.0.0.1", self.port)], self.sock_path,
                                               ready=ready, stop=self._stop))
            await ready.wait()
            self._ready.set()
            await task

        self._loop.run_until_complete(main())

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def running(accounts: CountingStore, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    options: dict[str, object] = getattr(request, "param", {})
    server = NetsessionServer(ServerOptions(name="FS1", **options), accounts)  # type: ignore[arg-type]
    r = Running(server, tmp_path / "srvsvc.sock")
    r.start()
    yield r
    r.stop()


def _closed_by_peer(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "running", [{"max_local_connections": 10, "max_local_connections_per_uid": 4}], indirect=True
)
def test_the_local_socket_has_a_connection_limit(running: Running) -> None:
    held = []
    try:
        for _ in range(30):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(running.sock_path))
            held.append(s)
        refused = sum(_closed_by_peer(s, 0.5) for s in held)
    finally:
        for s in held:
            s.close()
    # Root (this test) is exempt from the per-uid limit, not from the total.
    assert refused == 30 - 10


@pytest.mark.parametrize("running", [{"idle_timeout": 0.3}], indirect=True)
def test_an_idle_local_connection_is_dropped(running: Running) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(running.sock_path))
        assert _closed_by_peer(s, 5.0)


@pytest.mark.parametrize("running", [{"logon_timeout": 0.5, "idle_timeout": 30.0}], indirect=True)
def test_a_client_trickling_its_negotiate_is_dropped_at_the_logon_deadline(running: Running) -> None:
    # One byte at a time keeps the idle timer quiet; the logon deadline does not care.
    with socket.create_connection(("127.0.0.1", running.port)) as s:
        s.sendall(b"\x00")
        dropped = False
        for _ in range(40):
            try:
                s.sendall(b"\x00")
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            s.settimeout(0.1)
            try:
                if s.recv(1) == b"":
                    dropped = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                dropped = True
                break
        assert dropped


def test_accept_resource_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    handler = _AcceptErrors(interval=3600)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="netsession.server"):
            for _ in range(10_000):
                handler(loop, {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                })
    finally:
        loop.close()
    records = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert handler.suppressed == 9_999


def test_other_loop_errors_still_reach_the_default_handler(caplog: pytest.LogCaptureFixture) -> None:
    handler = _AcceptErrors()
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR):
            handler(loop, {"message": "something else entirely"})
    finally:
        loop.close()
    assert any("something else entirely" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "running", [{"throttle": ThrottleSettings(delay=3.0, free_failures=1)}], indirect=True
)
def test_a_held_failure_does_not_block_other_clients(running: Running, tmp_path: Path) -> None:
    # A logon the throttle holds back waits on a timer: meanwhile the loop serves everyone else.
    if shutil.which("smbclient") is None:
        pytest.skip("smbclient not installed")
    running.server.throttle.failed("127.0.0.1", "admin")  # one failure already: the next is held
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n    client min protocol = SMB2_02\n")
    guess = subprocess.Popen(
        ["smbclient", "-s", str(conf), "-p", str(running.port), "-U", "admin%wrong", "-L", "127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        source = running.server.throttle._sources["127.0.0.1"]
        wait_for = time.monotonic() + 10
        while source.next_slot == 0 and time.monotonic() < wait_for:
            time.sleep(0.05)  # until the guess is admitted (its slot taken): its answer is now held
        assert source.next_slot > 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(running.sock_path))
            s.sendall(b"\x05\x00\x0b\x03\x10\x00\x00\x00\x10\x00\x00\x00\x01\x00\x00\x00")
            s.settimeout(5)
            assert s.recv(4096)  # answered while the guess is still waiting for its answer
        assert guess.poll() is None
    finally:
        guess.wait(timeout=30)
    assert guess.returncode != 0
