"""Scan output, written as hosts finish: ``table``, ``jsonl``, ``csv`` (``bloodhound`` is in
:mod:`netsession.fleet.opengraph`), and the verdict summary.

jsonl: for each host, one host object, then one object per session::

    {"type": "host", "host", "address", "port", "verdict", "sessions", "level", "error", "detail", "elapsed"}
    {"type": "session", "host", "address", "client_address", "client_name", "user_name", "active_time",
     "idle_time", "num_opens", "user_flags", "client_type", "transport", "machine_account", "anonymous"}

A field the answering level does not have is null. csv: the same, one row per object, a ``type`` column
first, the union of the columns.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TextIO

from netsession.fleet.results import HOST_KEYS, SESSION_KEYS, HostResult, Verdict

CSV_COLUMNS: Final = ("type", *HOST_KEYS, *SESSION_KEYS)


class Output(Protocol):
    def write(self, result: HostResult) -> None: ...

    def close(self) -> None: ...


class JsonlOutput:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, result: HostResult) -> None:
        lines = [result.host_dict(), *result.session_dicts()]
        self.stream.write("".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in lines))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class CsvOutput:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\n",
                                      extrasaction="ignore")
        self._writer.writeheader()

    def write(self, result: HostResult) -> None:
        host = result.host_dict()
        self._writer.writerow(host)
        for s in result.session_dicts():
            self._writer.writerow({**s, "verdict": host["verdict"], "port": host["port"]})
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def _hms(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


class TableOutput:
    """A line per host (host, verdict, sessions, level, error), its sessions indented below it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._headed = False

    def write(self, result: HostResult) -> None:
        lines = []
        if not self._headed:
            lines.append(f"{'Host':<28} {'Verdict':<15} {'Sessions':>8} {'Level':>5}  Error")
            lines.append("-" * 72)
            self._headed = True
        level = "" if result.level is None else str(result.level)
        error = result.error or ""
        if result.detail and not result.verdict.answered:
            error = f"{error}: {result.detail}" if error else result.detail
        host = result.host if result.port == 445 else f"{result.host}:{result.port}"
        lines.append(f"{host:<28} {result.verdict.value:<15} {len(result.sessions):>8} {level:>5}  {error}"
                     .rstrip())
        for s in result.sessions:
            client = s.client_address or ""
            name = s.client_name or ""
            marks = (("machine", s.machine_account), ("anonymous", s.anonymous))
            flags = ",".join(f for f, on in marks if on)
            user = s.user_name or ""
            lines.append(f"    {client:<20} {name:<24} {user:<20} {_hms(s.active_time):>9} "
                         f"{_hms(s.idle_time):>9} {flags}".rstrip())
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


@dataclass
class Summary:
    """Verdict counts and totals of a scan (a resumed scan's earlier hosts included)."""

    verdicts: Counter[str] = field(default_factory=Counter)
    hosts: int = 0
    sessions: int = 0
    hosts_with_sessions: int = 0
    elapsed: float = 0.0
    skipped_targets: int = 0
    resumed: int = 0

    def add(self, result: HostResult, *, earlier: bool = False) -> None:
        """Count a host; ``earlier``: finished by the scan being resumed (not in this run's rate)."""
        self.hosts += 1
        if earlier:
            self.resumed += 1
        self.verdicts[result.verdict.value] += 1
        self.sessions += len(result.sessions)
        if result.sessions:
            self.hosts_with_sessions += 1

    @property
    def answered(self) -> int:
        return sum(self.verdicts[v.value] for v in Verdict if v.answered)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "hosts": self.hosts,
            "answered": self.answered,
            "hosts_with_sessions": self.hosts_with_sessions,
            "sessions": self.sessions,
            "verdicts": {v.value: self.verdicts[v.value] for v in Verdict},
            "unparseable_targets": self.skipped_targets,
            "resumed": self.resumed,
            "elapsed": round(self.elapsed, 3),
        }

    def render(self) -> str:
        rate = (self.hosts - self.resumed) / self.elapsed if self.elapsed > 0 else 0.0
        lines = [f"{self.hosts} hosts in {self.elapsed:.1f} s ({rate:.0f} hosts/s): "
                 f"{self.answered} answered, "
                 f"{self.hosts_with_sessions} with sessions, {self.sessions} sessions"]
        width = max(len(v.value) for v in Verdict)
        for v in Verdict:
            lines.append(f"  {v.value:<{width}}  {self.verdicts[v.value]:>7}")
        if self.resumed:
            lines.append(f"  ({self.resumed} of them finished before this run, from the --resume state)")
        if self.skipped_targets:
            lines.append(f"  {'unparseable targets':<{width}}  {self.skipped_targets:>7} (skipped)")
        return "\n".join(lines) + "\n"
