r"""The ``netsession`` command: what ``net session`` does on Windows, from any OS, against any server.

::

    netsession list [SERVER] [--level N] [--client \\NAME] [--user NAME] [--format table|json|csv]
    netsession info SERVER CLIENT USER [--level N] [--format table|json|csv]
    netsession delete SERVER [--client \\NAME] [--user NAME] [--yes]

SERVER is ``\\name``, ``name``, an address, ``[v6]``, optionally with ``:port``; ``.`` (or no SERVER for
``list``) is the local computer's netsession server. Connection options on every subcommand: ``-U
[DOMAIN/]USER[%PASSWORD]`` (Samba's convention; the password is asked for on a terminal when left out),
``--password-stdin``, ``--pw-nt-hash``, ``--port``, ``--encrypt``, ``-k``/``--kerberos``; without ``-U`` the
NETSESSION_* environment variables apply (see :mod:`netsession.client.pool`).

Without ``--level``, ``list`` and ``info`` ask for level 2 and step down to 1, then 10, when the server
refuses a level (Samba serves only 0 and 1; a plain user on Windows gets 10 only).

Errors print one line, ``NAME (number): message``, on stderr, and the exit status is 1 (2 for usage).

Other modules add subcommands: each module named in :data:`EXTENSION_MODULES` that exists is imported and
its ``register(subparsers)`` called with the argparse subparsers object; every subparser it adds must
``set_defaults(func=...)`` (or ``handler=...``) with a function taking the parsed arguments and returning
the exit status. If the module defines an exception class ``CommandError``, those are printed as
``netsession: message`` with exit status 2; a NetApiError is printed like the session commands' own.
:data:`CONNECTION_OPTIONS` is a parent parser with the connection options, for subcommands that want them.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

from netsession.clidoc import HelpFormatter
from netsession.client.names import parse_server
from netsession.client.pool import Credentials, credentials_from_env, current_pool, split_user
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    NERR_ClientNameNotFound,
    NERR_UserNotFound,
    NetApiError,
)
from netsession.records import GETINFO_LEVELS, PYWIN32_KEYS, SESS_GUEST, SESSION_LEVELS
from netsession.win32net import NetSessionDel, NetSessionEnum, NetSessionGetInfo

PROG: Final = "netsession"
# Modules that may add subcommands (``serve``, ``user``) with a ``register(subparsers)`` function.
# One module a line; ``netsession.clidoc`` (help, completion) documents whatever the others add.
EXTENSION_MODULES: Final = (
    "netsession.server.cli",
    "netsession.fleet.cli",
    "netsession.decoy.cli",
    "netsession.samba.cli",
    "netsession.clidoc",
)
# Levels tried in turn when the user names none: richest first.
AUTO_LEVELS: Final = (2, 1, 10)
COUNT_LEVELS: Final = (10, 1, 0)
# Refusals that make the next level worth a try.
_STEP_DOWN: Final = frozenset((ERROR_INVALID_LEVEL, ERROR_ACCESS_DENIED))
LOCAL: Final = "."

# Table columns, as ``net session`` shows them: (heading, pywin32 key, width).
TABLE_COLUMNS: Final = (
    ("Computer", "client_name", 21),
    ("User name", "user_name", 20),
    ("Client type", "client_type", 12),
    ("Opens", "num_opens", 6),
    ("Idle time", "idle_time", 9),
)
INFO_LABELS: Final = {
    "client_name": "Computer",
    "user_name": "User name",
    "client_type": "Client type",
    "num_opens": "Opens",
    "active_time": "Active time",
    "idle_time": "Idle time",
    "user_flags": "Guest logon",
    "transport": "Transport",
}


class UsageError(Exception):
    """Bad command-line input found after parsing (exit status 2)."""


def hms(seconds: int) -> str:
    """Seconds as ``HH:MM:SS`` (hours unbounded), as ``net session`` shows idle time."""
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


# -- output ------------------------------------------------------------------------------------------


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in ("idle_time", "active_time"):
        return hms(value)
    return str(value)


def render_table(sessions: list[dict[str, Any]]) -> str:
    """The ``net session`` table: Computer, User name, Client type, Opens, Idle time."""
    if not sessions:
        return "There are no entries in the list.\n"
    widths = [
        max(width, *(len(_cell(key, s.get(key))) for s in sessions)) for _, key, width in TABLE_COLUMNS
    ]
    lines = []
    head = []
    for (title, key, _), width in zip(TABLE_COLUMNS, widths):
        head.append(title.rjust(width) if key in ("num_opens",) else title.ljust(width))
    lines.append(" ".join(head).rstrip())
    lines.append("-" * len(lines[0]))
    for s in sessions:
        row = []
        for (_, key, _), width in zip(TABLE_COLUMNS, widths):
            text = _cell(key, s.get(key))
            row.append(text.rjust(width) if key == "num_opens" else text.ljust(width))
        lines.append(" ".join(row).rstrip())
    return "\n".join(lines) + "\n"


def render_info(session: dict[str, Any]) -> str:
    """One session as ``label  value`` lines."""
    width = max(len(INFO_LABELS[k]) for k in session)
    lines = []
    for key, value in session.items():
        if key == "user_flags":
            text = "Yes" if value & SESS_GUEST else "No"
        else:
            text = _cell(key, value)
        lines.append(f"{INFO_LABELS[key].ljust(width)}  {text}".rstrip())
    return "\n".join(lines) + "\n"


def render_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_csv(sessions: list[dict[str, Any]], level: int) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(PYWIN32_KEYS[level]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sessions)
    return out.getvalue()


# -- connection options ------------------------------------------------------------------------------


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("connection options")
    group.add_argument(
        "-U", "--authentication-user", dest="auth", metavar="[DOMAIN/]USER[%PASSWORD]",
        help="log on as USER (DOMAIN\\USER also works); the password is asked for on a terminal when "
        "left out",
    )
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    group.add_argument(
        "--pw-nt-hash", action="store_true", help="the password given is the NT hash (32 hex digits)"
    )
    group.add_argument("--port", type=int, metavar="PORT", help="TCP port of the SMB server (445)")
    group.add_argument("--encrypt", action="store_true", help="require SMB 3 encryption")
    group.add_argument(
        "-k", "--kerberos", action="store_true", help="log on with Kerberos only (a ticket from kinit)"
    )
    return parent


CONNECTION_OPTIONS: Final = _connection_options()


def _read_password(args: argparse.Namespace, prompt_for: str, stdin: TextIO) -> str | None:
    if args.password_stdin:
        line = stdin.readline()
        return line.rstrip("\r\n")
    env = os.environ.get("NETSESSION_PASSWORD") or os.environ.get("NETSESSION_NT_HASH")
    if env:
        return env
    if args.kerberos:
        return None
    if stdin.isatty():
        return getpass.getpass(f"Password for [{prompt_for}]: ")
    return None


def apply_connection_options(args: argparse.Namespace, server: str | None, stdin: TextIO) -> None:
    """Register the credentials the options describe for ``server`` (nothing for the local computer,
    which knows its caller from the socket)."""
    target = parse_server(server)
    if target is None:
        return
    if args.auth is None and args.port is None and not (args.password_stdin or args.encrypt or args.kerberos):
        return
    base = credentials_from_env()
    username, domain, password, nt_hash = base.username, base.domain, base.password, base.nt_hash
    if args.auth is not None:
        user_part, sep, pw_part = args.auth.partition("%")
        user_domain, username = split_user(user_part)
        domain = user_domain or domain
        if not username:
            raise UsageError("-U needs a user name")
        password, nt_hash = (pw_part, None) if sep else (None, None)
        if not sep:
            password = _read_password(args, f"{domain}\\{username}" if domain else username, stdin)
    elif args.password_stdin:
        password, nt_hash = _read_password(args, username or "", stdin), None
    if args.pw_nt_hash and password is not None:
        password, nt_hash = None, password
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a TCP port")
    creds = Credentials(
        username=username,
        password=password,
        domain=domain,
        nt_hash=nt_hash,
        encrypt=args.encrypt or base.encrypt,
        auth_protocol="kerberos" if args.kerberos else base.auth_protocol,
    )
    current_pool().register(server or "", creds, args.port)


def _server(text: str | None) -> str | None:
    return None if text in (None, LOCAL, "\\\\.") else text


# -- subcommands -------------------------------------------------------------------------------------


def _first_level(
    levels: Sequence[int], call: Callable[[int], Any]
) -> tuple[int, Any]:
    """``call(level)`` for the first level the server serves; the most telling error if none."""
    errors: list[NetApiError] = []
    for level in levels:
        try:
            return level, call(level)
        except NetApiError as exc:
            if exc.winerror not in _STEP_DOWN:
                raise
            errors.append(exc)
    denied = [e for e in errors if e.winerror == ERROR_ACCESS_DENIED]
    raise (denied or errors)[0]


def cmd_list(args: argparse.Namespace) -> int:
    out = sys.stdout
    server = _server(args.server)
    apply_connection_options(args, server, sys.stdin)
    levels = (args.level,) if args.level is not None else AUTO_LEVELS
    level, sessions = _first_level(
        levels, lambda lv: NetSessionEnum(lv, server, args.client, args.user)
    )
    if args.format == "json":
        out.write(render_json(sessions))
    elif args.format == "csv":
        out.write(render_csv(sessions, level))
    else:
        out.write(render_table(sessions))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    out = sys.stdout
    server = _server(args.server)
    apply_connection_options(args, server, sys.stdin)
    levels = (args.level,) if args.level is not None else AUTO_LEVELS
    level, session = _first_level(
        levels, lambda lv: NetSessionGetInfo(lv, server, args.client, args.username)
    )
    if args.format == "json":
        out.write(render_json(session))
    elif args.format == "csv":
        out.write(render_csv([session], level))
    else:
        out.write(render_info(session))
    return 0


def _confirm(question: str, stdin: TextIO, err: TextIO) -> bool:
    if not stdin.isatty():
        raise UsageError(f"{question} -- stdin is not a terminal; add --yes to go ahead")
    err.write(f"{question} [y/N] ")
    err.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def cmd_delete(args: argparse.Namespace) -> int:
    stdin, err = sys.stdin, sys.stderr
    if not args.client and not args.user:
        raise UsageError("delete needs --client and/or --user (ending every session is not offered)")
    server = _server(args.server)
    apply_connection_options(args, server, stdin)
    if not args.yes:
        where = args.server or "the local computer"
        try:
            _, sessions = _first_level(
                COUNT_LEVELS, lambda lv: NetSessionEnum(lv, server, args.client, args.user)
            )
        except NetApiError as exc:
            if exc.winerror in (NERR_ClientNameNotFound, NERR_UserNotFound):
                sessions = []  # the server's own answer to the delete says so
            else:
                if not _confirm(f"Could not count the sessions ({exc.name}). Delete on {where} anyway?",
                                stdin, err):
                    return 1
                sessions = None
        if sessions is not None and len(sessions) > 1:
            names = ", ".join(sorted({f"{s['client_name']} ({s.get('user_name') or '?'})" for s in sessions}))
            if not _confirm(f"Delete {len(sessions)} sessions on {where}: {names}?", stdin, err):
                return 1
    NetSessionDel(server, args.client, args.user)
    return 0


# -- the parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List, inspect and end SMB sessions on a server (NetSessionEnum / NetSessionGetInfo / "
        "NetSessionDel), like 'net session' on Windows.",
        allow_abbrev=False,
        formatter_class=HelpFormatter,  # the epilog's tables keep their lines
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        parser.add_argument("--version", action="version", version=f"%(prog)s {version('netsession')}")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        pass
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    formats = ("table", "json", "csv")

    p = subparsers.add_parser(
        "list", parents=[CONNECTION_OPTIONS], allow_abbrev=False,
        help="list the sessions on a server",
        description="List the sessions on SERVER (the local computer if omitted).",
    )
    p.add_argument(
        "server", nargs="?", metavar="SERVER", help="\\\\name, name, address or [v6], optional :port"
    )
    p.add_argument("--level", type=int, choices=sorted(SESSION_LEVELS), help="information level (default: 2, "
                   "else 1, else 10)")
    p.add_argument("--client", metavar="\\\\NAME", help="only sessions from this client computer")
    p.add_argument("--user", metavar="NAME", help="only sessions of this user")
    p.add_argument("--format", choices=formats, default="table", help="output format (default: table)")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser(
        "info", parents=[CONNECTION_OPTIONS], allow_abbrev=False,
        help="show one session",
        description="Show the session of CLIENT and USER on SERVER ('.' for the local computer).",
    )
    p.add_argument("server", metavar="SERVER", help="\\\\name, name, address or [v6], optional :port; '.' "
                   "for the local computer")
    p.add_argument("client", metavar="CLIENT", help="the client computer, \\\\name or address")
    p.add_argument("username", metavar="USER", help="the user name")
    p.add_argument("--level", type=int, choices=sorted(GETINFO_LEVELS), help="information level (default: "
                   "2, else 1, else 10)")
    p.add_argument("--format", choices=formats, default="table", help="output format (default: table)")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser(
        "delete", parents=[CONNECTION_OPTIONS], allow_abbrev=False,
        help="end sessions",
        description="End the sessions of a client computer and/or a user on SERVER ('.' for the local "
        "computer). Asks before ending more than one session.",
    )
    p.add_argument("server", metavar="SERVER", help="\\\\name, name, address or [v6], optional :port; '.' "
                   "for the local computer")
    p.add_argument("--client", metavar="\\\\NAME", help="end the sessions from this client computer")
    p.add_argument("--user", metavar="NAME", help="end the sessions of this user")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_delete)

    _load_extensions(subparsers)
    from netsession.clidoc import epilog

    parser.epilog = epilog()
    return parser


# Usage-error exception classes the extension modules declared (their ``CommandError``).
_extension_errors: list[type[Exception]] = []


def _load_extensions(subparsers: Any) -> None:
    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # not installed / not written yet
            raise
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
        error = getattr(module, "CommandError", None)
        if isinstance(error, type) and issubclass(error, Exception) and error not in _extension_errors:
            _extension_errors.append(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        handler = getattr(args, "func", None) or getattr(args, "handler", None)
        try:
            return int(handler(args))  # type: ignore[misc]
        except tuple(_extension_errors) as exc:
            raise UsageError(str(exc)) from None
    except NetApiError as exc:
        sys.stderr.write(f"{exc.name} ({exc.winerror}): {exc.strerror}\n")
        return 1
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:
        # `netsession list | head`: the reader left; say nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no "Exception ignored" at exit when stdout is flushed
        return 1
    except Exception as exc:
        if os.environ.get("NETSESSION_DEBUG"):
            raise
        sys.stderr.write(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (NETSESSION_DEBUG=1 shows more)\n"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
