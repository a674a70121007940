"""`serve --metrics ADDR:PORT`: the server's counters in Prometheus' text format (prometheus-client).

- ``netsession_connections_total{listener}``: TCP connections accepted;
  ``netsession_connections_open{listener}``: open now;
  ``netsession_connections_rejected_total{listener,reason}``: refused (``max_connections``, ...);
- ``netsession_sessions{kind}``: rows of the session table now, ``real`` and ``synthetic``;
- ``netsession_logons_total{result}``: session setups, ``success``, ``guest``, ``anonymous``, ``failure``;
- ``netsession_srvsvc_calls_total{operation,level,result,listener}``: srvsvc calls by their answer (a
  NET_API_STATUS name, or ``fault_0x...``);
- ``netsession_bytes_received_total{listener}``, ``netsession_bytes_sent_total{listener}``: SMB bytes;
- ``netsession_limits_hit_total{limit}``: a server limit refused something;
- ``netsession_alerts_dropped_total{sink}``: alert events a slow or absent collector made us drop.

:class:`ServerMetrics` holds the registry; the drivers tell it about traffic (a
:class:`~netsession.server.app.ServerObserver`) and it is a sink of the server's audit stream (logons,
srvsvc calls); plain method calls on the event loop, no I/O. :class:`MetricsServer` answers
``GET /metrics`` on its own small asyncio HTTP/1.0 listener (bounded: an 8 KiB request head, 5 s per
connection, 64 connections), an :class:`~netsession.server.app.Extension` of serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from netsession.server.app import ServerObserver
from netsession.server.audit import AuditEvent, LogonEvent, SrvsvcCallEvent
from netsession.table import SessionTable

__all__ = ["MetricsServer", "ServerMetrics", "parse_metrics_address"]

log = logging.getLogger("netsession.decoy")

MAX_HEAD: Final = 8192
CLIENT_TIMEOUT: Final = 5.0
MAX_CLIENTS: Final = 64


class _SessionsCollector:
    """``netsession_sessions{kind}`` read from the table at scrape time."""

    def __init__(self, table: SessionTable) -> None:
        self.table = table

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("netsession_sessions", "Rows of the session table now", labels=["kind"])
        synthetic = self.table.synthetic_count
        family.add_metric(["real"], len(self.table) - synthetic)
        family.add_metric(["synthetic"], synthetic)
        yield family


class ServerMetrics(ServerObserver):
    """The counters of one server (their own registry: several servers in one test process stay apart)."""

    def __init__(self, table: SessionTable) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Counter(
            "netsession_connections", "TCP connections accepted", ["listener"], registry=r
        )
        self.connections_open = Gauge(
            "netsession_connections_open", "TCP connections open now", ["listener"], registry=r
        )
        self.rejected = Counter(
            "netsession_connections_rejected", "Connections refused", ["listener", "reason"], registry=r
        )
        self.logons = Counter("netsession_logons", "Session setups by result", ["result"], registry=r)
        self.srvsvc_calls = Counter(
            "netsession_srvsvc_calls", "srvsvc calls by operation, level and answer",
            ["operation", "level", "result", "listener"], registry=r,
        )
        self.bytes_received = Counter(
            "netsession_bytes_received", "Bytes read from SMB clients", ["listener"], registry=r
        )
        self.bytes_sent = Counter(
            "netsession_bytes_sent", "Bytes written to SMB clients", ["listener"], registry=r
        )
        self.limits_hit = Counter(
            "netsession_limits_hit", "A server limit refused something", ["limit"], registry=r
        )
        self.alerts_dropped = Counter(
            "netsession_alerts_dropped", "Alert events dropped (collector slow or gone)", ["sink"], registry=r
        )
        r.register(_SessionsCollector(table))

    # -- what the layers tell -------------------------------------------------------------------------

    def connection_opened(self, listener: str) -> None:
        self.connections.labels(listener).inc()
        self.connections_open.labels(listener).inc()

    def connection_closed(self, listener: str) -> None:
        self.connections_open.labels(listener).dec()

    def connection_rejected(self, listener: str, reason: str) -> None:
        self.rejected.labels(listener, reason).inc()
        self.limits_hit.labels(reason).inc()

    def received(self, listener: str, n: int) -> None:
        self.bytes_received.labels(listener).inc(n)

    def sent(self, listener: str, n: int) -> None:
        self.bytes_sent.labels(listener).inc(n)

    def srvsvc_call(self, operation: str, level: int | None, result: str, listener: str) -> None:
        self.srvsvc_calls.labels(operation, "-" if level is None else str(level), result, listener).inc()

    def limit_hit(self, limit: str) -> None:
        self.limits_hit.labels(limit).inc()

    # -- an audit sink: logons and srvsvc calls come from the server's audit stream ------------------

    def emit(self, event: AuditEvent) -> None:
        if isinstance(event, LogonEvent):
            result = (
                "failure" if not event.success
                else "anonymous" if event.anonymous else "guest" if event.guest else "success"
            )
            self.logons.labels(result).inc()
        elif isinstance(event, SrvsvcCallEvent):
            answer = event.status if event.fault is None else f"fault_0x{event.fault:08X}"
            self.srvsvc_call(event.operation, event.level, answer or "-", event.listener or "local")

    def close(self) -> None:
        return

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def parse_metrics_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` for --metrics."""
    from netsession.server.listener import parse_listen

    host, port = parse_listen(value)
    return host or "127.0.0.1", port


class MetricsServer:
    """GET /metrics over HTTP/1.0 on ``address``; anything else is 404, a bad request 400."""

    def __init__(self, metrics: ServerMetrics, address: tuple[str, int]) -> None:
        self.metrics = metrics
        self.address = address
        self._server: asyncio.base_events.Server | None = None
        self._clients = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.address[0], self.address[1], limit=MAX_HEAD
        )
        log.info("metrics on http://%s:%d/metrics", self.address[0], self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            writer.close()
            return
        self._clients += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLIENT_TIMEOUT)
            request = head.split(b"\r\n", 1)[0].split()
            if len(request) != 3 or not request[2].startswith(b"HTTP/"):
                status, body, ctype = b"400 Bad Request", b"bad request\n", b"text/plain"
            elif request[0] not in (b"GET", b"HEAD"):
                status, body, ctype = b"405 Method Not Allowed", b"GET only\n", b"text/plain"
            elif request[1].split(b"?")[0] not in (b"/metrics", b"/"):
                status, body, ctype = b"404 Not Found", b"try /metrics\n", b"text/plain"
            else:
                status, body, ctype = b"200 OK", self.metrics.render(), CONTENT_TYPE_LATEST.encode()
            writer.write(
                b"HTTP/1.0 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + (b"" if request[:1] == [b"HEAD"] else body)
            )
            await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._clients -= 1
            with contextlib.suppress(Exception):
                writer.close()
