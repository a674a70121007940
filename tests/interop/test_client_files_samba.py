r"""Samba's smbd as the peer for the open-file, connection, share and server calls (what Debian's 4.17
answers; docs/peers.md has the table beside ours)."""

from __future__ import annotations

from typing import Any

import pytest
from samba import SambaServer

from netsession import lmshare, win32net
from netsession.errors import NetApiError

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"


def as_user(samba: SambaServer, name: str) -> None:
    import netsession

    user = samba.users[name]
    netsession.register_session(HOST, user.name, user.password, port=samba.port)


def status_of(call: Any) -> int:
    try:
        call()
    except NetApiError as exc:
        return exc.winerror
    return 0


def test_samba_lists_no_open_pipes_and_knows_only_file_level_3(samba: SambaServer) -> None:
    samba.hold_session(samba.users["alice"])
    as_user(samba, "nsadmin")
    # Our own \PIPE\srvsvc is open while it answers: Windows and netsession list it, smbd does not.
    assert win32net.NetFileEnum(3, HOST) == []
    assert status_of(lambda: win32net.NetFileEnum(2, HOST)) == 124  # ERROR_INVALID_LEVEL
    assert status_of(lambda: win32net.NetFileGetInfo(3, HOST, 1)) == 1745  # opnum 10 not implemented
    assert status_of(lambda: win32net.NetFileClose(HOST, 12345)) == 2  # ERROR_FILE_NOT_FOUND, not 2314


def test_samba_connections_are_placeholders(samba: SambaServer) -> None:
    samba.hold_session(samba.users["alice"])
    as_user(samba, "nsadmin")
    by_share = lmshare.NetConnectionEnum(HOST, "IPC$", 1).records
    assert len(by_share) == 2  # the two tree connects to IPC$ are counted...
    made_up = {(r.coni1_username, r.coni1_netname, r.coni1_time) for r in by_share}
    assert made_up == {("dummy_user", "IPC$", 3)}
    assert {r.coni1_id for r in by_share} == {2}  # ...but every entry is the same made-up one
    assert [r.coni0_id for r in lmshare.NetConnectionEnum(HOST, "IPC$", 0).records] == [1]
    (by_computer,) = lmshare.NetConnectionEnum(HOST, r"\\127.0.0.1", 1).records
    assert by_computer.coni1_username == "dummy_user"
    assert status_of(lambda: lmshare.NetConnectionEnum(HOST, "NOSUCH", 1)) == 123  # ERROR_INVALID_NAME


def test_samba_share_and_server_levels(samba: SambaServer) -> None:
    samba.hold_session(samba.users["alice"])
    as_user(samba, "nsadmin")
    shares, _total, _resume = win32net.NetShareEnum(HOST, 2)
    ipc = next(s for s in shares if s["netname"] == "IPC$")
    assert ipc["current_uses"] >= 2 and ipc["passwd"] == ""  # counted; an empty password, not NULL
    assert win32net.NetShareGetInfo(HOST, "IPC$", 501)["flags"] == 0
    info = win32net.NetServerGetInfo(HOST, 102)
    assert (info["version_major"], info["version_minor"], info["userpath"]) == (6, 1, "C:\\")
    assert status_of(lambda: win32net.NetServerGetInfo(HOST, 502)) == 124


def test_samba_refuses_files_and_connections_to_plain_users(samba: SambaServer) -> None:
    as_user(samba, "alice")
    assert status_of(lambda: win32net.NetFileEnum(3, HOST)) == 5
    assert status_of(lambda: lmshare.NetConnectionEnum(HOST, "IPC$", 1)) == 5
