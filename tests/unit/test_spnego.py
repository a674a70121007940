"""SPNEGO tokens (RFC 4178, MS-SPNG): our DER codec against pyspnego's and impacket's tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import spnego
from hypothesis import given, settings
from hypothesis import strategies as st
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech

from netsession.wire.spnego import (
    KERBEROS_OID,
    MS_KERBEROS_OID,
    NEG_HINT_NAME,
    NTLMSSP_OID,
    SPNEGO_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    SpnegoDecodeError,
    decode_oid,
    decode_token,
    encode_mech_type_list,
    encode_neg_token_init,
    encode_neg_token_init2,
    encode_neg_token_resp,
    encode_oid,
)

IMPACKET_NTLM = TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]


def test_oid_encoding_of_the_mechanisms() -> None:
    # The content octets everyone sends (X.690 8.19).
    assert encode_oid(NTLMSSP_OID).hex() == "2b06010401823702020a"
    assert encode_oid(SPNEGO_OID).hex() == "2b0601050502"
    assert encode_oid(MS_KERBEROS_OID).hex() == "2a864882f712010202"
    assert IMPACKET_NTLM == encode_oid(NTLMSSP_OID)


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=8), st.integers(0, 2), st.integers(0, 39))
def test_oid_roundtrip(tail: list[int], first: int, second: int) -> None:
    dotted = ".".join(str(a) for a in [first, second, *tail])
    assert decode_oid(encode_oid(dotted)) == dotted


def test_oid_with_padding_octet_is_refused() -> None:
    with pytest.raises(SpnegoDecodeError, match="leading 0x80"):
        decode_oid(bytes.fromhex("2b80060104"))
    with pytest.raises(SpnegoDecodeError, match="inside an arc"):
        decode_oid(bytes.fromhex("2b86"))


def test_neg_token_init2_is_byte_identical_to_pyspnego(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyspnego's acceptor needs a credential file to exist before it will produce its NegTokenInit2.
    creds = tmp_path / "creds"
    creds.write_text("DOM:user:pass\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(creds))
    theirs = spnego.server(protocol="negotiate").step(None)
    assert encode_neg_token_init2([NTLMSSP_OID]) == theirs


def test_neg_token_init2_decodes_with_hint_name() -> None:
    token = decode_token(encode_neg_token_init2([NTLMSSP_OID]))
    assert isinstance(token, NegTokenInit)
    assert token.mech_types == (NTLMSSP_OID,) and token.hint_name == NEG_HINT_NAME
    assert token.mech_token is None and token.mech_list_mic is None


def test_decode_pyspnego_client_neg_token_init() -> None:
    client = spnego.client("alice", "pw", hostname="fs1", protocol="negotiate")
    token = decode_token(client.step())
    assert isinstance(token, NegTokenInit)
    assert token.mech_types == (NTLMSSP_OID,)
    assert token.mech_token is not None and token.mech_token.startswith(b"NTLMSSP\x00\x01")
    assert token.mech_types_der == encode_mech_type_list([NTLMSSP_OID])


def test_decode_impacket_neg_token_init() -> None:
    blob = SPNEGO_NegTokenInit()
    blob["MechTypes"] = [TypesMech["MS KRB5 - Microsoft Kerberos 5"], IMPACKET_NTLM]
    blob["MechToken"] = b"NTLMSSP\x00\x01\x00\x00\x00xyz"
    token = decode_token(blob.getData())
    assert isinstance(token, NegTokenInit)
    assert token.mech_types == (MS_KERBEROS_OID, NTLMSSP_OID)
    assert token.mech_token == b"NTLMSSP\x00\x01\x00\x00\x00xyz"


def test_decode_impacket_neg_token_resp() -> None:
    resp = SPNEGO_NegTokenResp()
    resp["ResponseToken"] = b"NTLMSSP\x00\x03" + b"a" * 300  # long-form lengths; impacket has no mechListMIC
    token = decode_token(resp.getData())
    assert token == NegTokenResp(None, None, b"NTLMSSP\x00\x03" + b"a" * 300, None)


def test_our_neg_token_resp_is_read_by_impacket() -> None:
    ours = encode_neg_token_resp(
        NegState.ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=b"challenge" * 40
    )
    theirs = SPNEGO_NegTokenResp(ours)
    assert theirs["NegState"] == b"\x01"
    assert theirs["SupportedMech"] == encode_oid(NTLMSSP_OID)
    assert theirs["ResponseToken"] == b"challenge" * 40


def test_accept_completed_alone() -> None:
    # What a server sends to finish a guest logon: negState only.
    assert encode_neg_token_resp(NegState.ACCEPT_COMPLETED).hex() == "a1073005a0030a0100"


_oids = st.sampled_from([NTLMSSP_OID, KERBEROS_OID, MS_KERBEROS_OID, "1.3.6.1.4.1.311.2.2.30", "2.999.1"])
_blobs = st.one_of(st.none(), st.binary(max_size=600))


@settings(max_examples=300)
@given(st.one_of(st.none(), st.sampled_from(NegState)), st.one_of(st.none(), _oids), _blobs, _blobs)
def test_neg_token_resp_roundtrip(
    state: NegState | None, mech: str | None, token: bytes | None, mic: bytes | None
) -> None:
    encoded = encode_neg_token_resp(state, supported_mech=mech, response_token=token, mech_list_mic=mic)
    assert decode_token(encoded) == NegTokenResp(state, mech, token, mic)


@settings(max_examples=300)
@given(st.lists(_oids, min_size=1, max_size=5), _blobs, _blobs)
def test_neg_token_init_roundtrip(mechs: list[str], token: bytes | None, mic: bytes | None) -> None:
    decoded = decode_token(encode_neg_token_init(mechs, token, mic))
    assert decoded == NegTokenInit(tuple(mechs), encode_mech_type_list(mechs), token, mic)


VALID_TOKENS = [
    encode_neg_token_init([NTLMSSP_OID], b"NTLMSSP\x00\x01\x00\x00\x00", b"mic"),
    encode_neg_token_init2([NTLMSSP_OID, KERBEROS_OID]),
    encode_neg_token_resp(NegState.REQUEST_MIC, supported_mech=NTLMSSP_OID, response_token=b"t" * 200),
]


@pytest.mark.parametrize("token", VALID_TOKENS)
def test_every_truncation_is_a_decode_error(token: bytes) -> None:
    for n in range(len(token)):
        with pytest.raises(SpnegoDecodeError):
            decode_token(token[:n])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SpnegoDecodeError, match="trailing"):
        decode_token(VALID_TOKENS[2] + b"\x00")


def test_indefinite_length_is_refused() -> None:
    with pytest.raises(SpnegoDecodeError, match="indefinite"):
        decode_token(bytes.fromhex("a180300000"))


def test_huge_length_is_refused_without_allocating() -> None:
    with pytest.raises(SpnegoDecodeError, match="overruns"):
        decode_token(bytes.fromhex("a184fffffff0") + b"\x30\x00")
    with pytest.raises(SpnegoDecodeError, match="length octets"):
        decode_token(bytes.fromhex("a189") + b"\xff" * 9)


def test_initial_context_token_for_another_mechanism_is_refused() -> None:
    oid = encode_oid("1.2.840.113554.1.2.2")
    krb = bytes((0x60, len(oid) + 4, 0x06, len(oid))) + oid + b"\x01\x00"
    with pytest.raises(SpnegoDecodeError, match="not SPNEGO"):
        decode_token(krb)


def test_not_a_spnego_token() -> None:
    with pytest.raises(SpnegoDecodeError, match="not a SPNEGO token"):
        decode_token(b"\x30\x00")


def test_fields_out_of_order_are_refused() -> None:
    # NegTokenResp { [2] responseToken, [0] negState }
    body = bytes.fromhex("a203040178") + bytes.fromhex("a0030a0101")
    with pytest.raises(SpnegoDecodeError, match="out of order"):
        decode_token(bytes((0xA1, len(body) + 2, 0x30, len(body))) + body)


def test_unknown_field_is_refused() -> None:
    body = bytes.fromhex("a5030a0101")
    with pytest.raises(SpnegoDecodeError, match="unexpected field"):
        decode_token(bytes((0xA1, len(body) + 2, 0x30, len(body))) + body)


def test_neg_state_outside_rfc4178_is_refused() -> None:
    body = bytes.fromhex("a0030a0107")
    with pytest.raises(SpnegoDecodeError, match="negState"):
        decode_token(bytes((0xA1, len(body) + 2, 0x30, len(body))) + body)


def test_empty_mech_types_is_refused() -> None:
    with pytest.raises(SpnegoDecodeError, match="mechTypes is empty"):
        decode_token(_init_with_mech_list(b"\x30\x00"))


def _init_with_mech_list(mech_list: bytes) -> bytes:
    inner = bytes((0xA0, len(mech_list))) + mech_list
    seq = bytes((0x30, len(inner))) + inner
    init = bytes((0xA0, len(seq))) + seq
    oid = b"\x06\x06" + encode_oid(SPNEGO_OID)
    return bytes((0x60, len(oid) + len(init))) + oid + init


def test_neg_token_init_without_mech_types_is_refused() -> None:
    seq = bytes.fromhex("3004a2020400")
    init = bytes((0xA0, len(seq))) + seq
    oid = b"\x06\x06" + encode_oid(SPNEGO_OID)
    with pytest.raises(SpnegoDecodeError, match="without mechTypes"):
        decode_token(bytes((0x60, len(oid) + len(init))) + oid + init)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        decode_token(data)
    except SpnegoDecodeError:
        pass


@settings(max_examples=500)
@given(st.sampled_from(VALID_TOKENS), st.data())
def test_fuzz_mutated_tokens_raise_only_decode_errors(token: bytes, data: st.DataObject) -> None:
    mutated = bytearray(token)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    try:
        decode_token(bytes(mutated))
    except SpnegoDecodeError:
        pass
