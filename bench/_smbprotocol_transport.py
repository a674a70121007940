"""The client transport netsession used before its own SMB2/3 engine: smbprotocol + pyspnego, kept here
only as the benchmark's peer ("the smbprotocol-based transport of today", issue 7). Not used by netsession.
The class is the one from src/netsession/client/transport.py at commit 15fe60b, unchanged but for imports.
"""

from __future__ import annotations

import uuid
from typing import Any

from netsession.client.errors import (
    CREDENTIALS,
    LOGON,
    LOGON_FAILURES,
    PROTOCOL,
    STATUS_BAD_NETWORK_NAME,
    TIMEOUT,
    UNSUPPORTED,
    LogonError,
    NtStatusError,
    TransportError,
)
from netsession.client.transport import _os_error
from netsession.errors import (
    ERROR_BAD_NETPATH,
    ERROR_LOGON_FAILURE,
    ERROR_NOT_SUPPORTED,
    RPC_S_SERVER_UNAVAILABLE,
)
from netsession.wire.srvsvc import SRVSVC_PIPE

DEFAULT_TIMEOUT = 30.0
EMPTY_LM_HASH = "aad3b435b51404eeaad3b435b51404ee"
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
SMB2_0_IOCTL_IS_FSCTL = 0x00000001
PIPE_IO_SIZE = 0x10000
STATUS_BUFFER_OVERFLOW = 0x80000005


class SmbPipeTransport:
    r"""``\\host\IPC$\srvsvc`` over SMB 2/3 with smbprotocol.

    Signing is always required of the session (smbprotocol's ``require_signing``: the session is signed
    whatever the server's own setting); ``encrypt=True`` requires SMB 3 encryption and fails with
    ERROR_NOT_SUPPORTED if the server cannot. Authentication is SPNEGO through pyspnego: NTLM with the
    password or ``nt_hash`` (32 hex digits), or Kerberos when no password is given and a ticket is
    available (python-gssapi or krb5 must be installed for Kerberos; ``auth_protocol="kerberos"`` forces it).
    """

    def __init__(
        self,
        host: str,
        port: int = 445,
        *,
        username: str | None = None,
        password: str | None = None,
        domain: str | None = None,
        nt_hash: str | None = None,
        encrypt: bool = False,
        auth_protocol: str = "negotiate",
        timeout: float = DEFAULT_TIMEOUT,
        pipe: str = SRVSVC_PIPE,
    ) -> None:
        self.host = host
        self.port = port
        self.pipe = pipe
        self.encrypt = encrypt
        self.timeout = timeout
        self._auth_protocol = auth_protocol
        self._username = f"{domain}\\{username}" if domain and username else username
        if nt_hash is not None:
            # pyspnego reads a password of the form "LMHASH:NTHASH" as the hashes themselves.
            password = f"{EMPTY_LM_HASH}:{nt_hash}"
        self._password = password
        # smbprotocol's Connection, Session, TreeConnect and Open (smbprotocol ships no type hints).
        self._connection: Any = None
        self._session: Any = None
        self._tree: Any = None
        self._open: Any = None

    def __repr__(self) -> str:
        return f"SmbPipeTransport({self.host!r}, {self.port}, username={self._username!r})"

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def open(self) -> None:
        import _smbprotocol_names as _smb

        stage = "connect"
        try:
            self._connection = _smb.Connection(uuid.uuid4(), self.host, self.port, require_signing=True)
            self._connection.connect(timeout=int(self.timeout))
            stage = "session setup"
            self._session = _smb.Session(
                self._connection,
                self._username,
                self._password,
                require_encryption=self.encrypt,
                auth_protocol=self._auth_protocol,
            )
            self._session.connect()
            stage = "tree connect"
            unc_host = f"[{self.host}]" if ":" in self.host else self.host
            self._tree = _smb.TreeConnect(self._session, rf"\\{unc_host}\IPC$")
            self._tree.connect()
            stage = "pipe open"
            self._open = _smb.Open(self._tree, self.pipe)
            self._open.create(
                _smb.ImpersonationLevel.Impersonation,
                _smb.FilePipePrinterAccessMask.FILE_READ_DATA
                | _smb.FilePipePrinterAccessMask.FILE_WRITE_DATA
                | _smb.FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
                | _smb.FilePipePrinterAccessMask.READ_CONTROL
                | _smb.FilePipePrinterAccessMask.SYNCHRONIZE,
                0,
                _smb.ShareAccess.FILE_SHARE_READ | _smb.ShareAccess.FILE_SHARE_WRITE,
                _smb.CreateDisposition.FILE_OPEN,
                _smb.CreateOptions.FILE_NON_DIRECTORY_FILE,
            )
        except _smb.SMBAuthenticationError as exc:
            self.close()
            hint = "" if self._password is not None else "no password, and no usable Kerberos ticket: "
            reason = CREDENTIALS if self._password is None else LOGON
            raise TransportError(ERROR_LOGON_FAILURE, f"{self.where}: {hint}{exc}", reason=reason) from None
        except ImportError as exc:
            # pyspnego's Kerberos needs python-gssapi (or krb5), an optional extra.
            self.close()
            raise TransportError(
                ERROR_NOT_SUPPORTED,
                f"Kerberos is not available ({exc}; pip install 'pyspnego[kerberos]')",
                reason=UNSUPPORTED,
            ) from None
        except _smb.SMBResponseException as exc:
            self.close()
            raise self._status_error(exc.status, stage) from None
        except _smb.SMBException as exc:
            self.close()
            text = str(exc)
            if "encryption" in text.lower():
                raise TransportError(
                    ERROR_NOT_SUPPORTED, f"{self.where}: {text}", reason=UNSUPPORTED
                ) from None
            if "timeout" in text.lower():
                raise TransportError(
                    ERROR_BAD_NETPATH, f"{self.where}: {stage}: {text}", reason=TIMEOUT
                ) from None
            raise TransportError(
                RPC_S_SERVER_UNAVAILABLE, f"{self.where}: {stage}: {text}", reason=PROTOCOL
            ) from None
        except ValueError as exc:
            # smbprotocol wraps the socket's OSError in a ValueError.
            self.close()
            if isinstance(exc.__cause__, OSError):
                raise _os_error(exc.__cause__, self.where) from None
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: {stage}: {exc}") from None
        except OSError as exc:
            self.close()
            raise _os_error(exc, self.where) from None

    def _status_error(self, status: int, stage: str, *, delivered: bool = False) -> TransportError:
        status &= 0xFFFFFFFF
        if status in LOGON_FAILURES:
            return LogonError(status, self.where)
        if status == STATUS_BAD_NETWORK_NAME:
            return NtStatusError(status, f"{self.where}: no IPC$ share")
        return NtStatusError(status, f"{self.where}: {stage}", delivered=delivered)

    def _handles(self) -> tuple[Any, Any, Any, Any]:
        if self._connection is None or self._session is None or self._tree is None or self._open is None:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: the pipe is not open")
        return self._connection, self._session, self._tree, self._open

    def _exchange(self, message: Any, what: str) -> Any:
        """Send one SMB2 request on the pipe's tree and return the response header, or the header of a
        STATUS_BUFFER_OVERFLOW response (which carries the first part of a longer message)."""
        import _smbprotocol_names as _smb


        connection, session, tree, _ = self._handles()
        try:
            request = connection.send(message, sid=session.session_id, tid=tree.tree_connect_id)
        except (_smb.SMBException, OSError, ValueError) as exc:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: {what}: {exc}") from None
        try:
            return connection.receive(request, timeout=int(self.timeout))
        except _smb.SMBResponseException as exc:
            if exc.status & 0xFFFFFFFF == STATUS_BUFFER_OVERFLOW:
                return exc.header
            raise self._status_error(exc.status, what, delivered=True) from None
        except (_smb.SMBException, OSError, ValueError) as exc:
            detail = f"{self.where}: {what}: {exc}"
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, detail, delivered=True) from None

    def transceive(self, data: bytes) -> bytes:
        import _smbprotocol_names as _smb

        _, _, _, pipe = self._handles()
        # MS-SMB2 §2.2.31, §3.2.4.20.4: FSCTL_PIPE_TRANSCEIVE writes the PDU and reads one message back.
        ioctl = _smb.SMB2IOCTLRequest()
        ioctl["ctl_code"] = FSCTL_PIPE_TRANSCEIVE
        ioctl["file_id"] = pipe.file_id
        ioctl["max_input_response"] = 0
        ioctl["max_output_response"] = PIPE_IO_SIZE
        ioctl["flags"] = SMB2_0_IOCTL_IS_FSCTL
        ioctl["buffer"] = data
        header = self._exchange(ioctl, "transceive")
        response = _smb.SMB2IOCTLResponse()
        response.unpack(header["data"].get_value())
        out: bytes = response["buffer"].get_value()
        return out if out else self.read()

    def write(self, data: bytes) -> None:
        import _smbprotocol_names as _smb

        _, _, _, pipe = self._handles()
        write = _smb.SMB2WriteRequest()
        write["length"] = len(data)
        write["offset"] = 0
        write["file_id"] = pipe.file_id
        write["buffer"] = data
        header = self._exchange(write, "write")
        response = _smb.SMB2WriteResponse()
        response.unpack(header["data"].get_value())

    def read(self) -> bytes:
        import _smbprotocol_names as _smb

        _, _, _, pipe = self._handles()
        read = _smb.SMB2ReadRequest()
        read["length"] = PIPE_IO_SIZE
        read["offset"] = 0
        read["minimum_count"] = 0
        read["file_id"] = pipe.file_id
        read["padding"] = b"\x50"
        header = self._exchange(read, "read")
        response = _smb.SMB2ReadResponse()
        response.unpack(header["data"].get_value())
        out: bytes = response["buffer"].get_value()
        if not out:
            raise TransportError(RPC_S_SERVER_UNAVAILABLE, f"{self.where}: empty pipe read", delivered=True)
        return out

    def alive(self) -> bool:
        """Whether the SMB connection still looks usable (its socket is open and its reader running)."""
        connection = self._connection
        return (
            connection is not None
            and self._open is not None
            and bool(connection.transport.connected)
            and getattr(connection, "_t_exc", None) is None
        )

    def close(self) -> None:
        # Closing the TCP connection ends the session, its tree connect and the pipe open on the server
        # (MS-SMB2 §3.3.7.1), without round trips that could hang on an unresponsive server.
        connection = self._connection
        self._open = self._tree = self._session = self._connection = None
        if connection is not None:
            try:
                connection.disconnect(False)
            except Exception:  # best effort on the way out
                pass
