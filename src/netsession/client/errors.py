"""What can go wrong below the srvsvc stub, as exceptions a caller can tell apart.

Every failure of the pipe (name resolution, TCP, SMB, logon, the deadline) is a :class:`TransportError`,
itself a :class:`~netsession.errors.NetApiError` carrying the number Windows reports for the same trouble,
so code written against the pywin32-shaped API keeps working. ``reason`` says which kind it was:

=====================  ==================================================  ===========================
``reason``             what happened                                        ``winerror``
=====================  ==================================================  ===========================
``"unresolved"``       the server name did not resolve                      ERROR_BAD_NETPATH (53)
``"unreachable"``      TCP connect refused, host or network unreachable     ERROR_BAD_NETPATH (53)
``"timeout"``          the call's deadline expired (:class:`DeadlineExpired`) ERROR_BAD_NETPATH (53) [#]_
``"protocol"``         not SMB2/3, a malformed or badly signed answer       RPC_S_PROTOCOL_ERROR (1728)
``"closed"``           the server closed the connection (or it broke)       RPC_S_SERVER_UNAVAILABLE
``"logon"``            the server refused the logon (:class:`LogonError`)   ERROR_LOGON_FAILURE (1326)
``"status"``           another NTSTATUS (:class:`NtStatusError`)            by status, see below
``"unsupported"``      a required feature is missing (encryption, Kerberos)  ERROR_NOT_SUPPORTED (50)
``"credentials"``      no usable credentials (no password and no ticket)    ERROR_LOGON_FAILURE (1326)
=====================  ==================================================  ===========================

.. [#] Windows' NetSessionEnum gives ERROR_BAD_NETPATH when a host does not answer in time.

:class:`NtStatusError` carries ``status`` (the 32-bit NTSTATUS) and ``status_name``
(``"STATUS_ACCESS_DENIED"``); :class:`LogonError` is the NtStatusError of a refused SESSION_SETUP.
``delivered`` says whether the request being sent may have reached the server.

Above the pipe, a stub status is a plain NetApiError with its ``winerror`` and an RPC fault is a
:class:`~netsession.client.rpc.RpcFaultError` with ``fault_status``.
"""

from __future__ import annotations

from typing import Final

from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NETPATH,
    ERROR_LOGON_FAILURE,
    ERROR_NOT_SUPPORTED,
    RPC_S_PROTOCOL_ERROR,
    RPC_S_SERVER_UNAVAILABLE,
    NetApiError,
    status_message,
)

# The reasons (see the module docstring).
UNRESOLVED: Final = "unresolved"
UNREACHABLE: Final = "unreachable"
TIMEOUT: Final = "timeout"
PROTOCOL: Final = "protocol"
CLOSED: Final = "closed"
LOGON: Final = "logon"
STATUS: Final = "status"
UNSUPPORTED: Final = "unsupported"
CREDENTIALS: Final = "credentials"

_DEFAULT_WINERROR: Final = {
    UNRESOLVED: ERROR_BAD_NETPATH,
    UNREACHABLE: ERROR_BAD_NETPATH,
    TIMEOUT: ERROR_BAD_NETPATH,
    PROTOCOL: RPC_S_PROTOCOL_ERROR,
    CLOSED: RPC_S_SERVER_UNAVAILABLE,
    LOGON: ERROR_LOGON_FAILURE,
    STATUS: RPC_S_SERVER_UNAVAILABLE,
    UNSUPPORTED: ERROR_NOT_SUPPORTED,
    CREDENTIALS: ERROR_LOGON_FAILURE,
}


class TransportError(NetApiError):
    """The pipe could not be opened, or it broke.

    ``reason`` is one of the names in the module docstring. ``delivered`` tells a caller whether the
    request being sent may have reached the server: False when the failure came before or while writing it
    (a retry on a new connection is safe), True when it came while waiting for the answer.
    """

    def __init__(
        self,
        winerror: int | None,
        detail: str,
        *,
        delivered: bool = False,
        reason: str = CLOSED,
    ) -> None:
        if winerror is None:
            winerror = _DEFAULT_WINERROR.get(reason, RPC_S_SERVER_UNAVAILABLE)
        super().__init__(winerror, "", f"{status_message(winerror)} ({detail})")
        self.detail = detail
        self.delivered = delivered
        self.reason = reason


class DeadlineExpired(TransportError):
    """The deadline of the whole call (resolution, connect, logon, bind and the call) passed."""

    def __init__(self, detail: str, *, delivered: bool = False) -> None:
        super().__init__(None, detail, delivered=delivered, reason=TIMEOUT)


# NTSTATUS values (MS-ERREF §2.3.1) with a Windows error of their own.
STATUS_ACCESS_DENIED: Final = 0xC0000022
STATUS_OBJECT_NAME_NOT_FOUND: Final = 0xC0000034
STATUS_BAD_NETWORK_NAME: Final = 0xC00000CC
LOGON_FAILURES: Final = {
    0xC000006A: "STATUS_WRONG_PASSWORD",
    0xC000006D: "STATUS_LOGON_FAILURE",
    0xC000006E: "STATUS_ACCOUNT_RESTRICTION",
    0xC000006F: "STATUS_INVALID_LOGON_HOURS",
    0xC0000070: "STATUS_INVALID_WORKSTATION",
    0xC0000071: "STATUS_PASSWORD_EXPIRED",
    0xC0000072: "STATUS_ACCOUNT_DISABLED",
    0xC0000193: "STATUS_ACCOUNT_EXPIRED",
    0xC0000224: "STATUS_PASSWORD_MUST_CHANGE",
    0xC0000234: "STATUS_ACCOUNT_LOCKED_OUT",
    0xC000015B: "STATUS_LOGON_TYPE_NOT_GRANTED",
    0xC0000064: "STATUS_NO_SUCH_USER",
}


def ntstatus_name(status: int) -> str:
    """The MS-ERREF name of an NTSTATUS, or its hex form."""
    from netsession.wire.smb2.constants import NtStatus

    status &= 0xFFFFFFFF
    if status in LOGON_FAILURES:
        return LOGON_FAILURES[status]
    try:
        return NtStatus(status).name
    except ValueError:
        return f"NTSTATUS 0x{status:08X}"


class NtStatusError(TransportError):
    """The server answered an SMB request with an error NTSTATUS (``status``, ``status_name``).

    ``winerror`` follows Windows: STATUS_ACCESS_DENIED -> ERROR_ACCESS_DENIED, STATUS_BAD_NETWORK_NAME ->
    ERROR_BAD_NETPATH, the others RPC_S_SERVER_UNAVAILABLE.
    """

    def __init__(
        self, status: int, detail: str, *, delivered: bool = False, reason: str = STATUS
    ) -> None:
        status &= 0xFFFFFFFF
        name = ntstatus_name(status)
        winerror = {
            STATUS_ACCESS_DENIED: ERROR_ACCESS_DENIED,
            STATUS_BAD_NETWORK_NAME: ERROR_BAD_NETPATH,
        }.get(status, RPC_S_SERVER_UNAVAILABLE)
        if reason == LOGON:
            winerror = ERROR_LOGON_FAILURE
        super().__init__(winerror, f"{detail}: {name}", delivered=delivered, reason=reason)
        self.status = status
        self.status_name = name


class LogonError(NtStatusError):
    """The server refused the logon (SESSION_SETUP answered with ``status``)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail, reason=LOGON)


__all__ = [
    "CLOSED",
    "CREDENTIALS",
    "LOGON",
    "LOGON_FAILURES",
    "PROTOCOL",
    "STATUS",
    "STATUS_BAD_NETWORK_NAME",
    "TIMEOUT",
    "UNREACHABLE",
    "UNRESOLVED",
    "UNSUPPORTED",
    "DeadlineExpired",
    "LogonError",
    "NtStatusError",
    "TransportError",
    "ntstatus_name",
]
