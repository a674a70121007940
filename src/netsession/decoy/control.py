"""The decoy control channel: ``netsession decoy add/remove/list`` talking to a running server.

A Unix socket beside the srvsvc one, ``<state dir>/decoy.sock`` (mode 0600; the peer must be root or the
server's own user, checked with SO_PEERCRED). One request per line, one answer per line, both JSON:

====================================================  ======================================================
request                                               answer
====================================================  ======================================================
``{"op": "list"}``                                    ``{"ok": true, "decoys": [{...}, ...]}``
``{"op": "add", "session": {<a sessions-file entry>}}``  ``{"ok": true, "added": 1}``
``{"op": "remove", "client": "..", "user": ".."}``    ``{"ok": true, "removed": N}``
``{"op": "reload"}``                                  ``{"ok": true, "kept": K, "removed": R, "added": A}``
anything wrong                                        ``{"ok": false, "error": "one line"}``
====================================================  ======================================================

Bounded: a request line is at most :data:`MAX_REQUEST` bytes (longer: an error and the connection
closes), at most :data:`MAX_CLIENTS` connections at a time, each for at most :data:`CLIENT_TIMEOUT`
seconds; a peer that does not read its answers has its reading paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from netsession.decoy.sessions import DecoySet
from netsession.decoy.spec import SpecError, parse_spec

__all__ = ["CONTROL_SOCKET_NAME", "ControlError", "ControlHandler", "ControlServer", "request"]

log = logging.getLogger("netsession.decoy")

CONTROL_SOCKET_NAME: Final = "decoy.sock"
MAX_REQUEST: Final = 64 * 1024
MAX_CLIENTS: Final = 16
CLIENT_TIMEOUT: Final = 10.0


class ControlError(Exception):
    """The control channel could not be used, or the server refused the request (one line)."""


class ControlHandler:
    """Sans-I/O: one request object in, one answer object out."""

    def __init__(self, decoys: DecoySet, reload: Callable[[], tuple[int, int, int]] | None = None) -> None:
        self.decoys = decoys
        self.reload = reload

    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"ok": False, "error": f"not a JSON request: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object with 'op'"}
        try:
            return self.handle(request)
        except (ValueError, SpecError) as exc:
            return {"ok": False, "error": str(exc)}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "list":
            return {"ok": True, "decoys": self.decoys.describe()}
        if op == "add":
            spec = parse_spec(request.get("session"))
            self.decoys.add(spec)
            log.info("decoy %s %s added over the control socket", spec.client, spec.user)
            return {"ok": True, "added": 1}
        if op == "remove":
            client, user = request.get("client"), request.get("user")
            if not (client is None or isinstance(client, str)) or not (user is None or isinstance(user, str)):
                raise ValueError("'client' and 'user' are strings")
            gone = self.decoys.remove(client, user)
            log.info("%d decoys removed over the control socket", len(gone))
            return {"ok": True, "removed": len(gone)}
        if op == "reload":
            if self.reload is None:
                raise ValueError("the server has no sessions file to reload")
            kept, removed, added = self.reload()
            return {"ok": True, "kept": kept, "removed": removed, "added": added}
        raise ValueError(f"unknown op {op!r} (list, add, remove, reload)")


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    return int(struct.unpack("3i", creds)[1])


class _ControlProtocol(asyncio.Protocol):
    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        uid = _peer_uid(transport.get_extra_info("socket"))
        if uid not in (0, os.geteuid()) or len(self.server.clients) >= MAX_CLIENTS:
            log.warning("decoy control: refusing a connection (uid %s)", uid)
            transport.abort()
            self.transport = None
            return
        self.server.clients.add(self)
        self.timer = asyncio.get_running_loop().call_later(CLIENT_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            answer = self.server.handler.handle_line(line)
            transport.write(json.dumps(answer).encode() + b"\n")
        if len(self.buffer) > MAX_REQUEST:
            refusal = {"ok": False, "error": f"request over {MAX_REQUEST} bytes"}
            transport.write(json.dumps(refusal).encode() + b"\n")
            transport.close()

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server.clients.discard(self)
        self.transport = None


class ControlServer:
    """The asyncio driver: the socket at ``path`` answering with ``handler`` (an Extension of serve)."""

    def __init__(self, handler: ControlHandler, path: Path) -> None:
        self.handler = handler
        self.path = path
        self.clients: set[_ControlProtocol] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _ControlProtocol(self), str(self.path))
        os.chmod(self.path, 0o600)
        log.info("listening on %s (decoy control)", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in list(self.clients):
                if client.transport is not None:
                    client.transport.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(path: Path, message: dict[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Send one request to the control socket at ``path``; its answer (ControlError if refused)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = bytearray()
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise ControlError(f"no decoy control socket at {path} (is netsession serve running?)") from None
        except OSError as exc:
            raise ControlError(f"cannot use the decoy control socket {path}: {exc.strerror or exc}") from None
    if not data:
        raise ControlError(f"the server at {path} closed the control connection (not root or its user?)")
    try:
        answer = json.loads(data)
    except json.JSONDecodeError:
        raise ControlError("the server's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ControlError("the server's answer is not a JSON object")
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "refused")))
    return answer
