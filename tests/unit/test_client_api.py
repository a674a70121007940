r"""The client API (netsession / win32net / lmshare) and what is under it: server-name forms, the
NetSessionGetInfo pre-checks, paging, filters and cnames, fault and transport error numbers, the
connection pool (reuse, one reconnect, credentials), and the Unix-socket transport.

Most tests run against our own srvsvc service through a real ServerAssociation in memory
(``srvsvc_loopback``); peers' quirks (Samba ignores filters and drops the ``\\``) are scripted."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvsvc_loopback import (
    ADMIN,
    PLAIN,
    SAMBA_ENTRIES,
    LoopbackTransport,
    ScriptedService,
    free_tcp_port,
    loopback_pool,
    samba_like,
    table_service,
)

import netsession
from netsession import lmshare, win32net
from netsession.client.names import Target, parse_server, same_client, unc_client
from netsession.client.pool import ConnectionPool, Credentials, credentials_from_env, set_pool
from netsession.client.rpc import SRVSVC_SYNTAX, SrvsvcClient, fault_to_winerror
from netsession.client.transport import SmbPipeTransport, TransportError, UnixSocketTransport
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NETPATH,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_MORE_DATA,
    RPC_S_PROCNUM_OUT_OF_RANGE,
    RPC_S_PROTOCOL_ERROR,
    RPC_S_SERVER_UNAVAILABLE,
    RPC_S_UNKNOWN_IF,
    RPC_X_BAD_STUB_DATA,
    NERR_ClientNameNotFound,
    NERR_InvalidComputer,
    NERR_UserNotFound,
    NetApiError,
)
from netsession.paths import local_srvsvc_socket, state_dir
from netsession.records import MAX_PREFERRED_LENGTH, SESSION_INFO_0, SESSION_INFO_1, SESSION_INFO_10
from netsession.server.srvsvc import CallContext, Reply
from netsession.table import AccessPolicy, SessionTable
from netsession.wire.dcerpc import Interface, RequestReceived, ServerAssociation, SyntaxId
from netsession.wire.srvsvc import (
    NetrSessionDelRequest,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

SERVER = r"\\fs1"


def make_table(n: int = 0, policy: AccessPolicy = AccessPolicy.CLASSIC) -> SessionTable:
    table = SessionTable(policy=policy, clock=lambda: 100.0)
    for i in range(n):
        table.add(f"10.0.{i // 250}.{i % 250 + 1}", f"user{i}", on_close=lambda s: s.remove())
    return table


@pytest.fixture
def use_pool() -> Iterator[Any]:
    """Install a loopback pool for the test; returns a function (service, caller, **opts) -> factory."""
    previous: list[ConnectionPool] = []

    def install(service: Any, caller: Any = None, **options: Any) -> Any:
        kwargs = {} if caller is None else {"caller": caller}
        pool, factory = loopback_pool(service, **kwargs, **options)
        previous.append(set_pool(pool))
        return factory

    yield install
    for p in reversed(previous):
        set_pool(p).close()


def requests_of(factory: Any, opnum: int = Opnum.NetrSessionEnum) -> list[Any]:
    decode = NetrSessionEnumRequest.decode if opnum == Opnum.NetrSessionEnum else NetrSessionDelRequest.decode
    return [decode(stub) for t in factory.made for op, stub in t.calls if op == opnum]


# -- server names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        (r"\\fs1", Target("fs1")),
        ("fs1", Target("fs1")),
        ("fs1.corp.example", Target("fs1.corp.example")),
        ("10.0.0.5", Target("10.0.0.5")),
        (r"\\10.0.0.5", Target("10.0.0.5")),
        ("[2001:db8::1]", Target("2001:db8::1")),
        (r"\\[2001:db8::1]", Target("2001:db8::1")),
        ("2001:db8::1", Target("2001:db8::1")),
        ("fs1:4455", Target("fs1", 4455)),
        ("10.0.0.5:4455", Target("10.0.0.5", 4455)),
        ("[::1]:4455", Target("::1", 4455)),
        (r"\\fs1:4455", Target("fs1", 4455)),
        ("  fs1 ", Target("fs1")),
    ],
)
def test_server_name_forms(text: str, target: Target) -> None:
    assert parse_server(text) == target


@pytest.mark.parametrize("text", [None, "", ".", r"\\.", r"\\"])
def test_server_none_empty_and_dot_are_the_local_computer(text: str | None) -> None:
    assert parse_server(text) is None


@pytest.mark.parametrize(
    "text",
    ["bad host", "[::1", "[not-v6]", "[::1]x", "fs1:0", "fs1:65536", "fs1:http", "a/b", "1:2:zz", ":445"],
)
def test_bad_server_names_are_NERR_InvalidComputer(text: str) -> None:
    with pytest.raises(NetApiError) as e:
        parse_server(text, "NetSessionEnum")
    assert e.value.winerror == NERR_InvalidComputer
    assert e.value.funcname == "NetSessionEnum"


def test_target_unc_brackets_ipv6() -> None:
    assert Target("fs1").unc == r"\\fs1"
    assert Target("2001:db8::1").unc == r"\\[2001:db8::1]"


@pytest.mark.parametrize(
    ("name", "unc"),
    [
        ("10.0.0.5", r"\\10.0.0.5"),
        (r"\\10.0.0.5", r"\\10.0.0.5"),
        ("WS01", r"\\WS01"),
        ("::1", r"\\[::1]"),
        (r"\\::1", r"\\[::1]"),
        (r"\\[::1]", r"\\[::1]"),
        (None, None),
        ("", None),
    ],
)
def test_client_names_take_windows_unc_form(name: str | None, unc: str | None) -> None:
    assert unc_client(name) == unc


def test_same_client_ignores_prefix_and_case() -> None:
    assert same_client("ws01", r"\\WS01")
    assert not same_client("ws01", "ws02")
    assert not same_client(None, "ws01")


# -- pywin32 shape -----------------------------------------------------------------------------------

# FACTS.md §2, written out again here so that a change in records.py cannot slip through.
FACTS_KEYS = {
    0: ["client_name"],
    1: ["client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags"],
    2: ["client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags", "client_type"],
    10: ["client_name", "user_name", "active_time", "idle_time"],
    502: [
        "client_name", "user_name", "num_opens", "active_time", "idle_time", "user_flags", "client_type",
        "transport",
    ],
}


@pytest.mark.parametrize("level", sorted(FACTS_KEYS))
def test_enum_dicts_have_exactly_the_pywin32_keys_of_facts_2(use_pool: Any, level: int) -> None:
    use_pool(table_service(make_table(3)))
    sessions = netsession.NetSessionEnum(level, SERVER)
    assert len(sessions) == 3
    for s in sessions:
        assert list(s) == FACTS_KEYS[level]
    assert sessions[0]["client_name"] == r"\\10.0.0.1"


def test_win32net_is_the_same_api_under_pywin32s_name(use_pool: Any) -> None:
    use_pool(table_service(make_table(2)))
    assert win32net.NetSessionEnum(10, SERVER) == netsession.NetSessionEnum(10, SERVER)
    assert win32net.error is NetApiError
    info = win32net.NetSessionGetInfo(10, SERVER, r"\\10.0.0.2", "user1")
    assert info == {"client_name": r"\\10.0.0.2", "user_name": "user1", "active_time": 0, "idle_time": 0}


def test_errors_are_shaped_like_pywintypes_error(use_pool: Any) -> None:
    use_pool(table_service(make_table(1)))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(3, SERVER)
    assert e.value.args == (ERROR_INVALID_LEVEL, "NetSessionEnum", "The system call level is not correct.")
    assert (e.value.winerror, e.value.funcname) == (ERROR_INVALID_LEVEL, "NetSessionEnum")


# -- paging ------------------------------------------------------------------------------------------


def test_lmshare_paging_with_a_tiny_prefmaxlen_sees_every_session_once(use_pool: Any) -> None:
    use_pool(table_service(make_table(40)))
    seen: list[str] = []
    resume: int | None = 0
    pages = 0
    while True:
        page = lmshare.NetSessionEnum(SERVER, None, None, 10, 120, resume)
        pages += 1
        assert page.entriesread == len(page.records) > 0
        assert page.totalentries == 40 - len(seen)
        seen += [r.sesi10_username for r in page.records]
        if not page.more_data:
            break
        assert page.resume_handle is not None and page.resume_handle != resume
        resume = page.resume_handle
    assert pages > 5
    assert seen == [f"user{i}" for i in range(40)]


def test_lmshare_returns_records_with_sesi_fields(use_pool: Any) -> None:
    use_pool(table_service(make_table(1)))
    page = lmshare.NetSessionEnum(SERVER, None, None, 1)
    assert page.records == [SESSION_INFO_1(r"\\10.0.0.1", "user0", 0, 0, 0, 0)]
    assert (page.entriesread, page.totalentries, page.more_data) == (1, 1, False)


def test_lmshare_resume_handle_none_sends_a_null_pointer(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)))
    page = lmshare.NetSessionEnum(SERVER, None, None, 0, MAX_PREFERRED_LENGTH, None)
    assert page.resume_handle is None
    assert requests_of(factory)[0].resume_handle is None


def test_lmshare_minus_one_prefmaxlen_means_max_preferred_length(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)))
    lmshare.NetSessionEnum(SERVER, None, None, 0, -1)
    assert requests_of(factory)[0].preferred_max_length == MAX_PREFERRED_LENGTH


@pytest.mark.parametrize("bad", [-2, 1 << 32, "10"])
def test_lmshare_dword_arguments_are_checked(use_pool: Any, bad: Any) -> None:
    factory = use_pool(table_service(make_table(1)))
    with pytest.raises(NetApiError) as e:
        lmshare.NetSessionEnum(SERVER, None, None, 10, bad)
    assert e.value.winerror == ERROR_INVALID_PARAMETER
    assert factory.made == []


def capped_service(table: SessionTable, budget: int) -> ScriptedService:
    """A server that never returns more than ``budget`` bytes a call, whatever the caller prefers."""

    def enum(stub: bytes) -> Reply:
        req = NetrSessionEnumRequest.decode(stub)
        r = table.enumerate(ADMIN, req.client_name, req.user_name, req.level, budget, req.resume_handle)
        return Reply(NetrSessionEnumResponse(r.level, list(r.entries), r.total_entries, r.resume_handle,
                                             r.status).encode())

    return ScriptedService({Opnum.NetrSessionEnum: enum})


def test_enum_pages_through_more_data_itself(use_pool: Any) -> None:
    factory = use_pool(capped_service(make_table(30), 200))
    sessions = netsession.NetSessionEnum(10, SERVER)
    assert [s["user_name"] for s in sessions] == [f"user{i}" for i in range(30)]
    requests = requests_of(factory)
    assert len(requests) > 3
    assert requests[0].resume_handle == 0
    assert all(r.preferred_max_length == MAX_PREFERRED_LENGTH for r in requests)


def test_enum_stops_when_the_server_says_more_without_moving_on(use_pool: Any) -> None:
    def stuck(stub: bytes) -> Reply:
        return Reply(NetrSessionEnumResponse(0, [SESSION_INFO_0(r"\\a")], 9, 7, ERROR_MORE_DATA).encode())

    factory = use_pool(ScriptedService({Opnum.NetrSessionEnum: stuck}))
    assert netsession.NetSessionEnum(0, SERVER) == [{"client_name": r"\\a"}, {"client_name": r"\\a"}]
    assert len(requests_of(factory)) == 2


def test_response_split_across_many_reads_and_fragments_is_reassembled(use_pool: Any) -> None:
    use_pool(table_service(make_table(300)), read_size=7, max_recv_frag=1432)
    sessions = netsession.NetSessionEnum(502, SERVER)
    assert len(sessions) == 300
    assert sessions[-1]["transport"] == "\\Device\\NetbiosSmb"


# -- peers' quirks (Samba) ---------------------------------------------------------------------------


def test_cname_without_the_unc_prefix_comes_back_with_it(use_pool: Any) -> None:
    use_pool(samba_like(SAMBA_ENTRIES))
    names = [s["client_name"] for s in netsession.NetSessionEnum(1, SERVER)]
    assert names == [r"\\127.0.0.1", r"\\10.0.0.7", r"\\[::1]"]
    records = lmshare.NetSessionEnum(SERVER, None, None, 1).records
    assert [r.sesi1_cname for r in records] == names


def test_client_filter_is_sent_in_unc_form(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(3)))
    sessions = netsession.NetSessionEnum(10, SERVER, "10.0.0.2")
    assert [s["user_name"] for s in sessions] == ["user1"]
    assert requests_of(factory)[0].client_name == r"\\10.0.0.2"


def test_filters_are_applied_when_the_server_ignores_them(use_pool: Any) -> None:
    use_pool(samba_like(SAMBA_ENTRIES))
    assert [s["user_name"] for s in netsession.NetSessionEnum(1, SERVER, username="ALICE")] == ["alice"]
    assert [s["user_name"] for s in netsession.NetSessionEnum(1, SERVER, client="10.0.0.7")] == ["alice"]
    assert netsession.NetSessionGetInfo(1, SERVER, r"\\::1", "bob")["active_time"] == 2


@pytest.mark.parametrize(
    ("client", "user", "status"),
    [
        (r"\\10.9.9.9", None, NERR_ClientNameNotFound),
        (None, "zed", NERR_UserNotFound),
        (r"\\10.0.0.7", "bob", NERR_UserNotFound),
        (r"\\10.9.9.9", "bob", NERR_ClientNameNotFound),
    ],
)
def test_filters_matching_nothing_give_windows_errors(
    use_pool: Any, client: str | None, user: str | None, status: int
) -> None:
    use_pool(samba_like(SAMBA_ENTRIES))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(1, SERVER, client, user)
    assert e.value.winerror == status


def test_filters_matching_nothing_on_windows_come_from_the_server(use_pool: Any) -> None:
    use_pool(table_service(make_table(2)))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER, username="zed")
    assert (e.value.winerror, e.value.funcname) == (NERR_UserNotFound, "NetSessionEnum")


# -- NetSessionGetInfo -------------------------------------------------------------------------------


def refusing_factory(*_: Any) -> Any:
    raise AssertionError("nothing may be sent")


@pytest.fixture
def no_connection() -> Iterator[None]:
    previous = set_pool(ConnectionPool(refusing_factory, environ={}))
    yield
    set_pool(previous)


@pytest.mark.parametrize("level", [3, 502, 101, -1])
def test_getinfo_level_is_checked_before_anything_is_sent(no_connection: None, level: int) -> None:
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionGetInfo(level, SERVER, r"\\10.0.0.1", "alice")
    assert (e.value.winerror, e.value.funcname) == (ERROR_INVALID_LEVEL, "NetSessionGetInfo")


@pytest.mark.parametrize(("client", "user"), [(None, "alice"), (r"\\ws", None), ("", "alice"), (r"\\ws", "")])
def test_getinfo_both_names_are_required_before_anything_is_sent(
    no_connection: None, client: Any, user: Any
) -> None:
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionGetInfo(10, SERVER, client, user)
    assert (e.value.winerror, e.value.funcname) == (ERROR_INVALID_PARAMETER, "NetSessionGetInfo")


def test_getinfo_checks_the_level_before_the_names_as_netapi32(no_connection: None) -> None:
    with pytest.raises(NetApiError) as e:
        lmshare.NetSessionGetInfo(SERVER, None, None, 502)  # type: ignore[arg-type]
    assert e.value.winerror == ERROR_INVALID_LEVEL


def test_getinfo_is_an_enum_with_both_filters_max_length_and_no_resume_handle(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(3)))
    info = lmshare.NetSessionGetInfo(SERVER, "10.0.0.3", "user2", 10)
    assert info == SESSION_INFO_10(r"\\10.0.0.3", "user2", 0, 0)
    (req,) = requests_of(factory)
    assert (req.client_name, req.user_name, req.level) == (r"\\10.0.0.3", "user2", 10)
    assert (req.preferred_max_length, req.resume_handle) == (MAX_PREFERRED_LENGTH, None)


def test_getinfo_of_no_session_is_NERR_ClientNameNotFound(use_pool: Any) -> None:
    use_pool(table_service(make_table(3)))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionGetInfo(10, SERVER, r"\\10.9.9.9", "user2")
    assert e.value.winerror == NERR_ClientNameNotFound


# -- NetSessionDel -----------------------------------------------------------------------------------


def test_del_needs_a_client_or_a_user_before_anything_is_sent(no_connection: None) -> None:
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionDel(SERVER, None, "")
    assert (e.value.winerror, e.value.funcname) == (ERROR_INVALID_PARAMETER, "NetSessionDel")


def test_del_ends_the_matching_sessions(use_pool: Any) -> None:
    table = make_table(3)
    factory = use_pool(table_service(table))
    netsession.NetSessionDel(SERVER, "10.0.0.2")
    assert [s.username for s in table] == ["user0", "user2"]
    (req,) = requests_of(factory, Opnum.NetrSessionDel)
    assert (req.client_name, req.user_name, req.server_name) == (r"\\10.0.0.2", None, r"\\fs1")


def test_del_status_raises_with_the_function_name(use_pool: Any) -> None:
    use_pool(table_service(make_table(1)), caller=PLAIN)
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionDel(SERVER, username="user0")
    assert (e.value.winerror, e.value.funcname) == (ERROR_ACCESS_DENIED, "NetSessionDel")


# -- faults and RPC errors ---------------------------------------------------------------------------


def test_access_denied_fault_is_NetApiError_5_as_on_windows(use_pool: Any) -> None:
    use_pool(table_service(make_table(1, AccessPolicy.HARDENED)), caller=PLAIN)
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER)
    assert (e.value.winerror, e.value.funcname) == (ERROR_ACCESS_DENIED, "NetSessionEnum")


def test_unknown_opnum_fault_is_RPC_S_PROCNUM_OUT_OF_RANGE() -> None:
    transport = LoopbackTransport(ScriptedService({Opnum.NetrSessionDel: lambda s: Reply(b"")}))
    transport.interfaces = (Interface(SRVSVC_SYNTAX, [13]),)
    client = SrvsvcClient(transport)
    client.connect()
    with pytest.raises(NetApiError) as e:
        client.session_enum(10)
    assert e.value.winerror == RPC_S_PROCNUM_OUT_OF_RANGE
    assert client.usable  # a fault leaves the association bound


def test_unknown_interface_at_bind_is_RPC_S_UNKNOWN_IF() -> None:
    other = SyntaxId.parse("12345778-1234-abcd-ef00-0123456789ac", 1, 0)  # samr, say
    transport = LoopbackTransport(table_service(), interfaces=(Interface(other, range(10)),))
    with pytest.raises(NetApiError) as e:
        SrvsvcClient(transport).connect()
    assert e.value.winerror == RPC_S_UNKNOWN_IF
    assert transport.closed == 1


@pytest.mark.parametrize(
    ("fault", "winerror"),
    [
        (5, ERROR_ACCESS_DENIED),
        (0x1C010002, RPC_S_PROCNUM_OUT_OF_RANGE),
        (0x1C010003, RPC_S_UNKNOWN_IF),
        (0x1C01000B, RPC_S_PROTOCOL_ERROR),
        (0x6F7, RPC_X_BAD_STUB_DATA),
        (0x1C000006, RPC_X_BAD_STUB_DATA),
        (1726, 1726),
    ],
)
def test_fault_statuses_map_to_windows_errors(fault: int, winerror: int) -> None:
    assert fault_to_winerror(fault) == winerror


def test_a_stub_that_does_not_decode_is_RPC_X_BAD_STUB_DATA(use_pool: Any) -> None:
    use_pool(ScriptedService({Opnum.NetrSessionEnum: lambda s: Reply(b"\x0a\x00\x00\x00")}))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER)
    assert (e.value.winerror, e.value.funcname) == (RPC_X_BAD_STUB_DATA, "NetSessionEnum")


def test_an_answer_at_another_level_is_RPC_X_BAD_STUB_DATA(use_pool: Any) -> None:
    wrong = NetrSessionEnumResponse(0, [SESSION_INFO_0(r"\\a")], 1, None, 0).encode()
    use_pool(ScriptedService({Opnum.NetrSessionEnum: lambda s: Reply(wrong)}))
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER)
    assert e.value.winerror == RPC_X_BAD_STUB_DATA


def test_a_broken_pdu_is_RPC_S_PROTOCOL_ERROR_and_ends_the_association() -> None:
    class Garbage(LoopbackTransport):
        def read(self) -> bytes:
            data = super().read()
            return data if self.opened and not self.calls else b"\x05\x00\x7f\x03" + bytes(12)

    transport = Garbage(table_service(make_table(1)))
    client = SrvsvcClient(transport)
    client.connect()
    with pytest.raises(NetApiError) as e:
        client.session_enum(10)
    assert e.value.winerror == RPC_S_PROTOCOL_ERROR
    assert not client.usable


# -- the connection pool -----------------------------------------------------------------------------


def test_connections_are_kept_and_reused(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)))
    netsession.NetSessionEnum(10, SERVER)
    netsession.NetSessionEnum(10, "FS1")
    netsession.NetSessionGetInfo(10, r"\\Fs1", r"\\10.0.0.1", "user0")
    assert len(factory.made) == 1
    assert factory.made[0].opened == 1


def test_a_broken_kept_connection_is_reestablished_once(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)))
    netsession.NetSessionEnum(10, SERVER)
    factory.made[0].broken = True
    assert len(netsession.NetSessionEnum(10, SERVER)) == 2
    assert len(factory.made) == 2
    assert factory.made[0].closed == 1


def test_an_answer_lost_on_a_kept_connection_is_asked_again_for_enum(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)))
    netsession.NetSessionEnum(10, SERVER)
    factory.made[0].drop_after_request = True
    assert len(netsession.NetSessionEnum(10, SERVER)) == 2
    assert len(requests_of(factory)) == 3


def test_del_is_not_repeated_when_the_request_may_have_arrived(use_pool: Any) -> None:
    table = make_table(2)
    factory = use_pool(table_service(table))
    netsession.NetSessionEnum(10, SERVER)
    factory.made[0].drop_after_request = True
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionDel(SERVER, username="user0")
    assert (e.value.winerror, e.value.funcname) == (RPC_S_SERVER_UNAVAILABLE, "NetSessionDel")
    assert "may have been ended" in e.value.strerror
    assert len(requests_of(factory, Opnum.NetrSessionDel)) == 1
    assert [s.username for s in table] == ["user1"]


def test_del_is_repeated_when_the_request_never_left(use_pool: Any) -> None:
    table = make_table(2)
    factory = use_pool(table_service(table))
    netsession.NetSessionEnum(10, SERVER)
    transport = factory.made[0]
    transport.alive = lambda: True  # type: ignore[method-assign]  # looks fine, fails on write
    transport.broken = True
    netsession.NetSessionDel(SERVER, username="user0")
    assert [s.username for s in table] == ["user1"]
    assert len(factory.made) == 2


def test_a_failing_new_connection_is_not_retried(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(2)), drop_after_request=True)
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER)
    assert e.value.winerror == RPC_S_SERVER_UNAVAILABLE
    assert len(factory.made) == 1


def test_connection_errors_carry_the_function_name(use_pool: Any) -> None:
    factory = use_pool(table_service())
    factory.options["broken"] = True
    with pytest.raises(NetApiError) as e:
        netsession.NetSessionEnum(10, SERVER)
    assert (e.value.winerror, e.value.funcname) == (RPC_S_SERVER_UNAVAILABLE, "NetSessionEnum")


def test_register_session_is_used_by_later_calls(use_pool: Any) -> None:
    factory = use_pool(table_service(make_table(1)))
    netsession.register_session(r"\\FS1", "CORP\\alice", "pw", port=4455, encrypt=True)
    netsession.NetSessionEnum(10, "fs1")
    target, creds, port, _ = factory.seen[-1]
    assert target == Target("fs1")
    got = (creds.username, creds.domain, creds.password, creds.encrypt, port)
    assert got == ("alice", "CORP", "pw", True, 4455)
    netsession.NetSessionEnum(10, "fs1:5555")  # a port in the name wins
    assert factory.seen[-1][2] == 5555
    netsession.register_session("fs1", "bob", nt_hash="0" * 32, domain="D2")
    netsession.NetSessionEnum(10, "fs1")
    _, creds, port, _ = factory.seen[-1]
    got = (creds.username, creds.domain, creds.password, creds.nt_hash, port)
    assert got == ("bob", "D2", None, "0" * 32, 445)


def test_register_session_refuses_a_bad_nt_hash_and_the_local_computer(use_pool: Any) -> None:
    use_pool(table_service())
    with pytest.raises(NetApiError) as e:
        netsession.register_session("fs1", "bob", nt_hash="xyz")
    assert e.value.winerror == ERROR_INVALID_PARAMETER
    with pytest.raises(NetApiError):
        netsession.register_session(".", "bob", "pw")


def test_credentials_from_the_environment() -> None:
    env = {
        "NETSESSION_USERNAME": "CORP/alice",
        "NETSESSION_PASSWORD": "pw",
        "NETSESSION_ENCRYPT": "yes",
        "NETSESSION_KERBEROS": "0",
    }
    assert credentials_from_env(env) == Credentials("alice", "pw", "CORP", None, True, "negotiate")
    kerberos = {"NETSESSION_USERNAME": "bob", "NETSESSION_DOMAIN": "D", "NETSESSION_KERBEROS": "1"}
    assert credentials_from_env(kerberos) == Credentials("bob", None, "D", auth_protocol="kerberos")
    assert credentials_from_env({}) == Credentials()


def test_unregistered_servers_use_the_environment_port_and_timeout() -> None:
    pool = ConnectionPool(refusing_factory, environ={"NETSESSION_PORT": "1445", "NETSESSION_TIMEOUT": "2.5",
                                                     "NETSESSION_USERNAME": "eve"})
    creds, port, timeout = pool.resolve(Target("fs9"))
    assert (creds.username, port, timeout) == ("eve", 1445, 2.5)
    assert pool.resolve(Target("fs9", 99))[1] == 99


def test_a_bad_environment_number_is_ERROR_INVALID_PARAMETER() -> None:
    pool = ConnectionPool(refusing_factory, environ={"NETSESSION_TIMEOUT": "soon"})
    with pytest.raises(NetApiError) as e:
        pool.run(SERVER, lambda c: None, funcname="NetSessionEnum", idempotent=True)
    assert (e.value.winerror, e.value.funcname) == (ERROR_INVALID_PARAMETER, "NetSessionEnum")


# -- transports --------------------------------------------------------------------------------------


def test_state_dir_precedence(tmp_path: Path) -> None:
    assert state_dir({"NETSESSION_STATE_DIR": str(tmp_path), "XDG_STATE_HOME": "/x"}) == tmp_path
    assert state_dir({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == Path("/x/netsession")
    assert state_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path("/h/.local/state/netsession")
    assert local_srvsvc_socket({"HOME": "/h"}) == Path("/h/.local/state/netsession/srvsvc.sock")


class UnixSrvsvcServer:
    """A tiny srvsvc server on a Unix socket: our ServerAssociation and SrvsvcService, one thread per
    connection, PDUs framed by their frag_length as the local netsession server does."""

    def __init__(self, path: Path, table: SessionTable) -> None:
        self.service = table_service(table)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen()
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        assoc = ServerAssociation([Interface(SRVSVC_SYNTAX, self.service.opnums)])
        with conn:
            while data := conn.recv(65536):
                for event in assoc.receive_data(data):
                    if isinstance(event, RequestReceived):
                        reply = self.service.call(CallContext(ADMIN, "local"), event.opnum, event.stub)
                        if reply.fault is None:
                            assoc.respond(event.call_id, reply.stub)
                        else:
                            assoc.fault(event.call_id, reply.fault)
                for pdu in assoc.data_to_send():
                    conn.sendall(pdu)

    def close(self) -> None:
        self.listener.close()


def test_the_local_computer_is_the_unix_socket_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETSESSION_STATE_DIR", str(tmp_path))
    server = UnixSrvsvcServer(tmp_path / "srvsvc.sock", make_table(500))
    previous = set_pool(ConnectionPool())
    try:
        sessions = netsession.NetSessionEnum(10)
        assert len(sessions) == 500
        assert netsession.NetSessionEnum(0, ".")[0] == {"client_name": r"\\10.0.0.1"}
        netsession.NetSessionDel(None, username="user7")
        assert len(netsession.NetSessionEnum(0, "")) == 499
        assert server.connections == 1
    finally:
        set_pool(previous).close()
        server.close()


def test_no_local_server_is_RPC_S_SERVER_UNAVAILABLE(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETSESSION_STATE_DIR", str(tmp_path))
    previous = set_pool(ConnectionPool())
    try:
        with pytest.raises(NetApiError) as e:
            netsession.NetSessionEnum(10)
        assert (e.value.winerror, e.value.funcname) == (RPC_S_SERVER_UNAVAILABLE, "NetSessionEnum")
        assert str(tmp_path / "srvsvc.sock") in e.value.strerror
    finally:
        set_pool(previous).close()


def test_unix_transport_alive_sees_the_server_hang_up(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    transport = UnixSocketTransport(path, timeout=2)
    transport.open()
    peer, _ = listener.accept()
    assert transport.alive()
    peer.close()
    assert not transport.alive()
    transport.close()
    listener.close()


def test_smb_connection_refused_is_ERROR_BAD_NETPATH() -> None:
    transport = SmbPipeTransport("127.0.0.1", free_tcp_port(), username="u", password="p", timeout=5)
    with pytest.raises(NetApiError) as e:
        transport.open()
    assert e.value.winerror == ERROR_BAD_NETPATH
    assert "refused" in e.value.strerror.lower()
    assert isinstance(e.value, TransportError) and e.value.reason == "unreachable"


def test_smb_unknown_host_is_ERROR_BAD_NETPATH() -> None:
    transport = SmbPipeTransport("no-such-host.invalid", 445, username="u", password="p", timeout=5)
    with pytest.raises(NetApiError) as e:
        transport.open()
    assert e.value.winerror == ERROR_BAD_NETPATH
    assert isinstance(e.value, TransportError) and e.value.reason == "unresolved"
