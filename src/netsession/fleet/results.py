"""What a scan finds: a verdict per host, from a fixed vocabulary, and the host's sessions.

========================  ===========================================================================
verdict                   cause
========================  ===========================================================================
``sessions``              the level asked first was answered, with at least one session
``no-sessions``           the level asked first was answered, with none
``level-limited``         only a lower level was answered (ERROR_INVALID_LEVEL first: Samba serves 0/1)
``hardened``              the call was answered with a DCE/RPC fault, status 5 (NetCease, Server 2019+)
``access-denied``         the call returned ERROR_ACCESS_DENIED in its stub (a refusal by the server)
``logon-failed``          the session setup was refused (bad user or password, account restrictions)
``unreachable``           the name did not resolve, or the connection was refused / had no route
``timeout``               the host's deadline passed (DNS, TCP, negotiate, logon, bind and calls together)
``not-smb``               something answered on the port, but not SMB 2/3
``protocol-error``        SMB answered, but the RPC below it broke (bad PDU or stub data)
``error``                 anything else; ``error`` carries the Windows name (NERR_..., ERROR_..., STATUS_...)
========================  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from netsession.records import SESS_GUEST


class Verdict(StrEnum):
    SESSIONS = "sessions"
    NO_SESSIONS = "no-sessions"
    LEVEL_LIMITED = "level-limited"
    HARDENED = "hardened"
    ACCESS_DENIED = "access-denied"
    LOGON_FAILED = "logon-failed"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    NOT_SMB = "not-smb"
    PROTOCOL_ERROR = "protocol-error"
    ERROR = "error"

    @property
    def answered(self) -> bool:
        """Whether the host told us its sessions (at some level)."""
        return self in ANSWERED


ANSWERED: Final = frozenset((Verdict.SESSIONS, Verdict.NO_SESSIONS, Verdict.LEVEL_LIMITED))

# The session fields every output has, then the level's others (pywin32 key names, FACTS.md §2).
SESSION_KEYS: Final = (
    "client_address", "client_name", "user_name", "active_time", "idle_time",
    "num_opens", "user_flags", "client_type", "transport", "machine_account", "anonymous", "guest",
)
HOST_KEYS: Final = ("host", "address", "port", "verdict", "sessions", "level", "error", "detail", "elapsed")


@dataclass(slots=True)
class Session:
    """One session of a host, with the client's address and name kept apart.

    ``cname`` is what the server sent (``\\\\10.0.0.5``). ``client_address`` is set when that is an
    address, ``client_name`` when it is a name or when the address reverse-resolved."""

    cname: str | None
    user_name: str | None
    active_time: int | None = None
    idle_time: int | None = None
    num_opens: int | None = None
    user_flags: int | None = None
    client_type: str | None = None
    transport: str | None = None
    client_address: str | None = None
    client_name: str | None = None

    @property
    def machine_account(self) -> bool:
        """A computer account (``NAME$``) logged on."""
        return bool(self.user_name) and self.user_name.endswith("$")  # type: ignore[union-attr]

    @property
    def anonymous(self) -> bool:
        """An anonymous (null) session: no user name."""
        return not self.user_name

    @property
    def guest(self) -> bool | None:
        """A guest logon (SESS_GUEST in user_flags); None at levels without user_flags (0, 10)."""
        return None if self.user_flags is None else bool(self.user_flags & SESS_GUEST)

    @property
    def client(self) -> str:
        """The client as history files it: its address when known, else its name."""
        return self.client_address or self.client_name or self.cname or ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_address": self.client_address,
            "client_name": self.client_name,
            "user_name": self.user_name,
            "active_time": self.active_time,
            "idle_time": self.idle_time,
            "num_opens": self.num_opens,
            "user_flags": self.user_flags,
            "client_type": self.client_type,
            "transport": self.transport,
            "machine_account": self.machine_account,
            "anonymous": self.anonymous,
            "guest": self.guest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(
            cname=data.get("client_address") or data.get("client_name"),
            user_name=data.get("user_name"),
            active_time=data.get("active_time"),
            idle_time=data.get("idle_time"),
            num_opens=data.get("num_opens"),
            user_flags=data.get("user_flags"),
            client_type=data.get("client_type"),
            transport=data.get("transport"),
            client_address=data.get("client_address"),
            client_name=data.get("client_name"),
        )


@dataclass(slots=True)
class HostResult:
    """The outcome of one host: verdict, the level that answered, its sessions, the error's name."""

    host: str
    port: int
    verdict: Verdict
    address: str | None = None
    level: int | None = None
    sessions: list[Session] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None
    elapsed: float = 0.0

    @property
    def key(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host.casefold()}:{self.port}"

    def host_dict(self) -> dict[str, Any]:
        """The jsonl host object (stable keys)."""
        return {
            "type": "host",
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "verdict": self.verdict.value,
            "sessions": len(self.sessions),
            "level": self.level,
            "error": self.error,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 3),
        }

    def session_dicts(self) -> list[dict[str, Any]]:
        """The jsonl session objects (stable keys)."""
        return [
            {"type": "session", "host": self.host, "address": self.address, **s.as_dict()}
            for s in self.sessions
        ]

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this result (the resume file's line)."""
        data = self.host_dict()
        data["session_list"] = [s.as_dict() for s in self.sessions]
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> HostResult:
        return cls(
            host=data["host"],
            port=int(data["port"]),
            verdict=Verdict(data["verdict"]),
            address=data.get("address"),
            level=data.get("level"),
            sessions=[Session.from_dict(s) for s in data.get("session_list", [])],
            error=data.get("error"),
            detail=data.get("detail"),
            elapsed=float(data.get("elapsed") or 0.0),
        )
