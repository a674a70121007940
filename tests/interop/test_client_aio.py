"""netsession.aio and the engine's failure modes, against a real `netsession serve` (plain, --encrypt,
--allow-guest) and against sockets that misbehave on purpose: refused, unresolvable, silent, not SMB,
closing mid-answer. Each failure must come out as the documented exception and reason."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from netsession_server import ADMIN, ALICE, BOB, NetsessionServerProcess, free_port, missing_samba_clients

import netsession
from netsession import aio
from netsession.client.errors import DeadlineExpired, LogonError, TransportError
from netsession.client.pool import ConnectionPool, Credentials, set_pool
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NETPATH,
    ERROR_LOGON_FAILURE,
    NERR_ClientNameNotFound,
    NetApiError,
)

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"


def _start(
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _start(tmp_path_factory, "aio-plain")


@pytest.fixture(scope="module")
def encrypting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _start(tmp_path_factory, "aio-encrypt", "--encrypt")


@pytest.fixture(scope="module")
def guest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _start(tmp_path_factory, "aio-guest", "--allow-guest")


@pytest.fixture
def ours(server: NetsessionServerProcess) -> Iterator[NetsessionServerProcess]:
    server.reset()
    previous = set_pool(ConnectionPool())
    try:
        yield server
    finally:
        set_pool(previous).close()
        server.reset()


def creds(account: object) -> Credentials:
    return Credentials(account.name, account.password)  # type: ignore[attr-defined]


def where(server: NetsessionServerProcess) -> str:
    return f"{HOST}:{server.port}"


def test_aio_functions_give_what_the_sync_ones_give(ours: NetsessionServerProcess) -> None:
    ours.hold_smbclient(ALICE)
    ours.hold_smbclient(BOB)
    netsession.register_session(HOST, ADMIN.name, ADMIN.password, port=ours.port)
    sync = netsession.NetSessionEnum(10, HOST)
    got = asyncio.run(aio.NetSessionEnum(10, HOST))
    assert {s["user_name"] for s in got} == {s["user_name"] for s in sync} >= {"alice", "bob"}
    one = asyncio.run(aio.NetSessionGetInfo(10, HOST, r"\\127.0.0.1", "bob"))
    assert one["user_name"] == "bob"
    with pytest.raises(NetApiError) as e:
        asyncio.run(aio.NetSessionGetInfo(10, HOST, r"\\10.9.9.9", "bob"))
    assert e.value.winerror == NERR_ClientNameNotFound and e.value.funcname == "NetSessionGetInfo"


def test_connect_gives_the_raw_win32_page(ours: NetsessionServerProcess) -> None:
    ours.hold_smbclient(ALICE)

    async def main() -> aio.SessionEnumResult:
        async with aio.connect(where(ours), credentials=creds(ADMIN), timeout=10) as srv:
            return await srv.session_enum(10, prefmaxlen=aio.MAX_PREFERRED_LENGTH)

    page = asyncio.run(main())
    assert page.entriesread == len(page.records) == page.totalentries >= 2 and not page.more_data
    assert {r.sesi10_username for r in page.records} >= {"alice", "admin"}


def test_many_servers_at_once_with_gather(ours: NetsessionServerProcess) -> None:
    async def one(i: int) -> int:
        async with aio.connect(where(ours), credentials=creds(ADMIN), timeout=20) as srv:
            return len((await srv.session_enum(10)).records)

    async def main() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(20)))

    assert all(n >= 1 for n in asyncio.run(main()))


def test_bind_address_is_the_client_the_server_sees(ours: NetsessionServerProcess) -> None:
    from netsession.client.smb import SmbConnection
    from netsession.server.accounts import nt_hash
    from netsession.wire.ntlm_initiator import NtlmInitiator

    async def main() -> tuple[str | None, aio.SessionEnumResult]:
        deadline = asyncio.get_running_loop().time() + 10
        conn = await SmbConnection.connect(HOST, ours.port, bind_address="127.0.0.9", deadline=deadline)
        try:
            await conn.negotiate()
            await conn.logon(NtlmInitiator(ALICE.name, nt_hash=nt_hash(ALICE.password)))
            async with aio.connect(where(ours), credentials=creds(ADMIN), timeout=10) as srv:
                return conn.local_address, await srv.session_enum(10)
        finally:
            conn.close()

    local, page = asyncio.run(main())
    assert local == "127.0.0.9"
    assert ("\\\\127.0.0.9", "alice") in {(r.sesi10_cname, r.sesi10_username) for r in page.records}


def test_an_address_we_cannot_speak_from_is_one_clear_line(ours: NetsessionServerProcess) -> None:
    from netsession.client.smb import SmbConnection

    async def main() -> None:
        await SmbConnection.connect(HOST, ours.port, bind_address="192.0.2.1")  # TEST-NET-1: not ours

    with pytest.raises(TransportError) as e:
        asyncio.run(main())
    assert e.value.reason == "unreachable"
    assert "cannot connect from 192.0.2.1: Cannot assign requested address" in str(e.value)


def test_a_wrong_password_is_LogonError_with_the_status_name(ours: NetsessionServerProcess) -> None:
    async def main() -> None:
        await aio.connect(where(ours), credentials=Credentials("alice", "wrong"), timeout=10)

    with pytest.raises(LogonError) as e:
        asyncio.run(main())
    assert e.value.reason == "logon" and e.value.winerror == ERROR_LOGON_FAILURE
    assert e.value.status_name == "STATUS_LOGON_FAILURE"


def test_nt_hash_logon(ours: NetsessionServerProcess) -> None:
    from netsession.server.accounts import nt_hash

    key = nt_hash(ADMIN.password).hex()

    async def main() -> int:
        async with aio.connect(
            where(ours), credentials=Credentials(ADMIN.name, nt_hash=key), timeout=10
        ) as srv:
            return (await srv.session_enum(10)).entriesread

    assert asyncio.run(main()) >= 1


def test_encryption_demanded_by_the_server(encrypting: NetsessionServerProcess) -> None:
    async def main() -> int:
        async with aio.connect(where(encrypting), credentials=creds(ADMIN), timeout=10) as srv:
            assert srv.client.pipe.smb.conn.session.encrypt_data  # type: ignore[attr-defined]
            return (await srv.session_enum(10)).entriesread

    assert asyncio.run(main()) >= 1


def test_guest_and_anonymous_logons(guest_server: NetsessionServerProcess) -> None:
    """Both log on (the server admits them with --allow-guest); the call is then refused by the server's
    access policy with a stub status, a plain NetApiError — not a transport failure."""

    async def main(c: Credentials) -> tuple[bool, bool]:
        async with aio.connect(where(guest_server), credentials=c, timeout=10) as srv:
            session = srv.client.pipe.smb.conn.session  # type: ignore[attr-defined]
            try:
                await srv.session_enum(10)
            except TransportError:
                raise
            except NetApiError as exc:
                assert exc.winerror == ERROR_ACCESS_DENIED
            return session.is_guest, session.is_anonymous

    assert asyncio.run(main(Credentials(""))) == (False, True)  # anonymous (null session)
    assert asyncio.run(main(Credentials("nobody", "x", allow_guest=True))) == (True, False)
    with pytest.raises(TransportError) as e:  # guest not allowed: the logon fails (MS-SMB2 §3.2.5.3.1)
        asyncio.run(main(Credentials("nobody", "x")))
    assert e.value.reason == "protocol" and "guest" in e.value.detail


def test_unresolvable_name_is_reason_unresolved() -> None:
    with pytest.raises(TransportError) as e:
        asyncio.run(
            aio.connect("no-such-host.invalid", credentials=Credentials("a", "b"), timeout=10)._open()
        )
    assert e.value.reason == "unresolved" and e.value.winerror == ERROR_BAD_NETPATH


def test_refused_connection_is_reason_unreachable() -> None:
    with pytest.raises(TransportError) as e:
        asyncio.run(
            aio.connect(f"{HOST}:{free_port()}", credentials=Credentials("a", "b"), timeout=10)._open()
        )
    assert e.value.reason == "unreachable" and e.value.winerror == ERROR_BAD_NETPATH


class Misbehaving:
    """A TCP listener on loopback whose every connection gets ``behave(conn)`` on its own thread."""

    def __init__(self, behave: object) -> None:
        self.sock = socket.create_server((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.behave, args=(conn,), daemon=True).start()  # type: ignore[arg-type]

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def _silent(conn: socket.socket) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def test_a_server_that_never_answers_hits_the_deadline() -> None:
    """The deadline fires at its time: after ``timeout`` and well before a generous bound."""
    server = Misbehaving(_silent)
    timeout = 0.5
    try:
        start = time.monotonic()
        with pytest.raises(DeadlineExpired) as e:
            asyncio.run(
                aio.connect(
                    f"{HOST}:{server.port}", credentials=Credentials("a", "b"), timeout=timeout
                )._open()
            )
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert e.value.reason == "timeout" and e.value.winerror == ERROR_BAD_NETPATH
    assert timeout <= elapsed < timeout + 2.0


def test_the_deadline_covers_the_whole_call_not_each_step(ours: NetsessionServerProcess) -> None:
    """One deadline: a deadline already past fails at once, before anything is sent."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await aio.connect(where(ours), credentials=creds(ADMIN), deadline=loop.time() - 1)._open()

    with pytest.raises(DeadlineExpired):
        asyncio.run(main())


def _http(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_a_server_that_is_not_smb_is_reason_protocol() -> None:
    server = Misbehaving(_http)
    try:
        with pytest.raises(TransportError) as e:
            asyncio.run(
                aio.connect(f"{HOST}:{server.port}", credentials=Credentials("a", "b"), timeout=5)._open()
            )
    finally:
        server.close()
    assert e.value.reason == "protocol"


def _half_answer(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"\x00\x00\x01\x00\xfeSMB" + bytes(20))  # announces 256 bytes, sends 24, hangs up
    conn.close()


def test_a_server_closing_mid_answer_is_reason_closed() -> None:
    server = Misbehaving(_half_answer)
    try:
        with pytest.raises(TransportError) as e:
            asyncio.run(
                aio.connect(f"{HOST}:{server.port}", credentials=Credentials("a", "b"), timeout=5)._open()
            )
    finally:
        server.close()
    assert e.value.reason == "closed" and e.value.delivered


def test_no_password_and_no_ticket_is_one_clear_line(ours: NetsessionServerProcess) -> None:
    with pytest.raises(TransportError) as e:
        asyncio.run(aio.connect(where(ours), credentials=Credentials("alice"), timeout=5)._open())
    assert e.value.reason in ("credentials", "unsupported")
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    yield from _start(tmp_path_factory, "aio-capped", "--max-sessions-per-account", "2")


def test_serve_max_sessions_per_account_refuses_the_next_logon(capped: NetsessionServerProcess) -> None:
    from netsession.client.errors import NtStatusError

    async def main() -> None:
        held = [await aio.connect(where(capped), credentials=creds(ALICE), timeout=10) for _ in range(2)]
        try:
            with pytest.raises(NtStatusError) as e:
                await aio.connect(where(capped), credentials=creds(ALICE), timeout=10)
            assert e.value.status_name == "STATUS_INSUFFICIENT_RESOURCES"
            async with aio.connect(where(capped), credentials=creds(BOB), timeout=10) as other:
                assert (await other.session_enum(10)).entriesread >= 0  # another account still logs on
        finally:
            for server in held:
                server.close()

    asyncio.run(main())
