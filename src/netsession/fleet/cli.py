"""``netsession scan`` (and, from :mod:`netsession.fleet.watch_cli`, ``watch`` and ``history``).

Exit status of the fleet commands:

====  =========================================================================================
0     every host answered (sessions, no-sessions, level-limited)
1     the operation failed: no host answered, or a fatal error (a database that does not connect)
2     usage: bad options, an unreadable target file, no target at all
3     partial success: some hosts answered, some did not (hardened, timeout, unreachable, ...)
130   interrupted (Ctrl-C); with ``--resume STATE`` the finished hosts are kept
====  =========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

from netsession import exitcodes
from netsession.client.pool import Credentials, credentials_from_env, split_user
from netsession.errors import NetApiError
from netsession.fleet.output import CsvOutput, JsonlOutput, Output, Summary, TableOutput
from netsession.fleet.progress import NoProgress, Progress, make_progress
from netsession.fleet.results import HostResult
from netsession.fleet.scan import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE, ScanOptions, scan
from netsession.fleet.state import ScanState, StateError
from netsession.fleet.targets import (
    DEFAULT_PORT,
    HostTarget,
    TargetFileError,
    check_files,
    count_targets,
    iter_targets,
)
from netsession.records import MAX_PREFERRED_LENGTH, SESSION_LEVELS

# The project's exit statuses (netsession.exitcodes), as the fleet commands use them.
EXIT_OK: Final = exitcodes.OK
EXIT_FAILED: Final = exitcodes.FAILED
EXIT_USAGE: Final = exitcodes.USAGE
EXIT_PARTIAL: Final = exitcodes.PARTIAL
EXIT_INTERRUPTED: Final = exitcodes.INTERRUPTED
FORMATS: Final = ("table", "jsonl", "csv", "bloodhound")


class CommandError(Exception):
    """A usage mistake: ``netsession: message``, exit status 2 (netsession.cli prints it)."""


# -- shared options ------------------------------------------------------------------------------------


def duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``90d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    t = text.strip().lower()
    factor = 1
    if t and t[-1] in units:
        factor, t = units[t[-1]], t[:-1]
    try:
        value = float(t) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 30s, 15m, 2h, 90d)") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"not a positive duration: {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def scan_options_parser() -> argparse.ArgumentParser:
    """Targets, credentials and the scan's knobs: shared by ``scan`` and ``watch``."""
    from netsession.cli import CONNECTION_OPTIONS

    parent = argparse.ArgumentParser(add_help=False, parents=[CONNECTION_OPTIONS], allow_abbrev=False)
    parent.add_argument("targets", nargs="*", metavar="TARGET",
                        help="name, address, [v6], host:port or CIDR range (10.0.0.0/24)")
    parent.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                        help="read targets from FILE, one or more a line, # comments ('-': stdin); "
                        "repeatable")
    g = parent.add_argument_group("scan options")
    g.add_argument("--level", type=int, choices=sorted(SESSION_LEVELS), default=10,
                   help="level asked first (default 10); steps to 1 and 0 on ERROR_INVALID_LEVEL")
    g.add_argument("--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY, metavar="N",
                   help=f"hosts scanned at once (default {DEFAULT_CONCURRENCY})")
    g.add_argument("--deadline", type=duration, default=DEFAULT_DEADLINE, metavar="SECONDS",
                   help=f"hard limit per host over DNS, TCP, logon, bind and every call (default "
                   f"{DEFAULT_DEADLINE:g} s)")
    g.add_argument("--page-size", type=positive_int, default=MAX_PREFERRED_LENGTH, metavar="BYTES",
                   help="PreferedMaximumLength of each call (default: everything at once); answers are "
                   "paged with ERROR_MORE_DATA either way")
    g.add_argument("--exclude-self", action="store_true", help="drop the scanner's own session")
    g.add_argument("--no-names", action="store_true", help="do not reverse-resolve client addresses")
    g.add_argument("--name-deadline", type=duration, default=1.0, metavar="SECONDS",
                   help="limit of each reverse lookup (default 1 s)")
    return parent


def credentials_from_args(args: argparse.Namespace, stdin: TextIO) -> Credentials:
    """The credentials of ``-U`` / ``--password-stdin`` / ``--pw-nt-hash`` / ``--kerberos`` / env."""
    base = credentials_from_env()
    username, domain, password, nt_hash = base.username, base.domain, base.password, base.nt_hash
    if args.auth is not None:
        user_part, sep, pw_part = args.auth.partition("%")
        user_domain, username = split_user(user_part)
        domain = user_domain or domain
        if not username:
            raise CommandError("-U needs a user name")
        password, nt_hash = (pw_part, None) if sep else (None, None)
        if not sep:
            if args.password_stdin:
                password = stdin.readline().rstrip("\r\n")
            elif os.environ.get("NETSESSION_PASSWORD"):
                password = os.environ["NETSESSION_PASSWORD"]
            elif not args.kerberos and stdin.isatty():
                password = getpass.getpass(f"Password for [{username}]: ")
    elif args.password_stdin:
        password, nt_hash = stdin.readline().rstrip("\r\n"), None
    if args.pw_nt_hash and password is not None:
        password, nt_hash = None, password
    try:
        return Credentials(
            username=username, password=password, domain=domain, nt_hash=nt_hash,
            encrypt=args.encrypt or base.encrypt,
            auth_protocol="kerberos" if args.kerberos else base.auth_protocol,
        )
    except NetApiError as exc:
        raise CommandError(exc.strerror) from None


def build_scan_options(args: argparse.Namespace, stdin: TextIO) -> ScanOptions:
    return ScanOptions(
        credentials=credentials_from_args(args, stdin),
        level=args.level,
        concurrency=args.concurrency,
        deadline=args.deadline,
        page_size=args.page_size,
        resolve_names=not args.no_names,
        name_deadline=args.name_deadline,
        exclude_self=args.exclude_self,
    )


def default_port(args: argparse.Namespace) -> int:
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise CommandError(f"--port {args.port}: not a TCP port")
        return int(args.port)
    env = os.environ.get("NETSESSION_PORT")
    return int(env) if env and env.isdigit() else DEFAULT_PORT


def targets_from_args(args: argparse.Namespace, summary: Summary | None = None) -> Iterator[HostTarget]:
    """The targets, lazily; unparseable ones reported on stderr (one line each) and skipped."""
    if not args.targets and not args.file:
        raise CommandError("no targets: name some, or give -f FILE")
    try:
        check_files(args.file)
    except TargetFileError as exc:
        raise CommandError(str(exc)) from None

    def report(line: str) -> None:
        sys.stderr.write(f"netsession: skipped target {line}\n")
        if summary is not None:
            summary.skipped_targets += 1

    return iter_targets(args.targets, args.file, default_port=default_port(args), on_error=report)


def exit_status(summary: Summary) -> int:
    if summary.hosts == 0:
        return EXIT_FAILED
    if summary.answered == summary.hosts:
        return EXIT_OK
    return EXIT_PARTIAL if summary.answered else EXIT_FAILED


# -- scan ------------------------------------------------------------------------------------------------


class _ConsoleStream:
    """stdout seen through the progress bar's console when both are the same terminal."""

    def __init__(self, progress: Progress | NoProgress, stream: TextIO) -> None:
        self.progress = progress
        self.stream = stream

    def write(self, text: str) -> int:
        self.progress.print(text, self.stream)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def _open_output(args: argparse.Namespace, stream: Any) -> Output | None:
    fmt = args.format
    if fmt is None:
        if args.summary:
            return None
        fmt = "table" if stream.isatty() else "jsonl"
    if fmt == "jsonl":
        return JsonlOutput(stream)
    if fmt == "csv":
        return CsvOutput(stream)
    if fmt == "bloodhound":
        from netsession.fleet.opengraph import OpenGraphOutput

        return OpenGraphOutput(stream, domain=args.domain)
    return TableOutput(stream)


def cmd_scan(args: argparse.Namespace) -> int:
    summary = Summary()
    options = build_scan_options(args, sys.stdin)
    targets = targets_from_args(args, summary)
    state: ScanState | None = None
    if args.resume:
        state = ScanState(args.resume)
        try:
            state.load()
            state.open()
        except StateError as exc:
            raise CommandError(str(exc)) from None
    out_file: TextIO | None = None
    if args.output and args.output != "-":
        try:
            out_file = open(Path(args.output), "w", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    stdout: TextIO = out_file or sys.stdout
    total = None if args.no_progress else count_targets(args.targets, args.file)
    progress = make_progress(total, enabled=not args.no_progress)
    stream: Any = _ConsoleStream(progress, stdout) if isinstance(progress, Progress) else stdout
    output = _open_output(args, stream)
    interrupted = False
    try:
        if state is not None:
            for earlier in state.finished.values():
                summary.add(earlier, earlier=True)
                if output is not None and args.format == "bloodhound":
                    output.write(earlier)
        progress.start()
        try:
            interrupted = asyncio.run(_run_scan(targets, options, state, output, summary, progress))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.stop()
        if output is not None:
            output.close()  # an interrupted bloodhound export holds the hosts that finished
    finally:
        if state is not None:
            state.close()
        if out_file is not None:
            out_file.close()
    if args.summary:
        text = summary.render()
        (sys.stdout if output is None else sys.stderr).write(text)
    if interrupted:
        where = f"; continue with --resume {args.resume}" if args.resume else ""
        sys.stderr.write(f"netsession: interrupted after {summary.hosts} hosts{where}\n")
        return EXIT_INTERRUPTED
    return exit_status(summary)


async def _run_scan(
    targets: Iterator[HostTarget],
    options: ScanOptions,
    state: ScanState | None,
    output: Output | None,
    summary: Summary,
    progress: Progress | NoProgress,
) -> bool:
    """Run the scan; True if it was interrupted (Ctrl-C / SIGTERM)."""
    import signal
    import time

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    skip = None
    if state is not None:
        finished = state.finished
        skip = lambda t: t.key in finished  # noqa: E731
    started = time.monotonic()
    try:
        async for result in scan(targets, options, skip=skip):
            _record(result, state, output, summary, progress)
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        summary.elapsed += time.monotonic() - started
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return stopped


def _record(
    result: HostResult, state: ScanState | None, output: Output | None, summary: Summary,
    progress: Progress | NoProgress,
) -> None:
    if state is not None:
        state.add(result)
    summary.add(result)
    if output is not None:
        output.write(result)
    progress.advance(result)


def register(subparsers: Any) -> None:
    """Add ``scan`` (and ``watch``, ``history``) to the ``netsession`` command."""
    p = subparsers.add_parser(
        "scan", parents=[scan_options_parser()], allow_abbrev=False,
        help="enumerate the sessions of many servers, a verdict per host",
        description="Ask every target for its sessions (NetrSessionEnum level 10, stepping to 1 and 0), "
        "many at a time, each within one hard deadline; a verdict per host (sessions, no-sessions, "
        "level-limited, hardened, access-denied, logon-failed, unreachable, timeout, not-smb, "
        "protocol-error, error). Exit status: 0 all answered, 3 some did, 1 none did, 2 usage, "
        "130 interrupted.",
    )
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table (default on a terminal), jsonl (default otherwise), csv, or bloodhound "
                   "(BloodHound CE OpenGraph JSON of HasSession edges)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE instead of stdout")
    p.add_argument("--summary", action="store_true",
                   help="count the verdicts at the end (alone: only the summary, on stdout; with --format: "
                   "on stderr)")
    p.add_argument("--resume", metavar="STATE",
                   help="record finished hosts in STATE; if it exists, skip the hosts already in it")
    p.add_argument("--domain", metavar="DOMAIN",
                   help="AD domain of the user names, for --format bloodhound (ALICE@DOMAIN)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    p.set_defaults(func=cmd_scan)
    from netsession.fleet.watch_cli import register as register_watch

    register_watch(subparsers)
