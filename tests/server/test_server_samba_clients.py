r"""`netsession serve` with Samba's own client tools: smbclient and rpcclient, started by the tests.

rpcclient's `netsessenum [client] [user] [level]` prints only "Received N entries." (or "result was
WERR_..."), so N is what is checked; its `-c` is split by popt, which drops an empty '' argument and turns
``\\\\host`` into ``\\host`` on the wire, so every level is asked with a real client (and user) filter.
"""

from __future__ import annotations

import re

import pytest
from netsession_server import (
    ADMIN,
    ALICE,
    BOB,
    LOOPBACK_CNAME,
    OPERATOR,
    Account,
    NetsessionServerProcess,
    wait_until,
)

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("samba_clients")]

LEVELS = (0, 1, 2, 10, 502)
PRIVILEGED_LEVELS = (1, 2, 502)
OPEN_LEVELS = (0, 10)
# popt reads "\\\\" as one escaped "\\": four backslashes on the command line reach the wire as two.
CLIENT_ARG = "\\\\\\\\127.0.0.1"
TRANSPORT = "\\Device\\NetbiosSmb"


def received(out: str) -> int:
    """N of rpcclient's "Received N entries."; AssertionError if it failed instead."""
    match = re.search(r"Received (\d+) entries\.", out)
    assert match, out
    return int(match.group(1))


def enum(server: NetsessionServerProcess, caller: Account, *args: object) -> tuple[int, str]:
    done = server.rpcclient(caller, " ".join(["netsessenum", *map(str, args)]))
    return done.returncode, done.stdout + done.stderr


# -- smbclient ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("account", [ADMIN, ALICE], ids=lambda a: a.name)
def test_smbclient_list_shows_ipc_share(server: NetsessionServerProcess, account: Account) -> None:
    done = server.smbclient(account, "-L", "127.0.0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\s*IPC\$\s+IPC\s+Remote IPC\s*$", done.stdout, re.M), done.stdout
    wait_until(lambda: not server.sessions(), what="smbclient -L's session to end")


def test_smbclient_ipc_session_is_a_row_of_the_table(server: NetsessionServerProcess) -> None:
    held = server.hold_smbclient(ALICE)
    (row,) = server.sessions()
    assert row.sesi502_cname == LOOPBACK_CNAME
    assert row.sesi502_username == "alice"
    assert row.sesi502_num_opens == 0
    assert row.sesi502_user_flags == 0
    assert row.sesi502_cltype_name == ""
    assert row.sesi502_transport == TRANSPORT
    assert held.alive


def test_smbclient_quitting_removes_its_session(server: NetsessionServerProcess) -> None:
    held = server.hold_smbclient(BOB)
    held.close()
    wait_until(lambda: server.count("bob") == 0, what="bob's session to leave the table")


def test_smbclient_wrong_password_is_logon_failure(server: NetsessionServerProcess) -> None:
    done = server.smbclient(Account("alice", "not-her-password", ()), "//127.0.0.1/IPC$", "-c", "help")
    assert done.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in done.stdout + done.stderr
    assert server.sessions() == []


def test_smbclient_unknown_user_is_logon_failure_without_guest(server: NetsessionServerProcess) -> None:
    done = server.smbclient(Account("mallory", "whatever", ()), "//127.0.0.1/IPC$", "-c", "help")
    assert "NT_STATUS_LOGON_FAILURE" in done.stdout + done.stderr
    assert server.sessions() == []


def test_smbclient_unknown_share_is_bad_network_name(server: NetsessionServerProcess) -> None:
    done = server.smbclient(ALICE, "//127.0.0.1/C$", "-c", "help")
    assert done.returncode != 0
    assert "NT_STATUS_BAD_NETWORK_NAME" in done.stdout + done.stderr


# -- rpcclient netsessenum -------------------------------------------------------------------------------


@pytest.fixture
def three_sessions(server: NetsessionServerProcess) -> NetsessionServerProcess:
    """alice once and bob twice, each a live smbclient."""
    server.hold_smbclient(ALICE)
    server.hold_smbclient(BOB)
    server.hold_smbclient(BOB)
    return server


@pytest.mark.parametrize("caller", [ADMIN, OPERATOR], ids=lambda a: a.name)
@pytest.mark.parametrize("level", LEVELS)
def test_rpcclient_netsessenum_every_level_as_administrator(
    three_sessions: NetsessionServerProcess, caller: Account, level: int
) -> None:
    rc, out = enum(three_sessions, caller, CLIENT_ARG, "bob", level)
    assert rc == 0, out
    assert f"trying level: {level}" in out
    assert received(out) == 2
    rc, out = enum(three_sessions, caller, CLIENT_ARG, "alice", level)
    assert received(out) == 1


def test_rpcclient_netsessenum_without_filters_counts_every_session(
    three_sessions: NetsessionServerProcess,
) -> None:
    # Three smbclients and rpcclient's own session.
    rc, out = enum(three_sessions, ADMIN)
    assert rc == 0, out
    assert received(out) == 4
    rc, out = enum(three_sessions, ADMIN, CLIENT_ARG)
    assert received(out) == 4


def test_rpcclient_netsessenum_user_filter_is_case_insensitive(
    three_sessions: NetsessionServerProcess,
) -> None:
    _, out = enum(three_sessions, ADMIN, CLIENT_ARG.upper(), "BoB", 10)
    assert received(out) == 2


def test_rpcclient_netsessenum_client_filter_without_backslashes_is_invalid_computer(
    three_sessions: NetsessionServerProcess,
) -> None:
    rc, out = enum(three_sessions, ADMIN, "127.0.0.1", "bob", 10)
    assert rc != 0
    assert "WERR_NERR_INVALIDCOMPUTER" in out


def test_rpcclient_netsessenum_no_matching_client_is_client_name_not_found(
    three_sessions: NetsessionServerProcess,
) -> None:
    rc, out = enum(three_sessions, ADMIN, "\\\\\\\\10.9.9.9", "bob", 0)
    assert rc != 0
    assert "WERR_NERR_CLIENTNAMENOTFOUND" in out


def test_rpcclient_netsessenum_no_matching_user_is_user_not_found(
    three_sessions: NetsessionServerProcess,
) -> None:
    rc, out = enum(three_sessions, ADMIN, CLIENT_ARG, "carol", 0)
    assert rc != 0
    assert "WERR_NERR_USERNOTFOUND" in out


@pytest.mark.parametrize("level", OPEN_LEVELS)
def test_rpcclient_plain_user_classic_levels_0_and_10_allowed(
    three_sessions: NetsessionServerProcess, level: int
) -> None:
    rc, out = enum(three_sessions, ALICE, CLIENT_ARG, "bob", level)
    assert rc == 0, out
    assert received(out) == 2


@pytest.mark.parametrize("level", PRIVILEGED_LEVELS)
def test_rpcclient_plain_user_classic_levels_1_2_502_access_denied(
    three_sessions: NetsessionServerProcess, level: int
) -> None:
    rc, out = enum(three_sessions, ALICE, CLIENT_ARG, "bob", level)
    assert rc != 0
    assert "result was WERR_ACCESS_DENIED" in out


def test_rpcclient_plain_user_hardened_every_level_refused_with_a_fault(
    hardened: NetsessionServerProcess,
) -> None:
    hardened.hold_smbclient(BOB)
    for level in LEVELS:
        rc, out = enum(hardened, ALICE, CLIENT_ARG, "bob", level)
        # rpcclient turns the fault PDU (status 5) into WERR_ACCESS_DENIED.
        assert rc != 0, out
        assert "WERR_ACCESS_DENIED" in out, out
    faults = re.findall(r"caller=alice .*operation=NetrSessionEnum level=(\d+) result=fault 0x00000005",
                        hardened.log())
    assert sorted(map(int, faults[-len(LEVELS):])) == sorted(LEVELS)


@pytest.mark.parametrize("level", LEVELS)
def test_rpcclient_administrator_hardened_every_level_allowed(
    hardened: NetsessionServerProcess, level: int
) -> None:
    hardened.hold_smbclient(BOB)
    rc, out = enum(hardened, ADMIN, CLIENT_ARG, "bob", level)
    assert rc == 0, out
    assert received(out) == 1


# -- rpcclient netsessdel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", [ADMIN, OPERATOR], ids=lambda a: a.name)
def test_rpcclient_netsessdel_ends_a_live_smbclient_session(
    server: NetsessionServerProcess, caller: Account
) -> None:
    victim = server.hold_smbclient(ALICE)
    bystander = server.hold_smbclient(BOB)
    done = server.rpcclient(caller, f"netsessdel {CLIENT_ARG} alice")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result was" not in done.stdout
    # The session leaves the table at once; bob's is untouched.
    assert server.count("alice") == 0
    assert server.count("bob") == 1
    # smbclient learns it on its next request: its connection (alice's only session) was closed.
    victim.command("ls")
    out = victim.close()
    assert "NT_STATUS_CONNECTION_DISCONNECTED" in out or "NT_STATUS_USER_SESSION_DELETED" in out, out
    assert bystander.alive
    # The user can log on again.
    server.hold_smbclient(ALICE)
    assert server.count("alice") == 1
    assert re.search(rf"caller={caller.name} .*operation=NetrSessionDel .*result=NERR_Success closed=1",
                     server.log())


def test_rpcclient_netsessdel_by_plain_user_is_access_denied(server: NetsessionServerProcess) -> None:
    victim = server.hold_smbclient(BOB)
    done = server.rpcclient(ALICE, f"netsessdel {CLIENT_ARG} bob")
    assert done.returncode != 0
    assert "WERR_ACCESS_DENIED" in done.stdout
    assert server.count("bob") == 1
    assert victim.alive


def test_rpcclient_netsessdel_no_match_is_client_name_not_found(server: NetsessionServerProcess) -> None:
    server.hold_smbclient(BOB)
    for args in ("\\\\\\\\10.9.9.9 bob", f"{CLIENT_ARG} carol", "127.0.0.1 bob"):
        done = server.rpcclient(ADMIN, f"netsessdel {args}")
        assert done.returncode != 0, args
        assert "WERR_NERR_CLIENTNAMENOTFOUND" in done.stdout, (args, done.stdout)
    assert server.count("bob") == 1


def test_rpcclient_netsessdel_of_every_session_from_the_client_ends_its_own_too(
    server: NetsessionServerProcess,
) -> None:
    server.hold_smbclient(BOB)
    done = server.rpcclient(ADMIN, f"netsessdel {CLIENT_ARG}")
    # The reply was queued before the caller's own session ended: rpcclient still gets NERR_Success.
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"caller=admin .*operation=NetrSessionDel .*result=NERR_Success closed=2", server.log())
    wait_until(lambda: not server.sessions(), what="every session to end")


# -- encryption, as smbclient and rpcclient ask for it ------------------------------------------------------


@pytest.mark.parametrize("protection", ["encrypt", "sign", "off"])
def test_samba_clients_against_a_server_that_requires_encryption(
    encrypting: NetsessionServerProcess, protection: str
) -> None:
    # The server's --encrypt makes every SMB3 session encrypted whatever the client asked for.
    option = f"--client-protection={protection}"
    done = encrypting.smbclient(ALICE, "//127.0.0.1/IPC$", option, "-c", "help")
    assert done.returncode == 0, done.stdout + done.stderr
    done = encrypting.samba_tool("rpcclient", "-p", str(encrypting.port), "127.0.0.1", "-U",
                                 ADMIN.credentials, option, "-c", "netsessenum")
    assert received(done.stdout) == 1


@pytest.mark.parametrize("dialect", ["SMB2_02", "SMB2_10"])
def test_smbclient_2_x_against_a_server_that_requires_encryption_is_access_denied(
    encrypting: NetsessionServerProcess, dialect: str
) -> None:
    done = encrypting.smbclient(ALICE, "//127.0.0.1/IPC$", "-m", dialect, "-c", "help")
    assert done.returncode != 0
    assert "session setup failed: NT_STATUS_ACCESS_DENIED" in done.stdout + done.stderr


# -- the share and server calls rpcclient makes -----------------------------------------------------------


def test_rpcclient_srvinfo(server: NetsessionServerProcess) -> None:
    done = server.rpcclient(ALICE, "srvinfo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\s*NSTEST\s+Wk Sv NT SNT", done.stdout, re.M), done.stdout
    assert "platform_id     :\t500" in done.stdout


def test_rpcclient_netshareenumall_default_level_2_as_administrator(
    server: NetsessionServerProcess,
) -> None:
    done = server.rpcclient(ADMIN, "netshareenumall")
    assert done.returncode == 0, done.stdout
    assert "netname: IPC$" in done.stdout


def test_rpcclient_netsharegetinfo_default_level_502_as_administrator(
    server: NetsessionServerProcess,
) -> None:
    done = server.rpcclient(ADMIN, "netsharegetinfo IPC$")
    assert done.returncode == 0, done.stdout
    assert "netname: IPC$" in done.stdout


def test_rpcclient_netshareenumall_level_2_refused_to_a_plain_user(server: NetsessionServerProcess) -> None:
    done = server.rpcclient(ALICE, "netshareenumall")
    assert "WERR_ACCESS_DENIED" in done.stdout + done.stderr


def test_rpcclient_netshareenum_sticky_lists_no_special_share(server: NetsessionServerProcess) -> None:
    # Opnum 36 (NetrShareEnumSticky): IPC$ is special, not sticky — an empty list, not a fault.
    done = server.rpcclient(ADMIN, "netshareenum 1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IPC$" not in done.stdout
    assert "fault" not in (done.stdout + done.stderr).lower()


def test_rpcclient_netshareenumall_level_1(server: NetsessionServerProcess) -> None:
    # rpcclient prints levels 1, 2 and 502 only; smbclient -L asks level 1.
    done = server.rpcclient(ALICE, "netshareenumall 1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "netname: IPC$" in done.stdout
