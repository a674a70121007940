"""`netsession serve` against Samba's own torture tests of the rules issue 9 fixed, and the operating
rules: one server per state directory, the audit trail whatever the log level, failed logons audited."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from netsession_server import (
    ADMIN,
    LOOPBACK,
    REAL_COMMAND,
    Account,
    NetsessionServerProcess,
    free_port,
    wait_until,
)

SMBTORTURE = "smbtorture"


def smbtorture(server: NetsessionServerProcess, test: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMBTORTURE, f"//{LOOPBACK}/IPC$", "-p", str(server.port), "-U", ADMIN.credentials, test],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture
def torture() -> None:
    if shutil.which(SMBTORTURE) is None:
        pytest.skip("smbtorture (samba-testsuite) not installed")


@pytest.mark.interop
def test_smbtorture_ntlmssp_bug14932_passes(torture: None, server: NetsessionServerProcess) -> None:
    # A re-authentication with a malformed NTLMv2_CLIENT_CHALLENGE: STATUS_INVALID_PARAMETER, signed
    # (MS-SMB2 §3.3.4.1.1), the session removed (§3.3.5.5.3).
    result = smbtorture(server, "smb2.session.ntlmssp_bug14932")
    assert "success: ntlmssp_bug14932" in result.stdout, result.stdout + result.stderr


@pytest.mark.interop
def test_smbtorture_rpc_samba3_smb2_pipe_name_passes(torture: None, server: NetsessionServerProcess) -> None:
    # CREATE of "\\srvsvc" is STATUS_OBJECT_NAME_NOT_FOUND (MS-SMB2 §2.2.13: names are relative).
    result = smbtorture(server, "rpc.samba3.smb2-pipe-name")
    assert "success: smb2-pipe-name" in result.stdout, result.stdout + result.stderr


def _serve(state_dir: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*REAL_COMMAND, "serve", "--state-dir", str(state_dir),
         "--listen", f"{LOOPBACK}:{port}", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_second_serve_on_the_same_state_directory_refuses_naming_the_first(tmp_path: Path) -> None:
    first_port, second_port = free_port(), free_port()
    first = _serve(tmp_path, first_port, "--log-level", "warning")
    try:
        wait_until(lambda: (tmp_path / "srvsvc.sock").exists(), what="the first server's socket")
        socket_before = (tmp_path / "srvsvc.sock").stat().st_ino
        second = _serve(tmp_path, second_port)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"pid {first.pid}" in lines[0] and f"{LOOPBACK}:{first_port}" in lines[0]
        # The first server's socket is untouched and still answers.
        assert (tmp_path / "srvsvc.sock").stat().st_ino == socket_before
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(tmp_path / "srvsvc.sock"))
    finally:
        first.terminate()
        first.wait(timeout=10)
    # Once the first is gone, the directory is free again (the kernel dropped its lock).
    third = _serve(tmp_path, second_port, "--log-level", "warning")
    try:
        wait_until(lambda: (tmp_path / "srvsvc.sock").exists(), what="the third server's socket")
        assert third.poll() is None
    finally:
        third.terminate()
        third.wait(timeout=10)


@pytest.mark.interop
def test_audit_log_is_json_lines_whatever_the_log_level(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    server = NetsessionServerProcess(
        tmp_path / "state", ("--log-level", "error", "--audit-log", str(audit))
    )
    server.start()
    try:
        result = server.smbclient(Account(ADMIN.name, "wrong password", ADMIN.groups), "-L", LOOPBACK)
        assert result.returncode != 0
        server.rpcclient(ADMIN, "netsessenum")
        events = wait_until(
            lambda: [json.loads(line) for line in audit.read_text().splitlines()]
            if audit.exists() and len(audit.read_text().splitlines()) >= 3 else None,
            what="three audit events",
        )
    finally:
        server.stop()
    kinds = [(e["event"], e.get("success"), e.get("operation")) for e in events]
    assert ("logon", False, None) in kinds and ("logon", True, None) in kinds
    assert any(e["event"] == "srvsvc_call" and e["operation"] == "NetrSessionEnum" for e in events)
    failure = next(e for e in events if e["event"] == "logon" and not e["success"])
    assert failure["user"] == "admin" and failure["client_address"] == LOOPBACK
    assert failure["status"] == "STATUS_LOGON_FAILURE" and failure["time"].endswith("+00:00")
    assert "netsession.audit" not in server.log()  # --log-level error: no human audit lines
