r"""The rest of srvsvc, rule by rule: NetrShareCheck, NetrServerDiskEnum, NetrServerTransportEnum,
NetrRemoteTOD, the character-device opnums, share levels 501/503/1005 and server levels 102/502/503
(MS-SRVS §3.1.4.8-10, 16, 17, 19, 21, 24), on the service alone."""

from __future__ import annotations

import calendar
from typing import Any

import pytest

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_MORE_DATA,
    ERROR_NOT_SUPPORTED,
    NERR_DeviceNotShared,
    NERR_Success,
)
from netsession.server.srvsvc import CallContext, ServerIdentity, SrvsvcService, Transport
from netsession.table import Caller, SessionTable
from netsession.wire.srvsvc import (
    SERVER_INFO_102,
    SERVER_INFO_502,
    SERVER_INFO_503,
    SERVER_TRANSPORT_INFO_0,
    SERVER_TRANSPORT_INFO_2,
    SHARE_INFO_501,
    SHARE_INFO_503_I,
    SHARE_INFO_1005,
    SHI_USES_UNLIMITED,
    STYPE_IPC,
    STYPE_SPECIAL,
    TIME_OF_DAY_INFO,
    NetrCharDevEnumRequest,
    NetrCharDevEnumResponse,
    NetrCharDevQEnumRequest,
    NetrCharDevQEnumResponse,
    NetrRemoteTODRequest,
    NetrRemoteTODResponse,
    NetrServerDiskEnumRequest,
    NetrServerDiskEnumResponse,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrServerTransportEnumRequest,
    NetrServerTransportEnumResponse,
    NetrShareCheckRequest,
    NetrShareCheckResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareEnumStickyRequest,
    NetrShareEnumStickyResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
)

ADMIN = CallContext(Caller("admin", frozenset({"Administrators"})), "10.0.0.1")
OPER = CallContext(Caller("oper", frozenset({"Server Operators"})), "10.0.0.1")
USER = CallContext(Caller("alice", frozenset({"Users"})), "10.0.0.2")
ANON = CallContext(Caller("", frozenset(), authenticated=False), "10.0.0.3")
IPC = STYPE_IPC | STYPE_SPECIAL
# 2026-12-01 22:31:45.67 UTC, a Tuesday; a zone 5 h 30 min east of UTC.
NOW = calendar.timegm((2026, 12, 1, 22, 31, 45)) + 0.67
TRANSPORTS = (Transport("127.0.0.1:4445", 2), Transport("[::1]:4445", 0))


def service() -> SrvsvcService:
    table = SessionTable(clock=lambda: 0.0)
    s = table.add("10.0.0.9", "bob", on_close=lambda s: s.remove())
    s.tree_connect("IPC$")
    s.tree_connect("ipc$")
    identity = ServerIdentity("fs1", "files", domain="CORP", transports=lambda: TRANSPORTS)
    return SrvsvcService(
        table, identity, wall_clock=lambda: NOW, uptime=lambda: 4321.5, utc_offset=lambda _t: 19800
    )


def call(ctx: CallContext, request: Any, response: Any, *decode: Any) -> Any:
    reply = service().call(ctx, request.opnum, request.encode())
    assert reply.fault is None
    return response.decode(reply.stub, *decode)


def get_share(ctx: CallContext, level: int, name: str = "IPC$") -> Any:
    return call(ctx, NetrShareGetInfoRequest(None, name, level), NetrShareGetInfoResponse, level)


# -- shares ---------------------------------------------------------------------------------------------


def test_share_levels_501_503_1005_describe_ipc() -> None:
    assert get_share(USER, 501).info == SHARE_INFO_501("IPC$", IPC, "Remote IPC", 0)
    assert get_share(USER, 1005).info == SHARE_INFO_1005(0)
    assert get_share(ADMIN, 503).info == SHARE_INFO_503_I(
        "IPC$", IPC, "Remote IPC", 0, SHI_USES_UNLIMITED, 2, "", None, "*", 0, None
    )


@pytest.mark.parametrize(
    ("level", "user_status"), [(0, 0), (1, 0), (2, 5), (501, 0), (502, 5), (503, 5), (1005, 0)]
)
def test_share_get_info_levels_2_502_503_are_for_operators(level: int, user_status: int) -> None:
    for ctx in (USER, ANON):
        assert get_share(ctx, level).status == user_status
    assert get_share(OPER, level).status == NERR_Success


@pytest.mark.parametrize("level", [3, 1004, 1006, 1501])
def test_share_get_info_other_levels_are_invalid(level: int) -> None:
    assert get_share(ADMIN, level).status == ERROR_INVALID_LEVEL


@pytest.mark.parametrize(("level", "user_status"), [(0, 0), (1, 0), (2, 5), (501, 5), (502, 5), (503, 5)])
def test_share_enum_all_levels_and_who_may_see_them(level: int, user_status: int) -> None:
    request = NetrShareEnumRequest(None, level)
    assert call(ANON, request, NetrShareEnumResponse).status == user_status
    assert call(USER, request, NetrShareEnumResponse).status == user_status
    admin = call(ADMIN, request, NetrShareEnumResponse)
    assert (admin.status, len(admin.entries), admin.total_entries) == (NERR_Success, 1, 1)


def test_share_enum_503_carries_the_server_name_and_current_uses() -> None:
    (entry,) = call(ADMIN, NetrShareEnumRequest(None, 503), NetrShareEnumResponse).entries
    assert (entry.shi503_servername, entry.shi503_current_uses) == ("*", 2)


@pytest.mark.parametrize(("level", "status"), [(501, ERROR_INVALID_LEVEL), (503, NERR_Success), (0, 0)])
def test_share_enum_sticky_has_no_level_501(level: int, status: int) -> None:
    r = call(ADMIN, NetrShareEnumStickyRequest(None, level), NetrShareEnumStickyResponse)
    assert (r.status, r.entries) == (status, [])  # IPC$ is not sticky


def test_share_enum_pages_with_prefered_maximum_length() -> None:
    r = call(ADMIN, NetrShareEnumRequest(None, 1, 8, 0), NetrShareEnumResponse)
    assert (r.status, r.entries, r.total_entries, r.resume_handle) == (2123, [], 1, 0)


@pytest.mark.parametrize("device", ["", "C:\\"])
def test_share_check_finds_a_share_by_its_local_path(device: str) -> None:
    r = call(ANON, NetrShareCheckRequest(None, device), NetrShareCheckResponse)
    if device:
        assert (r.status, r.type) == (NERR_DeviceNotShared, 0)
    else:  # IPC$'s path is empty; the type comes without STYPE_SPECIAL
        assert (r.status, r.type) == (NERR_Success, STYPE_IPC)


# -- the server -----------------------------------------------------------------------------------------


def server_info(ctx: CallContext, level: int) -> Any:
    return call(ctx, NetrServerGetInfoRequest(None, level), NetrServerGetInfoResponse, level)


def test_server_level_102_is_101_with_windows_defaults() -> None:
    info = server_info(ADMIN, 102).info
    assert isinstance(info, SERVER_INFO_102)
    assert (info.sv102_name, info.sv102_comment, info.sv102_users, info.sv102_disc) == (
        "fs1",
        "files",
        0xFFFFFFFF,
        15,
    )
    assert (info.sv102_announce, info.sv102_anndelta, info.sv102_hidden) == (240, 3000, 0)


def test_server_levels_502_and_503_report_windows_defaults_and_the_domain() -> None:
    info502 = server_info(OPER, 502).info
    info503 = server_info(OPER, 503).info
    assert isinstance(info502, SERVER_INFO_502) and isinstance(info503, SERVER_INFO_503)
    assert (info502.sv502_sessopens, info502.sv502_sizreqbuf, info502.sv502_maxrawbuflen) == (
        2048,
        4356,
        65535,
    )
    assert tuple(info503[:18]) == tuple(info502)
    assert (info503.sv503_domain, info503.sv503_maxmpxct, info503.sv503_maxfreeconnections) == ("CORP", 50, 2)


@pytest.mark.parametrize("level", [102, 502, 503])
def test_server_levels_102_502_503_are_for_operators(level: int) -> None:
    r = server_info(USER, level)
    assert (r.status, r.info) == (ERROR_ACCESS_DENIED, None)


def test_disk_enum_a_pipe_server_has_no_drives_only_the_terminator() -> None:
    r = call(ADMIN, NetrServerDiskEnumRequest(None, 0), NetrServerDiskEnumResponse)
    assert (r.status, r.disks, r.total_entries) == (NERR_Success, [""], 0)
    assert len(r.disks) == r.total_entries + 1  # MS-SRVS §3.1.4.19


def test_disk_enum_level_and_access() -> None:
    assert (
        call(ADMIN, NetrServerDiskEnumRequest(None, 1), NetrServerDiskEnumResponse).status
        == ERROR_INVALID_LEVEL
    )
    r = call(USER, NetrServerDiskEnumRequest(None, 0), NetrServerDiskEnumResponse)
    assert (r.status, r.disks) == (ERROR_ACCESS_DENIED, [])


def test_transport_enum_lists_what_the_server_listens_on() -> None:
    r = call(ADMIN, NetrServerTransportEnumRequest(None, 0), NetrServerTransportEnumResponse)
    assert r.status == NERR_Success and r.total_entries == 2
    assert r.entries[0] == SERVER_TRANSPORT_INFO_0(
        2, "\\Device\\NetbiosSmb", b"FS1             ", 16, "127.0.0.1:4445"
    )
    r = call(OPER, NetrServerTransportEnumRequest(None, 2), NetrServerTransportEnumResponse)
    assert r.entries[1] == SERVER_TRANSPORT_INFO_2(
        0, "\\Device\\NetbiosSmb", b"FS1             ", 16, "[::1]:4445", "CORP", 0
    )
    assert (
        call(ADMIN, NetrServerTransportEnumRequest(None, 1), NetrServerTransportEnumResponse).entries[0][5]
        == "CORP"
    )


@pytest.mark.parametrize("level", [3, 4, 502])
def test_transport_enum_levels_other_than_0_1_2_are_invalid(level: int) -> None:
    r = call(ADMIN, NetrServerTransportEnumRequest(None, level), NetrServerTransportEnumResponse)
    assert (r.status, r.entries) == (ERROR_INVALID_LEVEL, [])


def test_transport_enum_is_for_operators_and_pages() -> None:
    assert call(USER, NetrServerTransportEnumRequest(None, 0), NetrServerTransportEnumResponse).status == 5
    first = call(ADMIN, NetrServerTransportEnumRequest(None, 0, 150, 0), NetrServerTransportEnumResponse)
    assert (first.status, len(first.entries), first.resume_handle) == (ERROR_MORE_DATA, 1, 1)
    rest = call(ADMIN, NetrServerTransportEnumRequest(None, 0, 150, 1), NetrServerTransportEnumResponse)
    assert (rest.status, [e[4] for e in rest.entries], rest.resume_handle) == (
        NERR_Success,
        ["[::1]:4445"],
        2,
    )


def test_remote_tod_is_the_servers_clock_and_zone_for_anyone() -> None:
    r = call(ANON, NetrRemoteTODRequest(None), NetrRemoteTODResponse)
    assert r.status == NERR_Success
    assert r.info == TIME_OF_DAY_INFO(int(NOW), 4321500, 22, 31, 45, 67, -330, 10, 1, 12, 2026, 2)


def test_remote_tod_west_of_greenwich_is_positive() -> None:
    svc = SrvsvcService(
        SessionTable(), ServerIdentity("x"), wall_clock=lambda: NOW, utc_offset=lambda _t: -18000
    )
    assert svc.time_of_day().tod_timezone == 300


@pytest.mark.parametrize("level", [0, 1, 7])
def test_char_device_opnums_answer_not_supported_with_a_well_formed_reply(level: int) -> None:
    r = call(ADMIN, NetrCharDevEnumRequest(None, level), NetrCharDevEnumResponse)
    assert (r.level, r.entries, r.total_entries, r.status) == (level, [], 0, ERROR_NOT_SUPPORTED)
    q = call(
        USER,
        NetrCharDevQEnumRequest(None, "Administrator", level, resume_handle=None),
        NetrCharDevQEnumResponse,
    )
    assert (q.entries, q.resume_handle, q.status) == ([], None, ERROR_NOT_SUPPORTED)
