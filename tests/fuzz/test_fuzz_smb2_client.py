"""Fuzzing the client's decoders the way the server's are fuzzed: whatever a hostile server sends, the
sans-I/O ClientConnection raises only Smb2DecodeError (its subclasses included), the NTLM initiator only
NtlmInitiatorError, nothing loops, memory stays bounded by what the client asked for, and the READ
budget of the fragment tracker is never more than the bytes really still to come."""

from __future__ import annotations

import struct
import sys
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from smb2_harness import SERVER_GUID, make_server

from netsession.client.fragments import FragmentTracker
from netsession.server.accounts import nt_hash
from netsession.wire.ntlm_initiator import NtlmInitiator, NtlmInitiatorError
from netsession.wire.smb2.client import ClientConfig, ClientConnection
from netsession.wire.smb2.codec import Smb2DecodeError
from netsession.wire.smb2.connection import ServerConfig
from netsession.wire.smb2.constants import NtStatus
from netsession.wire.smb2.create import CreateRequest
from netsession.wire.smb2.messages import ReadRequest, TreeConnectRequest, WriteRequest
from netsession.wire.smb2.transport import frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PASSWORD = "Al1ce-pw!"


def _client() -> ClientConnection:
    client = ClientConnection(ClientConfig(server_name="fs1"))
    client.negotiate()
    client.data_to_send()
    return client


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes_after_negotiate_raise_only_the_decode_error(data: bytes) -> None:
    client = _client()
    try:
        client.receive_data(data)
    except Smb2DecodeError:
        assert client.closed


@FUZZ
@given(
    st.binary(min_size=0, max_size=2048), st.sampled_from([b"\xfeSMB", b"\xfdSMB", b"\xfcSMB", b"\xffSMB"])
)
def test_framed_messages_of_any_content_raise_only_the_decode_error(body: bytes, protocol: bytes) -> None:
    client = _client()
    try:
        client.receive_data(frame(protocol + body))
    except Smb2DecodeError:
        pass


def _transcript() -> list[tuple[str, ClientConnection, bytes]]:
    """Every server answer of a real exchange (negotiate, logon legs, tree, create, write+read), each
    with a client in the state just before it arrives."""
    out: list[tuple[str, ClientConnection, bytes]] = []
    server = make_server(ServerConfig(server_guid=SERVER_GUID))
    client = ClientConnection(ClientConfig(server_name="fs1"), random=lambda n: b"\x07" * n)

    def pump(name: str) -> list[object]:
        server.receive_data(client.data_to_send())
        answer = server.data_to_send()
        out.append((name, client, answer))
        return list(client.receive_data(answer))

    client.negotiate()
    (neg,) = pump("negotiate")
    ntlm = NtlmInitiator(
        "alice", nt_hash=nt_hash(PASSWORD), random=lambda n: b"\x05" * n, clock=lambda: 1.7e9
    )
    token = ntlm.step(neg.body.security_buffer)  # type: ignore[attr-defined]
    while True:
        assert token is not None
        client.session_setup(token)
        (reply,) = pump("session_setup")
        token = ntlm.step(reply.body.security_buffer)  # type: ignore[attr-defined]
        if reply.status == NtStatus.STATUS_SUCCESS:  # type: ignore[attr-defined]
            client.session_established(reply, ntlm.session_key)  # type: ignore[arg-type]
            break
    client.request(TreeConnectRequest(r"\\fs1\IPC$"))
    (tree,) = pump("tree_connect")
    tid = tree.header.tree_id  # type: ignore[attr-defined]
    client.request(CreateRequest("srvsvc"), tree_id=tid)
    (create,) = pump("create")
    fid = create.body.file_id  # type: ignore[attr-defined]
    client.request(WriteRequest(fid, b"abc"), tree_id=tid)
    client.request(ReadRequest(fid, 100), tree_id=tid)
    pump("write_read")
    return out


TRANSCRIPT = _transcript()


def _replay_until(index: int) -> ClientConnection:
    """A fresh client driven (deterministically) up to the point where answer ``index`` is due."""
    # The same seeds as _transcript, so the answers recorded there fit this client's state.
    server = make_server(ServerConfig(server_guid=SERVER_GUID))
    client = ClientConnection(ClientConfig(server_name="fs1"), random=lambda n: b"\x07" * n)
    ntlm = NtlmInitiator(
        "alice", nt_hash=nt_hash(PASSWORD), random=lambda n: b"\x05" * n, clock=lambda: 1.7e9
    )
    step = 0
    client.negotiate()

    def deliver() -> list[object] | None:
        nonlocal step
        server.receive_data(client.data_to_send())
        answer = server.data_to_send()
        if step == index:
            return None
        step += 1
        return list(client.receive_data(answer))

    got = deliver()
    if got is None:
        return client
    token = ntlm.step(got[0].body.security_buffer)  # type: ignore[attr-defined]
    while True:
        assert token is not None
        client.session_setup(token)
        got = deliver()
        if got is None:
            return client
        reply = got[0]
        token = ntlm.step(reply.body.security_buffer)  # type: ignore[attr-defined]
        if reply.status == NtStatus.STATUS_SUCCESS:  # type: ignore[attr-defined]
            client.session_established(reply, ntlm.session_key)  # type: ignore[arg-type]
            break
    client.request(TreeConnectRequest(r"\\fs1\IPC$"))
    got = deliver()
    if got is None:
        return client
    tid = got[0].header.tree_id  # type: ignore[attr-defined]
    client.request(CreateRequest("srvsvc"), tree_id=tid)
    got = deliver()
    if got is None:
        return client
    fid = got[0].body.file_id  # type: ignore[attr-defined]
    client.request(WriteRequest(fid, b"abc"), tree_id=tid)
    client.request(ReadRequest(fid, 100), tree_id=tid)
    got = deliver()
    assert got is None
    return client


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(TRANSCRIPT) - 1), st.data())
def test_mutated_real_answers_raise_only_the_decode_error(index: int, data: st.DataObject) -> None:
    """A real server answer at each step, with bytes flipped, cut or inserted: the client decodes, refuses
    (bad signature, bounds, protocol) with Smb2DecodeError, or accepts what is still valid."""
    answer = bytearray(TRANSCRIPT[index][2])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(answer) - 1))
        answer[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        answer = answer[: data.draw(st.integers(0, len(answer)))]
    client = _replay_until(index)
    try:
        client.receive_data(bytes(answer))
    except Smb2DecodeError:
        assert client.closed


@FUZZ
@given(st.binary(max_size=2048))
def test_the_ntlm_initiator_raises_only_its_error_on_any_challenge(token: bytes) -> None:
    ntlm = NtlmInitiator("alice", nt_hash=nt_hash("x"))
    ntlm.step(None)
    try:
        ntlm.step(token)
    except NtlmInitiatorError:
        pass


@FUZZ
@given(st.binary(max_size=2048))
def test_the_ntlm_initiator_raises_only_its_error_on_any_final_token(token: bytes) -> None:
    ntlm = NtlmInitiator("alice", nt_hash=nt_hash("x"))
    ntlm.step(None)
    try:
        ntlm.step(token)
    except NtlmInitiatorError:
        return
    try:
        ntlm.step(token)
    except NtlmInitiatorError:
        pass


def test_a_huge_announced_length_is_refused_before_anything_is_buffered() -> None:
    client = _client()
    tracemalloc.start()
    try:
        try:
            client.receive_data(b"\x00\xff\xff\xff" + b"x" * 1000)
        except Smb2DecodeError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.closed and peak < 64 * 1024


@FUZZ
@given(st.integers(1, 200))
def test_buffering_is_bounded_by_what_was_asked(chunks: int) -> None:
    """A frame just under the limit for a NEGOTIATE answer, fed slowly: the client holds at most the
    frame (64 KiB + overhead), never more, and a frame over the limit is refused."""
    client = _client()
    limit = client._largest_expected()
    try:
        client.receive_data((limit + 1).to_bytes(4, "big"))
        raise AssertionError("a frame over the limit was accepted")
    except Smb2DecodeError:
        pass
    client = _client()
    client.receive_data(limit.to_bytes(4, "big"))
    for _ in range(chunks):
        client.receive_data(b"\x00" * 256)
    assert client._deframer.buffered <= limit + 4


@FUZZ
@given(
    st.lists(st.integers(1, 3000), min_size=1, max_size=40),
    st.integers(300, 5000),
    st.lists(st.integers(1, 5000), max_size=60),
)
def test_the_fragment_tracker_never_asks_for_more_than_is_coming(
    stub_sizes: list[int], max_frag: int, splits: list[int]
) -> None:
    """For any real response stream (fragments of any size up to max_frag), at every point of any
    split, due() is at most the bytes still to come (so read-ahead never waits on an empty pipe)."""
    stub = b"".join(bytes([i % 251]) * n for i, n in enumerate(stub_sizes))
    stream = b"".join(_response_fragments(stub, max_frag))
    tracker = FragmentTracker(max_frag)
    at = 0
    cuts = list(splits)
    while at < len(stream):
        n = min(cuts.pop(0) if cuts else 997, len(stream) - at)
        tracker.feed(stream[at : at + n])
        at += n
        assert 0 <= tracker.due() <= len(stream) - at
    assert tracker.due() == 0


def _response_fragments(stub: bytes, max_frag: int) -> list[bytes]:
    """A DCE/RPC response split as a server splits it (C706 §12.6.3.7): full fragments, then the rest;
    alloc_hint is what remains from each fragment on."""
    per = max_frag - 24
    out = []
    for start in range(0, max(len(stub), 1), per):
        part = stub[start : start + per]
        flags = (1 if start == 0 else 0) | (2 if start + per >= len(stub) else 0)
        head = struct.pack(
            "<BBBB4sHHIIHBB",
            5,
            0,
            2,
            flags,
            b"\x10\x00\x00\x00",
            24 + len(part),
            0,
            3,
            len(stub) - start,
            0,
            0,
            0,
        )
        out.append(head + part)
    return out


@FUZZ
@given(st.binary(max_size=4096), st.integers(100, 70000))
def test_the_fragment_tracker_takes_any_bytes(data: bytes, max_frag: int) -> None:
    tracker = FragmentTracker(max_frag)
    tracker.feed(data)
    assert tracker.due() >= 0


def test_the_recorded_answers_are_accepted_unmutated() -> None:
    """The mutation test above starts from answers the client really accepts (so it is not vacuous)."""
    for index, (name, _, answer) in enumerate(TRANSCRIPT):
        client = _replay_until(index)
        assert client.receive_data(answer), name
