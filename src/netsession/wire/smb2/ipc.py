"""The IPC$ share of a named-pipe server: its trees, and the commands on them (MS-SMB2 §3.3.5.7-§3.3.5.20).

:class:`IpcShare` answers TREE_CONNECT to ``IPC$`` (STATUS_BAD_NETWORK_NAME for any other share), and on
its trees CREATE of a pipe the :class:`~netsession.wire.smb2.state.Backend` opens (else
STATUS_OBJECT_NAME_NOT_FOUND), CLOSE, READ, WRITE and FLUSH of it, the IOCTLs a pipe client sends
(FSCTL_PIPE_TRANSCEIVE, FSCTL_PIPE_WAIT, DFS referrals refused), the QUERY_INFO classes clients ask of a
pipe, and TREE_DISCONNECT. A message longer than a read comes in parts with STATUS_BUFFER_OVERFLOW
(§3.3.5.15.6). Sans-I/O, like the connection that calls it.
"""

from __future__ import annotations

import struct
from typing import Any

from .constants import (
    FileAttributes,
    FileInformationClass,
    FsctlCode,
    InfoType,
    IoctlFlags,
    NtStatus,
    ShareFlags,
    ShareType,
)
from .create import FILE_ID_ANY, CloseResponse, CreateResponse, FileId, FlushResponse
from .header import Smb2Header
from .messages import (
    CloseRequest,
    CreateRequest,
    FlushRequest,
    IoctlRequest,
    IoctlResponse,
    QueryInfoRequest,
    QueryInfoResponse,
    ReadRequest,
    ReadResponse,
    Request,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
    TreeDisconnectResponse,
    WriteRequest,
    WriteResponse,
)
from .payloads import FileStandardInformation
from .state import Backend, Chain, Open, OutOfResources, PipeBusy, ServerConfig, Session, TreeConnect

IPC_SHARE = "IPC$"
STATUS_NOT_FOUND = 0xC0000225  # MS-ERREF 2.3.1: what a server without DFS answers a referral request
# MS-FSCC §2.4.41 FilePipeInformation (ReadMode, CompletionMode), message mode, queued operation.
_PIPE_INFO = struct.Struct("<II")
_BASIC_INFO = struct.Struct("<QQQQII")  # MS-FSCC §2.4.7
_NETWORK_OPEN_INFO = struct.Struct("<QQQQQQII")  # MS-FSCC §2.4.29
PIPE_ALLOCATION_SIZE = 4096
# MS-SMB2 §2.2.10: MaximalAccess of IPC$ as Windows grants it to an authenticated user.
IPC_MAXIMAL_ACCESS = 0x001F01FF


class IpcShare:
    """The IPC$ share of one connection: tree and file ids are allocated per connection."""

    def __init__(self, config: ServerConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self._next_tree_id = 1
        self._next_file_id = 1

    def tree_connect(
        self, body: TreeConnectRequest, session: Session
    ) -> tuple[TreeConnect, TreeConnectResponse] | None:
        """MS-SMB2 §3.3.5.7: ``\\\\server\\IPC$`` is the one share (None: STATUS_BAD_NETWORK_NAME). The
        caller puts the new tree's id in the response header."""
        share = body.path.rsplit("\\", 1)[-1]
        if not body.path.startswith("\\\\") or share.upper() != IPC_SHARE:
            return None
        tree = TreeConnect(self._next_tree_id, IPC_SHARE)
        self._next_tree_id += 1
        session.trees[tree.tree_id] = tree
        self.backend.tree_connected(session, tree)
        flags = ShareFlags.ENCRYPT_DATA if session.encrypt_data else 0
        return tree, TreeConnectResponse(ShareType.PIPE, flags, 0, IPC_MAXIMAL_ACCESS)

    def disconnect(self, tree: TreeConnect) -> None:
        """Close every open of the tree (TREE_DISCONNECT, LOGOFF, the session's or connection's end)."""
        for open_ in list(tree.opens.values()):
            self.close_open(open_)
        self.backend.tree_disconnected(tree)

    def close_open(self, open_: Open) -> None:
        """Close one open: CLOSE, its tree's end, or the server application's request (MS-SMB2 §3.3.4.17,
        NetrFileClose). The client's next request on its FileId gets STATUS_FILE_CLOSED. Idempotent."""
        if open_.tree.opens.get(open_.file_id.volatile) is not open_:
            return
        del open_.tree.opens[open_.file_id.volatile]
        self.backend.pipe_closed(open_)
        open_.pipe.close()

    def handle(
        self, header: Smb2Header, body: Request, session: Session, tree: TreeConnect, chain: Chain
    ) -> tuple[Any, int]:
        """A command on one of the share's trees: the response body (None for an error) and the status."""
        if isinstance(body, TreeDisconnectRequest):
            self.disconnect(tree)
            del session.trees[tree.tree_id]
            return TreeDisconnectResponse(), NtStatus.STATUS_SUCCESS
        if isinstance(body, CreateRequest):
            return self._create(body, session, tree, chain)
        if isinstance(body, IoctlRequest):
            return self._ioctl(header, body, session, tree, chain)
        file_id = getattr(body, "file_id", None)
        if file_id == FILE_ID_ANY and header.is_related and chain.file_id is not None:
            file_id = chain.file_id  # §3.3.5.2.7.2
        open_ = tree.opens.get(file_id.volatile) if file_id is not None else None
        if open_ is None or open_.file_id != file_id:
            return None, NtStatus.STATUS_FILE_CLOSED
        chain.file_id = open_.file_id
        if isinstance(body, CloseRequest):
            self.close_open(open_)
            if body.flags & 0x0001:  # SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB
                return CloseResponse(
                    flags=1, allocation_size=PIPE_ALLOCATION_SIZE, file_attributes=FileAttributes.NORMAL
                ), NtStatus.STATUS_SUCCESS
            return CloseResponse(), NtStatus.STATUS_SUCCESS
        if isinstance(body, WriteRequest):
            if len(body.data) > self.config.max_write_size:
                return None, NtStatus.STATUS_INVALID_PARAMETER
            try:
                open_.pipe.write(bytes(body.data))
            except PipeBusy:
                return None, NtStatus.STATUS_PIPE_BUSY
            return WriteResponse(len(body.data)), NtStatus.STATUS_SUCCESS
        if isinstance(body, ReadRequest):
            if body.length > self.config.max_read_size:
                return None, NtStatus.STATUS_INVALID_PARAMETER
            data, remaining = open_.pipe.read(body.length)
            if not data and not remaining:
                # Nothing written yet: a blocking pipe would wait; every reply here comes with its request,
                # so there is nothing to wait for.
                return None, NtStatus.STATUS_PIPE_EMPTY
            status = NtStatus.STATUS_BUFFER_OVERFLOW if remaining else NtStatus.STATUS_SUCCESS
            return ReadResponse(data), status
        if isinstance(body, FlushRequest):
            return FlushResponse(), NtStatus.STATUS_SUCCESS
        if isinstance(body, QueryInfoRequest):
            return self._query_info(body)
        return None, NtStatus.STATUS_NOT_SUPPORTED

    def _create(
        self, request: CreateRequest, session: Session, tree: TreeConnect, chain: Chain
    ) -> tuple[Any, int]:
        # §2.2.13: the name is relative to the share, so "\\srvsvc" names no pipe (Windows and Samba
        # answer STATUS_OBJECT_NAME_NOT_FOUND; smbtorture rpc.samba3.smb2-pipe-name checks it).
        name = request.name
        if not name or "\\" in name:
            return None, NtStatus.STATUS_OBJECT_NAME_NOT_FOUND
        if session.num_opens >= self.config.max_opens_per_session:
            return None, NtStatus.STATUS_INSUFFICIENT_RESOURCES
        try:
            pipe = self.backend.open_pipe(session, name)
        except OutOfResources:
            return None, NtStatus.STATUS_INSUFFICIENT_RESOURCES
        if pipe is None:
            return None, NtStatus.STATUS_OBJECT_NAME_NOT_FOUND
        file_id = FileId(self._next_file_id, self._next_file_id)
        self._next_file_id += 1
        open_ = tree.opens[file_id.volatile] = Open(file_id, tree, name, pipe)
        self.backend.pipe_opened(session, open_)
        chain.file_id = file_id
        return CreateResponse(
            file_id=file_id, allocation_size=PIPE_ALLOCATION_SIZE, file_attributes=FileAttributes.NORMAL
        ), NtStatus.STATUS_SUCCESS

    def _ioctl(
        self, header: Smb2Header, request: IoctlRequest, session: Session, tree: TreeConnect, chain: Chain
    ) -> tuple[Any, int]:
        # §3.3.5.15
        if not request.flags & IoctlFlags.IS_FSCTL:
            return None, NtStatus.STATUS_NOT_SUPPORTED
        code = request.ctl_code
        if code == FsctlCode.FSCTL_PIPE_WAIT:
            return IoctlResponse(code, FILE_ID_ANY), NtStatus.STATUS_SUCCESS
        if code in (FsctlCode.FSCTL_DFS_GET_REFERRALS, FsctlCode.FSCTL_DFS_GET_REFERRALS_EX):
            return None, STATUS_NOT_FOUND  # no DFS here
        if code != FsctlCode.FSCTL_PIPE_TRANSCEIVE:
            return None, NtStatus.STATUS_NOT_SUPPORTED
        file_id = request.file_id
        if file_id == FILE_ID_ANY and header.is_related and chain.file_id is not None:
            file_id = chain.file_id
        open_ = tree.opens.get(file_id.volatile)
        if open_ is None or open_.file_id != file_id:
            return None, NtStatus.STATUS_FILE_CLOSED
        chain.file_id = open_.file_id
        if len(request.input) > self.config.max_transact_size:
            return None, NtStatus.STATUS_INVALID_PARAMETER
        try:
            open_.pipe.write(bytes(request.input))
        except PipeBusy:
            return None, NtStatus.STATUS_PIPE_BUSY
        output, remaining = open_.pipe.read(min(request.max_output_response, self.config.max_transact_size))
        status = NtStatus.STATUS_BUFFER_OVERFLOW if remaining else NtStatus.STATUS_SUCCESS
        return IoctlResponse(code, open_.file_id, output=output), status

    def _query_info(self, request: QueryInfoRequest) -> tuple[Any, int]:
        # §3.3.5.20.1 on a pipe: the few classes clients ask for (MS-FSCC §2.4).
        if request.info_type != InfoType.FILE:
            return None, NtStatus.STATUS_NOT_SUPPORTED
        klass = request.file_info_class
        if klass == FileInformationClass.FileStandardInformation:
            # As Windows (and smbd) answer for a pipe: DeletePending set, one link.
            data = FileStandardInformation(allocation_size=PIPE_ALLOCATION_SIZE, delete_pending=True).encode()
        elif klass == FileInformationClass.FilePipeInformation:
            data = _PIPE_INFO.pack(1, 0)  # FILE_PIPE_MESSAGE_MODE, FILE_PIPE_QUEUE_OPERATION
        elif klass == FileInformationClass.FileBasicInformation:
            data = _BASIC_INFO.pack(0, 0, 0, 0, FileAttributes.NORMAL, 0)
        elif klass == FileInformationClass.FileNetworkOpenInformation:
            data = _NETWORK_OPEN_INFO.pack(0, 0, 0, 0, PIPE_ALLOCATION_SIZE, 0, FileAttributes.NORMAL, 0)
        else:
            return None, NtStatus.STATUS_INVALID_INFO_CLASS
        if request.output_buffer_length < len(data):
            return None, NtStatus.STATUS_INFO_LENGTH_MISMATCH
        return QueryInfoResponse(data), NtStatus.STATUS_SUCCESS
