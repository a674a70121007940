"""Command-line manners that need a server: the real `netsession` command against a real `netsession serve`
(issue 13) — no password is one clear line, a full disk is reported, the delete's success line, deleting
one's own session, level 0's table, wide names, -v."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))

from clitools import netsession
from netsession_server import ADMIN, Account, NetsessionServerProcess

from netsession.groups import USERS


def where(server: NetsessionServerProcess) -> str:
    return f"127.0.0.1:{server.port}"


def admin(server: NetsessionServerProcess) -> list[str]:
    return [where(server), "-U", ADMIN.credentials]


def test_no_password_is_one_clear_line(server: NetsessionServerProcess) -> None:
    done = netsession("list", where(server), "-U", "admin")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"netsession: no password for admin on {where(server)}, and no usable Kerberos ticket: give -U "
        "'admin%PASSWORD', --password-stdin or NETSESSION_PASSWORD\n"
    )


def test_no_user_at_all_is_one_clear_line(server: NetsessionServerProcess) -> None:
    done = netsession("list", where(server))
    assert done.returncode == 2
    assert done.stderr.startswith(f"netsession: no user name or password for {where(server)}")
    assert done.stderr.count("\n") == 1


def test_a_wrong_password_is_still_the_servers_answer(server: NetsessionServerProcess) -> None:
    done = netsession("list", where(server), "-U", "admin%wrong")
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR_LOGON_FAILURE (1326): The user name or password is incorrect.")


def test_a_listing_to_a_full_disk_is_reported(server: NetsessionServerProcess) -> None:
    with open("/dev/full", "w") as full:
        done = netsession("list", *admin(server), stdout=full)
    assert done.returncode == 1
    assert done.stderr == "netsession: cannot write the output: No space left on device\n"


def test_delete_says_it_is_done(server: NetsessionServerProcess) -> None:
    held = server.hold_smbclient(Account("bob", "B0b-pw!", (USERS,)))
    done = netsession("delete", *admin(server), "--user", "bob")
    assert (done.returncode, done.stdout, done.stderr) == (0, "The command completed successfully.\n", "")
    held.close()


def test_deleting_ones_own_session_succeeds(server: NetsessionServerProcess) -> None:
    done = netsession("delete", *admin(server), "--user", "admin", "--yes")
    assert (done.returncode, done.stdout, done.stderr) == (0, "The command completed successfully.\n", "")


def test_level_0_table_against_the_server(server: NetsessionServerProcess) -> None:
    done = netsession("list", *admin(server), "--level", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["Computer", "--------"]


def test_a_wide_user_name_keeps_the_table_aligned(server: NetsessionServerProcess) -> None:
    wide = Account("山田太郎", "Yamada-pw1!", (USERS,))
    added = netsession("user", "add", wide.name, "--password-stdin", "--state-dir", str(server.state_dir),
                       stdin=wide.password + "\n")
    assert added.returncode in (0, 2), added.stderr  # 2: added by an earlier run of the same server
    held = server.hold_smbclient(wide)
    done = netsession("list", *admin(server), "--level", "1")
    held.close()
    assert done.returncode == 0, done.stderr
    from netsession.cli import display_width

    lines = [line for line in done.stdout.splitlines()[2:] if line]
    assert any(wide.name in line for line in lines)
    # the Opens column ends at the same terminal column on every row
    ends = {display_width(line.split(" 00:")[0]) for line in lines}
    assert len(ends) == 1, done.stdout


def test_verbose_and_debug_say_what_they_do(server: NetsessionServerProcess) -> None:
    for flag in ("-v", "--debug"):
        done = netsession("list", *admin(server), flag)
        assert done.returncode == 0
        assert f"netsession: connecting to {where(server)} as admin" in done.stderr


def test_the_local_computer_takes_no_credentials(server: NetsessionServerProcess) -> None:
    done = netsession("list", ".", "-U", ADMIN.credentials)
    assert done.returncode == 2
    assert done.stderr.startswith("netsession: the local computer ('.') takes no -U")
