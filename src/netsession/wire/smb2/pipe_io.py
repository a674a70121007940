"""Talking to an open pipe (MS-SMB2): READ, WRITE, IOCTL (FSCTL_PIPE_TRANSCEIVE and friends), QUERY_INFO."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from .codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    align8,
    check_structure_size,
    fixed_end,
    pad8,
    variable_field,
    with_buffer,
)
from .constants import Command, IoctlFlags
from .create import FileId

# --- READ (2.2.19, 2.2.20), WRITE (2.2.21, 2.2.22) ------------------------------------------------

_READ_REQ = struct.Struct("<HBBIQ16sIIIHH")
_READ_RESP = struct.Struct("<HBBIII")
_WRITE_REQ = struct.Struct("<HHIQ16sIIHHI")
_WRITE_RESP = struct.Struct("<HHIIHH")


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """MS-SMB2 2.2.19 SMB2 READ Request (on a pipe Offset is 0 and ignored)."""

    file_id: FileId
    length: int
    offset: int = 0
    minimum_count: int = 0
    channel: int = 0
    remaining_bytes: int = 0
    flags: int = 0
    padding: int = 0
    read_channel_info: bytes = b""
    COMMAND: ClassVar[int] = Command.READ
    STRUCTURE_SIZE: ClassVar[int] = 49

    def encode(self) -> bytes:
        info_offset = fixed_end(self.STRUCTURE_SIZE) if self.read_channel_info else 0
        fixed = _READ_REQ.pack(
            self.STRUCTURE_SIZE,
            self.padding,
            self.flags,
            self.length,
            self.offset,
            self.file_id.encode(),
            self.minimum_count,
            self.channel,
            self.remaining_bytes,
            info_offset,
            len(self.read_channel_info),
        )
        return with_buffer(fixed, self.read_channel_info)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "READ request")
        (_, padding, flags, length, offset, fid, minimum, channel, remaining, info_off, info_len) = (
            _READ_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        )
        info = variable_field(message, info_off, info_len, fixed_end(cls.STRUCTURE_SIZE), "ReadChannelInfo")
        return cls(FileId.decode(fid), length, offset, minimum, channel, remaining, flags, padding, info)


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """MS-SMB2 2.2.20 SMB2 READ Response; ``data`` goes at offset 80 (DataOffset)."""

    data: bytes
    data_remaining: int = 0
    flags: int = 0  # Reserved2 before 3.1.1
    COMMAND: ClassVar[int] = Command.READ
    STRUCTURE_SIZE: ClassVar[int] = 17

    def encode(self) -> bytes:
        fixed = _READ_RESP.pack(
            self.STRUCTURE_SIZE,
            fixed_end(self.STRUCTURE_SIZE),
            0,
            len(self.data),
            self.data_remaining,
            self.flags,
        )
        return with_buffer(fixed, self.data)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "READ response")
        _, off, _, length, remaining, flags = _READ_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(
            variable_field(message, off, length, fixed_end(cls.STRUCTURE_SIZE), "READ Data"),
            remaining,
            flags,
        )


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """MS-SMB2 2.2.21 SMB2 WRITE Request; ``data`` goes at offset 112 (DataOffset)."""

    file_id: FileId
    data: bytes
    offset: int = 0
    channel: int = 0
    remaining_bytes: int = 0
    flags: int = 0
    write_channel_info: bytes = b""
    COMMAND: ClassVar[int] = Command.WRITE
    STRUCTURE_SIZE: ClassVar[int] = 49

    def encode(self) -> bytes:
        data_offset = fixed_end(self.STRUCTURE_SIZE)
        info_offset = data_offset + len(self.data) if self.write_channel_info else 0
        fixed = _WRITE_REQ.pack(
            self.STRUCTURE_SIZE,
            data_offset,
            len(self.data),
            self.offset,
            self.file_id.encode(),
            self.channel,
            self.remaining_bytes,
            info_offset,
            len(self.write_channel_info),
            self.flags,
        )
        return with_buffer(fixed, self.data + self.write_channel_info)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "WRITE request")
        (_, data_off, length, offset, fid, channel, remaining, info_off, info_len, flags) = (
            _WRITE_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        )
        floor = fixed_end(cls.STRUCTURE_SIZE)
        data = variable_field(message, data_off, length, floor, "WRITE Data")
        info = variable_field(message, info_off, info_len, floor, "WriteChannelInfo")
        return cls(FileId.decode(fid), data, offset, channel, remaining, flags, info)


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """MS-SMB2 2.2.22 SMB2 WRITE Response: 16 bytes despite StructureSize 17 ("the actual size of the
    response structure notwithstanding"; Windows sends no Buffer byte, see the MS test vectors)."""

    count: int
    remaining: int = 0
    COMMAND: ClassVar[int] = Command.WRITE
    STRUCTURE_SIZE: ClassVar[int] = 17

    def encode(self) -> bytes:
        return _WRITE_RESP.pack(self.STRUCTURE_SIZE, 0, self.count, self.remaining, 0, 0)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "WRITE response")
        _, _, count, remaining, _, _ = _WRITE_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(count, remaining)


# --- IOCTL (2.2.31, 2.2.32) ------------------------------------------------------------------------

_IOCTL_REQ = struct.Struct("<HHI16sIIIIIIII")
_IOCTL_RESP = struct.Struct("<HHI16sIIIIII")


@dataclass(frozen=True, slots=True)
class IoctlRequest:
    """MS-SMB2 2.2.31 SMB2 IOCTL Request (FSCTL_PIPE_TRANSCEIVE carries the DCE/RPC PDU in ``input``)."""

    ctl_code: int
    file_id: FileId
    input: bytes = b""
    max_input_response: int = 0
    max_output_response: int = 0
    flags: int = IoctlFlags.IS_FSCTL
    output: bytes = b""  # MUST be empty in a request; kept so a decoded request re-encodes the same
    COMMAND: ClassVar[int] = Command.IOCTL
    STRUCTURE_SIZE: ClassVar[int] = 57

    def encode(self) -> bytes:
        in_offset = fixed_end(self.STRUCTURE_SIZE)
        out_offset = align8(in_offset + len(self.input)) if self.output else in_offset  # <64>: = InputOffset
        fixed = _IOCTL_REQ.pack(
            self.STRUCTURE_SIZE,
            0,
            self.ctl_code,
            self.file_id.encode(),
            in_offset,
            len(self.input),
            self.max_input_response,
            out_offset,
            len(self.output),
            self.max_output_response,
            self.flags,
            0,
        )
        gap = pad8(in_offset + len(self.input)) if self.output else b""
        return with_buffer(fixed, self.input + gap + self.output)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "IOCTL request")
        (_, _, ctl, fid, in_off, in_len, max_in, out_off, out_len, max_out, flags, _) = (
            _IOCTL_REQ.unpack_from(message, SMB2_HEADER_SIZE)
        )
        floor = fixed_end(cls.STRUCTURE_SIZE)
        data_in = variable_field(message, in_off, in_len, floor, "IOCTL Input")
        data_out = variable_field(message, out_off, out_len, floor, "IOCTL Output")
        return cls(ctl, FileId.decode(fid), data_in, max_in, max_out, flags, data_out)


@dataclass(frozen=True, slots=True)
class IoctlResponse:
    """MS-SMB2 2.2.32 SMB2 IOCTL Response. InputOffset is 112; OutputOffset is InputOffset + InputCount
    rounded up to 8 (<67>)."""

    ctl_code: int
    file_id: FileId
    output: bytes = b""
    input: bytes = b""
    flags: int = 0
    COMMAND: ClassVar[int] = Command.IOCTL
    STRUCTURE_SIZE: ClassVar[int] = 49

    def encode(self) -> bytes:
        in_offset = fixed_end(self.STRUCTURE_SIZE)
        out_offset = align8(in_offset + len(self.input))
        fixed = _IOCTL_RESP.pack(
            self.STRUCTURE_SIZE,
            0,
            self.ctl_code,
            self.file_id.encode(),
            in_offset,
            len(self.input),
            out_offset,
            len(self.output),
            self.flags,
            0,
        )
        gap = pad8(in_offset + len(self.input)) if self.output else b""
        return with_buffer(fixed, self.input + gap + self.output)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "IOCTL response")
        _, _, ctl, fid, in_off, in_len, out_off, out_len, flags, _ = _IOCTL_RESP.unpack_from(
            message, SMB2_HEADER_SIZE
        )
        floor = fixed_end(cls.STRUCTURE_SIZE)
        data_in = variable_field(message, in_off, in_len, floor, "IOCTL Input")
        data_out = variable_field(message, out_off, out_len, floor, "IOCTL Output")
        return cls(ctl, FileId.decode(fid), data_out, data_in, flags)


# --- QUERY_INFO (2.2.37, 2.2.38) -------------------------------------------------------------------

_QI_REQ = struct.Struct("<HBBIHHIII16s")
_QI_RESP = struct.Struct("<HHI")


@dataclass(frozen=True, slots=True)
class QueryInfoRequest:
    """MS-SMB2 2.2.37 SMB2 QUERY_INFO Request."""

    info_type: int
    file_info_class: int
    file_id: FileId
    output_buffer_length: int = 0
    input_buffer: bytes = b""
    additional_information: int = 0
    flags: int = 0
    COMMAND: ClassVar[int] = Command.QUERY_INFO
    STRUCTURE_SIZE: ClassVar[int] = 41

    def encode(self) -> bytes:
        in_offset = fixed_end(self.STRUCTURE_SIZE) if self.input_buffer else 0
        fixed = _QI_REQ.pack(
            self.STRUCTURE_SIZE,
            self.info_type,
            self.file_info_class,
            self.output_buffer_length,
            in_offset,
            0,
            len(self.input_buffer),
            self.additional_information,
            self.flags,
            self.file_id.encode(),
        )
        return with_buffer(fixed, self.input_buffer)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "QUERY_INFO request")
        _, info_type, info_class, out_len, in_off, _, in_len, additional, flags, fid = _QI_REQ.unpack_from(
            message, SMB2_HEADER_SIZE
        )
        data = variable_field(
            message, in_off, in_len, fixed_end(cls.STRUCTURE_SIZE), "QUERY_INFO InputBuffer"
        )
        return cls(info_type, info_class, FileId.decode(fid), out_len, data, additional, flags)


@dataclass(frozen=True, slots=True)
class QueryInfoResponse:
    """MS-SMB2 2.2.38 SMB2 QUERY_INFO Response; ``output`` is the MS-FSCC structure at offset 72."""

    output: bytes
    COMMAND: ClassVar[int] = Command.QUERY_INFO
    STRUCTURE_SIZE: ClassVar[int] = 9

    def encode(self) -> bytes:
        fixed = _QI_RESP.pack(self.STRUCTURE_SIZE, fixed_end(self.STRUCTURE_SIZE), len(self.output))
        return with_buffer(fixed, self.output)

    @classmethod
    def decode(cls, message: Buffer) -> Self:
        check_structure_size(message, cls.STRUCTURE_SIZE, "QUERY_INFO response")
        _, off, length = _QI_RESP.unpack_from(message, SMB2_HEADER_SIZE)
        return cls(
            variable_field(message, off, length, fixed_end(cls.STRUCTURE_SIZE), "QUERY_INFO OutputBuffer")
        )
