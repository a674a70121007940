"""impacket as the oracle, both ways, for the session's neighbours: NetrFileEnum / NetrFileGetInfo /
NetrFileClose (FILE_INFO_2/3) and NetrConnectionEnum (CONNECTION_INFO_0/1) — MS-SRVS §2.2.4.1-10,
§3.1.4.1-4. The comparison is on values (impacket's referent ids and padding differ from ours)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("impacket")

from impacket.dcerpc.v5 import srvs  # type: ignore[import-untyped]
from impacket.dcerpc.v5.dtypes import NULL  # type: ignore[import-untyped]
from impacket.dcerpc.v5.ndr import NDRPOINTER  # type: ignore[import-untyped]
from test_srvsvc_impacket import DWORDS, _name, imp_in, imp_optional, imp_string

from netsession.records import CONNECTION_LEVELS, FILE_LEVELS
from netsession.wire.srvsvc import (
    CONNECTION_ARRAYS,
    FILE_ARRAYS,
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
)

MANY = 1000


def records(
    levels: dict[int, type[Any]], arrays: dict[int, Any], level: int, n: int, lone: bool
) -> list[Any]:
    kinds = arrays[level].is_string
    return [
        levels[level](
            *[_name(i + j, lone) if s else DWORDS[(i + j) % len(DWORDS)] for j, s in enumerate(kinds)]
        )
        for i in range(n)
    ]


# impacket spells one field after MS-SMB2 (fi3_path_name where MS-SRVS §2.2.4.7 has fi3_pathname): its
# structures are read and filled by position, in wire order.


def imp_record(struct: Any, record: type[Any]) -> Any:
    values = []
    for name, _ in struct.structure:
        f = struct.fields[name]
        values.append(imp_string(f) if isinstance(f, NDRPOINTER) else f["Data"])
    return record(*values)


def imp_fill(struct: Any, record: Any) -> Any:
    for (name, _), value in zip(struct.structure, record):
        struct[name] = imp_in(value)
    return struct


def imp_entries(container: Any, record: type[Any]) -> list[Any]:
    if container["ReferentID"] == 0:
        return []
    buffer = container.fields["Data"].fields["Buffer"]
    if buffer["ReferentID"] == 0:
        return []
    return [imp_record(e, record) for e in buffer.fields["Data"].fields["Data"]]


QUALIFIERS = pytest.mark.parametrize(
    ("server", "first", "second"),
    [(None, None, None), ("\\\\srv", "\\PIPE", "alice"), (None, "", "\u00e9\u4e2d\U0001f600")],
)


# -- requests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [2, 3])
@QUALIFIERS
@pytest.mark.parametrize("resume", [None, 0, 7])
def test_impacket_file_enum_request_decodes_in_ours(
    level: int, server: str | None, first: str | None, second: str | None, resume: int | None
) -> None:
    req = srvs.NetrFileEnum()
    req["ServerName"] = imp_in(server)
    req["BasePath"] = imp_in(first)
    req["UserName"] = imp_in(second)
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["FileInfo"]["tag"] = level
    req["InfoStruct"]["FileInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 4096
    req["ResumeHandle"] = imp_in(resume)
    ours = NetrFileEnumRequest.decode(req.getData())
    assert ours == NetrFileEnumRequest(server, first, second, level, 4096, resume)


@pytest.mark.parametrize("level", [2, 3])
@QUALIFIERS
@pytest.mark.parametrize("resume", [None, 0, 9])
def test_our_file_enum_request_decodes_in_impacket(
    level: int, server: str | None, first: str | None, second: str | None, resume: int | None
) -> None:
    req = srvs.NetrFileEnum()
    req.fromString(NetrFileEnumRequest(server, first, second, level, 100, resume).encode())
    names = [imp_string(req.fields[k]) for k in ("ServerName", "BasePath", "UserName")]
    assert names == [server, first, second]
    assert req["InfoStruct"]["Level"] == req["InfoStruct"]["FileInfo"]["tag"] == level
    assert (req["PreferedMaximumLength"], imp_optional(req.fields["ResumeHandle"])) == (100, resume)


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("qualifier", [None, "IPC$", "\\\\10.0.0.5", "\u4e2d\U0001f600"])
@pytest.mark.parametrize("resume", [None, 0, 3])
def test_impacket_connection_enum_request_decodes_in_ours(
    level: int, qualifier: str | None, resume: int | None
) -> None:
    req = srvs.NetrConnectionEnum()
    req["ServerName"] = imp_in("\\\\srv")
    req["Qualifier"] = imp_in(qualifier)
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["ConnectInfo"]["tag"] = level
    req["InfoStruct"]["ConnectInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"] = 0xFFFFFFFF
    req["ResumeHandle"] = imp_in(resume)
    ours = NetrConnectionEnumRequest.decode(req.getData())
    assert ours == NetrConnectionEnumRequest("\\\\srv", qualifier, level, 0xFFFFFFFF, resume)


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("qualifier", [None, "IPC$", "\\\\[::1]"])
def test_our_connection_enum_request_decodes_in_impacket(level: int, qualifier: str | None) -> None:
    req = srvs.NetrConnectionEnum()
    req.fromString(NetrConnectionEnumRequest(None, qualifier, level, 512, 4).encode())
    assert (imp_string(req.fields["ServerName"]), imp_string(req.fields["Qualifier"])) == (None, qualifier)
    assert req["InfoStruct"]["Level"] == req["InfoStruct"]["ConnectInfo"]["tag"] == level
    assert (req["PreferedMaximumLength"], imp_optional(req.fields["ResumeHandle"])) == (512, 4)


@pytest.mark.parametrize("file_id", DWORDS)
def test_file_get_info_and_close_requests_agree_with_impacket(file_id: int) -> None:
    get = srvs.NetrFileGetInfo()
    get["ServerName"] = imp_in("\\\\srv")
    get["FileId"] = file_id
    get["Level"] = 3
    assert NetrFileGetInfoRequest.decode(get.getData()) == NetrFileGetInfoRequest("\\\\srv", file_id, 3)
    close = srvs.NetrFileClose()
    close["ServerName"] = NULL
    close["FileId"] = file_id
    assert NetrFileCloseRequest.decode(close.getData()) == NetrFileCloseRequest(None, file_id)
    back = srvs.NetrFileGetInfo()
    back.fromString(NetrFileGetInfoRequest(None, file_id, 2).encode())
    assert (imp_string(back.fields["ServerName"]), back["FileId"], back["Level"]) == (None, file_id, 2)
    back_close = srvs.NetrFileClose()
    back_close.fromString(NetrFileCloseRequest("\\\\\u00e9", file_id).encode())
    assert (imp_string(back_close.fields["ServerName"]), back_close["FileId"]) == ("\\\\\u00e9", file_id)


# -- responses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [2, 3])
@pytest.mark.parametrize("n", [0, 1, MANY])
def test_our_file_enum_response_decodes_in_impacket(level: int, n: int) -> None:
    entries = records(FILE_LEVELS, FILE_ARRAYS, level, n, lone=True)
    msg = NetrFileEnumResponse(level, entries, n + 1, 5 if n else None, 234 if n else 0)
    resp = srvs.NetrFileEnumResponse()
    resp.fromString(msg.encode())
    assert resp["InfoStruct"]["Level"] == resp["InfoStruct"]["FileInfo"]["tag"] == level
    assert imp_entries(resp["InfoStruct"]["FileInfo"].fields[f"Level{level}"], FILE_LEVELS[level]) == entries
    assert resp["TotalEntries"] == n + 1
    assert imp_optional(resp.fields["ResumeHandle"]) == msg.resume_handle
    assert resp["ErrorCode"] == msg.status


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("n", [0, 1, MANY])
def test_our_connection_enum_response_decodes_in_impacket(level: int, n: int) -> None:
    entries = records(CONNECTION_LEVELS, CONNECTION_ARRAYS, level, n, lone=True)
    msg = NetrConnectionEnumResponse(level, entries, n, None, 0)
    resp = srvs.NetrConnectionEnumResponse()
    resp.fromString(msg.encode())
    assert resp["InfoStruct"]["Level"] == resp["InfoStruct"]["ConnectInfo"]["tag"] == level
    got = imp_entries(resp["InfoStruct"]["ConnectInfo"].fields[f"Level{level}"], CONNECTION_LEVELS[level])
    assert got == entries
    tail = (resp["TotalEntries"], imp_optional(resp.fields["ResumeHandle"]), resp["ErrorCode"])
    assert tail == (n, None, 0)


def _imp_enum_response(
    response: Any, union: str, level: int, item: Any, entries: list[Any], resume: int | None
) -> bytes:
    resp = response()
    resp["InfoStruct"]["Level"] = level
    resp["InfoStruct"][union]["tag"] = level
    container = resp["InfoStruct"][union][f"Level{level}"]
    container["EntriesRead"] = len(entries)
    if not entries:
        container["Buffer"] = NULL
    for e in entries:
        container["Buffer"].append(imp_fill(item(), e))
    resp["TotalEntries"] = len(entries) + 3
    resp["ResumeHandle"] = imp_in(resume)
    resp["ErrorCode"] = 234 if entries else 0
    return bytes(resp.getData())


@pytest.mark.parametrize("level", [2, 3])
@pytest.mark.parametrize("n", [0, 1, 300])
def test_impacket_file_enum_response_decodes_in_ours(level: int, n: int) -> None:
    entries = records(FILE_LEVELS, FILE_ARRAYS, level, n, lone=False)
    item = getattr(srvs, f"FILE_INFO_{level}")
    stub = _imp_enum_response(srvs.NetrFileEnumResponse, "FileInfo", level, item, entries, 2 if n else None)
    expected = NetrFileEnumResponse(level, entries, n + 3, 2 if n else None, 234 if n else 0)
    assert NetrFileEnumResponse.decode(stub) == expected


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("n", [0, 1, 300])
def test_impacket_connection_enum_response_decodes_in_ours(level: int, n: int) -> None:
    entries = records(CONNECTION_LEVELS, CONNECTION_ARRAYS, level, n, lone=False)
    item = getattr(srvs, f"CONNECTION_INFO_{level}")
    stub = _imp_enum_response(srvs.NetrConnectionEnumResponse, "ConnectInfo", level, item, entries, 0)
    expected = NetrConnectionEnumResponse(level, entries, n + 3, 0, 234 if n else 0)
    assert NetrConnectionEnumResponse.decode(stub) == expected


@pytest.mark.parametrize("level", [2, 3])
def test_file_get_info_response_agrees_with_impacket_both_ways(level: int) -> None:
    info = records(FILE_LEVELS, FILE_ARRAYS, level, 3, lone=False)[2]
    resp = srvs.NetrFileGetInfoResponse()
    resp.fromString(NetrFileGetInfoResponse(level, info, 0).encode())
    assert resp["InfoStruct"]["tag"] == level
    assert imp_record(resp["InfoStruct"].fields[f"FileInfo{level}"].fields["Data"], type(info)) == info
    built = srvs.NetrFileGetInfoResponse()
    built["InfoStruct"]["tag"] = level
    imp_fill(built["InfoStruct"][f"FileInfo{level}"], info)
    built["ErrorCode"] = 0
    assert NetrFileGetInfoResponse.decode(built.getData(), level) == NetrFileGetInfoResponse(level, info, 0)


def test_file_get_info_error_and_close_responses_agree_with_impacket() -> None:
    resp = srvs.NetrFileGetInfoResponse()
    resp.fromString(NetrFileGetInfoResponse(3, None, 2).encode())
    arm = resp["InfoStruct"].fields["FileInfo3"]
    assert (resp["InfoStruct"]["tag"], arm["ReferentID"], resp["ErrorCode"]) == (3, 0, 2)
    close = srvs.NetrFileCloseResponse()
    close.fromString(NetrFileCloseResponse(2314).encode())
    assert close["ErrorCode"] == 2314
    built = srvs.NetrFileCloseResponse()
    built["ErrorCode"] = 5
    assert NetrFileCloseResponse.decode(built.getData()) == NetrFileCloseResponse(5)
