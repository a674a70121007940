"""The decoys and the lab inside one running `netsession serve`: what ``--sessions``, ``--personality``,
``--listen ADDR:PORT=PERSONALITY`` and ``--metrics`` set up, and what runs beside the listeners.

:class:`LabPlan` is everything checked before the server starts (a bad sessions file, an unknown
personality: refused with one line); :meth:`LabPlan.install` hangs it on a
:class:`~netsession.server.app.NetsessionServer`: the decoy rows go into its table, their clock ticks
before every srvsvc call, and the control socket, SIGHUP reload and metrics endpoint start with the
listeners (an :class:`~netsession.server.app.Extension`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from netsession.decoy.control import ControlHandler, ControlServer
from netsession.decoy.sessions import DecoySet
from netsession.decoy.spec import SessionsFile, SpecError, parse_source
from netsession.server.app import NetsessionServer
from netsession.server.srvsvc import SessionPersonality

if TYPE_CHECKING:
    from netsession.decoy.metrics import ServerMetrics

log = logging.getLogger("netsession.decoy")


@dataclass
class LabPlan:
    """What was asked for, already checked."""

    sessions_source: str | None = None
    sessions: SessionsFile | None = None
    seed: int | None = None
    default_personality: SessionPersonality | None = None
    personalities: dict[str, SessionPersonality] = field(default_factory=dict)
    control_socket: Path | None = None
    metrics_address: tuple[str, int] | None = None
    alert_log: str | None = None
    alert_syslog: list[str] = field(default_factory=list)
    alert_on: frozenset[str] | None = None

    def install(self, server: NetsessionServer) -> Lab:
        server.default_personality = self.default_personality
        server.personalities.update(self.personalities)
        lab = Lab(server, self)
        server.extensions.append(lab)
        if self.metrics_address is not None:
            from netsession.decoy.metrics import MetricsServer, ServerMetrics

            lab.metrics = ServerMetrics(server.table)
            server.observer = lab.metrics
            server.audit.add_sink(lab.metrics)
            server.extensions.append(MetricsServer(lab.metrics, self.metrics_address))
        if self.alert_log or self.alert_syslog:
            from netsession.decoy import alerts

            outputs: list[alerts.AlertOutput] = []
            if self.alert_log:
                outputs.append(alerts.JsonLinesOutput(self.alert_log))
            for target in self.alert_syslog:
                outputs.append(alerts.SyslogOutput(target, on_drop=lab.dropped_counter(target)))
            sink = alerts.AlertSink(outputs, self.alert_on or alerts.DEFAULT_ALERT_ON, server.options.name)
            server.audit.add_sink(sink)
            server.extensions.append(sink)
        return lab


class Lab:
    """The decoys of one server, their reload (SIGHUP) and their control socket."""

    def __init__(self, server: NetsessionServer, plan: LabPlan) -> None:
        self.server = server
        self.plan = plan
        seed = plan.seed if plan.seed is not None else (plan.sessions.seed if plan.sessions else None)
        self.decoys = DecoySet(server.table, seed=seed)
        server.service.before_call.append(self.decoys.tick)
        if plan.sessions is not None:
            self.decoys.load(plan.sessions.sessions)
            log.info("%d synthetic sessions from %s", len(plan.sessions.sessions), plan.sessions.source)
        reload = self.reload if self._from_file else None
        self.control = (
            ControlServer(ControlHandler(self.decoys, reload), plan.control_socket)
            if plan.control_socket is not None else None
        )
        self._sighup = False
        self.metrics: ServerMetrics | None = None

    @property
    def _from_file(self) -> bool:
        return bool(self.plan.sessions_source) and not str(self.plan.sessions_source).startswith("random:")

    def dropped_counter(self, sink: str) -> Callable[[], None] | None:
        """What counts an alert the ``sink`` dropped in the metrics (None without --metrics)."""
        metrics = self.metrics
        if metrics is None:
            return None
        counter = metrics.alerts_dropped.labels(sink)
        return lambda: counter.inc()

    def reload(self) -> tuple[int, int, int]:
        """Read the sessions file again; a bad file keeps the table as it is (ValueError with why)."""
        source = self.plan.sessions_source
        if source is None or source.startswith("random:"):
            raise ValueError("no sessions file to reload")
        try:
            loaded = parse_source(source, self.plan.seed)
        except SpecError as exc:
            log.error("reload refused, keeping the %d decoys: %s", len(self.decoys), exc)
            raise ValueError(f"reload refused: {exc}") from None
        kept, removed, added = self.decoys.load(loaded.sessions)
        log.info("reloaded %s: %d kept, %d removed, %d added", source, kept, removed, added)
        return kept, removed, added

    def _on_sighup(self) -> None:
        with contextlib.suppress(ValueError):
            self.reload()

    async def start(self) -> None:
        if self.control is not None:
            await self.control.start()
        if self._from_file:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._sighup = True

    async def stop(self) -> None:
        if self._sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self.control is not None:
            await self.control.stop()
