"""The audit trail: one stream of typed events, whatever the log level, handed to every sink.

Who logged on (or failed to), from where and why; who called srvsvc, at which level, with what result.
The server emits each event once, to one :class:`AuditTrail`; sinks decide what becomes of it::

    trail = AuditTrail([LogSink()])                     # the human log (logger ``netsession.audit``)
    trail.add_sink(JsonLinesSink("/var/log/netsession/audit.jsonl"))
    trail.emit(LogonEvent(client_address="10.0.0.5", success=False, user="admin", reason="bad password"))

A JSON line is :meth:`AuditEvent.record`: ``time`` (ISO 8601, UTC, microseconds) and ``event`` first,
then the event's own fields under stable names, then ``extra`` (what another layer adds, e.g. the
decoy's personality) — keys are never removed or renamed, only added. Events are frozen dataclasses, so
a sink (an alert log, syslog, a metrics counter) can match on their type and read fields by name.

A sink that fails (disk full, say) is reported once on the ``netsession.server`` log and skipped for that
event; it never fails the call or the logon it describes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Protocol

__all__ = [
    "AuditEvent",
    "AuditSink",
    "AuditTrail",
    "JsonLinesSink",
    "LogSink",
    "LogonEvent",
    "SrvsvcCallEvent",
]

log = logging.getLogger("netsession.server")
human_log = logging.getLogger("netsession.audit")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What every event has: when (Unix seconds; 0 = stamped by the trail), the client's address, and
    ``extra`` fields another layer adds. Subclasses set ``KIND``, the JSON ``event`` value."""

    KIND: ClassVar[str] = "event"
    time: float = 0.0
    client_address: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON object of the event: time and event first, the fields, then ``extra``."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="microseconds"),
            "event": self.KIND,
        }
        for f in fields(self):
            if f.name not in ("time", "extra"):
                out[f.name] = getattr(self, f.name)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LogonEvent(AuditEvent):
    """One SESSION_SETUP exchange's outcome (MS-SMB2 §3.3.5.5.3), first logon or re-authentication.

    ``user``/``domain``/``workstation``: as the client sent them in its NTLM AUTHENTICATE_MESSAGE (empty
    when the exchange failed before one arrived). ``account``: the account it was mapped to (``Guest``
    for a guest logon, empty for anonymous or a failure). ``status``: the NT status answered.
    ``reason``: why it failed (for the audit only; the client is told nothing but the status).
    """

    KIND: ClassVar[str] = "logon"
    success: bool
    status: str
    user: str = ""
    domain: str = ""
    workstation: str = ""
    account: str = ""
    session_id: int = 0
    reauthentication: bool = False
    guest: bool = False
    anonymous: bool = False
    reason: str = ""
    delay: float = 0.0  # seconds the answer was held back (brute-force throttling)


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvsvcCallEvent(AuditEvent):
    """One srvsvc call (MS-SRVS §3.1.4), answered or faulted.

    ``status``: the NET_API_STATUS name of the stub's return (None for a fault); ``fault``: the DCE/RPC
    fault status (None when answered); ``result``: the human summary. NetrSessionEnum and NetrSessionDel
    add their targets (``client_name``, ``user_name``, as given), and ``entries``/``total_entries`` or
    ``closed`` (how many sessions the deletion ended).
    """

    KIND: ClassVar[str] = "srvsvc_call"
    caller: str
    operation: str
    opnum: int
    level: int | None = None
    status: str | None = None
    fault: int | None = None
    result: str = ""
    client_name: str | None = None
    user_name: str | None = None
    entries: int | None = None
    total_entries: int | None = None
    closed: int | None = None
    listener: str = ""  # the --listen address the call came through ("" for the local socket)


class AuditSink(Protocol):
    """Where events go. ``emit`` must not block for long (it runs on the server's event loop)."""

    def emit(self, event: AuditEvent) -> None: ...

    def close(self) -> None: ...


class AuditTrail:
    """The one stream of audit events: stamps the time and hands each event to every sink in turn."""

    def __init__(self, sinks: Iterable[AuditSink] = (), *, clock: Any = time.time) -> None:
        self.sinks: list[AuditSink] = list(sinks)
        self._clock = clock
        self._failed: set[int] = set()

    def add_sink(self, sink: AuditSink) -> None:
        self.sinks.append(sink)

    def emit(self, event: AuditEvent) -> AuditEvent:
        """Send ``event`` (stamped now if its time is 0) to every sink; returns the stamped event."""
        if not event.time:
            event = _stamped(event, self._clock())
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as exc:  # an audit sink must never fail what it describes
                if id(sink) not in self._failed:
                    self._failed.add(id(sink))
                    log.error("audit sink %s failed (reported once): %s", type(sink).__name__, exc)
        return event

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing audit sink %s: %s", type(sink).__name__, exc)


def _stamped(event: AuditEvent, now: float) -> AuditEvent:
    values = {f.name: getattr(event, f.name) for f in fields(event)}
    values["time"] = now
    return type(event)(**values)


class JsonLinesSink:
    """One JSON object per line, appended to a file (created 0600), flushed after every event."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, event: AuditEvent) -> None:
        self._file.write(json.dumps(event.record(), ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class LogSink:
    """The human-readable audit lines on the ``netsession.audit`` logger (level INFO; failed logons
    WARNING), as they have always read."""

    def __init__(self, logger: logging.Logger = human_log) -> None:
        self.logger = logger

    def emit(self, event: AuditEvent) -> None:
        if isinstance(event, SrvsvcCallEvent):
            self.logger.info(
                "caller=%s client=%s operation=%s level=%s result=%s",
                event.caller or "(anonymous)",
                event.client_address,
                event.operation,
                "-" if event.level is None else event.level,
                event.result,
                extra={
                    "caller": event.caller,
                    "client_address": event.client_address,
                    "operation": event.operation,
                    "level": event.level,
                    "result": event.result,
                },
            )
        elif isinstance(event, LogonEvent):
            who = "\\".join(p for p in (event.domain, event.user) if p)
            who = who or ("(anonymous)" if event.success else "(no user name)")
            if event.success:
                self.logger.info(
                    "logon %s from %s workstation=%s account=%s session=%#x%s",
                    who, event.client_address, event.workstation or "-", event.account or "(anonymous)",
                    event.session_id, " (re-authentication)" if event.reauthentication else "",
                )
            else:
                self.logger.warning(
                    "logon FAILED %s from %s workstation=%s: %s (%s%s)",
                    who, event.client_address, event.workstation or "-", event.reason, event.status,
                    f", answered after {event.delay:.1f} s" if event.delay else "",
                )

    def close(self) -> None:
        return
