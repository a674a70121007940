"""Kerberos end to end against a real KDC: the private Samba AD DC of ``ad_dc.py`` (its KDC, and its own
smbd answering srvsvc), tickets from kinit in private credential caches, and our client — the CLI
(``netsession list -k``) in a subprocess, the Python API, and :class:`KerberosInitiator` itself against an
independent acceptor (pyspnego's, with the DC's keytab).

The DC's srvsvc (Samba's) answers NetrSessionEnum only for Domain Admins (``nsadmin`` here) and refuses a
plain user (``alice``) with ERROR_ACCESS_DENIED in the stub: so alice's calls show the Kerberos logon got
through (a logon failure would be ERROR_LOGON_FAILURE) and the refusal came from srvsvc. The DC's log
confirms every Kerberos logon (``Successful AuthZ: [SMB2,krb5]``), and the credential cache shows the
service ticket the client asked for.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ad_dc import ActiveDirectoryDC

import netsession
from netsession import aio
from netsession.client.arpc import AsyncSrvsvcClient
from netsession.client.errors import CREDENTIALS, PROTOCOL, UNSUPPORTED, DeadlineExpired, TransportError
from netsession.client.kerberos import MECH_TYPES, KerberosInitiator
from netsession.client.pool import ConnectionPool, Credentials, set_pool
from netsession.client.smb import SmbPipe
from netsession.errors import ERROR_ACCESS_DENIED, ERROR_LOGON_FAILURE, NetApiError
from netsession.wire.smb2.client import ALL_CIPHERS, ClientConfig
from netsession.wire.spnego import (
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    decode_token,
    encode_neg_token_init2,
    encode_neg_token_resp,
)
from netsession.wire.srvsvc import SRVSVC_PIPE

pytestmark = pytest.mark.interop

NETSESSION = [sys.executable, "-m", "netsession.cli"]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "NETSESSION_", "LD_PRELOAD",
                                                                     "NSS_WRAPPER"))}


def netsession_cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETSESSION, *argv], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def as_user(ad_dc: ActiveDirectoryDC, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process uses nsadmin's credential cache and the DC's krb5.conf, with a pool of its own."""
    for name in list(os.environ):
        if name.startswith(("KRB5", "NETSESSION_")):
            monkeypatch.delenv(name)
    for name, value in ad_dc.client_env("nsadmin").items():
        monkeypatch.setenv(name, value)
    previous = set_pool(ConnectionPool())
    try:
        yield
    finally:
        set_pool(previous).close()


# -- the fixture ---------------------------------------------------------------------------------------


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net shows them) of the TCP listeners and UDP sockets on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and (state == "0A" or "udp" in table):
                found.append(address)
    return found


def test_ad_dc_listens_on_loopback_only(ad_dc: ActiveDirectoryDC) -> None:
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    for port in (ad_dc.smb_port, ad_dc.kdc_port, ad_dc.kpasswd_port):
        addresses = _listening(port)
        assert addresses, f"nothing listens on {port}"
        assert set(addresses) <= loopback, (port, addresses)


def test_kinit_gets_a_tgt_from_the_private_kdc(ad_dc: ActiveDirectoryDC) -> None:
    for user in ("nsadmin", "alice"):
        assert f"krbtgt/{ad_dc.realm}@{ad_dc.realm}" in ad_dc.service_tickets(user)


# -- the CLI -------------------------------------------------------------------------------------------


def test_list_k_by_address_logs_on_with_kerberos(ad_dc: ActiveDirectoryDC) -> None:
    before = ad_dc.kerberos_authorizations().count("nsadmin")
    env = {**_clean_env(), **ad_dc.client_env("nsadmin")}
    done = netsession_cli("list", "-k", "--port", str(ad_dc.smb_port), "127.0.0.1", env=env)
    assert done.returncode == 0, done.stderr
    assert f"{ad_dc.domain}\\nsadmin" in done.stdout  # our own session, as the DC's srvsvc lists it
    assert "cifs/127.0.0.1@" in ad_dc.service_tickets("nsadmin")
    assert ad_dc.kerberos_authorizations().count("nsadmin") > before


def test_list_k_by_name_asks_for_the_dcs_own_spn(ad_dc: ActiveDirectoryDC) -> None:
    before = ad_dc.kerberos_authorizations().count("nsadmin")
    env = {**_clean_env(), **ad_dc.client_env("nsadmin"), **ad_dc.name_env()}
    done = netsession_cli("list", "-k", "--port", str(ad_dc.smb_port), ad_dc.fqdn, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{ad_dc.domain}\\nsadmin" in done.stdout
    assert f"cifs/{ad_dc.fqdn}@{ad_dc.realm}" in ad_dc.service_tickets("nsadmin")
    assert ad_dc.kerberos_authorizations().count("nsadmin") > before


def test_list_k_plain_user_reaches_srvsvc_and_is_refused_there(ad_dc: ActiveDirectoryDC) -> None:
    before = ad_dc.kerberos_authorizations().count("alice")
    env = {**_clean_env(), **ad_dc.client_env("alice")}
    done = netsession_cli("list", "-k", "--port", str(ad_dc.smb_port), "--level", "1", "127.0.0.1", env=env)
    assert done.returncode != 0
    assert f"({ERROR_ACCESS_DENIED})" in done.stderr and f"({ERROR_LOGON_FAILURE})" not in done.stderr
    assert ad_dc.kerberos_authorizations().count("alice") > before


def test_list_k_without_ticket_is_one_readable_line(ad_dc: ActiveDirectoryDC, tmp_path: Path) -> None:
    env = {**_clean_env(), "KRB5_CONFIG": str(ad_dc.krb5_conf), "KRB5CCNAME": f"FILE:{tmp_path}/none"}
    done = netsession_cli("list", "-k", "--port", str(ad_dc.smb_port), "127.0.0.1", env=env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Kerberos ticket" in lines[0]  # the CLI's own words (netsession: no usable Kerberos ticket ...)


# -- the Python API ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize("level", [0, 1])
def test_api_netsessionenum_with_a_ticket(ad_dc: ActiveDirectoryDC, level: int) -> None:
    before = ad_dc.kerberos_authorizations().count("nsadmin")
    netsession.register_session("127.0.0.1", port=ad_dc.smb_port, auth_protocol="kerberos")
    sessions = netsession.NetSessionEnum(level, "127.0.0.1")
    assert sessions, "the DC lists no session, not even ours"
    if level == 1:
        assert any(s["user_name"].lower().endswith("nsadmin") for s in sessions), sessions
    assert ad_dc.kerberos_authorizations().count("nsadmin") == before + 1


@pytest.mark.usefixtures("as_user")
def test_api_kerberos_from_the_environment(ad_dc: ActiveDirectoryDC, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETSESSION_KERBEROS", "1")
    monkeypatch.setenv("NETSESSION_PORT", str(ad_dc.smb_port))
    sessions = netsession.NetSessionEnum(1, r"\\127.0.0.1")
    assert any(s["user_name"].lower().endswith("nsadmin") for s in sessions), sessions


@pytest.mark.usefixtures("as_user")
def test_api_kerberos_with_a_password_needs_no_cache(
    ad_dc: ActiveDirectoryDC, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A password with auth_protocol="kerberos": pyspnego gets the ticket itself (in memory)."""
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path}/none")
    user = ad_dc.users["alice"]
    netsession.register_session("127.0.0.1", user.name, user.password, domain=ad_dc.realm.lower(),
                                port=ad_dc.smb_port, auth_protocol="kerberos")
    with pytest.raises(NetApiError) as caught:
        netsession.NetSessionEnum(1, "127.0.0.1")
    assert caught.value.winerror == ERROR_ACCESS_DENIED  # logged on; srvsvc refused a plain user
    assert not (tmp_path / "none").exists()


# -- netsession.aio -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("as_user")
def test_aio_netsessionenum_with_a_ticket(ad_dc: ActiveDirectoryDC) -> None:
    before = ad_dc.kerberos_authorizations().count("nsadmin")

    async def main() -> list[dict[str, object]]:
        aio.register_session("127.0.0.1", port=ad_dc.smb_port, auth_protocol="kerberos")
        return await aio.NetSessionEnum(1, "127.0.0.1")

    sessions = asyncio.run(main())
    assert any(str(s["user_name"]).lower().endswith("nsadmin") for s in sessions), sessions
    assert ad_dc.kerberos_authorizations().count("nsadmin") == before + 1


@pytest.mark.usefixtures("as_user")
def test_aio_many_kerberos_logons_at_once(ad_dc: ActiveDirectoryDC) -> None:
    """Concurrent connections, each its own Kerberos logon (the DC's srvsvc then lists all of them)."""
    before = ad_dc.kerberos_authorizations().count("nsadmin")
    kerberos = Credentials(auth_protocol="kerberos")
    hosts = 6

    async def main() -> list[int]:
        servers = await asyncio.gather(
            *(aio.connect("127.0.0.1", credentials=kerberos, port=ad_dc.smb_port, timeout=60)
              for _ in range(hosts))
        )
        try:
            pages = await asyncio.gather(*(srv.session_enum(1) for srv in servers))
            return [len(page.records) for page in pages]
        finally:
            for srv in servers:
                srv.close()

    counts = asyncio.run(main())
    assert all(n >= hosts for n in counts), counts
    assert ad_dc.kerberos_authorizations().count("nsadmin") == before + hosts


@pytest.mark.usefixtures("as_user")
def test_aio_kerberos_plain_user_is_refused_by_srvsvc(ad_dc: ActiveDirectoryDC,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRB5CCNAME", ad_dc.client_env("alice")["KRB5CCNAME"])

    async def main() -> None:
        async with aio.connect("127.0.0.1", credentials=Credentials(auth_protocol="kerberos"),
                               port=ad_dc.smb_port, timeout=60) as srv:
            await srv.session_enum(1)

    with pytest.raises(NetApiError) as caught:
        asyncio.run(main())
    assert caught.value.winerror == ERROR_ACCESS_DENIED and not isinstance(caught.value, TransportError)


@pytest.mark.usefixtures("as_user")
def test_aio_deadline_holds_while_the_kdc_is_silent(
    ad_dc: ActiveDirectoryDC, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A KDC that accepts and never answers holds the Kerberos library ~25 s: the logon's step runs off the
    event loop, so the call's deadline still fires (and the loop is free meanwhile)."""
    user = ad_dc.users["nsadmin"]
    cache = f"FILE:{tmp_path}/ccache"
    env = {**_clean_env(), "KRB5_CONFIG": str(ad_dc.krb5_conf), "KRB5CCNAME": cache}
    subprocess.run(["kinit", f"{user.name}@{ad_dc.realm}"], input=f"{user.password}\n", text=True, env=env,
                   check=True, capture_output=True, timeout=30)  # a TGT, and no service ticket yet
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nobody ever reads
        conf = tmp_path / "krb5.conf"
        conf.write_text(ad_dc.krb5_conf.read_text().replace(f"127.0.0.1:{ad_dc.kdc_port}",
                                                            f"127.0.0.1:{silent.getsockname()[1]}"))
        monkeypatch.setenv("KRB5_CONFIG", str(conf))
        monkeypatch.setenv("KRB5CCNAME", cache)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        async def main() -> None:
            beat = asyncio.create_task(ticker())
            try:
                await aio.connect("127.0.0.1", credentials=Credentials(auth_protocol="kerberos"),
                                  port=ad_dc.smb_port, timeout=1.5)
            finally:
                beat.cancel()

        started = time.monotonic()
        with pytest.raises(DeadlineExpired):
            asyncio.run(main())
        assert time.monotonic() - started < 10  # not the library's own 25 s
        assert ticks >= 10  # the loop ran while the KDC was silent


# -- KerberosInitiator ---------------------------------------------------------------------------------


@pytest.fixture
def acceptor_keytab(ad_dc: ActiveDirectoryDC, monkeypatch: pytest.MonkeyPatch) -> Path:
    keytab = ad_dc.root / "cifs-127.0.0.1.keytab"
    if not keytab.exists():
        ad_dc.samba_tool("domain", "exportkeytab", str(keytab), "--principal=cifs/127.0.0.1")
    monkeypatch.setenv("KRB5_KTNAME", f"FILE:{keytab}")
    return keytab


@pytest.mark.usefixtures("as_user", "acceptor_keytab")
def test_initiator_against_an_independent_acceptor() -> None:
    import spnego

    acceptor = spnego.server(protocol="negotiate", service="cifs")
    initiator = KerberosInitiator("127.0.0.1")
    first = initiator.step(None)
    assert first is not None
    init = decode_token(first)
    assert isinstance(init, NegTokenInit) and init.mech_types == MECH_TYPES  # Kerberos only
    answer = acceptor.step(first)
    assert acceptor.complete and answer is not None
    assert initiator.step(answer) is None
    assert initiator.complete
    assert initiator.session_key == acceptor.session_key and len(initiator.session_key) >= 16
    assert acceptor.client_principal == "nsadmin@NETSESSION.TEST"


@pytest.mark.usefixtures("as_user")
def test_initiator_accepts_the_servers_hint() -> None:
    hint = encode_neg_token_init2((*MECH_TYPES, NTLMSSP_OID))
    assert KerberosInitiator("127.0.0.1").step(hint) is not None


@pytest.mark.usefixtures("as_user")
def test_initiator_refuses_a_server_without_kerberos() -> None:
    with pytest.raises(TransportError) as caught:
        KerberosInitiator("127.0.0.1").step(encode_neg_token_init2((NTLMSSP_OID,)))
    assert caught.value.reason == UNSUPPORTED


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (encode_neg_token_resp(NegState.REJECT), CREDENTIALS),
        (encode_neg_token_resp(NegState.ACCEPT_COMPLETED, supported_mech=NTLMSSP_OID), PROTOCOL),
        (encode_neg_token_resp(NegState.ACCEPT_COMPLETED), PROTOCOL),  # no AP-REP: not mutual
        (b"\xa1\x03\x30\x01", PROTOCOL),  # truncated DER
        (b"", PROTOCOL),
    ],
)
def test_initiator_bad_answers_are_one_error(answer: bytes, reason: str) -> None:
    initiator = KerberosInitiator("127.0.0.1")
    assert initiator.step(None) is not None
    with pytest.raises(TransportError) as caught:
        initiator.step(answer)
    assert caught.value.reason == reason
    assert not initiator.complete


@pytest.mark.usefixtures("as_user")
def test_initiator_without_ticket_is_a_credentials_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path}/none")
    with pytest.raises(TransportError) as caught:
        KerberosInitiator("127.0.0.1").step(None)
    assert caught.value.reason == CREDENTIALS
    assert "No Kerberos credentials available" in str(caught.value)
    assert "\n" not in str(caught.value)



async def kerberos_enum(host: str, port: int, config: ClientConfig) -> tuple[SmbPipe, int]:
    """NetrSessionEnum level 1 over our engine with a KerberosInitiator and ``config``."""
    loop = asyncio.get_running_loop()
    pipe = await SmbPipe.open(host, port, KerberosInitiator(host), pipe=SRVSVC_PIPE, config=config,
                              deadline=loop.time() + 60)
    client = AsyncSrvsvcClient(pipe, server_name=f"\\\\{host}")
    try:
        await client.bind()
        response = await client.session_enum(1)
        assert response.status == 0
        return pipe, len(response.entries)
    finally:
        client.close()


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_every_cipher_keyed_by_kerberos(ad_dc: ActiveDirectoryDC, cipher: int) -> None:
    """SMB 3.1.1 encryption keyed from a Kerberos logon: the GSS key is the 32-byte AES-256 subkey, so the
    signing key comes from its first 16 bytes and the AES-256 ciphers' keys from all of it (MS-SMB2
    §3.2.5.3.1 SessionKey / FullSessionKey); the DC's smbd derives its own and must agree."""
    config = ClientConfig(ciphers=(cipher,), encryption_required=True, server_name="127.0.0.1")
    pipe, n = asyncio.run(kerberos_enum("127.0.0.1", ad_dc.smb_port, config))
    assert pipe.smb.conn.cipher == cipher and pipe.smb.conn.session.encrypt_data
    assert n >= 1
