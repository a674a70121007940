r"""The client's open-file, connection, share and server calls against `netsession serve`, in pywin32's
shapes (``win32net.NetFileEnum`` / ``NetFileGetInfo`` / ``NetFileClose``, ``NetShareEnum`` /
``NetShareGetInfo``, ``NetServerGetInfo``) and Win32's (``lmshare.NetFileEnum`` with paging,
``lmshare.NetConnectionEnum``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from netsession_server import ADMIN, ALICE, NetsessionServerProcess
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect
from test_client_netsession import HOST, _fresh, _server, as_account

from netsession import lmshare, win32net
from netsession.errors import ERROR_ACCESS_DENIED, NERR_FileIdNotFound, NetApiError
from netsession.records import FILE_PYWIN32_KEYS

pytestmark = pytest.mark.interop

PIPE = "\\PIPE\\srvsvc"
STATUS_FILE_CLOSED = 0xC0000128


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _server(tmp_path_factory, "client-files")


@pytest.fixture
def ours(files_server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    yield from _fresh(files_server)


@pytest.fixture
def alice_pipe(ours: NetsessionServerProcess) -> Iterator[Open]:
    """Alice holding an open of \\PIPE\\srvsvc (smbprotocol, an independent client)."""
    connection = Connection(uuid.uuid4(), HOST, ours.port, require_signing=True)
    connection.connect(timeout=10)
    session = Session(connection, ALICE.name, ALICE.password, auth_protocol="ntlm")
    session.connect()
    tree = TreeConnect(session, rf"\\{HOST}\IPC$")
    tree.connect()
    pipe = Open(tree, "srvsvc")
    pipe.create(
        ImpersonationLevel.Impersonation,
        FilePipePrinterAccessMask.FILE_READ_DATA | FilePipePrinterAccessMask.FILE_WRITE_DATA,
        0, ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE, CreateDisposition.FILE_OPEN,
        CreateOptions.FILE_NON_DIRECTORY_FILE,
    )
    yield pipe
    try:
        connection.disconnect(close=True, timeout=5)
    except Exception:
        connection.disconnect(close=False)


def test_win32net_file_enum_has_pywin32s_keys_and_sees_every_pipe(
    ours: NetsessionServerProcess, alice_pipe: Open
) -> None:
    as_account(ours, ADMIN)
    files = win32net.NetFileEnum(3, HOST)
    assert all(list(f) == list(FILE_PYWIN32_KEYS[3]) for f in files)
    assert sorted(f["user_name"] for f in files) == ["admin", "alice"]  # our own pipe too
    assert {f["path_name"] for f in files} == {PIPE}
    (alice,) = win32net.NetFileEnum(3, HOST, None, "alice")
    assert win32net.NetFileGetInfo(3, HOST, alice["id"]) == alice
    assert win32net.NetFileGetInfo(2, HOST, alice["id"]) == {"id": alice["id"]}
    assert win32net.NetFileEnum(2, HOST, "\\PIPE") == [{"id": f["id"]} for f in files]


def test_win32net_file_close_ends_the_open(ours: NetsessionServerProcess, alice_pipe: Open) -> None:
    as_account(ours, ADMIN)
    (alice,) = win32net.NetFileEnum(3, HOST, None, "alice")
    win32net.NetFileClose(HOST, alice["id"])
    with pytest.raises(SMBResponseException) as caught:
        alice_pipe.write(b"\x05\x00", 0)
    assert caught.value.status == STATUS_FILE_CLOSED
    with pytest.raises(NetApiError) as e:
        win32net.NetFileClose(HOST, alice["id"])
    assert e.value.winerror == NERR_FileIdNotFound and e.value.funcname == "NetFileClose"


def test_lmshare_file_enum_pages_with_a_tiny_prefmaxlen(
    ours: NetsessionServerProcess, alice_pipe: Open
) -> None:
    as_account(ours, ADMIN)
    seen: list[str] = []
    resume: int | None = 0
    while True:
        page = lmshare.NetFileEnum(HOST, None, None, 3, 90, resume)
        assert page.entriesread == 1 and page.totalentries == 2 - len(seen)
        seen += [r.fi3_username for r in page.records]
        if not page.more_data:
            break
        resume = page.resume_handle
    assert sorted(seen) == ["admin", "alice"]


def test_lmshare_connection_enum_by_share_and_by_computer(ours: NetsessionServerProcess) -> None:
    ours.hold_smbclient(ALICE)
    as_account(ours, ADMIN)
    by_share = lmshare.NetConnectionEnum(HOST, "IPC$", 1)
    assert sorted(r.coni1_username for r in by_share.records) == ["admin", "alice"]
    assert {r.coni1_netname for r in by_share.records} == {HOST}
    by_computer = lmshare.NetConnectionEnum(HOST, rf"\\{HOST}", 1)
    assert {r.coni1_netname for r in by_computer.records} == {"IPC$"}
    with pytest.raises(NetApiError):
        lmshare.NetConnectionEnum(HOST, "", 1)


def test_plain_users_are_refused_open_files(ours: NetsessionServerProcess) -> None:
    as_account(ours, ALICE)
    with pytest.raises(NetApiError) as e:
        win32net.NetFileEnum(3, HOST)
    assert e.value.winerror == ERROR_ACCESS_DENIED and e.value.funcname == "NetFileEnum"


def test_win32net_share_and_server_info_have_pywin32s_keys(ours: NetsessionServerProcess) -> None:
    as_account(ours, ADMIN)
    shares, total, resume = win32net.NetShareEnum(HOST, 2)
    assert (total, resume) == (1, 0)
    assert shares[0]["netname"] == "IPC$" and shares[0]["current_uses"] >= 1
    assert list(shares[0]) == ["netname", "type", "remark", "permissions", "max_uses", "current_uses", "path",
                               "passwd"]
    assert win32net.NetShareGetInfo(HOST, "ipc$", 501) == {
        "netname": "IPC$", "type": 0x80000003, "remark": "Remote IPC", "flags": 0
    }
    info = win32net.NetServerGetInfo(HOST, 101)
    assert list(info) == ["platform_id", "name", "version_major", "version_minor", "type", "comment"]
    assert (info["platform_id"], info["name"]) == (500, "NSTEST")


def _cli(ours: NetsessionServerProcess, *argv: str) -> int:
    from netsession.cli import main

    return main([*argv[:2], HOST, *argv[2:], "--port", str(ours.port), "-U", ADMIN.credentials])


def test_command_files_list_and_close(
    ours: NetsessionServerProcess, alice_pipe: Open, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(ours, "files", "list", "--user", "alice", "--format", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["path_name"], row["user_name"]) == (PIPE, "alice")
    assert _cli(ours, "files", "list") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["ID", "Path", "User", "name", "#", "Locks"]
    assert _cli(ours, "files", "list", "--format", "csv", "--level", "2") == 0
    assert capsys.readouterr().out.splitlines()[0] == "id"
    assert _cli(ours, "files", "close", str(row["id"])) == 0
    with pytest.raises(SMBResponseException):
        alice_pipe.write(b"\x05\x00", 0)
    assert _cli(ours, "files", "close", str(row["id"])) != 0
    assert "NERR_FileIdNotFound (2314)" in capsys.readouterr().err


def test_command_connections(ours: NetsessionServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    ours.hold_smbclient(ALICE)
    assert _cli(ours, "connections") == 0  # SERVER, then the default qualifier IPC$
    out = capsys.readouterr().out
    assert "alice" in out and "Net name" in out


def test_aio_counterparts(ours: NetsessionServerProcess, alice_pipe: Open) -> None:
    import asyncio

    from netsession import aio

    as_account(ours, ADMIN)

    async def run() -> None:
        files = await aio.NetFileEnum(3, HOST)
        assert sorted(f["user_name"] for f in files) == ["admin", "alice"]
        (alice,) = await aio.NetFileEnum(3, HOST, "\\PIPE", "alice")
        assert await aio.NetFileGetInfo(2, HOST, alice["id"]) == {"id": alice["id"]}
        trees = await aio.NetConnectionEnum(HOST, "IPC$", 1)
        assert sorted(t.coni1_username for t in trees) == ["admin", "alice"]
        await aio.NetFileClose(HOST, alice["id"])
        with pytest.raises(NetApiError) as e:
            await aio.NetFileClose(HOST, alice["id"])
        assert e.value.winerror == NERR_FileIdNotFound

    asyncio.run(run())
    with pytest.raises(SMBResponseException):
        alice_pipe.write(b"\x05\x00", 0)
