"""impacket as an independent oracle for the DCE/RPC layer.

Bytes built by impacket's own PDU classes decode in ours with the same values, our PDUs decode in
impacket's classes with the same values, and impacket's real client (``DCERPC_v5``) binds, calls
and takes faults through an in-memory transport that feeds our ServerAssociation.
"""

from __future__ import annotations

import os
import struct
import uuid

import pytest

rpcrt = pytest.importorskip("impacket.dcerpc.v5.rpcrt")
from impacket.dcerpc.v5 import srvs, transport  # noqa: E402
from impacket.uuid import uuidtup_to_bin  # noqa: E402

from netsession.wire.dcerpc import (  # noqa: E402
    NDR20,
    NDR64,
    AlterContextResp,
    Bind,
    BindNak,
    ContextElement,
    ContextResult,
    DecodeError,
    Fault,
    FaultStatus,
    Interface,
    PfcFlags,
    RejectReason,
    RemoteProtocolError,
    Request,
    RequestReceived,
    Response,
    ServerAssociation,
    SyntaxId,
    decode_pdu,
    encode_response_fragments,
)

SRVSVC = SyntaxId.parse("4b324fc8-1670-01d3-1278-5a47bf6ee188", 3, 0)
LSARPC = SyntaxId.parse("12345778-1234-abcd-ef00-0123456789ab", 0, 0)
SRVSVC_BIN = uuidtup_to_bin(("4b324fc8-1670-01d3-1278-5a47bf6ee188", "3.0"))
LSARPC_BIN = uuidtup_to_bin(("12345778-1234-abcd-ef00-0123456789ab", "0.0"))
NDR20_BIN = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
NDR64_BIN = uuidtup_to_bin(("71710533-beba-4937-8319-b5dbef9ccc36", "1.0"))

ECHO_OPNUM = 1  # answered with the request stub reversed, three times over
DENIED_OPNUM = 2  # answered with fault 5


def test_impacket_agrees_on_the_syntax_constants() -> None:
    assert srvs.MSRPC_UUID_SRVS == SRVSVC.encode() == SRVSVC_BIN
    assert NDR20.encode() == NDR20_BIN == rpcrt.DCERPC.NDRSyntax
    assert NDR64.encode() == NDR64_BIN == rpcrt.DCERPC.NDR64Syntax


# ------------------------------------------------------------------------------------------------
# impacket's bytes -> our decoder
# ------------------------------------------------------------------------------------------------


def impacket_bind(call_id: int, *items: tuple[int, bytes, bytes], ptype: int = rpcrt.MSRPC_BIND) -> bytes:
    bind = rpcrt.MSRPCBind()
    for context_id, abstract, transfer in items:
        item = rpcrt.CtxItem()
        item["ContextID"] = context_id
        item["TransItems"] = 1
        item["AbstractSyntax"] = abstract
        item["TransferSyntax"] = transfer
        bind.addCtxItem(item)
    packet = rpcrt.MSRPCHeader()
    packet["type"] = ptype
    packet["pduData"] = bind.getData()
    packet["call_id"] = call_id
    return bytes(packet.get_packet())


def test_impacket_bind_decodes_in_ours() -> None:
    pdu = decode_pdu(impacket_bind(1, (0, SRVSVC_BIN, NDR20_BIN), (1, LSARPC_BIN, NDR64_BIN)))
    assert pdu == Bind(
        1,
        (ContextElement(0, SRVSVC, (NDR20,)), ContextElement(1, LSARPC, (NDR64,))),
        4280,
        4280,
        0,
        PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG,
    )


def test_impacket_request_decodes_in_ours() -> None:
    call = rpcrt.DCERPC_RawCall(15, b"\x01\x02\x03 stub")
    call["ctx_id"] = 3
    call["call_id"] = 77
    call["alloc_hint"] = 11
    pdu = decode_pdu(bytes(call.get_packet()))
    assert pdu == Request(77, 3, 15, b"\x01\x02\x03 stub", 11, PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG)


def test_impacket_request_with_object_uuid_decodes_in_ours() -> None:
    obj = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    call = rpcrt.DCERPC_RawCall(12, b"stub", obj.bytes_le)
    call["flags"] |= rpcrt.PFC_OBJECT_UUID  # what DCERPC_v5.send() does when a uuid is given
    call["call_id"] = 5
    pdu = decode_pdu(bytes(call.get_packet()))
    assert isinstance(pdu, Request)
    assert (pdu.object_uuid, pdu.stub, pdu.opnum) == (obj, b"stub", 12)


def test_impacket_request_with_sec_trailer_is_stripped_by_ours() -> None:
    # Built the way DCERPC_v5._transport_send() builds a signed request.
    call = rpcrt.DCERPC_RawCall(12, b"seven!!")
    call["call_id"] = 9
    trailer = rpcrt.SEC_TRAILER()
    trailer["auth_type"] = rpcrt.RPC_C_AUTHN_WINNT
    trailer["auth_level"] = rpcrt.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
    trailer["auth_ctx_id"] = 79231
    pad = (4 - (len(call.get_packet()) % 4)) % 4
    call["pduData"] += b"\xbb" * pad
    trailer["auth_pad_len"] = pad
    call["sec_trailer"] = trailer.getData()
    call["auth_data"] = b"\x01\x00\x00\x00" + b"\xee" * 12
    pdu = decode_pdu(bytes(call.get_packet()))
    assert isinstance(pdu, Request)
    assert pdu.stub == b"seven!!"
    assert pdu.auth is not None
    assert (pdu.auth.auth_type, pdu.auth.auth_level, pdu.auth.auth_context_id) == (0x0A, 5, 79231)
    assert (pdu.auth.auth_pad_length, pdu.auth.auth_value) == (pad, b"\x01\x00\x00\x00" + b"\xee" * 12)


def test_impacket_truncated_request_is_a_decode_error_in_ours() -> None:
    data = bytes(rpcrt.DCERPC_RawCall(12, b"abc").get_packet())
    with pytest.raises(DecodeError):
        decode_pdu(data[:-1])


# ------------------------------------------------------------------------------------------------
# our bytes -> impacket's classes
# ------------------------------------------------------------------------------------------------


def test_our_bind_ack_decodes_in_impacket() -> None:
    server = ServerAssociation(
        [Interface(SRVSVC, range(54))], assoc_group_id=0x1234, secondary_address="\\PIPE\\srvsvc"
    )
    server.receive_data(impacket_bind(1, (0, SRVSVC_BIN, NDR20_BIN), (1, LSARPC_BIN, NDR20_BIN)))
    (data,) = server.data_to_send()
    header = rpcrt.MSRPCHeader(data)
    assert (header["type"], header["call_id"], header["frag_len"]) == (rpcrt.MSRPC_BINDACK, 1, len(data))
    ack = rpcrt.MSRPCBindAck(header.getData())
    assert (ack["max_tfrag"], ack["max_rfrag"], ack["assoc_group"]) == (4280, 4280, 0x1234)
    assert ack["SecondaryAddr"] == "\\PIPE\\srvsvc"
    assert ack["ctx_num"] == 2
    accepted, rejected = ack.getCtxItem(1), ack.getCtxItem(2)
    assert (accepted["Result"], accepted["Reason"], accepted["TransferSyntax"]) == (0, 0, NDR20_BIN)
    assert (rejected["Result"], rejected["Reason"]) == (2, 1)  # provider_rejection, abstract syntax


def test_our_alter_context_resp_decodes_in_impacket() -> None:
    data = AlterContextResp(4, (ContextResult(0, 0, NDR20),), 4280, 4280, 7).encode()
    header = rpcrt.MSRPCHeader(data)
    ack = rpcrt.MSRPCBindAck(header.getData())
    assert (header["type"], ack["SecondaryAddrLen"], ack["assoc_group"]) == (rpcrt.MSRPC_ALTERCTX_R, 0, 7)
    assert ack.getCtxItem(1)["TransferSyntax"] == NDR20_BIN


def test_our_bind_nak_decodes_in_impacket() -> None:
    data = BindNak(1, RejectReason.AUTHENTICATION_TYPE_NOT_RECOGNIZED).encode()
    header = rpcrt.MSRPCHeader(data)
    assert header["type"] == rpcrt.MSRPC_BINDNAK
    nak = rpcrt.MSRPCBindNak(header["pduData"])
    assert nak["RejectedReason"] == 8
    assert rpcrt.rpc_status_codes[nak["RejectedReason"]] == "Authentication type not recognized"


def test_our_response_fragments_decode_in_impacket() -> None:
    stub = os.urandom(10_000)
    fragments = encode_response_fragments(6, 2, stub, 4280)
    pieces = []
    for i, data in enumerate(fragments):
        response = rpcrt.MSRPCRespHeader(data)
        assert (response["type"], response["call_id"], response["ctx_id"]) == (rpcrt.MSRPC_RESPONSE, 6, 2)
        assert response["alloc_hint"] == len(stub) - len(b"".join(pieces))
        assert bool(response["flags"] & rpcrt.PFC_FIRST_FRAG) == (i == 0)
        assert bool(response["flags"] & rpcrt.PFC_LAST_FRAG) == (i == len(fragments) - 1)
        pieces.append(response["pduData"])
    assert b"".join(pieces) == stub


def test_our_fault_decodes_in_impacket() -> None:
    data = Fault(6, FaultStatus.NCA_S_OP_RNG_ERROR, 0, PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG).encode()
    fault = rpcrt.MSRPCRespHeader(data)
    assert (fault["type"], fault["call_id"], fault["alloc_hint"]) == (rpcrt.MSRPC_FAULT, 6, 32)
    (status,) = struct.unpack("<L", fault["pduData"][:4])
    assert rpcrt.rpc_status_codes[status] == "nca_s_op_rng_error"


def test_our_response_decodes_as_impacket_decodes_its_own() -> None:
    theirs = rpcrt.MSRPCRespHeader()
    theirs["type"] = rpcrt.MSRPC_RESPONSE
    theirs["call_id"] = 3
    theirs["ctx_id"] = 1
    theirs["alloc_hint"] = 5
    theirs["pduData"] = b"hello"
    assert decode_pdu(bytes(theirs.get_packet())) == Response(3, 1, b"hello", 5)
    assert bytes(theirs.get_packet()) == Response(3, 1, b"hello", 5).encode()


# ------------------------------------------------------------------------------------------------
# impacket's real client against our server
# ------------------------------------------------------------------------------------------------


class InMemoryPipe(transport.DCERPCTransport):
    """A message-mode pipe: each send() feeds our server, each recv() returns one whole PDU."""

    def __init__(self, server: ServerAssociation) -> None:
        super().__init__("in-memory", 0)
        self.server = server
        self.inbox: list[bytes] = []
        self.requests: list[RequestReceived] = []
        self.error: RemoteProtocolError | None = None

    def connect(self) -> int:
        return 1

    def disconnect(self) -> int:
        return 1

    def send(self, data: bytes, forceWriteAndx: int = 0, forceRecv: int = 0) -> None:
        try:
            events = self.server.receive_data(bytes(data))
        except RemoteProtocolError as exc:
            self.error = exc
            events = []
        for event in events:
            if isinstance(event, RequestReceived):
                self.requests.append(event)
                if event.opnum == ECHO_OPNUM:
                    self.server.respond(event.call_id, event.stub[::-1] * 3)
                else:
                    self.server.fault(event.call_id, FaultStatus.RPC_S_ACCESS_DENIED)
        self.inbox += self.server.data_to_send()

    def recv(self, forceRecv: int = 0, count: int = 0) -> bytes:
        return self.inbox.pop(0)


def impacket_client(**server_kwargs: object) -> tuple[rpcrt.DCERPC_v5, InMemoryPipe]:
    server = ServerAssociation(
        [Interface(SRVSVC, range(3)), Interface(LSARPC, range(3))],
        secondary_address="\\PIPE\\srvsvc",
        **server_kwargs,  # type: ignore[arg-type]
    )
    pipe = InMemoryPipe(server)
    dce = rpcrt.DCERPC_v5(pipe)
    dce.connect()
    return dce, pipe


def test_impacket_client_binds_to_our_server() -> None:
    dce, pipe = impacket_client()
    answer = dce.bind(SRVSVC_BIN)
    assert answer["type"] == rpcrt.MSRPC_BINDACK
    assert pipe.server.contexts[0].interface == SRVSVC
    assert pipe.server.max_xmit_frag == 4280


def test_impacket_client_large_fragmented_request_and_response() -> None:
    dce, pipe = impacket_client(max_request_stub=1 << 20)
    dce.bind(SRVSVC_BIN)
    stub = os.urandom(100_000)  # impacket cuts it into fragments of max_xmit_frag - 128 octets
    dce.call(ECHO_OPNUM, stub)
    answer = dce.recv()  # impacket reassembles our fragmented response
    assert answer == stub[::-1] * 3
    (request,) = pipe.requests
    assert (request.opnum, request.stub, request.interface) == (ECHO_OPNUM, stub, SRVSVC)


def test_impacket_client_gets_op_rng_error_fault() -> None:
    dce, _ = impacket_client()
    dce.bind(SRVSVC_BIN)
    dce.call(3, b"")
    with pytest.raises(rpcrt.DCERPCException, match="nca_s_op_rng_error"):
        dce.recv()
    dce.call(ECHO_OPNUM, b"still alive")
    assert dce.recv() == b"evila llits" * 3


def test_impacket_client_gets_access_denied_fault() -> None:
    dce, _ = impacket_client()
    dce.bind(SRVSVC_BIN)
    dce.call(DENIED_OPNUM, b"")
    with pytest.raises(rpcrt.DCERPCException, match="rpc_s_access_denied"):
        dce.recv()


def test_impacket_bind_to_unknown_interface_is_rejected() -> None:
    dce, _ = impacket_client()
    with pytest.raises(rpcrt.DCERPCException, match="abstract_syntax_not_supported"):
        dce.bind(uuidtup_to_bin(("11111111-2222-3333-4444-555555555555", "1.0")))


def test_impacket_bind_offering_only_ndr64_is_rejected() -> None:
    dce, pipe = impacket_client()
    with pytest.raises(rpcrt.DCERPCException, match="proposed_transfer_syntaxes_not_supported"):
        dce.bind(SRVSVC_BIN, transfer_syntax=("71710533-beba-4937-8319-b5dbef9ccc36", "1.0"))
    assert pipe.error is None  # the association stays up, with no context


def test_impacket_alter_ctx_adds_a_context() -> None:
    dce, pipe = impacket_client()
    dce.bind(SRVSVC_BIN)
    lsa = dce.alter_ctx(LSARPC_BIN)
    assert pipe.server.contexts[1].interface == LSARPC
    lsa.call(ECHO_OPNUM, b"abc")
    assert lsa.recv() == b"cba" * 3
    assert pipe.requests[-1].interface == LSARPC


def test_impacket_authenticated_bind_gets_bind_nak() -> None:
    dce, pipe = impacket_client()
    dce.set_credentials("user", "password", "DOMAIN")
    dce.set_auth_level(rpcrt.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY)
    with pytest.raises(rpcrt.DCERPCException, match="Authentication type not recognized"):
        dce.bind(SRVSVC_BIN)
    assert pipe.error is not None
