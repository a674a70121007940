"""NET_API_STATUS values and the exception that carries them.

The numbers are Windows' own (MS-ERREF §2.2, lmerr.h); the messages are what Windows' FormatMessage
prints for them, so an error reads the same here as in `net session` on Windows.

`NetApiError` has the shape of pywin32's `pywintypes.error`: ``args == (winerror, funcname, strerror)``
and the three attributes of the same names::

    try:
        NetSessionDel(r"\\\\fs1", r"\\\\10.0.0.5", None)
    except NetApiError as e:
        if e.winerror == NERR_ClientNameNotFound:
            ...
"""

from __future__ import annotations

from enum import IntEnum


class NetApiStatus(IntEnum):
    """Status codes used by the session functions, by their Windows names (MS-ERREF §2.2, lmerr.h)."""

    NERR_Success = 0
    ERROR_FILE_NOT_FOUND = 2
    ERROR_ACCESS_DENIED = 5
    ERROR_NOT_ENOUGH_MEMORY = 8
    ERROR_BAD_NETPATH = 53
    ERROR_NOT_SUPPORTED = 50
    ERROR_INVALID_PARAMETER = 87
    ERROR_INVALID_NAME = 123
    ERROR_INVALID_LEVEL = 124
    ERROR_MORE_DATA = 234
    ERROR_LOGON_FAILURE = 1326
    RPC_S_SERVER_UNAVAILABLE = 1722
    RPC_S_UNKNOWN_IF = 1717
    RPC_S_CALL_FAILED = 1726
    RPC_S_PROTOCOL_ERROR = 1728
    RPC_S_PROCNUM_OUT_OF_RANGE = 1745
    RPC_X_BAD_STUB_DATA = 1783
    NERR_BufTooSmall = 2123
    NERR_UserNotFound = 2221
    NERR_NetNameNotFound = 2310
    NERR_DeviceNotShared = 2311
    NERR_ClientNameNotFound = 2312
    NERR_FileIdNotFound = 2314
    NERR_InvalidComputer = 2351


# FormatMessage texts (English) for each status.
MESSAGES: dict[int, str] = {
    NetApiStatus.NERR_Success: "The operation completed successfully.",
    NetApiStatus.ERROR_FILE_NOT_FOUND: "The system cannot find the file specified.",
    NetApiStatus.ERROR_ACCESS_DENIED: "Access is denied.",
    NetApiStatus.ERROR_NOT_ENOUGH_MEMORY: (
        "Not enough memory resources are available to process this command."
    ),
    NetApiStatus.ERROR_NOT_SUPPORTED: "The request is not supported.",
    NetApiStatus.ERROR_BAD_NETPATH: "The network path was not found.",
    NetApiStatus.ERROR_INVALID_PARAMETER: "The parameter is incorrect.",
    NetApiStatus.ERROR_INVALID_NAME: "The filename, directory name, or volume label syntax is incorrect.",
    NetApiStatus.ERROR_INVALID_LEVEL: "The system call level is not correct.",
    NetApiStatus.ERROR_MORE_DATA: "More data is available.",
    NetApiStatus.ERROR_LOGON_FAILURE: "The user name or password is incorrect.",
    NetApiStatus.RPC_S_SERVER_UNAVAILABLE: "The RPC server is unavailable.",
    NetApiStatus.RPC_S_UNKNOWN_IF: "The interface is unknown.",
    NetApiStatus.RPC_S_CALL_FAILED: "The remote procedure call failed.",
    NetApiStatus.RPC_S_PROTOCOL_ERROR: "A remote procedure call (RPC) protocol error occurred.",
    NetApiStatus.RPC_S_PROCNUM_OUT_OF_RANGE: "The procedure number is out of range.",
    NetApiStatus.RPC_X_BAD_STUB_DATA: "The stub received bad data.",
    NetApiStatus.NERR_BufTooSmall: "The API return buffer is too small.",
    NetApiStatus.NERR_UserNotFound: "The user name could not be found.",
    NetApiStatus.NERR_NetNameNotFound: "This shared resource does not exist.",
    NetApiStatus.NERR_DeviceNotShared: "The device is not shared.",
    NetApiStatus.NERR_ClientNameNotFound: "A session does not exist with that computer name.",
    NetApiStatus.NERR_FileIdNotFound: "There is not an open file with that identification number.",
    NetApiStatus.NERR_InvalidComputer: "This computer name is invalid.",
}

# Module-level names, so `from netsession.errors import NERR_ClientNameNotFound` reads like lmerr.h.
NERR_Success = NetApiStatus.NERR_Success
ERROR_FILE_NOT_FOUND = NetApiStatus.ERROR_FILE_NOT_FOUND
ERROR_ACCESS_DENIED = NetApiStatus.ERROR_ACCESS_DENIED
ERROR_NOT_ENOUGH_MEMORY = NetApiStatus.ERROR_NOT_ENOUGH_MEMORY
ERROR_NOT_SUPPORTED = NetApiStatus.ERROR_NOT_SUPPORTED
ERROR_BAD_NETPATH = NetApiStatus.ERROR_BAD_NETPATH
ERROR_INVALID_PARAMETER = NetApiStatus.ERROR_INVALID_PARAMETER
ERROR_INVALID_NAME = NetApiStatus.ERROR_INVALID_NAME
ERROR_INVALID_LEVEL = NetApiStatus.ERROR_INVALID_LEVEL
ERROR_MORE_DATA = NetApiStatus.ERROR_MORE_DATA
ERROR_LOGON_FAILURE = NetApiStatus.ERROR_LOGON_FAILURE
RPC_S_SERVER_UNAVAILABLE = NetApiStatus.RPC_S_SERVER_UNAVAILABLE
RPC_S_UNKNOWN_IF = NetApiStatus.RPC_S_UNKNOWN_IF
RPC_S_CALL_FAILED = NetApiStatus.RPC_S_CALL_FAILED
RPC_S_PROTOCOL_ERROR = NetApiStatus.RPC_S_PROTOCOL_ERROR
RPC_S_PROCNUM_OUT_OF_RANGE = NetApiStatus.RPC_S_PROCNUM_OUT_OF_RANGE
RPC_X_BAD_STUB_DATA = NetApiStatus.RPC_X_BAD_STUB_DATA
NERR_BufTooSmall = NetApiStatus.NERR_BufTooSmall
NERR_UserNotFound = NetApiStatus.NERR_UserNotFound
NERR_NetNameNotFound = NetApiStatus.NERR_NetNameNotFound
NERR_DeviceNotShared = NetApiStatus.NERR_DeviceNotShared
NERR_ClientNameNotFound = NetApiStatus.NERR_ClientNameNotFound
NERR_FileIdNotFound = NetApiStatus.NERR_FileIdNotFound
NERR_InvalidComputer = NetApiStatus.NERR_InvalidComputer


def status_name(code: int) -> str:
    """The Windows name of a status (``"NERR_ClientNameNotFound"``), or its hex form if unknown."""
    try:
        return NetApiStatus(code).name
    except ValueError:
        return f"0x{code & 0xFFFFFFFF:08X}"


def status_message(code: int) -> str:
    """What Windows prints for a status; a generic text for numbers this module does not know."""
    return MESSAGES.get(code, f"Error {code} (0x{code & 0xFFFFFFFF:08X}).")


class NetApiError(Exception):
    """A failed network-management call, shaped like pywin32's ``pywintypes.error``.

    >>> e = NetApiError(2312, "NetSessionDel")
    >>> e.winerror, e.funcname, e.strerror
    (2312, 'NetSessionDel', 'A session does not exist with that computer name.')
    >>> str(e)
    'NERR_ClientNameNotFound (2312): NetSessionDel: A session does not exist with that computer name.'
    """

    def __init__(self, winerror: int, funcname: str = "", strerror: str | None = None) -> None:
        if strerror is None:
            strerror = status_message(winerror)
        super().__init__(winerror, funcname, strerror)
        self.winerror = int(winerror)
        self.funcname = funcname
        self.strerror = strerror

    @property
    def name(self) -> str:
        """The Windows name of :attr:`winerror`."""
        return status_name(self.winerror)

    def __str__(self) -> str:
        where = f"{self.funcname}: " if self.funcname else ""
        return f"{self.name} ({self.winerror}): {where}{self.strerror}"


def shown(text: object) -> str:
    r"""``text`` in single quotes for a one-line message: backslashes as typed (``'WORKGROUP\admin'``,
    not repr's ``'WORKGROUP\\admin'``), control characters escaped so that the message stays one line,
    and a text longer than 80 characters cut to its first 60 and its length."""
    value = str(text)
    if len(value) > 80:
        return f"{shown(value[:60])[:-1]}...' ({len(value):,} characters)"
    if not value.isprintable():
        value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return f"'{value}'"
