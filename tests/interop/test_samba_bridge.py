r"""``netsession samba-bridge`` as the srvsvc of a real smbd (Debian's 4.17): clients talk to smbd, smbd
hands the srvsvc pipe to the bridge, and the bridge answers from Samba's own session state.

The smbd here has ``external_rpc_pipe:socket_dir`` set (tests/interop/samba_bridge.py); every pipe goes
to the bridge, which serves srvsvc and forwards the others to samba-dcerpcd. Sessions are held by quiet
clients of our own (no SMB2 ECHO) so idle times mean something; clients connect to 127.0.0.2 and
127.0.0.3 to have client names of their own.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from impacket.dcerpc.v5 import srvs, transport
from impacket.smbconnection import SMBConnection
from samba import missing_prerequisites, stop_processes_naming
from samba_bridge import (
    NETSESSION,
    BridgedSamba,
    rpcclient,
    running_bridged_samba,
    session_count,
    speak,
    wait_for,
)

from netsession.client.errors import TransportError
from netsession.client.rpc import RpcFaultError, SrvsvcClient
from netsession.client.transport import SmbPipeTransport
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_MORE_DATA,
    NERR_ClientNameNotFound,
    NERR_Success,
    NERR_UserNotFound,
)
from netsession.samba.npa import NtStatus
from netsession.samba.service import RPC_S_CALL_FAILED

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
TRANSPORT = "\\Device\\NetbiosSmb"


@pytest.fixture(scope="module")
def bridged_server() -> Iterator[BridgedSamba]:
    reason = missing_prerequisites()
    if reason is not None:
        pytest.skip(f"cannot start a private smbd: {reason}")
    with running_bridged_samba() as server:
        # The first pipe open makes the bridge start samba-dcerpcd and smbd fork: done outside the tests.
        admin(server).close()
        yield server


@pytest.fixture
def bridged(bridged_server: BridgedSamba) -> Iterator[BridgedSamba]:
    """The smbd with its bridge running and no session held before and after the test."""
    server = bridged_server
    if server.bridge is None or server.bridge.poll() is not None:
        server.start_bridge()
    yield server
    server.release_quiet()
    for held in server.held:
        held.close()
    server.held.clear()
    assert wait_for(lambda: session_count(server) == 0), server.sessions()


def admin(server: BridgedSamba, user: str = "nsadmin") -> SrvsvcClient:
    account = server.users[user]
    pipe = SmbPipeTransport(HOST, server.port, username=account.name, password=account.password)
    client = SrvsvcClient(pipe)
    client.connect()
    return client


def entries_of(server: BridgedSamba, level: int, client: str | None = None, user: str | None = None,
               caller: str = "nsadmin") -> list[Any]:
    c = admin(server, caller)
    try:
        response = c.session_enum(level, client, user)
    finally:
        c.close()
    assert response.status == NERR_Success, response.status
    return list(response.entries)


def record_of(server: BridgedSamba, user: str, cname: str, level: int = 502) -> Any:
    found = [e for e in entries_of(server, level, cname, user)]
    assert len(found) == 1, found
    return found[0]


# -- the hand-over and the forwarder --------------------------------------------------------------------


def test_rpcclient_srvsvc_calls_reach_the_bridge(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.2")
    done = rpcclient(bridged, bridged.users["nsadmin"], r"netsessenum \\\\127.0.0.2 alice 502")
    assert "Received 1 entries." in done.stdout, done.stdout + done.stderr
    audit = bridged.audit_log.read_text()
    assert "operation=NetrSessionEnum level=502 result=NERR_Success entries=1/1" in audit
    assert "caller=NSTESTSRV\\nsadmin" in audit


def test_forwarded_pipes_keep_working(bridged: BridgedSamba) -> None:
    query = rpcclient(bridged, bridged.users["nsadmin"], "lsaquery")
    assert f"Domain Name: {bridged.workgroup}" in query.stdout, query.stdout + query.stderr
    users = rpcclient(bridged, bridged.users["nsadmin"], "enumdomusers")
    assert "user:[alice]" in users.stdout and "user:[bob]" in users.stdout, users.stdout + users.stderr


def test_shares_are_samba_s(bridged: BridgedSamba) -> None:
    done = rpcclient(bridged, bridged.users["nsadmin"], "netshareenumall")
    assert "netname: share" in done.stdout and "netname: IPC$" in done.stdout, done.stdout + done.stderr


def _raw_handshake(server: BridgedSamba, blob: bytes) -> tuple[bytes, bool]:
    """Send ``blob`` to the bridge's srvsvc socket; the reply, and whether the bridge then closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(server.socket_dir / "np" / "srvsvc"))
        s.sendall(blob)
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return reply, True
            reply += chunk


def test_malformed_request_ends_that_connection_alone_with_the_status(bridged: BridgedSamba) -> None:
    # NPAM level 7 with a truncated info7.
    body = b"NPAM" + struct.pack("<II", 7, 7) + b"\x01\x00\x00\x00"
    reply, closed = _raw_handshake(bridged, struct.pack(">I", len(body)) + body)
    assert closed and len(reply) == 36
    assert struct.unpack_from("<I", reply, 32)[0] == NtStatus.STATUS_INVALID_PARAMETER
    # Oversized: refused from its length alone.
    reply, closed = _raw_handshake(bridged, struct.pack(">I", 0x00FFFFFF) + b"NPAM")
    assert closed and struct.unpack_from("<I", reply, 32)[0] == NtStatus.STATUS_INVALID_BUFFER_SIZE
    # Unknown level.
    body = b"NPAM" + struct.pack("<II", 3, 3)
    reply, closed = _raw_handshake(bridged, struct.pack(">I", len(body)) + body)
    assert closed and struct.unpack_from("<I", reply, 32)[0] == NtStatus.STATUS_INVALID_LEVEL
    # Everyone else is still served.
    assert entries_of(bridged, 0)


# -- Samba's sessions, levels, times ---------------------------------------------------------------------


def test_level_502_reports_samba_s_session_with_real_times(bridged: BridgedSamba) -> None:
    before = time.time()
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.2")
    time.sleep(2.2)
    record = record_of(bridged, "alice", r"\\127.0.0.2")
    elapsed = time.time() - before
    assert record.sesi502_username == "alice"
    assert 2 <= record.sesi502_time <= elapsed + 1
    assert record.sesi502_idle_time >= 2  # nothing was sent since the TREE_CONNECT
    assert record.sesi502_num_opens == 0  # IPC$ only, no open
    assert record.sesi502_user_flags == 0
    assert record.sesi502_cltype_name == ""
    assert record.sesi502_transport == TRANSPORT


def test_every_level_answers_through_smbd(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["bob"], "127.0.0.3")
    for level in (0, 1, 2, 10, 502):
        names = [e.sesi0_cname if level == 0 else e[0] for e in entries_of(bridged, level)]
        assert r"\\127.0.0.3" in names, (level, names)


def test_idle_time_grows_while_quiet_and_resets_when_the_client_speaks(bridged: BridgedSamba) -> None:
    smb = bridged.hold_quiet(bridged.users["alice"], "127.0.0.2")
    first = record_of(bridged, "alice", r"\\127.0.0.2", 10).sesi10_idle_time
    time.sleep(2.5)
    later = record_of(bridged, "alice", r"\\127.0.0.2", 10).sesi10_idle_time
    assert later >= first + 2
    speak(smb)
    after = record_of(bridged, "alice", r"\\127.0.0.2", 10)
    assert after.sesi10_idle_time <= 1
    assert after.sesi10_time >= 2  # the session's age is not reset


def test_num_opens_counts_the_session_s_opens(bridged: BridgedSamba) -> None:
    c = admin(bridged)  # nsadmin's session holds its srvsvc pipe open
    try:
        mine = [e for e in c.session_enum(502, None, "nsadmin").entries]
    finally:
        c.close()
    assert len(mine) == 1 and mine[0].sesi502_num_opens == 1


def test_filters_select_client_and_user(bridged: BridgedSamba) -> None:
    alice, bob = bridged.users["alice"], bridged.users["bob"]
    bridged.hold_quiet(alice, "127.0.0.2")
    bridged.hold_quiet(alice, "127.0.0.3")
    bridged.hold_quiet(bob, "127.0.0.2")
    on_two = sorted(e.sesi10_username for e in entries_of(bridged, 10, r"\\127.0.0.2"))
    assert on_two == ["alice", "bob"]
    names = sorted(e.sesi10_cname for e in entries_of(bridged, 10, None, "ALICE"))
    assert names == [r"\\127.0.0.2", r"\\127.0.0.3"]
    c = admin(bridged)
    try:
        assert c.session_enum(10, r"\\127.0.0.3", "bob").status == NERR_UserNotFound
        assert c.session_enum(10, r"\\127.0.0.9", None).status == NERR_ClientNameNotFound
    finally:
        c.close()


def test_paging_with_a_resume_handle_over_a_few_hundred_sessions(bridged: BridgedSamba) -> None:
    bob = bridged.users["bob"]
    count = 200
    for i in range(count):
        bridged.hold_quiet(bob, ("127.0.0.2", "127.0.0.3")[i % 2])
    c = admin(bridged)
    try:
        seen: list[tuple[str, int]] = []
        resume = 0
        pages = 0
        while True:
            r = c.session_enum(502, None, "bob", 2000, resume)
            assert r.status in (NERR_Success, ERROR_MORE_DATA)
            seen += [(e.sesi502_cname, e.sesi502_time) for e in r.entries]
            pages += 1
            if r.status == NERR_Success:
                break
            assert r.entries and r.resume_handle
            resume = r.resume_handle
        assert len(seen) == count and pages > 5
        assert r.total_entries == len(r.entries)
    finally:
        c.close()


def test_impacket_gets_levels_10_and_502_through_smbd(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.2")
    account = bridged.users["nsadmin"]
    smb = SMBConnection(HOST, HOST, sess_port=bridged.port, timeout=10)
    smb.login(account.name, account.password)
    try:
        rpc = transport.SMBTransport(HOST, filename=r"\srvsvc", smb_connection=smb)
        dce = rpc.get_dce_rpc()
        dce.connect()
        dce.bind(srvs.MSRPC_UUID_SRVS)
        resp = srvs.hNetrSessionEnum(dce, "\x00", srvs.NULL, 10)
        rows = resp["InfoStruct"]["SessionInfo"]["Level10"]["Buffer"]
        names = {(r["sesi10_cname"][:-1], r["sesi10_username"][:-1]) for r in rows}
        assert (r"\\127.0.0.2", "alice") in names
        resp = srvs.hNetrSessionEnum(dce, "\x00", srvs.NULL, 502)
        rows = resp["InfoStruct"]["SessionInfo"]["Level502"]["Buffer"]
        alice = [r for r in rows if r["sesi502_username"][:-1] == "alice"]
        assert alice and alice[0]["sesi502_cname"][:-1] == r"\\127.0.0.2"
        assert alice[0]["sesi502_transport"][:-1] == TRANSPORT and alice[0]["sesi502_time"] >= 0
        dce.disconnect()
    finally:
        smb.close()


def test_netsession_list_through_smbd(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.3")
    account = bridged.users["nsadmin"]
    done = subprocess.run(
        [*NETSESSION, "list", HOST, "--port", str(bridged.port), "-U",
         f"{account.name}%{account.password}", "--level", "502", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "NETSESSION_TIMEOUT": "30"},
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    alice = [r for r in rows if r["user_name"] == "alice"]
    assert alice and alice[0]["client_name"] == r"\\127.0.0.3" and alice[0]["transport"] == TRANSPORT


# -- NetrSessionDel ----------------------------------------------------------------------------------------


def test_netrsessiondel_ends_one_client_s_session_and_keeps_the_same_user_s_other(
    bridged: BridgedSamba,
) -> None:
    alice = bridged.users["alice"]
    gone = bridged.hold_quiet(alice, "127.0.0.2")
    bridged.hold_quiet(alice, "127.0.0.3")
    c = admin(bridged)
    try:
        assert c.session_del(r"\\127.0.0.2", "alice").status == NERR_Success
        assert wait_for(lambda: session_count(bridged, "alice") == 1)
        left = [s for s in bridged.sessions() if s["username"] == "alice"]
        assert left[0]["hostname"].startswith("ipv4:127.0.0.3:")
        assert c.session_del(r"\\127.0.0.2", "alice").status == NERR_ClientNameNotFound
    finally:
        c.close()
    with pytest.raises(TransportError):
        speak(gone)  # its session is gone: STATUS_USER_SESSION_DELETED / NETWORK_SESSION_EXPIRED


def test_netrsessiondel_with_no_match_is_nerr_clientnamenotfound(bridged: BridgedSamba) -> None:
    c = admin(bridged)
    try:
        assert c.session_del(r"\\127.0.0.9", None).status == NERR_ClientNameNotFound
        assert c.session_del(None, "nobody").status == NERR_ClientNameNotFound
    finally:
        c.close()


def test_non_admins_get_what_the_classic_policy_says(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["bob"], "127.0.0.2")
    c = admin(bridged, "alice")
    try:
        assert c.session_enum(10).status == NERR_Success
        assert c.session_enum(502).status == ERROR_ACCESS_DENIED
        assert c.session_del(r"\\127.0.0.2", "bob").status == ERROR_ACCESS_DENIED
    finally:
        c.close()
    assert session_count(bridged, "bob") == 1


def test_hardened_policy_faults_non_admins(bridged: BridgedSamba) -> None:
    bridged.policy = "hardened"
    try:
        bridged.start_bridge()
        c = admin(bridged, "alice")
        try:
            with pytest.raises(RpcFaultError) as info:
                c.session_enum(10)
            assert info.value.fault_status == ERROR_ACCESS_DENIED
        finally:
            c.close()
        assert entries_of(bridged, 10)  # an administrator still sees them
    finally:
        bridged.policy = "classic"
        bridged.start_bridge()


# -- the bridge stopping and starting ----------------------------------------------------------------------


def test_bridge_stopping_fails_srvsvc_cleanly_and_smbd_keeps_serving_files(bridged: BridgedSamba) -> None:
    held_at = time.time()
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.2")
    bridged.stop_bridge()
    assert not (bridged.socket_dir / "np" / "srvsvc").exists()
    with pytest.raises(TransportError):
        admin(bridged)
    account = bridged.users["bob"]
    (bridged.root / "share" / "hello.txt").write_text("hello")
    bridged.root.chmod(0o711)  # the test directory is mkdtemp's 0700: let bob's smbd reach the share
    (bridged.root / "share").chmod(0o755)
    done = subprocess.run(
        ["smbclient", "//127.0.0.1/share", "-p", str(bridged.port), "-s", str(bridged.conf),
         "-U", f"{account.name}%{account.password}", "-c", "ls"],
        env=bridged.env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0 and "hello.txt" in done.stdout, done.stdout + done.stderr
    # Restarted, it picks up the session held all along.
    bridged.start_bridge()
    time.sleep(max(0.0, held_at + 1.5 - time.time()))
    # Its time counts from the session's creation, before the bridge's restart.
    assert record_of(bridged, "alice", r"\\127.0.0.2", 10).sesi10_time >= 1


def test_unreadable_samba_state_is_a_fault_reported_once(bridged: BridgedSamba) -> None:
    # The same smbd, and a bridge whose smb.conf names a lock directory without Samba's databases.
    wrong = bridged.root / "wrong.conf"
    empty = bridged.root / "empty-lock"
    empty.mkdir(exist_ok=True)
    wrong.write_text(bridged.conf.read_text().replace(
        f"lock directory = {bridged.root}/lock", f"lock directory = {empty}"
    ))
    bridged.start_bridge("--smb-conf", str(wrong))
    try:
        for _ in range(2):
            c = admin(bridged)
            try:
                with pytest.raises(RpcFaultError) as info:
                    c.session_enum(10)
                assert info.value.fault_status == RPC_S_CALL_FAILED
            finally:
                c.close()
        log = bridged.bridge_tail(200)
        assert log.count("cannot read Samba's sessions") == 1
        assert f"{empty}/smbXsrv_session_global.tdb" in log
    finally:
        bridged.start_bridge()
        stop_processes_naming(wrong)  # a samba-dcerpcd that bridge may have started with wrong.conf


def test_rpcclient_netsessdel_through_smbd_ends_that_session(bridged: BridgedSamba) -> None:
    bridged.hold_quiet(bridged.users["bob"], "127.0.0.3")
    bridged.hold_quiet(bridged.users["alice"], "127.0.0.3")
    done = rpcclient(bridged, bridged.users["nsadmin"], r"netsessdel \\\\127.0.0.3 bob")
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_for(lambda: session_count(bridged, "bob") == 0)
    assert session_count(bridged, "alice") == 1
    again = rpcclient(bridged, bridged.users["nsadmin"], r"netsessdel \\\\127.0.0.3 bob")
    assert "CLIENTNAMENOTFOUND" in again.stdout + again.stderr
