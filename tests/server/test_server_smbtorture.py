r"""Samba's own test suite for the srvsvc interface, ``smbtorture rpc.srvsvc``, against `netsession serve`:
every subtest passes but the one Samba marks dangerous (NetShareAddSetDel, skipped), over a signed session
(the classic server requires signing), an encrypted one (``--encrypt``), and — with ``--allow-guest`` —
the anonymous tcase too."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from netsession_server import ADMIN, LOOPBACK, NetsessionServerProcess

pytestmark = pytest.mark.interop

SMBTORTURE = "smbtorture"
ADMIN_TCASE = "srvsvc (admin access)"
ANON_TCASE = "srvsvc anonymous access"
ADMIN_TESTS = (
    "NetCharDevEnum", "NetCharDevQEnum", "NetConnEnum", "NetFileEnum", "NetSessEnum", "NetShareEnumAll",
    "NetSrvGetInfo", "NetDiskEnum", "NetTransportEnum", "NetRemoteTOD", "NetShareEnum", "NetShareGetInfo",
    "NetNameValidate",
)
ANON_TESTS = ("NetShareEnumAll", "NetShareEnum", "NetShareGetInfo")
DANGEROUS = (f"{ADMIN_TCASE}.NetShareAddSetDel",)  # torture_test.dangerous in source4/torture/rpc/srvsvc.c
_RESULT = re.compile(r"^(success|failure|skip|error): (.+?)(?: \[)?$", re.M)


def smbtorture(
    server: NetsessionServerProcess, *options: str, suite: str = "rpc.srvsvc"
) -> dict[str, list[str]]:
    if shutil.which(SMBTORTURE) is None:
        pytest.skip("smbtorture is not installed (Debian: samba-testsuite)")
    out = subprocess.run(
        [SMBTORTURE, f"--configfile={server.client_conf}", f"//{LOOPBACK}/IPC$", "-p", str(server.port),
         "-U", ADMIN.credentials, *options, suite],
        capture_output=True, text=True, timeout=300, check=False,
    ).stdout
    results: dict[str, list[str]] = {}
    for kind, name in _RESULT.findall(out):
        results.setdefault(kind, []).append(name.strip())
    assert results, out[-3000:]
    return results


@pytest.fixture(scope="module")
def guest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetsessionServerProcess]:
    server = NetsessionServerProcess(tmp_path_factory.mktemp("guest"), ("--allow-guest",))
    server.start()
    yield server
    server.stop()


def _expected(*tcases: tuple[str, tuple[str, ...]]) -> list[str]:
    return sorted(f"{tcase}.{test}" for tcase, tests in tcases for test in tests)


# The servers shared with other tests allow no guests: only the admin tcase runs there (the anonymous one's
# refused logons would slow later logons from 127.0.0.1 through the server's logon throttle).
ADMIN_ONLY = f"rpc.srvsvc.{ADMIN_TCASE}"


def test_smbtorture_rpc_srvsvc_passes_over_a_signed_session(server: NetsessionServerProcess) -> None:
    results = smbtorture(server, "--option=clientsigning=required", suite=ADMIN_ONLY)
    assert "failure" not in results and "error" not in results, results
    assert sorted(results["success"]) == _expected((ADMIN_TCASE, ADMIN_TESTS))
    assert results["skip"] == list(DANGEROUS)


def test_smbtorture_rpc_srvsvc_passes_over_an_encrypted_session(encrypting: NetsessionServerProcess) -> None:
    # `serve --encrypt` refuses any 3.x session that does not encrypt: passing means it did.
    results = smbtorture(encrypting, "--option=clientsmbencrypt=required", "-m", "SMB3", suite=ADMIN_ONLY)
    assert "failure" not in results and "error" not in results, results
    assert sorted(results["success"]) == _expected((ADMIN_TCASE, ADMIN_TESTS))
    assert results["skip"] == list(DANGEROUS)


def test_smbtorture_rpc_srvsvc_passes_every_tcase_with_guests_allowed(
    guest_server: NetsessionServerProcess,
) -> None:
    results = smbtorture(guest_server, "--option=clientsigning=required")
    assert "failure" not in results and "error" not in results, results
    assert sorted(results["success"]) == _expected((ADMIN_TCASE, ADMIN_TESTS), (ANON_TCASE, ANON_TESTS))
    assert results["skip"] == list(DANGEROUS)
