"""An ended SMB session leaves no reference cycle through its session-table row: the session, its
connection and its keys are freed as soon as the last reference goes, not at the next full run of the
cyclic garbage collector (which, with thousands of long-lived sessions, comes late: bench/bench_sessions.py
saw the memory of 5,000 sessions grow from 52 to 63 MB over four connect/disconnect cycles before this)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from smb2_harness import MemoryAccounts, Smb2Harness

from netsession.server.app import NetsessionServer, ServerOptions
from netsession.wire.smb2.session import LogoffRequest


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _logged_on() -> tuple[NetsessionServer, Smb2Harness]:
    server = NetsessionServer(ServerOptions(name="FS1"), MemoryAccounts())  # type: ignore[arg-type]
    client = Smb2Harness.connected(server=server.new_connection("10.0.0.5"))
    client.logon("alice")
    assert len(server.table) == 1
    return server, client


def test_session_ended_by_connection_loss_is_freed_without_the_cyclic_collector(no_cyclic_gc: None) -> None:
    server, client = _logged_on()
    (session,) = client.server.sessions.values()
    session_ref, connection_ref = weakref.ref(session), weakref.ref(client.server)
    client.server.connection_lost()
    del session, client
    assert len(server.table) == 0
    assert session_ref() is None
    assert connection_ref() is None


def test_session_ended_by_logoff_is_freed_without_the_cyclic_collector(no_cyclic_gc: None) -> None:
    server, client = _logged_on()
    (session,) = client.server.sessions.values()
    session_ref = weakref.ref(session)
    del session
    (client_session,) = client.sessions.values()
    client.request(LogoffRequest(), session=client_session)
    assert len(server.table) == 0
    assert session_ref() is None


@pytest.mark.parametrize("allow", [False, True])
def test_allow_guest_admits_guest_and_anonymous_logons_together(allow: bool) -> None:
    server = NetsessionServer(ServerOptions(name="FS1", allow_guest=allow), MemoryAccounts())  # type: ignore[arg-type]
    assert (server.authenticator.allow_guest, server.authenticator.allow_anonymous) == (allow, allow)
