"""The srvsvc service: a decoded DCE/RPC request in, a response stub or a fault out.

One :class:`SrvsvcService` per server; every pipe association hands it the calls it receives, with the
identity of the SMB session the pipe was opened on (:class:`CallContext`), so the session table's access
rules see the real caller. Each call is one :class:`~netsession.server.audit.SrvsvcCallEvent` on the
server's audit trail (whatever the log level): who looked at or ended sessions, from where, at which
level, with what result — unknown opnums included (:meth:`SrvsvcService.rejected`).

No I/O and no clock of its own (the table has the clock; the audit trail stamps the time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_MORE_DATA,
    ERROR_NOT_SUPPORTED,
    NERR_DeviceNotShared,
    NERR_NetNameNotFound,
    NERR_Success,
    status_name,
)
from netsession.server.audit import AuditTrail, LogSink, SrvsvcCallEvent
from netsession.table import (
    Caller,
    DeleteResult,
    EnumResult,
    ListResult,
    SessionCloseError,
    SessionTable,
    paginate,
)
from netsession.table import Session as TableRow
from netsession.wire.ndr import NdrError
from netsession.wire.srvsvc import (
    PLATFORM_ID_NT,
    SERVER_INFO_100,
    SERVER_INFO_101,
    SERVER_INFO_102,
    SERVER_INFO_502,
    SERVER_INFO_503,
    SERVER_TRANSPORT_INFO_0,
    SERVER_TRANSPORT_INFO_1,
    SERVER_TRANSPORT_INFO_2,
    SHARE_INFO_0,
    SHARE_INFO_1,
    SHARE_INFO_2,
    SHARE_INFO_501,
    SHARE_INFO_502_I,
    SHARE_INFO_503_I,
    SHARE_INFO_1005,
    SHI_USES_UNLIMITED,
    STYPE_IPC,
    STYPE_SPECIAL,
    SV_TYPE_NT,
    SV_TYPE_SERVER,
    SV_TYPE_SERVER_NT,
    SV_TYPE_WORKSTATION,
    TIME_OF_DAY_INFO,
    EnumResponse,
    NetrCharDevEnumRequest,
    NetrCharDevEnumResponse,
    NetrCharDevQEnumRequest,
    NetrCharDevQEnumResponse,
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
    NetrRemoteTODRequest,
    NetrRemoteTODResponse,
    NetrServerDiskEnumRequest,
    NetrServerDiskEnumResponse,
    NetrServerGetInfoRequest,
    NetrServerGetInfoResponse,
    NetrServerTransportEnumRequest,
    NetrServerTransportEnumResponse,
    NetrSessionDelRequest,
    NetrSessionDelResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareCheckRequest,
    NetrShareCheckResponse,
    NetrShareEnumRequest,
    NetrShareEnumResponse,
    NetrShareEnumStickyRequest,
    NetrShareEnumStickyResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
    Opnum,
    ServerInfo,
    ShareInfo,
    TransportInfo,
)

audit_log = logging.getLogger("netsession.audit")

# MS-RPCE §2.2.2.11 / C706 appendix E: the fault statuses this service raises itself.
NCA_S_OP_RNG_ERROR: Final = 0x1C010002
NCA_S_FAULT_NDR: Final = 0x000006F7  # RPC_X_BAD_STUB_DATA: the stub could not be unmarshalled


class SessionPersonality(Protocol):
    """How a listener answers NetrSessionEnum / NetrSessionDel over the one session table: a policy the
    service consults (Windows classic, hardened, Samba's smbd: :mod:`netsession.decoy.personality`)."""

    @property
    def name(self) -> str: ...

    def session_enum(
        self, table: SessionTable, caller: Caller, req: NetrSessionEnumRequest
    ) -> EnumResult: ...

    def session_del(
        self,
        table: SessionTable,
        caller: Caller,
        req: NetrSessionDelRequest,
        peers_of: Callable[[TableRow], Sequence[TableRow]],
    ) -> DeleteResult: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling: the SMB session's identity, and the client's address for the audit trail;
    ``personality`` (None: the table's own rules) is the answering listener's, named ``listener``;
    ``details`` go into every audit event's ``extra`` (the caller's domain, NTLM workstation, port...)."""

    caller: Caller
    client_address: str
    personality: SessionPersonality | None = None
    listener: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """Either a response stub, or a DCE/RPC fault status (then there is no stub)."""

    stub: bytes = b""
    fault: int | None = None


@dataclass(frozen=True, slots=True)
class Share:
    """One entry of the server's ShareList (MS-SRVS §3.1.1.7), as NetrShareEnum reports it: ``path`` is
    Share.LocalPath (IPC$ has none: the empty string, as Windows shows it), ``server_name`` the name it
    is scoped to (``*``: the default name), ``flags`` the SHARE_INFO_1005 flags (0: manual caching)."""

    name: str
    type: int
    remark: str = ""
    path: str = ""
    server_name: str = "*"
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Transport:
    """One transport the server really listens on (MS-SRVS §3.1.1.2): direct TCP shows as
    ``\\Device\\NetbiosSmb`` (note <28>); ``address`` is the listening socket, ``connections`` the
    connections it has now (svti*_numberofvcs)."""

    address: str
    connections: int
    name: str = "\\Device\\NetbiosSmb"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What NetrServerGetInfo reports (MS-SRVS §2.2.4.40-41)."""

    name: str
    comment: str = "netsession"
    version_major: int = 10
    version_minor: int = 0
    type: int = SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_NT | SV_TYPE_SERVER_NT
    domain: str = "WORKGROUP"
    # What the server listens on now (NetrServerTransportEnum); the running server sets it.
    transports: Callable[[], Sequence[Transport]] = field(default=lambda: ())


# The share levels each method answers (MS-SRVS §3.1.4.8-10), and those for Administrators and Server
# Operators only: §3.1.4.10 note <62> for GetInfo; for the enumerations, as Windows answers Samba's
# smbtorture (rpc.srvsvc: an anonymous NetShareEnumAll at 501 is ERROR_ACCESS_DENIED).
SHARE_ENUM_LEVELS: Final = frozenset((0, 1, 2, 501, 502, 503))
SHARE_STICKY_LEVELS: Final = frozenset((0, 1, 2, 502, 503))  # §3.1.4.9: no 501
SHARE_GETINFO_LEVELS: Final = frozenset((0, 1, 2, 501, 502, 503, 1005))
SHARE_ENUM_PRIVILEGED: Final = frozenset((2, 501, 502, 503))
SHARE_GETINFO_PRIVILEGED: Final = frozenset((2, 502, 503))
# §3.1.4.17 note <80>: 102, 502 and 503 for Administrators and Server Operators.
SERVER_PRIVILEGED: Final = frozenset((102, 502, 503))
IPC_SHARE: Final = Share("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC")
# MS-SRVS §2.2.2.4: bits NetrShareCheck never returns (STYPE_SPECIAL; the cluster bits).
_SHARE_CHECK_MASK: Final = ~(STYPE_SPECIAL | 0x02000000 | 0x04000000 | 0x08000000) & 0xFFFFFFFF
# MS-SRVS note <30>: a transport address is the NetBIOS name, 16 characters padded with blanks.
NETBIOS_NAME_LENGTH: Final = 16
# MS-SRVS note <40> / <41>: what a Windows server reports by default at levels 102, 502 and 503.
WINDOWS_102_DEFAULTS: Final = {
    "users": 0xFFFFFFFF, "disc": 15, "hidden": 0, "announce": 240, "anndelta": 3000,
}
# fmt: off
WINDOWS_502_DEFAULTS: Final = (
    2048, 1, 2048, 4356, 4, 16, 4, 11, 65535, 2048, 2048, 0xFFFFFFFF, 0xFFFFFFFF, 1, 1, 0, 1, 0,
)
WINDOWS_503_TAIL: Final = (
    8192, 0, 480, 3600, 240, 600, 2, 2, 30, 2, 2, 0x100000, 1, 50, 35, 35, 1, 0, 1, 1, 0, 2, 2,
)
# fmt: on
# TIME_OF_DAY_INFO tod_tinterval: one tick of the clock it reports, in 0.1 ms (it reports milliseconds).
TOD_TICK: Final = 10


class SrvsvcService:
    """Answers srvsvc opnums 8-13, 15, 16, 21 and 36 from a :class:`SessionTable` (sessions, their opens
    and tree connects) and the server's shares and identity.

    >>> from netsession.table import SessionTable
    >>> svc = SrvsvcService(SessionTable(), ServerIdentity("FS1"))
    >>> ctx = CallContext(Caller("admin", frozenset({"Administrators"})), "127.0.0.1")
    >>> reply = svc.call(ctx, Opnum.NetrSessionEnum, NetrSessionEnumRequest(level=10).encode())
    >>> NetrSessionEnumResponse.decode(reply.stub).status
    0
    """

    def __init__(
        self,
        table: SessionTable,
        identity: ServerIdentity,
        shares: Sequence[Share] = (IPC_SHARE,),
        *,
        audit: AuditTrail | None = None,
        wall_clock: Callable[[], float] = time.time,
        uptime: Callable[[], float] = time.monotonic,
        utc_offset: Callable[[float], int] | None = None,
    ) -> None:
        self.table = table
        self.identity = identity
        self.shares = tuple(shares)
        # Run before every call (synthetic rows bring their idle times up to date).
        self.before_call: list[Callable[[], object]] = []
        # The rows that go with a row when its whole client is torn down (Samba ends the client's process:
        # every session of that connection). The server that owns the connections sets it.
        self.peers_of: Callable[[TableRow], Sequence[TableRow]] = lambda row: (row,)
        self.audit = audit if audit is not None else AuditTrail([LogSink()])
        # What the running call's handler found out for the audit event (targets, counts).
        self._facts: dict[str, Any] = {}
        # NetrRemoteTOD's clock: the wall clock, a count since an arbitrary start (tod_msecs), and the
        # local time zone's offset from UTC in seconds at a given time (east positive).
        self._wall_clock = wall_clock
        self._uptime = uptime
        self._utc_offset = utc_offset or (lambda t: time.localtime(t).tm_gmtoff)
        self._handlers: dict[int, Callable[[CallContext, bytes], tuple[Reply, int | None, int | str]]] = {
            Opnum.NetrCharDevEnum: self._chardev_enum,
            Opnum.NetrCharDevQEnum: self._chardevq_enum,
            Opnum.NetrShareCheck: self._share_check,
            Opnum.NetrServerDiskEnum: self._disk_enum,
            Opnum.NetrServerTransportEnum: self._transport_enum,
            Opnum.NetrRemoteTOD: self._remote_tod,
            Opnum.NetrConnectionEnum: self._connection_enum,
            Opnum.NetrFileEnum: self._file_enum,
            Opnum.NetrFileGetInfo: self._file_get_info,
            Opnum.NetrFileClose: self._file_close,
            Opnum.NetrSessionEnum: self._session_enum,
            Opnum.NetrSessionDel: self._session_del,
            Opnum.NetrShareEnum: self._share_enum,
            Opnum.NetrShareGetInfo: self._share_get_info,
            Opnum.NetrShareEnumSticky: self._share_enum_sticky,
            Opnum.NetrServerGetInfo: self._server_get_info,
        }

    @property
    def opnums(self) -> frozenset[int]:
        """The operations this service answers; any other is the RPC layer's nca_s_op_rng_error."""
        return frozenset(self._handlers)

    def call(self, ctx: CallContext, opnum: int, stub: bytes) -> Reply:
        """Run one call and log it."""
        self._facts = {}
        for hook in self.before_call:
            hook()
        handler = self._handlers.get(opnum)
        result: int | str
        if handler is None:
            reply, level, result = Reply(fault=NCA_S_OP_RNG_ERROR), None, NCA_S_OP_RNG_ERROR
        else:
            try:
                reply, level, result = handler(ctx, stub)
            except NdrError as exc:
                audit_log.warning("bad stub for opnum %d from %s: %s", opnum, ctx.client_address, exc)
                reply, level, result = Reply(fault=NCA_S_FAULT_NDR), None, NCA_S_FAULT_NDR
        self._audit(ctx, opnum, level, result, reply)
        return reply

    def rejected(self, ctx: CallContext, opnum: int, fault: int) -> None:
        """The RPC layer faulted a call before it reached us (an opnum outside the interface, an unknown
        presentation context): audited like any other call."""
        self._facts = {}
        self._audit(ctx, opnum, None, fault, Reply(fault=fault))

    def _audit(
        self, ctx: CallContext, opnum: int, level: int | None, result: int | str, reply: Reply
    ) -> None:
        try:
            operation = Opnum(opnum).name
        except ValueError:
            operation = f"opnum {opnum}"
        outcome = (
            f"fault 0x{reply.fault:08X}"
            if reply.fault is not None
            else (status_name(result) if isinstance(result, int) else result)
        )
        status = self._facts.pop("status", result if isinstance(result, int) else None)
        extra = {**ctx.details, **self._facts.pop("extra", {})}
        self.audit.emit(
            SrvsvcCallEvent(
                client_address=ctx.client_address,
                caller=ctx.caller.user,
                operation=operation,
                opnum=opnum,
                level=level,
                status=None if reply.fault is not None or status is None else status_name(status),
                fault=reply.fault,
                result=outcome,
                listener=ctx.listener,
                extra=extra,
                **self._facts,
            )
        )

    # -- the operations ----------------------------------------------------------------------------

    def _session_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.5; the rules are the table's.
        req = NetrSessionEnumRequest.decode(stub)
        if ctx.personality is not None:
            r = ctx.personality.session_enum(self.table, ctx.caller, req)
        else:
            r = self.table.enumerate(
                ctx.caller, req.client_name, req.user_name, req.level, req.preferred_max_length,
                req.resume_handle,
            )
        self._facts = {"client_name": req.client_name, "user_name": req.user_name}
        if r.fault is not None:
            return Reply(fault=r.fault), req.level, r.status
        self._facts.update(
            entries=len(r.entries), total_entries=r.total_entries, status=r.status,
            extra={"decoy_rows": r.synthetic},
        )
        resp = NetrSessionEnumResponse(r.level, list(r.entries), r.total_entries, r.resume_handle, r.status)
        detail: int | str = r.status
        if r.status in (NERR_Success, ERROR_MORE_DATA):
            detail = f"{status_name(r.status)} entries={len(r.entries)}/{r.total_entries}"
        return Reply(resp.encode()), req.level, detail

    def _session_del(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.6; the table hands each ended session to its owner to tear down.
        req = NetrSessionDelRequest.decode(stub)
        try:
            if ctx.personality is not None:
                r = ctx.personality.session_del(self.table, ctx.caller, req, self.peers_of)
            else:
                r = self.table.delete(ctx.caller, req.client_name, req.user_name)
        except SessionCloseError as exc:
            audit_log.error("closing deleted sessions failed: %r", exc.exceptions)
            r = exc.result
        self._facts = {
            "client_name": req.client_name, "user_name": req.user_name, "closed": len(r.closed),
            "status": r.status, "extra": {"decoy_rows": sum(row.synthetic for row in r.closed)},
        }
        detail: int | str = r.status
        if r.status == NERR_Success:
            detail = f"NERR_Success closed={len(r.closed)}"
        return Reply(NetrSessionDelResponse(r.status).encode()), None, detail

    def _list_reply(
        self, r: ListResult, response: type[EnumResponse], level: int
    ) -> tuple[Reply, int | None, int | str]:
        self._facts.update(entries=len(r.entries), total_entries=r.total_entries, status=r.status)
        resp = response(r.level, list(r.entries), r.total_entries, r.resume_handle, r.status)
        detail: int | str = r.status
        if r.status in (NERR_Success, ERROR_MORE_DATA):
            detail = f"{status_name(r.status)} entries={len(r.entries)}/{r.total_entries}"
        return Reply(resp.encode()), level, detail

    def _file_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.2; the rules are the table's.
        req = NetrFileEnumRequest.decode(stub)
        r = self.table.file_enum(
            ctx.caller, req.base_path, req.user_name, req.level, req.preferred_max_length, req.resume_handle
        )
        return self._list_reply(r, NetrFileEnumResponse, req.level)

    def _file_get_info(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.3.
        req = NetrFileGetInfoRequest.decode(stub)
        r = self.table.file_get_info(ctx.caller, req.file_id, req.level)
        return Reply(NetrFileGetInfoResponse(req.level, r.entry, r.status).encode()), req.level, r.status

    def _file_close(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.4: the table hands the open to its owner, which closes it in its connection.
        req = NetrFileCloseRequest.decode(stub)
        try:
            status = self.table.file_close(ctx.caller, req.file_id)
        except Exception as exc:  # the row is gone; the owner failed to close the open behind it
            audit_log.error("closing open %d failed: %r", req.file_id, exc)
            status = NERR_Success
        self._facts = {"status": status}
        detail: int | str = status if status != NERR_Success else f"NERR_Success file_id={req.file_id}"
        return Reply(NetrFileCloseResponse(status).encode()), None, detail

    def _connection_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.1: a share qualifier must name one of our shares.
        req = NetrConnectionEnumRequest.decode(stub)
        r = self.table.connection_enum(
            ctx.caller, req.qualifier, req.level, req.preferred_max_length, req.resume_handle,
            [share.name for share in self.shares],
        )
        return self._list_reply(r, NetrConnectionEnumResponse, req.level)

    def _share_info(self, share: Share, level: int) -> ShareInfo:
        """A share at any level this server answers (MS-SRVS §2.2.4.22-29). IPC$ has no path, no
        password, no limit, and no security descriptor of its own; current uses are its trees."""
        if level == 0:
            return SHARE_INFO_0(share.name)
        if level == 1:
            return SHARE_INFO_1(share.name, share.type, share.remark)
        if level == 501:
            return SHARE_INFO_501(share.name, share.type, share.remark, share.flags)
        if level == 1005:
            return SHARE_INFO_1005(share.flags)
        uses = self.table.current_uses(share.name)  # MS-SRVS §3.1.1.7 Share.CurrentUses: its trees
        if level == 2:
            return SHARE_INFO_2(
                share.name, share.type, share.remark, 0, SHI_USES_UNLIMITED, uses, share.path, None
            )
        if level == 502:
            return SHARE_INFO_502_I(
                share.name, share.type, share.remark, 0, SHI_USES_UNLIMITED, uses, share.path, None, 0, None
            )
        return SHARE_INFO_503_I(
            share.name, share.type, share.remark, 0, SHI_USES_UNLIMITED, uses, share.path, None,
            share.server_name, 0, None,
        )

    @staticmethod
    def _level_status(ctx: CallContext, level: int, valid: frozenset[int], privileged: frozenset[int]) -> int:
        if level not in valid:
            return ERROR_INVALID_LEVEL
        if level in privileged and not ctx.caller.is_operator:
            return ERROR_ACCESS_DENIED
        return NERR_Success

    def _share_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.8 (Samba: NetShareEnumAll).
        req = NetrShareEnumRequest.decode(stub)
        status = self._level_status(ctx, req.level, SHARE_ENUM_LEVELS, SHARE_ENUM_PRIVILEGED)
        return self._share_list(req, self.shares, NetrShareEnumResponse, status)

    def _share_enum_sticky(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.9: only sticky (persistent, non-special) shares; IPC$ is special, so: none.
        req = NetrShareEnumStickyRequest.decode(stub)
        sticky = [s for s in self.shares if not s.type & STYPE_SPECIAL]
        status = self._level_status(ctx, req.level, SHARE_STICKY_LEVELS, SHARE_ENUM_PRIVILEGED)
        return self._share_list(req, sticky, NetrShareEnumStickyResponse, status)

    def _share_list(
        self,
        req: NetrShareEnumRequest,
        shares: Sequence[Share],
        response: type[NetrShareEnumResponse],
        status: int,
    ) -> tuple[Reply, int | None, int | str]:
        if status != NERR_Success:
            return Reply(response(req.level, [], 0, req.resume_handle, status).encode()), req.level, status
        # §3.1.4.8: paged as the other enumerations, the resume handle an index into ShareList.
        r = paginate(
            list(shares), lambda _s: True, lambda share: self._share_info(share, req.level), req.level,
            req.preferred_max_length, req.resume_handle,
        )
        return self._list_reply(r, response, req.level)

    def _share_get_info(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.10: share names compare case-insensitively.
        req = NetrShareGetInfoRequest.decode(stub)
        wanted = req.net_name.casefold()
        share = next((s for s in self.shares if s.name.casefold() == wanted), None)
        status = self._level_status(ctx, req.level, SHARE_GETINFO_LEVELS, SHARE_GETINFO_PRIVILEGED)
        info: ShareInfo | None = None
        if status == NERR_Success:
            if share is None:
                status = NERR_NetNameNotFound
            else:
                info = self._share_info(share, req.level)
        return Reply(NetrShareGetInfoResponse(req.level, info, status).encode()), req.level, status

    def _share_check(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.16: a share whose LocalPath is Device (IPC$'s is ""), its type without
        # STYPE_SPECIAL and the cluster bits; no access check.
        req = NetrShareCheckRequest.decode(stub)
        wanted = req.device.casefold()
        share = next((s for s in self.shares if s.path.casefold() == wanted), None)
        if share is None:
            return Reply(NetrShareCheckResponse(0, NERR_DeviceNotShared).encode()), None, NERR_DeviceNotShared
        resp = NetrShareCheckResponse(share.type & _SHARE_CHECK_MASK, NERR_Success)
        return Reply(resp.encode()), None, NERR_Success

    def _server_info(self, level: int) -> ServerInfo | None:
        """MS-SRVS §2.2.4.40-45, with Windows' defaults (notes <40>, <41>) where nothing applies here."""
        me = self.identity
        if level == 100:
            return SERVER_INFO_100(PLATFORM_ID_NT, me.name)
        if level == 101:
            return SERVER_INFO_101(
                PLATFORM_ID_NT, me.name, me.version_major, me.version_minor, me.type, me.comment
            )
        if level == 102:
            d = WINDOWS_102_DEFAULTS
            return SERVER_INFO_102(
                PLATFORM_ID_NT, me.name, me.version_major, me.version_minor, me.type, me.comment, d["users"],
                d["disc"], d["hidden"], d["announce"], d["anndelta"], 0, "c:\\",
            )
        if level == 502:
            return SERVER_INFO_502(*WINDOWS_502_DEFAULTS)
        if level == 503:
            return SERVER_INFO_503(*WINDOWS_502_DEFAULTS, me.domain, *WINDOWS_503_TAIL)
        return None

    def _server_get_info(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.17: levels 100-102, 502, 503; 102/502/503 for operators (note <80>, <81>).
        req = NetrServerGetInfoRequest.decode(stub)
        info = self._server_info(req.level)
        status: int = NERR_Success
        if info is None:
            status = ERROR_INVALID_LEVEL
        elif req.level in SERVER_PRIVILEGED and not ctx.caller.is_operator:
            info, status = None, ERROR_ACCESS_DENIED
        return Reply(NetrServerGetInfoResponse(req.level, info, status).encode()), req.level, status

    def _disk_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.19: level 0 only; Administrators and Server Operators (note <87>). A pipe server
        # shares no disk: no drives, and the terminating empty entry (EntriesRead = TotalEntries + 1).
        req = NetrServerDiskEnumRequest.decode(stub)
        if req.level != 0:
            status: int = ERROR_INVALID_LEVEL
        elif not ctx.caller.is_operator:
            status = ERROR_ACCESS_DENIED
        else:
            return Reply(NetrServerDiskEnumResponse([""], 0, req.resume_handle, 0).encode()), 0, NERR_Success
        return Reply(NetrServerDiskEnumResponse([], 0, req.resume_handle, status).encode()), req.level, status

    def _transport_info(self, transport: Transport, level: int) -> TransportInfo:
        # §2.2.4.93-96 (note <30>: the NetBIOS name, padded with blanks to 16).
        me = self.identity
        name = me.name.upper()[:NETBIOS_NAME_LENGTH].ljust(NETBIOS_NAME_LENGTH)
        address = name.encode("ascii", "replace")
        vcs, device, where = transport.connections, transport.name, transport.address
        if level == 0:
            return SERVER_TRANSPORT_INFO_0(vcs, device, address, len(address), where)
        if level == 1:
            return SERVER_TRANSPORT_INFO_1(vcs, device, address, len(address), where, me.domain)
        return SERVER_TRANSPORT_INFO_2(vcs, device, address, len(address), where, me.domain, 0)

    def _transport_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.24: levels 0, 1 and 2 (the union's level 3 is not for enumerating: invalid);
        # Administrators and Server Operators (note <97>); paged as the other enumerations.
        req = NetrServerTransportEnumRequest.decode(stub)
        status = self._level_status(ctx, req.level, frozenset((0, 1, 2)), frozenset((0, 1, 2)))
        if status != NERR_Success:
            resp = NetrServerTransportEnumResponse(req.level, [], 0, req.resume_handle, status)
            return Reply(resp.encode()), req.level, status
        r = paginate(
            list(self.identity.transports()), lambda _t: True, lambda t: self._transport_info(t, req.level),
            req.level, req.preferred_max_length, req.resume_handle,
        )
        return self._list_reply(r, NetrServerTransportEnumResponse, req.level)

    def time_of_day(self) -> TIME_OF_DAY_INFO:
        """The server's clock as NetrRemoteTOD reports it (MS-SRVS §2.2.4.105): UTC fields, the time zone
        in minutes west of UTC."""
        now = self._wall_clock()
        utc = time.gmtime(now)
        hunds = int(now * 100) % 100
        msecs = int(self._uptime() * 1000) & 0xFFFFFFFF
        zone = -self._utc_offset(now) // 60
        return TIME_OF_DAY_INFO(
            int(now) & 0xFFFFFFFF, msecs, utc.tm_hour, utc.tm_min, min(utc.tm_sec, 59), hunds, zone, TOD_TICK,
            utc.tm_mday, utc.tm_mon, utc.tm_year, (utc.tm_wday + 1) % 7,
        )

    def _remote_tod(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.21: no special group membership (note <90>).
        NetrRemoteTODRequest.decode(stub)
        return Reply(NetrRemoteTODResponse(self.time_of_day(), 0).encode()), None, NERR_Success

    def _chardev_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # Opnum 0: MS-SRVS §3.1.4 "returns ERROR_NOT_SUPPORTED" — with its [out] parameters marshalled, so
        # a client that speaks NetrCharDevEnum reads a well-formed answer: no devices.
        req = NetrCharDevEnumRequest.decode(stub)
        resp = NetrCharDevEnumResponse(req.level, [], 0, req.resume_handle, ERROR_NOT_SUPPORTED)
        return Reply(resp.encode()), req.level, ERROR_NOT_SUPPORTED

    def _chardevq_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # Opnum 3, as opnum 0.
        req = NetrCharDevQEnumRequest.decode(stub)
        resp = NetrCharDevQEnumResponse(req.level, [], 0, req.resume_handle, ERROR_NOT_SUPPORTED)
        return Reply(resp.encode()), req.level, ERROR_NOT_SUPPORTED
