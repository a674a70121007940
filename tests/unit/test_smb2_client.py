"""The sans-I/O ClientConnection and our NTLMv2 initiator, end to end against the sans-I/O ServerConnection
in memory (MS-SMB2 §3.2 against §3.3): every dialect, signing algorithm and cipher, encryption asked for
and demanded, credits, read-ahead, bad signatures and hostile answers."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from smb2_harness import SERVER_GUID, make_server

from netsession.server.accounts import nt_hash
from netsession.wire.ntlm_initiator import NtlmInitiator, NtlmInitiatorError
from netsession.wire.smb2.client import (
    ALL_CIPHERS,
    ClientConfig,
    ClientConnection,
    EncryptionUnavailable,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
)
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.connection import ServerConfig, ServerConnection
from netsession.wire.smb2.constants import Dialect, NtStatus, SigningAlgorithm
from netsession.wire.smb2.create import CreateRequest, CreateResponse, FileId
from netsession.wire.smb2.crypto import Smb2IntegrityError
from netsession.wire.smb2.messages import ReadRequest, ReadResponse, TreeConnectRequest, WriteRequest
from netsession.wire.smb2.transport import frame

DIALECTS = (Dialect.SMB_2_0_2, Dialect.SMB_2_1, Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1)
PASSWORD = "Al1ce-pw!"


class Pair:
    """A client and a server connection wired together in memory."""

    def __init__(self, client: ClientConfig | None = None, server: ServerConfig | None = None, **auth: Any):
        self.server: ServerConnection = make_server(server or ServerConfig(server_guid=SERVER_GUID), **auth)
        self.client = ClientConnection(client or ClientConfig(server_name="fs1"))

    def pump(self) -> list[Reply]:
        self.server.receive_data(self.client.data_to_send())
        return self.client.receive_data(self.server.data_to_send())

    def one(self) -> Reply:
        (reply,) = self.pump()
        return reply

    def logon(self, user: str = "alice", password: str | None = PASSWORD) -> Reply:
        self.client.negotiate()
        negotiate = self.one()
        assert negotiate.status == NtStatus.STATUS_SUCCESS
        ntlm = NtlmInitiator(user, nt_hash=None if password is None else nt_hash(password), target="cifs/fs1")
        token = ntlm.step(negotiate.body.security_buffer)  # type: ignore[union-attr]
        while True:
            assert token is not None
            self.client.session_setup(token)
            reply = self.one()
            if reply.status not in (NtStatus.STATUS_SUCCESS, NtStatus.STATUS_MORE_PROCESSING_REQUIRED):
                return reply
            token = ntlm.step(reply.body.security_buffer)  # type: ignore[union-attr]
            if reply.status == NtStatus.STATUS_SUCCESS:
                assert ntlm.complete and token is None
                self.client.session_established(reply, ntlm.session_key, anonymous=ntlm.anonymous)
                return reply

    def pipe(self) -> tuple[int, FileId]:
        self.client.request(TreeConnectRequest(r"\\fs1\IPC$"))
        tree = self.one()
        assert tree.status == NtStatus.STATUS_SUCCESS
        self.client.request(CreateRequest("srvsvc"), tree_id=tree.header.tree_id)
        create = self.one()
        assert isinstance(create.body, CreateResponse)
        return tree.header.tree_id, create.body.file_id

    def echo(self, tree: int, fid: FileId, data: bytes) -> bytes:
        self.client.request(WriteRequest(fid, data), tree_id=tree)
        self.client.request(ReadRequest(fid, 0x10000), tree_id=tree)
        write, read = self.pump()
        assert write.status == NtStatus.STATUS_SUCCESS
        assert isinstance(read.body, ReadResponse)
        return read.body.data


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_logs_on_signs_and_reads_a_pipe(dialect: int) -> None:
    pair = Pair(ClientConfig(dialects=(dialect,)))
    assert pair.logon().status == NtStatus.STATUS_SUCCESS
    assert pair.client.dialect == dialect and pair.client.session.signing_required
    tree, fid = pair.pipe()
    assert pair.echo(tree, fid, b"hello") == b"olleh"


@pytest.mark.parametrize(
    "algorithm", [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256]
)
def test_every_311_signing_algorithm_is_negotiated_and_verified(algorithm: int) -> None:
    pair = Pair(ClientConfig(signing_algorithms=(algorithm,)))
    pair.logon()
    assert pair.client.signing_algorithm == algorithm
    tree, fid = pair.pipe()
    assert pair.echo(tree, fid, b"ab") == b"ba"


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_every_cipher_when_the_client_asks_for_encryption(cipher: int) -> None:
    pair = Pair(ClientConfig(ciphers=(cipher,), encryption_required=True))
    pair.logon()
    assert pair.client.cipher == cipher and pair.client.session.encrypt_data
    tree, fid = pair.pipe()
    pair.client.request(WriteRequest(fid, b"xyz"), tree_id=tree)
    assert pair.client.data_to_send()[4:8] == b"\xfdSMB"  # sealed on the wire


@pytest.mark.parametrize("dialect", [Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1])
def test_encryption_demanded_by_the_server_is_honoured(dialect: int) -> None:
    pair = Pair(ClientConfig(dialects=(dialect,)), ServerConfig(server_guid=SERVER_GUID, encrypt_data=True))
    pair.logon()
    assert pair.client.session.encrypt_data
    tree, fid = pair.pipe()
    assert pair.echo(tree, fid, b"secret") == b"terces"


@pytest.mark.parametrize("dialect", [Dialect.SMB_2_0_2, Dialect.SMB_2_1])
def test_encryption_required_without_smb3_is_EncryptionUnavailable(dialect: int) -> None:
    pair = Pair(ClientConfig(dialects=(dialect,), encryption_required=True))
    with pytest.raises(EncryptionUnavailable):
        pair.logon()


def test_a_wrong_password_is_the_servers_logon_failure() -> None:
    assert Pair().logon(password="wrong").status == NtStatus.STATUS_LOGON_FAILURE


def test_guest_is_refused_unless_allowed() -> None:
    with pytest.raises(RemoteProtocolError, match="guest"):
        Pair(allow_guest=True).logon(user="nobody", password="x")
    pair = Pair(ClientConfig(allow_guest=True), allow_guest=True)
    pair.logon(user="nobody", password="x")
    assert pair.client.session.is_guest and not pair.client.session.signing_required


def test_anonymous_logon_is_a_null_session_without_signing() -> None:
    pair = Pair(ClientConfig(allow_guest=True), allow_anonymous=True, allow_guest=True)
    assert pair.logon(user="", password=None).status == NtStatus.STATUS_SUCCESS
    assert pair.client.session.is_anonymous and not pair.client.session.signing_required


def test_a_tampered_signed_response_is_refused() -> None:
    pair = Pair()
    pair.logon()
    pair.client.request(TreeConnectRequest(r"\\fs1\IPC$"))
    pair.server.receive_data(pair.client.data_to_send())
    out = bytearray(pair.server.data_to_send())
    out[-1] ^= 1
    with pytest.raises(Smb2IntegrityError):
        pair.client.receive_data(bytes(out))
    assert pair.client.closed


def test_an_unsigned_response_on_a_signing_session_is_refused() -> None:
    pair = Pair()
    pair.logon()
    mid = pair.client.request(TreeConnectRequest(r"\\fs1\IPC$"))
    pair.server.receive_data(pair.client.data_to_send())
    raw = bytearray(pair.server.data_to_send()[4:])
    flags = struct.unpack_from("<I", raw, 16)[0] & ~0x8
    struct.pack_into("<I", raw, 16, flags)
    raw[48:64] = bytes(16)
    assert struct.unpack_from("<Q", raw, 24)[0] == mid
    with pytest.raises(RemoteProtocolError, match="not signed"):
        pair.client.receive_data(frame(bytes(raw)))


def test_a_response_to_nothing_is_a_protocol_error() -> None:
    pair = Pair()
    pair.client.negotiate()
    pair.server.receive_data(pair.client.data_to_send())
    answer = bytearray(pair.server.data_to_send()[4:])
    struct.pack_into("<Q", answer, 24, 7)  # MessageId 7 was never sent
    with pytest.raises(RemoteProtocolError, match="not outstanding"):
        pair.client.receive_data(frame(bytes(answer)))


def test_an_smb1_answer_says_the_server_speaks_no_smb2() -> None:
    client = ClientConnection()
    client.negotiate()
    with pytest.raises(RemoteProtocolError, match="SMB1"):
        client.receive_data(frame(b"\xffSMB" + bytes(60)))


def test_a_read_answer_longer_than_asked_is_refused() -> None:
    pair = Pair()
    pair.logon()
    tree, fid = pair.pipe()
    pair.client.request(WriteRequest(fid, b"0123456789"), tree_id=tree)
    pair.pump()
    pair.client.request(ReadRequest(fid, 4), tree_id=tree)
    pair.server.receive_data(pair.client.data_to_send())
    out = pair.server.data_to_send()
    assert out  # the server answers 4 bytes and BUFFER_OVERFLOW: fine
    assert pair.client.receive_data(out)[0].status == NtStatus.STATUS_BUFFER_OVERFLOW


def test_requests_wait_for_credits_and_go_when_granted() -> None:
    pair = Pair(ClientConfig(credits=2))
    pair.logon()
    tree, fid = pair.pipe()
    credits = pair.client.credits
    ids = [pair.client.request(ReadRequest(fid, 16), tree_id=tree) for _ in range(credits + 3)]
    assert pair.client.outstanding == len(ids)
    sent = pair.client.data_to_send()
    assert sent.count(b"\xfeSMB") == credits  # the rest wait for credits
    pair.server.receive_data(sent)
    pair.client.receive_data(pair.server.data_to_send())
    assert pair.client.data_to_send().count(b"\xfeSMB") >= 1  # granted credits released queued ones


def test_message_ids_follow_multi_credit_charges() -> None:
    pair = Pair()
    pair.logon()
    tree, fid = pair.pipe()
    first = pair.client.request(ReadRequest(fid, 0x30000), tree_id=tree)  # 3 credits
    second = pair.client.request(ReadRequest(fid, 16), tree_id=tree)
    assert second == first + 3


def test_session_setup_before_negotiate_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        ClientConnection().session_setup(b"x")
    with pytest.raises(LocalProtocolError):
        ClientConnection().request(TreeConnectRequest(r"\\h\IPC$"))


def test_a_server_choosing_an_unoffered_dialect_is_refused() -> None:
    pair = Pair(ClientConfig(dialects=(Dialect.SMB_3_1_1,)), ServerConfig(server_guid=SERVER_GUID))
    pair.client.negotiate()
    pair.server.receive_data(pair.client.data_to_send())
    answer = bytearray(pair.server.data_to_send())
    at = answer.index(b"\x11\x03", 4 + 64)  # DialectRevision
    answer[at : at + 2] = b"\x02\x03"
    with pytest.raises(Smb2DecodeError):
        pair.client.receive_data(bytes(answer))


def test_the_ntlm_initiator_refuses_a_challenge_without_target_names() -> None:
    ntlm = NtlmInitiator("alice", nt_hash=nt_hash("x"))
    ntlm.step(None)
    challenge = b"NTLMSSP\x00" + struct.pack("<IHHII", 2, 0, 0, 56, 0xE2898215) + bytes(8) + bytes(8)
    challenge += struct.pack("<HHI", 4, 4, 56) + bytes(8) + bytes(4)
    from netsession.wire.spnego import NTLMSSP_OID, NegState, encode_neg_token_resp

    token = encode_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=challenge
    )
    with pytest.raises(NtlmInitiatorError, match="NetBIOS"):
        ntlm.step(token)


def test_the_ntlm_initiator_refuses_a_bad_server_mech_list_mic() -> None:
    pair = Pair()
    pair.client.negotiate()
    negotiate = pair.one()
    ntlm = NtlmInitiator("alice", nt_hash=nt_hash(PASSWORD))
    token = ntlm.step(negotiate.body.security_buffer)  # type: ignore[union-attr]
    pair.client.session_setup(token or b"")
    challenge = pair.one()
    token = ntlm.step(challenge.body.security_buffer)  # type: ignore[union-attr]
    pair.client.session_setup(token or b"")
    final = pair.one()
    from netsession.wire.spnego import NegState, NegTokenResp, decode_token, encode_neg_token_resp

    resp = decode_token(final.body.security_buffer)  # type: ignore[union-attr]
    assert isinstance(resp, NegTokenResp) and resp.mech_list_mic is not None
    bad = encode_neg_token_resp(NegState.ACCEPT_COMPLETED, mech_list_mic=bytes(16))
    with pytest.raises(NtlmInitiatorError, match="mechListMIC"):
        ntlm.step(bad)


def test_hostile_bytes_raise_only_the_decode_error() -> None:
    for junk in (b"\x01\x00\x00\x04abcd", frame(b"\xfeSMB" + bytes(10)), frame(b"\xfdSMB" + bytes(60))):
        client = ClientConnection()
        client.negotiate()
        with pytest.raises(Smb2DecodeError):
            client.receive_data(junk)


def test_a_deframed_message_longer_than_anything_asked_is_refused() -> None:
    client = ClientConnection()
    client.negotiate()
    with pytest.raises(Smb2DecodeError, match="exceeds"):
        client.receive_data(b"\x00\x10\x00\x00")  # announces 1 MiB for a NEGOTIATE answer
