"""smbprotocol's names that bench/_smbprotocol_transport.py (the old client transport, a benchmark peer) uses.

Kept apart so that importing netsession (and calling the local server) does not pay for loading
smbprotocol and cryptography; the transport imports this module on first use. smbprotocol ships no type
hints, so everything here is ``Any`` to mypy.
"""

from smbprotocol.connection import Connection  # type: ignore[import-untyped]
from smbprotocol.exceptions import (  # type: ignore[import-untyped]
    SMBAuthenticationError,
    SMBException,
    SMBResponseException,
)
from smbprotocol.ioctl import SMB2IOCTLRequest, SMB2IOCTLResponse  # type: ignore[import-untyped]
from smbprotocol.open import (  # type: ignore[import-untyped]
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2ReadRequest,
    SMB2ReadResponse,
    SMB2WriteRequest,
    SMB2WriteResponse,
)
from smbprotocol.session import Session  # type: ignore[import-untyped]
from smbprotocol.tree import TreeConnect  # type: ignore[import-untyped]

__all__ = [
    "Connection",
    "CreateDisposition",
    "CreateOptions",
    "FilePipePrinterAccessMask",
    "ImpersonationLevel",
    "Open",
    "SMB2IOCTLRequest",
    "SMB2IOCTLResponse",
    "SMB2ReadRequest",
    "SMB2ReadResponse",
    "SMB2WriteRequest",
    "SMB2WriteResponse",
    "SMBAuthenticationError",
    "SMBException",
    "SMBResponseException",
    "Session",
    "ShareAccess",
    "TreeConnect",
]
