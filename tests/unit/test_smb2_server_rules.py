"""MS-SMB2 server rules the hostile-network review found broken (issue 9), each named after its rule:
re-authentication (§3.3.5.5.3, §3.3.5.2.4, §3.3.4.1.1), PreviousSessionId, a signed NEGOTIATE, a signed
request without a signing key, the credit charge, the message size, a CREATE name with a backslash, the
pre-logon limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import spnego
from smb2_harness import (
    PASSWORDS,
    ClientSession,
    Smb2Harness,
    make_server,
    ready,
    with_flags,
)

from netsession.groups import USERS
from netsession.server.accounts import AccountStore, nt_hash
from netsession.server.app import NetsessionServer, ServerOptions
from netsession.wire.smb2.connection import MAX_IN_PROGRESS_SESSIONS, PRE_LOGON_MAX_MESSAGE
from netsession.wire.smb2.constants import Dialect, HeaderFlags, NtStatus, SecurityMode
from netsession.wire.smb2.create import CreateRequest
from netsession.wire.smb2.crypto import preauth_hash
from netsession.wire.smb2.messages import EchoRequest, SessionSetupRequest, SessionSetupResponse
from netsession.wire.smb2.transport import frame


def reauthenticate(
    client: Smb2Harness, session: ClientSession, user: str, password: str, *, sign: bool = True
) -> list[tuple[int, bool]]:
    """SESSION_SETUP legs on an existing session (re-authentication); each reply's status and whether
    it is correctly signed under the session's key."""
    ntlm = spnego.client(user, password, hostname="fs1", protocol="ntlm")
    token = ntlm.step()
    out: list[tuple[int, bool]] = []
    while True:
        assert token is not None
        message = client.build(SessionSetupRequest(token), session=session, sign=sign)
        (reply,) = client.send(message)
        signed = bool(reply.header.flags & HeaderFlags.SIGNED) and client.verify(reply, session)
        out.append((reply.header.status, signed))
        if reply.header.status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
            return out
        assert isinstance(reply.body, SessionSetupResponse)
        token = ntlm.step(reply.body.security_buffer)


# -- re-authentication --------------------------------------------------------------------------------


def test_failed_reauthentication_removes_the_session() -> None:
    # MS-SMB2 §3.3.5.5.3: "If the authentication ... fails, the server MUST ... remove the session".
    client, session, _ = ready(Dialect.SMB_3_1_1)
    statuses = reauthenticate(client, session, "alice", "wrong password")
    assert statuses[-1] == (NtStatus.STATUS_LOGON_FAILURE, True)  # signed with the ended session's key
    assert session.session_id not in client.server.sessions
    assert client.backend.count("ended") == 1
    reply = client.request(EchoRequest(), session=session)
    assert reply.header.status == NtStatus.STATUS_USER_SESSION_DELETED


def test_successful_reauthentication_keeps_the_session() -> None:
    client, session, tree = ready(Dialect.SMB_3_1_1)
    statuses = reauthenticate(client, session, "alice", PASSWORDS["alice"])
    assert statuses[-1][0] == NtStatus.STATUS_SUCCESS
    assert client.backend.count("ended") == 0
    assert client.request(CreateRequest("srvsvc"), session=session, tree=tree).header.status == 0


@pytest.mark.parametrize("dialect", [Dialect.SMB_2_1, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1], ids=hex)
def test_unsigned_reauthentication_on_a_signing_required_session_is_access_denied(dialect: int) -> None:
    # §3.3.5.2.4: an unsigned request on a session with SigningRequired fails with ACCESS_DENIED —
    # SESSION_SETUP of a re-authentication included.
    client, session, _ = ready(dialect)
    statuses = reauthenticate(client, session, "alice", PASSWORDS["alice"], sign=False)
    assert statuses == [(NtStatus.STATUS_ACCESS_DENIED, False)]


@pytest.mark.parametrize("dialect", [Dialect.SMB_2_1, Dialect.SMB_3_0_2, Dialect.SMB_3_1_1], ids=hex)
def test_interim_response_to_a_signed_reauthentication_is_signed(dialect: int) -> None:
    # §3.3.4.1.1: the response to a signed request is signed, STATUS_MORE_PROCESSING_REQUIRED included
    # (smbtorture smb2.session.ntlmssp_bug14932 aborts otherwise).
    client, session, _ = ready(dialect)
    statuses = reauthenticate(client, session, "alice", PASSWORDS["alice"])
    assert statuses[0] == (NtStatus.STATUS_MORE_PROCESSING_REQUIRED, True)
    assert statuses[-1][0] == NtStatus.STATUS_SUCCESS


def test_reauthentication_as_another_user_removes_the_session() -> None:
    client, session, _ = ready(Dialect.SMB_3_1_1)
    statuses = reauthenticate(client, session, "bob", PASSWORDS["bob"])
    assert statuses[-1][0] == NtStatus.STATUS_LOGON_FAILURE
    assert session.session_id not in client.server.sessions


# -- PreviousSessionId --------------------------------------------------------------------------------


def _store(tmp_path: Path) -> AccountStore:
    store = AccountStore(tmp_path / "accounts.db")
    for name in ("alice", "bob"):
        store.add_user(name, nt_hash(PASSWORDS[name]), (USERS,))
    return store


def _logon(client: Smb2Harness, user: str, previous: int = 0) -> int:
    """A first logon with PreviousSessionId ``previous``; the new SessionId."""
    ntlm = spnego.client(user, PASSWORDS[user], hostname="fs1", protocol="ntlm")
    token = ntlm.step()
    session_id = 0
    while True:
        assert token is not None
        request = SessionSetupRequest(token, previous_session_id=previous)
        draft = ClientSession(session_id)
        (reply,) = client.send(client.build(request, session=draft if session_id else None, sign=False))
        if reply.header.status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
            assert reply.header.status == NtStatus.STATUS_SUCCESS, hex(reply.header.status)
            return reply.header.session_id
        assert isinstance(reply.body, SessionSetupResponse)
        session_id = reply.header.session_id
        token = ntlm.step(reply.body.security_buffer)


def test_previous_session_id_of_the_same_user_removes_the_old_session(tmp_path: Path) -> None:
    # MS-SMB2 §3.3.5.5.3: a reconnecting client names its old session; the server tears it down.
    server = NetsessionServer(ServerOptions(name="FS1"), _store(tmp_path))
    first = Smb2Harness.connected((Dialect.SMB_2_1,), server=server.new_connection("10.0.0.5"))
    old = _logon(first, "alice")
    other = _logon(first, "bob")
    assert len(server.table) == 2
    second = Smb2Harness.connected((Dialect.SMB_2_1,), server=server.new_connection("10.0.0.5"))
    new = _logon(second, "alice", previous=old)
    assert old not in first.server.sessions and old not in server.sessions
    assert new in server.sessions and other in server.sessions
    assert sorted(row.username for row in server.table) == ["alice", "bob"]


def test_previous_session_id_of_another_user_is_left_alone(tmp_path: Path) -> None:
    server = NetsessionServer(ServerOptions(name="FS1"), _store(tmp_path))
    first = Smb2Harness.connected((Dialect.SMB_2_1,), server=server.new_connection("10.0.0.5"))
    bobs = _logon(first, "bob")
    second = Smb2Harness.connected((Dialect.SMB_2_1,), server=server.new_connection("10.0.0.6"))
    _logon(second, "alice", previous=bobs)
    assert bobs in server.sessions and len(server.table) == 2


# -- NEGOTIATE, signing without a key, credit charge, sizes -----------------------------------------------


def test_negotiate_with_smb2_flags_signed_is_invalid_parameter() -> None:
    # §3.3.5.2.4: "If the SMB2 header of the SMB2 NEGOTIATE request has the SMB2_FLAGS_SIGNED bit set
    # ... the server MUST fail the request with STATUS_INVALID_PARAMETER."
    client = Smb2Harness()
    message = with_flags(client.build(client.negotiate_request((Dialect.SMB_3_1_1,))), HeaderFlags.SIGNED)
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_INVALID_PARAMETER
    assert client.server.dialect is None


def test_signed_request_on_a_guest_session_is_not_supported() -> None:
    # §3.3.5.2.4: a signed request on a session without a signing key (guest, anonymous) fails with
    # STATUS_NOT_SUPPORTED, not ACCESS_DENIED.
    server = make_server(allow_guest=True)
    client = Smb2Harness.connected((Dialect.SMB_3_0_2,), server=server)
    guest = client.logon("stranger", "whatever")
    message = with_flags(client.build(EchoRequest(), session=guest, sign=False), HeaderFlags.SIGNED)
    message[48:64] = b"\x11" * 16  # some signature: there is no key to check it with
    (reply,) = client.send(message)
    assert reply.header.status == NtStatus.STATUS_NOT_SUPPORTED


def test_negotiate_and_a_large_request_in_the_same_read_use_the_limit_after_negotiate() -> None:
    # Each frame is checked against the limit in force once the one before it is processed.
    client = Smb2Harness()
    negotiate = client.build(client.negotiate_request((Dialect.SMB_2_1,)))
    token = b"\x00" * 0xFFFF  # the largest SecurityBuffer: the frame is past the pre-NEGOTIATE 64 KiB
    setup = client.build(SessionSetupRequest(token, security_mode=SecurityMode.SIGNING_ENABLED))
    assert len(setup) > 0x10000
    replies = client.replies(client.feed(frame(bytes(negotiate)) + frame(bytes(setup))))
    assert [r.header.status for r in replies] == [NtStatus.STATUS_SUCCESS, NtStatus.STATUS_LOGON_FAILURE]
    assert not client.server.closing


def test_a_frame_past_the_pre_logon_limit_disconnects_before_logon() -> None:
    # Before any session is established only NEGOTIATE/SESSION_SETUP-sized frames are taken.
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,))
    client.feed((PRE_LOGON_MAX_MESSAGE + 1).to_bytes(4, "big"))
    assert client.server.closing


def test_create_of_a_pipe_name_with_a_leading_backslash_is_object_name_not_found() -> None:
    # MS-SMB2 §2.2.13: the name is relative to the share (Windows and Samba answer NOT_FOUND for
    # "\\srvsvc"; smbtorture rpc.samba3.smb2-pipe-name).
    client, session, tree = ready()
    for name in ("\\srvsvc", "\\\\srvsvc", "\\pipe\\srvsvc"):
        reply = client.request(CreateRequest(name), session=session, tree=tree)
        assert reply.header.status == NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, name


def test_in_progress_sessions_per_connection_are_bounded() -> None:
    # SESSION_SETUP with SessionId 0, again and again: past MAX_IN_PROGRESS_SESSIONS the server refuses
    # with STATUS_INSUFFICIENT_RESOURCES and keeps nothing for it.
    client = Smb2Harness.connected((Dialect.SMB_3_1_1,))
    ntlm = spnego.client("alice", PASSWORDS["alice"], hostname="fs1", protocol="ntlm")
    token = ntlm.step()
    assert token is not None
    statuses = []
    for _ in range(MAX_IN_PROGRESS_SESSIONS + 50):
        (reply,) = client.send(client.build(SessionSetupRequest(token)))
        statuses.append(reply.header.status)
    assert statuses[:MAX_IN_PROGRESS_SESSIONS] == [NtStatus.STATUS_MORE_PROCESSING_REQUIRED] * 4
    assert set(statuses[MAX_IN_PROGRESS_SESSIONS:]) == {NtStatus.STATUS_INSUFFICIENT_RESOURCES}
    assert len(client.server.sessions) == MAX_IN_PROGRESS_SESSIONS


def test_preauth_hash_is_unchanged_by_a_signed_reauthentication() -> None:
    # The 3.1.1 preauth hash of a valid session is what its keys came from; re-authentication leaves it.
    client, session, _ = ready(Dialect.SMB_3_1_1)
    server_session = client.server.sessions[session.session_id]
    before = server_session.preauth_hash
    reauthenticate(client, session, "alice", PASSWORDS["alice"])
    assert server_session.preauth_hash == before
    assert preauth_hash(before, b"") != before  # (the hash is a real function of its input)
