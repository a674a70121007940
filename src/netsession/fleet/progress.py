"""The progress bar on a terminal (rich): hosts done / total, sessions found, verdict counts, rate.

Only when standard error is a terminal; nothing of it otherwise (piped or redirected output stays clean).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from netsession.fleet.results import HostResult


class NoProgress:
    def start(self) -> None:
        pass

    def advance(self, result: HostResult) -> None:
        pass

    def print(self, text: str, stream: TextIO) -> None:
        stream.write(text)
        stream.flush()

    def stop(self) -> None:
        pass


class Progress:
    """A rich progress bar on stderr; rows meant for the same terminal are printed above it."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(file=stream, highlight=False)
        self._progress: Any = RichProgress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sessions]} sessions"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[verdicts]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("scan", total=total, sessions=0, rate="", verdicts="")
        self._sessions = 0
        self._verdicts: Counter[str] = Counter()

    def start(self) -> None:
        self._progress.start()

    def advance(self, result: HostResult) -> None:
        self._sessions += len(result.sessions)
        self._verdicts[result.verdict.value] += 1
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        done = task.completed + 1
        rate = f"{done / elapsed:.0f} hosts/s" if elapsed > 0 else ""
        verdicts = " ".join(f"{k}={v}" for k, v in self._verdicts.most_common())
        self._progress.update(self._task, advance=1, sessions=self._sessions, rate=rate, verdicts=verdicts)

    def print(self, text: str, stream: TextIO) -> None:
        if stream.isatty() and self.console.file.isatty():
            self.console.out(text.rstrip("\n"), highlight=False)
        else:
            stream.write(text)
            stream.flush()

    def stop(self) -> None:
        self._progress.stop()


def make_progress(total: int | None, *, enabled: bool, stream: TextIO | None = None) -> Progress | NoProgress:
    out = stream if stream is not None else sys.stderr
    if not enabled or not out.isatty():
        return NoProgress()
    return Progress(total, out)
