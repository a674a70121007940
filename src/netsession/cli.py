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
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TextIO

from netsession import exitcodes
from netsession.clidoc import HelpFormatter, Parser
from netsession.client.names import parse_server
from netsession.client.pool import Credentials, credentials_from_env, current_pool, split_user
from netsession.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_LOGON_FAILURE,
    ERROR_NOT_SUPPORTED,
    NERR_ClientNameNotFound,
    NERR_UserNotFound,
    NetApiError,
    shown,
)
from netsession.lmshare import DeletionUnanswered
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
    "netsession.files_cli",
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


# A DWORD time of 0x80000000 or more is a negative number of seconds: Samba reports a session that is
# younger than a second as 0xFFFFFFFF (now - start, with a start a fraction in the future). Shown as 0.
_NEGATIVE_TIME: Final = 0x80000000


def hms(seconds: int) -> str:
    """Seconds as ``HH:MM:SS`` (hours unbounded), as ``net session`` shows idle time; a negative DWORD
    (Samba's 0xFFFFFFFF for a brand-new session) as 00:00:00."""
    seconds = int(seconds)
    if seconds >= _NEGATIVE_TIME:
        seconds = 0
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and fullwidth characters two, combining marks
    and other zero-width characters none (UAX #11)."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


# -- output ------------------------------------------------------------------------------------------


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in ("idle_time", "active_time"):
        return hms(value)
    return str(value)


def render_table(sessions: list[dict[str, Any]]) -> str:
    """The ``net session`` table: Computer, User name, Client type, Opens, Idle time — those of them the
    records' level has (level 0: the computer alone). Wide (CJK) characters count two columns."""
    if not sessions:
        return "There are no entries in the list.\n"
    columns = [c for c in TABLE_COLUMNS if c[1] in sessions[0]]
    widths = [
        max(width, *(display_width(_cell(key, s.get(key))) for s in sessions)) for _, key, width in columns
    ]
    lines = []
    head = []
    for (title, key, _), width in zip(columns, widths):
        head.append(_pad(title, width, right=key == "num_opens"))
    lines.append(" ".join(head).rstrip())
    lines.append("-" * display_width(lines[0]))
    for s in sessions:
        row = []
        for (_, key, _), width in zip(columns, widths):
            row.append(_pad(_cell(key, s.get(key)), width, right=key == "num_opens"))
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


def _connection_options() -> Parser:
    parent = Parser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("connection options")
    group.add_argument(
        "-U", "--authentication-user", dest="auth", metavar="[DOMAIN/]USER[%PASSWORD]",
        help="log on as USER (DOMAIN\\USER also works); the password is asked for on a terminal when "
        "left out",
    )
    group.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from the first line of standard input (not with -U USER%%PASSWORD)",
    )
    group.add_argument(
        "--pw-nt-hash", action="store_true", help="the password given is the NT hash (32 hex digits)"
    )
    group.add_argument(
        "--port", type=_tcp_port, metavar="PORT",
        help="TCP port of the SMB server (445; not with a SERVER:PORT naming another)",
    )
    group.add_argument("--encrypt", action="store_true", help="require SMB 3 encryption")
    group.add_argument(
        "-k", "--kerberos", action="store_true", help="log on with Kerberos only (a ticket from kinit)"
    )
    group = parent.add_argument_group("diagnostic options")
    group.add_argument(
        "-v", "--verbose", action="store_true",
        help="say on stderr what is being done (whom it connects to, as whom, which levels it tries)",
    )
    group.add_argument(
        "--debug", action="store_true",
        help="everything --verbose says and the library's debug log; an internal error shows its "
        "traceback (as NETSESSION_DEBUG=1 does)",
    )
    return parent


def _tcp_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a TCP port (1-65535)")
    return int(text)


CONNECTION_OPTIONS: Final = _connection_options()
log: Final = logging.getLogger("netsession.cli")
# UNLEN (lmcons.h): Windows' longest user name; a longer one cannot name an account anywhere.
UNLEN: Final = 256
# What the command logged on with last (server as given, credentials), to explain a refused logon.
_attempt: tuple[str, Credentials] | None = None


def _setup_logging(args: argparse.Namespace) -> logging.Handler | None:
    """-v / --debug: the ``netsession`` loggers on stderr (the handler, for removal at the end)."""
    if not (getattr(args, "verbose", False) or getattr(args, "debug", False)):
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    root = logging.getLogger("netsession")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)
    return handler


def _read_password(args: argparse.Namespace, prompt_for: str, stdin: TextIO) -> str | None:
    if args.password_stdin:
        line = stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input's first line is empty (no password)"
                             if line else "--password-stdin: standard input is empty (no password)")
        return password
    env = os.environ.get("NETSESSION_PASSWORD") or os.environ.get("NETSESSION_NT_HASH")
    if env:
        return env
    if args.kerberos:
        return None
    if stdin.isatty():
        try:
            return getpass.getpass(f"Password for [{prompt_for}]: ")
        except EOFError:
            raise UsageError("no password given (end of input at the prompt)") from None
    return None


def _check_user(name: str | None, what: str) -> None:
    if name is not None and len(name) > UNLEN:
        raise UsageError(f"{what}: a user name has at most {UNLEN} characters, this one {len(name):,}")


def apply_connection_options(args: argparse.Namespace, server: str | None, stdin: TextIO) -> None:
    """Register the credentials the options describe for ``server`` (nothing for the local computer,
    which knows its caller from the socket)."""
    global _attempt
    check_environment()
    if args.auth is not None and "%" in args.auth and args.password_stdin:
        raise UsageError("-U USER%PASSWORD and --password-stdin both give a password: give one")
    target = parse_server(server)
    if target is None:
        if args.auth is not None or args.password_stdin or args.port is not None:
            raise UsageError("the local computer ('.') takes no -U, --password-stdin or --port: the "
                             "socket tells the server who you are")
        return
    if args.port is not None and target.port is not None and args.port != target.port:
        raise UsageError(f"{server} names port {target.port} and --port {args.port} another: give one")
    base = credentials_from_env()
    if args.auth is None and args.port is None and not (args.password_stdin or args.encrypt or args.kerberos):
        _attempt = (server or "", base)
        log.info("connecting to %s as %s (credentials from the environment)", server,
                 base.username or "nobody (anonymous, or a Kerberos ticket)")
        return
    username, domain, password, nt_hash = base.username, base.domain, base.password, base.nt_hash
    if args.auth is not None:
        user_part, sep, pw_part = args.auth.partition("%")
        user_domain, username = split_user(user_part)
        domain = user_domain or domain
        if not username:
            raise UsageError("-U needs a user name")
        _check_user(username, "-U")
        password, nt_hash = (pw_part, None) if sep else (None, None)
        if not sep:
            password = _read_password(args, f"{domain}\\{username}" if domain else username, stdin)
    elif args.password_stdin:
        password, nt_hash = _read_password(args, username or "", stdin), None
    if args.pw_nt_hash and password is not None:
        password, nt_hash = None, password
    try:
        creds = Credentials(
            username=username,
            password=password,
            domain=domain,
            nt_hash=nt_hash,
            encrypt=args.encrypt or base.encrypt,
            auth_protocol="kerberos" if args.kerberos else base.auth_protocol,
        )
    except NetApiError as exc:  # a malformed NT hash
        raise UsageError(f"--pw-nt-hash: {exc.strerror}") from None
    _attempt = (server or "", creds)
    log.info("connecting to %s%s as %s (%s%s)", server, f" port {args.port}" if args.port else "",
             f"{domain}\\{username}" if domain else username or "nobody",
             "Kerberos" if creds.auth_protocol == "kerberos" else "NTLM, or Kerberos with a ticket",
             ", encrypted" if creds.encrypt else "")
    current_pool().register(server or "", creds, args.port)


# NETSESSION_* variables the command checks before using them: booleans and numbers.
_ENV_BOOLEANS: Final = ("NETSESSION_ENCRYPT", "NETSESSION_KERBEROS")
_TRUE_WORDS: Final = frozenset(("1", "yes", "true", "on"))
_FALSE_WORDS: Final = frozenset(("", "0", "no", "false", "off"))


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a NETSESSION_* value that means nothing, as one line (exit 2), before it is used."""
    env = os.environ if environ is None else environ
    for name in _ENV_BOOLEANS:
        value = env.get(name)
        if value is not None and value.strip().lower() not in _TRUE_WORDS | _FALSE_WORDS:
            raise UsageError(f"{name}={shown(value)}: not a yes/no value (1/yes/true/on or 0/no/false/off)")
    value = env.get("NETSESSION_TIMEOUT")
    if value:
        try:
            ok = float(value) > 0
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(f"NETSESSION_TIMEOUT={shown(value)}: not a number of seconds above 0")
    value = env.get("NETSESSION_PORT")
    if value and not (value.isdigit() and 0 < int(value) < 65536):
        raise UsageError(f"NETSESSION_PORT={shown(value)}: not a TCP port (1-65535)")
    _check_user(env.get("NETSESSION_USERNAME"), "NETSESSION_USERNAME")


def _credentials_hint(exc: NetApiError) -> str | None:
    """For a logon refused when no password was available: what to give, instead of the layers' chain."""
    if exc.winerror not in (ERROR_LOGON_FAILURE, ERROR_NOT_SUPPORTED) or _attempt is None:
        return None
    server, creds = _attempt
    if creds.password or creds.nt_hash:
        return None  # the server judged a password: its own answer says it all
    if exc.winerror == ERROR_NOT_SUPPORTED and (
        creds.username or creds.auth_protocol == "kerberos" or "Kerberos" not in exc.strerror
    ):
        return None  # Kerberos asked of a server without it, no encryption: the answer names what is missing
    if creds.auth_protocol == "kerberos":
        if getattr(exc, "reason", "") == "logon":
            return None  # a ticket went out and the server refused it: its own answer says it all
        return (f"no usable Kerberos ticket for {server}" + (f" as {creds.username}" if creds.username
                else "") + " (run kinit first)")
    if not creds.username:
        return (f"no user name or password for {server}, and no usable Kerberos ticket: give -U "
                "USER[%PASSWORD], or set NETSESSION_USERNAME and NETSESSION_PASSWORD")
    return (f"no password for {creds.username} on {server}, and no usable Kerberos ticket: give -U "
            f"'{creds.username}%PASSWORD', --password-stdin or NETSESSION_PASSWORD")


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


def shown_times(session: dict[str, Any]) -> dict[str, Any]:
    """The record with a negative DWORD time (Samba's 0xFFFFFFFF for a brand-new session) as 0."""
    if any(isinstance(session.get(k), int) and session[k] >= _NEGATIVE_TIME for k in _TIME_KEYS):
        return {k: 0 if k in _TIME_KEYS and isinstance(v, int) and v >= _NEGATIVE_TIME else v
                for k, v in session.items()}
    return session


_TIME_KEYS: Final = ("active_time", "idle_time")


def cmd_list(args: argparse.Namespace) -> int:
    out = sys.stdout
    server = _server(args.server)
    _check_user(args.user, "--user")
    apply_connection_options(args, server, sys.stdin)
    levels = (args.level,) if args.level is not None else AUTO_LEVELS
    level, sessions = _first_level(
        levels, lambda lv: NetSessionEnum(lv, server, args.client, args.user)
    )
    sessions = [shown_times(s) for s in sessions]
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
    _check_user(args.username, "USER")
    apply_connection_options(args, server, sys.stdin)
    levels = (args.level,) if args.level is not None else AUTO_LEVELS
    level, session = _first_level(
        levels, lambda lv: NetSessionGetInfo(lv, server, args.client, args.username)
    )
    session = shown_times(session)
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


# What Windows' `net session /delete` prints when it is done.
DONE: Final = "The command completed successfully."


def _ends_own_session(user: str | None) -> bool:
    """Whether deleting the sessions of ``user`` ends the session this command is logged on with."""
    own = _attempt[1].username if _attempt is not None else None
    return bool(user and own and user.casefold() == own.casefold())


def cmd_delete(args: argparse.Namespace) -> int:
    stdin, err = sys.stdin, sys.stderr
    if not args.client and not args.user:
        raise UsageError("delete needs --client and/or --user (ending every session is not offered)")
    _check_user(args.user, "--user")
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
                    raise Declined from None
                sessions = None
        if sessions is not None and len(sessions) > 1:
            names = ", ".join(sorted({f"{s['client_name']} ({s.get('user_name') or '?'})" for s in sessions}))
            if not _confirm(f"Delete {len(sessions)} sessions on {where}: {names}?", stdin, err):
                raise Declined
    try:
        NetSessionDel(server, args.client, args.user)
    except NetApiError as exc:
        # Samba ends the whole connection of each matching client, so a deletion that ends the caller's
        # own session never gets its answer; netsession answers first. Both are a success.
        if not (isinstance(exc, DeletionUnanswered) and _ends_own_session(args.user)):
            raise
        log.info("the server closed the connection: the deletion ended this command's own session too")
    print(DONE)
    return 0


class Declined(Exception):
    """The user answered no: nothing was done (exit status 1)."""


# -- the parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        description="List the sessions on SERVER (the local computer if omitted). The table shows the "
        "columns of the level answered; a time of 0x80000000 seconds or more (Samba's 0xFFFFFFFF for a "
        "session younger than a second) is shown as 0.",
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
        description="Show the session of CLIENT and USER on SERVER ('.' for the local computer). A time of "
        "0x80000000 seconds or more (Samba's 0xFFFFFFFF for a brand-new session) is shown as 0.",
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
    p.add_argument("-y", "--yes", action="store_true", help="do not ask (answering no prints 'nothing "
                   "deleted' and exits 1)")
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


class OutputError(Exception):
    """Standard output could not be written (closed, a full disk, ...): the operation may be done, its
    report is lost. Exit status 1."""


class _GuardedOutput:
    """``sys.stdout`` while the command runs: a failed write or flush becomes :class:`OutputError` (a
    reader that left, BrokenPipeError, stays itself), and a closed stdout (``None``) is reported the
    moment something is written to it, not ignored."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is None:
            raise OutputError("standard output is closed")
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:  # ValueError: I/O operation on closed file
            raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None

    def flush(self) -> None:
        if self._stream is None:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _say(text: str) -> None:
    """A line on stderr; if stderr itself cannot be written there is no one to tell."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the interpreter's own flush at exit neither fails again
    nor prints "Exception ignored"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (:mod:`netsession.exitcodes`)."""
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout)
    try:
        try:
            status = _run(argv)
        except SystemExit:  # argparse: --help, --version, a usage error
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return status
    except OutputError as exc:
        _say(f"{PROG}: cannot write the output: {exc}")
        _silence_stdout()
        return exitcodes.FAILED
    except BrokenPipeError:
        # `netsession list | head`: the reader left; say nothing.
        _silence_stdout()
        return exitcodes.FAILED
    finally:
        sys.stdout = stdout


def _run(argv: Sequence[str] | None) -> int:
    global _attempt
    _attempt = None
    debug = bool(os.environ.get("NETSESSION_DEBUG"))
    try:
        args = build_parser().parse_args(argv)
        debug = debug or bool(getattr(args, "debug", False))
        log_handler = _setup_logging(args)
        handler = getattr(args, "func", None) or getattr(args, "handler", None)
        try:
            return int(handler(args))  # type: ignore[misc]
        except tuple(_extension_errors) as exc:
            raise UsageError(str(exc)) from None
        finally:
            if log_handler is not None:
                logging.getLogger("netsession").removeHandler(log_handler)
    except NetApiError as exc:
        hint = _credentials_hint(exc)
        if hint is not None:
            _say(f"{PROG}: {hint}")
            return exitcodes.USAGE
        _say(f"{exc.name} ({exc.winerror}): {exc.strerror}")
        return exitcodes.FAILED
    except UsageError as exc:
        _say(f"{PROG}: {exc}")
        return exitcodes.USAGE
    except Declined:
        _say(f"{PROG}: nothing deleted")
        return exitcodes.FAILED
    except EOFError:
        _say(f"{PROG}: end of input where an answer was expected")
        return exitcodes.USAGE
    except KeyboardInterrupt:
        _say("")
        return exitcodes.INTERRUPTED
    except (OutputError, BrokenPipeError, SystemExit):
        raise
    except Exception as exc:
        if debug:
            raise
        _say(f"{PROG}: internal error: {type(exc).__name__}: {exc} (--debug or NETSESSION_DEBUG=1 shows "
             "more)")
        return exitcodes.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
