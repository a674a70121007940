r"""`netsession serve`: the session's neighbours come from the SMB layer, as sessions do. Real smbprotocol
clients open pipes and trees; NetrFileEnum / NetrFileGetInfo / NetrFileClose / NetrConnectionEnum and
the shares' current uses show exactly those, and NetrFileClose closes the open for real (the client's
next request on it gets STATUS_FILE_CLOSED)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from netsession_server import ADMIN, ALICE, LOOPBACK, OPERATOR, NetsessionServerProcess
from smbprotocol.exceptions import SMBResponseException
from test_server_smbprotocol import _factory

from netsession.errors import NetApiStatus
from netsession.records import CONNECTION_INFO_1, FILE_INFO_2, FILE_INFO_3, SESSION_INFO_502
from netsession.wire.srvsvc import (
    NetrConnectionEnumRequest,
    NetrConnectionEnumResponse,
    NetrFileCloseRequest,
    NetrFileCloseResponse,
    NetrFileEnumRequest,
    NetrFileEnumResponse,
    NetrFileGetInfoRequest,
    NetrFileGetInfoResponse,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    NetrShareGetInfoRequest,
    NetrShareGetInfoResponse,
)

pytestmark = pytest.mark.interop

STATUS_FILE_CLOSED = 0xC0000128
PIPE = "\\PIPE\\srvsvc"


@pytest.fixture
def smb(server: NetsessionServerProcess) -> Iterator[Any]:
    yield from _factory(server)


@pytest.fixture
def smb_encrypting(encrypting: NetsessionServerProcess) -> Iterator[Any]:
    yield from _factory(encrypting)


def file_enum(rpc: Any, level: int = 3, base: str | None = None, user: str | None = None) -> Any:
    return rpc.exchange(NetrFileEnumRequest(None, base, user, level), NetrFileEnumResponse)


def my_session(rpc: Any, user: str) -> SESSION_INFO_502:
    r = rpc.exchange(NetrSessionEnumRequest(None, None, user, 502), NetrSessionEnumResponse)
    (row,) = r.entries
    return row  # type: ignore[no-any-return]


def test_pipe_opens_are_the_file_list_and_each_sessions_num_opens(smb: Any) -> None:
    admin = smb(ADMIN)
    rpc = admin.srvsvc(transceive=True)
    admin.open_pipe()  # a second open of the pipe, on the same tree
    r = file_enum(rpc)
    assert r.status == NetApiStatus.NERR_Success
    assert [(e.fi3_pathname, e.fi3_username, e.fi3_num_locks) for e in r.entries] == [(PIPE, "admin", 0)] * 2
    assert all(isinstance(e, FILE_INFO_3) and e.fi3_permissions & 3 for e in r.entries)
    assert my_session(rpc, "admin").sesi502_num_opens == 2
    ids = [e.fi3_id for e in r.entries]
    assert file_enum(rpc, level=2).entries == [FILE_INFO_2(i) for i in ids]
    assert [e.fi3_username for e in file_enum(rpc, base="\\pipe").entries] == ["admin", "admin"]
    assert file_enum(rpc, user="alice").entries == []
    got = rpc.exchange(NetrFileGetInfoRequest(None, ids[1], 3), NetrFileGetInfoResponse, 3)
    assert (got.status, got.info) == (0, r.entries[1])


def test_file_close_closes_the_open_for_real(smb: Any) -> None:
    admin = smb(ADMIN)
    rpc = admin.srvsvc(transceive=True)
    victim = smb(ALICE)
    pipe = victim.open_pipe()
    (theirs,) = file_enum(rpc, user="alice").entries
    status = rpc.exchange(NetrFileCloseRequest(None, theirs.fi3_id), NetrFileCloseResponse).status
    assert status == NetApiStatus.NERR_Success
    with pytest.raises(SMBResponseException) as caught:
        pipe.write(b"\x05\x00", 0)
    assert caught.value.status == STATUS_FILE_CLOSED
    assert my_session(rpc, "alice").sesi502_num_opens == 0
    assert file_enum(rpc, user="alice").entries == []
    again = rpc.exchange(NetrFileCloseRequest(None, theirs.fi3_id), NetrFileCloseResponse).status
    assert again == NetApiStatus.NERR_FileIdNotFound
    missing = rpc.exchange(NetrFileGetInfoRequest(None, theirs.fi3_id, 3), NetrFileGetInfoResponse, 3)
    assert missing.status == NetApiStatus.ERROR_FILE_NOT_FOUND


def test_file_and_connection_enum_refuse_plain_users(smb: Any) -> None:
    rpc = smb(ALICE).srvsvc()
    assert file_enum(rpc).status == NetApiStatus.ERROR_ACCESS_DENIED
    r = rpc.exchange(NetrConnectionEnumRequest(None, "IPC$", 1), NetrConnectionEnumResponse)
    assert r.status == NetApiStatus.ERROR_ACCESS_DENIED
    close = rpc.exchange(NetrFileCloseRequest(None, 1), NetrFileCloseResponse).status
    assert close == NetApiStatus.ERROR_ACCESS_DENIED


def test_connection_enum_and_current_uses_count_tree_connects(smb: Any) -> None:
    oper = smb(OPERATOR)
    rpc = oper.srvsvc()
    other = smb(ALICE)
    other.ipc()
    by_share = rpc.exchange(NetrConnectionEnumRequest(None, "ipc$", 1), NetrConnectionEnumResponse)
    assert by_share.status == NetApiStatus.NERR_Success
    rows = sorted(by_share.entries, key=lambda e: e.coni1_username)
    assert [(e.coni1_username, e.coni1_netname, e.coni1_num_opens, e.coni1_num_users, e.coni1_type)
            for e in rows] == [("alice", LOOPBACK, 0, 1, 3), ("oper", LOOPBACK, 1, 1, 3)]
    by_client = rpc.exchange(
        NetrConnectionEnumRequest(None, f"\\\\{LOOPBACK}", 1), NetrConnectionEnumResponse
    )
    assert sorted(e.coni1_netname for e in by_client.entries) == ["IPC$", "IPC$"]
    assert all(isinstance(e, CONNECTION_INFO_1) for e in by_client.entries)
    info = rpc.exchange(NetrShareGetInfoRequest(None, "IPC$", 2), NetrShareGetInfoResponse, 2).info
    assert info.shi2_current_uses == 2
    missing = rpc.exchange(NetrConnectionEnumRequest(None, "C$", 1), NetrConnectionEnumResponse)
    assert missing.status == NetApiStatus.NERR_NetNameNotFound


def test_file_close_over_an_encrypted_session(smb_encrypting: Any) -> None:
    admin = smb_encrypting(ADMIN, require_encryption=True)
    rpc = admin.srvsvc(transceive=True)
    extra = admin.open_pipe()
    ids = [e.fi3_id for e in file_enum(rpc).entries]
    assert len(ids) == 2
    assert rpc.exchange(NetrFileCloseRequest(None, ids[1]), NetrFileCloseResponse).status == 0
    with pytest.raises(SMBResponseException) as caught:
        extra.read(0, 16)
    assert caught.value.status == STATUS_FILE_CLOSED
    assert my_session(rpc, "admin").sesi502_num_opens == 1
