"""The sans-I/O SMB2/3 server connection (MS-SMB2 §3.3), driven by an in-memory client (``smb2_harness``):
our own encoders build the requests, a real NtlmAuthenticator checks pyspnego's NTLM client, the clock and
the random source are fixed, and the backend records what it is told."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from smb2_harness import (
    CLIENT_GUID,
    FIXED_FILETIME,
    SERVER_GUID,
    Smb2Harness,
    make_server,
    ready,
    with_flags,
)

from netsession.wire.smb2.client import ALL_DIALECTS, ClientSession
from netsession.wire.smb2.connection import PRE_NEGOTIATE_MAX_MESSAGE, ServerConfig
from netsession.wire.smb2.constants import (
    Cipher,
    Command,
    Dialect,
    FileInformationClass,
    FsctlCode,
    GlobalCapabilities,
    HashAlgorithm,
    HeaderFlags,
    InfoType,
    NtStatus,
    SecurityMode,
    ShareType,
    SigningAlgorithm,
)
from netsession.wire.smb2.create import FILE_ID_ANY, CloseRequest, CloseResponse, CreateRequest, FileId
from netsession.wire.smb2.header import Smb2Header
from netsession.wire.smb2.messages import (
    EchoRequest,
    EchoResponse,
    ErrorResponse,
    LogoffRequest,
    RawBody,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
)
from netsession.wire.smb2.negotiate import (
    EncryptionCapabilities,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
    Smb1NegotiateRequest,
)
from netsession.wire.smb2.payloads import ValidateNegotiateInfoRequest, ValidateNegotiateInfoResponse
from netsession.wire.smb2.pipe_io import (
    IoctlRequest,
    IoctlResponse,
    QueryInfoRequest,
    QueryInfoResponse,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
)
from netsession.wire.smb2.transport import frame

TRANSCEIVE = FsctlCode.FSCTL_PIPE_TRANSCEIVE
SMB3 = (Dialect.SMB_3_0, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1)


def closing(client: Smb2Harness) -> bool:
    return client.server.closing


# -- NEGOTIATE (MS-SMB2 §3.3.5.3, §3.3.5.4) ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=hex)
def test_negotiate_each_dialect_alone(dialect: int) -> None:
    client = Smb2Harness()
    reply = client.negotiate((dialect,))
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    body = reply.body
    assert isinstance(body, NegotiateResponse)
    assert body.dialect_revision == dialect
    assert body.security_mode == SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED
    assert body.server_guid == SERVER_GUID
    assert body.system_time == FIXED_FILETIME
    assert body.security_buffer == client.server.authenticator.initial_token()
    assert bool(body.capabilities & GlobalCapabilities.LARGE_MTU) == (dialect != Dialect.SMB_2_0_2)
    # 3.0/3.0.2 advertise encryption in Capabilities; 3.1.1 in its negotiate context instead.
    assert bool(body.capabilities & GlobalCapabilities.ENCRYPTION) == (dialect in (0x0300, 0x0302))
    assert (body.negotiate_contexts != ()) == (dialect == Dialect.SMB_3_1_1)
    assert not closing(client)


def test_negotiate_picks_the_highest_common_dialect() -> None:
    client = Smb2Harness()
    assert client.negotiate(ALL_DIALECTS[::-1]).body.dialect_revision == Dialect.SMB_3_1_1  # type: ignore[union-attr]
    server = make_server(ServerConfig(dialects=(Dialect.SMB_2_0_2, Dialect.SMB_2_1)))
    client = Smb2Harness(server)
    assert client.negotiate(ALL_DIALECTS).body.dialect_revision == Dialect.SMB_2_1  # type: ignore[union-attr]


def test_negotiate_3_1_1_contexts_preauth_cipher_signing() -> None:
    client = Smb2Harness()
    reply = client.negotiate(
        (Dialect.SMB_3_1_1,),
        ciphers=(Cipher.AES_256_CCM, Cipher.AES_128_CCM),
        signing=(SigningAlgorithm.HMAC_SHA256, SigningAlgorithm.AES_CMAC),
    )
    body = reply.body
    assert isinstance(body, NegotiateResponse)
    (preauth,) = [c for c in body.negotiate_contexts if isinstance(c, PreauthIntegrityCapabilities)]
    assert preauth.hash_algorithms == (HashAlgorithm.SHA_512,)
    assert len(preauth.salt) == 32
    # The server's preference order among what the client offers (GCM first, then CCM-128).
    (cipher,) = [c for c in body.negotiate_contexts if isinstance(c, EncryptionCapabilities)]
    assert cipher.ciphers == (Cipher.AES_128_CCM,)
    (signing,) = [c for c in body.negotiate_contexts if isinstance(c, SigningCapabilities)]
    assert signing.signing_algorithms == (SigningAlgorithm.AES_CMAC,)


def test_negotiate_3_1_1_without_common_cipher_answers_cipher_none() -> None:
    server = make_server(ServerConfig(ciphers=(Cipher.AES_128_GCM,)))
    client = Smb2Harness(server)
    body = client.negotiate((Dialect.SMB_3_1_1,), ciphers=(Cipher.AES_256_CCM,)).body
    assert isinstance(body, NegotiateResponse)
    (cipher,) = [c for c in body.negotiate_contexts if isinstance(c, EncryptionCapabilities)]
    assert cipher.ciphers == (Cipher.NONE,)


def test_negotiate_3_1_1_without_sha512_is_no_preauth_integrity_hash_overlap() -> None:
    client = Smb2Harness()
    reply = client.negotiate((Dialect.SMB_3_1_1,), hashes=(0x0002,))
    assert reply.header.status == NtStatus.STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP
    assert closing(client)


def test_negotiate_no_common_dialect_is_not_supported_then_closing() -> None:
    server = make_server(ServerConfig(dialects=(Dialect.SMB_2_0_2,)))
    client = Smb2Harness(server)
    reply = client.negotiate((Dialect.SMB_3_0, Dialect.SMB_3_1_1))
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED
    assert isinstance(reply.body, ErrorResponse)
    assert closing(client)


def test_negotiate_with_no_dialects_is_invalid_parameter() -> None:
    # MS-SMB2 §3.3.5.4: DialectCount 0 -> STATUS_INVALID_PARAMETER.
    client = Smb2Harness()
    reply = client.negotiate(())
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER
    assert closing(client)


def test_malformed_negotiate_is_answered_invalid_parameter_and_closes() -> None:
    # A DialectCount that runs past the message: the body cannot be decoded (found by the fuzz tests:
    # it raised AssertionError out of receive_data).
    client = Smb2Harness()
    message = bytearray(client.build(client.negotiate_request((Dialect.SMB_2_1,))))
    struct.pack_into("<H", message, 64 + 2, 0xFFFF)
    (reply,) = client.replies(client.feed(frame(bytes(message))))
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER
    assert closing(client)


def test_second_negotiate_closes_the_connection() -> None:
    client = Smb2Harness.connected()
    assert client.feed(frame(bytes(client.build(client.negotiate_request((Dialect.SMB_3_1_1,)))))) == []
    assert closing(client)
    assert "second NEGOTIATE" in client.server.close_reason


def test_request_before_negotiate_closes_the_connection() -> None:
    client = Smb2Harness()
    assert client.feed(frame(bytes(client.build(EchoRequest())))) == []
    assert closing(client)


def _smb1_negotiate(*dialects: str) -> bytes:
    return frame(Smb1NegotiateRequest(dialects).encode())


def test_smb1_negotiate_with_wildcard_answers_2_0_wildcard_then_smb2_negotiate() -> None:
    # MS-SMB2 §3.3.5.3.1: "SMB 2.???" -> an SMB2 NEGOTIATE response with DialectRevision 0x02FF.
    client = Smb2Harness()
    (reply,) = client.replies(client.feed(_smb1_negotiate("NT LM 0.12", "SMB 2.002", "SMB 2.???")))
    assert isinstance(reply.body, NegotiateResponse)
    assert reply.body.dialect_revision == Dialect.SMB_2_WILDCARD
    assert reply.header.message_id == 0
    assert reply.body.capabilities == 0
    # The client continues with an SMB2 NEGOTIATE with MessageId 1.
    client.message_id = 1
    reply = client.negotiate(ALL_DIALECTS)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert client.dialect == Dialect.SMB_3_1_1
    client.logon("alice")


def test_smb1_negotiate_with_2_002_only_selects_2_0_2_at_once() -> None:
    # §3.3.5.3.2: "SMB 2.002" without the wildcard -> dialect 0x0202; the next request is MessageId 1.
    client = Smb2Harness()
    (reply,) = client.replies(client.feed(_smb1_negotiate("NT LM 0.12", "SMB 2.002")))
    assert isinstance(reply.body, NegotiateResponse)
    assert reply.body.dialect_revision == Dialect.SMB_2_0_2
    client.accept_negotiation(reply)
    client.message_id = 1
    session = client.logon("bob")
    assert client.tree_connect(session)


def test_smb1_negotiate_wildcard_on_a_2_0_2_only_server_selects_2_0_2() -> None:
    server = make_server(ServerConfig(dialects=(Dialect.SMB_2_0_2,)))
    client = Smb2Harness(server)
    (reply,) = client.replies(client.feed(_smb1_negotiate("SMB 2.002", "SMB 2.???")))
    assert reply.body.dialect_revision == Dialect.SMB_2_0_2  # type: ignore[union-attr]


def test_smb1_negotiate_without_smb2_dialects_closes() -> None:
    client = Smb2Harness()
    assert client.feed(_smb1_negotiate("NT LM 0.12")) == []
    assert closing(client)


def test_smb1_message_after_negotiation_closes() -> None:
    client = Smb2Harness.connected()
    assert client.feed(_smb1_negotiate("SMB 2.???")) == []
    assert closing(client)


def test_unknown_protocol_id_closes() -> None:
    client = Smb2Harness.connected()
    client.feed(frame(b"\xfcSMB" + bytes(60)))  # a compression transform, never negotiated
    assert closing(client)


# -- credits and the command sequence window (§3.3.1.1, §3.3.5.2.3) ------------------------------------


def test_credits_granted_extend_the_window() -> None:
    client, session, _tree = ready()
    reply = client.request(EchoRequest(), session=session, credits=10)
    assert reply.header.credits == 10
    # Every MessageId in the window can be used, in any order.
    last = client.message_id + 9
    (echo,) = client.send(client.build(EchoRequest(), session=session, message_id=last))
    assert echo.header.status == NtStatus.STATUS_SUCCESS
    for mid in range(client.message_id, last):
        client.send(client.build(EchoRequest(), session=session, message_id=mid))
    assert not closing(client)


def test_reused_message_id_closes() -> None:
    client, session, _ = ready()
    client.request(EchoRequest(), session=session, credits=4)
    used = client.message_id - 1
    assert client.send(client.build(EchoRequest(), session=session, message_id=used)) == []
    assert closing(client)
    assert "outside the window" in client.server.close_reason  # below it: already consumed


def test_message_id_used_twice_inside_the_window_closes() -> None:
    # Ids below it still unused, so the window has not moved past it: only the "used once" rule catches it.
    client, session, _ = ready()
    client.request(EchoRequest(), session=session, credits=8)
    ahead = client.message_id + 3
    (first,) = client.send(client.build(EchoRequest(), session=session, message_id=ahead))
    assert first.header.status == NtStatus.STATUS_SUCCESS
    assert client.send(client.build(EchoRequest(), session=session, message_id=ahead)) == []
    assert closing(client)
    assert "used twice" in client.server.close_reason


def test_message_id_beyond_the_granted_window_closes() -> None:
    client, session, _ = ready()
    assert client.send(client.build(EchoRequest(), session=session, message_id=client.message_id + 50)) == []
    assert closing(client)
    assert "outside the window" in client.server.close_reason


def test_credit_charge_too_small_for_a_large_read_is_invalid_parameter() -> None:
    # §3.3.5.2.5: a 128 KiB READ costs 2 credits; CreditCharge 1 does not cover it: the request fails
    # with STATUS_INVALID_PARAMETER and the connection lives on.
    client, session, tree = ready(Dialect.SMB_2_1)
    fid = client.open_pipe(session, tree)
    client.request(EchoRequest(), session=session, credits=8)
    message = client.build(ReadRequest(fid, 0x20000), session=session, tree=tree, credit_charge=1)
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER
    assert not closing(client)
    assert client.request(EchoRequest(), session=session).header.status == NtStatus.STATUS_SUCCESS


def test_multi_credit_request_with_enough_charge_is_served() -> None:
    client, session, tree = ready(Dialect.SMB_2_1)
    fid = client.open_pipe(session, tree)
    client.request(WriteRequest(fid, b"abc"), session=session, tree=tree)
    client.request(EchoRequest(), session=session, credits=8)
    reply = client.request(ReadRequest(fid, 0x20000), session=session, tree=tree, credit_charge=2)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, ReadResponse)
    assert reply.body.data == b"cba"


# -- message size (§3.3.5.2, the transport) ---------------------------------------------------------------


def test_message_longer_than_the_pre_negotiate_maximum_is_refused_before_it_is_read() -> None:
    client = Smb2Harness()
    # Only the 4-byte length arrives: the server refuses without waiting for (or buffering) the body.
    client.feed((PRE_NEGOTIATE_MAX_MESSAGE + 1).to_bytes(4, "big"))
    assert closing(client)


def test_message_at_the_pre_negotiate_maximum_is_waited_for() -> None:
    client = Smb2Harness()
    client.feed(PRE_NEGOTIATE_MAX_MESSAGE.to_bytes(4, "big") + bytes(100))
    assert not closing(client)


def test_message_longer_than_the_negotiated_maximum_is_refused_before_it_is_read() -> None:
    # §3.3.5.2: longer than MaxTransactSize + 256 disconnects (once logged on; see PRE_LOGON_MAX_MESSAGE).
    client, _, _ = ready()
    limit = client.server.config.max_message_size
    assert limit == client.server.config.max_transact_size + 256
    client.feed(limit.to_bytes(4, "big"))
    assert not closing(client)
    client2, _, _ = ready()
    client2.feed((limit + 1).to_bytes(4, "big"))
    assert closing(client2)


def test_direct_tcp_header_with_nonzero_first_byte_closes() -> None:
    client = Smb2Harness()
    client.feed(b"\x81\x00\x00\x00")  # a NetBIOS session request, not Direct TCP
    assert closing(client)


def test_bytes_split_anywhere_give_the_same_replies() -> None:
    client = Smb2Harness()
    data = frame(bytes(client.build(client.negotiate_request(ALL_DIALECTS))))
    out = b""
    for i in range(len(data)):
        client.server.receive_data(data[i : i + 1])
        out += client.server.data_to_send()
    (reply,) = client.replies(client._deframer.receive_data(out))
    assert reply.body.dialect_revision == Dialect.SMB_3_1_1  # type: ignore[union-attr]


# -- SESSION_SETUP (§3.3.5.5) ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=hex)
def test_session_setup_success_tells_the_backend_and_signs_the_final_response(dialect: int) -> None:
    client = Smb2Harness.connected((dialect,))
    session = client.logon("alice")
    assert client.backend.events[0] == ("established", session.session_id)
    backend_session = client.backend.sessions[session.session_id]
    assert backend_session.identity is not None and backend_session.identity.user == "alice"
    assert backend_session.client_address == "10.0.0.5"
    # §3.3.5.5.3: the final response is signed with the new session's key (signing is required).
    assert client.verify(client.last_reply, session)


def test_session_setup_wrong_password_is_logon_failure() -> None:
    client = Smb2Harness.connected()
    client.logon("alice", "wrong", expect=NtStatus.STATUS_LOGON_FAILURE)
    assert client.backend.events == []
    assert client.server.sessions == {}
    assert not closing(client)
    # The connection is still good for a correct logon.
    client.logon("alice")


def test_session_setup_unknown_user_is_logon_failure_without_guest() -> None:
    client = Smb2Harness.connected()
    client.logon("mallory", "x", expect=NtStatus.STATUS_LOGON_FAILURE)


def test_session_setup_garbage_token_is_logon_failure() -> None:
    from netsession.wire.smb2.messages import SessionSetupRequest

    client = Smb2Harness.connected()
    reply = client.request(SessionSetupRequest(b"\x60\x03\x06\x01\x00"))
    assert reply.header.status == NtStatus.STATUS_LOGON_FAILURE
    assert reply.header.session_id == 0


def test_session_setup_binding_is_request_not_accepted() -> None:
    from netsession.wire.smb2.messages import SessionSetupRequest

    client = Smb2Harness.connected()
    reply = client.request(SessionSetupRequest(b"x", flags=0x01))
    assert reply.header.status == NtStatus.STATUS_REQUEST_NOT_ACCEPTED


def test_session_setup_with_an_unknown_session_id_is_user_session_deleted() -> None:
    from netsession.wire.smb2.messages import SessionSetupRequest

    client = Smb2Harness.connected()
    reply = client.request(SessionSetupRequest(b"x"), session=ClientSession(0x1234), sign=False)
    assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED


def test_request_on_a_session_in_progress_is_refused() -> None:
    import spnego

    from netsession.wire.smb2.messages import SessionSetupRequest

    client = Smb2Harness.connected()
    ntlm = spnego.client("alice", "Al1ce-pw!", hostname="fs1", protocol="ntlm")
    token = ntlm.step()
    assert token is not None
    reply = client.request(SessionSetupRequest(token))
    assert reply.header.status == NtStatus.STATUS_MORE_PROCESSING_REQUIRED
    pending = ClientSession(reply.header.session_id)
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=pending, sign=False)
    assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED


def test_guest_logon_allowed_gets_the_guest_flag_and_no_signing() -> None:
    server = make_server(allow_guest=True)
    client = Smb2Harness.connected(server=server)
    session = client.logon("stranger", "whatever")
    assert session.is_guest
    assert not client.verify(client.last_reply, session)
    identity = client.backend.sessions[session.session_id].identity
    assert identity is not None and identity.is_guest


# -- signing (§3.3.5.2.4) ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=hex)
def test_signing_required_unsigned_request_is_access_denied(dialect: int) -> None:
    client = Smb2Harness.connected((dialect,))
    session = client.logon("alice")
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session, sign=False)
    assert reply.header.status == NtStatus.STATUS_ACCESS_DENIED
    assert not reply.header.flags & HeaderFlags.SIGNED
    assert not closing(client)


@pytest.mark.parametrize("dialect", ALL_DIALECTS, ids=hex)
def test_bad_signature_is_access_denied(dialect: int) -> None:
    client = Smb2Harness.connected((dialect,))
    session = client.logon("alice")
    message = client.build(TreeConnectRequest("\\\\fs1\\IPC$"), session=session)
    message[50] ^= 0x01  # inside the signature
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_ACCESS_DENIED


@pytest.mark.parametrize(
    "algorithm",
    [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256],
    ids=lambda a: a.name,
)
def test_signed_request_gets_a_signed_response_with_the_negotiated_algorithm(algorithm: int) -> None:
    client = Smb2Harness.connected(signing=(algorithm,))
    assert client.signing_algorithm == algorithm
    session = client.logon("alice")
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert client.verify(reply, session)


def test_signing_not_required_by_server_accepts_unsigned_requests() -> None:
    server = make_server(ServerConfig(require_signing=False))
    client = Smb2Harness.connected((Dialect.SMB_2_1,), server=server)
    session = client.logon("alice")
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session, sign=False)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert not reply.header.flags & HeaderFlags.SIGNED


# -- encryption (§3.3.4.1.4, §3.3.5.2.1.1, §3.3.5.2.9) -------------------------------------------------------


@pytest.mark.parametrize(
    "cipher",
    [Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM],
    ids=lambda c: c.name,
)
def test_encrypted_request_gets_an_encrypted_response(cipher: int) -> None:
    client = Smb2Harness.connected(ciphers=(cipher,))
    session = client.logon("alice")
    session.encrypt_data = True
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session)
    assert reply.encrypted
    assert reply.header.status == NtStatus.STATUS_SUCCESS


@pytest.mark.parametrize("dialect", SMB3, ids=hex)
def test_server_encrypt_data_session_setup_response_is_signed_not_encrypted(dialect: int) -> None:
    server = make_server(ServerConfig(encrypt_data=True))
    client = Smb2Harness.connected((dialect,), server=server)
    session = client.logon("alice")
    # §3.3.4.1.4: Session.EncryptData does not apply to SESSION_SETUP; the client learns it from the flag.
    assert not client.last_reply.encrypted
    assert session.encrypt_data
    assert client.verify(client.last_reply, session)
    # Afterwards an unencrypted request is refused and an encrypted one served, encrypted.
    session.encrypt_data = False
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session)
    assert reply.header.status == NtStatus.STATUS_ACCESS_DENIED
    session.encrypt_data = True
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert reply.encrypted
    assert isinstance(reply.body, TreeConnectResponse)
    assert reply.body.share_flags & 0x8000  # SMB2_SHAREFLAG_ENCRYPT_DATA


@pytest.mark.parametrize("dialect", [Dialect.SMB_2_0_2, Dialect.SMB_2_1], ids=hex)
def test_server_encrypt_data_refuses_a_2_x_session_setup(dialect: int) -> None:
    # §3.3.5.5: EncryptData with RejectUnencryptedAccess and a dialect outside 3.x -> STATUS_ACCESS_DENIED.
    server = make_server(ServerConfig(encrypt_data=True))
    client = Smb2Harness.connected((dialect,), server=server)
    client.logon("alice", expect=NtStatus.STATUS_ACCESS_DENIED)
    assert client.backend.events == []


def test_server_encrypt_data_refuses_3_0_without_the_client_encryption_capability() -> None:
    server = make_server(ServerConfig(encrypt_data=True))
    client = Smb2Harness.connected(
        (Dialect.SMB_3_0,), server=server, capabilities=GlobalCapabilities.LARGE_MTU
    )
    client.logon("alice", expect=NtStatus.STATUS_ACCESS_DENIED)


def test_encrypted_message_for_an_unknown_session_closes() -> None:
    client = Smb2Harness.connected()
    session = client.logon("alice")
    stranger = replace(session, session_id=session.session_id ^ 1)
    assert client.send(client.build(EchoRequest(), session=stranger, sign=False), encrypt_for=stranger) == []
    assert closing(client)


def test_tampered_encrypted_message_closes() -> None:
    client = Smb2Harness.connected()
    session = client.logon("alice")
    sealed = bytearray(client.seal(bytes(client.build(EchoRequest(), session=session, sign=False)), session))
    sealed[-1] ^= 0xFF
    assert client.feed(frame(bytes(sealed))) == []
    assert closing(client)


def test_transform_header_before_3_x_closes() -> None:
    client = Smb2Harness.connected((Dialect.SMB_2_1,))
    session = client.logon("alice")
    client.feed(frame(b"\xfdSMB" + bytes(48) + struct.pack("<Q", session.session_id) + bytes(64)))
    assert closing(client)


# -- TREE_CONNECT, CREATE (§3.3.5.7, §3.3.5.9) ------------------------------------------------------------


def test_tree_connect_ipc_is_a_pipe_share() -> None:
    client, session, _ = ready()
    reply = client.request(TreeConnectRequest("\\\\fs1\\ipc$"), session=session)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, TreeConnectResponse)
    assert reply.body.share_type == ShareType.PIPE
    assert reply.header.tree_id != 0


@pytest.mark.parametrize("path", ["\\\\fs1\\C$", "\\\\fs1\\share", "IPC$", "\\\\fs1\\IPC$\\x"])
def test_tree_connect_other_share_is_bad_network_name(path: str) -> None:
    client, session, _ = ready()
    reply = client.request(TreeConnectRequest(path), session=session)
    assert reply.header.status == NtStatus.STATUS_BAD_NETWORK_NAME


def test_unknown_tree_id_is_network_name_deleted() -> None:
    client, session, tree = ready()
    reply = client.request(CreateRequest("srvsvc"), session=session, tree=tree + 7)
    assert reply.header.status == NtStatus.STATUS_NETWORK_NAME_DELETED


@pytest.mark.parametrize("name", ["winreg", "", "srvsvc\\x", "lsarpc"])
def test_create_unknown_pipe_is_object_name_not_found(name: str) -> None:
    client, session, tree = ready()
    reply = client.request(CreateRequest(name), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND


def test_create_pipe_name_is_case_insensitive() -> None:
    client, session, tree = ready()
    reply = client.request(CreateRequest("SRVSVC"), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_SUCCESS


def test_tree_disconnect_closes_its_opens_and_the_tree() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    client.open_pipe(session, tree)
    assert client.backend.sessions[session.session_id].num_opens == 2
    reply = client.request(TreeDisconnectRequest(), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert [p.closed for p in client.backend.pipes] == [1, 1]
    assert client.backend.sessions[session.session_id].num_opens == 0
    reply = client.request(ReadRequest(fid, 10), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_NETWORK_NAME_DELETED


# -- pipe I/O ----------------------------------------------------------------------------------------------


def test_write_then_read_is_one_message() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(WriteRequest(fid, b"abcdef"), session=session, tree=tree)
    assert isinstance(reply.body, WriteResponse) and reply.body.count == 6
    reply = client.request(ReadRequest(fid, 4), session=session, tree=tree)
    # A message longer than the read: the rest stays, STATUS_BUFFER_OVERFLOW (MS-SMB2 §3.3.5.12).
    assert reply.header.status == NtStatus.STATUS_BUFFER_OVERFLOW
    assert isinstance(reply.body, ReadResponse) and reply.body.data == b"fedc"
    reply = client.request(ReadRequest(fid, 4), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert reply.body.data == b"ba"  # type: ignore[union-attr]


def test_read_of_an_empty_pipe_is_pipe_empty() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(ReadRequest(fid, 100), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_PIPE_EMPTY


def test_transceive_writes_and_reads_one_message() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(
        IoctlRequest(TRANSCEIVE, fid, b"hello", max_output_response=3), session=session, tree=tree
    )
    assert reply.header.status == NtStatus.STATUS_BUFFER_OVERFLOW
    assert isinstance(reply.body, IoctlResponse)
    assert reply.body.output == b"oll"
    assert reply.body.file_id == fid
    reply = client.request(ReadRequest(fid, 100), session=session, tree=tree)
    assert reply.body.data == b"eh"  # type: ignore[union-attr]


def test_ioctl_that_is_not_an_fsctl_is_not_supported() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(IoctlRequest(TRANSCEIVE, fid, b"x", flags=0), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED


def test_unknown_fsctl_is_not_supported() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(IoctlRequest(FsctlCode.FSCTL_SRV_COPYCHUNK, fid), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED


@pytest.mark.parametrize(
    "request_for",
    [
        lambda fid: ReadRequest(fid, 10),
        lambda fid: WriteRequest(fid, b"x"),
        lambda fid: IoctlRequest(TRANSCEIVE, fid, b"x", max_output_response=10),
        lambda fid: CloseRequest(fid),
        lambda fid: QueryInfoRequest(InfoType.FILE, FileInformationClass.FileStandardInformation, fid, 100),
    ],
    ids=["read", "write", "ioctl", "close", "query_info"],
)
def test_unknown_or_closed_file_id_is_file_closed(request_for: object) -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    make = request_for
    assert callable(make)
    reply = client.request(make(FileId(fid.persistent + 100, fid.volatile + 100)), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_FILE_CLOSED
    client.request(CloseRequest(fid), session=session, tree=tree)
    reply = client.request(make(fid), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_FILE_CLOSED


def test_file_id_with_the_wrong_persistent_half_is_file_closed() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    wrong = FileId(fid.persistent + 1, fid.volatile)
    reply = client.request(ReadRequest(wrong, 10), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_FILE_CLOSED


def test_close_with_postquery_attributes() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(CloseRequest(fid, flags=1), session=session, tree=tree)
    assert isinstance(reply.body, CloseResponse)
    assert reply.body.flags == 1
    assert client.backend.pipes[0].closed == 1


PIPE_INFO_CLASSES = (
    FileInformationClass.FileStandardInformation,
    FileInformationClass.FilePipeInformation,
    FileInformationClass.FileBasicInformation,
    FileInformationClass.FileNetworkOpenInformation,
)


@pytest.mark.parametrize("info_class", PIPE_INFO_CLASSES, ids=lambda c: c.name)
def test_query_info_classes_clients_ask_of_a_pipe(info_class: int) -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(QueryInfoRequest(InfoType.FILE, info_class, fid, 200), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, QueryInfoResponse) and reply.body.output
    short = client.request(QueryInfoRequest(InfoType.FILE, info_class, fid, 1), session=session, tree=tree)
    assert short.header.status == NtStatus.STATUS_INFO_LENGTH_MISMATCH


def test_query_info_other_class_is_invalid_info_class_and_other_type_not_supported() -> None:
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    reply = client.request(
        QueryInfoRequest(InfoType.FILE, FileInformationClass.FileAllInformation, fid, 999),
        session=session,
        tree=tree,
    )
    assert reply.header.status == NtStatus.STATUS_INVALID_INFO_CLASS
    reply = client.request(QueryInfoRequest(InfoType.SECURITY, 0, fid, 999), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED


# -- commands a pipe server does not implement, and ones that do not exist (§3.3.5.2.6) ----------------------


@pytest.mark.parametrize(
    "command",
    [Command.LOCK, Command.QUERY_DIRECTORY, Command.CHANGE_NOTIFY, Command.SET_INFO, Command.OPLOCK_BREAK],
    ids=lambda c: c.name,
)
def test_unimplemented_command_is_not_supported(command: int) -> None:
    client, session, tree = ready()
    reply = client.request(RawBody(command, bytes(48)), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED
    assert reply.header.command == command
    assert client.verify(reply, session)
    assert not closing(client)


@pytest.mark.parametrize("command", [0x0014, 0x0042, 0xFFFF])
def test_unknown_command_closes(command: int) -> None:
    client, session, tree = ready()
    assert client.send(client.build(RawBody(command, bytes(8)), session=session, tree=tree)) == []
    assert closing(client)
    assert "unknown command" in client.server.close_reason


def test_response_sent_to_the_server_closes() -> None:
    client, session, _ = ready()
    message = client.build(EchoRequest(), session=session, sign=False)
    message = with_flags(message, HeaderFlags.SERVER_TO_REDIR)
    assert client.send(message) == []
    assert closing(client)


def test_malformed_body_is_invalid_parameter() -> None:
    client, session, tree = ready()
    message = client.build(RawBody(Command.CREATE, bytes(10)), session=session, tree=tree)
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER
    assert not closing(client)


def test_cancel_gets_no_response() -> None:
    from netsession.wire.smb2.messages import CancelRequest

    client, session, _ = ready()
    message = client.build(CancelRequest(), session=session, sign=False, credits=0)
    assert client.send(message) == []
    assert not closing(client)


# -- compounds (§3.3.5.2.7) ----------------------------------------------------------------------------------


def test_related_create_ioctl_close_compound() -> None:
    client, session, tree = ready()
    ids = client.next_ids(3)
    related = HeaderFlags.RELATED_OPERATIONS
    create = client.build(CreateRequest("srvsvc"), session=session, tree=tree, message_id=ids[0], sign=False)
    ioctl = client.build(
        IoctlRequest(TRANSCEIVE, FILE_ID_ANY, b"ping", max_output_response=64),
        session=session,
        tree=tree,
        message_id=ids[1],
        flags=related,
        sign=False,
    )
    close = client.build(
        CloseRequest(FILE_ID_ANY), session=session, tree=tree, message_id=ids[2], flags=related, sign=False
    )
    # Each element is signed over itself and its padding, as built into the chain.
    from netsession.wire.smb2.compound import build_compound

    chain = build_compound([create, ioctl, close], signer=session.sign)
    replies = client.replies(client.feed(frame(chain)))
    assert [r.header.command for r in replies] == [Command.CREATE, Command.IOCTL, Command.CLOSE]
    assert [r.header.status for r in replies] == [NtStatus.STATUS_SUCCESS] * 3
    assert [r.header.message_id for r in replies] == ids
    assert all(r.header.flags & related for r in replies[1:])
    assert all(client.verify(r, session) for r in replies)
    assert isinstance(replies[1].body, IoctlResponse) and replies[1].body.output == b"gnip"
    assert client.backend.pipes[0].closed == 1
    assert client.backend.sessions[session.session_id].num_opens == 0


def test_related_chain_after_a_failure_inherits_the_failure() -> None:
    client, session, tree = ready()
    ids = client.next_ids(2)
    create = client.build(
        CreateRequest("nosuchpipe"), session=session, tree=tree, message_id=ids[0], sign=False
    )
    close = client.build(
        CloseRequest(FILE_ID_ANY),
        session=session,
        tree=tree,
        message_id=ids[1],
        flags=HeaderFlags.RELATED_OPERATIONS,
        sign=False,
    )
    from netsession.wire.smb2.compound import build_compound

    chain = build_compound([create, close], signer=session.sign)
    replies = client.replies(client.feed(frame(chain)))
    assert [r.header.status for r in replies] == [NtStatus.STATUS_OBJECT_NAME_NOT_FOUND] * 2


def test_related_flag_on_the_first_element_is_invalid_parameter() -> None:
    client, session, _tree = ready()
    message = client.build(EchoRequest(), session=session, flags=HeaderFlags.RELATED_OPERATIONS)
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER


def test_unrelated_compound_answers_each_element() -> None:
    client, session, _tree = ready()
    ids = client.next_ids(2)
    echo = client.build(EchoRequest(), session=session, message_id=ids[0], sign=False)
    bad_tree = client.build(
        TreeConnectRequest("\\\\fs1\\nope"), session=session, message_id=ids[1], sign=False
    )
    from netsession.wire.smb2.compound import build_compound

    chain = build_compound([echo, bad_tree], signer=session.sign)
    replies = client.replies(client.feed(frame(chain)))
    assert [r.header.status for r in replies] == [NtStatus.STATUS_SUCCESS, NtStatus.STATUS_BAD_NETWORK_NAME]


def test_compound_with_a_misaligned_next_command_closes() -> None:
    client, session, _ = ready()
    first = bytearray(client.build(EchoRequest(), session=session, sign=False))
    struct.pack_into("<I", first, 20, len(first) + 1)  # NextCommand not 8-aligned
    second = client.build(EchoRequest(), session=session, sign=False)
    client.feed(frame(bytes(first) + b"\x00" + bytes(second)))
    assert closing(client)


# -- VALIDATE_NEGOTIATE_INFO (§3.3.5.15.12) -----------------------------------------------------------------


def _validate(client: Smb2Harness, **change: object) -> ValidateNegotiateInfoRequest:
    values: dict[str, object] = dict(
        capabilities=GlobalCapabilities.LARGE_MTU | GlobalCapabilities.ENCRYPTION,
        guid=CLIENT_GUID.bytes_le,
        security_mode=SecurityMode.SIGNING_ENABLED,
        dialects=(Dialect.SMB_3_0,),
    )
    values.update(change)
    return ValidateNegotiateInfoRequest(**values)  # type: ignore[arg-type]


def test_validate_negotiate_info_matching_is_answered() -> None:
    client, session, tree = ready(Dialect.SMB_3_0)
    reply = client.request(
        IoctlRequest(
            FsctlCode.FSCTL_VALIDATE_NEGOTIATE_INFO,
            FILE_ID_ANY,
            _validate(client).encode(),
            max_output_response=24,
        ),
        session=session,
        tree=tree,
    )
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, IoctlResponse)
    answer = ValidateNegotiateInfoResponse.decode(reply.body.output)
    assert answer.dialect == Dialect.SMB_3_0
    assert answer.guid == SERVER_GUID.bytes_le
    assert client.verify(reply, session)


@pytest.mark.parametrize(
    "change",
    [{"dialects": (Dialect.SMB_2_1,)}, {"security_mode": 3}, {"guid": bytes(16)}, {"capabilities": 0}],
    ids=str,
)
def test_validate_negotiate_info_mismatch_closes(change: dict[str, object]) -> None:
    client, session, tree = ready(Dialect.SMB_3_0)
    message = client.build(
        IoctlRequest(
            FsctlCode.FSCTL_VALIDATE_NEGOTIATE_INFO,
            FILE_ID_ANY,
            _validate(client, **change).encode(),
            max_output_response=24,
        ),
        session=session,
        tree=tree,
    )
    assert client.send(message) == []
    assert closing(client)


# -- ECHO, LOGOFF, close_session, connection_lost -------------------------------------------------------


def test_echo_without_a_session_is_answered() -> None:
    client = Smb2Harness.connected()
    reply = client.request(EchoRequest())
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, EchoResponse)


def test_echo_on_a_session_marks_it_active() -> None:
    client, session, _ = ready()
    before = client.backend.count("active")
    client.request(EchoRequest(), session=session)
    assert client.backend.count("active") == before + 1


def test_logoff_ends_the_session_and_later_requests_are_user_session_deleted() -> None:
    client, session, tree = ready()
    client.open_pipe(session, tree)
    reply = client.request(LogoffRequest(), session=session)
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert client.backend.events[-1] == ("ended", session.session_id)
    assert client.backend.pipes[0].closed == 1
    reply = client.request(EchoRequest(), session=session, sign=False)
    assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED
    reply = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), session=session, sign=False)
    assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED


def test_close_session_with_another_session_left_answers_user_session_deleted() -> None:
    client, alice, tree = ready()
    bob = client.logon("bob")
    client.open_pipe(alice, tree)
    client.server.close_session(alice.session_id)
    assert client.backend.count("ended") == 1
    assert client.backend.pipes[0].closed == 1
    assert not closing(client)
    # MS-SMB2 §3.3.5.2.9 (and §3.3.5.17 for ECHO): the next request on it is USER_SESSION_DELETED.
    for body in (EchoRequest(), TreeConnectRequest("\\\\fs1\\IPC$"), CreateRequest("srvsvc")):
        reply = client.request(body, session=alice, tree=tree)
        assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED
    # bob goes on, and alice can log on again on this connection.
    assert client.tree_connect(bob)
    again = client.logon("alice")
    assert again.session_id != alice.session_id
    assert client.backend.count("established") == 3


def test_close_session_keeps_the_key_to_answer_a_sealed_request_user_session_deleted() -> None:
    # A client that encrypts keeps sealing with the deleted session's key: the connection still decrypts
    # it and answers STATUS_USER_SESSION_DELETED, sealed, instead of dropping bob's session with it.
    client, alice, tree = ready()
    bob = client.logon("bob")
    client.server.close_session(alice.session_id)
    for body in (EchoRequest(), CreateRequest("srvsvc")):
        (reply,) = client.send(client.build(body, session=alice, tree=tree, sign=False), encrypt_for=alice)
        assert reply.encrypted
        assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED
    assert not closing(client)
    assert client.tree_connect(bob)


def test_close_session_of_the_last_session_closes_the_connection() -> None:
    client, session, tree = ready()
    client.open_pipe(session, tree)
    client.server.close_session(session.session_id)
    assert closing(client)
    assert client.backend.events[-1] == ("ended", session.session_id)
    assert client.backend.pipes[0].closed == 1
    assert "last session" in client.server.close_reason


def test_pipe_busy_is_answered_status_pipe_busy_for_write_and_transceive() -> None:
    from netsession.wire.smb2.state import PipeBusy

    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    pipe = client.backend.pipes[-1]

    def busy(data: bytes) -> None:
        raise PipeBusy("unread output")

    pipe.write = busy  # type: ignore[method-assign]
    reply = client.request(WriteRequest(fid, b"x"), session=session, tree=tree)
    assert reply.header.status == NtStatus.STATUS_PIPE_BUSY
    reply = client.request(
        IoctlRequest(TRANSCEIVE, fid, b"x", max_output_response=16), session=session, tree=tree
    )
    assert reply.header.status == NtStatus.STATUS_PIPE_BUSY
    assert not closing(client)


def test_close_session_from_the_connections_own_request_keeps_it_open_for_the_reply() -> None:
    # A caller whose pipe call ends its own (last) session gets its reply, and the connection stays: its
    # next request is STATUS_USER_SESSION_DELETED (closing at once would race the reply in the client).
    client, session, tree = ready()
    fid = client.open_pipe(session, tree)
    pipe = client.backend.pipes[-1]
    original_write = pipe.write

    def write_and_end_own_session(data: bytes) -> None:
        original_write(data)
        client.server.close_session(session.session_id)

    pipe.write = write_and_end_own_session  # type: ignore[method-assign]
    reply = client.request(
        IoctlRequest(TRANSCEIVE, fid, b"bye", max_output_response=16), session=session, tree=tree
    )
    assert reply.header.status == NtStatus.STATUS_SUCCESS
    assert isinstance(reply.body, IoctlResponse) and reply.body.output == b"eyb"
    assert not closing(client)
    assert (
        client.request(EchoRequest(), session=session).header.status == NtStatus.STATUS_USER_SESSION_DELETED
    )


def test_close_session_of_an_unknown_id_changes_nothing_else() -> None:
    client, _alice, _ = ready()
    client.logon("bob")
    client.server.close_session(12345)
    assert client.backend.count("ended") == 0
    assert not closing(client)


def test_connection_lost_ends_every_session_once() -> None:
    client, alice, tree = ready()
    bob = client.logon("bob")
    client.open_pipe(alice, tree)
    client.server.connection_lost()
    assert sorted(sid for kind, sid in client.backend.events if kind == "ended") == sorted(
        [alice.session_id, bob.session_id]
    )
    assert client.backend.pipes[0].closed == 1
    assert closing(client)
    client.server.connection_lost()
    assert client.backend.count("ended") == 2
    client.server.receive_data(b"\x00\x00\x00\x04abcd")  # ignored once closing
    assert client.server.data_to_send() == b""


def test_session_reports_its_client_address_and_num_opens() -> None:
    client, session, tree = ready()
    server_session = client.backend.sessions[session.session_id]
    assert server_session.num_opens == 0
    fids = [client.open_pipe(session, tree) for _ in range(3)]
    assert server_session.num_opens == 3
    client.request(CloseRequest(fids[0]), session=session, tree=tree)
    assert server_session.num_opens == 2


def test_responses_echo_the_request_header_fields() -> None:
    client, session, _tree = ready()
    message = client.build(EchoRequest(), session=session, credits=3)
    sent = Smb2Header.decode(message)
    (reply,) = client.send(message)
    assert reply.header.message_id == sent.message_id
    assert reply.header.session_id == session.session_id
    assert reply.header.flags & HeaderFlags.SERVER_TO_REDIR
    assert reply.header.credits == 3
