"""`netsession serve --keytab`: Kerberos logons to our own server, with tickets from the private AD DC's KDC
(``ad_dc.py``) for a service account whose SPN is ``cifs/localhost`` and whose keys the server holds in a
keytab exported from the DC. The client is ours (``netsession list -k``); NTLM keeps working beside it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ad_dc import ActiveDirectoryDC, DomainUser
from netsession_server import ADMIN, NetsessionServerProcess, running_server
from test_kerberos import kerberos_enum

from netsession.errors import ERROR_ACCESS_DENIED, ERROR_LOGON_FAILURE
from netsession.wire.smb2.client import ALL_CIPHERS, ClientConfig

pytestmark = pytest.mark.interop

NETSESSION = [sys.executable, "-m", "netsession.cli"]
SERVICE_ACCOUNT = "nsserve"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("KRB5", "NETSESSION_", "LD_PRELOAD", "NSS_WRAPPER"))}


def cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETSESSION, *argv], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def kerberized(ad_dc: ActiveDirectoryDC, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[NetsessionServerProcess, DomainUser]]:
    """A `netsession serve --keytab` whose keys are the DC's service account ``nsserve``
    (SPN cifs/localhost), and a domain user named like the server's local administrator ``admin``."""
    if SERVICE_ACCOUNT not in ad_dc.users:
        ad_dc.add_user(SERVICE_ACCOUNT, "Srv-acc0unt-pw!")
        ad_dc.samba_tool("spn", "add", "cifs/localhost", SERVICE_ACCOUNT)
        ad_dc.add_user(ADMIN.name, "Dom-Adm1n-pw!")
        ad_dc.kinit(ad_dc.users[ADMIN.name])
    keytab = ad_dc.root / "nsserve.keytab"
    if not keytab.exists():
        ad_dc.samba_tool("domain", "exportkeytab", str(keytab), "--principal=cifs/localhost")
    with running_server(tmp_path_factory.mktemp("kerberized"), options=["--keytab", str(keytab)]) as server:
        yield server, ad_dc.users[ADMIN.name]


def test_serve_keytab_accepts_a_kerberos_logon(
    ad_dc: ActiveDirectoryDC, kerberized: tuple[NetsessionServerProcess, DomainUser]
) -> None:
    server, admin = kerberized
    env = {**_clean_env(), **ad_dc.client_env(admin.name)}
    done = cli("list", "-k", "--level", "502", "--format", "json", "--port", str(server.port), "localhost",
               env=env)
    assert done.returncode == 0, done.stderr + server.log()
    assert '"user_name": "admin"' in done.stdout  # our own session, the local account's name
    assert "cifs/localhost@" in ad_dc.service_tickets(admin.name)  # the referral realm: localhost is in none


def test_serve_keytab_kerberos_user_gets_its_local_accounts_groups(
    ad_dc: ActiveDirectoryDC, kerberized: tuple[NetsessionServerProcess, DomainUser]
) -> None:
    """alice is a plain user here (Users): level 10 is open to her (classic policy), 502 is not."""
    server, _ = kerberized
    env = {**_clean_env(), **ad_dc.client_env("alice")}
    done = cli("list", "-k", "--level", "10", "--port", str(server.port), "localhost", env=env)
    assert done.returncode == 0, done.stderr
    assert "alice" in done.stdout
    done = cli("list", "-k", "--level", "502", "--port", str(server.port), "localhost", env=env)
    assert done.returncode != 0 and f"({ERROR_ACCESS_DENIED})" in done.stderr, done.stderr


def test_serve_keytab_keeps_ntlm(kerberized: tuple[NetsessionServerProcess, DomainUser]) -> None:
    server, _ = kerberized
    done = cli("list", "-U", ADMIN.credentials, "--level", "502", "--port", str(server.port), "127.0.0.1",
               env=_clean_env())
    assert done.returncode == 0, done.stderr
    assert "admin" in done.stdout


def test_serve_keytab_refuses_a_ticket_for_a_key_it_lacks(
    ad_dc: ActiveDirectoryDC, kerberized: tuple[NetsessionServerProcess, DomainUser]
) -> None:
    """A ticket for cifs/127.0.0.1 (the DC's machine account) cannot be decrypted with nsserve's keys:
    a logon failure, not an error of another kind."""
    server, admin = kerberized
    env = {**_clean_env(), **ad_dc.client_env(admin.name)}
    done = cli("list", "-k", "--port", str(server.port), "127.0.0.1", env=env)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # The server's refusal, not "no usable ticket" (the client had one and sent it).
    assert f"({ERROR_LOGON_FAILURE})" in done.stderr and "STATUS_LOGON_FAILURE" in done.stderr, done.stderr
    log = server.log()
    assert "Traceback" not in done.stderr + log
    assert "logon FAILED" in log and "Kerberos:" in log and "not found in keytab" in log, log
    assert server.process is not None and server.process.poll() is None


def test_serve_keytab_missing_is_one_line(tmp_path: Path) -> None:
    done = cli("serve", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--keytab",
               str(tmp_path / "none.keytab"), env=_clean_env())
    assert done.returncode != 0
    assert "none.keytab" in done.stderr and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("netsession:")]
    assert errors == [done.stderr.strip().splitlines()[-1]], done.stderr  # one line, the last



@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_serve_keytab_every_cipher_keyed_by_kerberos(
    ad_dc: ActiveDirectoryDC, kerberized: tuple[NetsessionServerProcess, DomainUser],
    monkeypatch: pytest.MonkeyPatch, cipher: int,
) -> None:
    """Both ends derive the SMB 3 keys from the same 32-byte Kerberos key (16 bytes for signing, all of it
    for the AES-256 ciphers)."""
    server, admin = kerberized
    for name, value in ad_dc.client_env(admin.name).items():
        monkeypatch.setenv(name, value)
    config = ClientConfig(ciphers=(cipher,), encryption_required=True, server_name="localhost")
    pipe, n = asyncio.run(kerberos_enum("localhost", server.port, config))
    assert pipe.smb.conn.cipher == cipher and pipe.smb.conn.session.encrypt_data
    assert n >= 1
