"""impacket as the oracle, both ways, for NetrShareCheck, NetrServerDiskEnum, NetrServerTransportEnum,
NetrRemoteTOD, SHARE_INFO_501/1005 and SERVER_INFO_102/502/503 (MS-SRVS §2.2.4.25-29, 42-45, 91-105)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("impacket")

from impacket.dcerpc.v5 import srvs  # type: ignore[import-untyped]
from impacket.dcerpc.v5.dtypes import NULL  # type: ignore[import-untyped]
from test_srvsvc_files_impacket import imp_fill, imp_record
from test_srvsvc_impacket import imp_in, imp_optional, imp_string

from netsession.server.srvsvc import WINDOWS_502_DEFAULTS, WINDOWS_503_TAIL
from netsession.wire.srvsvc import (
    SERVER_INFO_102,
    SERVER_INFO_502,
    SERVER_INFO_503,
    SERVER_TRANSPORT_INFO_0,
    SERVER_TRANSPORT_INFO_1,
    SERVER_TRANSPORT_INFO_2,
    SHARE_INFO_501,
    SHARE_INFO_1005,
    TIME_OF_DAY_INFO,
    NetrRemoteTODRequest,
    NetrRemoteTODResponse,
    NetrServerDiskEnumRequest,
    NetrServerDiskEnumResponse,
    NetrServerGetInfoResponse,
    NetrServerTransportEnumRequest,
    NetrServerTransportEnumResponse,
    NetrShareCheckRequest,
    NetrShareCheckResponse,
    NetrShareGetInfoResponse,
)

TRANSPORTS: dict[int, Any] = {
    0: [SERVER_TRANSPORT_INFO_0(3, "\\Device\\NetbiosSmb", b"FS1             ", 16, "127.0.0.1:445")],
    1: [
        SERVER_TRANSPORT_INFO_1(0, "\\Device\\NetbiosSmb", b"FS1             ", 16, "[::1]:445", "CORP"),
        SERVER_TRANSPORT_INFO_1(1, "t\u00e9", None, 0, None, None),
    ],
    2: [SERVER_TRANSPORT_INFO_2(9, "\\Device\\NetbiosSmb", b"X" * 16, 16, "h:1", "D\u00f4", 2)],
}


@pytest.mark.parametrize("device", ["", "C:\\", "\u4e2d"])
def test_share_check_agrees_with_impacket_both_ways(device: str) -> None:
    req = srvs.NetrShareCheck()
    req["ServerName"] = imp_in("\\\\srv")
    req["Device"] = device + "\0"
    assert NetrShareCheckRequest.decode(req.getData()) == NetrShareCheckRequest("\\\\srv", device)
    back = srvs.NetrShareCheck()
    back.fromString(NetrShareCheckRequest(None, device).encode())
    assert (imp_string(back.fields["ServerName"]), imp_string(back.fields["Device"])) == (None, device)
    resp = srvs.NetrShareCheckResponse()
    resp.fromString(NetrShareCheckResponse(3, 0).encode())
    assert (resp["Type"], resp["ErrorCode"]) == (3, 0)
    built = srvs.NetrShareCheckResponse()
    built["Type"], built["ErrorCode"] = 0, 2311
    assert NetrShareCheckResponse.decode(built.getData()) == NetrShareCheckResponse(0, 2311)


@pytest.mark.parametrize("disks", [[""], ["C:", ""], ["A:", "Z:", ""], []])
def test_disk_enum_agrees_with_impacket_both_ways(disks: list[str]) -> None:
    resp = srvs.NetrServerDiskEnumResponse()
    resp.fromString(NetrServerDiskEnumResponse(disks, max(len(disks) - 1, 0), 0, 0).encode())
    got = [d["Disk"].rstrip("\0") for d in resp["DiskInfoStruct"]["Buffer"]] if disks else []
    assert (resp["DiskInfoStruct"]["EntriesRead"], got) == (len(disks), disks)
    assert imp_optional(resp.fields["ResumeHandle"]) == 0
    built = srvs.NetrServerDiskEnumResponse()
    built["DiskInfoStruct"]["EntriesRead"] = len(disks)
    if not disks:
        built["DiskInfoStruct"]["Buffer"] = NULL
    for disk in disks:
        entry = srvs.DISK_INFO()
        entry["Disk"] = disk + "\0"
        built["DiskInfoStruct"]["Buffer"].append(entry)
    built["TotalEntries"], built["ResumeHandle"], built["ErrorCode"] = len(disks), NULL, 0
    assert NetrServerDiskEnumResponse.decode(built.getData()) == NetrServerDiskEnumResponse(disks, len(disks))
    req = srvs.NetrServerDiskEnum()
    req["ServerName"], req["Level"] = NULL, 0
    req["DiskInfoStruct"]["Buffer"] = NULL
    req["PreferedMaximumLength"], req["ResumeHandle"] = 0xFFFFFFFF, 0
    assert NetrServerDiskEnumRequest.decode(req.getData()) == NetrServerDiskEnumRequest(
        None, 0, 0xFFFFFFFF, 0
    )
    ours = srvs.NetrServerDiskEnum()
    ours.fromString(NetrServerDiskEnumRequest("\\\\s", 0, 5, None).encode())
    assert (ours["Level"], ours["PreferedMaximumLength"], imp_optional(ours.fields["ResumeHandle"])) == (
        0,
        5,
        None,
    )


def _imp_transport(struct: Any, record: Any) -> Any:
    for (name, _), value in zip(struct.structure, record):
        if isinstance(value, bytes):
            struct[name] = list(value)
        else:
            struct[name] = imp_in(value)
    return struct


def _imp_transport_values(struct: Any, record: type[Any]) -> Any:
    values = []
    for name, _ in struct.structure:
        f = struct.fields[name]
        if name.endswith("_transportaddress"):
            values.append(None if f["ReferentID"] == 0 else b"".join(f["Data"]))
        elif "ReferentID" in f.fields:
            values.append(imp_string(f))
        else:
            values.append(f["Data"])
    return record(*values)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_transport_enum_agrees_with_impacket_both_ways(level: int) -> None:
    entries = TRANSPORTS[level]
    resp = srvs.NetrServerTransportEnumResponse()
    resp.fromString(NetrServerTransportEnumResponse(level, entries, len(entries), 1, 0).encode())
    assert resp["InfoStruct"]["Level"] == resp["InfoStruct"]["XportInfo"]["tag"] == level
    buffer = resp["InfoStruct"]["XportInfo"][f"Level{level}"]["Buffer"]
    assert [_imp_transport_values(e, type(entries[0])) for e in buffer] == entries
    built = srvs.NetrServerTransportEnumResponse()
    built["InfoStruct"]["Level"] = level
    built["InfoStruct"]["XportInfo"]["tag"] = level
    container = built["InfoStruct"]["XportInfo"][f"Level{level}"]
    container["EntriesRead"] = len(entries)
    for e in entries:
        container["Buffer"].append(_imp_transport(getattr(srvs, f"SERVER_TRANSPORT_INFO_{level}")(), e))
    built["TotalEntries"], built["ResumeHandle"], built["ErrorCode"] = len(entries), NULL, 0
    expected = NetrServerTransportEnumResponse(level, entries, len(entries), None, 0)
    assert NetrServerTransportEnumResponse.decode(built.getData()) == expected
    req = srvs.NetrServerTransportEnum()
    req["ServerName"] = NULL
    req["InfoStruct"]["Level"] = level
    req["InfoStruct"]["XportInfo"]["tag"] = level
    req["InfoStruct"]["XportInfo"][f"Level{level}"]["Buffer"] = NULL
    req["PreferedMaximumLength"], req["ResumeHandle"] = 0xFFFFFFFF, NULL
    ours = NetrServerTransportEnumRequest.decode(req.getData())
    assert ours == NetrServerTransportEnumRequest(None, level, 0xFFFFFFFF, None)


@pytest.mark.parametrize("zone", [-330, 0, 300, -1])
def test_remote_tod_agrees_with_impacket_both_ways(zone: int) -> None:
    info = TIME_OF_DAY_INFO(1796164318, 4321500, 22, 31, 45, 67, zone, 10, 1, 12, 2026, 2)
    resp = srvs.NetrRemoteTODResponse()
    resp.fromString(NetrRemoteTODResponse(info, 0).encode())
    got = resp["BufferPtr"]
    values = [got[name] for name, _ in srvs.TIME_OF_DAY_INFO.structure]
    values[6] = values[6] - (1 << 32) if values[6] >= 1 << 31 else values[6]  # impacket: unsigned
    assert TIME_OF_DAY_INFO(*values) == info
    built = srvs.NetrRemoteTODResponse()
    for name, value in zip((n for n, _ in srvs.TIME_OF_DAY_INFO.structure), info):
        built["BufferPtr"][name] = value & 0xFFFFFFFF
    built["ErrorCode"] = 0
    assert NetrRemoteTODResponse.decode(built.getData()) == NetrRemoteTODResponse(info, 0)
    req = srvs.NetrRemoteTOD()
    req["ServerName"] = imp_in("\\\\srv")
    assert NetrRemoteTODRequest.decode(req.getData()) == NetrRemoteTODRequest("\\\\srv")


@pytest.mark.parametrize(
    ("level", "info"),
    [(501, SHARE_INFO_501("IPC$", 0x80000003, "Remote IPC", 0x30)), (1005, SHARE_INFO_1005(0x800))],
)
def test_share_levels_501_and_1005_agree_with_impacket_both_ways(level: int, info: Any) -> None:
    resp = srvs.NetrShareGetInfoResponse()
    resp.fromString(NetrShareGetInfoResponse(level, info, 0).encode())
    assert imp_record(resp["InfoStruct"].fields[f"ShareInfo{level}"].fields["Data"], type(info)) == info
    built = srvs.NetrShareGetInfoResponse()
    built["InfoStruct"]["tag"] = level
    imp_fill(built["InfoStruct"][f"ShareInfo{level}"], info)
    built["ErrorCode"] = 0
    assert NetrShareGetInfoResponse.decode(built.getData(), level) == NetrShareGetInfoResponse(level, info, 0)


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (102, SERVER_INFO_102(500, "FS1", 10, 0, 0x9003, "c", 0xFFFFFFFF, 15, 0, 240, 3000, 0, "c:\\")),
        (502, SERVER_INFO_502(*WINDOWS_502_DEFAULTS)),
        (503, SERVER_INFO_503(*WINDOWS_502_DEFAULTS, "D\u00f4MAIN", *WINDOWS_503_TAIL)),
    ],
)
def test_server_levels_102_502_503_agree_with_impacket_both_ways(level: int, info: Any) -> None:
    resp = srvs.NetrServerGetInfoResponse()
    resp.fromString(NetrServerGetInfoResponse(level, info, 0).encode())
    assert resp["InfoStruct"]["tag"] == level
    assert imp_record(resp["InfoStruct"].fields[f"ServerInfo{level}"].fields["Data"], type(info)) == info
    built = srvs.NetrServerGetInfoResponse()
    built["InfoStruct"]["tag"] = level
    imp_fill(built["InfoStruct"][f"ServerInfo{level}"], info)
    built["ErrorCode"] = 0
    assert NetrServerGetInfoResponse.decode(built.getData(), level) == NetrServerGetInfoResponse(
        level, info, 0
    )
