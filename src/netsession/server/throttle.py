"""Brute-force throttling of failed logons, per source address and per account, and optional lockout.

Windows Server 2025's SMB authentication rate limiter adds at least 2 s to every failed NTLM logon. This
server does the same after a few free failures, in two ways that together bound the guessing rate:

* **per source address**: once a source has failed more than ``free_failures`` times within ``window``
  seconds, each of its failures is answered only after ``delay`` seconds, and its next credentials (from
  any of its connections) are checked no sooner than ``delay`` after the last — so one source gets at
  most one guess per ``delay`` seconds however many connections it opens;
* **per account**: once an account has failed more than ``free_failures`` times within ``window``, each
  failure for it (from any source) is answered after ``delay``; a right password is answered at once,
  so the account's owner, logging on from another address, is not held up by someone else's guesses.

With ``lockout_threshold`` N > 0 (``--lockout N/WINDOW``), an account with N failures within
``lockout_window`` seconds is locked out: every logon to it, right password or not, is answered
STATUS_ACCOUNT_LOCKED_OUT until its failures age out of the window (Windows' "account lockout threshold"
and "reset account lockout counter after"). Without it nobody is ever locked out.

The tables are bounded: at most ``MAX_TRACKED`` sources and as many accounts (names the client claims,
known or not) are remembered, the least recently failing forgotten first, each with at most a few
timestamps. No clock is read but the one given; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DELAY",
    "DEFAULT_FREE_FAILURES",
    "DEFAULT_WINDOW",
    "LogonThrottle",
    "ThrottleSettings",
    "parse_lockout",
]

# Windows Server 2025: "at least 2 seconds" per failed NTLM logon (FACTS §7).
DEFAULT_DELAY = 2.0
# Failures answered at once before the delay starts: a user mistyping a password a few times is not
# slowed down; an attacker is after the fifth guess.
DEFAULT_FREE_FAILURES = 5
# How long a failure counts (10 minutes; Windows' default lockout observation window is 10 minutes too).
DEFAULT_WINDOW = 600.0
# How many sources and how many account names are remembered at most (memory stays bounded whatever
# addresses or user names an attacker sends).
MAX_TRACKED = 65536


@dataclass(frozen=True)
class ThrottleSettings:
    """The throttle's knobs (see the module docstring); ``delay`` 0 turns throttling off."""

    delay: float = DEFAULT_DELAY
    free_failures: int = DEFAULT_FREE_FAILURES
    window: float = DEFAULT_WINDOW
    lockout_threshold: int = 0
    lockout_window: float = DEFAULT_WINDOW


class _Failures:
    """The recent failures of one source or one account (at most ``cap`` timestamps)."""

    __slots__ = ("next_slot", "times")

    def __init__(self, cap: int) -> None:
        self.times: deque[float] = deque(maxlen=cap)
        self.next_slot = 0.0  # a source's next credentials are checked no sooner than this

    def count(self, now: float, window: float) -> int:
        since = now - window
        return sum(1 for t in self.times if t > since)


class LogonThrottle:
    """Counts failed logons; says how long to hold answers and when a source may try again."""

    def __init__(self, settings: ThrottleSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._cap = max(settings.free_failures + 1, settings.lockout_threshold, 1)
        self._sources: OrderedDict[str, _Failures] = OrderedDict()
        self._accounts: OrderedDict[str, _Failures] = OrderedDict()

    def _record(self, table: OrderedDict[str, _Failures], key: str) -> _Failures:
        entry = table.get(key)
        if entry is None:
            entry = table[key] = _Failures(self._cap)
            while len(table) > MAX_TRACKED:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        return entry

    def _throttled(self, entry: _Failures | None, now: float) -> bool:
        s = self.settings
        return entry is not None and s.delay > 0 and entry.count(now, s.window) >= s.free_failures

    def admission_delay(self, source: str) -> float:
        """Seconds before credentials from ``source`` may be checked; 0 reserves the slot (the source's
        next check then waits ``delay``)."""
        now = self._clock()
        entry = self._sources.get(source)
        if not self._throttled(entry, now):
            return 0.0
        assert entry is not None
        if entry.next_slot > now:
            return entry.next_slot - now
        entry.next_slot = now + self.settings.delay
        return 0.0

    def failed(self, source: str, account: str, *, count_for_account: bool = True) -> float:
        """A failed logon from ``source`` for ``account`` (the claimed name; "" if none): the seconds to
        hold its answer back."""
        now = self._clock()
        s = self.settings
        src = self._record(self._sources, source)
        delay = s.delay if self._throttled(src, now) else 0.0
        src.times.append(now)
        if delay:
            src.next_slot = max(src.next_slot, now + delay)
        if account and count_for_account:
            acct = self._record(self._accounts, account.casefold())
            if self._throttled(acct, now):
                delay = s.delay
            acct.times.append(now)
        return delay

    def succeeded(self, account: str) -> None:
        """A right password resets the account's count (as Windows resets badPwdCount); a source's
        failures stay counted (a valid account must not launder an attacker's guesses)."""
        self._accounts.pop(account.casefold(), None)

    def locked_out(self, account: str) -> bool:
        """Whether ``account`` is locked out (only with a lockout threshold)."""
        s = self.settings
        if s.lockout_threshold <= 0:
            return False
        entry = self._accounts.get(account.casefold())
        return entry is not None and entry.count(self._clock(), s.lockout_window) >= s.lockout_threshold

    @property
    def tracked(self) -> tuple[int, int]:
        """How many sources and accounts are remembered (for tests and the bench)."""
        return len(self._sources), len(self._accounts)


def parse_lockout(value: str) -> tuple[int, float]:
    """``N/WINDOW`` (failures, seconds) as in ``--lockout 10/600``."""
    count, sep, window = value.partition("/")
    try:
        n, w = int(count), float(window)
    except ValueError:
        n, w = 0, 0.0
    if not sep or n < 1 or not w > 0:
        raise ValueError(f"expected N/SECONDS with N >= 1 and SECONDS > 0 (e.g. 10/600), got {value!r}")
    return n, w
