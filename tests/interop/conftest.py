"""Fixtures for interop tests against a private Samba smbd (see ``samba.py``): one smbd for the whole run,
started on first use on a free loopback port and stopped (every process it started ended, its directory
removed) at the end; per test, a fresh client connection pool and the clean-up of every smbclient the
test held open."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ad_dc import ActiveDirectoryDC, gssapi_missing, running_ad_dc
from ad_dc import missing_prerequisites as ad_dc_prerequisites
from samba import SambaServer, missing_prerequisites, running_samba

from netsession.client import smb as smb_module
from netsession.client.pool import ConnectionPool, set_pool
from netsession.client.rpc import SrvsvcClient
from netsession.client.transport import SmbPipeTransport

SETTLE_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def samba_server() -> Iterator[SambaServer]:
    if shutil.which("smbd") is None and shutil.which("/usr/sbin/smbd") is None:
        pytest.skip("Samba's smbd is not installed (apt-get install samba smbclient libnss-wrapper)")
    reason = missing_prerequisites()
    if reason is not None:
        # smbd is there, so these tests are expected to run: say loudly what is missing.
        pytest.fail(f"cannot start a private smbd: {reason}")
    with running_samba() as server:
        # smbd starts samba-dcerpcd and its rpcd_* helpers on the first pipe open (2-4 s): do it now,
        # outside any one test's time.
        admin = server.users["nsadmin"]
        warm = SrvsvcClient(SmbPipeTransport("127.0.0.1", server.port, username=admin.name,
                                             password=admin.password))
        warm.connect()
        warm.close()
        yield server


def wait_for_no_sessions(server: SambaServer) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while server.sessions():
        if time.monotonic() > deadline:
            raise AssertionError(f"sessions left over: {server.sessions()}")
        time.sleep(0.05)


@pytest.fixture
def samba(samba_server: SambaServer) -> Iterator[SambaServer]:
    """The smbd with no session before and after the test, and a connection pool of the test's own."""
    wait_for_no_sessions(samba_server)
    previous = set_pool(ConnectionPool())
    try:
        yield samba_server
    finally:
        set_pool(previous).close()
        for held in samba_server.held:
            held.close()
        samba_server.held.clear()
        wait_for_no_sessions(samba_server)


SMALL_PIPE_IO = 64


@pytest.fixture
def small_pipe_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pipe I/O of SMALL_PIPE_IO bytes, so an answer overflows the transceive and READs fetch the rest;
    returns the list the size of every READ goes into."""
    monkeypatch.setattr(smb_module, "PIPE_IO_SIZE", SMALL_PIPE_IO)
    reads: list[int] = []
    real_read = smb_module.SmbPipe.read

    async def read(self: smb_module.SmbPipe) -> bytes:
        data = await real_read(self)
        reads.append(len(data))
        return data

    monkeypatch.setattr(smb_module.SmbPipe, "read", read)
    return reads


@pytest.fixture(scope="session")
def ad_dc() -> Iterator[ActiveDirectoryDC]:
    """A private Samba AD DC (KDC and smbd on loopback, see ``ad_dc.py``) for the whole run, with TGTs for
    its users ``nsadmin`` (Domain Admins) and ``alice`` in credential caches of their own."""
    if shutil.which("samba-tool") is None or not Path("/usr/sbin/samba").exists():
        pytest.skip("Samba's AD DC is not installed (apt-get install samba-ad-dc krb5-user)")
    reason = ad_dc_prerequisites() or gssapi_missing()
    if reason is not None:
        # CI installs everything (scripts/setup.sh): there, a missing piece is a failure.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"cannot run the Kerberos tests: {reason}")
    with running_ad_dc() as dc:
        for user in dc.users.values():
            dc.kinit(user)
        yield dc
