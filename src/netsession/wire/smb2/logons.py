"""What a server connection tells its logon policy, and what the policy answers (sans-I/O).

A :class:`~netsession.wire.smb2.connection.ServerConnection` given a :class:`LogonPolicy` asks it, before
it lets a SESSION_SETUP verify credentials (the NTLM AUTHENTICATE leg), how long to wait
(:meth:`LogonPolicy.admission_delay`), and tells it the outcome of every exchange
(:meth:`LogonPolicy.logon_finished`), whose answer is how long to hold the response back. Waiting is the
driver's business: the connection sets ``wait_seconds`` and stops processing until ``resume()``; no
clock is read and nothing blocks here. This is how brute force is throttled without a sleeping thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .auth import Identity

if TYPE_CHECKING:
    from .connection import ServerConnection
    from .state import Session


@dataclass(frozen=True, slots=True)
class LogonAttempt:
    """One finished SESSION_SETUP exchange (MS-SMB2 §3.3.5.5.3).

    ``user``/``domain``/``workstation``: what the client claimed (its NTLM AUTHENTICATE_MESSAGE; empty if
    the exchange failed before one). ``identity``: who it logged on as (None on failure). ``status``:
    the NT status answered. ``previous_session_id``: the request's PreviousSessionId (a reconnect).
    """

    client_address: str
    session_id: int
    success: bool
    status: int
    reason: str = ""
    user: str = ""
    domain: str = ""
    workstation: str = ""
    identity: Identity | None = None
    reauthentication: bool = False
    previous_session_id: int = 0


class LogonPolicy(Protocol):
    """The server's side of logons: throttling, lockout, the audit trail, PreviousSessionId."""

    def admission_delay(self, connection: ServerConnection) -> float:
        """Seconds this connection must wait before its next credentials are verified (0: now)."""
        ...

    def logon_finished(
        self, connection: ServerConnection, attempt: LogonAttempt, session: Session | None
    ) -> float:
        """Record ``attempt``; seconds to hold its response back (0: answer at once). ``session`` is the
        established session on success."""
        ...
