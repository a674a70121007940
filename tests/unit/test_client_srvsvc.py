"""The client's sans-I/O srvsvc layer (``netsession.client.srvsvc``) against the server's own srvsvc
endpoint, in memory: bind, calls, faults, broken PDUs, one call at a time, and the checks on answers."""

from __future__ import annotations

import pytest

from netsession.client import srvsvc as calls
from netsession.client.errors import TransportError
from netsession.client.srvsvc import RpcFaultError, SrvsvcAssociation
from netsession.errors import (
    RPC_S_PROCNUM_OUT_OF_RANGE,
    RPC_S_PROTOCOL_ERROR,
    RPC_X_BAD_STUB_DATA,
    NERR_Success,
    NetApiError,
)
from netsession.server.pipes import RpcEndpoint
from netsession.server.srvsvc import CallContext, ServerIdentity, SrvsvcService
from netsession.table import AccessPolicy, Caller, SessionTable

ADMIN = CallContext(Caller("admin", frozenset({"Administrators"})), "10.0.0.1")


def endpoint() -> RpcEndpoint:
    table = SessionTable(AccessPolicy.CLASSIC, clock=lambda: 100.0)
    table.add("10.0.0.7", "alice", on_close=lambda s: None, created_at=40.0)
    return RpcEndpoint(SrvsvcService(table, ServerIdentity("FS1", "files")), ADMIN)


def bound() -> tuple[SrvsvcAssociation, RpcEndpoint]:
    rpc, server = SrvsvcAssociation(), endpoint()
    (answer,) = server.receive(rpc.bind())
    assert rpc.bind_received(answer) and rpc.bound and rpc.bind_info is not None
    return rpc, server


def exchange(rpc: SrvsvcAssociation, server: RpcEndpoint, opnum: int, stub: bytes) -> bytes | None:
    answer: bytes | None = None
    for pdu in rpc.request(opnum, stub):
        for back in server.receive(pdu):
            answer = rpc.response_received(back)
    return answer


def test_bind_then_a_session_enum_reads_the_servers_table() -> None:
    rpc, server = bound()
    call = calls.session_enum(None, 10)
    stub = exchange(rpc, server, call.opnum, call.stub)
    assert stub is not None
    response = call.result(stub)
    assert response.status == NERR_Success
    assert [(e.sesi10_username, e.sesi10_time) for e in response.entries] == [("alice", 60)]


def test_a_fault_answers_the_call_and_the_association_goes_on() -> None:
    rpc, server = bound()
    with pytest.raises(RpcFaultError) as e:
        exchange(rpc, server, 0x7FFF, b"")  # no such opnum: nca_s_op_rng_error
    assert e.value.winerror == RPC_S_PROCNUM_OUT_OF_RANGE and rpc.bound
    call = calls.session_enum(None, 0)
    assert call.result(exchange(rpc, server, call.opnum, call.stub) or b"").status == NERR_Success


def test_a_broken_pdu_breaks_the_association() -> None:
    rpc, _ = bound()
    rpc.request(calls.session_enum(None, 10).opnum, b"")
    with pytest.raises(NetApiError) as e:
        # A response PDU of DCE/RPC version 4 (C706 §12.6.3: rpc_vers is 5), little-endian, frag_len 16.
        rpc.response_received(b"\x04\x00\x02\x03\x10\x00\x00\x00\x10\x00" + bytes(6))
    assert e.value.winerror == RPC_S_PROTOCOL_ERROR and rpc.broken and not rpc.bound
    with pytest.raises(TransportError):
        rpc.request(0, b"")


def test_a_call_before_the_bind_is_refused() -> None:
    with pytest.raises(TransportError) as e:
        SrvsvcAssociation().request(0, b"")
    assert e.value.reason == "closed"


def test_one_call_at_a_time_on_an_association() -> None:
    rpc, _ = bound()
    rpc.request(15, b"")
    with pytest.raises(RuntimeError, match="one srvsvc call at a time"):
        rpc.request(15, b"")


def test_an_abandoned_call_leaves_the_association_broken() -> None:
    rpc, _ = bound()
    rpc.request(15, b"")
    rpc.abandon()
    assert rpc.broken and not rpc.bound


def test_an_answer_at_another_level_than_asked_is_bad_stub_data() -> None:
    rpc, server = bound()
    asked_1 = calls.session_enum(None, 1)
    stub = exchange(rpc, server, asked_1.opnum, asked_1.stub)
    assert stub is not None
    with pytest.raises(NetApiError) as e:
        calls.session_enum(None, 10).result(stub)  # a level-1 answer to a level-10 question
    assert e.value.winerror == RPC_X_BAD_STUB_DATA and "asked for level 10" in str(e.value)


def test_a_stub_that_does_not_decode_is_bad_stub_data() -> None:
    with pytest.raises(NetApiError) as e:
        calls.session_del(None, None, "alice").result(b"\x01")
    assert e.value.winerror == RPC_X_BAD_STUB_DATA
