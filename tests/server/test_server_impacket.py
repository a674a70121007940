r"""`netsession serve` with impacket as the client: SMBConnection + srvs.hNetrSessionEnum / hNetrSessionDel.

impacket is an independent SMB client and NDR implementation: its decoding of our responses is the check
on the wire format, and its SMBConnection opens with an SMB1 multi-protocol NEGOTIATE ("SMB 2.???") unless
a dialect is forced, so the default case also runs the SMB1-to-SMB2 upgrade.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.dcerpc.v5.rpcrt import DCERPC_v5, DCERPCException
from impacket.nmb import NetBIOSError
from impacket.nt_errors import STATUS_USER_SESSION_DELETED
from impacket.smb3structs import SMB2_DIALECT_002, SMB2_DIALECT_21, SMB2_DIALECT_30, SMB2_DIALECT_311
from impacket.smbconnection import SessionError, SMBConnection
from netsession_server import (
    ADMIN,
    ALICE,
    BOB,
    LOOPBACK,
    LOOPBACK_CNAME,
    OPERATOR,
    Account,
    NetsessionServerProcess,
    wait_until,
)

from netsession.errors import NetApiStatus
from netsession.records import (
    SESSION_INFO_0,
    SESSION_INFO_1,
    SESSION_INFO_2,
    SESSION_INFO_10,
    SESSION_INFO_502,
    ndr_size,
)
from netsession.server.accounts import AccountStore, nt_hash

pytestmark = pytest.mark.interop

LEVELS = (0, 1, 2, 10, 502)
TRANSPORT = "\\Device\\NetbiosSmb"
# Windows clients' SMB1 "NT LM 0.12" is not served; these are the SMB2/3 dialects impacket speaks.
DIALECTS = {
    "multi-protocol": None,
    "2.0.2": SMB2_DIALECT_002,
    "2.1": SMB2_DIALECT_21,
    "3.0": SMB2_DIALECT_30,
}
RECORDS: dict[int, Any] = {
    0: SESSION_INFO_0, 1: SESSION_INFO_1, 2: SESSION_INFO_2, 10: SESSION_INFO_10, 502: SESSION_INFO_502
}
# Errors a client may see when its connection was closed under it.
CONNECTION_GONE = (NetBIOSError, ConnectionError, OSError, EOFError)


class Client:
    """One impacket SMB connection, logged on, with srvsvc bound over its own pipe open."""

    def __init__(self, server: NetsessionServerProcess, account: Account, dialect: int | None = None,
                 *, bind: bool = True) -> None:
        self.account = account
        self.smb = SMBConnection(
            LOOPBACK, LOOPBACK, sess_port=server.port, preferredDialect=dialect, timeout=10
        )
        self.smb.login(account.name, account.password)
        self.dce: DCERPC_v5 | None = None
        if bind:
            self.dce = self.bind()

    def bind(self) -> DCERPC_v5:
        rpc = transport.SMBTransport(LOOPBACK, filename=r"\srvsvc", smb_connection=self.smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        return dce

    def enum(self, level: int, client: str | None = None, user: str | None = None, **kwargs: Any) -> Any:
        return srvs.hNetrSessionEnum(self.dce, _wstr(client), _wstr(user), level, **kwargs)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.dce is not None:
                self.dce.disconnect()
        with contextlib.suppress(Exception):
            self.smb.close()


def _wstr(value: str | None) -> Any:
    return srvs.NULL if value is None else value + "\x00"


def _s(value: str) -> str:
    return value.rstrip("\x00")


def entries(response: Any) -> list[Any]:
    level = response["InfoStruct"]["Level"]
    container = response["InfoStruct"]["SessionInfo"][f"Level{level}"]
    return list(container["Buffer"]) if container["EntriesRead"] else []


def status_of(exc: DCERPCException) -> int:
    code = exc.get_error_code()
    assert isinstance(code, int), exc
    return code


@pytest.fixture
def connect(server: NetsessionServerProcess) -> Iterator[Any]:
    """``connect(account, dialect=None, bind=True) -> Client``; all closed at the end of the test."""
    opened: list[Client] = []

    def make(account: Account, dialect: int | None = None, *, bind: bool = True) -> Client:
        client = Client(server, account, dialect, bind=bind)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


# -- NetrSessionEnum: the records ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=DIALECTS.keys())
def test_impacket_logs_on_with_every_dialect_it_speaks(connect: Any, dialect: int | None) -> None:
    admin = connect(ADMIN, dialect)
    expected = SMB2_DIALECT_311 if dialect is None else dialect
    assert admin.smb.getDialect() == expected
    (row,) = entries(admin.enum(10))
    assert _s(row["sesi10_username"]) == "admin"


@pytest.mark.parametrize("level", LEVELS)
def test_impacket_session_enum_every_level_exact_fields(connect: Any, level: int) -> None:
    connect(BOB, bind=False)  # logged on, nothing open
    admin = connect(ADMIN)  # srvsvc open: one open
    response = admin.enum(level)
    assert response["ErrorCode"] == 0
    assert response["TotalEntries"] == 2
    assert response["ResumeHandle"] == 2  # NERR_Success: the list size
    assert response["InfoStruct"]["Level"] == level
    rows = [_record(level, r) for r in entries(response)]
    assert [set(r._fields) for r in rows] == [set(RECORDS[level]._fields)] * 2
    # Table order is creation order: bob logged on first.
    for row, user, opens in zip(rows, ("bob", "admin"), (0, 1)):
        values = {k.split("_", 1)[1]: v for k, v in row._asdict().items()}
        get = values.__getitem__
        assert get("cname") == LOOPBACK_CNAME
        if level == 0:
            continue
        assert get("username") == user
        assert 0 <= get("time") <= 5
        assert 0 <= get("idle_time") <= get("time")
        if level == 10:
            continue
        assert get("num_opens") == opens
        assert get("user_flags") == 0
        if level in (2, 502):
            assert get("cltype_name") == ""
        if level == 502:
            assert get("transport") == TRANSPORT


def test_impacket_num_opens_follows_pipe_opens_and_closes(
    server: NetsessionServerProcess, connect: Any
) -> None:
    admin = connect(ADMIN)
    bob = connect(BOB, bind=False)

    def opens(user: str) -> int:
        (row,) = entries(admin.enum(1, None, user))
        return int(row["sesi1_num_opens"])

    assert opens("bob") == 0
    tid = bob.smb.connectTree("IPC$")
    fids = [bob.smb.openFile(tid, "srvsvc") for _ in range(3)]
    assert opens("bob") == 3
    bob.smb.closeFile(tid, fids.pop())
    assert opens("bob") == 2
    extra = bob.bind()  # impacket's own pipe transport opens one more, on the same tree
    assert opens("bob") == 3
    # impacket's transport only drops its use of the tree (it counts uses), leaving its pipe open...
    extra.disconnect()
    assert opens("bob") == 3
    # ...until the last use goes: TREE_DISCONNECT closes every open on the tree.
    bob.smb.disconnectTree(tid)
    assert opens("bob") == 0
    assert opens("admin") == 1


# -- paging --------------------------------------------------------------------------------------------


@pytest.fixture
def twelve_users(server: NetsessionServerProcess) -> list[Account]:
    """Twelve accounts added to the running server's store (a logon reads the store each time)."""
    accounts = [Account(f"pager{i:02}", f"Pager-{i}-pw", ("Users",)) for i in range(12)]
    with AccountStore(server.state_dir / "accounts.db") as store:
        for account in accounts:
            if store.get(account.name) is None:
                store.add_user(account.name, nt_hash(account.password), account.groups)
    return accounts


@pytest.mark.parametrize("level", LEVELS)
def test_impacket_paging_through_more_data_sees_every_session_once(
    connect: Any, twelve_users: list[Account], level: int
) -> None:
    for account in twelve_users:
        connect(account, bind=False)
    admin = connect(ADMIN)
    everything = admin.enum(level)
    expected = [_record(level, r) for r in entries(everything)]
    assert everything["TotalEntries"] == len(expected) == 13
    # One entry fits, two never do (MS-SRVS §3.1.4.5: as many whole entries as fit).
    sizes = [ndr_size(e) for e in expected]
    budget = max(sizes)
    assert 2 * min(sizes) > budget

    seen: list[Any] = []
    resume = 0
    totals = []
    for _ in range(20):
        try:
            response = admin.enum(level, resumeHandle=resume, preferedMaximumLength=budget)
        except DCERPCException as exc:
            assert status_of(exc) == NetApiStatus.ERROR_MORE_DATA
            response = exc.get_packet()
            done = False
        else:
            done = True
        page = entries(response)
        assert len(page) == 1
        totals.append(response["TotalEntries"])
        seen.extend(_record(level, r) for r in page)
        resume = response["ResumeHandle"]
        if done:
            break
    assert totals == list(range(13, 0, -1))
    if level == 0:
        assert seen == [SESSION_INFO_0(LOOPBACK_CNAME)] * 13
    else:
        # One session per user here: the user names tell the sessions apart.
        users = [r[1] for r in seen]
        assert sorted(users) == sorted(r[1] for r in expected)
        assert len(set(users)) == 13


def _plain(value: Any) -> Any:
    return _s(value) if isinstance(value, str) else value


def _record(level: int, row: Any) -> Any:
    """impacket's entry as our SESSION_INFO_x (same field names, NULs stripped)."""
    return RECORDS[level](**{k: _plain(row[k]) for k in row.fields})


def test_impacket_nothing_fits_is_buf_too_small(connect: Any) -> None:
    connect(BOB, bind=False)
    admin = connect(ADMIN)
    with pytest.raises(DCERPCException) as caught:
        admin.enum(502, resumeHandle=0, preferedMaximumLength=1)
    assert status_of(caught.value) == NetApiStatus.NERR_BufTooSmall
    response = caught.value.get_packet()
    assert entries(response) == []
    assert response["TotalEntries"] == 2
    assert response["ResumeHandle"] == 0


# -- filters and errors --------------------------------------------------------------------------------


def test_impacket_filters_are_case_insensitive(connect: Any) -> None:
    connect(BOB, bind=False)
    connect(BOB, bind=False)
    connect(ALICE, bind=False)
    admin = connect(ADMIN)
    assert len(entries(admin.enum(10, None, "BOB"))) == 2
    assert len(entries(admin.enum(10, LOOPBACK_CNAME, "Alice"))) == 1
    assert len(entries(admin.enum(10, LOOPBACK_CNAME))) == 4


@pytest.mark.parametrize(
    ("client", "user", "status"),
    [
        ("\\\\127.0.0.2", None, NetApiStatus.NERR_ClientNameNotFound),
        (None, "carol", NetApiStatus.NERR_UserNotFound),
        (LOOPBACK_CNAME, "carol", NetApiStatus.NERR_UserNotFound),
        ("127.0.0.1", None, NetApiStatus.NERR_InvalidComputer),
        (None, "x" * 1024, NetApiStatus.ERROR_INVALID_PARAMETER),
    ],
)
def test_impacket_enum_filter_errors(connect: Any, client: str | None, user: str | None, status: int) -> None:
    admin = connect(ADMIN)
    with pytest.raises(DCERPCException) as caught:
        admin.enum(10, client, user)
    assert status_of(caught.value) == status


def test_impacket_enum_unknown_level_is_invalid_level(connect: Any) -> None:
    # impacket cannot marshal a level without a union arm; the stub is laid out by hand (MS-SRVS §2.2.4.23
    # ms_union: the DWORD discriminant, no arm): ServerName, ClientName, UserName NULL; Level 3 and its
    # tag; PreferedMaximumLength; a ResumeHandle pointer to 0.
    admin = connect(ADMIN)
    stub = struct.pack("<IIIIIIII", 0, 0, 0, 3, 3, 0xFFFFFFFF, 0x00020000, 0)
    admin.dce.call(srvs.NetrSessionEnum.opnum, stub)
    answer = admin.dce.recv()
    # Level, tag, TotalEntries, ResumeHandle (pointer, value), the NET_API_STATUS.
    level, tag = struct.unpack_from("<II", answer)
    (status,) = struct.unpack_from("<I", answer, len(answer) - 4)
    assert (level, tag, status) == (3, 3, NetApiStatus.ERROR_INVALID_LEVEL)


@pytest.mark.parametrize("level", [1, 2, 502])
def test_impacket_plain_user_classic_privileged_levels_stub_access_denied(connect: Any, level: int) -> None:
    alice = connect(ALICE)
    # impacket raises a plain DCERPCException for a stub status it also knows as an RPC status (5), but
    # with the stub's error code; a fault (below) has none.
    with pytest.raises(DCERPCException) as caught:
        alice.enum(level)
    assert status_of(caught.value) == NetApiStatus.ERROR_ACCESS_DENIED


@pytest.mark.parametrize("level", [0, 10])
def test_impacket_plain_user_classic_levels_0_and_10_allowed(connect: Any, level: int) -> None:
    connect(BOB, bind=False)
    alice = connect(ALICE)
    assert len(entries(alice.enum(level))) == 2


@pytest.mark.parametrize("level", LEVELS)
def test_impacket_plain_user_hardened_is_refused_with_fault_5(
    hardened: NetsessionServerProcess, level: int
) -> None:
    alice = Client(hardened, ALICE)
    operator = Client(hardened, OPERATOR)
    try:
        with pytest.raises(DCERPCException) as caught:
            alice.enum(level)
        # A fault PDU, not a stub status: impacket names the fault and has no error code or response.
        assert str(caught.value) == "rpc_s_access_denied"
        assert caught.value.get_error_code() is None
        # The association survives a fault; a server operator is allowed.
        assert len(entries(operator.enum(level))) == 2
    finally:
        alice.close()
        operator.close()


# -- NetrSessionDel --------------------------------------------------------------------------------------


def test_impacket_session_del_ends_a_session_of_another_connection(
    server: NetsessionServerProcess, connect: Any
) -> None:
    bob = connect(BOB)
    admin = connect(ADMIN)
    assert entries(bob.enum(10, None, "bob"))  # bob's connection works
    response = srvs.hNetrSessionDel(admin.dce, _wstr(LOOPBACK_CNAME), _wstr("BOB"))
    assert response["ErrorCode"] == 0
    assert server.count("bob") == 0
    # bob's next request: STATUS_USER_SESSION_DELETED, or (his only session) the connection is closed.
    with pytest.raises((SessionError, DCERPCException, *CONNECTION_GONE)) as caught:
        bob.enum(10)
    if isinstance(caught.value, SessionError):
        assert caught.value.getErrorCode() == STATUS_USER_SESSION_DELETED
    # The admin's session is untouched, and bob can log on again.
    assert [_s(r["sesi10_username"]) for r in entries(admin.enum(10))] == ["admin"]
    again = connect(BOB)
    assert len(entries(again.enum(10, None, "bob"))) == 1
    assert re.search(r"caller=admin .*operation=NetrSessionDel .*result=NERR_Success closed=1", server.log())


def test_impacket_session_del_of_ones_own_session_ends_it(
    server: NetsessionServerProcess, connect: Any
) -> None:
    connect(ALICE, bind=False)
    admin = connect(ADMIN)
    # impacket moves DCE/RPC over the pipe with WRITE then READ. The WRITE ends the caller's own (and only)
    # session; the connection stays (the client is mid-conversation), and the READ that would carry the
    # reply is answered STATUS_USER_SESSION_DELETED (rpcclient, which uses FSCTL_PIPE_TRANSCEIVE, gets its
    # NERR_Success: see the Samba tests).
    with pytest.raises(SessionError) as caught:
        srvs.hNetrSessionDel(admin.dce, srvs.NULL, _wstr("admin"))
    assert caught.value.getErrorCode() == STATUS_USER_SESSION_DELETED
    wait_until(lambda: server.count("admin") == 0, what="the admin's session to end")
    assert server.count("alice") == 1
    assert re.search(r"caller=admin .*operation=NetrSessionDel .*result=NERR_Success closed=1", server.log())


@pytest.mark.parametrize(
    ("client", "user", "status"),
    [
        ("\\\\10.9.9.9", None, NetApiStatus.NERR_ClientNameNotFound),
        (LOOPBACK_CNAME, "carol", NetApiStatus.NERR_ClientNameNotFound),
        ("127.0.0.1", "alice", NetApiStatus.NERR_ClientNameNotFound),
        (None, None, NetApiStatus.ERROR_INVALID_PARAMETER),
    ],
)
def test_impacket_session_del_errors(
    server: NetsessionServerProcess, connect: Any, client: str | None, user: str | None, status: int
) -> None:
    connect(ALICE, bind=False)
    admin = connect(ADMIN)
    with pytest.raises(srvs.DCERPCSessionError) as caught:
        srvs.hNetrSessionDel(admin.dce, _wstr(client), _wstr(user))
    assert status_of(caught.value) == status
    assert server.count("alice") == 1


def test_impacket_session_del_by_plain_user_is_access_denied(
    server: NetsessionServerProcess, connect: Any
) -> None:
    connect(ALICE, bind=False)
    bob = connect(BOB)
    with pytest.raises(DCERPCException) as caught:
        srvs.hNetrSessionDel(bob.dce, srvs.NULL, _wstr("alice"))
    assert status_of(caught.value) == NetApiStatus.ERROR_ACCESS_DENIED
    assert server.count("alice") == 1


# -- what `net view` / `smbclient -L` ask -------------------------------------------------------------------


def test_impacket_share_enum_and_server_info(connect: Any) -> None:
    alice = connect(ALICE)
    shares = srvs.hNetrShareEnum(alice.dce, 1)
    (ipc,) = shares["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]
    assert _s(ipc["shi1_netname"]) == "IPC$"
    assert ipc["shi1_type"] == srvs.STYPE_IPC | srvs.STYPE_SPECIAL
    info = srvs.hNetrServerGetInfo(alice.dce, 101)
    assert _s(info["InfoStruct"]["ServerInfo101"]["sv101_name"]) == "NSTEST"
    assert info["InfoStruct"]["ServerInfo101"]["sv101_platform_id"] == 500
