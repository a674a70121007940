"""The fleet: who is logged on where, across many servers, over time.

The library face of ``netsession scan``, ``watch`` and ``history``: :func:`scan` is an async iterator of
:class:`HostResult` (a :class:`Verdict`, the level that answered, the sessions), fed by
:func:`iter_targets` (names, addresses, ``[v6]``, ``host:port``, CIDR ranges, read lazily).
"""

from netsession.fleet.results import HostResult, Session, Verdict
from netsession.fleet.scan import Scanner, ScanOptions, scan
from netsession.fleet.targets import HostTarget, TargetError, iter_targets, parse_target

__all__ = [
    "HostResult",
    "HostTarget",
    "ScanOptions",
    "Scanner",
    "Session",
    "TargetError",
    "Verdict",
    "iter_targets",
    "parse_target",
    "scan",
]
