"""The scan: every target's sessions, a bounded number of hosts at a time, each within one hard deadline.

>>> import asyncio
>>> from netsession.fleet import ScanOptions, iter_targets, scan
>>> async def main():
...     async for result in scan(iter_targets(["10.0.0.0/24"]), ScanOptions(deadline=3)):
...         print(result.host, result.verdict, len(result.sessions))
>>> asyncio.run(main())                                                # doctest: +SKIP

For each host: resolve its name, connect, log on, bind srvsvc, then NetrSessionEnum at the level asked
(10 unless told), stepping to 1 then 0 while the server answers ERROR_INVALID_LEVEL (Samba serves only 0
and 1), paging with the resume handle for as long as the server says ERROR_MORE_DATA (MS-SRVS §3.1.4.5).
All of it — DNS, TCP, negotiate, logon, bind and every call — runs under one deadline; a host that has
not finished by then is ``timeout``, whatever it was doing. Client addresses are then reverse-resolved
(:mod:`netsession.fleet.names`, its own small deadline, outside the host's).

Hosts run on ``concurrency`` workers that pull targets from the (lazy) target iterator, so memory does not
grow with the number of targets; results come out as hosts finish.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from netsession.client.pool import Credentials
from netsession.errors import ERROR_INVALID_LEVEL
from netsession.fleet.names import ReverseResolver, split_cname
from netsession.fleet.probe import Engine, HostConnection, ProbeError, open_host
from netsession.fleet.results import HostResult, Session, Verdict
from netsession.fleet.targets import HostTarget
from netsession.records import MAX_PREFERRED_LENGTH, SessionInfo, to_pywin32

DEFAULT_CONCURRENCY: Final = 256
DEFAULT_DEADLINE: Final = 10.0
DEFAULT_LEVEL: Final = 10
# Levels tried after the first while the server answers ERROR_INVALID_LEVEL.
STEP_LEVELS: Final = (1, 0)
# A server that pages forever is cut off: no real server holds this many sessions.
MAX_SESSIONS: Final = 1_000_000


@dataclass
class ScanOptions:
    """How to scan: credentials, level, concurrency, the per-host deadline (seconds), page size."""

    credentials: Credentials = field(default_factory=Credentials)
    level: int = DEFAULT_LEVEL
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float = DEFAULT_DEADLINE
    page_size: int = MAX_PREFERRED_LENGTH
    resolve_names: bool = True
    name_deadline: float = 1.0
    name_concurrency: int = 16
    exclude_self: bool = False


def level_chain(level: int) -> tuple[int, ...]:
    """The levels asked in turn: ``level``, then the lower ones of (1, 0)."""
    lower = tuple(lv for lv in STEP_LEVELS if lv != level and (level not in STEP_LEVELS or lv < level))
    return (level, *lower)


def _session(record: SessionInfo) -> Session:
    d = to_pywin32(record)
    address, name = split_cname(d.get("client_name"))
    return Session(
        cname=d.get("client_name"),
        user_name=d.get("user_name"),
        active_time=d.get("active_time"),
        idle_time=d.get("idle_time"),
        num_opens=d.get("num_opens"),
        user_flags=d.get("user_flags"),
        client_type=d.get("client_type"),
        transport=d.get("transport"),
        client_address=address,
        client_name=name,
    )


async def enum_all(conn: HostConnection, level: int, page_size: int) -> list[SessionInfo]:
    """Every session at ``level``, following ERROR_MORE_DATA with the resume handle."""
    records: list[SessionInfo] = []
    resume: int | None = 0
    while True:
        page = await conn.enum(level, resume, page_size)
        records.extend(page.records)
        if not page.more:
            return records
        if not page.records or page.resume is None or page.resume == resume:
            raise ProbeError(Verdict.PROTOCOL_ERROR, "ERROR_MORE_DATA",
                             "the server said ERROR_MORE_DATA without moving the resume handle")
        if len(records) > MAX_SESSIONS:
            raise ProbeError(Verdict.PROTOCOL_ERROR, "ERROR_MORE_DATA", f"more than {MAX_SESSIONS} sessions")
        resume = page.resume


async def _address(host: str, port: int) -> str:
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError(Verdict.UNREACHABLE, "WSAHOST_NOT_FOUND", f"{host}: {exc.strerror}") from None
    if not infos:
        raise ProbeError(Verdict.UNREACHABLE, "WSAHOST_NOT_FOUND", f"{host}: no address")
    return str(infos[0][4][0])


class Scanner:
    """Scans hosts with shared workers, resolver and options. Use :func:`scan` for a whole run."""

    def __init__(self, options: ScanOptions) -> None:
        self.options = options
        self.engine = Engine(options.concurrency)
        self.resolver = ReverseResolver(
            concurrency=options.name_concurrency, deadline=options.name_deadline
        ) if options.resolve_names else None

    def close(self) -> None:
        self.engine.close()
        if self.resolver is not None:
            self.resolver.close()

    async def scan_host(self, target: HostTarget) -> HostResult:
        """One host, start to verdict, within the deadline."""
        opts = self.options
        started = time.monotonic()
        result = HostResult(target.host, target.port, Verdict.ERROR)
        stage = "resolving its name"
        local: str | None = None
        try:
            async with asyncio.timeout(opts.deadline):
                result.address = await _address(target.host, target.port)
                stage = "connecting (TCP, negotiate, logon, bind)"
                remaining = opts.deadline - (time.monotonic() - started)
                conn = await open_host(self.engine, result.address, target.port, opts.credentials, remaining)
                local = conn.local_address
                stage = "enumerating"
                try:
                    records = await self._levels(conn, result)
                finally:
                    await conn.close()
        except TimeoutError:
            result.verdict, result.error = Verdict.TIMEOUT, None
            result.detail = f"no answer within the {opts.deadline:g} s deadline ({stage})"
            result.elapsed = time.monotonic() - started
            return result
        except ProbeError as exc:
            result.verdict, result.error, result.detail = exc.verdict, exc.error, exc.detail
            result.elapsed = time.monotonic() - started
            return result
        result.elapsed = time.monotonic() - started
        sessions = [_session(r) for r in records]
        if opts.exclude_self and local is not None:
            me = (opts.credentials.username or "").casefold()
            sessions = [s for s in sessions
                        if not (s.client_address == local and (s.user_name or "").casefold() == me)]
        result.sessions = sessions
        if result.verdict is Verdict.ERROR:  # the first level answered
            result.verdict = Verdict.SESSIONS if sessions else Verdict.NO_SESSIONS
        await self._names(sessions)
        return result

    async def _levels(self, conn: HostConnection, result: HostResult) -> list[SessionInfo]:
        chain = level_chain(self.options.level)
        refused: list[int] = []
        for level in chain:
            try:
                records = await enum_all(conn, level, self.options.page_size)
            except ProbeError as exc:
                if exc.stub_status == ERROR_INVALID_LEVEL:
                    refused.append(level)
                    continue
                raise
            result.level = level
            if refused:
                result.verdict = Verdict.LEVEL_LIMITED
                result.detail = "ERROR_INVALID_LEVEL at level " + ", ".join(map(str, refused))
            return records
        raise ProbeError(Verdict.ERROR, "ERROR_INVALID_LEVEL",
                         "ERROR_INVALID_LEVEL at every level: " + ", ".join(map(str, refused)),
                         stub_status=ERROR_INVALID_LEVEL)

    async def _names(self, sessions: list[Session]) -> None:
        if self.resolver is None:
            return
        resolver = self.resolver
        addresses = {s.client_address for s in sessions if s.client_address and not s.client_name}
        if not addresses:
            return
        names = dict(zip(addresses, await asyncio.gather(*(resolver.name(a) for a in addresses))))
        for s in sessions:
            if s.client_address and not s.client_name:
                s.client_name = names.get(s.client_address)


async def scan(
    targets: Iterable[HostTarget],
    options: ScanOptions | None = None,
    *,
    skip: Callable[[HostTarget], bool] | None = None,
) -> AsyncIterator[HostResult]:
    """Scan every target (lazily consumed); yields each host's result as it finishes. ``skip`` leaves a
    target out (a resumed scan's finished hosts)."""
    scanner = Scanner(options or ScanOptions())
    source: Iterator[HostTarget] = iter(targets)
    queue: asyncio.Queue[HostResult | None] = asyncio.Queue(maxsize=scanner.options.concurrency)

    async def worker() -> None:
        for target in source:
            if skip is not None and skip(target):
                continue
            await queue.put(await scanner.scan_host(target))

    workers = [asyncio.create_task(worker()) for _ in range(max(1, scanner.options.concurrency))]

    async def closer() -> None:
        try:
            await asyncio.gather(*workers)
        finally:
            await queue.put(None)

    done = asyncio.create_task(closer())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            yield item
        await done  # a worker's exception comes out here
    finally:
        for task in (*workers, done):
            task.cancel()
        await asyncio.gather(*workers, done, return_exceptions=True)
        scanner.close()
