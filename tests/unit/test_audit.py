"""The audit trail (issue 9): every logon, success or failure, and every srvsvc call — unknown opnums
included — is one typed event on one stream, whatever the log level; the JSON-lines sink writes stable
keys and a timestamp; the human log reads as before."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from smb2_harness import PASSWORDS, Smb2Harness

from netsession.groups import ADMINISTRATORS, USERS
from netsession.server.accounts import AccountStore, nt_hash
from netsession.server.app import NetsessionServer, ServerOptions
from netsession.server.audit import (
    AuditEvent,
    AuditTrail,
    JsonLinesSink,
    LogonEvent,
    LogSink,
    SrvsvcCallEvent,
)
from netsession.server.pipes import SRVSVC_SYNTAX, RpcEndpoint
from netsession.server.srvsvc import CallContext
from netsession.table import Caller
from netsession.wire.dcerpc import ClientAssociation
from netsession.wire.smb2.constants import Dialect, NtStatus
from netsession.wire.srvsvc import NetrSessionDelRequest, NetrSessionEnumRequest, Opnum


class ListSink:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        return


def _server(tmp_path: Path) -> tuple[NetsessionServer, ListSink]:
    store = AccountStore(tmp_path / "accounts.db")
    store.add_user("alice", nt_hash(PASSWORDS["alice"]), (USERS,))
    store.add_user("admin", nt_hash(PASSWORDS["admin"]), (ADMINISTRATORS,))
    sink = ListSink()
    server = NetsessionServer(ServerOptions(name="FS1"), store, audit=AuditTrail([sink]))
    return server, sink


def test_a_failed_logon_is_audited_with_user_domain_workstation_address_and_reason(tmp_path: Path) -> None:
    server, sink = _server(tmp_path)
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,), server=server.new_connection("10.0.0.7"))
    client.logon("alice", "not her password", expect=NtStatus.STATUS_LOGON_FAILURE)
    (event,) = sink.events
    assert isinstance(event, LogonEvent) and not event.success
    assert (event.user, event.client_address, event.status) == ("alice", "10.0.0.7", "STATUS_LOGON_FAILURE")
    assert event.workstation  # pyspnego's NTLM client sends this computer's name
    assert "password" in event.reason
    assert event.time > 0


def test_a_successful_logon_is_audited_with_its_account_and_session(tmp_path: Path) -> None:
    server, sink = _server(tmp_path)
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,), server=server.new_connection("10.0.0.7"))
    session = client.logon("admin")
    (event,) = sink.events
    assert isinstance(event, LogonEvent) and event.success
    assert (event.account, event.session_id, event.status) == ("admin", session.session_id, "STATUS_SUCCESS")


def test_an_unknown_user_is_audited_as_claimed(tmp_path: Path) -> None:
    server, sink = _server(tmp_path)
    client = Smb2Harness.connected((Dialect.SMB_2_1,), server=server.new_connection("10.0.0.8"))
    client.logon("mallory", "guess", expect=NtStatus.STATUS_LOGON_FAILURE)
    (event,) = sink.events
    assert isinstance(event, LogonEvent)
    assert (event.user, event.account, event.success) == ("mallory", "", False)


def test_every_srvsvc_call_and_an_unknown_opnum_are_audited(tmp_path: Path) -> None:
    server, sink = _server(tmp_path)
    server.table.add("10.0.0.5", "bob", on_close=lambda row: None)
    admin = Caller("admin", frozenset({ADMINISTRATORS}))
    endpoint = RpcEndpoint(server.service, CallContext(admin, "10.0.0.1"))
    client = ClientAssociation()
    client.bind(SRVSVC_SYNTAX)
    client.receive_data(b"".join(endpoint.receive(b"".join(client.data_to_send()))))
    calls = [
        (Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=10).encode()),
        (Opnum.NetrSessionDel, NetrSessionDelRequest(None, "\\\\10.0.0.9", "carol").encode()),
        (99, b""),
    ]
    for opnum, stub in calls:
        client.request(opnum, stub)
        client.receive_data(b"".join(endpoint.receive(b"".join(client.data_to_send()))))
    events = [e for e in sink.events if isinstance(e, SrvsvcCallEvent)]
    assert [(e.operation, e.opnum, e.caller, e.client_address) for e in events] == [
        ("NetrSessionEnum", 12, "admin", "10.0.0.1"),
        ("NetrSessionDel", 13, "admin", "10.0.0.1"),
        ("opnum 99", 99, "admin", "10.0.0.1"),
    ]
    enum, delete, unknown = events
    assert (enum.level, enum.status, enum.entries, enum.total_entries) == (10, "NERR_Success", 1, 1)
    assert (delete.client_name, delete.user_name, delete.closed) == ("\\\\10.0.0.9", "carol", 0)
    assert delete.status == "NERR_ClientNameNotFound"
    assert (unknown.fault, unknown.status) == (0x1C010002, None)


def test_json_lines_have_stable_keys_and_a_timestamp_whatever_the_log_level(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail([JsonLinesSink(path)], clock=lambda: 1_800_000_000.25)
    logging.getLogger("netsession").setLevel(logging.ERROR)  # --log-level error: the file is unaffected
    try:
        trail.emit(LogonEvent(client_address="10.0.0.7", success=False, status="STATUS_LOGON_FAILURE",
                              user="alice", domain="CORP", workstation="PC1", reason="wrong password"))
        trail.emit(SrvsvcCallEvent(client_address="10.0.0.1", caller="admin", operation="NetrSessionDel",
                                   opnum=13, status="NERR_Success", result="NERR_Success closed=2",
                                   client_name=None, user_name="bob", closed=2, extra={"decoy": True}))
    finally:
        logging.getLogger("netsession").setLevel(logging.NOTSET)
        trail.close()
    logon, call = (json.loads(line) for line in path.read_text().splitlines())
    assert list(logon) == [
        "time", "event", "client_address", "success", "status", "user", "domain", "workstation",
        "account", "session_id", "reauthentication", "guest", "anonymous", "reason", "delay",
    ]
    assert logon["time"] == "2027-01-15T08:00:00.250000+00:00" and logon["event"] == "logon"
    assert (logon["user"], logon["domain"], logon["workstation"]) == ("alice", "CORP", "PC1")
    assert call["event"] == "srvsvc_call" and call["closed"] == 2 and call["user_name"] == "bob"
    assert call["decoy"] is True  # what another layer adds rides along
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_failing_sink_never_fails_the_event_or_the_other_sinks() -> None:
    class Broken(ListSink):
        def emit(self, event: AuditEvent) -> None:
            raise OSError("disk full")

    good = ListSink()
    trail = AuditTrail([Broken(), good])
    trail.emit(LogonEvent(success=True, status="STATUS_SUCCESS"))
    trail.emit(LogonEvent(success=True, status="STATUS_SUCCESS"))
    assert len(good.events) == 2


def test_the_human_log_reads_as_before_and_names_failed_logons(caplog: pytest.LogCaptureFixture) -> None:
    trail = AuditTrail([LogSink()])
    with caplog.at_level(logging.INFO, logger="netsession.audit"):
        trail.emit(SrvsvcCallEvent(client_address="10.0.0.1", caller="admin", operation="NetrSessionEnum",
                                   opnum=12, level=10, result="NERR_Success entries=1/1"))
        trail.emit(LogonEvent(client_address="10.0.0.7", success=False, status="STATUS_LOGON_FAILURE",
                              user="alice", reason="wrong password"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "caller=admin client=10.0.0.1 operation=NetrSessionEnum level=10 result=NERR_Success entries=1/1"
    )
    assert "logon FAILED alice from 10.0.0.7" in messages[1]
