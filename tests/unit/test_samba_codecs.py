"""The bridge's decoders of what smbd writes: the named_pipe_auth hand-over and the smbXsrv records —
checked against Samba's own parser (``ndrdump``) where it is installed, and strict and bounded on bad
input."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from samba_vectors import ChannelSpec, Identity, npa_request, open_global, session_global, tcon_global

from netsession.samba import messaging
from netsession.samba.config import parse_shares
from netsession.samba.npa import (
    MAX_REQUEST,
    HandshakeReader,
    MessageReader,
    NpaError,
    NtStatus,
    decode_request,
    encode_message,
    encode_reply,
)
from netsession.samba.smbxsrv import (
    decode_open_global,
    decode_session_global,
    decode_tcon_global,
    strip_watchers,
)
from netsession.samba.sockdiag import parse_tsocket_address
from netsession.wire.ndr import NdrError
from netsession.wire.srvsvc import STYPE_DISKTREE, STYPE_PRINTQ

NDRDUMP = shutil.which("ndrdump")
needs_ndrdump = pytest.mark.skipif(NDRDUMP is None, reason="ndrdump is not installed (samba-testsuite)")


def ndrdump(tmp_path: Path, pipe: str, struct_name: str, data: bytes) -> str:
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert NDRDUMP is not None
    done = subprocess.run([NDRDUMP, pipe, struct_name, "struct", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert "pull returned Success" in done.stdout and "dump OK" in done.stdout, done.stdout + done.stderr
    return done.stdout


# -- named_pipe_auth ------------------------------------------------------------------------------------


@needs_ndrdump
@pytest.mark.parametrize("sid_count", [1, 2, 5, 6, 13])
def test_npa_request_decodes_as_samba_reads_it(tmp_path: Path, sid_count: int) -> None:
    # Odd and even SID counts move the token's 64-bit privilege mask across an 8-byte boundary.
    sids = (*tuple(f"S-1-5-21-1-2-3-{1000 + i}" for i in range(sid_count - 1)), "S-1-5-32-544")
    who = Identity(sids=sids, groups=(20000, 20001))
    blob = npa_request(who, client="127.0.0.2", client_port=51234)
    dump = ndrdump(tmp_path, "named_pipe_auth", "named_pipe_auth_req", blob)
    req = decode_request(blob)
    assert req.level == 7 and req.transport == 1
    assert (req.remote_client_addr, req.remote_client_port) == ("127.0.0.2", 51234)
    assert req.local_server_addr == "127.0.0.1" and req.local_server_port == 445
    assert req.session_info is not None and req.session_info.token is not None
    assert req.session_info.token.sids == sids
    for sid in sids:
        assert sid in dump
    assert req.session_info.info is not None and req.session_info.info.account_name == "alice"
    assert req.session_info.unix_token is not None and req.session_info.unix_token.groups == (20000, 20001)


def test_npa_level_8_has_the_level_7_layout() -> None:
    assert decode_request(npa_request(Identity(), level=8)).level == 8


def test_npa_truncated_request_is_refused_with_invalid_parameter() -> None:
    blob = npa_request(Identity())
    for cut in range(16, len(blob)):
        short = struct.pack(">I", cut - 4) + blob[4:cut]
        with pytest.raises(NpaError) as info:
            decode_request(short)
        assert info.value.status in (NtStatus.STATUS_INVALID_PARAMETER, NtStatus.STATUS_INVALID_ADDRESS)


def test_npa_trailing_bytes_are_refused() -> None:
    blob = npa_request(Identity()) + b"\0" * 4
    with pytest.raises(NpaError):
        decode_request(struct.pack(">I", len(blob) - 4) + blob[4:])


def test_npa_unknown_level_is_invalid_level() -> None:
    with pytest.raises(NpaError) as info:
        decode_request(npa_request(Identity(), level=5))
    assert info.value.status == NtStatus.STATUS_INVALID_LEVEL


def test_npa_huge_sid_count_is_refused_before_allocating() -> None:
    blob = bytearray(npa_request(Identity()))
    at = blob.index(struct.pack("<II", 5, 5))  # num_sids, then the array's own size
    blob[at : at + 8] = struct.pack("<II", 0x40000000, 0x40000000)
    with pytest.raises(NpaError, match="cannot fit"):
        decode_request(bytes(blob))


def test_npa_oversized_length_is_refused_from_the_header() -> None:
    reader = HandshakeReader()
    with pytest.raises(NpaError) as info:
        reader.feed(struct.pack(">I", MAX_REQUEST + 1) + b"NPAM")
    assert info.value.status == NtStatus.STATUS_INVALID_BUFFER_SIZE


def test_npa_wrong_magic_is_refused() -> None:
    with pytest.raises(NpaError):
        HandshakeReader().feed(b"\0\0\0\x10XXXX")


def test_handshake_reader_waits_for_the_whole_request_and_keeps_what_follows() -> None:
    blob = npa_request(Identity())
    reader = HandshakeReader()
    for i in range(len(blob) - 1):
        assert reader.feed(blob[i : i + 1]) is None
    assert reader.feed(blob[-1:] + b"pdu") == (blob, b"pdu")


@needs_ndrdump
def test_npa_reply_is_what_samba_reads(tmp_path: Path) -> None:
    dump = ndrdump(tmp_path, "named_pipe_auth", "named_pipe_auth_rep",
                   encode_reply(NtStatus.STATUS_INVALID_LEVEL))
    assert "file_type                : 0x0002" in dump and "0x05ff" in dump and "(4096)" in dump
    assert "NT_STATUS_INVALID_LEVEL" in dump


def test_message_mode_framing_round_trips_in_any_chunking() -> None:
    messages = [b"a" * 5, b"", b"b" * 4280, b"c"]
    wire = b"".join(map(encode_message, messages))
    reader = MessageReader()
    got: list[bytes] = []
    for i in range(0, len(wire), 7):
        got += reader.feed(wire[i : i + 7])
    assert got == messages
    with pytest.raises(ValueError):
        encode_message(b"x" * 0x10000)


# -- smbXsrv records -----------------------------------------------------------------------------------


@needs_ndrdump
def test_session_global_decodes_as_samba_reads_it(tmp_path: Path) -> None:
    channels = [ChannelSpec(), ChannelSpec(pid=4243, remote="ipv6:fd00::5:50001")]
    value = session_global(716860819, Identity(), channels, watchers=2)
    blob = strip_watchers(value)
    dump = ndrdump(tmp_path, "smbXsrv", "smbXsrv_session_globalB", blob)
    g = decode_session_global(blob)
    assert g is not None and g.session_global_id == 716860819 and "716860819" in dump
    assert [c.remote_address for c in g.channels] == ["ipv4:127.0.0.2:50000", "ipv6:fd00::5:50001"]
    assert g.session_info is not None and g.session_info.info is not None
    assert g.session_info.info.account_name == "alice" and g.connection_dialect == 0x0311


def test_session_global_without_auth_session_info_is_still_decoded() -> None:
    g = decode_session_global(strip_watchers(session_global(7, None, [ChannelSpec()])))
    assert g is not None and g.session_info is None


def test_session_global_of_another_version_is_refused() -> None:
    with pytest.raises(NdrError, match="version"):
        decode_session_global(strip_watchers(session_global(7, Identity(), [ChannelSpec()], version=1)))


def test_session_global_truncated_anywhere_is_an_ndr_error() -> None:
    blob = strip_watchers(session_global(7, Identity(), [ChannelSpec()]))
    for cut in range(len(blob)):
        with pytest.raises(NdrError):
            decode_session_global(blob[:cut])


def test_watcher_header_that_does_not_fit_is_refused() -> None:
    with pytest.raises(NdrError):
        strip_watchers(struct.pack("<I", 1000) + bytes(64))


@needs_ndrdump
def test_tcon_and_open_records_decode_as_samba_reads_them(tmp_path: Path) -> None:
    t = tcon_global(11, 7, "share")
    ndrdump(tmp_path, "smbXsrv", "smbXsrv_tcon_globalB", t)
    tcon = decode_tcon_global(t)
    assert tcon is not None and (tcon.share_name, tcon.session_global_id) == ("share", 7)
    o = open_global(9, "S-1-5-21-1-2-3-1001")
    assert "S-1-5-21-1-2-3-1001" in ndrdump(tmp_path, "smbXsrv", "smbXsrv_open_globalB", o)
    opened = decode_open_global(o)
    assert opened is not None and opened.open_owner == "S-1-5-21-1-2-3-1001" and opened.disconnect_time == 0


def test_tcon_and_open_records_truncated_are_ndr_errors() -> None:
    cases = ((tcon_global(1, 2, "x"), decode_tcon_global), (open_global(1, "S-1-1-0"), decode_open_global))
    for blob, decode in cases:
        for cut in range(len(blob)):
            with pytest.raises(NdrError):
                decode(blob[:cut])  # type: ignore[operator]


# -- messaging, addresses, smb.conf ------------------------------------------------------------------------


@needs_ndrdump
def test_session_close_message_is_what_smbd_reads(tmp_path: Path) -> None:
    blob = messaging.session_close_blob(5, 6, 134406380608256860)
    dump = ndrdump(tmp_path, "smbXsrv", "smbXsrv_session_closeB", blob)
    assert "old_session_global_id    : 0x00000005" in dump
    assert "old_session_wire_id      : 0x0000000000000006" in dump


def test_messaging_datagram_layout() -> None:
    dst = messaging.ServerId(4242, 0, 0xFFFFFFFF, 77)
    src = messaging.ServerId(1, 2, 3, 4)
    dgram = messaging.datagram(dst, src, messaging.MSG_SMBXSRV_SESSION_CLOSE, b"xy")
    assert dgram[:8] == bytes(8)  # cookie 0: one fragment
    assert struct.unpack_from("<QIIQ", dgram, 8) == (4242, 0, 0xFFFFFFFF, 77)
    assert struct.unpack_from("<QIIQ", dgram, 32) == (1, 2, 3, 4)
    assert struct.unpack_from("<I", dgram, 56) == (0x0600,) and dgram[60:] == b"xy"


def test_tsocket_addresses_parse() -> None:
    assert parse_tsocket_address("ipv4:10.0.0.5:445") == ("10.0.0.5", 445)
    assert parse_tsocket_address("ipv6:fd00::5:50001") == ("fd00::5", 50001)
    assert parse_tsocket_address("ipv6:::ffff:10.0.0.5:445") == ("10.0.0.5", 445)
    assert parse_tsocket_address("unix:/x") is None


def test_shares_come_from_testparm_sections() -> None:
    text = "[global]\n\tworkgroup = X\n\n[share]\n\tcomment = files\n\tpath = /srv\n\n"
    text += "[lp]\n\tprintable = Yes\n"
    shares = parse_shares(text)
    assert [(s.name, s.type, s.remark) for s in shares[1:]] == [("share", STYPE_DISKTREE, "files"),
                                                                  ("lp", STYPE_PRINTQ, "")]
    assert shares[0].name == "IPC$"


def _smb_conf(tmp_path: Path, extra: str = "") -> str:
    if shutil.which("testparm") is None:
        pytest.skip("testparm is not installed (Debian: samba-common-bin)")
    conf = tmp_path / "smb.conf"
    conf.write_text(f"[global]\n  netbios name = BRIDGED\n  lock directory = {tmp_path}\n{extra}"
                    "[data]\n  path = /tmp\n  comment = the data\n")
    return str(conf)


def test_load_reads_the_socket_dir_as_samba_does(tmp_path: Path) -> None:
    from netsession.samba.config import load

    config = load(_smb_conf(tmp_path, f"  external_rpc_pipe:socket_dir = {tmp_path}/pipes\n"))
    assert config.socket_dir == f"{tmp_path}/pipes" and config.netbios_name == "BRIDGED"
    assert config.lock_dir == str(tmp_path) and [s.name for s in config.shares] == ["IPC$", "data"]


def test_load_of_a_smb_conf_without_the_socket_dir_is_none_not_an_error(tmp_path: Path) -> None:
    # testparm --parameter-name fails for an unset parametric option; the bridge must not.
    from netsession.samba.config import load

    config = load(_smb_conf(tmp_path))
    assert config.socket_dir is None and config.netbios_name == "BRIDGED"
