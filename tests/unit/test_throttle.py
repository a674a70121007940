"""Brute-force throttling and lockout (issue 9): after a few free failures one source gets one guess per
delay however many connections it uses; an account's failures slow down failures only; lockout only
when asked for; the tables stay bounded. A fake clock: nothing here sleeps or times anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from smb2_harness import PASSWORDS, Smb2Harness

from netsession.groups import USERS
from netsession.server.accounts import AccountStore, nt_hash
from netsession.server.app import NetsessionServer, ServerOptions
from netsession.server.throttle import MAX_TRACKED, LogonThrottle, ThrottleSettings, parse_lockout
from netsession.wire.smb2.constants import Dialect, NtStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_from_one_source_are_free_then_one_per_delay() -> None:
    clock = Clock()
    throttle = LogonThrottle(ThrottleSettings(delay=2.0, free_failures=5), clock=clock)
    for _ in range(5):
        assert throttle.admission_delay("10.0.0.9") == 0
        assert throttle.failed("10.0.0.9", "admin") == 0
    # The sixth guess is admitted (its slot reserved), answered after the delay...
    assert throttle.admission_delay("10.0.0.9") == 0
    assert throttle.failed("10.0.0.9", "admin") == 2.0
    # ...and no other connection of that source has its password checked before the slot.
    assert throttle.admission_delay("10.0.0.9") == pytest.approx(2.0)
    clock.now += 1.5
    assert throttle.admission_delay("10.0.0.9") == pytest.approx(0.5)
    clock.now += 0.5
    assert throttle.admission_delay("10.0.0.9") == 0
    assert throttle.admission_delay("10.0.0.9") == pytest.approx(2.0)  # the slot is taken


def test_guesses_from_one_source_are_at_most_one_per_delay_whatever_the_connections() -> None:
    # 50 connections of one source try as fast as the server lets them, for 60 simulated seconds.
    clock = Clock()
    throttle = LogonThrottle(ThrottleSettings(delay=2.0, free_failures=5), clock=clock)
    checked = 0
    start = clock.now
    while clock.now < start + 60:
        for _ in range(50):
            if throttle.admission_delay("10.0.0.9") == 0:
                checked += 1
                throttle.failed("10.0.0.9", "admin")
        clock.now += 0.1
    assert checked <= 5 + 60 / 2.0 + 1


def test_another_address_is_not_held_up_by_an_attacker_without_lockout() -> None:
    clock = Clock()
    throttle = LogonThrottle(ThrottleSettings(), clock=clock)
    for _ in range(100):
        throttle.failed("10.0.0.9", "admin")
    assert throttle.admission_delay("10.0.0.20") == 0  # the owner's address is not throttled
    assert not throttle.locked_out("admin")
    # An account's failures slow down failures for it from anywhere (a distributed attack)...
    assert throttle.failed("10.0.0.21", "admin") == ThrottleSettings().delay
    # ...but a right password is never delayed, and resets the account's count.
    throttle.succeeded("admin")
    assert throttle.failed("10.0.0.22", "admin") == 0


def test_failures_age_out_of_the_window() -> None:
    clock = Clock()
    throttle = LogonThrottle(ThrottleSettings(window=600.0), clock=clock)
    for _ in range(10):
        throttle.failed("10.0.0.9", "x")
    assert throttle.admission_delay("10.0.0.9") > 0
    clock.now += 601
    assert throttle.admission_delay("10.0.0.9") == 0 and throttle.admission_delay("10.0.0.9") == 0


def test_lockout_only_when_asked_and_only_for_its_window() -> None:
    clock = Clock()
    plain = LogonThrottle(ThrottleSettings(), clock=clock)
    locking = LogonThrottle(ThrottleSettings(lockout_threshold=3, lockout_window=60.0), clock=clock)
    for throttle in (plain, locking):
        for _ in range(3):
            throttle.failed("10.0.0.9", "Admin")
    assert not plain.locked_out("admin")
    assert locking.locked_out("admin")
    clock.now += 61
    assert not locking.locked_out("admin")


def test_the_tables_are_bounded_whatever_addresses_and_names_arrive() -> None:
    throttle = LogonThrottle(ThrottleSettings(), clock=Clock())
    for i in range(MAX_TRACKED + 1000):
        throttle.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", f"user{i}")
    assert throttle.tracked == (MAX_TRACKED, MAX_TRACKED)


def test_lockout_option_parses_n_slash_seconds() -> None:
    assert parse_lockout("10/600") == (10, 600.0)
    for bad in ("10", "0/600", "10/0", "x/y", "10/-5"):
        with pytest.raises(ValueError):
            parse_lockout(bad)


# -- through the server -----------------------------------------------------------------------------------


def _server(tmp_path: Path, settings: ThrottleSettings) -> NetsessionServer:
    store = AccountStore(tmp_path / "accounts.db")
    store.add_user("alice", nt_hash(PASSWORDS["alice"]), (USERS,))
    return NetsessionServer(ServerOptions(name="FS1", throttle=settings), store, clock=Clock())


def test_a_throttled_failure_is_held_back_and_the_connection_waits(tmp_path: Path) -> None:
    # The sans-I/O connection: the failure's answer is held (wait_seconds) until the driver resumes it.
    server = _server(tmp_path, ThrottleSettings(delay=2.0, free_failures=1))
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,), server=server.new_connection("10.0.0.9"))
    client.logon("alice", "wrong", expect=NtStatus.STATUS_LOGON_FAILURE)
    assert client.server.wait_seconds == 0
    with pytest.raises(ValueError):  # no reply to unpack: the second failure's answer is held
        client.logon("alice", "wrong again", expect=NtStatus.STATUS_LOGON_FAILURE)
    assert client.server.wait_seconds == 2.0
    client.server.resume()
    replies = client.replies(client._deframer.receive_data(client.server.data_to_send()))
    assert [r.header.status for r in replies] == [NtStatus.STATUS_LOGON_FAILURE]


def test_a_locked_out_account_is_answered_account_locked_out_even_with_its_password(tmp_path: Path) -> None:
    server = _server(tmp_path, ThrottleSettings(delay=0.0, lockout_threshold=3, lockout_window=600.0))
    conn = server.new_connection("10.0.0.9")
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,), server=conn)
    for _ in range(3):
        client.logon("alice", "wrong", expect=NtStatus.STATUS_LOGON_FAILURE)
    client.logon("alice", expect=NtStatus.STATUS_ACCOUNT_LOCKED_OUT)
