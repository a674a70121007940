r"""Alerts: every enumeration and deletion on srvsvc as an ECS-style event, to JSON lines and syslog.

Built on the server's one audit stream (:mod:`netsession.server.audit`): :class:`AlertSink` is an audit
sink that turns each :class:`~netsession.server.audit.SrvsvcCallEvent` of an enumeration (NetrSessionEnum,
NetrFileEnum, NetrConnectionEnum, NetrShareEnum...) or a deletion (NetrSessionDel, NetrFileClose) into an
alert document (:func:`alert_document`; the field names are in ``docs/alerts.md``) and hands it to its
outputs: :class:`JsonLinesOutput` (``--alert-log FILE``, ``-`` for standard output) and
:class:`SyslogOutput` (``--alert-syslog unix:/dev/log | udp://HOST:PORT | tcp://HOST:PORT``, RFC 5424,
TCP framed by octet counting, RFC 6587 §3.4.1).

``--alert-on`` chooses what makes an event an *alert* (``event.kind: alert``, a higher severity) rather
than a plain ``event``: ``enum`` (any enumeration), ``non-admin`` (an enumeration by a caller outside
Administrators and Server Operators), ``decoy`` (a synthetic row in the answer), ``decoy-delete`` (a
synthetic row deleted). Default: ``non-admin,decoy,decoy-delete``.

A collector that goes away never blocks or slows the server: the syslog output keeps at most
:data:`QUEUE_LIMIT` messages; past that each new one is dropped and counted (``dropped``, and
``netsession_alerts_dropped_total`` when --metrics is on); a TCP collector is reconnected in the
background with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final, Protocol

from netsession.server.audit import AuditEvent, SrvsvcCallEvent

__all__ = [
    "ALERT_ON",
    "DEFAULT_ALERT_ON",
    "AlertSink",
    "JsonLinesOutput",
    "SyslogOutput",
    "alert_document",
    "parse_alert_on",
    "parse_syslog_target",
    "rfc5424",
]

log = logging.getLogger("netsession.decoy")

ALERT_ON: Final = ("enum", "non-admin", "decoy", "decoy-delete")
DEFAULT_ALERT_ON: Final = frozenset(("non-admin", "decoy", "decoy-delete"))
ENUMERATIONS: Final = frozenset((
    "NetrSessionEnum", "NetrFileEnum", "NetrConnectionEnum", "NetrShareEnum", "NetrShareEnumSticky",
))
DELETIONS: Final = frozenset(("NetrSessionDel", "NetrFileClose"))
# ECS event.severity (0-100, larger is worse) and the RFC 5424 severity (smaller is worse) of each kind.
SEVERITY: Final = {"alert": (73, 4), "event": (21, 6)}  # 4 = Warning, 6 = Informational
FACILITY_LOCAL0: Final = 16
QUEUE_LIMIT: Final = 10_000
MAX_BACKOFF: Final = 30.0
SD_ID: Final = "netsession@32473"  # RFC 5612's documentation enterprise number


def parse_alert_on(value: str) -> frozenset[str]:
    """``--alert-on a,b`` -> the set; ValueError naming what is unknown."""
    chosen = frozenset(p.strip() for p in value.split(",") if p.strip())
    unknown = sorted(chosen - set(ALERT_ON))
    if unknown or not chosen:
        what = repr(unknown[0]) if unknown else repr(value)
        raise ValueError(f"unknown alert trigger {what} (choose from {', '.join(ALERT_ON)})")
    return chosen


def _split_address(address: str) -> tuple[str, int | None]:
    if address.startswith("["):
        host, _, port = address[1:].partition("]:")
    else:
        host, _, port = address.rpartition(":")
    return host, (int(port) if port.isdigit() else None)


def alert_document(event: SrvsvcCallEvent, alert_on: frozenset[str], server_name: str = "") -> dict[str, Any]:
    """The ECS-style document of one call (docs/alerts.md)."""
    extra: Mapping[str, Any] = event.extra
    decoys = int(extra.get("decoy_rows", 0) or 0)
    deletion = event.operation in DELETIONS
    admin = extra.get("caller_admin")
    reasons = []
    if not deletion and "enum" in alert_on:
        reasons.append("enum")
    if not deletion and "non-admin" in alert_on and admin is False:
        reasons.append("non-admin")
    if not deletion and "decoy" in alert_on and decoys:
        reasons.append("decoy")
    if deletion and "decoy-delete" in alert_on and decoys:
        reasons.append("decoy-delete")
    kind = "alert" if reasons else "event"
    answered = event.fault is None and event.status in ("NERR_Success", "ERROR_MORE_DATA")
    server_host, server_port = _split_address(event.listener) if event.listener else ("", None)
    doc: dict[str, Any] = {
        "@timestamp": datetime.fromtimestamp(event.time, UTC).isoformat(timespec="microseconds"),
        "message": (
            f"{event.operation} level {'-' if event.level is None else event.level} by "
            f"{extra.get('caller_domain') or ''}{chr(92) if extra.get('caller_domain') else ''}"
            f"{event.caller or '(anonymous)'} from {event.client_address}: {event.result}"
            + (f" ({decoys} decoy rows)" if decoys else "")
        ),
        "event": {
            "kind": kind,
            "category": ["network", "session"],
            "type": ["deletion"] if deletion else ["access", "info"],
            "action": event.operation,
            "outcome": "success" if answered else "failure",
            "severity": SEVERITY[kind][0],
            "dataset": "netsession.srvsvc",
            "module": "netsession",
            "reason": ",".join(reasons) or None,
        },
        "user": {"name": event.caller, "domain": extra.get("caller_domain") or None},
        "source": {
            "ip": event.client_address or None,
            "port": extra.get("client_port") or None,
            "domain": extra.get("workstation") or None,
        },
        "server": {"address": server_host or None, "port": server_port},
        "observer": {"name": server_name or None, "product": "netsession", "type": "srvsvc"},
        "netsession": {
            "operation": event.operation,
            "opnum": event.opnum,
            "level": event.level,
            "qualifiers": {"client": event.client_name, "user": event.user_name},
            "status": event.status,
            "fault": event.fault,
            "result": event.result,
            "entries": event.entries,
            "total_entries": event.total_entries,
            "closed": event.closed,
            "listener": event.listener or None,
            "personality": extra.get("personality"),
            "caller_admin": admin,
            "ntlm": {
                "user": extra.get("client_user") or None,
                "domain": extra.get("client_domain") or None,
                "workstation": extra.get("workstation") or None,
            },
            "decoy": {"rows": decoys, "touched": bool(decoys)},
        },
    }
    return doc


class AlertOutput(Protocol):
    def send(self, doc: dict[str, Any]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AlertSink:
    """An audit sink: srvsvc enumerations and deletions become alert documents for every output."""

    def __init__(
        self,
        outputs: Iterable[AlertOutput],
        alert_on: frozenset[str] = DEFAULT_ALERT_ON,
        server_name: str = "",
    ) -> None:
        self.outputs = list(outputs)
        self.alert_on = alert_on
        self.server_name = server_name

    def emit(self, event: AuditEvent) -> None:
        if not isinstance(event, SrvsvcCallEvent):
            return
        if event.operation not in ENUMERATIONS and event.operation not in DELETIONS:
            return
        doc = alert_document(event, self.alert_on, self.server_name)
        for output in self.outputs:
            output.send(doc)

    def close(self) -> None:
        return

    # An Extension of serve: the outputs' own tasks start and stop with the listeners.
    async def start(self) -> None:
        for output in self.outputs:
            await output.start()

    async def stop(self) -> None:
        for output in self.outputs:
            await output.stop()


class JsonLinesOutput:
    """One document per line, to a file (appended, 0600) or standard output; flushed after each."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._file: IO[str]
        if target == "-":
            self._file = sys.stdout
            self._owned = False
        else:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            self._owned = True

    def send(self, doc: dict[str, Any]) -> None:
        self._file.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    async def start(self) -> None:
        return

    async def stop(self) -> None:
        if self._owned:
            self._file.close()


# -- syslog --------------------------------------------------------------------------------------------


def parse_syslog_target(value: str) -> tuple[str, str | tuple[str, int]]:
    """``unix:PATH`` (default ``unix:/dev/log``), ``udp://HOST:PORT``, ``tcp://HOST:PORT``."""
    if value.startswith("unix:"):
        path = value.removeprefix("unix:") or "/dev/log"
        return "unix", path
    for scheme in ("udp", "tcp"):
        if value.startswith(f"{scheme}://"):
            host, port = _split_address(value.removeprefix(f"{scheme}://"))
            if not host or port is None or not 0 < port < 65536:
                raise ValueError(f"expected {scheme}://HOST:PORT, got {value!r}")
            return scheme, (host, port)
    raise ValueError(f"unknown syslog target {value!r} (unix:PATH, udp://HOST:PORT or tcp://HOST:PORT)")


def _sd_value(value: object) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' are escaped in PARAM-VALUE.
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(
    doc: dict[str, Any], hostname: str, app: str = "netsession", facility: int = FACILITY_LOCAL0
) -> bytes:
    """The syslog message (RFC 5424 §6) of an alert document: structured data with the key fields, the
    JSON document as MSG (UTF-8, with the BOM §6.4 asks for)."""
    kind = doc["event"]["kind"]
    pri = facility * 8 + SEVERITY[kind][1]
    ns = doc["netsession"]
    params = {
        "kind": kind, "action": doc["event"]["action"], "level": ns["level"], "user": doc["user"]["name"],
        "src": doc["source"]["ip"], "srcport": doc["source"]["port"],
        "workstation": ns["ntlm"]["workstation"],
        "listener": ns["listener"], "result": ns["status"] or ns["fault"], "entries": ns["entries"],
        "decoy": ns["decoy"]["rows"],
    }
    sd = "[" + SD_ID + "".join(
        f' {k}="{_sd_value(v)}"' for k, v in params.items() if v is not None and v != ""
    ) + "]"
    header = f"<{pri}>1 {doc['@timestamp']} {hostname or '-'} {app} {os.getpid()} {doc['event']['action']} "
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return (header + sd + " ").encode() + b"\xef\xbb\xbf" + body.encode()


class SyslogOutput:
    """RFC 5424 to a local socket, UDP or TCP, through a bounded queue; never blocks the server."""

    def __init__(
        self,
        target: str,
        *,
        hostname: str | None = None,
        queue_limit: int = QUEUE_LIMIT,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.kind, self.address = parse_syslog_target(target)
        self.target = target
        self.hostname = hostname or socket.gethostname().split(".")[0]
        self.queue: deque[bytes] = deque()
        self.queue_limit = queue_limit
        self.dropped = 0
        self.sent = 0
        self.on_drop = on_drop
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self._warned_io = False

    def send(self, doc: dict[str, Any]) -> None:
        if len(self.queue) >= self.queue_limit:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            if not self._warned:
                self._warned = True
                log.warning(
                    "syslog %s: queue full (%d), dropping alerts (counted)", self.target, self.queue_limit
                )
            return
        self.queue.append(rfc5424(doc, self.hostname))
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self.kind == "tcp":
            await self._run_tcp()
        else:
            await self._run_datagram()

    async def _next(self) -> bytes:
        while not self.queue:
            self._wake.clear()
            await self._wake.wait()
        return self.queue[0]

    async def _run_datagram(self) -> None:
        family = socket.AF_UNIX if self.kind == "unix" else socket.AF_INET
        if self.kind == "udp" and ":" in str(self.address[0]):
            family = socket.AF_INET6
        backoff = 0.5
        while True:
            await self._next()
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(self.address)
                while True:
                    message = await self._next()
                    try:
                        sock.send(message)
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EMSGSIZE:
                            raise
                        self._drop_head()  # a datagram it can never take
                        continue
                    self.queue.popleft()
                    self.sent += 1
                    self._warned_io = False
                    backoff = 0.5
            except OSError as exc:
                self._warn_io(f"syslog {self.target}: {exc.strerror or exc}; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                sock.close()

    def _drop_head(self) -> None:
        self.queue.popleft()
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop()

    async def _run_tcp(self) -> None:
        address = self.address
        assert isinstance(address, tuple)
        host, port = address
        backoff = 0.5
        while True:
            await self._next()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
            except (OSError, TimeoutError) as exc:
                self._warn_io(f"syslog {self.target}: cannot connect ({exc}); retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.5
            try:
                while True:
                    message = await self._next()
                    writer.write(str(len(message)).encode() + b" " + message)  # RFC 6587 octet counting
                    await asyncio.wait_for(writer.drain(), 5.0)
                    self.queue.popleft()
                    self.sent += 1
                    self._warned_io = False
            except (OSError, TimeoutError) as exc:
                self._warn_io(f"syslog {self.target}: connection lost ({exc}); reconnecting")
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
                del reader

    def _warn_io(self, message: str) -> None:
        if not self._warned_io:  # once per outage: the next successful send re-arms it
            self._warned_io = True
            log.warning(message)
