"""Opening and closing a pipe (MS-SMB2): SMB2_FILEID, CREATE with its create contexts, CLOSE, FLUSH."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Self

from .codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    Smb2DecodeError,
    align8,
    check_structure_size,
    decode_utf16,
    fixed_end,
    pad8,
    take,
    unpack_from,
    variable_field,
    with_buffer,
)
from .constants import (
    Command,
    CreateAction,
    CreateDisposition,
    FileAttributes,
    ImpersonationLevel,
    OplockLevel,
)
from .session import ReservedBody


class FileId(NamedTuple):
    """MS-SMB2 2.2.14.1 SMB2_FILEID."""

    persistent: int
    volatile: int

    def encode(self) -> bytes:
        return _FILE_ID.pack(self.persistent, self.volatile)

    @classmethod
    def decode(cls, raw: bytes) -> FileId:
        return cls(*_FILE_ID.unpack(raw))


_FILE_ID = struct.Struct("<QQ")
# MS-SMB2 2.2.32: FSCTL_PIPE_WAIT / FSCTL_DFS_GET_REFERRALS responses carry this FileId; in a related
# compound request it means "the FileId of the previous operation" (3.2.4.1.4).
FILE_ID_ANY = FileId(0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


# --- CREATE (2.2.13, 2.2.14) -----------------------------------------------------------------------

_CREATE_CONTEXT = struct.Struct("<IHHHHI")  # Next, NameOffset, NameLength, Reserved, DataOffset, DataLength


@dataclass(frozen=True, slots=True)
class CreateContext:
    """MS-SMB2 2.2.13.2 SMB2_CREATE_CONTEXT: ``name`` is the tag ("DHnQ", "MxAc", ... or a 16-byte GUID)."""

    name: bytes
    data: bytes = b""


def encode_create_contexts(contexts: tuple[CreateContext, ...]) -> bytes:
    out = bytearray()
    for i, ctx in enumerate(contexts):
        name_offset = _CREATE_CONTEXT.size
        data_offset = align8(name_offset + len(ctx.name)) if ctx.data else 0
        length = (data_offset + len(ctx.data)) if ctx.data else name_offset + len(ctx.name)
        last = i == len(contexts) - 1
        entry = (
            _CREATE_CONTEXT.pack(
                0 if last else align8(length), name_offset, len(ctx.name), 0, data_offset, len(ctx.data)
            )
            + ctx.name
        )
        if ctx.data:
            entry += pad8(len(entry)) + ctx.data
        out += entry if last else entry + pad8(len(entry))
    return bytes(out)


def decode_create_contexts(
    message: Buffer, offset: int, length: int, floor: int
) -> tuple[CreateContext, ...]:
    """The chain of CREATE contexts in ``length`` bytes at ``offset`` (from the SMB2 header).

    Each context's Name and Data must lie within that context (up to its Next, or the end of the list);
    Next must move forward by at least a context header and stay 8-byte aligned (2.2.13.2).
    """
    region = variable_field(message, offset, length, floor, "CreateContexts")
    contexts: list[CreateContext] = []
    pos = 0
    while pos < len(region):
        nxt, name_off, name_len, _, data_off, data_len = unpack_from(
            _CREATE_CONTEXT, region, pos, f"create context at +{pos}"
        )
        end = len(region) if nxt == 0 else pos + nxt
        if nxt and (nxt < _CREATE_CONTEXT.size or nxt % 8 or end >= len(region)):
            raise Smb2DecodeError(
                f"create context Next {nxt} is not a forward 8-aligned step in the list", offset + pos
            )
        extent = region[pos:end]
        if name_off < _CREATE_CONTEXT.size and name_len:
            raise Smb2DecodeError("create context NameOffset points into its header", offset + pos)
        name = take(extent, name_off, name_len, "create context Name")
        data = b""
        if data_len:
            if data_off < _CREATE_CONTEXT.size:
                raise Smb2DecodeError("create context DataOffset points into its header", offset + pos)
            data = take(extent, data_off, data_len, "create context Data")
        contexts.append(CreateContext(name, data))
        if nxt == 0:
            break
        pos = end
    return tuple(contexts)


_CREATE_REQ = struct.Struct("<HBBIQQIIIIIHHII")
_CREATE_RESP = struct.Struct("<HBBIQQQQQQII16sII")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """MS-SMB2 2.2.13 SMB2 CREATE Request. ``name`` is relative to the share ("srvsvc" on IPC$)."""

    name: str
    desired_access: int = 0
    file_attributes: int = 0
    share_access: int = 0
    create_disposition: int = CreateDisposition.FILE_OPEN
    create_options: int = 0
    requested_oplock_level: int = OplockLevel.NONE
    impersonation_level: int = ImpersonationLevel.IMPERSONATION
    create_contexts: tuple[CreateContext, ...] = ()
    security_flags: int = 0
    smb_create_flags: int = 0
    reserved: int = 0
    COMMAND: ClassVar[int] = Command.CREATE
    STRUCTURE_SIZE: ClassVar[int] = 57

    def encode(self) -> bytes:
        name = self.name.encode("utf-16-le")
        name_offset = fixed_end(self.STRUCTURE_SIZE)
        ctx = encode_create_contexts(self.create_contexts)
        ctx_offset = align8(name_offset + len(name)) if ctx else 0
        fixed = _CREATE_REQ.pack(
            self.STRUCTURE_SIZE,
            self.security_flags,
            self.requested_oplock_level,
            self.impersonation_level,
            self.smb_create_flags,
            self.reserved,
            self.desired_access,
            self.file_attributes,
            self.share_access,
            self.create_disposition,
            self.create_options,
            name_offset,
            len(name),
            ctx_offset,
            len(ctx),
        )
        return with_buffer(fixed, name + (pad8(name_offset + len(name)) + ctx if ctx else b""))

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "CREATE request")
        (
            _,
            sec_flags,
            oplock,
            imp,
            create_flags,
            reserved,
            access,
            attrs,
            share,
            disposition,
            options,
            name_off,
            name_len,
            ctx_off,
            ctx_len,
        ) = _CREATE_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        floor = fixed_end(cls.STRUCTURE_SIZE)
        name = decode_utf16(
            variable_field(message, name_off, name_len, floor, "CREATE Name"), "CREATE Name", name_off
        )
        contexts = decode_create_contexts(message, ctx_off, ctx_len, floor)
        return cls(
            name,
            access,
            attrs,
            share,
            disposition,
            options,
            oplock,
            imp,
            contexts,
            sec_flags,
            create_flags,
            reserved,
        )


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """MS-SMB2 2.2.14 SMB2 CREATE Response. Times are FILETIMEs."""

    file_id: FileId
    create_action: int = CreateAction.FILE_OPENED
    oplock_level: int = OplockLevel.NONE
    flags: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = FileAttributes.NORMAL
    create_contexts: tuple[CreateContext, ...] = ()
    COMMAND: ClassVar[int] = Command.CREATE
    STRUCTURE_SIZE: ClassVar[int] = 89

    def encode(self) -> bytes:
        ctx = encode_create_contexts(self.create_contexts)
        ctx_offset = fixed_end(self.STRUCTURE_SIZE) if ctx else 0  # 152 is already 8-aligned
        fixed = _CREATE_RESP.pack(
            self.STRUCTURE_SIZE,
            self.oplock_level,
            self.flags,
            self.create_action,
            self.creation_time,
            self.last_access_time,
            self.last_write_time,
            self.change_time,
            self.allocation_size,
            self.end_of_file,
            self.file_attributes,
            0,
            self.file_id.encode(),
            ctx_offset,
            len(ctx),
        )
        return with_buffer(fixed, ctx)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "CREATE response")
        (
            _,
            oplock,
            flags,
            action,
            ctime,
            atime,
            wtime,
            chtime,
            alloc,
            eof,
            attrs,
            _,
            fid,
            ctx_off,
            ctx_len,
        ) = _CREATE_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        contexts = decode_create_contexts(message, ctx_off, ctx_len, fixed_end(cls.STRUCTURE_SIZE))
        return cls(
            FileId.decode(fid),
            action,
            oplock,
            flags,
            ctime,
            atime,
            wtime,
            chtime,
            alloc,
            eof,
            attrs,
            contexts,
        )


# --- CLOSE (2.2.15, 2.2.16), FLUSH (2.2.17) --------------------------------------------------------

_CLOSE_REQ = struct.Struct("<HHI16s")
_CLOSE_RESP = struct.Struct("<HHIQQQQQQI")


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """MS-SMB2 2.2.15 SMB2 CLOSE Request."""

    file_id: FileId
    flags: int = 0
    COMMAND: ClassVar[int] = Command.CLOSE
    STRUCTURE_SIZE: ClassVar[int] = 24

    def encode(self) -> bytes:
        return _CLOSE_REQ.pack(self.STRUCTURE_SIZE, self.flags, 0, self.file_id.encode())

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "CLOSE request")
        _, flags, _, fid = _CLOSE_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(FileId.decode(fid), flags)


@dataclass(frozen=True, slots=True)
class CloseResponse:
    """MS-SMB2 2.2.16 SMB2 CLOSE Response (attributes valid only with CLOSE_FLAG_POSTQUERY_ATTRIB)."""

    flags: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = 0
    COMMAND: ClassVar[int] = Command.CLOSE
    STRUCTURE_SIZE: ClassVar[int] = 60

    def encode(self) -> bytes:
        return _CLOSE_RESP.pack(
            self.STRUCTURE_SIZE,
            self.flags,
            0,
            self.creation_time,
            self.last_access_time,
            self.last_write_time,
            self.change_time,
            self.allocation_size,
            self.end_of_file,
            self.file_attributes,
        )

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "CLOSE response")
        _, flags, _, ctime, atime, wtime, chtime, alloc, eof, attrs = _CLOSE_RESP.unpack_from(
            message, SMB2_HEADER_SIZE
        )
        return cls(flags, ctime, atime, wtime, chtime, alloc, eof, attrs)


@dataclass(frozen=True, slots=True)
class FlushRequest:
    """MS-SMB2 2.2.17 SMB2 FLUSH Request."""

    file_id: FileId
    COMMAND: ClassVar[int] = Command.FLUSH
    STRUCTURE_SIZE: ClassVar[int] = 24

    def encode(self) -> bytes:
        return _CLOSE_REQ.pack(self.STRUCTURE_SIZE, 0, 0, self.file_id.encode())  # Reserved1, Reserved2

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "FLUSH request")
        *_, fid = _CLOSE_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(FileId.decode(fid))


class FlushResponse(ReservedBody):
    """MS-SMB2 2.2.18."""

    COMMAND = Command.FLUSH
    NAME = "FLUSH response"
