r"""Client addresses and names: a session's ``\\10.0.0.5`` split into address and (reverse) name.

:class:`ReverseResolver` asks the system resolver (``getnameinfo`` with NI_NAMEREQD, in worker threads:
DNS PTR, /etc/hosts, NSS) for the name of each client address, at most ``concurrency`` at a time, each
within its own small ``deadline``; answers (and failures) are cached, and concurrent asks for one address
share one lookup. An address that does not resolve keeps its session: the name is just None.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Final

DEFAULT_CONCURRENCY: Final = 16
DEFAULT_DEADLINE: Final = 1.0
# Cached answers kept at most (an estate has far fewer distinct clients).
CACHE_LIMIT: Final = 100_000


def split_cname(cname: str | None) -> tuple[str | None, str | None]:
    r"""``\\10.0.0.5`` -> ("10.0.0.5", None); ``\\[::1]`` -> ("::1", None); ``\\WS1`` -> (None, "WS1")."""
    if not cname:
        return None, None
    bare = cname[2:] if cname.startswith("\\\\") else cname
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    try:
        return str(ipaddress.ip_address(bare.split("%", 1)[0])), None
    except ValueError:
        return None, bare or None


class ReverseResolver:
    """Bounded, cached, deadline-limited reverse lookups."""

    def __init__(
        self, *, concurrency: int = DEFAULT_CONCURRENCY, deadline: float = DEFAULT_DEADLINE
    ) -> None:
        self.deadline = deadline
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rdns")
        self._cache: dict[str, asyncio.Future[str | None]] = {}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def name(self, address: str) -> str | None:
        """The name of ``address``, or None (no name, or no answer within the deadline)."""
        future = self._cache.get(address)
        if future is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            future = self._cache[address] = asyncio.get_running_loop().create_future()
            try:
                result = await self._lookup(address)
            except BaseException:
                future.set_result(None)
                raise
            future.set_result(result)
            return result
        return await asyncio.shield(future)

    async def _lookup(self, address: str) -> str | None:
        loop = asyncio.get_running_loop()
        async with self._slots:
            try:
                async with asyncio.timeout(self.deadline):
                    host, _ = await loop.run_in_executor(
                        self._executor, socket.getnameinfo, (address, 0), socket.NI_NAMEREQD
                    )
            except (OSError, TimeoutError, UnicodeError):
                return None
        return host if host != address else None
