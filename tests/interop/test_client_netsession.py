r"""The client against the project's own server (`netsession serve`, started by the test with its own state
directory; see ``netsession_server.py``): over SMB through smbprotocol, and over the local Unix socket.
All levels, filters, paging with a tiny prefmaxlen through the lmshare API, GetInfo, Del, encryption,
and a hardened server's fault."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from netsession_server import ADMIN, ALICE, BOB, NetsessionServerProcess, missing_samba_clients

import netsession
from netsession import lmshare
from netsession.client.pool import ConnectionPool, set_pool
from netsession.errors import ERROR_ACCESS_DENIED, NERR_ClientNameNotFound, NERR_UserNotFound, NetApiError
from netsession.records import PYWIN32_KEYS, project, to_pywin32

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
CNAME = r"\\127.0.0.1"


def _server(
    tmp_path_factory: pytest.TempPathFactory, name: str, *options: str
) -> Iterator[NetsessionServerProcess]:
    reason = missing_samba_clients()
    if reason:
        pytest.skip(reason)
    server = NetsessionServerProcess(tmp_path_factory.mktemp(name), options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def classic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _server(tmp_path_factory, "client-classic")


@pytest.fixture(scope="module")
def hardened_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _server(tmp_path_factory, "client-hardened", "--policy", "hardened")


def _fresh(server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    server.reset()
    previous = set_pool(ConnectionPool())
    try:
        yield server
    finally:
        set_pool(previous).close()
        server.reset()


@pytest.fixture
def ours(classic_server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    yield from _fresh(classic_server)


@pytest.fixture
def hardened(hardened_server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    yield from _fresh(hardened_server)


def as_account(server: NetsessionServerProcess, account: object, **options: object) -> None:
    netsession.register_session(
        HOST, account.name, account.password, port=server.port, **options  # type: ignore[attr-defined,arg-type]
    )


@pytest.mark.parametrize("level", [0, 1, 2, 10, 502])
def test_every_level_matches_the_servers_table(ours: NetsessionServerProcess, level: int) -> None:
    ours.hold_smbclient(ALICE)
    ours.hold_smbclient(BOB)
    as_account(ours, ADMIN)
    sessions = netsession.NetSessionEnum(level, HOST)
    table = ours.sessions()
    assert len(table) == 3  # alice, bob, and this client
    assert [list(s) for s in sessions] == [list(PYWIN32_KEYS[level])] * 3
    # Times move on between the two questions; names, opens and flags do not.
    def stable(d: dict[str, object]) -> tuple[object, ...]:
        return tuple(v for k, v in d.items() if k not in ("active_time", "idle_time"))

    assert Counter(map(stable, sessions)) == Counter(stable(to_pywin32(project(s, level))) for s in table)


def test_filters_are_answered_by_the_server(ours: NetsessionServerProcess) -> None:
    ours.hold_smbclient(ALICE)
    ours.hold_smbclient(BOB)
    as_account(ours, ADMIN)
    assert [s["user_name"] for s in netsession.NetSessionEnum(10, HOST, username="bob")] == ["bob"]
    assert len(netsession.NetSessionEnum(10, HOST, client="127.0.0.1")) == 3
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, HOST, client=r"\\10.9.9.9")
    assert e.value.winerror == NERR_ClientNameNotFound
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, HOST, username="zed")
    assert e.value.winerror == NERR_UserNotFound


def test_paging_with_a_tiny_prefmaxlen_through_lmshare(ours: NetsessionServerProcess) -> None:
    for _ in range(3):
        ours.hold_smbclient(ALICE)
        ours.hold_smbclient(BOB)
    as_account(ours, ADMIN)
    seen: list[str] = []
    resume: int | None = 0
    pages = 0
    while True:
        page = lmshare.NetSessionEnum(HOST, None, None, 10, 80, resume)
        pages += 1
        assert page.totalentries == 7 - len(seen)
        seen += [r.sesi10_username for r in page.records]
        if not page.more_data:
            break
        resume = page.resume_handle
    assert pages >= 4
    assert Counter(seen) == Counter({"alice": 3, "bob": 3, "admin": 1})


@pytest.mark.parametrize("level", [0, 1, 2, 10])
def test_getinfo_every_level(ours: NetsessionServerProcess, level: int) -> None:
    ours.hold_smbclient(BOB)
    as_account(ours, ADMIN)
    info = netsession.NetSessionGetInfo(level, HOST, CNAME, "bob")
    assert list(info) == list(PYWIN32_KEYS[level])
    assert info["client_name"] == CNAME
    if level:
        assert info["user_name"] == "bob"


def test_del_ends_a_live_smbclient_session(ours: NetsessionServerProcess) -> None:
    held = ours.hold_smbclient(ALICE)
    ours.hold_smbclient(BOB)
    as_account(ours, ADMIN)
    netsession.NetSessionDel(HOST, username="alice")
    assert ours.count("alice") == 0
    assert ours.count("bob") == 1
    held.close()
    # The caller's own connection was not among the matches.
    assert {s["user_name"] for s in netsession.NetSessionEnum(10, HOST)} == {"admin", "bob"}


def test_an_answer_longer_than_the_transceive_buffer_is_read_on(
    ours: NetsessionServerProcess, small_pipe_reads: list[int]
) -> None:
    """STATUS_BUFFER_OVERFLOW on FSCTL_PIPE_TRANSCEIVE carries the first part; READs fetch the rest."""
    ours.hold_smbclient(ALICE)
    as_account(ours, ADMIN)
    reads = small_pipe_reads
    assert {s["user_name"] for s in netsession.NetSessionEnum(502, HOST)} == {"alice", "admin"}
    assert len(reads) >= 2 and max(reads) <= 64  # SMALL_PIPE_IO


def test_encrypted_connection(ours: NetsessionServerProcess) -> None:
    as_account(ours, ADMIN, encrypt=True)
    assert [s["user_name"] for s in netsession.NetSessionEnum(10, HOST)] == ["admin"]


def test_the_local_computer_over_the_unix_socket(
    ours: NetsessionServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours.hold_smbclient(ALICE)
    monkeypatch.setenv("NETSESSION_STATE_DIR", str(ours.state_dir))
    sessions = netsession.NetSessionEnum(502)
    assert [s["user_name"] for s in sessions] == ["alice"]
    netsession.NetSessionDel(None, username="alice")
    assert ours.count("alice") == 0


def test_a_hardened_servers_fault_is_ERROR_ACCESS_DENIED(hardened: NetsessionServerProcess) -> None:
    as_account(hardened, ALICE)
    for level in (0, 10):
        with pytest.raises(NetApiError) as e:
            netsession.NetSessionEnum(level, HOST)
        assert (e.value.winerror, e.value.funcname) == (ERROR_ACCESS_DENIED, "NetSessionEnum")
    as_account(hardened, ADMIN)
    assert len(netsession.NetSessionEnum(10, HOST)) == 1
