r"""`netsession serve` with smbprotocol as the SMB client and our own DCE/RPC + srvsvc codecs on top.

smbprotocol (an independent SMB2/3 implementation) negotiates each dialect, signs, and encrypts with each
cipher; NetrSessionEnum / NetrSessionDel go over its ``Open`` of the ``srvsvc`` pipe through
:class:`~netsession.wire.dcerpc.ClientAssociation`, either as WRITE then READ or as one
FSCTL_PIPE_TRANSCEIVE IOCTL, the two ways Windows clients move RPC over a pipe.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from netsession_server import (
    ADMIN,
    ALICE,
    BOB,
    LOOPBACK,
    LOOPBACK_CNAME,
    Account,
    NetsessionServerProcess,
    SrvsvcRpc,
    local_srvsvc,
    wait_until,
)
from smbprotocol.connection import Ciphers, Connection, Dialects, SigningAlgorithms
from smbprotocol.exceptions import (
    BadNetworkName,
    LogonFailure,
    ObjectNameNotFound,
    SMBException,
    SMBResponseException,
)
from smbprotocol.ioctl import CtlCode, IOCTLFlags, SMB2IOCTLRequest, SMB2IOCTLResponse
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

from netsession.errors import NetApiStatus
from netsession.records import SESSION_INFO_10, SESSION_INFO_502

pytestmark = pytest.mark.interop

STATUS_USER_SESSION_DELETED = 0xC0000203
STATUS_ACCESS_DENIED = 0xC0000022
PIPE_READ = 4280  # the DCE/RPC fragment size Windows and impacket use on pipes
DIALECTS = {
    "3.1.1": Dialects.SMB_3_1_1,
    "3.0.2": Dialects.SMB_3_0_2,
    "3.0": Dialects.SMB_3_0_0,
    "2.1": Dialects.SMB_2_1_0,
    "2.0.2": Dialects.SMB_2_0_2,
}
SMB3 = (Dialects.SMB_3_0_0, Dialects.SMB_3_0_2, Dialects.SMB_3_1_1)
# After a session was deleted: STATUS_USER_SESSION_DELETED, or the connection (its only session) is gone.
SESSION_GONE = (SMBException, ConnectionError, OSError)


# -- the client ----------------------------------------------------------------------------------------


class PipeWriteRead:
    """RPC over a pipe as WRITE then READ."""

    def __init__(self, pipe: Open) -> None:
        self.pipe = pipe

    def send(self, data: bytes) -> None:
        self.pipe.write(data, 0)

    def recv(self) -> bytes:
        data: bytes = self.pipe.read(0, PIPE_READ)
        return data


class PipeTransceive:
    """RPC over a pipe as FSCTL_PIPE_TRANSCEIVE (MS-FSCC §2.3.34): the request in, the reply out."""

    def __init__(self, pipe: Open) -> None:
        self.pipe = pipe
        self.pending: bytes | None = None

    def send(self, data: bytes) -> None:
        assert self.pending is None, "one PDU per transceive"
        self.pending = data

    def recv(self) -> bytes:
        if self.pending is None:
            data: bytes = self.pipe.read(0, PIPE_READ)
            return data
        request = SMB2IOCTLRequest()
        request["ctl_code"] = CtlCode.FSCTL_PIPE_TRANSCEIVE
        request["file_id"] = self.pipe.file_id
        request["max_output_response"] = PIPE_READ
        request["flags"] = IOCTLFlags.SMB2_0_IOCTL_IS_FSCTL
        request["buffer"] = self.pending
        self.pending = None
        tree = self.pipe.tree_connect
        sent = tree.session.connection.send(request, sid=tree.session.session_id, tid=tree.tree_connect_id)
        response = SMB2IOCTLResponse()
        response.unpack(tree.session.connection.receive(sent)["data"].get_value())
        assert response["ctl_code"].get_value() == CtlCode.FSCTL_PIPE_TRANSCEIVE
        out: bytes = response["buffer"].get_value()
        return out


@dataclass
class SmbClient:
    """An smbprotocol connection with one or more sessions; ``session`` is the first."""

    connection: Connection
    sessions: list[Session] = field(default_factory=list)
    trees: dict[int, TreeConnect] = field(default_factory=dict)

    @property
    def session(self) -> Session:
        return self.sessions[0]

    def logon(self, account: Account, **kwargs: Any) -> Session:
        kwargs.setdefault("require_encryption", self.connection.dialect in SMB3)
        session = Session(self.connection, account.name, account.password, auth_protocol="ntlm", **kwargs)
        session.connect()
        self.sessions.append(session)
        return session

    def ipc(self, session: Session | None = None) -> TreeConnect:
        session = session or self.session
        tree = self.trees.get(id(session))
        if tree is None:
            tree = TreeConnect(session, rf"\\{LOOPBACK}\IPC$")
            tree.connect()
            self.trees[id(session)] = tree
        return tree

    def open_pipe(self, name: str = "srvsvc", session: Session | None = None) -> Open:
        pipe = Open(self.ipc(session), name)
        pipe.create(
            ImpersonationLevel.Impersonation,
            FilePipePrinterAccessMask.FILE_READ_DATA | FilePipePrinterAccessMask.FILE_WRITE_DATA,
            0,
            ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
            CreateDisposition.FILE_OPEN,
            CreateOptions.FILE_NON_DIRECTORY_FILE,
        )
        return pipe

    def srvsvc(self, *, transceive: bool = False, session: Session | None = None) -> SrvsvcRpc:
        pipe = self.open_pipe(session=session)
        return SrvsvcRpc(PipeTransceive(pipe) if transceive else PipeWriteRead(pipe))

    def close(self) -> None:
        """Log off and close; if logging off fails (a session deleted, an open already closed by
        TREE_DISCONNECT that smbprotocol still tracks), just close the socket."""
        try:
            self.connection.disconnect(close=True, timeout=5)
        except Exception:
            with contextlib.suppress(Exception):
                self.connection.disconnect(close=False)


@pytest.fixture
def smb(server: NetsessionServerProcess) -> Iterator[Any]:
    """``smb(account, dialect=3.1.1, **connect/session options) -> SmbClient``, closed at the end."""
    yield from _factory(server)


@pytest.fixture
def smb_encrypting(encrypting: NetsessionServerProcess) -> Iterator[Any]:
    yield from _factory(encrypting)


def _factory(server: NetsessionServerProcess) -> Iterator[Any]:
    made: list[SmbClient] = []

    def make(
        account: Account | None,
        dialect: int = Dialects.SMB_3_1_1,
        *,
        ciphers: list[int] | None = None,
        signing: list[int] | None = None,
        **session: Any,
    ) -> SmbClient:
        connection = Connection(uuid.uuid4(), LOOPBACK, server.port, require_signing=True)
        client = SmbClient(connection)
        made.append(client)
        connection.connect(
            dialect=dialect, timeout=10, preferred_encryption_algos=ciphers, preferred_signing_algos=signing
        )
        if account is not None:
            client.logon(account, **session)
        return client

    yield make
    for client in made:
        client.close()


def users(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The user names of records of any level but 0 (the second field)."""
    return [r[1] for r in rows]


def by_user(rows: list[Any], user: str) -> Any:
    (row,) = [r for r in rows if r[1] == user]
    return row


# -- dialects, signing, encryption ---------------------------------------------------------------------


@pytest.mark.parametrize("transceive", [False, True], ids=["write-read", "transceive"])
@pytest.mark.parametrize("dialect", DIALECTS.values(), ids=DIALECTS.keys())
def test_smbprotocol_session_enum_over_every_dialect(smb: Any, dialect: int, transceive: bool) -> None:
    admin = smb(ADMIN, dialect)
    assert admin.connection.dialect == dialect
    # 3.x: smbprotocol requires encryption by default (and then does not sign); 2.x signs, as the server
    # requires.
    assert admin.session.encrypt_data == (dialect in SMB3)
    assert admin.session.signing_required == (dialect not in SMB3)
    rpc = admin.srvsvc(transceive=transceive)
    response = rpc.session_enum(502)
    assert response.status == NetApiStatus.NERR_Success
    (row,) = response.entries
    assert row == SESSION_INFO_502(LOOPBACK_CNAME, "admin", 1, row.sesi502_time, row.sesi502_idle_time, 0, "",
                                   "\\Device\\NetbiosSmb")


@pytest.mark.parametrize(
    "cipher",
    [Ciphers.AES_128_GCM, Ciphers.AES_128_CCM, Ciphers.AES_256_GCM, Ciphers.AES_256_CCM],
    ids=["AES-128-GCM", "AES-128-CCM", "AES-256-GCM", "AES-256-CCM"],
)
def test_smbprotocol_3_1_1_encryption_required_with_each_cipher(smb: Any, cipher: int) -> None:
    admin = smb(ADMIN, ciphers=[cipher], require_encryption=True)
    assert admin.connection.cipher_id == cipher
    assert admin.session.encrypt_data
    rpc = admin.srvsvc(transceive=True)
    assert users(rpc.session_enum(10).entries) == ["admin"]


@pytest.mark.parametrize(
    "algorithm",
    [SigningAlgorithms.AES_GMAC, SigningAlgorithms.AES_CMAC, SigningAlgorithms.HMAC_SHA256],
    ids=["AES-GMAC", "AES-CMAC", "HMAC-SHA256"],
)
def test_smbprotocol_3_1_1_signing_with_each_algorithm(smb: Any, algorithm: int) -> None:
    admin = smb(ADMIN, signing=[algorithm], require_encryption=False)
    assert admin.connection.signing_algorithm_id == algorithm
    assert not admin.session.encrypt_data
    assert admin.session.signing_required
    assert users(admin.srvsvc().session_enum(10).entries) == ["admin"]


@pytest.mark.parametrize("dialect", [Dialects.SMB_3_1_1, Dialects.SMB_3_0_2, Dialects.SMB_3_0_0],
                         ids=["3.1.1", "3.0.2", "3.0"])
def test_smbprotocol_server_forced_encryption_encrypts_sessions_that_did_not_ask(
    smb_encrypting: Any, dialect: int
) -> None:
    admin = smb_encrypting(ADMIN, dialect, require_encryption=False)
    # SMB2_SESSION_FLAG_ENCRYPT_DATA in the SESSION_SETUP response: smbprotocol encrypts from then on.
    assert admin.session.encrypt_data
    assert users(admin.srvsvc().session_enum(10).entries) == ["admin"]


@pytest.mark.parametrize("dialect", [Dialects.SMB_2_1_0, Dialects.SMB_2_0_2], ids=["2.1", "2.0.2"])
def test_smbprotocol_server_forced_encryption_refuses_sessions_that_cannot_encrypt(
    smb_encrypting: Any, encrypting: NetsessionServerProcess, dialect: int
) -> None:
    client = smb_encrypting(None, dialect)
    # MS-SMB2 §3.3.5.5.3: EncryptData with RejectUnencryptedAccess and a 2.x dialect -> ACCESS_DENIED.
    with pytest.raises(SMBResponseException) as caught:
        client.logon(ALICE, require_encryption=False)
    assert caught.value.status == STATUS_ACCESS_DENIED
    assert encrypting.sessions() == []


# -- errors a client meets -----------------------------------------------------------------------------


def test_smbprotocol_wrong_password_is_logon_failure(smb: Any, server: NetsessionServerProcess) -> None:
    client = smb(None)
    with pytest.raises(LogonFailure):
        client.logon(Account("alice", "wrong", ()))
    # The connection survives a failed logon; the right password works on it.
    client.logon(ALICE)
    assert server.count("alice") == 1


def test_smbprotocol_unknown_share_is_bad_network_name(smb: Any) -> None:
    alice = smb(ALICE)
    with pytest.raises(BadNetworkName):
        TreeConnect(alice.session, rf"\\{LOOPBACK}\C$").connect()


def test_smbprotocol_unknown_pipe_is_object_name_not_found(smb: Any) -> None:
    alice = smb(ALICE)
    with pytest.raises(ObjectNameNotFound):
        alice.open_pipe("winreg")


# -- the session's figures -------------------------------------------------------------------------------


def test_smbprotocol_idle_time_grows_while_quiet_and_drops_when_it_speaks(smb: Any) -> None:
    bob = smb(BOB)
    observer = smb(ADMIN).srvsvc(transceive=True)

    def bob_row() -> SESSION_INFO_10:
        row = by_user(list(observer.session_enum(10, None, "bob").entries), "bob")
        assert isinstance(row, SESSION_INFO_10)
        return row

    # Bob has been silent since his logon, however long the observer's own logon took.
    first = bob_row()
    assert first.sesi10_idle_time <= first.sesi10_time
    time.sleep(2.2)
    quiet = bob_row()
    assert quiet.sesi10_idle_time >= first.sesi10_idle_time + 2
    assert quiet.sesi10_time >= 2
    # Any request on bob's session resets its idle time (the observer's requests are on its own session).
    bob.connection.echo(sid=bob.session.session_id)
    spoke = bob_row()
    assert spoke.sesi10_idle_time == 0
    assert spoke.sesi10_time >= 2


def test_smbprotocol_num_opens_follows_pipe_opens_and_closes(
    smb: Any, server: NetsessionServerProcess
) -> None:
    bob = smb(BOB)

    def opens() -> int:
        return int(by_user(server.sessions(), "bob").sesi502_num_opens)

    assert opens() == 0
    pipes = [bob.open_pipe() for _ in range(3)]
    assert opens() == 3
    pipes.pop().close()
    assert opens() == 2
    bob.ipc().disconnect()  # TREE_DISCONNECT closes the rest
    assert opens() == 0


# -- NetrSessionDel -----------------------------------------------------------------------------------------


def test_smbprotocol_session_del_on_a_shared_connection_answers_user_session_deleted(
    smb: Any, server: NetsessionServerProcess
) -> None:
    client = smb(ALICE, require_encryption=False)  # signed, not encrypted
    alice = client.session
    bob = client.logon(BOB, require_encryption=False)  # a second session on the same connection
    client.ipc(alice)
    client.ipc(bob)
    admin = smb(ADMIN).srvsvc()
    assert admin.session_del(LOOPBACK_CNAME, "alice") == NetApiStatus.NERR_Success
    assert server.count("alice") == 0
    # alice's next request on the still-open connection: STATUS_USER_SESSION_DELETED (MS-SMB2 §3.3.5.2.9).
    with pytest.raises(SMBResponseException) as caught:
        client.connection.echo(sid=alice.session_id)
    assert caught.value.status == STATUS_USER_SESSION_DELETED
    # bob's session on that connection goes on, and alice can log on again there.
    rows = client.srvsvc(session=bob).session_enum(10, None, "bob").entries
    assert users(rows) == ["bob"]
    client.logon(ALICE, require_encryption=False)
    assert server.count("alice") == 1


def test_smbprotocol_session_del_on_a_shared_encrypted_connection_answers_user_session_deleted(
    smb: Any, server: NetsessionServerProcess
) -> None:
    client = smb(ALICE, require_encryption=True)
    alice = client.session
    bob = client.logon(BOB, require_encryption=True)
    client.ipc(bob)
    admin = smb(ADMIN).srvsvc()
    assert admin.session_del(LOOPBACK_CNAME, "alice") == NetApiStatus.NERR_Success
    assert server.count("alice") == 0
    # alice's next request is still encrypted with her deleted session's key: the connection keeps that key
    # to decrypt it and answer STATUS_USER_SESSION_DELETED, encrypted (MS-SMB2 §3.3.5.2.9), and goes on.
    with pytest.raises(SMBResponseException) as caught:
        client.connection.echo(sid=alice.session_id, timeout=5)
    assert caught.value.status == STATUS_USER_SESSION_DELETED
    rows = client.srvsvc(session=bob).session_enum(10, None, "bob").entries
    assert users(rows) == ["bob"]
    assert server.count("bob") == 1


def test_smbprotocol_session_del_of_the_only_session_closes_the_connection(
    smb: Any, server: NetsessionServerProcess
) -> None:
    bob = smb(BOB)
    admin = smb(ADMIN).srvsvc()
    assert admin.session_del(None, "bob") == NetApiStatus.NERR_Success
    assert server.count("bob") == 0
    with pytest.raises(SESSION_GONE):
        bob.connection.echo(sid=bob.session.session_id, timeout=5)


def test_smbprotocol_session_del_of_ones_own_session_over_transceive_gets_its_reply(
    smb: Any, server: NetsessionServerProcess
) -> None:
    smb(ALICE)
    admin = smb(ADMIN).srvsvc(transceive=True)
    # The reply rides in the IOCTL response, queued before the session is torn down.
    assert admin.session_del(LOOPBACK_CNAME, "ADMIN") == NetApiStatus.NERR_Success
    wait_until(lambda: server.count("admin") == 0, what="the admin's session to end")
    assert server.count("alice") == 1


# -- the local computer: srvsvc over the Unix socket --------------------------------------------------------


def test_local_socket_as_root_or_the_servers_own_user_is_an_administrator(
    smb: Any, server: NetsessionServerProcess
) -> None:
    # The test runs as the server's user (root here): the peer's uid makes it an administrator.
    bob = smb(BOB)
    with local_srvsvc(server.socket_path) as rpc:
        # Level 502 needs Administrators or Server Operators under every policy.
        response = rpc.session_enum(502)
        assert response.status == NetApiStatus.NERR_Success
        assert [r[0] for r in response.entries] == [LOOPBACK_CNAME]
        assert users(response.entries) == ["bob"]
        # NetrSessionDel too, and it ends the SMB session for real.
        assert rpc.session_del(None, "bob") == NetApiStatus.NERR_Success
    with pytest.raises(SESSION_GONE):
        bob.connection.echo(sid=bob.session.session_id, timeout=5)
    assert server.sessions() == []
    audit = f"client=local:uid={os.geteuid()} operation=NetrSessionDel level=- result=NERR_Success"
    assert audit in server.log()
