"""Fixtures for the server's tests with real clients: `netsession serve` subprocesses (one per policy for the
whole run, started on first use) and a per-test view that ends every client the test started and waits
for the server's session table to be empty again."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from netsession_server import NetsessionServerProcess, missing_samba_clients


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *options: str) -> NetsessionServerProcess:
    server = NetsessionServerProcess(tmp_path_factory.mktemp(name), options)
    server.start()
    return server


@pytest.fixture(scope="session")
def classic_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    server = _start(tmp_path_factory, "classic")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hardened_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    server = _start(tmp_path_factory, "hardened", "--policy", "hardened")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def encrypting_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    server = _start(tmp_path_factory, "encrypt", "--encrypt")
    yield server
    server.stop()


def _clean(server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    if server.process is None or server.process.poll() is not None:
        pytest.fail(f"netsession serve is not running:\n{server.log()}")
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def server(classic_process: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    """The classic-policy server, with an empty session table before and after the test."""
    yield from _clean(classic_process)


@pytest.fixture
def hardened(hardened_process: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    yield from _clean(hardened_process)


@pytest.fixture
def encrypting(encrypting_process: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    yield from _clean(encrypting_process)


@pytest.fixture
def samba_clients() -> None:
    reason = missing_samba_clients()
    if reason:
        pytest.skip(reason)
