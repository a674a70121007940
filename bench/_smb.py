"""The benchmarks' SMB client: netsession's own engine (``netsession.client.smb`` over the sans-I/O
``ClientConnection``, our NTLMv2 initiator), blocking, on the engine's background loop — the same client
the library uses, so what the benchmarks drive is what users run.

``logon(host, port, user, password)`` gives a connection with one signed SMB 3.1.1 session (NEGOTIATE and
two SESSION_SETUP legs: SPNEGO/NTLMv2 with KEY_EXCH, MIC and mechListMIC); ``open_srvsvc`` also connects
IPC$, opens ``\\PIPE\\srvsvc`` and binds it with 65528-byte fragments offered, and counts what each call's
answer took (READs after the FSCTL_PIPE_TRANSCEIVE, PDU octets).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netsession.client.fragments import FragmentTracker
from netsession.client.loop import run
from netsession.client.smb import SmbConnection, SmbPipe, unc_host
from netsession.server.accounts import nt_hash
from netsession.wire.dcerpc import NDR20, ClientAssociation, FaultReceived, ResponseReceived, SyntaxId
from netsession.wire.dcerpc import BindAccepted as _BindAccepted
from netsession.wire.ntlm_initiator import NtlmInitiator
from netsession.wire.smb2.client import ClientConfig
from netsession.wire.smb2.constants import Dialect
from netsession.wire.srvsvc import (
    SRVSVC_PIPE,
    SRVSVC_UUID,
    SRVSVC_VERSION,
    NetrSessionEnumRequest,
    NetrSessionEnumResponse,
    Opnum,
)

SRVSVC_SYNTAX = SyntaxId.parse(SRVSVC_UUID, *SRVSVC_VERSION)


class SmbError(Exception):
    pass


@dataclass
class Held:
    """One connection with one authenticated session."""

    smb: SmbConnection

    def logoff(self) -> None:
        run(self.smb.logoff())

    def close(self) -> None:
        async def close() -> None:
            self.smb.close()

        run(close())


async def _logon(
    host: str, port: int, user: str, password: str, timeout: float, bind_address: str | None
) -> SmbConnection:
    config = ClientConfig(dialects=(Dialect.SMB_3_1_1,), server_name=host)
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    smb = await SmbConnection.connect(host, port, config=config, deadline=deadline, bind_address=bind_address)
    try:
        await smb.negotiate()
        await smb.logon(NtlmInitiator(user, nt_hash=nt_hash(password), target=f"cifs/{host}"))
    except BaseException:
        smb.close()
        raise
    smb.deadline = None
    return smb


def logon(
    host: str, port: int, user: str, password: str, *, timeout: float = 30.0, bind_address: str | None = None
) -> Held:
    """A new connection with one authenticated session (NEGOTIATE + two SESSION_SETUP legs), from
    ``bind_address`` if given."""
    return Held(run(_logon(host, port, user, password, timeout, bind_address)))


@dataclass
class SrvsvcPipe:
    """\\PIPE\\srvsvc on an IPC$ tree, bound with netsession's ClientAssociation."""

    held: Held
    pipe: SmbPipe | None = None
    assoc: ClientAssociation = field(
        default_factory=lambda: ClientAssociation(max_xmit_frag=0xFFF8, max_recv_frag=0xFFF8)
    )
    read_ahead: bool = True  # several READs in flight for what the fragments say is due
    last_response_bytes: int = 0  # the stub of the last call
    last_pdu_bytes: int = 0  # every PDU octet of the last answer, as carried by the pipe
    last_reads: int = 0  # READs the last answer took after its FSCTL_PIPE_TRANSCEIVE

    @property
    def smb(self) -> Held:
        return self.held

    async def _open(self) -> None:
        smb = self.held.smb
        tree = await smb.tree_connect("IPC$")
        fid = await smb.create_pipe(tree, SRVSVC_PIPE)
        self.pipe = SmbPipe(smb, tree, fid, SRVSVC_PIPE)
        self.assoc.bind(SRVSVC_SYNTAX, (NDR20,))
        (bind,) = self.assoc.data_to_send()
        data = await self.pipe.transceive(bind)
        while True:
            for event in self.assoc.receive_data(data):
                if isinstance(event, _BindAccepted):
                    return
                raise SmbError(f"srvsvc bind failed: {event}")
            data = await self.pipe.read()

    async def _call(self, opnum: int, stub: bytes) -> bytes:
        assert self.pipe is not None
        call_id = self.assoc.request(opnum, stub)
        (pdu,) = self.assoc.data_to_send()
        data = await self.pipe.transceive(pdu)
        tracker = FragmentTracker(self.assoc.max_recv_frag)
        total, reads = len(data), 0
        while True:
            for event in self.assoc.receive_data(data):
                if isinstance(event, ResponseReceived) and event.call_id == call_id:
                    self.last_pdu_bytes, self.last_reads = total, reads
                    self.last_response_bytes = len(event.stub)
                    return event.stub
                if isinstance(event, FaultReceived):
                    raise SmbError(f"srvsvc call {opnum} faulted: {event.status:#x}")
            if self.read_ahead:
                tracker.feed(data)
                self.pipe.read_ahead(tracker.due())
            data = await self.pipe.read()
            total += len(data)
            reads += 1

    def call(self, opnum: int, stub: bytes) -> bytes:
        return run(self._call(opnum, stub))

    def session_enum_raw(self, level: int) -> bytes:
        """NetrSessionEnum (MS-SRVS 3.1.4.5), everything at once; the undecoded response stub."""
        request = NetrSessionEnumRequest(None, None, None, level, 0xFFFFFFFF, 0)
        return self.call(Opnum.NetrSessionEnum, request.encode())

    def session_enum(self, level: int) -> NetrSessionEnumResponse:
        return NetrSessionEnumResponse.decode(self.session_enum_raw(level))


def open_srvsvc(host: str, port: int, user: str, password: str, *, max_frag: int = 0xFFF8) -> SrvsvcPipe:
    pipe = SrvsvcPipe(
        logon(host, port, user, password),
        assoc=ClientAssociation(max_xmit_frag=max_frag, max_recv_frag=max_frag),
    )
    run(pipe._open())
    return pipe


__all__ = ["Held", "SmbError", "SrvsvcPipe", "logon", "open_srvsvc", "unc_host"]
