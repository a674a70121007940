"""`netsession scan` against the simulated fleet and a private Samba: every verdict from its real cause."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fleet_sim import Fleet
from netsession_server import ADMIN, ALICE, BOB
from samba import SambaServer

from netsession.cli import main
from netsession.client.pool import Credentials
from netsession.fleet import Scanner, ScanOptions, Session, iter_targets, scan
from netsession.fleet.names import ReverseResolver, split_cname
from netsession.fleet.probe import HostConnection
from netsession.fleet.results import Verdict

ALICE_U = f"{ALICE.name}%{ALICE.password}"
FAST = ["--concurrency", "64", "--deadline", "3", "--no-progress"]
SCHEMA_DIR = Path(__file__).parent / "opengraph_schema"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def hosts_of(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["host"]: o for o in objs if o["type"] == "host"}


# -- verdicts from their real causes -------------------------------------------------------------------


def test_every_verdict_of_the_simulated_fleet_from_its_cause(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = (fleet.classic_hosts[:20] + fleet.hardened_hosts[:5] + fleet.unused_hosts[:5]
              + fleet.tarpit_hosts[:3] + fleet.not_smb_hosts[:2])
    code, out, _ = run(capsys, "scan", *fleet.targets(sample), "no-such-host.invalid",
                         "-U", ALICE_U, "--format", "jsonl", *FAST)
    hosts = hosts_of(jsonl(out))
    assert len(hosts) == len(sample) + 1
    for h in fleet.classic_hosts[:20]:
        assert hosts[h]["verdict"] == "sessions" and hosts[h]["level"] == 10 and hosts[h]["sessions"] >= 1
    for h in fleet.hardened_hosts[:5]:
        assert hosts[h]["verdict"] == "hardened", hosts[h]
        assert hosts[h]["error"] == "ERROR_ACCESS_DENIED"
    for h in fleet.unused_hosts[:5]:
        assert (hosts[h]["verdict"], hosts[h]["error"]) == ("unreachable", "WSAECONNREFUSED")
    for h in fleet.tarpit_hosts[:3]:
        assert hosts[h]["verdict"] == "timeout"
    assert hosts["no-such-host.invalid"]["verdict"] == "unreachable"
    assert hosts["no-such-host.invalid"]["error"] == "WSAHOST_NOT_FOUND"
    assert code == 3  # partial success: some answered, some did not


def test_not_smb_verdict_for_a_host_that_speaks_something_else(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "scan", *fleet.targets(fleet.not_smb_hosts[:2]), "-U", ALICE_U,
                       "--format", "jsonl", *FAST)
    assert {h["verdict"] for h in hosts_of(jsonl(out)).values()} == {"not-smb"}


@pytest.fixture(scope="module")
def impacket_smbd(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from netsession_server import free_port, wait_until

    port = free_port()
    log = tmp_path_factory.mktemp("impacket") / "smbd.log"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("impacket_smbd.py")), str(port), ALICE.name,
         ALICE.password, str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, what="impacket's SMB server")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_protocol_error_verdict_for_impackets_broken_fault_pdu(
    impacket_smbd: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "scan", f"127.0.0.1:{impacket_smbd}", "-U", ALICE_U, "--format", "jsonl", *FAST)
    (host,) = hosts_of(jsonl(out)).values()
    assert (host["verdict"], host["error"]) == ("protocol-error", "RPC_S_PROTOCOL_ERROR")
    assert "fault" in host["detail"]


def test_logon_failed_verdict_for_a_wrong_password(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:2]), "-U", "alice%wrong",
                       "--format", "jsonl", *FAST)
    verdicts = {h["verdict"] for h in hosts_of(jsonl(out)).values()}
    assert verdicts == {"logon-failed"}
    assert code == 1  # no host answered


def test_access_denied_verdict_is_the_stub_status(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    # classic policy: level 1 needs Administrators; a plain user gets ERROR_ACCESS_DENIED in the stub.
    _, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:1]), "-U", ALICE_U,
                    "--level", "1", "--format", "jsonl", *FAST)
    (host,) = hosts_of(jsonl(out)).values()
    assert (host["verdict"], host["error"]) == ("access-denied", "ERROR_ACCESS_DENIED")


def test_level_limited_against_samba_steps_from_10_to_1(
    fleet_samba: SambaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = fleet_samba.users["nsadmin"]
    held = fleet_samba.hold_session(fleet_samba.users["bob"])
    try:
        code, out, _ = run(capsys, "scan", f"127.0.0.1:{fleet_samba.port}", "-U",
                           f"{admin.name}%{admin.password}", "--format", "jsonl", *FAST)
    finally:
        held.close()
    objs = jsonl(out)
    (host,) = hosts_of(objs).values()
    assert (host["verdict"], host["level"]) == ("level-limited", 1)
    assert "bob" in {o["user_name"] for o in objs if o["type"] == "session"}
    assert code == 0


def test_access_denied_against_samba_for_a_plain_user(
    fleet_samba: SambaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = fleet_samba.users["alice"]
    _, out, _ = run(capsys, "scan", f"127.0.0.1:{fleet_samba.port}", "-U",
                    f"{alice.name}%{alice.password}", "--format", "jsonl", *FAST)
    (host,) = hosts_of(jsonl(out)).values()
    assert host["verdict"] == "access-denied"


# -- deadline, paging, names -----------------------------------------------------------------------------


def test_deadline_holds_for_hosts_that_never_answer(fleet: Fleet) -> None:
    async def go() -> list[Any]:
        opts = ScanOptions(Credentials(ALICE.name, ALICE.password), deadline=1.5, concurrency=16)
        return [r async for r in scan(iter_targets(fleet.targets(fleet.tarpit_hosts)), opts)]

    started = time.monotonic()
    results = asyncio.run(go())
    wall = time.monotonic() - started
    assert {r.verdict for r in results} == {Verdict.TIMEOUT}
    assert all(r.elapsed < 1.5 + 0.5 for r in results)
    # all ten at once: one deadline for the lot, not ten in a row
    assert wall < 1.5 * 3


def test_paging_follows_error_more_data_to_the_last_session(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int | None]] = []
    real = HostConnection.enum

    async def counting(self: HostConnection, level: int, resume: int | None, prefmaxlen: int) -> Any:
        calls.append((level, resume))
        return await real(self, level, resume, prefmaxlen)

    monkeypatch.setattr(HostConnection, "enum", counting)
    target = fleet.targets(fleet.classic_hosts[:1])

    async def go(page_size: int) -> Any:
        opts = ScanOptions(Credentials(ALICE.name, ALICE.password), deadline=10, concurrency=1,
                           page_size=page_size, resolve_names=False)
        (result,) = [r async for r in scan(iter_targets(target), opts)]
        return result

    whole = asyncio.run(go(0xFFFFFFFF))
    assert len(calls) == 1
    calls.clear()
    paged = asyncio.run(go(100))  # one level-10 record (about 76 bytes) per page
    assert len(calls) == len(paged.sessions) >= 1
    assert calls[0][1] == 0 and len({r for _, r in calls}) == len(calls)
    assert len(paged.sessions) == len(whole.sessions)


def test_paging_through_thousands_of_sessions(busy_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int | None] = []
    real = HostConnection.enum

    async def counting(self: HostConnection, level: int, resume: int | None, prefmaxlen: int) -> Any:
        calls.append(resume)
        return await real(self, level, resume, prefmaxlen)

    monkeypatch.setattr(HostConnection, "enum", counting)
    expected = len(busy_server.sessions())  # the server's own count, over its local socket
    assert expected >= 3000

    async def go() -> Any:
        opts = ScanOptions(Credentials(ALICE.name, ALICE.password), deadline=30, concurrency=1,
                           page_size=4096, resolve_names=False)
        (result,) = [r async for r in scan(iter_targets([f"127.0.0.1:{busy_server.port}"]), opts)]
        return result

    result = asyncio.run(go())
    assert result.verdict is Verdict.SESSIONS
    assert len(result.sessions) == expected + 1  # and our own session, made by the scan
    assert sum(s.user_name == ALICE.name for s in result.sessions) == 1
    assert len(calls) > 20 and len(set(calls)) == len(calls)  # many pages, each resumed further on


def test_reverse_names_keep_address_and_name_and_unresolved_sessions(fleet: Fleet) -> None:
    async def go() -> tuple[Any, Any, list[Session]]:
        opts = ScanOptions(Credentials(ALICE.name, ALICE.password), deadline=5, concurrency=1)
        (result,) = [r async for r in scan(iter_targets(fleet.targets(fleet.classic_hosts[:1])), opts)]
        resolver = ReverseResolver(deadline=0.5)
        unresolved = await resolver.name("127.0.99.99")
        scanner = Scanner(ScanOptions(name_deadline=0.5))
        sessions = [Session("\\\\127.0.99.99", "carol", client_address="127.0.99.99")]
        await scanner._names(sessions)
        scanner.close()
        resolver.close()
        return result, unresolved, sessions

    result, unresolved, sessions = asyncio.run(go())
    s = result.sessions[0]
    assert (s.client_address, s.client_name) == ("127.0.0.1", "localhost")
    assert unresolved is None
    assert len(sessions) == 1 and sessions[0].client_name is None and sessions[0].client_address


def test_split_cname_keeps_addresses_and_names_apart() -> None:
    assert split_cname("\\\\10.0.0.5") == ("10.0.0.5", None)
    assert split_cname("\\\\[::1]") == ("::1", None)
    assert split_cname("WS1") == (None, "WS1")
    assert split_cname(None) == (None, None)


def test_exclude_self_drops_only_the_scanners_own_session(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    held = fleet.classic.hold_smbclient(BOB)
    try:
        args = ["scan", *fleet.targets(fleet.classic_hosts[:1]), "-U", ALICE_U, "--format", "jsonl",
                *FAST, "--concurrency", "1"]
        _, with_self, _ = run(capsys, *args)
        _, without, _ = run(capsys, *args, "--exclude-self")
    finally:
        held.close()
    users = [o["user_name"] for o in jsonl(with_self) if o["type"] == "session"]
    users_ex = [o["user_name"] for o in jsonl(without) if o["type"] == "session"]
    assert "alice" in users and "bob" in users
    assert "bob" in users_ex
    assert users_ex.count("alice") == users.count("alice") - 1


def test_anonymous_session_is_listed_and_flagged(fleet: Fleet) -> None:
    # a null session (MS-NLMP 3.2.5.1.2, admitted by serve --allow-guest) held open while the admin scans
    from netsession import aio

    async def go() -> Any:
        anonymous = Credentials(username="")
        host = fleet.targets(fleet.classic_hosts[:1])[0]
        async with aio.connect(host, credentials=anonymous, timeout=10):
            opts = ScanOptions(Credentials(ADMIN.name, ADMIN.password), deadline=5, concurrency=1,
                               resolve_names=False)
            return [r async for r in scan(iter_targets([host]), opts)]

    (result,) = asyncio.run(go())
    anonymous = [s for s in result.sessions if s.anonymous]
    assert len(anonymous) == 1 and anonymous[0].as_dict()["anonymous"] is True
    assert anonymous[0].client_address == "127.0.0.1"
    assert any(s.user_name == ADMIN.name and not s.anonymous for s in result.sessions)


def test_machine_accounts_and_anonymous_sessions_are_flagged_not_dropped() -> None:
    machine = Session("\\\\10.0.0.9", "WS9$")
    anonymous = Session("\\\\10.0.0.8", "")
    user = Session("\\\\10.0.0.7", "alice")
    assert machine.as_dict()["machine_account"] and not machine.as_dict()["anonymous"]
    assert anonymous.as_dict()["anonymous"] and not anonymous.as_dict()["machine_account"]
    assert not user.as_dict()["machine_account"] and not user.as_dict()["anonymous"]


def test_guest_session_is_listed_and_flagged(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    # smbclient -N logs on as a guest (serve --allow-guest); the admin sees it at level 1 with SESS_GUEST
    held = subprocess.Popen(
        ["smbclient", "-s", str(fleet.classic.client_conf), "//127.0.0.1/IPC$", "-p", str(fleet.port), "-N"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from netsession_server import wait_until

        wait_until(lambda: any(s.sesi502_user_flags & 1 for s in fleet.classic.sessions()), what="a guest")
        _, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:1]), "-U",
                        f"{ADMIN.name}%{ADMIN.password}", "--level", "1", "--format", "jsonl", *FAST)
    finally:
        assert held.stdin is not None
        held.stdin.close()
        held.wait(5)
    sessions = [o for o in jsonl(out) if o["type"] == "session"]
    guests = [o for o in sessions if o["guest"]]
    assert guests and all(not o["anonymous"] for o in guests)
    assert any(o["user_name"] == "admin" and o["guest"] is False for o in sessions)


# -- output ------------------------------------------------------------------------------------------------


def test_jsonl_objects_have_the_stable_keys(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:2] + fleet.unused_hosts[:1]),
                    "-U", ALICE_U, "--format", "jsonl", *FAST)
    objs = jsonl(out)
    host_keys = {"type", "host", "address", "verdict", "sessions", "level", "error"}
    session_keys = {"type", "host", "client_address", "client_name", "user_name", "active_time", "idle_time"}
    assert all(host_keys <= set(o) for o in objs if o["type"] == "host")
    assert all(session_keys <= set(o) for o in objs if o["type"] == "session")
    assert sum(o["type"] == "host" for o in objs) == 3


def test_csv_output_has_a_row_per_host_and_session(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    _, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:1]), "-U", ALICE_U,
                    "--format", "csv", *FAST)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["type"] == "host" and rows[0]["verdict"] == "sessions"
    assert int(rows[0]["sessions"]) == sum(r["type"] == "session" for r in rows) >= 1


def test_summary_counts_the_verdicts(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:3] + fleet.hardened_hosts[:2]),
                       "-U", ALICE_U, "--summary", *FAST)
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines()[1:]}
    assert lines["sessions"] == "3" and lines["hardened"] == "2" and lines["timeout"] == "0"
    assert out.startswith("5 hosts")
    assert code == 3


def test_bloodhound_output_validates_against_the_opengraph_schema(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    held = fleet.classic.hold_smbclient(BOB)
    try:
        path = tmp_path / "sessions.json"
        code, _, _ = run(capsys, "scan", *fleet.targets(fleet.classic_hosts[:3]), "-U", ALICE_U,
                         "--format", "bloodhound", "--domain", "corp.local", "-o", str(path), *FAST)
    finally:
        held.close()
    doc = json.loads(path.read_text())
    registry = _schema_registry()
    jsonschema.validate(doc, registry["payload.json"], registry=_referencing(registry))
    edges = doc["graph"]["edges"]
    assert edges and all(e["kind"] == "HasSession" for e in edges)
    pairs = {(e["start"]["value"], e["end"]["value"]) for e in edges}
    assert (fleet.classic_hosts[0].upper(), "BOB@CORP.LOCAL") in pairs
    assert all(e["start"]["kind"] == "Computer" and e["end"]["kind"] == "User" for e in edges)
    assert code == 0


def test_the_vendored_schema_rejects_a_bad_edge() -> None:
    registry = _schema_registry()
    bad = {"graph": {"nodes": [], "edges": [{"kind": "Has Session", "start": {"value": "a"},
                                              "end": {"value": "b"}, "properties": {}}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, registry["payload.json"], registry=_referencing(registry))


def _schema_registry() -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}


def _referencing(schemas: dict[str, Any]) -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    return Registry().with_resources(
        (name, Resource.from_contents(s, default_specification=DRAFT202012)) for name, s in schemas.items()
    )


# -- targets and bad input ---------------------------------------------------------------------------


def test_unparseable_targets_are_reported_one_line_each_and_skipped(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "scan", "bad:port:x", *fleet.targets(fleet.classic_hosts[:1]), "10.0.0.0/99",
                         "-U", ALICE_U, "--format", "jsonl", *FAST)
    skipped = [line for line in err.splitlines() if "skipped target" in line]
    assert len(skipped) == 2
    assert len(hosts_of(jsonl(out))) == 1
    assert code == 0


def test_unreadable_target_file_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "scan", "-f", "/nonexistent/targets.txt", "--no-progress")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot read the target file" in err


def test_target_file_and_stdin(fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import io

    f = tmp_path / "targets"
    f.write_text(f"# servers\n{fleet.targets(fleet.classic_hosts[:1])[0]}  # fs\n\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(fleet.targets(fleet.classic_hosts[1:2])[0] + "\n"))
    _, out, _ = run(capsys, "scan", "-f", str(f), "-f", "-", "-U", ALICE_U, "--format", "jsonl", *FAST)
    assert set(hosts_of(jsonl(out))) == set(fleet.classic_hosts[:2])


def test_cidr_ranges_expand_lazily() -> None:
    from netsession.fleet.targets import parse_target

    hosts = parse_target("10.0.0.0/8")  # 16 million addresses: never a list
    assert not isinstance(hosts, (list, tuple))
    first = [next(hosts).host for _ in range(3)]
    assert first == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert [t.key for t in parse_target("[2001:db8::/126]:4455")][:1] == ["[2001:db8::1]:4455"]


def test_ctrl_c_stops_cleanly_and_resume_skips_finished_hosts(fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "scan.state"
    targets = fleet.targets(fleet.classic_hosts[:5] + fleet.tarpit_hosts[:2])
    cmd = [sys.executable, "-m", "netsession.cli", "scan", *targets, "-U", ALICE_U, "--format", "jsonl",
           "--resume", str(state), "--deadline", "30", "--concurrency", "8", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # the five live hosts finish at once; the two tarpits hold the scan open until we interrupt
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists() and len(state.read_text().splitlines()) >= 6:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    first = hosts_of(jsonl(out))
    assert set(first) == set(fleet.classic_hosts[:5])
    # resumed: the finished hosts are not scanned again
    cmd2 = [*cmd[:-7], "--resume", str(state), "--deadline", "1", "--concurrency", "8", "--no-progress"]
    done = subprocess.run(cmd2, capture_output=True, text=True, timeout=60)
    second = hosts_of(jsonl(done.stdout))
    assert set(second) == set(fleet.tarpit_hosts[:2])
    assert done.returncode == 3


def test_progress_bar_on_a_terminal_only(fleet: Fleet) -> None:
    import pty

    targets = fleet.targets(fleet.classic_hosts[:3])
    cmd = [sys.executable, "-m", "netsession.cli", "scan", *targets, "-U", ALICE_U, "--format", "jsonl",
           "--concurrency", "4"]
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "150"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    out, _ = proc.communicate(timeout=60)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.returncode == 0
    assert b"scanning" in seen and b"3/3" in seen
    assert len(jsonl(out.decode())) >= 3  # the rows still went to stdout, clean
