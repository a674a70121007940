"""impacket's srvs structures as an independent NDR oracle (tests only; no impacket code in src/).

Requests impacket builds decode in our codec with identical values; our responses (and requests) decode
in impacket with identical values; responses impacket builds decode in ours. impacket differs from us in
ways NDR allows — random referent ids, padding filled with 0xBF/0xAB rather than zeros — so the
comparison is on values, not bytes. impacket's NDR is slow (~0.3 ms per level-502 record each way), so the
"thousands" here are sized to keep this file to a few seconds.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("impacket")

from impacket.dcerpc.v5 import srvs  # type: ignore[import-untyped]
from impacket.dcerpc.v5.dtypes import NULL  # type: ignore[import-untyped]
from impacket.dcerpc.v5.ndr import NDRPOINTER  # type: ignore[import-untyped]

from netsession.records import SESSION_LEVELS, SessionInfo
from netsession.wire.srvsvc import (
    SERVER_INFO_100,
    SERVER_INFO_101,
    SESSION_ARRAYS,
    SHARE_INFO_0,
    SHARE_INFO_1,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
)

# impacket encodes with strict UTF-16, so lone surrogates only go the other way (our bytes, its decoder).
NAMES = ["\\\\10.0.0.5", "Ren\u00e9e", "\u4e2d\u6587", "\U0001f600 x", "", "\\Device\\NetbiosSmb", "ALICE"]
LONE = "\ud800z\udfff"
DWORDS = [0, 1, 42, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
MANY = 2000  # our encoding, impacket decoding
MANY_BUILT = 1000  # impacket encoding (the slower, superlinear direction), our decoding


def _name(i: int, lone: bool) -> str | None:
    if i % 4 == 3:
        return None
    if lone and i % 7 == 5:
        return LONE
    name = NAMES[i % len(NAMES)]
    return f"{name}{i}" if i % 2 else name


def sessions(level: int, n: int, lone: bool = False) -> list[SessionInfo]:
    record = SESSION_LEVELS[level]
    kinds = SESSION_ARRAYS[level].is_string
    return [
        record(*[_name(i + j, lone) if s else DWORDS[(i + j) % len(DWORDS)] for j, s in enumerate(kinds)])
        for i in range(n)
    ]


# -- reading impacket structures ------------------------------------------------------------------------


def imp_string(field: Any) -> str | None:
    """An impacket LPWSTR / WSTR field as our value: None for a NULL pointer, else the text without its NUL
    (read from the raw UTF-16 so that lone surrogates survive)."""
    if "ReferentID" in field.fields:
        if field["ReferentID"] == 0:
            return None
        field = field.fields["Data"]
    raw: bytes = field.fields["Data"]
    assert raw[-2:] == b"\0\0"
    return raw[:-2].decode("utf-16-le", "surrogatepass")


def imp_record(struct: Any, record: type[Any]) -> Any:
    values = []
    for name in record._fields:
        f = struct.fields[name]
        values.append(imp_string(f) if isinstance(f, NDRPOINTER) else f["Data"])
    return record(*values)


def imp_entries(container: Any, record: type[Any]) -> list[Any]:
    if container["ReferentID"] == 0:
        return []
    buffer = container.fields["Data"].fields["Buffer"]
    if buffer["ReferentID"] == 0:
        return []
    return [imp_record(e, record) for e in buffer.fields["Data"].fields["Data"]]


def imp_resume(value: Any) -> int | None:
    # impacket types ResumeHandle LPLONG (signed); MS-SRVS §3.1.4.5 has DWORD*.
    return None if value == NULL or value is None else value & 0xFFFFFFFF


def imp_optional(field: Any) -> int | None:
    return None if field["ReferentID"] == 0 else imp_resume(field["Data"])


# -- building impacket structures -----------------------------------------------------------------------


def imp_in(value: str | int | None) -> Any:
    if value is None:
        return NULL
    if isinstance(value, str):
        return value + "\0"
    return value


def imp_fill(struct: Any, record: Any) -> Any:
    for name, value in zip(record._fields, record):
        struct[name] = imp_in(value)
    return struct


# -- impacket's requests, decoded by us -----------------------------------------------------------------

FILTERS = pytest.mark.parametrize(
    ("server", "client", "user"),
    [(None, None, None), ("\\\\srv", "\\\\10.0.0.5", "alice"), (None, "", "\u00e9\u4e2d\U0001f600")],
)


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@FILTERS
@pytest.mark.parametrize("resume", [None, 0, 7])
def test_impacket_session_enum_request_decodes_in_ours(
    level: int, server: str | None, client: str | None, user: str | None, resume: int | None
) -> None:
    req = srvs.NetrSessionEnum()
    req["ServerName"] = imp_in(server)
    req["ClientName"] = imp_in(client)
    req["UserName"] = imp_in(user)
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["SessionInfo"]["tag"] = level
    req["InfoStruct"]["SessionInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0x10000
    req["ResumeHandle"] = imp_in(resume)
    ours = NetrSessionEnumRequest.decode(req.getData())
    assert ours == NetrSessionEnumRequest(server, client, user, level, 0x10000, resume)


@FILTERS
def test_impacket_session_del_request_decodes_in_ours(
    server: str | None, client: str | None, user: str | None
) -> None:
    req = srvs.NetrSessionDel()
    req["ServerName"] = imp_in(server)
    req["ClientName"] = imp_in(client)
    req["UserName"] = imp_in(user)
    assert NetrSessionDelRequest.decode(req.getData()) == NetrSessionDelRequest(server, client, user)


def _imp_share_enum(server: str | None, level: int, resume: int | None) -> bytes:
    req = srvs.NetrShareEnum()
    req["ServerName"] = imp_in(server)
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["ShareInfo"]["tag"] = level
    req["InfoStruct"]["ShareInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0xFFFFFFFF
    req["ResumeHandle"] = imp_in(resume)
    return bytes(req.getData())


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("server", [None, "\\\\srv", "\\\\h\u00f4te"])
def test_impacket_share_enum_request_decodes_in_ours(level: int, server: str | None) -> None:
    for resume in (None, 0, 5):
        ours = NetrShareEnumRequest.decode(_imp_share_enum(server, level, resume))
        assert ours == NetrShareEnumRequest(server, level, 0xFFFFFFFF, resume)


@pytest.mark.parametrize("level", [2, 501, 502, 503])
def test_impacket_share_enum_request_at_levels_we_do_not_list_keeps_its_tail(level: int) -> None:
    ours = NetrShareEnumRequest.decode(_imp_share_enum(None, level, 0))
    assert ours == NetrShareEnumRequest(None, level, 0xFFFFFFFF, 0)


@pytest.mark.parametrize("net_name", ["IPC$", "", "donn\u00e9es", "\U0001f4c1"])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_impacket_share_get_info_request_decodes_in_ours(net_name: str, level: int) -> None:
    req = srvs.NetrShareGetInfo()
    req["ServerName"] = imp_in("\\\\srv")
    req["NetName"] = net_name + "\0"
    req["Level"] = level
    expected = NetrShareGetInfoRequest("\\\\srv", net_name, level)
    assert NetrShareGetInfoRequest.decode(req.getData()) == expected


@pytest.mark.parametrize("server", [None, "\\\\srv", "\\\\\u00e9"])
@pytest.mark.parametrize("level", [100, 101, 102])
def test_impacket_server_get_info_request_decodes_in_ours(server: str | None, level: int) -> None:
    req = srvs.NetrServerGetInfo()
    req["ServerName"] = imp_in(server)
    req["Level"] = level
    assert NetrServerGetInfoRequest.decode(req.getData()) == NetrServerGetInfoRequest(server, level)


# -- our requests, decoded by impacket ------------------------------------------------------------------


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@FILTERS
@pytest.mark.parametrize("resume", [None, 0, 9])
def test_our_session_enum_request_decodes_in_impacket(
    level: int, server: str | None, client: str | None, user: str | None, resume: int | None
) -> None:
    req = srvs.NetrSessionEnum()
    req.fromString(NetrSessionEnumRequest(server, client, user, level, 4096, resume).encode())
    assert imp_string(req.fields["ServerName"]) == server
    assert imp_string(req.fields["ClientName"]) == client
    assert imp_string(req.fields["UserName"]) == user
    assert req["InfoStruct"]["Level"] == req["InfoStruct"]["SessionInfo"]["tag"] == level
    assert imp_entries(req["InfoStruct"]["SessionInfo"].fields[f"Level{level}"], SESSION_LEVELS[level]) == []
    assert req["PreferedMaximumLength"] == 4096
    assert imp_optional(req.fields["ResumeHandle"]) == resume


@FILTERS
def test_our_session_del_request_decodes_in_impacket(
    server: str | None, client: str | None, user: str | None
) -> None:
    req = srvs.NetrSessionDel()
    req.fromString(NetrSessionDelRequest(server, client, user).encode())
    names = [imp_string(req.fields[k]) for k in ("ServerName", "ClientName", "UserName")]
    assert names == [server, client, user]


@pytest.mark.parametrize("level", [0, 1])
def test_our_share_requests_decode_in_impacket(level: int) -> None:
    enum = srvs.NetrShareEnum()
    enum.fromString(NetrShareEnumRequest("\\\\srv", level, 100, 3).encode())
    assert imp_string(enum.fields["ServerName"]) == "\\\\srv"
    assert enum["InfoStruct"]["Level"] == enum["InfoStruct"]["ShareInfo"]["tag"] == level
    assert (enum["PreferedMaximumLength"], imp_optional(enum.fields["ResumeHandle"])) == (100, 3)
    get = srvs.NetrShareGetInfo()
    get.fromString(NetrShareGetInfoRequest(None, "donn\u00e9es", level).encode())
    assert imp_string(get.fields["ServerName"]) is None
    assert imp_string(get.fields["NetName"]) == "donn\u00e9es"
    assert get["Level"] == level


def test_our_server_get_info_request_decodes_in_impacket() -> None:
    req = srvs.NetrServerGetInfo()
    req.fromString(NetrServerGetInfoRequest("\\\\\u4e2d", 101).encode())
    assert (imp_string(req.fields["ServerName"]), req["Level"]) == ("\\\\\u4e2d", 101)


# -- our responses, decoded by impacket -----------------------------------------------------------------


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@pytest.mark.parametrize("n", [0, 1, MANY])
def test_our_session_enum_response_decodes_in_impacket(level: int, n: int) -> None:
    entries = sessions(level, n, lone=True)
    msg = NetrSessionEnumResponse(level, entries, n + 1, 0xFFFFFFFF if n else None, 234 if n else 0)
    resp = srvs.NetrSessionEnumResponse()
    resp.fromString(msg.encode())
    info = resp["InfoStruct"]
    assert info["Level"] == info["SessionInfo"]["tag"] == level
    container = info["SessionInfo"].fields[f"Level{level}"]
    assert container["Data"]["EntriesRead"] == n
    assert imp_entries(container, SESSION_LEVELS[level]) == entries
    assert resp["TotalEntries"] == n + 1
    assert imp_optional(resp.fields["ResumeHandle"]) == msg.resume_handle
    assert resp["ErrorCode"] == msg.status


def test_our_error_response_decodes_in_impacket() -> None:
    resp = srvs.NetrSessionEnumResponse()
    resp.fromString(NetrSessionEnumResponse(10, [], 0, None, 2312).encode())
    assert imp_entries(resp["InfoStruct"]["SessionInfo"].fields["Level10"], SESSION_LEVELS[10]) == []
    tail = (resp["TotalEntries"], imp_optional(resp.fields["ResumeHandle"]), resp["ErrorCode"])
    assert tail == (0, None, 2312)


def test_our_session_del_response_decodes_in_impacket() -> None:
    resp = srvs.NetrSessionDelResponse()
    resp.fromString(NetrSessionDelResponse(2312).encode())
    assert resp["ErrorCode"] == 2312


def _shares(level: int, n: int) -> list[Any]:
    if level == 0:
        return [SHARE_INFO_0(_name(i, True)) for i in range(n)]
    return [SHARE_INFO_1(_name(i, True), DWORDS[i % len(DWORDS)], _name(i + 1, False)) for i in range(n)]


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("n", [0, 1, 500])
def test_our_share_enum_response_decodes_in_impacket(level: int, n: int) -> None:
    entries = _shares(level, n)
    resp = srvs.NetrShareEnumResponse()
    resp.fromString(NetrShareEnumResponse(level, entries, n, 4, 0).encode())
    assert resp["InfoStruct"]["Level"] == resp["InfoStruct"]["ShareInfo"]["tag"] == level
    record = SHARE_INFO_0 if level == 0 else SHARE_INFO_1
    assert imp_entries(resp["InfoStruct"]["ShareInfo"].fields[f"Level{level}"], record) == entries
    assert (resp["TotalEntries"], imp_optional(resp.fields["ResumeHandle"]), resp["ErrorCode"]) == (n, 4, 0)


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (0, SHARE_INFO_0("IPC$")),
        (1, SHARE_INFO_1("IPC$", 0x80000003, "Remote IPC")),
        (1, SHARE_INFO_1("donn\u00e9es\U0001f4c1", 0, None)),
        (1, None),
    ],
)
def test_our_share_get_info_response_decodes_in_impacket(level: int, info: Any) -> None:
    resp = srvs.NetrShareGetInfoResponse()
    resp.fromString(NetrShareGetInfoResponse(level, info, 0).encode())
    assert resp["InfoStruct"]["tag"] == level
    arm = resp["InfoStruct"].fields[f"ShareInfo{level}"]
    got = None if arm["ReferentID"] == 0 else imp_record(arm.fields["Data"], type(info))
    assert got == info
    assert resp["ErrorCode"] == 0


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (100, SERVER_INFO_100(500, "SRV")),
        (101, SERVER_INFO_101(500, "\u4e2d", 10, 0, 0x9003, "netsession \U0001f600")),
        (101, SERVER_INFO_101(500, None, 0, 0xFFFFFFFF, 0, None)),
    ],
)
def test_our_server_get_info_response_decodes_in_impacket(level: int, info: Any) -> None:
    resp = srvs.NetrServerGetInfoResponse()
    resp.fromString(NetrServerGetInfoResponse(level, info, 0).encode())
    assert resp["InfoStruct"]["tag"] == level
    arm = resp["InfoStruct"].fields[f"ServerInfo{level}"]
    assert imp_record(arm.fields["Data"], type(info)) == info


# -- impacket's responses, decoded by us ----------------------------------------------------------------


def _imp_session_enum_response(level: int, entries: list[Any], null_buffer: bool = True) -> bytes:
    resp = srvs.NetrSessionEnumResponse()
    resp["InfoStruct"]["Level"] = level
    resp["InfoStruct"]["SessionInfo"]["tag"] = level
    container = resp["InfoStruct"]["SessionInfo"][f"Level{level}"]
    container["EntriesRead"] = len(entries)
    if not entries and null_buffer:
        container["Buffer"] = NULL
    item = getattr(srvs, f"SESSION_INFO_{level}")
    for e in entries:
        container["Buffer"].append(imp_fill(item(), e))
    resp["TotalEntries"] = len(entries) + 2
    resp["ResumeHandle"] = 3 if entries else NULL
    resp["ErrorCode"] = 234 if entries else 0
    return bytes(resp.getData())


@pytest.mark.parametrize("level", sorted(SESSION_LEVELS))
@pytest.mark.parametrize("n", [0, 1, MANY_BUILT])
def test_impacket_session_enum_response_decodes_in_ours(level: int, n: int) -> None:
    entries = sessions(level, n)
    ours = NetrSessionEnumResponse.decode(_imp_session_enum_response(level, entries))
    expected = NetrSessionEnumResponse(level, entries, n + 2, 3 if n else None, 234 if n else 0)
    assert ours == expected


def test_impacket_response_with_a_non_null_empty_buffer_decodes_in_ours() -> None:
    # A container whose Buffer points at a zero-length array (max_count 0): legal NDR, no entries.
    ours = NetrSessionEnumResponse.decode(_imp_session_enum_response(10, [], null_buffer=False))
    assert ours == NetrSessionEnumResponse(10, [], 2, None, 0)


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("n", [0, 1, 200])
def test_impacket_share_enum_response_decodes_in_ours(level: int, n: int) -> None:
    entries: list[Any] = (
        [SHARE_INFO_0(_name(i, False)) for i in range(n)]
        if level == 0
        else [SHARE_INFO_1(_name(i, False), DWORDS[i % len(DWORDS)], _name(i + 2, False)) for i in range(n)]
    )
    resp = srvs.NetrShareEnumResponse()
    resp["InfoStruct"]["Level"] = level
    resp["InfoStruct"]["ShareInfo"]["tag"] = level
    container = resp["InfoStruct"]["ShareInfo"][f"Level{level}"]
    container["EntriesRead"] = n
    if not n:
        container["Buffer"] = NULL
    for e in entries:
        container["Buffer"].append(imp_fill(getattr(srvs, f"SHARE_INFO_{level}")(), e))
    resp["TotalEntries"] = n
    resp["ResumeHandle"] = NULL
    resp["ErrorCode"] = 0
    ours = NetrShareEnumResponse.decode(resp.getData())
    assert ours == NetrShareEnumResponse(level, entries, n, None, 0)


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (0, SHARE_INFO_0("IPC$")),
        (0, SHARE_INFO_0(None)),
        (1, SHARE_INFO_1("IPC$", 0x80000003, "Remote IPC")),
        (1, SHARE_INFO_1("\u4e2d\u6587", 0, None)),
    ],
)
def test_impacket_share_get_info_response_decodes_in_ours(level: int, info: Any) -> None:
    resp = srvs.NetrShareGetInfoResponse()
    resp["InfoStruct"]["tag"] = level
    imp_fill(resp["InfoStruct"][f"ShareInfo{level}"], info)
    resp["ErrorCode"] = 0
    assert NetrShareGetInfoResponse.decode(resp.getData(), level) == NetrShareGetInfoResponse(level, info, 0)


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (100, SERVER_INFO_100(500, "SRV")),
        (101, SERVER_INFO_101(500, "SRV", 10, 0, 0x9003, None)),
        (101, SERVER_INFO_101(500, "\u00e9", 6, 1, 3, "comment \U0001f600")),
    ],
)
def test_impacket_server_get_info_response_decodes_in_ours(level: int, info: Any) -> None:
    resp = srvs.NetrServerGetInfoResponse()
    resp["InfoStruct"]["tag"] = level
    imp_fill(resp["InfoStruct"][f"ServerInfo{level}"], info)
    resp["ErrorCode"] = 0
    expected = NetrServerGetInfoResponse(level, info, 0)
    assert NetrServerGetInfoResponse.decode(resp.getData(), level) == expected


def test_impacket_session_del_response_decodes_in_ours() -> None:
    resp = srvs.NetrSessionDelResponse()
    resp["ErrorCode"] = 2312
    assert NetrSessionDelResponse.decode(resp.getData()) == NetrSessionDelResponse(2312)


@pytest.mark.parametrize("sd", [None, bytes(range(24))])
def test_our_share_info_502_decodes_in_impacket(sd: bytes | None) -> None:
    from netsession.wire.srvsvc import SHARE_INFO_502_I

    info = SHARE_INFO_502_I(
        "d\u00e9p\u00f4t", 0, "r", 1, 5, 2, "C:\\x", None, 0 if sd is None else len(sd), sd
    )
    resp = srvs.NetrShareGetInfoResponse()
    resp.fromString(NetrShareGetInfoResponse(502, info, 0).encode())
    got = resp["InfoStruct"]["ShareInfo502"]
    assert got["shi502_netname"] == "d\u00e9p\u00f4t\0"
    assert (got["shi502_max_uses"], got["shi502_current_uses"], got["shi502_reserved"]) == (
        5,
        2,
        info.shi502_reserved,
    )
    assert got["shi502_path"] == "C:\\x\0"
    assert (b"".join(got["shi502_security_descriptor"]) if sd else None) == sd
