"""srvsvc message stubs (MS-SRVS §3.1.4.5, .6, .8, .10, .17): round trips of every message at every level,
hand-laid NDR layouts, error responses, levels without a union arm, and the consistency checks
(discriminant = Level, EntriesRead = conformance)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from netsession.records import (
    SESSION_INFO_0,
    SESSION_INFO_1,
    SESSION_INFO_2,
    SESSION_INFO_10,
    SESSION_INFO_502,
    SESSION_LEVELS,
    SessionInfo,
)
from netsession.wire.ndr import REFERENT_BASE, NdrError, encode_wstring
from netsession.wire.srvsvc import (
    REQUESTS,
    SERVER_INFO_100,
    SERVER_INFO_101,
    SESSION_ARRAYS,
    SHARE_INFO_0,
    SHARE_INFO_1,
    SHARE_INFO_502_I,
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
    Opnum,
)

ERROR_INVALID_LEVEL = 124
NERR_ClientNameNotFound = 2312
ERROR_MORE_DATA = 234


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# Names that exercise every string path: ASCII, Latin-1, CJK, outside the BMP, a lone surrogate, empty.
NAMES = ["\\\\10.0.0.5", "Ren\u00e9e", "\u4e2d\u6587", "\U0001f600x", "\ud800", "", "\\\\[2001:db8::1]"]
DWORDS = [0, 1, 7, 0x7FFFFFFF, 0xFFFFFFFF]


def _name(i: int) -> str | None:
    """Every 5th string NULL; the rest cycle through NAMES with a per-record suffix now and then."""
    if i % 5 == 4:
        return None
    name = NAMES[i % len(NAMES)]
    return name + str(i) if i % 3 == 0 else name


def sessions(level: int, n: int) -> list[SessionInfo]:
    record = SESSION_LEVELS[level]
    kinds = SESSION_ARRAYS[level].is_string
    return [
        record(*[_name(i + j) if s else DWORDS[(i + j) % len(DWORDS)] for j, s in enumerate(kinds)])
        for i in range(n)
    ]


def shares(level: int, n: int) -> list[Any]:
    if level == 0:
        return [SHARE_INFO_0(_name(i)) for i in range(n)]
    types = [0, 1, 3, 0x80000003, 0xFFFFFFFF]  # STYPE_* with and without STYPE_SPECIAL
    return [SHARE_INFO_1(_name(i), types[i % len(types)], _name(i + 1)) for i in range(n)]


SIZES = pytest.mark.parametrize("n", [0, 1, 3000])
SESSION_LEVEL = pytest.mark.parametrize("level", sorted(SESSION_LEVELS))


# -- round trips ----------------------------------------------------------------------------------------

@SESSION_LEVEL
@SIZES
def test_session_enum_response_round_trips(level: int, n: int) -> None:
    msg = NetrSessionEnumResponse(level, sessions(level, n), n + 5, 1234, ERROR_MORE_DATA)
    assert NetrSessionEnumResponse.decode(msg.encode()) == msg


@SESSION_LEVEL
def test_session_enum_response_records_keep_their_types(level: int) -> None:
    decoded = NetrSessionEnumResponse.decode(NetrSessionEnumResponse(level, sessions(level, 3), 3).encode())
    assert all(type(e) is SESSION_LEVELS[level] for e in decoded.entries)


@SESSION_LEVEL
@pytest.mark.parametrize(
    "filters", [(None, None, None), ("\\\\srv", "\\\\10.0.0.5", "bob"), ("", "", "\u00e9")]
)
@pytest.mark.parametrize("resume", [None, 0, 17, 0xFFFFFFFF])
def test_session_enum_request_round_trips(
    level: int, filters: tuple[str | None, str | None, str | None], resume: int | None
) -> None:
    msg = NetrSessionEnumRequest(*filters, level, 4096, resume)
    assert NetrSessionEnumRequest.decode(msg.encode()) == msg


@pytest.mark.parametrize("names", [(None, None, None), ("\\\\srv", "\\\\\u4e2d", "\U0001f600"), ("", "", "")])
def test_session_del_request_round_trips(names: tuple[str | None, str | None, str | None]) -> None:
    msg = NetrSessionDelRequest(*names)
    assert NetrSessionDelRequest.decode(msg.encode()) == msg


@pytest.mark.parametrize("status", [0, 5, NERR_ClientNameNotFound, 0xFFFFFFFF])
def test_session_del_response_round_trips(status: int) -> None:
    msg = NetrSessionDelResponse(status)
    assert msg.encode() == u32(status)
    assert NetrSessionDelResponse.decode(msg.encode()) == msg


@pytest.mark.parametrize("level", [0, 1])
@SIZES
def test_share_enum_response_round_trips(level: int, n: int) -> None:
    msg = NetrShareEnumResponse(level, shares(level, n), n, None, 0)
    assert NetrShareEnumResponse.decode(msg.encode()) == msg


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("server", [None, "\\\\srv", "\\\\h\u00f4te"])
def test_share_enum_request_round_trips(level: int, server: str | None) -> None:
    for resume in (None, 0, 3):
        msg = NetrShareEnumRequest(server, level, 0xFFFFFFFF, resume)
        assert NetrShareEnumRequest.decode(msg.encode()) == msg


@pytest.mark.parametrize("net_name", ["IPC$", "", "donn\u00e9es", "\U0001f4c1", "\udc00"])
@pytest.mark.parametrize("level", [0, 1, 2, 502])
def test_share_get_info_request_round_trips(net_name: str, level: int) -> None:
    msg = NetrShareGetInfoRequest("\\\\srv", net_name, level)
    assert NetrShareGetInfoRequest.decode(msg.encode()) == msg


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (0, SHARE_INFO_0("IPC$")),
        (0, SHARE_INFO_0(None)),
        (1, SHARE_INFO_1("IPC$", 0x80000003, "Remote IPC")),
        (1, SHARE_INFO_1("donn\u00e9es", 0, None)),
        (1, SHARE_INFO_1(None, 0xFFFFFFFF, "\U0001f600")),
        (0, None),
        (1, None),
    ],
)
def test_share_get_info_response_round_trips(level: int, info: Any) -> None:
    msg = NetrShareGetInfoResponse(level, info, 0)
    assert NetrShareGetInfoResponse.decode(msg.encode(), level) == msg


@pytest.mark.parametrize("server", [None, "\\\\srv", "\\\\\u00e9"])
@pytest.mark.parametrize("level", [100, 101, 102])
def test_server_get_info_request_round_trips(server: str | None, level: int) -> None:
    msg = NetrServerGetInfoRequest(server, level)
    assert NetrServerGetInfoRequest.decode(msg.encode()) == msg


@pytest.mark.parametrize(
    ("level", "info"),
    [
        (100, SERVER_INFO_100(500, "SRV")),
        (100, SERVER_INFO_100(0xFFFFFFFF, None)),
        (101, SERVER_INFO_101(500, "SRV", 10, 0, 0x9003, "netsession \u00e9\U0001f600")),
        (101, SERVER_INFO_101(500, None, 0, 0, 0, None)),
        (100, None),
        (101, None),
    ],
)
def test_server_get_info_response_round_trips(level: int, info: Any) -> None:
    msg = NetrServerGetInfoResponse(level, info, 0)
    assert NetrServerGetInfoResponse.decode(msg.encode(), level) == msg


# -- layouts laid out by hand from C706 chapter 14 ---------------------------------------------------------

def test_session_enum_response_layout_level_10() -> None:
    msg = NetrSessionEnumResponse(10, [SESSION_INFO_10("PC", "bob", 5, 1)], 1, None, 0)
    r = REFERENT_BASE
    assert msg.encode() == b"".join(
        [
            u32(10, 10),  # Level, union discriminant
            u32(r),  # -> SESSION_INFO_10_CONTAINER
            u32(1, r + 4),  # EntriesRead, -> Buffer
            u32(1),  # Buffer max_count
            u32(r + 8, r + 12, 5, 1),  # the record's fixed part: two referent ids, two DWORDs
            u32(3, 0, 3) + "PC\0".encode("utf-16-le") + b"\0\0",  # deferred referents, each 4-aligned
            u32(4, 0, 4) + "bob\0".encode("utf-16-le"),
            u32(1),  # TotalEntries
            u32(0),  # ResumeHandle: NULL
            u32(0),  # NET_API_STATUS
        ]
    )


def test_session_enum_request_layout() -> None:
    msg = NetrSessionEnumRequest(None, "\\\\pc", None, 502, 0xFFFFFFFF, 0)
    r = REFERENT_BASE
    assert msg.encode() == b"".join(
        [
            u32(0),  # ServerName NULL
            u32(r) + encode_wstring("\\\\pc"),  # ClientName: top-level pointer, referent at once
            u32(0),  # UserName NULL
            u32(502, 502, r + 4, 0, 0),  # Level, discriminant, -> container {EntriesRead 0, Buffer NULL}
            u32(0xFFFFFFFF),  # PreferedMaximumLength
            u32(r + 8, 0),  # ResumeHandle -> 0
        ]
    )


def test_share_get_info_request_net_name_is_a_ref_pointer_without_referent_id() -> None:
    # [in, string] WCHAR* NetName: a top-level ref pointer has no representation (C706 §14.3.11.1).
    assert NetrShareGetInfoRequest(None, "IPC$", 1).encode() == u32(0) + encode_wstring("IPC$") + u32(1)


def test_server_get_info_response_layout_level_101() -> None:
    msg = NetrServerGetInfoResponse(101, SERVER_INFO_101(500, "S", 10, 0, 3, None), 0)
    r = REFERENT_BASE
    assert msg.encode() == u32(101, r, 500, r + 4, 10, 0, 3, 0) + encode_wstring("S") + u32(0)


def test_empty_enum_response_has_a_container_with_a_null_buffer() -> None:
    msg = NetrSessionEnumResponse(0, [], 0, None, 0)
    assert msg.encode() == u32(0, 0, REFERENT_BASE, 0, 0) + u32(0, 0, 0)


# -- error responses --------------------------------------------------------------------------------------

@SESSION_LEVEL
def test_error_response_without_entries_round_trips(level: int) -> None:
    msg = NetrSessionEnumResponse(level, [], 0, None, NERR_ClientNameNotFound)
    data = msg.encode()
    assert data.endswith(u32(0, 0, NERR_ClientNameNotFound))
    assert NetrSessionEnumResponse.decode(data) == msg


def test_share_get_info_error_response_has_a_null_info() -> None:
    msg = NetrShareGetInfoResponse(1, None, 2310)
    assert msg.encode() == u32(1, 0, 2310)
    assert NetrShareGetInfoResponse.decode(msg.encode(), 1) == msg


# -- levels without a union arm ------------------------------------------------------------------------------
# SESSION_ENUM_UNION (MS-SRVS §2.2.3.4) and SHARE_ENUM_UNION have no arm for these levels: nothing follows
# the discriminant, and the server answers ERROR_INVALID_LEVEL.

@pytest.mark.parametrize("level", [3, 11, 501, 0xFFFFFFFF])
def test_session_request_at_a_level_without_arm_round_trips(level: int) -> None:
    msg = NetrSessionEnumRequest(None, None, None, level, 100, None)
    data = msg.encode()
    assert data == u32(0, 0, 0, level, level, 100, 0)
    assert NetrSessionEnumRequest.decode(data) == msg


@pytest.mark.parametrize("level", [3, 11, 0xFFFFFFFF])
def test_session_response_at_a_level_without_arm_carries_only_the_discriminant(level: int) -> None:
    msg = NetrSessionEnumResponse(level, [], 0, None, ERROR_INVALID_LEVEL)
    data = msg.encode()
    assert data == u32(level, level, 0, 0, ERROR_INVALID_LEVEL)
    assert NetrSessionEnumResponse.decode(data) == msg


def test_share_enum_at_a_level_without_arm_round_trips() -> None:
    req = NetrShareEnumRequest(None, 7, 1, 2)
    assert NetrShareEnumRequest.decode(req.encode()) == req
    resp = NetrShareEnumResponse(7, [], 0, None, ERROR_INVALID_LEVEL)
    assert NetrShareEnumResponse.decode(resp.encode()) == resp


def test_get_info_at_a_level_without_arm_carries_only_the_discriminant() -> None:
    # SHARE_INFO has a [default] empty arm (MS-SRVS §2.2.3.6).
    share = NetrShareGetInfoResponse(7, None, ERROR_INVALID_LEVEL)
    assert share.encode() == u32(7, ERROR_INVALID_LEVEL)
    assert NetrShareGetInfoResponse.decode(share.encode(), 7) == share
    server = NetrServerGetInfoResponse(7, None, ERROR_INVALID_LEVEL)
    assert NetrServerGetInfoResponse.decode(server.encode(), 7) == server


# Levels that *are* arms of the IDL unions but have no record layout here. Decoding them as if they had
# no arm reads the container pointer as the next parameter: a silent misparse.
@pytest.mark.parametrize("level", [2, 501, 502, 503])
def test_share_enum_request_at_a_real_arm_without_layout_keeps_its_later_parameters(level: int) -> None:
    # What `net share` style clients send: an empty container for the level, then the usual tail.
    data = u32(0, level, level, REFERENT_BASE, 0, 0, 0xFFFFFFFF, REFERENT_BASE + 4, 0)
    assert NetrShareEnumRequest.decode(data) == NetrShareEnumRequest(None, level, 0xFFFFFFFF, 0)


def test_share_enum_response_at_a_real_arm_without_layout_is_refused() -> None:
    # SHARE_INFO_2_CONTAINER with one entry; we cannot read SHARE_INFO_2, so it must not decode as [].
    data = u32(2, 2, REFERENT_BASE, 1, REFERENT_BASE + 4, 1) + b"\0" * 40 + u32(1, 0, 0)
    with pytest.raises(NdrError):
        NetrShareEnumResponse.decode(data)


# -- consistency checks -------------------------------------------------------------------------------------

@SESSION_LEVEL
def test_union_discriminant_differing_from_level_is_refused_in_a_response(level: int) -> None:
    data = bytearray(NetrSessionEnumResponse(level, sessions(level, 2), 2).encode())
    data[4:8] = u32(level ^ 1)
    with pytest.raises(NdrError) as e:
        NetrSessionEnumResponse.decode(bytes(data))
    assert e.value.offset == 0


def test_union_discriminant_differing_from_level_is_refused_in_a_request() -> None:
    data = bytearray(NetrSessionEnumRequest(None, None, None, 10).encode())
    data[16:20] = u32(502)
    with pytest.raises(NdrError) as e:
        NetrSessionEnumRequest.decode(bytes(data))
    assert e.value.offset == 12


@pytest.mark.parametrize("level", [0, 1])
def test_union_discriminant_differing_from_level_is_refused_in_share_messages(level: int) -> None:
    data = bytearray(NetrShareEnumResponse(level, shares(level, 2), 2).encode())
    data[4:8] = u32(level ^ 1)
    with pytest.raises(NdrError):
        NetrShareEnumResponse.decode(bytes(data))


def test_get_info_discriminant_differing_from_the_requested_level_is_refused() -> None:
    share = NetrShareGetInfoResponse(1, SHARE_INFO_1("a", 0, "b")).encode()
    with pytest.raises(NdrError) as e:
        NetrShareGetInfoResponse.decode(share, 0)
    assert e.value.offset == 0
    server = NetrServerGetInfoResponse(100, SERVER_INFO_100(500, "S")).encode()
    with pytest.raises(NdrError):
        NetrServerGetInfoResponse.decode(server, 101)


@SESSION_LEVEL
@pytest.mark.parametrize("delta", [-1, 1, 1000])
def test_entries_read_differing_from_array_conformance_is_refused(level: int, delta: int) -> None:
    data = bytearray(NetrSessionEnumResponse(level, sessions(level, 3), 3).encode())
    data[12:16] = u32(3 + delta)  # EntriesRead; the Buffer's max_count at 20 still says 3
    with pytest.raises(NdrError) as e:
        NetrSessionEnumResponse.decode(bytes(data))
    assert e.value.offset == 20


def test_array_conformance_larger_than_the_stub_is_refused() -> None:
    data = bytearray(NetrSessionEnumResponse(10, sessions(10, 3), 3).encode())
    data[12:16] = data[20:24] = u32(1000)
    with pytest.raises(NdrError) as e:
        NetrSessionEnumResponse.decode(bytes(data))
    assert e.value.offset == 20


def test_null_buffer_gives_no_entries_whatever_entries_read_says() -> None:
    # [size_is(EntriesRead)] on a NULL unique pointer: no array on the wire (C706 §14.3.10).
    data = u32(10, 10, REFERENT_BASE, 5, 0, 0, 0, 0)
    assert NetrSessionEnumResponse.decode(data) == NetrSessionEnumResponse(10, [], 0, None, 0)


def test_request_with_entries_in_its_in_container_parses_and_drops_them() -> None:
    entries = sessions(10, 4)
    enum_struct = NetrSessionEnumResponse(10, entries, 4).encode()[:-12]  # without Total, Resume, status
    data = u32(0, 0, 0) + enum_struct + u32(512, REFERENT_BASE + 0x100, 9)
    assert NetrSessionEnumRequest.decode(data) == NetrSessionEnumRequest(None, None, None, 10, 512, 9)


def test_request_with_bad_entries_in_its_in_container_is_refused() -> None:
    enum_struct = bytearray(NetrSessionEnumResponse(10, sessions(10, 4), 4).encode()[:-12])
    enum_struct[12:16] = u32(5)  # EntriesRead, against a conformance of 4
    with pytest.raises(NdrError):
        NetrSessionEnumRequest.decode(u32(0, 0, 0) + bytes(enum_struct) + u32(512, 0))


def test_encoding_a_record_of_the_wrong_level_is_refused() -> None:
    wrong = SESSION_INFO_502("a", "b", 0, 0, 0, 0, "c", "d")
    with pytest.raises(ValueError, match="fields"):
        NetrSessionEnumResponse(10, [wrong], 1).encode()


# -- dispatch ------------------------------------------------------------------------------------------------

def test_requests_map_each_opnum_to_its_decoder() -> None:
    assert {int(k) for k in REQUESTS} == {0, 3, 8, 9, 10, 11, 12, 13, 15, 16, 20, 21, 23, 26, 28, 36}
    for opnum, cls in REQUESTS.items():
        assert cls.opnum == opnum
        assert cls.decode(cls().encode()) == cls()
    assert (int(Opnum.NetrSessionEnum), int(Opnum.NetrSessionDel)) == (12, 13)


def test_session_record_types_are_the_five_levels() -> None:
    assert [SESSION_LEVELS[lv] for lv in (0, 1, 2, 10, 502)] == [
        SESSION_INFO_0,
        SESSION_INFO_1,
        SESSION_INFO_2,
        SESSION_INFO_10,
        SESSION_INFO_502,
    ]


def test_decoders_refuse_a_stub_with_unread_bytes() -> None:
    # A decoder that stops short has misread the layout: NdrError, not wrong values.
    stub = NetrSessionEnumRequest(None, None, None, 10).encode()
    assert NetrSessionEnumRequest.decode(stub + b"\0" * 7).level == 10  # alignment padding is fine
    with pytest.raises(NdrError):
        NetrSessionEnumRequest.decode(stub + b"\0" * 8)
    with pytest.raises(NdrError):
        NetrSessionDelResponse.decode(NetrSessionDelResponse(0).encode() + b"\0" * 12)


SD = bytes(range(20))  # a security descriptor's bytes, as opaque here as in NDR


@pytest.mark.parametrize("sd", [None, b"", SD])
def test_share_info_502_round_trips_with_its_security_descriptor_bytes(sd: bytes | None) -> None:
    info = SHARE_INFO_502_I("data", 0, "files", 0, 10, 2, "C:\\data", None, 0 if sd is None else len(sd), sd)
    for message in (
        NetrShareGetInfoResponse(502, info, 0),
        NetrShareEnumResponse(502, [info, info._replace(shi502_netname="two")], 2, None, 0),
    ):
        data = message.encode()
        back = (
            NetrShareGetInfoResponse.decode(data, 502)
            if isinstance(message, NetrShareGetInfoResponse)
            else NetrShareEnumResponse.decode(data)
        )
        assert back == message


def test_share_info_502_security_descriptor_size_must_match_its_count() -> None:
    info = SHARE_INFO_502_I("data", 0, None, 0, 0, 0, None, None, 3, SD)
    with pytest.raises(ValueError):
        NetrShareGetInfoResponse(502, info, 0).encode()
    good = bytearray(NetrShareGetInfoResponse(502, info._replace(shi502_reserved=20), 0).encode())
    where = good.find(struct.pack("<I", 20) + SD)  # the deferred byte array's max_count
    good[where : where + 4] = struct.pack("<I", 19)
    with pytest.raises(NdrError):
        NetrShareGetInfoResponse.decode(bytes(good), 502)
