"""``--resume STATE``: the finished hosts of a scan, one JSON line each, appended as each host finishes.

The first line identifies the file (``{"type": "scan-state", "version": 1}``); every other line is a host
result with its sessions (:meth:`~netsession.fleet.results.HostResult.to_state`). A scan given an existing
state file loads it, skips the hosts in it and appends the new ones: a killed or interrupted scan loses
at most the hosts that were in flight. A torn last line (the process died mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final, TextIO

from netsession.fleet.results import HostResult

STATE_TYPE: Final = "scan-state"
STATE_VERSION: Final = 1


class StateError(Exception):
    """A state file that cannot be used (one line for the user)."""


class ScanState:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.finished: dict[str, HostResult] = {}
        self._stream: TextIO | None = None

    def load(self) -> None:
        """Read the finished hosts, if the file exists."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(f"cannot read the state file {self.path}: {exc.strerror or exc}") from None
        lines = text.splitlines()
        if not lines:
            return
        try:
            head = json.loads(lines[0])
        except ValueError:
            head = None
        if not isinstance(head, dict) or head.get("type") != STATE_TYPE:
            raise StateError(f"{self.path} is not a netsession scan state file")
        if int(head.get("version", 0)) > STATE_VERSION:
            raise StateError(
                f"{self.path} was written by a newer netsession (state version {head['version']})"
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                result = HostResult.from_state(json.loads(line))
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    break  # torn last line
                raise StateError(f"{self.path}:{number}: not a host result") from None
            self.finished[result.key] = result

    def open(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._stream = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise StateError(f"cannot write the state file {self.path}: {exc.strerror or exc}") from None
        if new:
            self._stream.write(json.dumps({"type": STATE_TYPE, "version": STATE_VERSION}) + "\n")
        elif not self.path.read_bytes().endswith(b"\n"):
            self._stream.write("\n")  # after a torn line
        self._stream.flush()

    def add(self, result: HostResult) -> None:
        assert self._stream is not None
        self._stream.write(json.dumps(result.to_state(), ensure_ascii=False) + "\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self.finished[result.key] = result

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
