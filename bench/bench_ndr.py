"""NetrSessionEnum response: encode and decode N sessions, netsession beside impacket, same data.

Run by hand (not a test):  .venv/bin/python bench/bench_ndr.py [--impacket-max N] [--repeat R]

Prints, per level and size, the best of R runs (wall seconds) of netsession's encode and decode, and of
impacket's (`srvs.NetrSessionEnumResponse().getData()` / `.fromString()`), which is only run up to
--impacket-max sessions (default 20,000: it is superlinear, ~24 s for 20,000 level-502 records).
Decoded values are checked equal to the input on both sides, so both do the whole job.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from netsession.records import SESSION_INFO_502, SessionInfo, project
from netsession.wire.srvsvc import NetrSessionEnumResponse

SIZES = (1_000, 10_000, 20_000, 100_000)
LEVELS = (10, 502)


def sessions(n: int) -> list[SESSION_INFO_502]:
    """n sessions as a busy file server has them: distinct client addresses, a few hundred users."""
    return [
        SESSION_INFO_502(
            f"\\\\10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", f"user{i % 300:03d}",
            i % 9, 3600 + i, i % 600, 0, "", "\\Device\\NetbiosSmb",
        )
        for i in range(n)
    ]


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def impacket_response(level: int, entries: list[SessionInfo]) -> Any:
    from impacket.dcerpc.v5 import srvs

    resp = srvs.NetrSessionEnumResponse()
    resp["InfoStruct"]["Level"] = level
    union = resp["InfoStruct"]["SessionInfo"]
    union["tag"] = level
    container = union[f"Level{level}"]
    container["EntriesRead"] = len(entries)
    item_cls = {10: srvs.SESSION_INFO_10, 502: srvs.SESSION_INFO_502}[level]
    for e in entries:
        item = item_cls()
        for name, value in zip(e._fields, e):
            item[name] = value + "\x00" if isinstance(value, str) else value
        container["Buffer"].append(item)
    resp["TotalEntries"] = len(entries)
    resp["ResumeHandle"] = None
    resp["ErrorCode"] = 0
    return resp


def impacket_decode(level: int, data: bytes) -> list[tuple[Any, ...]]:
    from impacket.dcerpc.v5 import srvs

    resp = srvs.NetrSessionEnumResponse()
    resp.fromString(data)
    buf = resp["InfoStruct"]["SessionInfo"][f"Level{level}"]["Buffer"]
    fields = {10: ("sesi10_cname", "sesi10_username", "sesi10_time", "sesi10_idle_time")}.get(level)
    if fields is None:
        fields = tuple(SESSION_INFO_502._fields)
    return [tuple(item[f][:-1] if isinstance(item[f], str) else item[f] for f in fields) for item in buf]


def measure(level: int, n: int, repeat: int, impacket_max: int) -> str:
    """One row: our encode/decode of n sessions at this level, and impacket's where n is small enough."""
    entries = [project(s, level) for s in sessions(n)]
    response = NetrSessionEnumResponse(level, entries, n, None, 0)
    enc, data = best(repeat, response.encode)
    dec, back = best(repeat, lambda: NetrSessionEnumResponse.decode(data))
    assert back.entries == entries
    row = f"{level:>5} {n:>8} {len(data):>10} | {enc:>9.4f} {dec:>9.4f} {enc + dec:>9.4f} | "
    if n > impacket_max:
        return row + f"{'-':>12} {'-':>12} | {'-':>7} {'-':>7}"
    ienc, idata = best(1, lambda: impacket_response(level, entries).getData())
    assert NetrSessionEnumResponse.decode(idata).entries == entries
    idec, iback = best(1, lambda: impacket_decode(level, data))
    assert iback == [tuple(e) for e in entries]
    return row + f"{ienc:>12.3f} {idec:>12.3f} | {ienc / enc:>7.0f} {idec / dec:>7.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impacket-max", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES)
    args = ap.parse_args()

    print(f"# Python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    print(f"{'level':>5} {'sessions':>8} {'bytes':>10} | {'ours enc':>9} {'ours dec':>9} {'ours both':>9} | "
          f"{'impacket enc':>12} {'impacket dec':>12} | {'enc ×':>7} {'dec ×':>7}")
    for level in LEVELS:
        for n in args.sizes:
            print(measure(level, n, args.repeat, args.impacket_max), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
