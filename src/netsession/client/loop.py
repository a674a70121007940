"""One background event loop that runs the asyncio SMB engine for the blocking API.

The sync functions (``netsession``, ``win32net``, ``lmshare``, the CLI) call :func:`run` with a coroutine;
it runs on a daemon thread's loop and the caller waits for its result. One engine serves both faces:
the same :class:`~netsession.client.smb.SmbPipe` objects, the same deadlines. The thread starts on first
use; a process that only talks to the local Unix socket never starts it.

Why a background loop rather than a second, blocking driver over the sans-I/O connection: one code path
(connect, logon, tree, open, read-ahead, deadline) for both APIs, and the blocking face costs one thread
hand-off per round trip — measured in ``bench/bench_client.py`` (see the README's performance section).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def engine_loop() -> asyncio.AbstractEventLoop:
    """The background loop, started if need be."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=_serve, args=(loop, ready), name="netsession-smb", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def submit(coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
    """Start ``coro`` on the background loop; its future (``cancel()`` cancels the coroutine)."""
    loop = engine_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("the blocking netsession API was called from its own engine thread")
    return asyncio.run_coroutine_threadsafe(coro, loop)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on the background loop and wait for its result (or exception)."""
    return wait(submit(coro))


def wait(future: concurrent.futures.Future[_T]) -> _T:
    """The result of a :func:`submit` future; an interrupted wait cancels the coroutine."""
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise
    except BaseException:
        if not future.done():  # KeyboardInterrupt while waiting: stop the coroutine too
            future.cancel()
        raise


def in_engine_thread() -> bool:
    """Whether the caller runs on the engine loop's thread."""
    return _thread is not None and threading.current_thread() is _thread


def call_soon(callback: Any, *args: Any) -> None:
    """Run a plain callback on the loop (e.g. closing a transport), without waiting."""
    loop = _loop
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(callback, *args)


__all__ = ["call_soon", "engine_loop", "in_engine_thread", "run", "submit", "wait"]
