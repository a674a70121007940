"""srvsvc (MS-SRVS) messages: the stubs of NetrSessionEnum, NetrSessionDel, NetrFileEnum,
NetrFileGetInfo, NetrFileClose, NetrConnectionEnum, NetrShareEnum, NetrShareGetInfo and NetrServerGetInfo
(and the rest of the methods below), in both directions.

Each operation has a request and a response dataclass with ``encode() -> bytes`` and
``decode(stub) -> Self``: a server decodes requests and encodes responses, a client the reverse. The stub
bytes travel in DCE/RPC request/response PDUs (:mod:`netsession.wire.dcerpc`); NDR primitives come from
:mod:`netsession.wire.ndr`.

The record arrays (``SESSION_INFO_x``, ``SHARE_INFO_x``) are the hot path — a NetrSessionEnum response can
carry 100,000 of them — so they go through :class:`InfoArray`, which packs and unpacks each record's fixed
part with one precompiled ``struct`` call and writes the string referents behind them in NDR order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain, repeat
from struct import Struct
from typing import Any, ClassVar, Final, NamedTuple, Self

from netsession.records import (
    CONNECTION_INFO_0,
    CONNECTION_INFO_1,
    FILE_INFO_2,
    FILE_INFO_3,
    SESSION_INFO_0,
    SESSION_INFO_1,
    SESSION_INFO_2,
    SESSION_INFO_10,
    SESSION_INFO_502,
    ConnectionInfo,
    FileInfo,
    SessionInfo,
)
from netsession.wire.ndr import (
    REFERENT_STEP,
    NdrError,
    NdrReader,
    NdrWriter,
    decode_wstrings,
    encode_wstrings,
)

# MS-SRVS §1.9 / §2.1: interface UUID and version.
SRVSVC_UUID: Final = "4b324fc8-1670-01d3-1278-5a47bf6ee188"
SRVSVC_VERSION: Final = (3, 0)
SRVSVC_PIPE: Final = "srvsvc"


class Opnum(IntEnum):
    """The srvsvc operations this project speaks (MS-SRVS §3.1.4)."""

    NetrCharDevEnum = 0
    NetrCharDevQEnum = 3
    NetrConnectionEnum = 8
    NetrFileEnum = 9
    NetrFileGetInfo = 10
    NetrFileClose = 11
    NetrSessionEnum = 12
    NetrSessionDel = 13
    NetrShareEnum = 15
    NetrShareGetInfo = 16
    NetrShareCheck = 20
    NetrServerGetInfo = 21
    NetrServerDiskEnum = 23
    NetrServerTransportEnum = 26
    NetrRemoteTOD = 28
    NetrShareEnumSticky = 36


# MS-SRVS §2.2.2.4 share types.
STYPE_DISKTREE: Final = 0x00000000
STYPE_PRINTQ: Final = 0x00000001
STYPE_DEVICE: Final = 0x00000002
STYPE_IPC: Final = 0x00000003
STYPE_SPECIAL: Final = 0x80000000
STYPE_TEMPORARY: Final = 0x40000000
# MS-SRVS §2.2.4.24: shi2_max_uses with no limit.
SHI_USES_UNLIMITED: Final = 0xFFFFFFFF

# MS-SRVS §2.2.2.6 / MS-DTYP: platform id and server type bits.
PLATFORM_ID_NT: Final = 500
SV_TYPE_WORKSTATION: Final = 0x00000001
SV_TYPE_SERVER: Final = 0x00000002
SV_TYPE_SERVER_NT: Final = 0x00008000
SV_TYPE_NT: Final = 0x00001000


class SHARE_INFO_0(NamedTuple):
    """MS-SRVS §2.2.4.22."""

    shi0_netname: str | None


class SHARE_INFO_1(NamedTuple):
    """MS-SRVS §2.2.4.23."""

    shi1_netname: str | None
    shi1_type: int
    shi1_remark: str | None


class SERVER_INFO_100(NamedTuple):
    """MS-SRVS §2.2.4.40."""

    sv100_platform_id: int
    sv100_name: str | None


class SERVER_INFO_101(NamedTuple):
    """MS-SRVS §2.2.4.41."""

    sv101_platform_id: int
    sv101_name: str | None
    sv101_version_major: int
    sv101_version_minor: int
    sv101_type: int
    sv101_comment: str | None


class SHARE_INFO_2(NamedTuple):
    """MS-SRVS §2.2.4.24."""

    shi2_netname: str | None
    shi2_type: int
    shi2_remark: str | None
    shi2_permissions: int
    shi2_max_uses: int
    shi2_current_uses: int
    shi2_path: str | None
    shi2_passwd: str | None


class SHARE_INFO_502_I(NamedTuple):
    """MS-SRVS §2.2.4.26. ``shi502_security_descriptor`` is the self-relative security descriptor's bytes
    (MS-DTYP §2.4.6), ``shi502_reserved`` their count; None and 0 for none."""

    shi502_netname: str | None
    shi502_type: int
    shi502_remark: str | None
    shi502_permissions: int
    shi502_max_uses: int
    shi502_current_uses: int
    shi502_path: str | None
    shi502_passwd: str | None
    shi502_reserved: int
    shi502_security_descriptor: bytes | None


class SHARE_INFO_501(NamedTuple):
    """MS-SRVS §2.2.4.25."""

    shi501_netname: str | None
    shi501_type: int
    shi501_remark: str | None
    shi501_flags: int


class SHARE_INFO_503_I(NamedTuple):
    """MS-SRVS §2.2.4.27: SHARE_INFO_502_I with the share's ServerName (``*`` for the default name)."""

    shi503_netname: str | None
    shi503_type: int
    shi503_remark: str | None
    shi503_permissions: int
    shi503_max_uses: int
    shi503_current_uses: int
    shi503_path: str | None
    shi503_passwd: str | None
    shi503_servername: str | None
    shi503_reserved: int
    shi503_security_descriptor: bytes | None


class SHARE_INFO_1005(NamedTuple):
    """MS-SRVS §2.2.4.29."""

    shi1005_flags: int


class SERVER_INFO_102(NamedTuple):
    """MS-SRVS §2.2.4.42."""

    sv102_platform_id: int
    sv102_name: str | None
    sv102_version_major: int
    sv102_version_minor: int
    sv102_type: int
    sv102_comment: str | None
    sv102_users: int
    sv102_disc: int
    sv102_hidden: int
    sv102_announce: int
    sv102_anndelta: int
    sv102_licenses: int
    sv102_userpath: str | None


class SERVER_INFO_502(NamedTuple):
    """MS-SRVS §2.2.4.44."""

    sv502_sessopens: int
    sv502_sessvcs: int
    sv502_opensearch: int
    sv502_sizreqbuf: int
    sv502_initworkitems: int
    sv502_maxworkitems: int
    sv502_rawworkitems: int
    sv502_irpstacksize: int
    sv502_maxrawbuflen: int
    sv502_sessusers: int
    sv502_sessconns: int
    sv502_maxpagedmemoryusage: int
    sv502_maxnonpagedmemoryusage: int
    sv502_enablesoftcompat: int
    sv502_enableforcedlogoff: int
    sv502_timesource: int
    sv502_acceptdownlevelapis: int
    sv502_lmannounce: int


class SERVER_INFO_503(NamedTuple):
    """MS-SRVS §2.2.4.45."""

    sv503_sessopens: int
    sv503_sessvcs: int
    sv503_opensearch: int
    sv503_sizreqbuf: int
    sv503_initworkitems: int
    sv503_maxworkitems: int
    sv503_rawworkitems: int
    sv503_irpstacksize: int
    sv503_maxrawbuflen: int
    sv503_sessusers: int
    sv503_sessconns: int
    sv503_maxpagedmemoryusage: int
    sv503_maxnonpagedmemoryusage: int
    sv503_enablesoftcompat: int
    sv503_enableforcedlogoff: int
    sv503_timesource: int
    sv503_acceptdownlevelapis: int
    sv503_lmannounce: int
    sv503_domain: str | None
    sv503_maxcopyreadlen: int
    sv503_maxcopywritelen: int
    sv503_minkeepsearch: int
    sv503_maxkeepsearch: int
    sv503_minkeepcomplsearch: int
    sv503_maxkeepcomplsearch: int
    sv503_threadcountadd: int
    sv503_numblockthreads: int
    sv503_scavtimeout: int
    sv503_minrcvqueue: int
    sv503_minfreeworkitems: int
    sv503_xactmemsize: int
    sv503_threadpriority: int
    sv503_maxmpxct: int
    sv503_oplockbreakwait: int
    sv503_oplockbreakresponsewait: int
    sv503_enableoplocks: int
    sv503_enableoplockforceclose: int
    sv503_enablefcbopens: int
    sv503_enableraw: int
    sv503_enablesharednetdrives: int
    sv503_minfreeconnections: int
    sv503_maxfreeconnections: int


class SERVER_TRANSPORT_INFO_0(NamedTuple):
    """MS-SRVS §2.2.4.93."""

    svti0_numberofvcs: int
    svti0_transportname: str | None
    svti0_transportaddress: bytes | None
    svti0_transportaddresslength: int
    svti0_networkaddress: str | None


class SERVER_TRANSPORT_INFO_1(NamedTuple):
    """MS-SRVS §2.2.4.94."""

    svti1_numberofvcs: int
    svti1_transportname: str | None
    svti1_transportaddress: bytes | None
    svti1_transportaddresslength: int
    svti1_networkaddress: str | None
    svti1_domain: str | None


class SERVER_TRANSPORT_INFO_2(NamedTuple):
    """MS-SRVS §2.2.4.95."""

    svti2_numberofvcs: int
    svti2_transportname: str | None
    svti2_transportaddress: bytes | None
    svti2_transportaddresslength: int
    svti2_networkaddress: str | None
    svti2_domain: str | None
    svti2_flags: int


class TIME_OF_DAY_INFO(NamedTuple):
    """MS-SRVS §2.2.4.105. ``tod_timezone`` is signed: minutes west of GMT, -1 undefined."""

    tod_elapsedt: int
    tod_msecs: int
    tod_hours: int
    tod_mins: int
    tod_secs: int
    tod_hunds: int
    tod_timezone: int
    tod_tinterval: int
    tod_day: int
    tod_month: int
    tod_year: int
    tod_weekday: int


ShareInfo = (
    SHARE_INFO_0 | SHARE_INFO_1 | SHARE_INFO_2 | SHARE_INFO_501 | SHARE_INFO_502_I | SHARE_INFO_503_I
    | SHARE_INFO_1005
)
ServerInfo = SERVER_INFO_100 | SERVER_INFO_101 | SERVER_INFO_102 | SERVER_INFO_502 | SERVER_INFO_503
TransportInfo = SERVER_TRANSPORT_INFO_0 | SERVER_TRANSPORT_INFO_1 | SERVER_TRANSPORT_INFO_2


class InfoArray:
    """Codec for a ``[size_is(n)] T*`` array of flat records whose fields are ``[string] wchar_t*``
    pointers, DWORDs, and byte arrays ``[size_is(a DWORD field)] unsigned char*`` — the field before
    (SHARE_INFO_502_I/503_I) or after (SERVER_TRANSPORT_INFO_x) — every SESSION_INFO_x, FILE_INFO_x,
    CONNECTION_INFO_x and the SHARE/SERVER/TRANSPORT_INFO levels here.

    NDR lays such an array out as: max_count, then every record's fixed part (a referent id or 0 for each
    pointer, the DWORD for each number), then, record by record and field by field, the pointers'
    referents (C706 §14.3.12.3 — embedded pointers are deferred to the end of the array). Records of
    strings and DWORDs only (all the session levels) take a column-wise fast path; the others go record by
    record (:meth:`write_referents`, :meth:`read_record`)."""

    __slots__ = (
        "byte_fields",
        "fixed",
        "is_string",
        "pointer_fields",
        "record",
        "record_size",
        "size_of",
        "string_fields",
    )

    def __init__(self, record: type[Any], kinds: tuple[str, ...]) -> None:
        self.record = record
        self.is_string = tuple(k == "s" for k in kinds)
        self.string_fields = tuple(i for i, k in enumerate(kinds) if k == "s")
        self.byte_fields = tuple(i for i, k in enumerate(kinds) if k in "bB")
        # A byte array's size_is field: the one before ("b") or after ("B").
        self.size_of = {i: i - 1 if k == "b" else i + 1 for i, k in enumerate(kinds) if k in "bB"}
        self.pointer_fields = tuple(i for i, k in enumerate(kinds) if k in "sbB")
        self.fixed = Struct(f"<{len(kinds)}I")
        self.record_size = self.fixed.size

    def encode_fixed(self, w: NdrWriter, record: tuple[Any, ...]) -> list[str | bytes]:
        """Write one record's fixed part; returns the referents (strings, byte arrays) that must follow,
        in order, for :meth:`write_referents`."""
        deferred: list[str | bytes] = []
        values = list(record)
        for i in self.pointer_fields:
            value = values[i]
            if value is None:
                values[i] = 0
            else:
                if i in self.size_of and len(value) != values[self.size_of[i]]:
                    size = self.size_of[i]
                    raise ValueError(f"field {size} must give the size of field {i}: {values[size]}")
                values[i] = w.next_referent()
                deferred.append(value)
        w.align(4)
        w.buf += self.fixed.pack(*values)
        return deferred

    @staticmethod
    def write_referents(w: NdrWriter, deferred: list[str | bytes]) -> None:
        for value in deferred:
            if isinstance(value, str):
                w.wstring(value)
            else:  # a conformant array of bytes: max_count, then the octets
                w.u32(len(value))
                w.raw(value)

    def read_record(self, r: NdrReader, values: list[Any]) -> Any:
        """Read the referents of one record whose fixed part gave ``values``; the record."""
        for i in self.pointer_fields:
            if not values[i]:
                values[i] = None
            elif i in self.size_of:
                at = r.pos
                size = r.conformance(1)
                if size != values[self.size_of[i]]:
                    raise NdrError(
                        f"byte array of {size} where its size field says {values[self.size_of[i]]}", at
                    )
                values[i] = r.take(size)
            else:
                values[i] = r.wstring()
        return self.record._make(values)

    def encode(self, w: NdrWriter, records: list[Any]) -> None:
        """The referent of the array pointer: conformance, fixed parts, then the strings.

        Column-wise, with extended slices: referent ids are ranges, the fixed parts go out in one
        ``struct`` call, the strings in one :func:`encode_wstrings`."""
        count = len(records)
        w.u32(count)
        if not count:
            return
        if self.byte_fields:
            deferred = [self.encode_fixed(w, record) for record in records]
            for values in deferred:
                self.write_referents(w, values)
            return
        nfields = len(self.is_string)
        string_fields = self.string_fields
        per_record = len(string_fields)
        flat: list[Any] = list(chain.from_iterable(records))
        if len(flat) != count * nfields:
            raise ValueError(f"records must have {nfields} fields each")
        strings: list[Any] = [None] * (count * per_record)  # NDR order: record by record
        first = w.referents(count * per_record)
        stride = REFERENT_STEP * per_record
        for j, i in enumerate(string_fields):
            column = flat[i::nfields]
            strings[j::per_record] = column
            ids = range(first + REFERENT_STEP * j, first + stride * count, stride)
            if None in column:
                flat[i::nfields] = [0 if s is None else ref for s, ref in zip(column, ids)]
            else:
                flat[i::nfields] = ids
        if None in strings:
            strings = [s for s in strings if s is not None]
        w.buf += Struct(f"<{len(flat)}I").pack(*flat)
        w.buf += encode_wstrings(strings)

    def decode(self, r: NdrReader, count: int) -> list[Any]:
        """Read the referent of the array pointer, whose container said ``count`` entries.

        Three passes keep the per-string work to a few C calls: unpack every fixed part at once, walk
        the string referents in NDR order, then put the strings in place and cut records."""
        at = r.pos
        max_count = r.conformance(self.record_size)
        if max_count != count:
            raise NdrError(f"array conformance {max_count} does not match EntriesRead {count}", at)
        if self.byte_fields:
            rows = [list(row) for row in self.fixed.iter_unpack(r.take(count * self.record_size))]
            return [self.read_record(r, row) for row in rows]
        data = r.data
        nfields = len(self.is_string)
        string_fields = self.string_fields
        per_record = len(string_fields)
        flat = list(Struct(f"<{nfields * count}I").unpack_from(data, r.pos))
        referents: list[int] = [0] * (count * per_record)  # NDR order: record by record
        for j, i in enumerate(string_fields):
            referents[j::per_record] = flat[i::nfields]
        strings, r.pos = decode_wstrings(data, r.pos + count * self.record_size, referents)
        for j, i in enumerate(string_fields):
            flat[i::nfields] = strings[j::per_record]
        return list(map(tuple.__new__, repeat(self.record), zip(*[iter(flat)] * nfields)))


def _layout(record: type[Any], *kinds: str) -> InfoArray:
    """An :class:`InfoArray` from field kinds: ``"s"`` for a string pointer, ``"d"`` for a DWORD, ``"b"``
    (``"B"``) for a pointer to bytes whose count is the field before (after)."""
    assert len(kinds) == len(record._fields) and set(kinds) <= set("sdbB")
    return InfoArray(record, kinds)


# Wire layouts, per MS-SRVS §2.2.4.
SESSION_ARRAYS: Final[dict[int, InfoArray]] = {
    0: _layout(SESSION_INFO_0, "s"),
    1: _layout(SESSION_INFO_1, "s", "s", "d", "d", "d", "d"),
    2: _layout(SESSION_INFO_2, "s", "s", "d", "d", "d", "d", "s"),
    10: _layout(SESSION_INFO_10, "s", "s", "d", "d"),
    502: _layout(SESSION_INFO_502, "s", "s", "d", "d", "d", "d", "s", "s"),
}
FILE_ARRAYS: Final[dict[int, InfoArray]] = {
    2: _layout(FILE_INFO_2, "d"),
    3: _layout(FILE_INFO_3, "d", "d", "d", "s", "s"),
}
CONNECTION_ARRAYS: Final[dict[int, InfoArray]] = {
    0: _layout(CONNECTION_INFO_0, "d"),
    1: _layout(CONNECTION_INFO_1, "d", "d", "d", "d", "d", "s", "s"),
}
SHARE_ARRAYS: Final[dict[int, InfoArray]] = {
    0: _layout(SHARE_INFO_0, "s"),
    1: _layout(SHARE_INFO_1, "s", "d", "s"),
    2: _layout(SHARE_INFO_2, "s", "d", "s", "d", "d", "d", "s", "s"),
    501: _layout(SHARE_INFO_501, "s", "d", "s", "d"),
    502: _layout(SHARE_INFO_502_I, "s", "d", "s", "d", "d", "d", "s", "s", "d", "b"),
    503: _layout(SHARE_INFO_503_I, "s", "d", "s", "d", "d", "d", "s", "s", "s", "d", "b"),
    1005: _layout(SHARE_INFO_1005, "d"),
}
SERVER_INFOS: Final[dict[int, InfoArray]] = {
    100: _layout(SERVER_INFO_100, "d", "s"),
    101: _layout(SERVER_INFO_101, "d", "s", "d", "d", "d", "s"),
    102: _layout(SERVER_INFO_102, "d", "s", "d", "d", "d", "s", "d", "d", "d", "d", "d", "d", "s"),
    502: _layout(SERVER_INFO_502, *"d" * 18),  # eighteen DWORDs (ints and BOOLs)
    503: _layout(SERVER_INFO_503, *"d" * 18, "s", *"d" * 23),  # sv503_domain after the eighteen
}
TRANSPORT_ARRAYS: Final[dict[int, InfoArray]] = {
    0: _layout(SERVER_TRANSPORT_INFO_0, "d", "s", "B", "d", "s"),
    1: _layout(SERVER_TRANSPORT_INFO_1, "d", "s", "B", "d", "s", "s"),
    2: _layout(SERVER_TRANSPORT_INFO_2, "d", "s", "B", "d", "s", "s", "d"),
}


# -- the ENUM_STRUCT shape shared by sessions and shares -------------------------------------------------
# XXX_ENUM_STRUCT = {DWORD Level; [switch_is(Level)] union {XXX_INFO_n_CONTAINER* Leveln}}, and
# XXX_INFO_n_CONTAINER = {DWORD EntriesRead; [size_is(EntriesRead)] XXX_INFO_n* Buffer}
# (MS-SRVS §2.2.4.21, §2.2.4.38). The union discriminant is marshalled (non-encapsulated union, C706
# §14.3.8). Each union has its own arms (the IDL's cases): an arm this module has no record layout for
# still has its container, which must then carry no entries; a level outside the union has no arm (the
# empty [default] of Samba's IDL), so nothing follows its discriminant — how a server answers
# ERROR_INVALID_LEVEL to such a level.

# MS-SRVS §2.2.3.1-§2.2.3.7: the cases of each union.
SESSION_ENUM_ARMS: Final = frozenset((0, 1, 2, 10, 502))
# §2.2.3.1 CONNECT_ENUM_UNION, §2.2.3.2 FILE_ENUM_UNION, §2.2.3.3 FILE_INFO.
CONNECT_ENUM_ARMS: Final = frozenset((0, 1))
FILE_ENUM_ARMS: Final = frozenset((2, 3))
FILE_INFO_ARMS: Final = frozenset((2, 3))
# §2.2.3.8 SERVER_XPORT_ENUM_UNION; the character-device unions of opnums 0 and 3 (Windows' and Samba's
# IDL: levels 0 and 1; MS-SRVS keeps only their opnums).
TRANSPORT_ENUM_ARMS: Final = frozenset((0, 1, 2, 3))
CHARDEV_ENUM_ARMS: Final = frozenset((0, 1))
CHARDEVQ_ENUM_ARMS: Final = frozenset((0, 1))
SHARE_ENUM_ARMS: Final = frozenset((0, 1, 2, 501, 502, 503))
SHARE_INFO_ARMS: Final = frozenset((0, 1, 2, 502, 1004, 1006, 1501, 1005, 501, 503))
# fmt: off
SERVER_INFO_ARMS: Final = frozenset((
    100, 101, 102, 103, 502, 503, 599, 1005, 1107, 1010, 1016, 1017, 1018, 1501, 1502, 1503, 1506, 1510,
    1511, 1512, 1513, 1514, 1515, 1516, 1518, 1523, 1528, 1529, 1530, 1533, 1534, 1535, 1536, 1538, 1539,
    1540, 1541, 1542, 1543, 1544, 1545, 1546, 1547, 1548, 1549, 1550, 1552, 1553, 1554, 1555, 1556,
))
# fmt: on


def _encode_enum_struct(
    w: NdrWriter, arms: frozenset[int], arrays: dict[int, InfoArray], level: int, entries: list[Any]
) -> None:
    w.u32(level)
    w.u32(level)  # union discriminant
    if level not in arms:
        if entries:
            raise ValueError(f"level {level} is not an arm of this union: it carries no entries")
        return
    array = arrays.get(level)
    if array is None and entries:
        raise ValueError(f"no record layout for level {level}")
    w.pointer(True)  # -> container
    # deferred referent: the container
    w.u32(len(entries))
    w.pointer(bool(entries))  # -> Buffer
    if entries and array is not None:
        array.encode(w, entries)


def _decode_enum_struct(
    r: NdrReader, arms: frozenset[int], arrays: dict[int, InfoArray]
) -> tuple[int, list[Any]]:
    at = r.pos
    level = r.u32()
    tag = r.u32()
    if tag != level:
        raise NdrError(f"union discriminant {tag} differs from Level {level}", at)
    if level not in arms or not r.pointer():
        return level, []
    count = r.u32()
    at = r.pos
    if not r.pointer():
        return level, []
    array = arrays.get(level)
    if array is None:
        raise NdrError(f"entries at level {level}, whose records this implementation does not read", at)
    return level, array.decode(r, count)


def _encode_resume(w: NdrWriter, resume_handle: int | None) -> None:
    w.pointer(resume_handle is not None)
    if resume_handle is not None:
        w.u32(resume_handle)


def _decode_resume(r: NdrReader) -> int | None:
    return r.u32() if r.pointer() else None


def _encode_info_union(
    w: NdrWriter, arms: frozenset[int], infos: dict[int, InfoArray], level: int, info: Any | None
) -> None:
    """A ``[switch_is(Level)]`` union whose arms are unique pointers to one record (SHARE_INFO,
    SERVER_INFO: MS-SRVS §2.2.3.6, §2.2.3.7)."""
    w.u32(level)
    if level not in arms:
        return
    layout = infos.get(level)
    if layout is None and info is not None:
        raise ValueError(f"no record layout for level {level}")
    w.pointer(info is not None)
    if info is not None and layout is not None:
        layout.write_referents(w, layout.encode_fixed(w, info))


def _decode_info_union(
    r: NdrReader, arms: frozenset[int], infos: dict[int, InfoArray], level: int
) -> Any | None:
    at = r.pos
    tag = r.u32()
    if tag != level:
        raise NdrError(f"union discriminant {tag} differs from Level {level}", at)
    if level not in arms:
        return None
    at = r.pos
    if not r.pointer():
        return None
    layout = infos.get(level)
    if layout is None:
        raise NdrError(f"a level-{level} record, which this implementation does not read", at)
    r.align(4)
    if r.remaining < layout.record_size:
        raise NdrError("record truncated", r.pos)
    values = list(layout.fixed.unpack_from(r.data, r.pos))
    r.pos += layout.record_size
    return layout.read_record(r, values)


# -- messages --------------------------------------------------------------------------------------------


@dataclass
class NetrSessionEnumRequest:
    """MS-SRVS §3.1.4.5, [in] parameters. The [in] InfoStruct carries only the level (an empty
    container); entries a client sends in it anyway are parsed and dropped."""

    opnum: ClassVar[int] = Opnum.NetrSessionEnum
    server_name: str | None = None
    client_name: str | None = None
    user_name: str | None = None
    level: int = 10
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.unique_wstring(self.client_name)
        w.unique_wstring(self.user_name)
        _encode_enum_struct(w, SESSION_ENUM_ARMS, SESSION_ARRAYS, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server, client, user = r.unique_wstring(), r.unique_wstring(), r.unique_wstring()
        level, _ = _decode_enum_struct(r, SESSION_ENUM_ARMS, SESSION_ARRAYS)
        message = cls(server, client, user, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class EnumResponse:
    """The [out] parameters of the Net*Enum methods: InfoStruct (an XXX_ENUM_STRUCT), TotalEntries,
    ResumeHandle, then the NET_API_STATUS. Each operation names its union's arms and record layouts."""

    opnum: ClassVar[int]
    arms: ClassVar[frozenset[int]]
    arrays: ClassVar[dict[int, InfoArray]]
    level: int
    entries: list[Any] = field(default_factory=list)
    total_entries: int = 0
    resume_handle: int | None = None
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        _encode_enum_struct(w, self.arms, self.arrays, self.level, self.entries)
        w.u32(self.total_entries)
        _encode_resume(w, self.resume_handle)
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        level, entries = _decode_enum_struct(r, cls.arms, cls.arrays)
        total = r.u32()
        resume = _decode_resume(r)
        message = cls(level, entries, total, resume, r.u32())
        r.done()
        return message


@dataclass
class NetrSessionEnumResponse(EnumResponse):
    """MS-SRVS §3.1.4.5, [out] parameters and the NET_API_STATUS."""

    opnum: ClassVar[int] = Opnum.NetrSessionEnum
    arms: ClassVar[frozenset[int]] = SESSION_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = SESSION_ARRAYS
    entries: list[SessionInfo] = field(default_factory=list)


@dataclass
class NetrSessionDelRequest:
    """MS-SRVS §3.1.4.6."""

    opnum: ClassVar[int] = Opnum.NetrSessionDel
    server_name: str | None = None
    client_name: str | None = None
    user_name: str | None = None

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.unique_wstring(self.client_name)
        w.unique_wstring(self.user_name)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.unique_wstring(), r.unique_wstring())
        r.done()
        return message


@dataclass
class NetrSessionDelResponse:
    """MS-SRVS §3.1.4.6: only the status."""

    opnum: ClassVar[int] = Opnum.NetrSessionDel
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.u32())
        r.done()
        return message


@dataclass
class NetrFileEnumRequest:
    """MS-SRVS §3.1.4.2: BasePath and UserName qualify; the [in] InfoStruct carries only the level."""

    opnum: ClassVar[int] = Opnum.NetrFileEnum
    server_name: str | None = None
    base_path: str | None = None
    user_name: str | None = None
    level: int = 3
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.unique_wstring(self.base_path)
        w.unique_wstring(self.user_name)
        _encode_enum_struct(w, FILE_ENUM_ARMS, FILE_ARRAYS, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server, base, user = r.unique_wstring(), r.unique_wstring(), r.unique_wstring()
        level, _ = _decode_enum_struct(r, FILE_ENUM_ARMS, FILE_ARRAYS)
        message = cls(server, base, user, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrFileEnumResponse(EnumResponse):
    """MS-SRVS §3.1.4.2, [out] parameters and the status."""

    opnum: ClassVar[int] = Opnum.NetrFileEnum
    arms: ClassVar[frozenset[int]] = FILE_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = FILE_ARRAYS
    entries: list[FileInfo] = field(default_factory=list)


@dataclass
class NetrFileGetInfoRequest:
    """MS-SRVS §3.1.4.3."""

    opnum: ClassVar[int] = Opnum.NetrFileGetInfo
    server_name: str | None = None
    file_id: int = 0
    level: int = 3

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.u32(self.file_id)
        w.u32(self.level)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.u32(), r.u32())
        r.done()
        return message


@dataclass
class NetrFileCloseRequest:
    """MS-SRVS §3.1.4.4."""

    opnum: ClassVar[int] = Opnum.NetrFileClose
    server_name: str | None = None
    file_id: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.u32(self.file_id)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.u32())
        r.done()
        return message


@dataclass
class StatusResponse:
    """A response that is only the NET_API_STATUS."""

    opnum: ClassVar[int]
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.u32())
        r.done()
        return message


@dataclass
class NetrFileCloseResponse(StatusResponse):
    """MS-SRVS §3.1.4.4: only the status."""

    opnum: ClassVar[int] = Opnum.NetrFileClose


@dataclass
class NetrConnectionEnumRequest:
    """MS-SRVS §3.1.4.1: Qualifier is a share name or a ``\\\\computer``."""

    opnum: ClassVar[int] = Opnum.NetrConnectionEnum
    server_name: str | None = None
    qualifier: str | None = None
    level: int = 1
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.unique_wstring(self.qualifier)
        _encode_enum_struct(w, CONNECT_ENUM_ARMS, CONNECTION_ARRAYS, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server, qualifier = r.unique_wstring(), r.unique_wstring()
        level, _ = _decode_enum_struct(r, CONNECT_ENUM_ARMS, CONNECTION_ARRAYS)
        message = cls(server, qualifier, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrConnectionEnumResponse(EnumResponse):
    """MS-SRVS §3.1.4.1, [out] parameters and the status."""

    opnum: ClassVar[int] = Opnum.NetrConnectionEnum
    arms: ClassVar[frozenset[int]] = CONNECT_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = CONNECTION_ARRAYS
    entries: list[ConnectionInfo] = field(default_factory=list)


@dataclass
class NetrShareEnumRequest:
    """MS-SRVS §3.1.4.8 (Samba: NetShareEnumAll) — what `smbclient -L` and `net view` send."""

    opnum: ClassVar[int] = Opnum.NetrShareEnum
    server_name: str | None = None
    level: int = 1
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        _encode_enum_struct(w, SHARE_ENUM_ARMS, SHARE_ARRAYS, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server = r.unique_wstring()
        level, _ = _decode_enum_struct(r, SHARE_ENUM_ARMS, SHARE_ARRAYS)
        message = cls(server, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrShareEnumResponse(EnumResponse):
    """MS-SRVS §3.1.4.8, [out] parameters and the status."""

    opnum: ClassVar[int] = Opnum.NetrShareEnum
    arms: ClassVar[frozenset[int]] = SHARE_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = SHARE_ARRAYS
    entries: list[ShareInfo] = field(default_factory=list)


@dataclass
class NetrShareEnumStickyRequest(NetrShareEnumRequest):
    """MS-SRVS §3.1.4.9 (Samba: NetShareEnum): NetrShareEnum's parameters, for the sticky shares."""

    opnum: ClassVar[int] = Opnum.NetrShareEnumSticky


@dataclass
class NetrShareEnumStickyResponse(NetrShareEnumResponse):
    """MS-SRVS §3.1.4.9."""

    opnum: ClassVar[int] = Opnum.NetrShareEnumSticky


@dataclass
class NetrShareGetInfoRequest:
    """MS-SRVS §3.1.4.10. NetName is a top-level ``[in, string]`` (ref) pointer: no referent id."""

    opnum: ClassVar[int] = Opnum.NetrShareGetInfo
    server_name: str | None = None
    net_name: str = ""
    level: int = 1

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.wstring(self.net_name)
        w.u32(self.level)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.wstring(), r.u32())
        r.done()
        return message


@dataclass
class InfoResponse:
    """The [out] parameters of the Net*GetInfo methods: a ``[switch_is(Level)]`` union of one record,
    then the NET_API_STATUS. Decoding needs the request's level (the union's switch_is)."""

    opnum: ClassVar[int]
    arms: ClassVar[frozenset[int]]
    layouts: ClassVar[dict[int, InfoArray]]
    level: int
    info: Any | None = None
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        _encode_info_union(w, self.arms, self.layouts, self.level, self.info)
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes, level: int) -> Self:
        r = NdrReader(stub)
        info = _decode_info_union(r, cls.arms, cls.layouts, level)
        message = cls(level, info, r.u32())
        r.done()
        return message


@dataclass
class NetrShareGetInfoResponse(InfoResponse):
    """MS-SRVS §3.1.4.10: ``[out, switch_is(Level)] LPSHARE_INFO`` and the status."""

    opnum: ClassVar[int] = Opnum.NetrShareGetInfo
    arms: ClassVar[frozenset[int]] = SHARE_INFO_ARMS
    layouts: ClassVar[dict[int, InfoArray]] = SHARE_ARRAYS
    info: ShareInfo | None = None


@dataclass
class NetrFileGetInfoResponse(InfoResponse):
    """MS-SRVS §3.1.4.3: ``[out, switch_is(Level)] LPFILE_INFO`` and the status."""

    opnum: ClassVar[int] = Opnum.NetrFileGetInfo
    arms: ClassVar[frozenset[int]] = FILE_INFO_ARMS
    layouts: ClassVar[dict[int, InfoArray]] = FILE_ARRAYS
    info: FileInfo | None = None


@dataclass
class NetrServerGetInfoRequest:
    """MS-SRVS §3.1.4.17."""

    opnum: ClassVar[int] = Opnum.NetrServerGetInfo
    server_name: str | None = None
    level: int = 101

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.u32(self.level)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.u32())
        r.done()
        return message


@dataclass
class NetrServerGetInfoResponse(InfoResponse):
    """MS-SRVS §3.1.4.17: ``[out, switch_is(Level)] LPSERVER_INFO`` and the status."""

    opnum: ClassVar[int] = Opnum.NetrServerGetInfo
    arms: ClassVar[frozenset[int]] = SERVER_INFO_ARMS
    layouts: ClassVar[dict[int, InfoArray]] = SERVER_INFOS
    info: ServerInfo | None = None


@dataclass
class NetrShareCheckRequest:
    """MS-SRVS §3.1.4.16. Device is a top-level ``[in, string]`` (ref) pointer: no referent id."""

    opnum: ClassVar[int] = Opnum.NetrShareCheck
    server_name: str | None = None
    device: str = ""

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.wstring(self.device)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring(), r.wstring())
        r.done()
        return message


@dataclass
class NetrShareCheckResponse:
    """MS-SRVS §3.1.4.16: ``[out] DWORD* Type`` and the status."""

    opnum: ClassVar[int] = Opnum.NetrShareCheck
    type: int = 0
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.u32(self.type)
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.u32(), r.u32())
        r.done()
        return message


# MS-SRVS §2.2.4.91: DISK_INFO is ``[string] WCHAR Disk[3]``, a varying array inline in the struct (offset,
# actual count, the characters); DISK_ENUM_CONTAINER's Buffer is ``[size_is, length_is]`` (conformant and
# varying: max count, offset, actual count, then the elements).
DISK_CHARS: Final = 3


def _encode_disks(w: NdrWriter, disks: list[str]) -> None:
    w.u32(len(disks))  # EntriesRead
    w.pointer(bool(disks))
    if not disks:
        return
    w.u32(len(disks))
    w.u32(0)
    w.u32(len(disks))
    for disk in disks:
        units = disk.encode("utf-16-le") + b"\0\0"
        if len(units) > 2 * DISK_CHARS:
            raise ValueError(f"a DISK_INFO holds {DISK_CHARS} characters with the NUL: {disk!r}")
        w.u32(0)
        w.u32(len(units) // 2)
        w.raw(units)


def _decode_disks(r: NdrReader) -> list[str]:
    count = r.u32()
    at = r.pos
    if not r.pointer():
        return []
    max_count = r.conformance(8)  # each element: at least its offset and actual count
    offset, actual = r.u32(), r.u32()
    if max_count != count or offset != 0 or actual != max_count:
        raise NdrError(f"disk array counts {max_count}/{offset}/{actual} for EntriesRead {count}", at)
    disks: list[str] = []
    for _ in range(count):
        at = r.pos
        offset, actual = r.u32(), r.u32()
        if offset != 0 or actual > DISK_CHARS:
            raise NdrError(f"DISK_INFO of offset {offset} and {actual} characters", at)
        text = r.take(2 * actual).decode("utf-16-le", "surrogatepass")
        disks.append(text[:-1] if text.endswith("\0") else text)
    return disks


@dataclass
class NetrServerDiskEnumRequest:
    """MS-SRVS §3.1.4.19: the [in] DiskInfoStruct is ignored by the server (parsed, dropped)."""

    opnum: ClassVar[int] = Opnum.NetrServerDiskEnum
    server_name: str | None = None
    level: int = 0
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.u32(self.level)
        _encode_disks(w, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server, level = r.unique_wstring(), r.u32()
        _decode_disks(r)
        message = cls(server, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrServerDiskEnumResponse:
    """MS-SRVS §3.1.4.19: ``disks`` are the DISK_INFO entries as sent (EntriesRead of them, the last an
    empty terminator: EntriesRead is TotalEntries + 1), then TotalEntries, ResumeHandle, the status."""

    opnum: ClassVar[int] = Opnum.NetrServerDiskEnum
    disks: list[str] = field(default_factory=list)
    total_entries: int = 0
    resume_handle: int | None = None
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        _encode_disks(w, self.disks)
        w.u32(self.total_entries)
        _encode_resume(w, self.resume_handle)
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        disks = _decode_disks(r)
        message = cls(disks, r.u32(), _decode_resume(r), r.u32())
        r.done()
        return message


@dataclass
class NetrServerTransportEnumRequest:
    """MS-SRVS §3.1.4.24."""

    opnum: ClassVar[int] = Opnum.NetrServerTransportEnum
    server_name: str | None = None
    level: int = 0
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        _encode_enum_struct(w, TRANSPORT_ENUM_ARMS, TRANSPORT_ARRAYS, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server = r.unique_wstring()
        level, _ = _decode_enum_struct(r, TRANSPORT_ENUM_ARMS, TRANSPORT_ARRAYS)
        message = cls(server, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrServerTransportEnumResponse(EnumResponse):
    """MS-SRVS §3.1.4.24, [out] parameters and the status."""

    opnum: ClassVar[int] = Opnum.NetrServerTransportEnum
    arms: ClassVar[frozenset[int]] = TRANSPORT_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = TRANSPORT_ARRAYS
    entries: list[TransportInfo] = field(default_factory=list)


_TOD: Final = Struct("<6Ii5I")  # TIME_OF_DAY_INFO: tod_timezone is a signed long


@dataclass
class NetrRemoteTODRequest:
    """MS-SRVS §3.1.4.21."""

    opnum: ClassVar[int] = Opnum.NetrRemoteTOD
    server_name: str | None = None

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        message = cls(r.unique_wstring())
        r.done()
        return message


@dataclass
class NetrRemoteTODResponse:
    """MS-SRVS §3.1.4.21: ``[out] LPTIME_OF_DAY_INFO* BufferPtr`` (a unique pointer to the record), then
    the status."""

    opnum: ClassVar[int] = Opnum.NetrRemoteTOD
    info: TIME_OF_DAY_INFO | None = None
    status: int = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.pointer(self.info is not None)
        if self.info is not None:
            w.raw(_TOD.pack(*self.info))
        w.u32(self.status)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        info = None
        if r.pointer():
            info = TIME_OF_DAY_INFO._make(_TOD.unpack(r.take(_TOD.size)))
        message = cls(info, r.u32())
        r.done()
        return message


@dataclass
class NetrCharDevEnumRequest:
    """Opnum 0 (MS-SRVS §3.1.4: not used on the wire; Windows' and Samba's IDL: NetrCharDevEnum, a
    CHARDEV_ENUM_STRUCT of levels 0 and 1). A server without character devices answers it."""

    opnum: ClassVar[int] = Opnum.NetrCharDevEnum
    server_name: str | None = None
    level: int = 0
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        _encode_enum_struct(w, CHARDEV_ENUM_ARMS, {}, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server = r.unique_wstring()
        level, _ = _decode_enum_struct(r, CHARDEV_ENUM_ARMS, {})
        message = cls(server, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrCharDevEnumResponse(EnumResponse):
    """Opnum 0's [out] parameters: the container (never any entries here), TotalEntries, ResumeHandle."""

    opnum: ClassVar[int] = Opnum.NetrCharDevEnum
    arms: ClassVar[frozenset[int]] = CHARDEV_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = {}


@dataclass
class NetrCharDevQEnumRequest:
    """Opnum 3 (NetrCharDevQEnum in Windows' and Samba's IDL): a user name, then NetrCharDevEnum's
    parameters."""

    opnum: ClassVar[int] = Opnum.NetrCharDevQEnum
    server_name: str | None = None
    user_name: str | None = None
    level: int = 0
    preferred_max_length: int = 0xFFFFFFFF
    resume_handle: int | None = 0

    def encode(self) -> bytes:
        w = NdrWriter()
        w.unique_wstring(self.server_name)
        w.unique_wstring(self.user_name)
        _encode_enum_struct(w, CHARDEVQ_ENUM_ARMS, {}, self.level, [])
        w.u32(self.preferred_max_length)
        _encode_resume(w, self.resume_handle)
        return w.getvalue()

    @classmethod
    def decode(cls, stub: bytes) -> Self:
        r = NdrReader(stub)
        server, user = r.unique_wstring(), r.unique_wstring()
        level, _ = _decode_enum_struct(r, CHARDEVQ_ENUM_ARMS, {})
        message = cls(server, user, level, r.u32(), _decode_resume(r))
        r.done()
        return message


@dataclass
class NetrCharDevQEnumResponse(EnumResponse):
    """Opnum 3's [out] parameters."""

    opnum: ClassVar[int] = Opnum.NetrCharDevQEnum
    arms: ClassVar[frozenset[int]] = CHARDEVQ_ENUM_ARMS
    arrays: ClassVar[dict[int, InfoArray]] = {}


# Request decoders by opnum, for a server dispatching on the opnum of a DCE/RPC request.
REQUESTS: Final[dict[int, Any]] = {
    Opnum.NetrCharDevEnum: NetrCharDevEnumRequest,
    Opnum.NetrCharDevQEnum: NetrCharDevQEnumRequest,
    Opnum.NetrConnectionEnum: NetrConnectionEnumRequest,
    Opnum.NetrFileEnum: NetrFileEnumRequest,
    Opnum.NetrFileGetInfo: NetrFileGetInfoRequest,
    Opnum.NetrFileClose: NetrFileCloseRequest,
    Opnum.NetrSessionEnum: NetrSessionEnumRequest,
    Opnum.NetrSessionDel: NetrSessionDelRequest,
    Opnum.NetrShareEnum: NetrShareEnumRequest,
    Opnum.NetrShareGetInfo: NetrShareGetInfoRequest,
    Opnum.NetrShareCheck: NetrShareCheckRequest,
    Opnum.NetrServerGetInfo: NetrServerGetInfoRequest,
    Opnum.NetrServerDiskEnum: NetrServerDiskEnumRequest,
    Opnum.NetrServerTransportEnum: NetrServerTransportEnumRequest,
    Opnum.NetrRemoteTOD: NetrRemoteTODRequest,
    Opnum.NetrShareEnumSticky: NetrShareEnumStickyRequest,
}
