"""Command-line manners, each against the real `netsession` command in a subprocess (issue 13): a mistake
is one line naming it and a non-zero exit, never "internal error"; the output that cannot be written is
reported; values that mean nothing are refused. (The ones that need a server are in
tests/server/test_cli_manners_server.py.)"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from clitools import netsession, on_terminal


def one_line(done: subprocess.CompletedProcess[str], status: int, start: str) -> None:
    assert (done.returncode, done.stderr.count("\n")) == (status, 1), done.stderr
    assert done.stderr.startswith(start), done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# -- end of input at a prompt ------------------------------------------------------------------------


def test_ctrl_d_at_the_logon_password_prompt_is_one_line() -> None:
    # No server is needed: the prompt comes before any connection.
    status, out = on_terminal(["list", "127.0.0.1:9", "-U", "admin"], b"Password for [admin]: ", b"\x04")
    assert status == 2
    assert out.endswith("netsession: no password given (end of input at the prompt)\n")
    assert "internal error" not in out and "Traceback" not in out


def test_ctrl_d_at_the_new_account_password_prompt_is_one_line(tmp_path: Path) -> None:
    status, out = on_terminal(["user", "add", "bob", "--state-dir", str(tmp_path)],
                              b"New password for bob: ", b"\x04")
    assert status == 2
    assert out.endswith("netsession: no password given (end of input at the prompt)\n")
    assert not (tmp_path / "accounts.db").exists() or "bob" not in netsession(
        "user", "list", "--state-dir", str(tmp_path)).stdout


def test_ctrl_c_at_a_prompt_exits_130() -> None:
    status, out = on_terminal(["list", "127.0.0.1:9", "-U", "admin"], b"Password for [admin]: ", b"\x03")
    assert status == 130
    assert "Traceback" not in out


# -- output that cannot be written -------------------------------------------------------------------


def _close_stdout() -> None:
    os.close(1)


@pytest.mark.parametrize("args", [["help", "exit-codes"], ["--version"], ["user", "list", "--help"]])
def test_closed_stdout_is_reported(args: list[str]) -> None:
    done = netsession(*args, stdout=None, preexec_fn=_close_stdout)
    one_line(done, 1, "netsession: cannot write the output: standard output is closed")


@pytest.mark.parametrize("args", [["--version"], ["help", "environment"], ["--help"]])
def test_a_full_disk_is_reported(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = netsession(*args, stdout=full)
    one_line(done, 1, "netsession: cannot write the output: No space left on device")


# -- passwords ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_empty_password_stdin_is_refused_before_connecting(stdin: str) -> None:
    done = netsession("list", "127.0.0.1:9", "-U", "admin", "--password-stdin", stdin=stdin)
    one_line(done, 2, "netsession: --password-stdin: standard input")
    assert "no password" in done.stderr


def test_a_password_in_U_and_password_stdin_conflict() -> None:
    done = netsession("list", "127.0.0.1:9", "-U", "admin%pw", "--password-stdin", stdin="other\n")
    one_line(done, 2, "netsession: -U USER%PASSWORD and --password-stdin both give a password")


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_empty_password_stdin_for_a_new_account(tmp_path: Path, stdin: str) -> None:
    done = netsession("user", "add", "bob", "--password-stdin", "--state-dir", str(tmp_path), stdin=stdin)
    one_line(done, 2, "netsession: ")
    assert "empty" in done.stderr


# -- values that mean nothing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["serve", "--listen", "127.0.0.1:abc"],
         "netsession serve: argument --listen: '127.0.0.1:abc': the port is not a number"),
        (["serve", "--listen", "127.0.0.1:70000"], "netsession serve: argument --listen: '127.0.0.1:70000'"),
        (["serve", "--max-connections", "0"], "netsession serve: argument --max-connections: '0' is not"),
        (["serve", "--idle-timeout", "-1"], "netsession serve: argument --idle-timeout: '-1' is not"),
        (["serve", "--max-sessions-per-account", "0"],
         "netsession serve: argument --max-sessions-per-account: '0' is not"),
        (["serve", "--idle-timeout", "nan"], "netsession serve: argument --idle-timeout: 'nan' is not"),
        (["list", "127.0.0.1:4445", "--port", "4446"],
         "netsession: 127.0.0.1:4445 names port 4445 and --port 4446 another: give one"),
        (["list", "fs1", "--port", "0"], "netsession list: argument --port: '0' is not a TCP port"),
        (["list", "--level", "3"], "netsession list: argument --level: invalid choice: 3"),
        (["watch", "127.0.0.1", "--rounds", "0"], "netsession watch: argument --rounds: must be at least 1"),
        (["watch", "127.0.0.1", "--batch", "-1"], "netsession watch: argument --batch: must be at least 1"),
        (["watch", "127.0.0.1", "--every", "inf"],
         "netsession watch: argument --every: not a positive duration: 'inf'"),
        (["scan", "127.0.0.1", "--deadline", "nan"],
         "netsession scan: argument --deadline: not a positive duration: 'nan'"),
        (["frobnicate"], "netsession: argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "netsession: the following arguments are required: COMMAND"),
    ],
)
def test_values_that_mean_nothing_are_one_line(args: list[str], start: str, tmp_path: Path) -> None:
    if args and args[0] == "serve":
        args = [*args, "--state-dir", str(tmp_path)]
    one_line(netsession(*args), 2, start)


def test_history_of_a_database_that_does_not_exist_says_so_and_creates_none(tmp_path: Path) -> None:
    typo = tmp_path / "histroy.sqlite"
    one_line(netsession("history", "now", "--db", str(typo)), 1, f"netsession: no history database at {typo}")
    assert not typo.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("NETSESSION_ENCRYPT", "maybe"), ("NETSESSION_KERBEROS", "sometimes"), ("NETSESSION_TIMEOUT", "abc"),
     ("NETSESSION_TIMEOUT", "-5"), ("NETSESSION_PORT", "99999")],
)
def test_environment_values_that_mean_nothing_are_refused(name: str, value: str) -> None:
    done = netsession("list", "127.0.0.1:9", "-U", "a%b", env={name: value})
    one_line(done, 2, f"netsession: {name}='{value}': not")


def test_serve_with_an_audit_log_it_cannot_open(tmp_path: Path) -> None:
    done = netsession("serve", "--audit-log", "/nonexistent/dir/a.log", "--state-dir", str(tmp_path),
                      "--listen", "127.0.0.1:0", "--no-local-socket")
    one_line(done, 2, "netsession: --audit-log: cannot open /nonexistent/dir/a.log: No such file or "
             "directory")


def test_a_100000_character_user_name_is_named_as_such() -> None:
    long = "a" * 100_000
    for args in (["list", "127.0.0.1:9", "--user", long, "-U", "x%y"],
                 ["list", "127.0.0.1:9", "-U", long + "%x"],
                 ["info", "127.0.0.1:9", "\\\\ws", long, "-U", "x%y"]):
        done = netsession(*args)
        one_line(done, 2, "netsession: ")
        assert "at most 256 characters, this one 100,000" in done.stderr
        assert len(done.stderr) < 200


# -- messages ----------------------------------------------------------------------------------------


def test_backslashes_are_shown_as_typed(tmp_path: Path) -> None:
    done = netsession("user", "add", "WORKGROUP\\admin", "--password-stdin", "--state-dir", str(tmp_path),
                      stdin="pw\n")
    one_line(done, 2, "netsession: account name 'WORKGROUP\\admin' contains forbidden characters '\\'")
    done = netsession("list", "\\\\\\\\")
    one_line(done, 1, "NERR_InvalidComputer (2351): This computer name is invalid. ('\\\\\\\\':")


def test_account_commands_speak_alike(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    done = netsession("user", "add", "bob", "--password-stdin", *state, stdin="B0b-pw!\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "added bob (Users)\n", "")
    done = netsession("user", "add", "bob", "--password-stdin", *state, stdin="B0b-pw!\n")
    one_line(done, 2, "netsession: an account named bob exists already")
    done = netsession("user", "passwd", "bob", "--password-stdin", *state, stdin="N3w-pw!\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "changed the password of bob\n", "")
    done = netsession("user", "del", "bob", *state)
    assert (done.returncode, done.stdout, done.stderr) == (0, "deleted bob\n", "")
    for command in (["passwd", "bob", "--password-stdin"], ["del", "bob"]):
        done = netsession("user", *command, *state, stdin="x\n")
        one_line(done, 2, "netsession: no account named bob")


def test_help_topic_that_does_not_exist() -> None:
    one_line(netsession("help", "nosuch"), 2, "netsession help: no topic 'nosuch'")


# -- documented ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "needle"),
    [(["serve"], "--no-local-socket"), (["serve"], "--log-level"), (["serve"], "--max-connections"),
     (["info"], "--format"), (["user", "passwd"], "--password-stdin"), (["list"], "--verbose"),
     (["list"], "--debug"), (["delete"], "nothing deleted")],
)
def test_options_are_documented_in_help(command: list[str], needle: str) -> None:
    done = netsession(*command, "--help")
    assert done.returncode == 0
    if not needle.startswith("--"):
        assert needle in done.stdout
        return
    lines = done.stdout.splitlines()
    # the option's own entry (not the usage line), with its text beside it or on the next line
    at = next(i for i, line in enumerate(lines) if re.match(rf"\s+(-\w, )?{needle}\b", line))
    beside = re.sub(rf"^\s+(-\w, )?{needle}( \S+)?", "", lines[at]).strip()
    assert beside or lines[at + 1].startswith(" " * 8)
