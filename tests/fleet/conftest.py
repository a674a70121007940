"""Session-scoped fixtures of the fleet tests: the simulated fleet (fleet_sim.py), a private Samba smbd,
and a server holding thousands of sessions for paging."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from fleet_sim import Fleet, start_fleet
from netsession_server import NetsessionServerProcess
from postgres import PostgresServer, find_bin, running_postgres
from samba import SambaServer, missing_prerequisites, running_samba

from netsession.client.rpc import SrvsvcClient
from netsession.client.transport import SmbPipeTransport


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    f = start_fleet(classic=200, hardened=30, unused=20, tarpits=10, not_smb=5)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="session")
def fleet_samba() -> Iterator[SambaServer]:
    if shutil.which("smbd") is None and not Path("/usr/sbin/smbd").exists():
        pytest.skip("Samba's smbd is not installed")
    reason = missing_prerequisites()
    if reason is not None:
        pytest.fail(f"cannot start a private smbd: {reason}")
    with running_samba(prefix="netsession-fleet-smbd-") as server:
        # smbd starts samba-dcerpcd and its rpcd_* helpers on the first pipe open (2-4 s): do it now, so
        # the tests' deadlines measure the scan, not Samba's start.
        admin = server.users["nsadmin"]
        warm = SrvsvcClient(SmbPipeTransport("127.0.0.1", server.port, username=admin.name,
                                             password=admin.password))
        warm.connect()
        warm.close()
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if find_bin() is None:
        pytest.fail("PostgreSQL is not installed (scripts/setup.sh installs it: apt-get install postgresql)")
    with running_postgres() as server:
        yield server


BUSY_SESSIONS = 3000


@pytest.fixture(scope="session")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    """A netsession serve holding thousands of sessions (synthetic rows of the same session table)."""
    options = ["--sessions", f"random:{BUSY_SESSIONS}"]
    server = NetsessionServerProcess(tmp_path_factory.mktemp("busy"), options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
