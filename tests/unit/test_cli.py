"""The `netsession` command: argument parsing, output formats, confirmation, credentials from the
options, one-line errors (never a traceback), and the hook for other modules' subcommands."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvsvc_loopback import PLAIN, SAMBA_ENTRIES, free_tcp_port, loopback_pool, samba_like, table_service

from netsession import cli
from netsession.client.pool import ConnectionPool, set_pool
from netsession.records import SESSION_INFO_1
from netsession.table import AccessPolicy, SessionTable
from netsession.wire.srvsvc import NetrSessionDelRequest, NetrSessionEnumRequest, Opnum


def make_table(policy: AccessPolicy = AccessPolicy.CLASSIC) -> SessionTable:
    now = [0.0]
    table = SessionTable(policy=policy, clock=lambda: now[0])
    a = table.add("10.0.0.5", "alice", on_close=lambda s: s.remove())
    b = table.add("10.0.0.6", "bob", cltype_name="Windows 10", on_close=lambda s: s.remove())
    table.add("10.0.0.7", "bob", on_close=lambda s: s.remove())
    a.open("\\PIPE\\srvsvc")
    a.open("\\PIPE\\srvsvc")
    now[0] = 3725.0
    b.touch()
    return table


@pytest.fixture
def pool() -> Iterator[Any]:
    installed: list[ConnectionPool] = []

    def install(service: Any, caller: Any = None) -> Any:
        kwargs = {} if caller is None else {"caller": caller}
        p, factory = loopback_pool(service, **kwargs)
        installed.append(set_pool(p))
        return factory

    yield install
    for previous in reversed(installed):
        set_pool(previous).close()


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "", tty: bool = False,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    mp = monkeypatch or pytest.MonkeyPatch()
    mp.setattr(sys, "stdin", FakeStdin(stdin, tty))
    try:
        status = cli.main(argv)
    finally:
        if monkeypatch is None:
            mp.undo()
    out, err = capsys.readouterr()
    return status, out, err


def enum_requests(factory: Any) -> list[Any]:
    return [NetrSessionEnumRequest.decode(s) for t in factory.made for op, s in t.calls
            if op == Opnum.NetrSessionEnum]


def del_requests(factory: Any) -> list[Any]:
    return [NetrSessionDelRequest.decode(s) for t in factory.made for op, s in t.calls
            if op == Opnum.NetrSessionDel]


# -- parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["info", "--help"], ["delete", "--help"]])
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    assert "usage: netsession" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [[], ["list", "--level", "3"], ["info", "fs1", "ws"], ["info", "fs1", "ws", "u", "--level", "502"],
     ["list", "--format", "xml"], ["delete"], ["frobnicate"]],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2


def test_options_are_not_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["list", "--form", "json"])


@pytest.mark.parametrize(("seconds", "text"), [(0, "00:00:00"), (59, "00:00:59"), (3661, "01:01:01"),
                                               (90000, "25:00:00")])
def test_idle_time_is_hh_mm_ss(seconds: int, text: str) -> None:
    assert cli.hms(seconds) == text


# -- list ---------------------------------------------------------------------------------------------


def test_list_table_shows_the_net_session_columns(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    status, out, err = run(["list", r"\\fs1"], capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["Computer", "User", "name", "Client", "type", "Opens", "Idle", "time"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == [r"\\10.0.0.5", "alice", "2", "01:02:05"]
    assert lines[3].split() == [r"\\10.0.0.6", "bob", "Windows", "10", "0", "00:00:00"]
    assert len(lines) == 5
    assert enum_requests(factory)[0].level == 2  # the richest level first


def test_list_json_carries_every_field_under_pywin32_keys(
    pool: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pool(table_service(make_table()))
    status, out, _ = run(["list", "fs1", "--level", "502", "--format", "json"], capsys)
    data = json.loads(out)
    assert status == 0
    assert data[0] == {
        "client_name": r"\\10.0.0.5", "user_name": "alice", "num_opens": 2, "active_time": 3725,
        "idle_time": 3725, "user_flags": 0, "client_type": "", "transport": "\\Device\\NetbiosSmb",
    }


def test_list_csv_has_a_header_of_pywin32_keys(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    status, out, _ = run(["list", "fs1", "--level", "10", "--format", "csv", "--user", "bob"], capsys)
    assert status == 0
    assert out.splitlines() == [
        "client_name,user_name,active_time,idle_time",
        r"\\10.0.0.6,bob,3725,0",
        r"\\10.0.0.7,bob,3725,3725",
    ]


def test_list_filters_are_sent(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    run(["list", "fs1", "--client", "10.0.0.6", "--user", "bob", "--level", "10"], capsys)
    req = enum_requests(factory)[0]
    assert (req.client_name, req.user_name) == (r"\\10.0.0.6", "bob")


def test_list_steps_down_to_a_level_the_server_serves(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(samba_like(SAMBA_ENTRIES, level=1))
    status, out, _ = run(["list", "fs1", "--format", "json"], capsys)
    assert status == 0
    assert [r.level for r in enum_requests(factory)] == [2, 1]
    assert list(json.loads(out)[0]) == ["client_name", "user_name", "num_opens", "active_time", "idle_time",
                                        "user_flags"]


def test_list_an_explicit_level_does_not_step_down(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(samba_like(SAMBA_ENTRIES, level=1))
    status, out, err = run(["list", "fs1", "--level", "10"], capsys)
    assert (status, out) == (1, "")
    assert err == "ERROR_INVALID_LEVEL (124): The system call level is not correct.\n"


def test_list_refused_at_every_level_reports_access_denied(
    pool: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = pool(table_service(make_table(AccessPolicy.HARDENED)), PLAIN)
    status, out, err = run(["list", "fs1"], capsys)
    assert (status, out) == (1, "")
    assert err == "ERROR_ACCESS_DENIED (5): Access is denied.\n"
    assert [r.level for r in enum_requests(factory)] == [2, 1, 10]


def test_list_of_nothing_says_so(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(SessionTable()))
    status, out, _ = run(["list", "fs1"], capsys)
    assert (status, out) == (0, "There are no entries in the list.\n")


def test_list_without_server_is_the_local_computer(
    pool: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = pool(table_service(make_table()))
    run(["list", "--level", "0"], capsys)
    run(["list", ".", "--level", "0"], capsys)
    assert [seen[0] for seen in factory.seen] == [None]  # one connection, to the local computer
    assert enum_requests(factory)[0].server_name is None


# -- info ---------------------------------------------------------------------------------------------


def test_info_shows_one_session(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    status, out, _ = run(["info", "fs1", "10.0.0.5", "alice"], capsys)
    assert status == 0
    fields = [line.partition("  ") for line in out.splitlines()]
    assert {k.strip(): v.strip() for k, _, v in fields} == {
        "Computer": r"\\10.0.0.5", "User name": "alice", "Opens": "2", "Active time": "01:02:05",
        "Idle time": "01:02:05", "Guest logon": "No", "Client type": "",
    }


def test_info_json_and_its_error(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    status, out, _ = run(["info", "fs1", r"\\10.0.0.6", "bob", "--level", "10", "--format", "json"], capsys)
    assert (status, json.loads(out)) == (0, {"client_name": r"\\10.0.0.6", "user_name": "bob",
                                             "active_time": 3725, "idle_time": 0})
    status, out, err = run(["info", "fs1", r"\\10.9.9.9", "bob"], capsys)
    assert (status, out) == (1, "")
    assert err == "NERR_ClientNameNotFound (2312): A session does not exist with that computer name.\n"


# -- delete -------------------------------------------------------------------------------------------


def test_delete_needs_a_client_or_a_user(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    status, _, err = run(["delete", "fs1"], capsys)
    assert status == 2
    assert err.startswith("netsession: delete needs --client and/or --user")
    assert factory.made == []


def test_delete_of_one_session_does_not_ask(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table()
    pool(table_service(table))
    status, out, err = run(["delete", "fs1", "--user", "alice"], capsys)
    assert (status, out, err) == (0, "The command completed successfully.\n", "")
    assert [s.username for s in table] == ["bob", "bob"]


def test_delete_asks_before_ending_more_than_one_session(
    pool: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = make_table()
    factory = pool(table_service(table))
    argv = ["delete", "fs1", "--user", "bob"]
    status, out, err = run(argv, capsys, stdin="n\n", tty=True, monkeypatch=monkeypatch)
    assert (status, out) == (1, "")
    assert "Delete 2 sessions on fs1" in err and "[y/N]" in err
    assert err.endswith("netsession: nothing deleted\n")
    assert len(table) == 3 and del_requests(factory) == []
    status, _, _ = run(argv, capsys, stdin="y\n", tty=True, monkeypatch=monkeypatch)
    assert status == 0
    assert [s.username for s in table] == ["alice"]


def test_delete_without_a_terminal_needs_yes(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table()
    pool(table_service(table))
    status, _, err = run(["delete", "fs1", "--user", "bob"], capsys, stdin="y\n", tty=False)
    assert status == 2
    assert "add --yes" in err
    assert len(table) == 3


def test_delete_yes_does_not_count_first(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table = make_table()
    factory = pool(table_service(table))
    status, _, _ = run(["delete", "fs1", "--user", "bob", "--yes"], capsys)
    assert status == 0
    assert enum_requests(factory) == [] and len(del_requests(factory)) == 1
    assert len(table) == 1


def test_delete_of_nothing_reports_the_servers_answer(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    status, _, err = run(["delete", "fs1", "--client", r"\\10.9.9.9"], capsys)
    assert status == 1
    assert err == "NERR_ClientNameNotFound (2312): A session does not exist with that computer name.\n"
    assert len(del_requests(factory)) == 1


def test_delete_when_counting_is_refused_still_asks(
    pool: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = make_table(AccessPolicy.HARDENED)
    pool(table_service(table), PLAIN)
    argv = ["delete", "fs1", "--user", "bob"]
    status, _, err = run(argv, capsys, stdin="n\n", tty=True, monkeypatch=monkeypatch)
    assert status == 1
    assert "Could not count the sessions (ERROR_ACCESS_DENIED)" in err


# -- connection options -------------------------------------------------------------------------------


def creds_used(factory: Any) -> tuple[Any, ...]:
    _, c, port, _ = factory.seen[-1]
    return (c.username, c.domain, c.password, c.nt_hash, c.encrypt, c.auth_protocol, port)


def test_U_takes_domain_user_and_password(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    run(["list", "fs1", "-U", "CORP/alice%s3cr%t", "--port", "4455", "--encrypt"], capsys)
    assert creds_used(factory) == ("alice", "CORP", "s3cr%t", None, True, "negotiate", 4455)


def test_password_stdin(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    run(["list", "fs2", "-U", "CORP\\bob", "--password-stdin"], capsys, stdin="pw from stdin\nrest\n")
    assert creds_used(factory) == ("bob", "CORP", "pw from stdin", None, False, "negotiate", 445)


def test_password_is_asked_for_on_a_terminal(
    pool: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = pool(table_service(make_table()))
    monkeypatch.delenv("NETSESSION_PASSWORD", raising=False)
    asked: list[str] = []
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed")
    run(["list", "fs3", "-U", "carol"], capsys, tty=True, monkeypatch=monkeypatch)
    assert asked == ["Password for [carol]: "]
    assert creds_used(factory)[:3] == ("carol", None, "typed")


def test_no_terminal_no_password_leaves_it_to_kerberos(
    pool: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = pool(table_service(make_table()))
    monkeypatch.delenv("NETSESSION_PASSWORD", raising=False)
    monkeypatch.delenv("NETSESSION_NT_HASH", raising=False)
    run(["list", "fs4", "-U", "dave"], capsys)
    assert creds_used(factory)[:3] == ("dave", None, None)
    run(["list", "fs5", "-U", "dave", "--kerberos"], capsys)
    assert creds_used(factory)[5] == "kerberos"


def test_pw_nt_hash(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    factory = pool(table_service(make_table()))
    nt = "8846F7EAEE8FB117AD06BDD830B7586C"
    run(["list", "fs6", "-U", f"erin%{nt}", "--pw-nt-hash"], capsys)
    assert creds_used(factory)[:4] == ("erin", None, None, nt)
    status, _, err = run(["list", "fs7", "-U", "erin%nothex", "--pw-nt-hash"], capsys)
    assert status == 2 and err.startswith("netsession: --pw-nt-hash: The NT hash must be")


def test_bad_port_is_a_usage_error(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    with pytest.raises(SystemExit) as e:
        run(["list", "fs1", "--port", "0"], capsys)
    assert e.value.code == 2
    assert "argument --port: '0' is not a TCP port" in capsys.readouterr().err


# -- extensions ---------------------------------------------------------------------------------------


def test_other_modules_can_add_subcommands(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("netsession_test_extension")

    def register(subparsers: Any) -> None:
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--status", type=int, default=7)
        p.set_defaults(func=lambda args: args.status)

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "netsession_test_extension", module)
    monkeypatch.setattr(cli, "EXTENSION_MODULES", ("netsession_test_extension", "netsession_no_such_module"))
    assert cli.main(["hello"]) == 7
    assert cli.main(["hello", "--status", "0"]) == 0


def test_extension_handlers_and_their_command_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("netsession_test_extension2")

    class CommandError(Exception):
        pass

    def fail(args: Any) -> int:
        raise CommandError("no account store here")

    def register(subparsers: Any) -> None:
        subparsers.add_parser("ok").set_defaults(handler=lambda args: 0)
        subparsers.add_parser("broken").set_defaults(handler=fail)

    module.register = register  # type: ignore[attr-defined]
    module.CommandError = CommandError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "netsession_test_extension2", module)
    monkeypatch.setattr(cli, "EXTENSION_MODULES", ("netsession_test_extension2",))
    monkeypatch.setattr(cli, "_extension_errors", [])
    assert cli.main(["ok"]) == 0
    assert cli.main(["broken"]) == 2
    assert capsys.readouterr().err == "netsession: no account store here\n"


# -- real processes: one line on stderr, never a traceback --------------------------------------------


def netsession(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netsession.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "status", "start"),
    [
        (["list", "bad host"], 1, "NERR_InvalidComputer (2351): "),
        (["list", "[::1"], 1, "NERR_InvalidComputer (2351): "),
        (["info", "fs1", "ws", "u", "--level", "3"], 2, "netsession info: argument --level: invalid choice"),
        (["delete", "fs1"], 2, "netsession: delete needs --client and/or --user"),
        (["list", "no-such-host.invalid", "-U", "a%b"], 1, "ERROR_BAD_NETPATH (53): "),
    ],
)
def test_bad_inputs_print_one_windows_error_line(args: list[str], status: int, start: str) -> None:
    done = netsession(*args)
    assert done.returncode == status
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(start)
    assert done.stderr.count("\n") == 1


def test_connection_refused_prints_ERROR_BAD_NETPATH() -> None:
    done = netsession("list", f"127.0.0.1:{free_tcp_port()}", "-U", "a%b")
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR_BAD_NETPATH (53): The network path was not found.")
    assert "Traceback" not in done.stderr


def test_no_local_server_prints_RPC_S_SERVER_UNAVAILABLE(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "NETSESSION_STATE_DIR": str(tmp_path)}
    done = netsession("list", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("RPC_S_SERVER_UNAVAILABLE (1722): The RPC server is unavailable. (no local")
    assert "Traceback" not in done.stderr


# -- output: columns, widths, Samba's times (issue 13) -------------------------------------------------


def test_level_0_table_shows_only_its_column(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    status, out, _ = run(["list", "fs1", "--level", "0"], capsys)
    lines = out.splitlines()
    assert status == 0
    assert lines[0] == "Computer" and set(lines[1]) == {"-"} and len(lines[1]) == len("Computer")
    assert [line.strip() for line in lines[2:]] == [r"\\10.0.0.5", r"\\10.0.0.6", r"\\10.0.0.7"]


def test_level_10_table_has_no_client_type_or_opens(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    _, out, _ = run(["list", "fs1", "--level", "10"], capsys)
    assert out.splitlines()[0].split() == ["Computer", "User", "name", "Idle", "time"]


def test_wide_names_keep_the_columns_aligned(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    table = SessionTable(clock=lambda: now[0])
    table.add("10.0.0.5", "山田太郎さんの長い名前", on_close=lambda s: s.remove())  # 11 wide: 22 columns
    table.add("10.0.0.6", "bob", on_close=lambda s: s.remove())
    pool(table_service(table))
    _, out, _ = run(["list", "fs1", "--level", "1"], capsys)
    lines = out.splitlines()
    # "Opens" ends at the same terminal column on every line
    ends = [cli.display_width(line[: line.index("Opens") + 5]) for line in lines[:1]]
    ends += [cli.display_width(line[: line.rindex(" 0 ") + 2]) for line in lines[2:]]
    assert len(set(ends)) == 1, out
    assert cli.display_width("山田") == 4 and cli.display_width("e\u0301") == 1


def test_samba_active_time_of_a_brand_new_session_is_shown_as_zero(
    pool: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [SESSION_INFO_1("127.0.0.1", "nsadmin", 1, 0xFFFFFFFF, 0xFFFFFFFF, 0)]
    pool(samba_like(entries, level=1))
    _, out, _ = run(["info", "fs1", r"\\127.0.0.1", "nsadmin"], capsys)
    assert "Active time  00:00:00" in out and "1193046" not in out
    _, out, _ = run(["list", "fs1", "--level", "1", "--format", "json"], capsys)
    assert json.loads(out)[0]["active_time"] == 0 and json.loads(out)[0]["idle_time"] == 0
    assert cli.hms(0x7FFFFFFF) == "596523:14:07"  # a large real time stays as it is


def test_verbose_says_whom_it_connects_to(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pool(table_service(make_table()))
    status, _, err = run(["list", "fs1", "-U", "dom/erin%pw", "-v"], capsys)
    assert status == 0
    assert "netsession: connecting to fs1 as dom\\erin" in err
