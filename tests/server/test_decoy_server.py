r"""`netsession serve --sessions FILE` with real clients: decoy rows that impacket, rpcclient and our own
client cannot tell from real sessions; NetrSessionDel and respawn; SIGHUP reload (a bad file keeps the
table); `netsession decoy add/remove/list`; a malformed file or an unknown personality refused at start;
one process with windows, windows-hardened and samba-4.17 listeners.

Times in a running server follow its real clock: these tests only poll (wait_until) for what must
happen; the ticking itself is checked with an injected clock in tests/unit/test_decoy_sessions.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smbconnection import SMBConnection
from netsession_server import (
    ADMIN,
    ALICE,
    BOB,
    LOOPBACK,
    REAL_COMMAND,
    NetsessionServerProcess,
    free_port,
    missing_samba_clients,
    wait_until,
)

from netsession.records import SESSION_INFO_502

pytestmark = pytest.mark.interop

SESSIONS = """\
seed = 11

[[session]]
client = "10.0.4.23"
user = "adm-jsmith"
opens = 3
age = "3h"
speak_every = "30s"

[[session]]
client = "WS-FIN-07"
user = "mkelly"
age = "2d"
activity = "drive"

[[session]]
client = "10.0.4.99"
user = "svc_backup"
age = 600
idle = 0
speak_every = 0
respawn = "1s"

# The twin of a real session: bob from 127.0.0.1 with nothing open, connected just now.
[[session]]
client = "127.0.0.1"
user = "bob"
age = 0
idle = 0
speak_every = 0
"""
DECOYS = 4


class DecoyServer(NetsessionServerProcess):
    """A server whose table holds decoys: "empty" means only the decoys are left."""

    decoys_file: Path

    def reset(self) -> None:
        self.close_clients()
        wait_until(lambda: len(self.sessions()) == self.active_decoys(), what="only decoys in the table")

    def netsession(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*REAL_COMMAND, *args], capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "NETSESSION_STATE_DIR": str(self.state_dir)},
        )

    def decoys(self) -> list[dict[str, Any]]:
        done = self.netsession("decoy", "list", "--format", "json")
        assert done.returncode == 0, done.stderr
        result: list[dict[str, Any]] = json.loads(done.stdout)
        return result

    def active_decoys(self) -> int:
        return sum(1 for d in self.decoys() if d["active"])


@pytest.fixture(scope="module")
def lab_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DecoyServer]:
    state = tmp_path_factory.mktemp("decoy")
    sessions = state / "sessions.toml"
    sessions.write_text(SESSIONS)
    samba_port, hardened_port = free_port(), free_port()
    server = DecoyServer(state, (
        "--sessions", str(sessions), "--sessions-seed", "3",
        "--listen", f"{LOOPBACK}:{samba_port}=samba-4.17",
        "--listen", f"{LOOPBACK}:{hardened_port}=windows-hardened",
    ))
    server.decoys_file = sessions
    server.samba_port = samba_port  # type: ignore[attr-defined]
    server.hardened_port = hardened_port  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lab(lab_process: DecoyServer) -> Iterator[DecoyServer]:
    if lab_process.process is None or lab_process.process.poll() is not None:
        pytest.fail(f"netsession serve is not running:\n{lab_process.log()}")
    lab_process.decoys_file.write_text(SESSIONS)
    lab_process.netsession("decoy", "reload")
    wait_until(lambda: lab_process.active_decoys() == DECOYS, what="every decoy back")
    lab_process.reset()
    yield lab_process
    lab_process.reset()


def _impacket(port: int, account: Any = ADMIN) -> tuple[SMBConnection, Any]:
    smb = SMBConnection(LOOPBACK, LOOPBACK, sess_port=port, timeout=10)
    smb.login(account.name, account.password)
    rpc = transport.SMBTransport(LOOPBACK, filename=r"\srvsvc", smb_connection=smb)
    dce = rpc.get_dce_rpc()
    dce.connect()
    dce.bind(srvs.MSRPC_UUID_SRVS)
    return smb, dce


def _rows(response: Any) -> list[dict[str, Any]]:
    level = response["InfoStruct"]["Level"]
    container = response["InfoStruct"]["SessionInfo"][f"Level{level}"]
    out = []
    for entry in (container["Buffer"] if container["EntriesRead"] else []):
        row = {}
        for key in entry.fields:
            value = entry[key]
            row[key.split("_", 1)[1]] = value.rstrip("\x00") if isinstance(value, str) else value
        out.append(row)
    return out


def _without_times(row: SESSION_INFO_502) -> tuple[Any, ...]:
    return row._replace(sesi502_time=0, sesi502_idle_time=0)


def test_decoys_indistinguishable_through_impacket(lab: DecoyServer) -> None:
    lab.hold_smbclient(BOB)  # a real bob from 127.0.0.1, nothing open
    smb, dce = _impacket(lab.port)
    try:
        for level in (0, 1, 2, 10, 502):
            response = srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, level)
            rows = _rows(response)
            assert response["TotalEntries"] == len(rows) == DECOYS + 2
            assert len({tuple(sorted(r)) for r in rows}) == 1  # every row has the same fields
            if level == 0:
                continue
            bobs = [r for r in rows if r["username"] == "bob"]
            assert len(bobs) == 2
            twin, real = ({k: v for k, v in b.items() if k not in ("time", "idle_time")} for b in bobs)
            assert twin == real
            assert all(abs(b["time"] - bobs[0]["time"]) <= 5 for b in bobs)
        ten = {r["username"]: r for r in _rows(srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10))}
        assert ten["mkelly"]["cname"] == "\\\\WS-FIN-07" and ten["mkelly"]["time"] >= 2 * 86400
        assert 3 * 3600 <= ten["adm-jsmith"]["time"] < 3 * 3600 + 300
        assert ten["adm-jsmith"]["idle_time"] <= 60
        filtered = _rows(srvs.hNetrSessionEnum(dce, "\\\\10.0.4.23\x00", srvs.NULL, 502))
        assert [(r["username"], r["num_opens"]) for r in filtered] == [("adm-jsmith", 3)]
        with pytest.raises(DCERPCException) as info:  # 30 bytes hold no entry: ERROR_MORE_DATA paging
            srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10, preferedMaximumLength=100)
        assert "ERROR_MORE_DATA" in str(info.value)
    finally:
        smb.close()
    twin, real = (s for s in lab.sessions(user="bob"))
    assert _without_times(twin) == _without_times(real)


@pytest.mark.skipif(missing_samba_clients() is not None, reason="Samba client tools not installed")
def test_decoys_through_rpcclient_and_our_client(lab: DecoyServer) -> None:
    done = lab.rpcclient(ADMIN, "netsessenum \\\\\\\\10.0.4.23 adm-jsmith 502")
    assert "Received 1 entries." in done.stdout, done.stdout + done.stderr
    listed = lab.netsession(
        "list", LOOPBACK, "--port", str(lab.port), "-U", f"{ADMIN.name}%{ADMIN.password}",
        "--level", "502", "--format", "json",
    )
    assert listed.returncode == 0, listed.stderr
    rows = {r["user_name"]: r for r in json.loads(listed.stdout)}
    assert rows["adm-jsmith"]["client_name"] == "\\\\10.0.4.23" and rows["adm-jsmith"]["num_opens"] == 3
    assert rows["mkelly"]["transport"] == "\\Device\\NetbiosSmb" and rows["mkelly"]["client_type"] == ""
    assert set(rows) == {"adm-jsmith", "mkelly", "svc_backup", "bob", "admin"}


@pytest.mark.skipif(missing_samba_clients() is not None, reason="Samba client tools not installed")
def test_netrsessiondel_of_a_decoy_and_its_respawn(lab: DecoyServer) -> None:
    done = lab.rpcclient(ADMIN, "netsessdel \\\\\\\\WS-FIN-07 mkelly")
    assert done.returncode == 0 and "result was" not in done.stdout, done.stdout
    assert not lab.sessions(user="mkelly")
    again = lab.rpcclient(ADMIN, "netsessdel \\\\\\\\WS-FIN-07 mkelly")
    assert "WERR_NERR_CLIENTNAMENOTFOUND" in again.stdout, again.stdout
    done = lab.rpcclient(ADMIN, "netsessdel \\\\\\\\10.0.4.99 svc_backup")
    assert done.returncode == 0
    back = wait_until(lambda: lab.sessions(user="svc_backup"), what="svc_backup to reconnect")
    assert back[0].sesi502_time <= 5  # a new session: its time starts again
    (state,) = [d for d in lab.decoys() if d["user"] == "svc_backup"]
    assert state["deletions"] == 1


def test_decoy_add_remove_list_commands(lab: DecoyServer) -> None:
    added = lab.netsession("decoy", "add", "--client", "LT-HR-0042", "--user", "pbell", "--opens", "2",
                           "--age", "1h")
    assert added.returncode == 0, added.stderr
    (row,) = lab.sessions(user="pbell")
    assert row.sesi502_cname == "\\\\LT-HR-0042" and row.sesi502_num_opens == 2
    assert 3600 <= row.sesi502_time < 3700
    table = lab.netsession("decoy", "list")
    assert "LT-HR-0042" in table.stdout and "pbell" in table.stdout
    removed = lab.netsession("decoy", "remove", "--user", "pbell")
    assert removed.returncode == 0 and "removed 1 decoy" in removed.stdout
    assert not lab.sessions(user="pbell")
    none = lab.netsession("decoy", "remove", "--user", "pbell")
    assert none.returncode == 1 and "removed 0 decoys" in none.stdout
    bad = lab.netsession("decoy", "add", "--client", "x", "--user", "y", "--transport", "a\x01" * 600)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_decoy_command_without_a_server_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*REAL_COMMAND, "decoy", "list", "--state-dir", str(tmp_path)], capture_output=True, text=True,
        timeout=30, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no decoy control socket" in done.stderr


def test_sighup_reloads_the_sessions_file_and_a_bad_file_keeps_the_table(lab: DecoyServer) -> None:
    assert lab.process is not None
    lab.decoys_file.write_text(SESSIONS + '\n[[session]]\nclient = "10.7.7.7"\nuser = "newbie"\n')
    lab.process.send_signal(signal.SIGHUP)
    wait_until(lambda: lab.sessions(user="newbie"), what="the reloaded decoy")
    before = sorted(s.sesi502_username or "" for s in lab.sessions())
    lab.decoys_file.write_text(SESSIONS + '\n[[session]]\nclient = "10.8.8.8"\nuser = "x"\nopens = "many"\n')
    lab.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in lab.log(), what="the refusal in the log")
    line = next(ln for ln in lab.log().splitlines() if "reload refused" in ln)
    assert f"{lab.decoys_file}:" in line and "'opens'" in line
    assert sorted(s.sesi502_username or "" for s in lab.sessions()) == before
    assert lab.process.poll() is None


def _serve_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REAL_COMMAND, "serve", "--state-dir", str(tmp_path / "st"), "--listen", f"{LOOPBACK}:{free_port()}",
         *args],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_malformed_sessions_file_refused_at_start_with_file_line_reason(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text('[[session]]\nclient = "a"\nuser = "b"\n\n[[session]]\nclient = "c"\nage = "soon"\n')
    done = _serve_fails(tmp_path, "--sessions", str(bad))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert f"{bad}:5" in line and "session 2" in line


@pytest.mark.parametrize("args", [("--personality", "os2"), ("--listen", f"{LOOPBACK}:1=beos")])
def test_unknown_personality_is_one_line_and_nonzero_exit(tmp_path: Path, args: tuple[str, str]) -> None:
    done = _serve_fails(tmp_path, *args)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "unknown personality" in line and "samba-4.17" in line


@pytest.mark.skipif(missing_samba_clients() is not None, reason="Samba client tools not installed")
def test_one_process_lab_windows_hardened_and_samba_listeners(lab: DecoyServer) -> None:
    samba_port: int = lab.samba_port  # type: ignore[attr-defined]
    hardened_port: int = lab.hardened_port  # type: ignore[attr-defined]
    # windows (classic): a plain user lists level 10.
    smb, dce = _impacket(lab.port, ALICE)
    try:
        assert len(_rows(srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10))) == DECOYS + 1
    finally:
        smb.close()
    # windows-hardened: the same call is an RPC fault, status 5.
    smb, dce = _impacket(hardened_port, ALICE)
    try:
        with pytest.raises(DCERPCException) as info:
            srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10)
        assert "access_denied" in str(info.value).lower()
    finally:
        with contextlib.suppress(Exception):
            smb.close()
    # samba-4.17: level 10 does not exist; level 1 shows the bare addresses and no idle time.
    smb, dce = _impacket(samba_port, ADMIN)
    try:
        with pytest.raises(DCERPCException) as info:
            srvs.hNetrSessionEnum(dce, srvs.NULL, srvs.NULL, 10)
        assert "ERROR_INVALID_LEVEL" in str(info.value)
        rows = _rows(srvs.hNetrSessionEnum(dce, "\\\\nowhere\x00", srvs.NULL, 1))  # filters ignored
        assert {r["cname"] for r in rows} == {"10.0.4.23", "WS-FIN-07", "10.0.4.99", "127.0.0.1"}
        assert {r["idle_time"] for r in rows} == {0}
    finally:
        smb.close()
