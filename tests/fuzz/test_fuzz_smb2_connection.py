"""Fuzzing the sans-I/O SMB2 server connection: whatever bytes arrive, ``receive_data`` never raises, what it
sends back stays bounded by what came in, and at worst the connection asks to close; the backend hears of
every session's end exactly once.

Besides random bytes, valid conversations are recorded once (NEGOTIATE, SESSION_SETUP legs, TREE_CONNECT,
CREATE, WRITE/READ/IOCTL, compounds, LOGOFF) and replayed with mutations. The server is deterministic (fixed
clock, seeded random), so an unmutated replay is accepted exactly as recorded, signatures and all, and
a mutation reaches the processing behind the framing, the decoders and the signature checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))

from smb2_harness import RecordingBackend, Smb2Harness, make_server, ready

from netsession.wire.smb2.compound import build_compound
from netsession.wire.smb2.connection import ServerConfig, ServerConnection
from netsession.wire.smb2.constants import Dialect, FsctlCode, HeaderFlags
from netsession.wire.smb2.create import FILE_ID_ANY, CloseRequest, CreateRequest, CreateResponse
from netsession.wire.smb2.messages import EchoRequest, LogoffRequest, TreeConnectRequest
from netsession.wire.smb2.negotiate import Smb1NegotiateRequest
from netsession.wire.smb2.pipe_io import IoctlRequest, ReadRequest, WriteRequest
from netsession.wire.smb2.transport import frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Replies never outgrow requests by more than this factor (a NEGOTIATE response carries the SPNEGO hint and
# contexts), plus a constant.
OUTPUT_FACTOR = 8
OUTPUT_SLACK = 4096


# -- recorded conversations ------------------------------------------------------------------------------


class Recorder(Smb2Harness):
    """The test client, keeping every transport message it sends (before framing)."""

    def __init__(self, server: ServerConnection) -> None:
        super().__init__(server)
        self.sent: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        # ``data`` is one framed transport message here.
        self.sent.append(data[4:])
        return super().feed(data)


def _conversation(dialect: int, config: ServerConfig | None, *, sign: bool) -> list[bytes]:
    client = Recorder(make_server(config))
    if dialect == Dialect.SMB_2_0_2:
        smb1 = Smb1NegotiateRequest(("NT LM 0.12", "SMB 2.002", "SMB 2.???"))
        client.replies(client.feed(frame(smb1.encode())))
        client.message_id = 1
    client.negotiate((dialect,) if dialect != Dialect.SMB_2_0_2 else (Dialect.SMB_2_0_2, Dialect.SMB_2_1))
    session = client.logon("alice")
    kw: dict[str, Any] = {"session": session, "sign": sign}
    tree = client.request(TreeConnectRequest("\\\\fs1\\IPC$"), **kw).header.tree_id
    kw["tree"] = tree
    created = client.request(CreateRequest("srvsvc"), **kw).body
    assert isinstance(created, CreateResponse)
    fid = created.file_id
    client.request(WriteRequest(fid, b"\x05\x00\x0b\x03" + bytes(68)), **kw)
    client.request(ReadRequest(fid, 1024), **kw)
    client.request(IoctlRequest(FsctlCode.FSCTL_PIPE_TRANSCEIVE, fid, b"abc", max_output_response=1024), **kw)
    ids = client.next_ids(3)
    related = HeaderFlags.RELATED_OPERATIONS
    transceive = IoctlRequest(FsctlCode.FSCTL_PIPE_TRANSCEIVE, FILE_ID_ANY, b"xyz", max_output_response=64)
    chain = [
        client.build(CreateRequest("srvsvc"), message_id=ids[0], sign=False, session=session, tree=tree),
        client.build(transceive, message_id=ids[1], flags=related, sign=False, session=session, tree=tree),
        client.build(CloseRequest(FILE_ID_ANY), message_id=ids[2], flags=related, sign=False, session=session,
                     tree=tree),
    ]
    signer = (lambda part: session.sign(part)) if sign else None
    client.feed(frame(build_compound(chain, signer=signer)))
    client.request(EchoRequest(), **kw)
    client.request(CloseRequest(fid), **kw)
    client.request(LogoffRequest(), session=session, sign=sign)
    assert not client.server.closing, client.server.close_reason
    return client.sent


CONVERSATIONS: dict[str, tuple[ServerConfig | None, list[bytes]]] = {}


def conversation(name: str) -> tuple[ServerConfig | None, list[bytes]]:
    if not CONVERSATIONS:
        unsigned = ServerConfig(require_signing=False)
        CONVERSATIONS["3.1.1 signed"] = (None, _conversation(Dialect.SMB_3_1_1, None, sign=True))
        CONVERSATIONS["3.0 unsigned"] = (unsigned, _conversation(Dialect.SMB_3_0, unsigned, sign=False))
        CONVERSATIONS["2.x via SMB1"] = (unsigned, _conversation(Dialect.SMB_2_0_2, unsigned, sign=False))
    return CONVERSATIONS[name]


# -- the invariants --------------------------------------------------------------------------------------


def run(server: ServerConnection, chunks: list[bytes]) -> None:
    """Feed ``chunks``; check the invariants; then lose the connection and check the sessions' ends."""
    received = 0
    sent = 0
    for chunk in chunks:
        was_closing = server.closing
        server.receive_data(chunk)  # must not raise
        received += len(chunk)
        out = server.data_to_send()
        if was_closing:
            assert out == b"", "output after the connection asked to close"
        sent += len(out)
        assert sent <= OUTPUT_FACTOR * received + OUTPUT_SLACK
    server.connection_lost()
    backend = server.backend
    assert isinstance(backend, RecordingBackend)
    established = [sid for kind, sid in backend.events if kind == "established"]
    ended = [sid for kind, sid in backend.events if kind == "ended"]
    assert sorted(established) == sorted(ended), "every session ends exactly once"
    assert len(set(established)) == len(established)
    assert all(pipe.closed == 1 for pipe in backend.pipes), "every pipe open is closed exactly once"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p]


def test_unmutated_conversations_replay_exactly() -> None:
    # The premise of the mutation tests: the recorded stream is accepted by a fresh server as it was.
    for name in ("3.1.1 signed", "3.0 unsigned", "2.x via SMB1"):
        config, messages = conversation(name)
        server = make_server(config)
        for message in messages:
            server.receive_data(frame(message))
            assert server.data_to_send()
        assert not server.closing, (name, server.close_reason)
        backend = server.backend
        assert isinstance(backend, RecordingBackend)
        assert [k for k, _ in backend.events].count("ended") == 1  # the LOGOFF


# -- random bytes ------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048), cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    run(make_server(), split(data, cuts))


@FUZZ
@given(bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_random_framed_messages_never_raise(bodies: list[bytes]) -> None:
    # Well-framed, so the bytes reach the SMB1/SMB2/transform dispatch and the decoders.
    run(make_server(), [frame(b) for b in bodies])


@FUZZ
@given(
    protocol=st.sampled_from([b"\xfeSMB", b"\xfdSMB", b"\xffSMB", b"\xfcSMB"]),
    rest=st.binary(min_size=60, max_size=400),
)
def test_random_messages_after_a_protocol_id_never_raise(protocol: bytes, rest: bytes) -> None:
    client, _, _ = ready()
    run(client.server, [frame(protocol + rest)])


# -- mutated conversations -----------------------------------------------------------------------------------

POSITION = st.integers(0, 1 << 16)
INTERESTING_U32 = [0, 1, 8, 64, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
MUTATION = st.one_of(
    st.tuples(st.just("xor"), POSITION, st.integers(1, 255)),
    st.tuples(st.just("set"), POSITION, st.integers(0, 255)),
    st.tuples(st.just("u32"), POSITION, st.sampled_from(INTERESTING_U32)),
    st.tuples(st.just("truncate"), POSITION, st.just(0)),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), POSITION, st.integers(1, 32)),
)
EDIT = st.one_of(
    st.tuples(st.just("bytes"), st.integers(0, 63), MUTATION),
    st.tuples(st.just("drop"), st.integers(0, 63), st.just(None)),
    st.tuples(st.just("repeat"), st.integers(0, 63), st.just(None)),
    st.tuples(st.just("swap"), st.integers(0, 63), st.just(None)),
)


def mutate(message: bytes, mutation: tuple[str, int, Any]) -> bytes:
    kind, position, value = mutation
    data = bytearray(message)
    at = position % (len(data) + 1)
    if kind == "xor" and at < len(data):
        data[at] ^= value
    elif kind == "set" and at < len(data):
        data[at] = value
    elif kind == "u32":
        data[at : at + 4] = value.to_bytes(4, "little")
    elif kind == "truncate":
        del data[at:]
    elif kind == "insert":
        data[at:at] = value
    elif kind == "delete":
        del data[at : at + value]
    return bytes(data)


def edited(messages: list[bytes], edits: list[tuple[str, int, Any]]) -> list[bytes]:
    out = list(messages)
    for kind, index, arg in edits:
        if not out:
            break
        i = index % len(out)
        if kind == "bytes":
            out[i] = mutate(out[i], arg)
        elif kind == "drop":
            del out[i]
        elif kind == "repeat":
            out.insert(i, out[i])
        elif kind == "swap" and i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


@FUZZ
@given(
    name=st.sampled_from(["3.1.1 signed", "3.0 unsigned", "2.x via SMB1"]),
    edits=st.lists(EDIT, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=6),
)
def test_mutated_conversations_never_raise(
    name: str, edits: list[tuple[str, int, Any]], cuts: list[int]
) -> None:
    config, messages = conversation(name)
    stream = b"".join(frame(m) for m in edited(messages, edits))
    run(make_server(config), split(stream, cuts))


@FUZZ
@given(
    name=st.sampled_from(["3.1.1 signed", "3.0 unsigned", "2.x via SMB1"]),
    position=POSITION,
    mutation=MUTATION,
)
def test_mutated_transport_stream_never_raises(
    name: str, position: int, mutation: tuple[str, int, Any]
) -> None:
    # Mutations of the framed stream itself: lengths, first bytes, boundaries.
    config, messages = conversation(name)
    stream = b"".join(frame(m) for m in messages)
    run(make_server(config), [mutate(stream, (mutation[0], position, mutation[2]))])
