"""srvsvc for smbd's callers: who is calling (from the pipe hand-over's token), and the service that
reads Samba's sessions before each session call.

The caller of a pipe opened through smbd is the ``auth_session_info`` smbd hands over: local group
membership is read from the token's SIDs — BUILTIN\\Administrators ``S-1-5-32-544`` and Server Operators
``S-1-5-32-549`` (MS-DTYP 2.4.2.4), and Domain Admins (RID 512 of a domain, who are administrators of
every member server, and whom Samba lets end sessions); uid 0 (root) is an administrator as in Samba.
A guest or anonymous token is not authenticated.
"""

from __future__ import annotations

import logging
from typing import Final

from netsession.groups import ADMINISTRATORS, SERVER_OPERATORS
from netsession.samba.feed import SambaFeed
from netsession.samba.ndr import SessionInfo
from netsession.samba.state import SambaStateError, is_guest
from netsession.server.srvsvc import CallContext, Reply, SrvsvcService
from netsession.wire.srvsvc import Opnum

log = logging.getLogger("netsession.samba")

SID_BUILTIN_ADMINISTRATORS: Final = "S-1-5-32-544"
SID_BUILTIN_SERVER_OPERATORS: Final = "S-1-5-32-549"
DOMAIN_ADMINS_RID: Final = 512
DOMAIN_ADMINS: Final = "Domain Admins"
# MS-ERREF 2.2: RPC_S_CALL_FAILED, "The remote procedure call failed": the fault when Samba's state
# cannot be read (the bridge answers nothing rather than something wrong).
RPC_S_CALL_FAILED: Final = 0x000006BE
SESSION_OPNUMS: Final = frozenset((Opnum.NetrSessionEnum, Opnum.NetrSessionDel))


def caller_groups(sids: tuple[str, ...], uid: int | None) -> frozenset[str]:
    groups = set()
    if SID_BUILTIN_ADMINISTRATORS in sids or uid == 0:
        groups.add(ADMINISTRATORS)
    if SID_BUILTIN_SERVER_OPERATORS in sids:
        groups.add(SERVER_OPERATORS)
    for sid in sids:
        if sid.startswith("S-1-5-21-") and sid.rsplit("-", 1)[1] == str(DOMAIN_ADMINS_RID):
            groups.update((DOMAIN_ADMINS, ADMINISTRATORS))
    return frozenset(groups)


def caller_from_session_info(info: SessionInfo | None) -> tuple[str, frozenset[str], bool]:
    """(``DOMAIN\\user``, local groups, authenticated) of a pipe caller."""
    if info is None or info.token is None:
        return "", frozenset(), False
    sids = info.token.sids
    uid = info.unix_token.uid if info.unix_token is not None else None
    user = (info.info.account_name if info.info is not None else None) or info.unix_name or ""
    domain = (info.info.domain_name if info.info is not None else None) or ""
    name = f"{domain}\\{user}" if domain and user else user
    return name, caller_groups(sids, uid), not is_guest(sids)


class BridgeSrvsvcService(SrvsvcService):
    """:class:`SrvsvcService` whose session calls first refresh the table from Samba's state.

    If Samba's state cannot be read the call is answered with the fault RPC_S_CALL_FAILED, and the
    reason is logged once per distinct reason (not once per call)."""

    feed: SambaFeed

    def attach(self, feed: SambaFeed) -> None:
        self.feed = feed
        self._reported: str | None = None

    def call(self, ctx: CallContext, opnum: int, stub: bytes) -> Reply:
        if opnum in SESSION_OPNUMS:
            try:
                self.feed.refresh()
            except SambaStateError as exc:
                if str(exc) != self._reported:
                    log.error("cannot read Samba's sessions: %s", exc)
                    self._reported = str(exc)
                reply = Reply(fault=RPC_S_CALL_FAILED)
                self._audit(ctx, opnum, None, RPC_S_CALL_FAILED, reply)
                return reply
            if self._reported is not None:
                log.info("Samba's sessions are readable again")
                self._reported = None
        return super().call(ctx, opnum, stub)
