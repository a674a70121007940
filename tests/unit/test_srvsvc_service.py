"""The srvsvc service on its own: opnum dispatch, share and server levels, faults, the audit trail."""

from __future__ import annotations

import logging

import pytest

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    NERR_NetNameNotFound,
    NERR_Success,
)
from netsession.server.srvsvc import (
    NCA_S_FAULT_NDR,
    NCA_S_OP_RNG_ERROR,
    CallContext,
    ServerIdentity,
    SrvsvcService,
)
from netsession.table import AccessPolicy, Caller, SessionTable
from netsession.wire.srvsvc import (
    PLATFORM_ID_NT,
    SERVER_INFO_101,
    SHARE_INFO_0,
    SHARE_INFO_1,
    SHARE_INFO_2,
    SHARE_INFO_502_I,
    SHI_USES_UNLIMITED,
    STYPE_IPC,
    STYPE_SPECIAL,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareEnumStickyRequest,
    NetrShareEnumStickyResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
    Opnum,
)

ADMIN = CallContext(Caller("admin", frozenset({"Administrators"})), "10.0.0.1")
USER = CallContext(Caller("alice", frozenset({"Users"})), "10.0.0.2")


def service(policy: AccessPolicy = AccessPolicy.CLASSIC) -> SrvsvcService:
    return SrvsvcService(SessionTable(policy, clock=lambda: 0.0), ServerIdentity("FS1", "files"))


@pytest.mark.parametrize(
    ("level", "entry"),
    [
        (0, SHARE_INFO_0("IPC$")),
        (1, SHARE_INFO_1("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC")),
        (
            2,
            SHARE_INFO_2("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC", 0, SHI_USES_UNLIMITED, 0, "", None),
        ),
    ],
)
def test_share_enum_lists_ipc_at_levels_0_1_2(level: int, entry: object) -> None:
    reply = service().call(ADMIN, Opnum.NetrShareEnum, NetrShareEnumRequest(None, level).encode())
    resp = NetrShareEnumResponse.decode(reply.stub)
    assert (resp.status, resp.entries, resp.total_entries, resp.resume_handle) == (
        NERR_Success,
        [entry],
        1,
        1,
    )


@pytest.mark.parametrize("level", [2, 502])
def test_share_enum_levels_2_and_502_need_an_operator(level: int) -> None:
    reply = service().call(USER, Opnum.NetrShareEnum, NetrShareEnumRequest(None, level).encode())
    assert NetrShareEnumResponse.decode(reply.stub).status == ERROR_ACCESS_DENIED
    reply = service().call(USER, Opnum.NetrShareEnum, NetrShareEnumRequest(None, 1).encode())
    assert NetrShareEnumResponse.decode(reply.stub).status == NERR_Success


@pytest.mark.parametrize("level", [3, 10, 1005])
def test_share_enum_other_levels_are_invalid_level(level: int) -> None:
    reply = service().call(ADMIN, Opnum.NetrShareEnum, NetrShareEnumRequest(None, level).encode())
    resp = NetrShareEnumResponse.decode(reply.stub)
    assert (resp.status, resp.entries) == (ERROR_INVALID_LEVEL, [])


def test_share_enum_resumed_past_the_end_is_empty() -> None:
    reply = service().call(
        ADMIN, Opnum.NetrShareEnum, NetrShareEnumRequest(None, 1, resume_handle=1).encode()
    )
    resp = NetrShareEnumResponse.decode(reply.stub)
    assert (resp.status, resp.entries, resp.resume_handle) == (NERR_Success, [], 1)


def test_share_enum_sticky_lists_no_special_share() -> None:
    reply = service().call(ADMIN, Opnum.NetrShareEnumSticky, NetrShareEnumStickyRequest(None, 1).encode())
    resp = NetrShareEnumStickyResponse.decode(reply.stub)
    assert (resp.status, resp.entries, resp.total_entries) == (NERR_Success, [], 0)


def test_share_get_info_matches_the_name_case_insensitively() -> None:
    reply = service().call(USER, Opnum.NetrShareGetInfo, NetrShareGetInfoRequest(None, "ipc$", 1).encode())
    resp = NetrShareGetInfoResponse.decode(reply.stub, 1)
    assert (resp.status, resp.info) == (
        NERR_Success,
        SHARE_INFO_1("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC"),
    )


def test_share_get_info_unknown_share_is_NERR_NetNameNotFound() -> None:
    reply = service().call(USER, Opnum.NetrShareGetInfo, NetrShareGetInfoRequest(None, "data", 0).encode())
    assert NetrShareGetInfoResponse.decode(reply.stub, 0).status == NERR_NetNameNotFound


def test_server_get_info_levels_100_and_101_for_everyone_102_for_operators() -> None:
    svc = service()
    reply = svc.call(USER, Opnum.NetrServerGetInfo, NetrServerGetInfoRequest(None, 101).encode())
    resp = NetrServerGetInfoResponse.decode(reply.stub, 101)
    assert isinstance(resp.info, SERVER_INFO_101)
    assert (resp.info.sv101_platform_id, resp.info.sv101_name, resp.info.sv101_comment) == (
        PLATFORM_ID_NT,
        "FS1",
        "files",
    )
    reply = svc.call(USER, Opnum.NetrServerGetInfo, NetrServerGetInfoRequest(None, 102).encode())
    resp = NetrServerGetInfoResponse.decode(reply.stub, 102)
    assert (resp.status, resp.info) == (ERROR_ACCESS_DENIED, None)
    reply = svc.call(USER, Opnum.NetrServerGetInfo, NetrServerGetInfoRequest(None, 103).encode())
    resp = NetrServerGetInfoResponse.decode(reply.stub, 103)
    assert (resp.status, resp.info) == (ERROR_INVALID_LEVEL, None)


def test_unknown_opnum_is_fault_nca_s_op_rng_error() -> None:
    assert service().call(ADMIN, 99, b"").fault == NCA_S_OP_RNG_ERROR


def test_undecodable_stub_is_fault_nca_s_fault_ndr() -> None:
    reply = service().call(ADMIN, Opnum.NetrSessionEnum, b"\x01\x00")
    assert (reply.fault, reply.stub) == (NCA_S_FAULT_NDR, b"")


def test_hardened_refusal_is_a_fault_5_and_classic_a_stub_status() -> None:
    request = NetrSessionEnumRequest(level=10).encode()
    assert service(AccessPolicy.HARDENED).call(USER, Opnum.NetrSessionEnum, request).fault == 5
    reply = service(AccessPolicy.CLASSIC).call(
        USER, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=1).encode()
    )
    assert reply.fault is None
    assert NetrSessionEnumResponse.decode(reply.stub).status == ERROR_ACCESS_DENIED


def test_session_del_hands_each_session_to_its_owner_even_if_one_raises() -> None:
    svc = service()
    closed: list[str] = []

    def bad(session: object) -> None:
        raise RuntimeError("owner failed")

    svc.table.add("10.0.0.5", "bob", on_close=bad)
    svc.table.add("10.0.0.6", "bob", on_close=lambda s: closed.append(s.cname))
    reply = svc.call(ADMIN, Opnum.NetrSessionDel, NetrSessionDelRequest(None, None, "bob").encode())
    assert NetrSessionDelResponse.decode(reply.stub).status == NERR_Success
    assert closed == ["\\\\10.0.0.6"]
    assert len(svc.table) == 0


def test_every_call_leaves_one_audit_line(caplog: pytest.LogCaptureFixture) -> None:
    svc = service(AccessPolicy.HARDENED)
    svc.table.add("10.0.0.5", "bob", on_close=lambda s: None)
    with caplog.at_level(logging.INFO, logger="netsession.audit"):
        svc.call(ADMIN, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=502).encode())
        svc.call(USER, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=10).encode())
        svc.call(ADMIN, Opnum.NetrSessionDel, NetrSessionDelRequest(None, "\\\\10.0.0.9", None).encode())
    lines = [r for r in caplog.records if r.name == "netsession.audit"]
    assert [(r.caller, r.client_address, r.operation, r.level, r.result) for r in lines] == [  # type: ignore[attr-defined]
        ("admin", "10.0.0.1", "NetrSessionEnum", 502, "NERR_Success entries=1/1"),
        ("alice", "10.0.0.2", "NetrSessionEnum", 10, "fault 0x00000005"),
        ("admin", "10.0.0.1", "NetrSessionDel", None, "NERR_ClientNameNotFound"),
    ]


@pytest.mark.parametrize(("offered", "negotiated"), [(4280, 4280), (0xFFF8, 0xFFF8), (5840, 5840)])
def test_srvsvc_pipe_sends_fragments_as_large_as_the_client_accepts(offered: int, negotiated: int) -> None:
    from netsession.server.pipes import SRVSVC_SYNTAX, RpcEndpoint
    from netsession.wire.dcerpc import BindAccepted, ClientAssociation, ResponseReceived

    svc = service()
    for i in range(300):  # a response of ~20 kB
        svc.table.add(f"10.0.{i >> 8}.{i & 255}", f"user{i}", on_close=lambda s: None)
    endpoint = RpcEndpoint(svc, ADMIN)
    client = ClientAssociation(max_xmit_frag=offered, max_recv_frag=offered)
    client.bind(SRVSVC_SYNTAX)
    (accepted,) = client.receive_data(b"".join(endpoint.receive(b"".join(client.data_to_send()))))
    assert isinstance(accepted, BindAccepted) and accepted.max_xmit_frag == negotiated
    client.request(Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=502).encode())
    pdus = endpoint.receive(b"".join(client.data_to_send()))
    assert max(len(p) for p in pdus) <= negotiated
    assert len(pdus) == -(-sum(len(p) - 24 for p in pdus) // (negotiated - 24))  # full fragments but the last
    events = client.receive_data(b"".join(pdus))
    assert isinstance(events[-1], ResponseReceived)
    assert len(NetrSessionEnumResponse.decode(events[-1].stub).entries) == 300


def test_srvsvc_pipe_refuses_writes_while_too_much_output_is_unread() -> None:
    from netsession.server.pipes import SRVSVC_SYNTAX, RpcEndpoint, RpcPipe
    from netsession.wire.dcerpc import ClientAssociation, encode_request_fragments
    from netsession.wire.smb2.state import PipeBusy

    svc = service()
    for i in range(50):
        svc.table.add(f"10.0.0.{i}", f"user{i}", on_close=lambda s: None)
    closed: list[bool] = []
    pipe = RpcPipe(RpcEndpoint(svc, ADMIN), on_close=lambda: closed.append(True), max_unread=10_000)
    client = ClientAssociation()
    client.bind(SRVSVC_SYNTAX)
    pipe.write(b"".join(client.data_to_send()))
    client.receive_data(pipe.read(65536)[0])
    stub = NetrSessionEnumRequest(level=502).encode()
    written = 0
    with pytest.raises(PipeBusy):
        for call_id in range(2, 100):  # a client sending calls and never reading the replies (~3.6 kB each)
            pipe.write(b"".join(encode_request_fragments(call_id, 0, Opnum.NetrSessionEnum, stub, 4280)))
            written += 1
    assert 2 <= written <= 4  # refused once more than 10,000 bytes were unread
    while pipe.read(65536)[0]:
        pass
    # read out: accepted again
    pipe.write(b"".join(encode_request_fragments(100, 0, Opnum.NetrSessionEnum, stub, 4280)))
    assert pipe.read(65536)[0]
    pipe.close()
    pipe.close()
    assert closed == [True]


def test_share_get_info_level_502_without_a_security_descriptor() -> None:
    reply = service().call(ADMIN, Opnum.NetrShareGetInfo, NetrShareGetInfoRequest(None, "IPC$", 502).encode())
    resp = NetrShareGetInfoResponse.decode(reply.stub, 502)
    assert resp.status == NERR_Success
    assert resp.info == SHARE_INFO_502_I(
        "IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC", 0, SHI_USES_UNLIMITED, 0, "", None, 0, None
    )
