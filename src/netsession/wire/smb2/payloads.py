"""Structures carried inside IOCTL and QUERY_INFO buffers: VALIDATE_NEGOTIATE_INFO (MS-SMB2 2.2.31.4,
2.2.32.6), FSCTL_PIPE_WAIT (MS-FSCC 2.3.49), FILE_STANDARD_INFORMATION (MS-FSCC 2.4.41); and FILETIME."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from .codec import Buffer, decode_utf16, take, unpack_from

_VNI_REQ = struct.Struct("<I16sHH")
_VNI_RESP = struct.Struct("<I16sHH")


@dataclass(frozen=True, slots=True)
class ValidateNegotiateInfoRequest:
    """MS-SMB2 2.2.31.4 VALIDATE_NEGOTIATE_INFO Request (the Input of FSCTL_VALIDATE_NEGOTIATE_INFO)."""

    capabilities: int
    guid: bytes  # ClientGuid, 16 bytes as on the wire
    security_mode: int
    dialects: tuple[int, ...]

    def encode(self) -> bytes:
        n = len(self.dialects)
        return _VNI_REQ.pack(self.capabilities, self.guid, self.security_mode, n) + struct.pack(
            f"<{n}H", *self.dialects
        )

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        caps, guid, mode, count = unpack_from(_VNI_REQ, data, 0, "VALIDATE_NEGOTIATE_INFO request")
        raw = take(data, _VNI_REQ.size, 2 * count, "VALIDATE_NEGOTIATE_INFO Dialects")
        return cls(caps, guid, mode, struct.unpack(f"<{count}H", raw))


@dataclass(frozen=True, slots=True)
class ValidateNegotiateInfoResponse:
    """MS-SMB2 2.2.32.6 VALIDATE_NEGOTIATE_INFO Response (the Output of the IOCTL response)."""

    capabilities: int
    guid: bytes  # ServerGuid, 16 bytes as on the wire
    security_mode: int
    dialect: int

    def encode(self) -> bytes:
        return _VNI_RESP.pack(self.capabilities, self.guid, self.security_mode, self.dialect)

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        return cls(*unpack_from(_VNI_RESP, data, 0, "VALIDATE_NEGOTIATE_INFO response"))


_PIPE_WAIT = struct.Struct("<qIBB")


@dataclass(frozen=True, slots=True)
class PipeWaitRequest:
    """MS-FSCC 2.3.49 FSCTL_PIPE_WAIT Request: wait for an instance of pipe ``name`` (MS-SMB2 3.3.5.15.10).
    ``timeout`` is in 100 ns units (negative: relative), meaningful when ``timeout_specified``."""

    name: str
    timeout: int = 0
    timeout_specified: bool = False

    def encode(self) -> bytes:
        name = self.name.encode("utf-16-le")
        return _PIPE_WAIT.pack(self.timeout, len(name), int(self.timeout_specified), 0) + name

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        timeout, name_len, specified, _ = unpack_from(_PIPE_WAIT, data, 0, "FSCTL_PIPE_WAIT request")
        name = decode_utf16(
            take(data, _PIPE_WAIT.size, name_len, "FSCTL_PIPE_WAIT Name"), "FSCTL_PIPE_WAIT Name"
        )
        return cls(name, timeout, bool(specified))


_FILE_STANDARD = struct.Struct("<qqIBBH")


@dataclass(frozen=True, slots=True)
class FileStandardInformation:
    """MS-FSCC 2.4.41 FILE_STANDARD_INFORMATION (24 bytes).

    Windows clients query it on a freshly opened pipe (a Win7 client asks twice when refused, per
    Samba's smbd, which answers IPC$ with AllocationSize 4096, NumberOfLinks 1, DeletePending 1).
    """

    allocation_size: int = 0
    end_of_file: int = 0
    number_of_links: int = 1
    delete_pending: bool = False
    directory: bool = False

    def encode(self) -> bytes:
        return _FILE_STANDARD.pack(
            self.allocation_size,
            self.end_of_file,
            self.number_of_links,
            int(self.delete_pending),
            int(self.directory),
            0,
        )

    @classmethod
    def decode(cls, data: Buffer) -> Self:
        alloc, eof, links, pending, directory, _ = unpack_from(
            _FILE_STANDARD, data, 0, "FILE_STANDARD_INFORMATION"
        )
        return cls(alloc, eof, links, bool(pending), bool(directory))


FILETIME_UNIX_EPOCH = 116444736000000000  # MS-DTYP 2.3.3: 1970-01-01 in 100 ns units since 1601


def filetime_from_unix(seconds: float) -> int:
    """MS-DTYP 2.3.3 FILETIME for a Unix time (for SystemTime and the CREATE/CLOSE time fields)."""
    return FILETIME_UNIX_EPOCH + int(seconds * 10_000_000)
