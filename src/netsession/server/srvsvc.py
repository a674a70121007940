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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_MORE_DATA,
    NERR_NetNameNotFound,
    NERR_Success,
    status_name,
)
from netsession.server.audit import AuditTrail, LogSink, SrvsvcCallEvent
from netsession.table import Caller, DeleteResult, EnumResult, ListResult, SessionCloseError, SessionTable
from netsession.table import Session as TableRow
from netsession.wire.ndr import NdrError
from netsession.wire.srvsvc import (
    PLATFORM_ID_NT,
    SERVER_INFO_100,
    SERVER_INFO_101,
    SHARE_INFO_0,
    SHARE_INFO_1,
    SHARE_INFO_2,
    SHARE_INFO_502_I,
    SHI_USES_UNLIMITED,
    STYPE_IPC,
    STYPE_SPECIAL,
    SV_TYPE_NT,
    SV_TYPE_SERVER,
    SV_TYPE_SERVER_NT,
    SV_TYPE_WORKSTATION,
    EnumResponse,
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
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
    ShareInfo,
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
    """One entry of the server's ShareList (MS-SRVS §3.1.1.6), as NetrShareEnum reports it."""

    name: str
    type: int
    remark: str = ""


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What NetrServerGetInfo reports (MS-SRVS §2.2.4.40-41)."""

    name: str
    comment: str = "netsession"
    version_major: int = 10
    version_minor: int = 0
    type: int = SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_NT | SV_TYPE_SERVER_NT


# The share levels this server answers (NetrShareEnum, NetrShareGetInfo).
SHARE_LEVELS: Final = frozenset((0, 1, 2, 502))
IPC_SHARE: Final = Share("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC")


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
        self._handlers: dict[int, Callable[[CallContext, bytes], tuple[Reply, int | None, int | str]]] = {
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

    @staticmethod
    def _list_reply(
        r: ListResult, response: type[EnumResponse], level: int
    ) -> tuple[Reply, int | None, int | str]:
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
        """A share at level 0, 1, 2 or 502 (MS-SRVS §2.2.4.22-26). IPC$ has no path, no password, no
        limit, and no security descriptor of its own."""
        if level == 0:
            return SHARE_INFO_0(share.name)
        if level == 1:
            return SHARE_INFO_1(share.name, share.type, share.remark)
        uses = self.table.current_uses(share.name)  # MS-SRVS §3.1.1.7 Share.CurrentUses: its trees
        if level == 2:
            return SHARE_INFO_2(share.name, share.type, share.remark, 0, SHI_USES_UNLIMITED, uses, "", None)
        return SHARE_INFO_502_I(
            share.name, share.type, share.remark, 0, SHI_USES_UNLIMITED, uses, "", None, 0, None
        )

    def _share_level_status(self, ctx: CallContext, level: int) -> int:
        if level not in SHARE_LEVELS:
            return ERROR_INVALID_LEVEL
        if level in (2, 502) and not ctx.caller.is_operator:
            return ERROR_ACCESS_DENIED  # MS-SRVS §3.1.4.8: levels 2 and 502 are for administrators, operators
        return NERR_Success

    def _share_enum(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.8. The list is a handful of entries: all of them go in one answer, and the resume
        # handle (if any) moves past them, so a caller paging on sees the end.
        req = NetrShareEnumRequest.decode(stub)
        return self._share_list(ctx, req, self.shares, NetrShareEnumResponse)

    def _share_enum_sticky(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.9: only sticky (persistent, non-special) shares; IPC$ is special, so: none.
        req = NetrShareEnumStickyRequest.decode(stub)
        sticky = [s for s in self.shares if not s.type & STYPE_SPECIAL]
        return self._share_list(ctx, req, sticky, NetrShareEnumStickyResponse)

    def _share_list(
        self,
        ctx: CallContext,
        req: NetrShareEnumRequest,
        shares: Sequence[Share],
        response: type[NetrShareEnumResponse],
    ) -> tuple[Reply, int | None, int | str]:
        status = self._share_level_status(ctx, req.level)
        if status != NERR_Success:
            return Reply(response(req.level, [], 0, req.resume_handle, status).encode()), req.level, status
        start = min(req.resume_handle or 0, len(shares))
        entries = [self._share_info(share, req.level) for share in shares[start:]]
        resume = None if req.resume_handle is None else len(shares)
        resp = response(req.level, entries, len(entries), resume, NERR_Success)
        return Reply(resp.encode()), req.level, NERR_Success

    def _share_get_info(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.10: share names compare case-insensitively.
        req = NetrShareGetInfoRequest.decode(stub)
        wanted = req.net_name.casefold()
        share = next((s for s in self.shares if s.name.casefold() == wanted), None)
        status = self._share_level_status(ctx, req.level)
        info: ShareInfo | None = None
        if status == NERR_Success:
            if share is None:
                status = NERR_NetNameNotFound
            else:
                info = self._share_info(share, req.level)
        return Reply(NetrShareGetInfoResponse(req.level, info, status).encode()), req.level, status

    def _server_get_info(self, ctx: CallContext, stub: bytes) -> tuple[Reply, int | None, int | str]:
        # MS-SRVS §3.1.4.17, levels 100 and 101.
        req = NetrServerGetInfoRequest.decode(stub)
        me = self.identity
        info: SERVER_INFO_100 | SERVER_INFO_101 | None = None
        status: int = NERR_Success
        if req.level == 100:
            info = SERVER_INFO_100(PLATFORM_ID_NT, me.name)
        elif req.level == 101:
            info = SERVER_INFO_101(
                PLATFORM_ID_NT, me.name, me.version_major, me.version_minor, me.type, me.comment
            )
        else:
            status = ERROR_INVALID_LEVEL
        return Reply(NetrServerGetInfoResponse(req.level, info, status).encode()), req.level, status
