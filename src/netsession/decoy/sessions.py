r"""Synthetic sessions living in the server's session table: their rows, their activity, their return.

A :class:`DecoySet` turns :class:`~netsession.decoy.spec.DecoySpec` descriptions into rows of the one
:class:`~netsession.table.SessionTable` (``synthetic=True``; the srvsvc layer lists, pages, filters,
counts and deletes them by the same rules as SMB sessions). Each row "speaks" on a schedule — a gap of
``speak_every x (1 +/- jitter)`` seconds drawn from a seeded generator — so its idle time resets plausibly
and its active time grows; NetrSessionDel removes the row, and a spec with ``respawn`` adds a fresh one
that much later, like a user reconnecting.

No timers and no I/O: :meth:`DecoySet.tick` brings every row up to the table clock's *now* (the server
calls it before every srvsvc call), so the times a client reads are exact whatever the clock.

>>> now = [1000.0]
>>> from netsession.table import SessionTable
>>> from netsession.decoy.spec import DecoySpec
>>> table = SessionTable(clock=lambda: now[0])
>>> decoys = DecoySet(table, seed=1)
>>> _ = decoys.load([DecoySpec("10.0.0.9", "adm-kim", age=3600, idle=30, speak_every=100, jitter=0)])
>>> row = next(iter(table)); info = row.info()
>>> info.sesi502_cname, info.sesi502_time, info.sesi502_idle_time
('\\\\10.0.0.9', 3600, 30)
>>> now[0] += 75; decoys.tick(); row.info().sesi502_idle_time   # it spoke at +70
5
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from netsession.decoy.spec import DecoySpec
from netsession.records import SESS_GUEST
from netsession.table import STYPE_IPC, Session, SessionTable, unc_client_name
from netsession.wire.srvsvc import STYPE_DISKTREE

__all__ = ["Decoy", "DecoySet"]

log = logging.getLogger("netsession.decoy")

# The shortest gap between two requests of a row (a jitter of 1 could draw 0).
MIN_GAP: Final = 1.0
FILE: Final = "file"
CONTROL: Final = "control"


@dataclass(eq=False)
class Decoy:
    """One described session and its current row (None while deleted and waiting to respawn)."""

    spec: DecoySpec
    index: int
    source: str  # FILE or CONTROL (added over the control channel; kept across reloads)
    rng: random.Random
    row: Session | None = None
    generation: int = 0  # bumped when retired: pending events of older generations are dropped
    retired: bool = False
    respawn_at: float | None = None
    deletions: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return unc_client_name(self.spec.client).upper(), self.spec.user.upper()

    def gap(self) -> float | None:
        """Seconds until this row's next request, or None if it never speaks."""
        spec = self.spec
        if spec.speak_every <= 0:
            return None
        return max(MIN_GAP, spec.speak_every * (1.0 + spec.jitter * self.rng.uniform(-1.0, 1.0)))

    def describe(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, **self.spec.to_json(), "active": self.row is not None}
        if self.row is not None:
            info = self.row.info()
            out.update(
                cname=info.sesi502_cname, active_time=info.sesi502_time, idle_time=info.sesi502_idle_time
            )
        elif self.respawn_at is not None:
            out["respawn_in"] = max(0.0, round(self.respawn_at - now, 3))
        out["deletions"] = self.deletions
        return out


_FILE_NAMES: Final = (
    "Documents\\Q3 forecast.xlsx", "Documents\\budget 2026.xlsx", "Desktop\\notes.txt",
    "Documents\\contract draft v4.docx", "Downloads\\invoice-3318.pdf", "Documents\\passwords.kdbx",
    "Documents\\org chart.pptx", "AppData\\Roaming\\Microsoft\\Signatures\\default.htm",
)
_SPEAK: Final = 0
_RESPAWN: Final = 1


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    kind: int = field(compare=False)
    decoy: Decoy = field(compare=False)
    generation: int = field(compare=False)


class DecoySet:
    """The synthetic rows of one table. ``seed`` makes their activity repeatable (None: random)."""

    def __init__(
        self,
        table: SessionTable,
        *,
        seed: int | None = None,
        on_deleted: Callable[[Decoy], None] | None = None,
    ) -> None:
        self.table = table
        self._clock = table.clock
        self._seed = seed if seed is not None else random.SystemRandom().randrange(1 << 63)
        self._decoys: dict[int, Decoy] = {}  # by index, in the order they were made
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._made = itertools.count()
        self.on_deleted = on_deleted

    def __len__(self) -> int:
        return len(self._decoys)

    def __iter__(self) -> Iterator[Decoy]:
        return iter(list(self._decoys.values()))

    @property
    def active(self) -> int:
        """How many decoy rows are in the table now."""
        return sum(1 for d in self._decoys.values() if d.row is not None)

    # -- describing --------------------------------------------------------------------------------

    def load(self, specs: Iterable[DecoySpec], *, seed: int | None = None) -> tuple[int, int, int]:
        """Make the file-described decoys these ``specs`` (a reload): rows whose spec is unchanged keep
        their row and times; the others go, and the new ones — and the deleted ones still described —
        come, as the file says. Control-added decoys are left alone.
        Returns (kept, removed, added)."""
        if seed is not None:
            self._seed = seed
        wanted: dict[tuple[tuple[str, str], int], DecoySpec] = {}
        seen: dict[tuple[str, str], int] = {}
        for spec in specs:
            probe = Decoy(spec, -1, FILE, random.Random(0))
            n = seen.get(probe.key, 0)
            seen[probe.key] = n + 1
            wanted[(probe.key, n)] = spec
        current: dict[tuple[tuple[str, str], int], Decoy] = {}
        seen.clear()
        for decoy in self._decoys.values():
            if decoy.source != FILE:
                continue
            n = seen.get(decoy.key, 0)
            seen[decoy.key] = n + 1
            current[(decoy.key, n)] = decoy
        kept = removed = 0
        for k, decoy in current.items():
            if wanted.get(k) == decoy.spec and decoy.row is not None:
                del wanted[k]
                kept += 1
            else:
                self._retire(decoy)
                removed += 1
        for spec in wanted.values():
            self.add(spec, source=FILE)
        return kept, removed, len(wanted)

    def add(self, spec: DecoySpec, *, source: str = CONTROL) -> Decoy:
        """A new decoy, in the table at once, "connected" ``spec.age`` seconds ago."""
        index = next(self._made)
        decoy = Decoy(spec, index, source, random.Random(f"{self._seed}/{index}/{spec.client}/{spec.user}"))
        self._decoys[index] = decoy
        now = self._clock()
        created = now - spec.age
        gap = decoy.gap()
        if spec.idle is not None:
            last = now - spec.idle
        elif gap is None:
            last = created
        else:
            last = now - decoy.rng.uniform(0.0, min(spec.age, gap))
        self._spawn(decoy, created, last)
        self.tick()
        return decoy

    def remove(self, client: str | None = None, user: str | None = None) -> list[Decoy]:
        """Retire every decoy matching the client and/or user (case-insensitive; ``\\`` optional)."""
        if not client and not user:
            raise ValueError("name a client, a user, or both")
        ck = unc_client_name(client).upper() if client else None
        uk = user.upper() if user else None
        gone = [
            d for d in self._decoys.values()
            if (ck is None or d.key[0] == ck) and (uk is None or d.key[1] == uk)
        ]
        for decoy in gone:
            self._retire(decoy)
        return gone

    def clear(self) -> None:
        for decoy in list(self._decoys.values()):
            self._retire(decoy)

    def describe(self) -> list[dict[str, Any]]:
        self.tick()
        now = self._clock()
        return [d.describe(now) for d in self._decoys.values()]

    # -- time --------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Play every request and respawn due by now, in time order."""
        now = self._clock()
        events = self._events
        while events and events[0].at <= now:
            event = heapq.heappop(events)
            decoy = event.decoy
            if event.generation != decoy.generation or decoy.retired:
                continue
            if event.kind == _SPEAK:
                row = decoy.row
                if row is None or not row.active:
                    continue
                row.last_active_at = event.at  # MS-SMB2 Session.IdleTime: its last request
                self._schedule_speak(decoy, event.at)
            else:
                decoy.respawn_at = None
                self._spawn(decoy, event.at, event.at)
                log.info("decoy %s %s reconnected", decoy.spec.client, decoy.spec.user)

    def _push(self, at: float, kind: int, decoy: Decoy) -> None:
        heapq.heappush(self._events, _Event(at, next(self._seq), kind, decoy, decoy.generation))

    def _schedule_speak(self, decoy: Decoy, after: float) -> None:
        gap = decoy.gap()
        if gap is not None:
            self._push(after + gap, _SPEAK, decoy)

    def _spawn(self, decoy: Decoy, created: float, last: float) -> None:
        spec = decoy.spec
        row = self.table.add(
            spec.client, spec.user, user_flags=SESS_GUEST if spec.guest else 0, cltype_name=spec.client_type,
            transport=spec.transport, on_close=lambda row: self._deleted(decoy, row), synthetic=True,
            created_at=created,
        )
        self._connect(decoy, row)
        row.last_active_at = last
        decoy.row = row
        self._schedule_speak(decoy, last)

    def _connect(self, decoy: Decoy, row: Session) -> None:
        """The decoy's tree connect and its opens: plausible files on that share (NetrFileEnum lists
        them, NetrFileClose closes them like any other)."""
        spec = decoy.spec
        share = spec.share or ("Users" if spec.opens else "IPC$")
        is_ipc = share.upper() == "IPC$"
        tree = row.tree_connect(share, STYPE_IPC if is_ipc else STYPE_DISKTREE)
        user = spec.user.split("\\")[-1].rstrip("$")
        for i in range(spec.opens):
            if is_ipc:
                path = "\\PIPE\\" + ("srvsvc", "wkssvc", "lsarpc", "samr")[i % 4]
            else:
                name = decoy.rng.choice(_FILE_NAMES)
                path = f"C:\\Shares\\{share}\\{user}\\{name}" + (f" ({i})" if i >= len(_FILE_NAMES) else "")
            row.open(path, tree=tree)

    def _deleted(self, decoy: Decoy, row: Session) -> None:
        """NetrSessionDel took this decoy's row (it is already out of the table)."""
        if decoy.row is not row:
            return
        decoy.row = None
        decoy.deletions += 1
        decoy.generation += 1
        if decoy.spec.respawn is not None and not decoy.retired:
            decoy.respawn_at = self._clock() + decoy.spec.respawn
            self._push(decoy.respawn_at, _RESPAWN, decoy)
        log.info(
            "decoy %s %s deleted by NetrSessionDel%s", decoy.spec.client, decoy.spec.user,
            f"; back in {decoy.spec.respawn:g} s" if decoy.spec.respawn is not None else "",
        )
        if self.on_deleted is not None:
            self.on_deleted(decoy)

    def _retire(self, decoy: Decoy) -> None:
        decoy.retired = True
        decoy.generation += 1
        row, decoy.row = decoy.row, None
        if row is not None:
            row.remove()
        self._decoys.pop(decoy.index, None)
