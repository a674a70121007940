r"""The samba-4.17 personality side by side with a real smbd (Debian's 4.17, the session fixture): the same
calls from rpcclient, impacket and our own client give the same answers from both servers.

Both hold the same picture: an smbclient of alice on IPC$ and the caller's own session (nsadmin, an
administrator: BUILTIN\Administrators and Domain Admins on smbd, Administrators on ours). Times are the
only thing that may differ (both are a few seconds); smbd lists sessions in its tdb's order, so answers
are compared as multisets.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smbconnection import SMBConnection
from netsession_server import Account, NetsessionServerProcess, missing_samba_clients, wait_until
from samba import SambaServer

from netsession.groups import ADMINISTRATORS, USERS

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
NSADMIN = Account("nsadmin", "Adm1n-pass!", (ADMINISTRATORS,))
ALICE = Account("alice", "Al1ce-pass!", (USERS,))
BOB = Account("bob", "B0b-pass!", (USERS,))


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    reason = missing_samba_clients()
    if reason:
        pytest.skip(reason)
    server = NetsessionServerProcess(
        tmp_path_factory.mktemp("samba-personality"), ("--personality", "samba-4.17"), (NSADMIN, ALICE, BOB)
    )
    server.start()
    yield server
    server.stop()


Pair = tuple[SambaServer, NetsessionServerProcess]


@pytest.fixture
def pair(samba: SambaServer, ours: NetsessionServerProcess) -> Iterator[Pair]:
    """Both servers with one alice session held open (and nothing else)."""
    ours.reset()
    samba.hold_session(samba.users["alice"])
    ours.hold_smbclient(ALICE)
    yield samba, ours
    ours.reset()


def rpcclient_samba(samba: SambaServer, account: Account, command: str) -> str:
    done = subprocess.run(
        ["rpcclient", "-s", str(samba.conf), "-p", str(samba.port), HOST, "-U",
         f"{account.name}%{account.password}", "-c", command],
        env=samba.env, capture_output=True, text=True, timeout=30, check=False,
    )
    return done.stdout + done.stderr


def rpcclient_ours(ours: NetsessionServerProcess, account: Account, command: str) -> str:
    done = ours.rpcclient(account, command)
    return done.stdout + done.stderr


def both_rpcclient(pair: tuple[SambaServer, NetsessionServerProcess], account: Account, command: str
                   ) -> tuple[str, str]:
    samba, ours = pair
    return rpcclient_samba(samba, account, command), rpcclient_ours(ours, account, command)


@pytest.mark.parametrize(
    "command",
    [
        "netsessenum",  # level 1
        "netsessenum \\\\\\\\nowhere nobody 0",  # the filters are ignored
        "netsessenum \\\\\\\\nowhere nobody 1",
        "netsessenum \\\\\\\\127.0.0.1 alice 2",  # only 0 and 1 exist
        "netsessenum \\\\\\\\127.0.0.1 alice 10",
        "netsessenum \\\\\\\\127.0.0.1 alice 502",
        "netsessdel \\\\\\\\10.9.9.9 alice",  # no match: ERROR_ACCESS_DENIED, not 2312
    ],
)
def test_rpcclient_gets_the_same_answer_as_from_smbd(
    pair: tuple[SambaServer, NetsessionServerProcess], command: str
) -> None:
    from_samba, from_ours = both_rpcclient(pair, NSADMIN, command)
    assert from_ours == from_samba


@pytest.mark.parametrize(
    "command", ["netsessenum \\\\\\\\127.0.0.1 alice 0", "netsessenum", "netsessdel \\\\\\\\127.0.0.1 bob"]
)
def test_rpcclient_plain_user_refused_like_smbd(pair: Pair, command: str) -> None:
    from_samba, from_ours = both_rpcclient(pair, BOB, command)
    assert "WERR_ACCESS_DENIED" in from_samba
    assert from_ours == from_samba


# -- impacket ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def impacket_srvs(port: int, account: Account) -> Iterator[Any]:
    smb = SMBConnection(HOST, HOST, sess_port=port, timeout=10)
    smb.login(account.name, account.password)
    try:
        rpc = transport.SMBTransport(HOST, filename=r"\srvsvc", smb_connection=smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        yield dce
    finally:
        with contextlib.suppress(Exception):
            smb.close()


def _answer(dce: Any, level: int, client: str | None = None, user: str | None = None,
            resume: int = 0, prefmax: int = 0xFFFFFFFF) -> tuple[Any, ...]:
    """(status, total, resume handle, multiset of records without their times) as impacket decodes them."""
    try:
        r = srvs.hNetrSessionEnum(
            dce, srvs.NULL if client is None else client + "\x00",
            srvs.NULL if user is None else user + "\x00", level,
            resumeHandle=resume, preferedMaximumLength=prefmax,
        )
    except DCERPCException as exc:
        return (exc.get_error_code(),)
    container = r["InfoStruct"]["SessionInfo"][f"Level{level}"]
    rows = []
    times = []
    for entry in container["Buffer"] if container["EntriesRead"] else []:
        row = {}
        for key in entry.fields:
            value = entry[key]
            field = key.split("_", 1)[1]
            if field == "time":
                times.append(value)
                continue
            row[field] = value.rstrip("\x00") if isinstance(value, str) else value
        rows.append(tuple(sorted(row.items())))
    assert all(t < 120 or t == 0xFFFFFFFF for t in times), times
    # From a resume position on, which rows come depends on the list's order (smbd's is its tdb's): count.
    return 0, r["TotalEntries"], r["ResumeHandle"], Counter(rows) if not resume else len(rows)


@pytest.mark.parametrize(
    "call",
    [
        {"level": 0}, {"level": 1}, {"level": 1, "client": "\\\\10.9.9.9", "user": "nobody"},
        {"level": 1, "prefmax": 16}, {"level": 1, "resume": 1}, {"level": 0, "resume": 2},
        {"level": 1, "resume": 99}, {"level": 2}, {"level": 10}, {"level": 502},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_impacket_gets_the_same_answer_as_from_smbd(
    pair: tuple[SambaServer, NetsessionServerProcess], call: dict[str, Any]
) -> None:
    samba, ours = pair
    with impacket_srvs(samba.port, NSADMIN) as dce:
        from_samba = _answer(dce, **call)
    with impacket_srvs(ours.port, NSADMIN) as dce:
        from_ours = _answer(dce, **call)
    assert from_ours == from_samba


def test_impacket_netsessdel_ends_the_whole_client_like_smbd(
    pair: tuple[SambaServer, NetsessionServerProcess]
) -> None:
    samba, ours = pair
    statuses = []
    for port in (samba.port, ours.port):
        with impacket_srvs(port, NSADMIN) as dce:
            try:
                statuses.append(srvs.hNetrSessionDel(dce, "\\\\127.0.0.1\x00", "alice\x00")["ErrorCode"])
            except DCERPCException as exc:
                statuses.append(exc.get_error_code())
    assert statuses[1] == statuses[0] == 0
    wait_until(lambda: not any(h.alive for h in samba.held), what="smbd's alice smbclient to end")
    wait_until(lambda: not any(h.alive for h in ours.held), what="our alice smbclient to end")


# -- our own client ------------------------------------------------------------------------------------


def _netsession_list(port: int, account: Account, *args: str) -> subprocess.CompletedProcess[str]:
    from netsession_server import REAL_COMMAND

    return subprocess.run(
        [*REAL_COMMAND, "list", HOST, "--port", str(port), "-U", f"{account.name}%{account.password}", *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


@pytest.mark.parametrize(
    "args", [(), ("--level", "0"), ("--level", "1"), ("--level", "10"), ("--user", "alice")]
)
def test_our_client_gets_the_same_answer_as_from_smbd(
    pair: tuple[SambaServer, NetsessionServerProcess], args: tuple[str, ...]
) -> None:
    samba, ours = pair
    from_samba = _netsession_list(samba.port, NSADMIN, *args)
    from_ours = _netsession_list(ours.port, NSADMIN, *args)
    assert (from_ours.returncode, sorted(from_ours.stdout.splitlines()), from_ours.stderr) == (
        from_samba.returncode, sorted(from_samba.stdout.splitlines()), from_samba.stderr
    )


def test_sessions_file_decoys_behind_the_samba_personality(tmp_path: Path) -> None:
    # A decoy on the samba listener shows as smbd would show it: bare address, idle 0, its files counted.
    sessions = tmp_path / "s.toml"
    sessions.write_text('[[session]]\nclient = "10.0.4.23"\nuser = "adm-jsmith"\nopens = 2\nage = 60\n')
    server = NetsessionServerProcess(
        tmp_path / "st", ("--personality", "samba-4.17", "--sessions", str(sessions)), (NSADMIN,)
    )
    server.start()
    try:
        with impacket_srvs(server.port, NSADMIN) as dce:
            r = srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 1)
            level1 = r["InfoStruct"]["SessionInfo"]["Level1"]["Buffer"]
            rows = {e["sesi1_username"].rstrip("\x00"): e for e in level1}
        decoy = rows["adm-jsmith"]
        assert decoy["sesi1_cname"].rstrip("\x00") == "10.0.4.23"
        assert (decoy["sesi1_num_opens"], decoy["sesi1_idle_time"]) == (2, 0)
        # Samba rounds the creation time to the nearest second and floors now (samba_connect_time), so a
        # session 60.6 s old reads 59.
        assert 59 <= decoy["sesi1_time"] < 120
    finally:
        server.stop()
