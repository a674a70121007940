r"""netsession: NetSessionEnum / NetSessionGetInfo / NetSessionDel (MS-SRVS) from Python, against any
server — Windows, Samba, or netsession's own.

The functions have pywin32's shape (``win32net``)::

    import netsession

    netsession.register_session(r"\\fs1", "alice", "s3cret!", domain="CORP")
    for s in netsession.NetSessionEnum(10, r"\\fs1"):
        print(s["client_name"], s["user_name"], s["idle_time"])
    netsession.NetSessionDel(r"\\fs1", client=r"\\10.0.0.5")

``from netsession import win32net`` offers them under pywin32's module name; :mod:`netsession.lmshare`
has Win32's argument order and paging (records, entriesread, totalentries, resume handle). Failures raise
:class:`NetApiError` with the Windows number, the function name and the message.
"""

from netsession.client.pool import register_session
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_BAD_NETPATH,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    ERROR_LOGON_FAILURE,
    ERROR_MORE_DATA,
    RPC_S_SERVER_UNAVAILABLE,
    NERR_ClientNameNotFound,
    NERR_InvalidComputer,
    NERR_Success,
    NERR_UserNotFound,
    NetApiError,
    NetApiStatus,
)
from netsession.records import (
    MAX_PREFERRED_LENGTH,
    SESS_GUEST,
    SESS_NOENCRYPTION,
    SESSION_INFO_0,
    SESSION_INFO_1,
    SESSION_INFO_2,
    SESSION_INFO_10,
    SESSION_INFO_502,
    SessionInfo,
)
from netsession.win32net import NetSessionDel, NetSessionEnum, NetSessionGetInfo

__all__ = [
    "ERROR_ACCESS_DENIED",
    "ERROR_BAD_NETPATH",
    "ERROR_INVALID_LEVEL",
    "ERROR_INVALID_PARAMETER",
    "ERROR_LOGON_FAILURE",
    "ERROR_MORE_DATA",
    "MAX_PREFERRED_LENGTH",
    "RPC_S_SERVER_UNAVAILABLE",
    "SESSION_INFO_0",
    "SESSION_INFO_1",
    "SESSION_INFO_2",
    "SESSION_INFO_10",
    "SESSION_INFO_502",
    "SESS_GUEST",
    "SESS_NOENCRYPTION",
    "NERR_ClientNameNotFound",
    "NERR_InvalidComputer",
    "NERR_Success",
    "NERR_UserNotFound",
    "NetApiError",
    "NetApiStatus",
    "NetSessionDel",
    "NetSessionEnum",
    "NetSessionGetInfo",
    "SessionInfo",
    "register_session",
]
