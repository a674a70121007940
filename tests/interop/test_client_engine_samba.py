"""Our SMB2/3 client engine against Samba's smbd (Debian 4.17): every dialect, every 3.1.1 signing
algorithm, every cipher when we ask for encryption, and encryption demanded by the server
(``smb encrypt = required``); each time a logon, IPC$, \\PIPE\\srvsvc, a bind and NetrSessionEnum level 1,
every response verified or decrypted by the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from samba import SambaServer, missing_prerequisites, running_samba

from netsession.client.arpc import AsyncSrvsvcClient
from netsession.client.errors import LogonError
from netsession.client.smb import SmbPipe
from netsession.server.accounts import nt_hash
from netsession.wire.ntlm_initiator import NtlmInitiator
from netsession.wire.smb2.client import ALL_CIPHERS, ALL_SIGNING_ALGORITHMS, ClientConfig
from netsession.wire.smb2.constants import Cipher, Dialect, SigningAlgorithm
from netsession.wire.srvsvc import SRVSVC_PIPE

pytestmark = pytest.mark.interop
HOST = "127.0.0.1"
DIALECTS = (Dialect.SMB_2_0_2, Dialect.SMB_2_1, Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1)


async def _enum(samba: SambaServer, config: ClientConfig, user: str = "nsadmin") -> tuple[SmbPipe, int]:
    account = samba.users[user]
    loop = asyncio.get_running_loop()
    initiator = NtlmInitiator(account.name, nt_hash=nt_hash(account.password), target=f"cifs/{HOST}")
    pipe = await SmbPipe.open(
        HOST, samba.port, initiator, pipe=SRVSVC_PIPE, config=config, deadline=loop.time() + 20
    )
    client = AsyncSrvsvcClient(pipe, server_name=f"\\\\{HOST}")
    try:
        await client.bind()
        response = await client.session_enum(1)
        assert response.status == 0
        return pipe, len(response.entries)
    finally:
        client.close()


def run(samba: SambaServer, config: ClientConfig, user: str = "nsadmin") -> tuple[SmbPipe, int]:
    return asyncio.run(_enum(samba, config, user))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_against_samba(samba: SambaServer, dialect: int) -> None:
    pipe, n = run(samba, ClientConfig(dialects=(dialect,), server_name=HOST))
    assert pipe.smb.conn.dialect == dialect and pipe.smb.conn.session.signing_required
    assert n >= 1


@pytest.mark.parametrize(
    "algorithm", [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256]
)
def test_every_signing_algorithm_against_samba(samba: SambaServer, algorithm: int) -> None:
    pipe, _ = run(samba, ClientConfig(signing_algorithms=(algorithm,), server_name=HOST))
    assert pipe.smb.conn.signing_algorithm == algorithm


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_every_cipher_against_samba(samba: SambaServer, cipher: int) -> None:
    pipe, _ = run(samba, ClientConfig(ciphers=(cipher,), encryption_required=True, server_name=HOST))
    assert pipe.smb.conn.cipher == cipher and pipe.smb.conn.session.encrypt_data


@pytest.mark.parametrize("dialect", [Dialect.SMB_3_0, Dialect.SMB_3_0_2])
def test_smb30_encryption_against_samba(samba: SambaServer, dialect: int) -> None:
    pipe, _ = run(samba, ClientConfig(dialects=(dialect,), encryption_required=True, server_name=HOST))
    assert pipe.smb.conn.session.encrypt_data


# Dialect, 3.1.1 signing algorithm, cipher, sealed: the pairs that exercise each KDF (2.x, 3.0, 3.1.1 with
# the preauth hash, AES-256 keys from the full session key) beside each signing algorithm.
PAIRS = [
    (Dialect.SMB_2_0_2, None, None, False),
    (Dialect.SMB_3_0, None, None, False),
    (Dialect.SMB_3_0, None, None, True),
    (Dialect.SMB_3_0_2, None, None, True),
    (Dialect.SMB_3_1_1, SigningAlgorithm.AES_GMAC, Cipher.AES_128_CCM, True),
    (Dialect.SMB_3_1_1, SigningAlgorithm.AES_GMAC, Cipher.AES_128_GCM, True),
    (Dialect.SMB_3_1_1, SigningAlgorithm.AES_CMAC, Cipher.AES_256_CCM, True),
    (Dialect.SMB_3_1_1, SigningAlgorithm.HMAC_SHA256, Cipher.AES_256_GCM, True),
]


@pytest.mark.parametrize(
    ("dialect", "signing", "cipher", "sealed"), PAIRS,
    ids=[f"{d:04x}-{getattr(s, 'name', 'default')}-{getattr(c, 'name', 'default')}-{('signed', 'sealed')[e]}"
         for d, s, c, e in PAIRS],
)  # fmt: skip
def test_signing_and_sealing_pairs_against_samba(
    samba: SambaServer, dialect: int, signing: int | None, cipher: int | None, sealed: bool
) -> None:
    config = ClientConfig(
        dialects=(dialect,),
        signing_algorithms=(signing,) if signing is not None else ALL_SIGNING_ALGORITHMS,
        ciphers=(cipher,) if cipher is not None else ALL_CIPHERS,
        encryption_required=sealed,
        server_name=HOST,
    )
    pipe, n = run(samba, config)
    conn = pipe.smb.conn
    # The engine refuses an unsealed answer to a sealed request and an unsigned or wrongly signed answer
    # on a signing session: a listing back means smbd and we agree on every key and algorithm.
    assert n >= 1 and conn.dialect == dialect and conn.session.encrypt_data == sealed
    if signing is not None:
        assert conn.signing_algorithm == signing
    if cipher is not None:
        assert conn.cipher == cipher


def test_a_wrong_password_against_samba(samba: SambaServer) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        initiator = NtlmInitiator("alice", nt_hash=nt_hash("wrong"))
        await SmbPipe.open(HOST, samba.port, initiator, pipe=SRVSVC_PIPE, deadline=loop.time() + 20)

    with pytest.raises(LogonError) as e:
        asyncio.run(main())
    assert e.value.status_name in ("STATUS_LOGON_FAILURE", "STATUS_WRONG_PASSWORD")


@pytest.fixture(scope="module")
def encrypting_samba() -> Iterator[SambaServer]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    with running_samba("netsession-smbd-encrypt-", extra_conf="    smb encrypt = required") as server:
        yield server


def test_encryption_demanded_by_samba_is_honoured(encrypting_samba: SambaServer) -> None:
    pipe, n = run(encrypting_samba, ClientConfig(server_name=HOST))  # we did not ask for it
    assert pipe.smb.conn.session.encrypt_data or any(t.encrypt_data for t in pipe.smb.conn.trees.values())
    assert n >= 1
