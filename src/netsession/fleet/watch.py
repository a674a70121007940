"""``netsession watch``: rounds of scans, each diffed against the last into appear/disappear events.

Rounds are time slots of ``every`` seconds (``slot = floor(now / every)``), so watchers started apart —
on several machines sharing one PostgreSQL — agree on which round is which. Each watcher joins the
current slot's round (creating it and its lease rows if nobody did), claims batches of targets nobody
holds (or whose lease expired: a dead watcher's share), scans them, and records each host in its own
transaction; the round ends when every target is done. Then it waits for the next slot.

The diff is made in the database at each host's commit (:meth:`netsession.store.db.Store.record`):
a (server, client, user) in the host's answer that no open span has is an ``appear`` event, an open
span missing from the answer is a ``disappear``. A host that did not answer changes nothing but its
verdict (its sessions are unknown, not gone).

Events are written as jsonl (stdout or ``--events FILE``) and, with ``--syslog``, as RFC 5424 messages.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO, TypeVar

from netsession.fleet.results import HostResult
from netsession.fleet.scan import Scanner, ScanOptions
from netsession.fleet.targets import HostTarget
from netsession.store.db import Event, Store

_T = TypeVar("_T")
# RFC 5424 §6.2.1: facility 1 (user-level), severity 5 (notice).
SYSLOG_PRI: Final = 1 * 8 + 5
# RFC 5424 §7.2.2: SD-ID with an enterprise number; 32473 is reserved for documentation (RFC 5612).
SD_ID: Final = "netsession@32473"
APP_NAME: Final = "netsession"


def event_dict(e: Event) -> dict[str, Any]:
    at = datetime.fromtimestamp(e.at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    base: dict[str, Any] = {"type": e.kind, "at": at, "server": e.host, "target": e.target,
                            "round": e.round_id}
    if e.kind == "verdict":
        base.update(old_verdict=e.old_verdict, new_verdict=e.new_verdict)
    else:
        base.update(client=e.client, client_name=e.client_name, user_name=e.user_name)
    return base


def _sd_escape(value: str) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' are escaped in PARAM-VALUE.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(e: Event, hostname: str | None = None) -> bytes:
    """The event as one RFC 5424 message (§6):
    ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG``."""
    d = event_dict(e)
    host = (hostname or socket.gethostname() or "-")[:255]
    params = " ".join(f'{k}="{_sd_escape(str(v))}"' for k, v in d.items() if v is not None and k != "type")
    if e.kind == "verdict":
        text = f"{e.host}: verdict {e.old_verdict or '-'} -> {e.new_verdict}"
    else:
        text = f"{e.user_name or '(anonymous)'} from {e.client} {e.kind}ed on {e.host}"
    header = f"<{SYSLOG_PRI}>1 {d['at']} {host} {APP_NAME} {os.getpid()} {e.kind} [{SD_ID} {params}]"
    return f"{header} \ufeff{text}".encode()


class SyslogSender:
    """RFC 5424 over UDP (RFC 5426: ``udp://host:port``) or a Unix datagram socket (``unix:///dev/log``)."""

    def __init__(self, url: str) -> None:
        if url.startswith("udp://"):
            hostport = url[len("udp://"):]
            host, _, port = hostport.rpartition(":")
            host = host.strip("[]")
            if not port.isdigit():
                raise ValueError(f"--syslog {url}: expected udp://HOST:PORT")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._address: Any = (host, int(port))
        elif url.startswith("unix://"):
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._address = url[len("unix://"):]
        else:
            raise ValueError(f"--syslog {url}: expected udp://HOST:PORT or unix:///PATH")

    def send(self, e: Event) -> None:
        try:
            self._sock.sendto(syslog_message(e), self._address)
        except OSError:
            pass  # a syslog daemon that is away must not stop the watch

    def close(self) -> None:
        self._sock.close()


@dataclass
class WatchOptions:
    every: float
    rounds: int | None = None  # stop after this many rounds (None: forever)
    lease: float = 60.0
    batch: int | None = None  # targets claimed at a time (default: the scan's concurrency)
    watcher: str = ""
    keep: float | None = None  # retention, seconds
    poll: float = 1.0  # how often to look again while others hold the round's last targets


class Watcher:
    """Runs rounds against one store. The store is used from one worker thread, off the event loop."""

    def __init__(
        self,
        store: Store,
        scan_options: ScanOptions,
        options: WatchOptions,
        targets: Callable[[], Iterable[HostTarget]],
        emit: Callable[[Event], None],
    ) -> None:
        self.store = store
        self.scan_options = scan_options
        self.options = options
        self.targets = targets
        self.emit = emit
        self.watcher = options.watcher or f"{socket.gethostname()}:{os.getpid()}"
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-db")
        self.rounds_done = 0
        self.hosts_done = 0

    async def _db_call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def close(self) -> None:
        self._db.shutdown(wait=True)

    async def run(self) -> None:
        while self.options.rounds is None or self.rounds_done < self.options.rounds:
            now = await self._db_call(self.store.now)
            slot = math.floor(now / self.options.every)
            await self.run_round(slot)
            self.rounds_done += 1
            if self.options.rounds is not None and self.rounds_done >= self.options.rounds:
                break
            wait = (slot + 1) * self.options.every - await self._db_call(self.store.now)
            if wait > 0:
                await asyncio.sleep(wait)

    async def run_round(self, slot: int) -> int:
        """One round: claim, scan and record until every target of the round is done. Returns its id."""
        by_key: dict[str, HostTarget] = {}

        def keys() -> Iterable[str]:
            for t in self.targets():
                by_key[t.key] = t
                yield t.key

        round_id = await self._db_call(self.store.begin_round, slot, self.options.every, keys())
        scanner = Scanner(self.scan_options)
        batch = self.options.batch or self.scan_options.concurrency
        lease = max(self.options.lease, 2 * self.scan_options.deadline + 1)
        try:
            while True:
                claimed = await self._db_call(self.store.claim, round_id, self.watcher, batch, lease)
                if not claimed:
                    if await self._db_call(self.store.pending, round_id) == 0:
                        break
                    await asyncio.sleep(self.options.poll)  # others hold the rest; their leases may expire
                    continue
                await asyncio.gather(*(self._one(scanner, round_id, by_key, key) for key in claimed))
        finally:
            scanner.close()
        await self._db_call(self.store.finish_round, round_id)
        if self.options.keep is not None:
            await self._db_call(self.store.prune, time.time() - self.options.keep)
        return round_id

    async def _one(self, scanner: Scanner, round_id: int, by_key: dict[str, HostTarget], key: str) -> None:
        target = by_key.get(key)
        if target is None:  # another watcher's target list had it; scan it all the same
            host, _, port = key.rpartition(":")
            target = HostTarget(host.strip("[]"), int(port))
        result: HostResult = await scanner.scan_host(target)
        events = await self._db_call(
            lambda: self.store.record(result, round_id=round_id, watcher=self.watcher)
        )
        self.hosts_done += 1
        for e in events:
            self.emit(e)


class EventWriter:
    """Events as jsonl on a stream (flushed per event), and to syslog if asked."""

    def __init__(self, stream: TextIO, syslog: SyslogSender | None = None, *, verdicts: bool = True) -> None:
        self.stream = stream
        self.syslog = syslog
        self.verdicts = verdicts

    def __call__(self, e: Event) -> None:
        if e.kind == "verdict" and (not self.verdicts or e.old_verdict is None):
            return  # a host's first verdict is in the history, not news
        self.stream.write(json.dumps(event_dict(e), ensure_ascii=False) + "\n")
        self.stream.flush()
        if self.syslog is not None:
            self.syslog.send(e)
