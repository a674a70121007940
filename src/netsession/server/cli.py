"""`netsession serve` and `netsession user ...`: the server's side of the command line.

:func:`register` adds both subcommands to the `netsession` command's argparse subparsers; each handler
returns the exit status. A mistake on the command line or in the state directory is one readable line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

from netsession.errors import shown
from netsession.groups import BUILTIN_GROUPS, USERS
from netsession.paths import SRVSVC_SOCKET_NAME, state_dir
from netsession.table import AccessPolicy

ACCOUNTS_FILE = "accounts.db"


class CommandError(Exception):
    """A user's mistake: printed as one line, exit status 2."""


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).expanduser() if args.state_dir else state_dir()


def _open_store(args: argparse.Namespace, *, create: bool) -> Any:
    from netsession.server.accounts import AccountError, AccountStore

    directory = _state_dir(args)
    path = directory / ACCOUNTS_FILE
    if not create and not path.exists():
        raise CommandError(f"no account store at {path} (add a user first: netsession user add NAME)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return AccountStore(str(path))
    except (OSError, AccountError) as exc:
        raise CommandError(f"cannot open the account store {path}: {exc}") from None


def _listen(value: str) -> str:
    from netsession.server.listener import parse_listen

    try:
        parse_listen(value.partition("=")[0])  # =PERSONALITY: the decoy's (netsession.decoy.cli)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _positive_int(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{shown(value)} is not a whole number of at least 1")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{shown(value)} is not a number of seconds of 0 or more")
    return seconds


def _group(value: str) -> str:
    for group in BUILTIN_GROUPS:
        if group.casefold() == value.casefold():
            return group
    choices = ", ".join(BUILTIN_GROUPS)
    raise argparse.ArgumentTypeError(f"unknown group {shown(value)} (choose from {choices})")


def _read_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not line:
            raise CommandError("--password-stdin: standard input is empty (no password)")
    elif sys.stdin.isatty():
        try:
            password = getpass.getpass(f"New password for {name}: ")
            if getpass.getpass("Retype it: ") != password:
                raise CommandError("the passwords do not match")
        except EOFError:
            raise CommandError("no password given (end of input at the prompt)") from None
    else:
        raise CommandError("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise CommandError("the password is empty")
    return password


def _account_error(exc: Exception, name: str) -> CommandError:
    """One wording for every account command's refusals."""
    from netsession.server.accounts import DuplicateAccount, UnknownAccount

    if isinstance(exc, UnknownAccount):
        return CommandError(f"no account named {name}")
    if isinstance(exc, DuplicateAccount):
        return CommandError(f"an account named {name} exists already")
    return CommandError(str(exc))


# -- user ----------------------------------------------------------------------------------------------

def _user_add(args: argparse.Namespace) -> int:
    from netsession.server.accounts import AccountError, nt_hash

    password = _read_password(args, args.name)
    store = _open_store(args, create=True)
    try:
        account = store.add_user(args.name, nt_hash(password), args.group or (USERS,))
    except AccountError as exc:
        raise _account_error(exc, args.name) from None
    finally:
        store.close()
    print(f"added {account.name} ({', '.join(sorted(account.groups))})")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    from netsession.server.accounts import AccountError, nt_hash

    store = _open_store(args, create=False)
    try:
        if store.get(args.name) is None:
            raise CommandError(f"no account named {args.name}")
        store.set_nt_hash(args.name, nt_hash(_read_password(args, args.name)))
    except AccountError as exc:
        raise _account_error(exc, args.name) from None
    finally:
        store.close()
    print(f"changed the password of {args.name}")
    return 0


def _user_del(args: argparse.Namespace) -> int:
    from netsession.server.accounts import AccountError

    store = _open_store(args, create=False)
    try:
        store.delete_user(args.name)
    except AccountError as exc:
        raise _account_error(exc, args.name) from None
    finally:
        store.close()
    print(f"deleted {args.name}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    path = _state_dir(args) / ACCOUNTS_FILE
    if not path.exists():
        return 0
    store = _open_store(args, create=False)
    try:
        for account in store.list_users():
            print(f"{account.name}\t{', '.join(sorted(account.groups))}")
    finally:
        store.close()
    return 0


# -- serve ---------------------------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    from netsession.decoy import cli as decoy_cli
    from netsession.decoy.control import CONTROL_SOCKET_NAME
    from netsession.server.audit import AuditTrail, JsonLinesSink, LogSink
    from netsession.server.listener import DEFAULT_LISTEN, parse_listen
    from netsession.server.statelock import StateDirLocked, StateLock
    from netsession.server.throttle import parse_lockout

    control = None if args.no_local_socket else _state_dir(args) / CONTROL_SOCKET_NAME
    try:
        lab, addresses = decoy_cli.plan_from_args(args, args.listen or [DEFAULT_LISTEN], control)
    except decoy_cli.CommandError as exc:
        raise CommandError(str(exc)) from None
    try:
        listen = [parse_listen(value) for value in addresses]
    except ValueError as exc:
        raise CommandError(f"--listen: {exc}") from None
    lockout = (0, 0.0)
    if args.lockout:
        try:
            lockout = parse_lockout(args.lockout)
        except ValueError as exc:
            raise CommandError(f"--lockout: {exc}") from None
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    audit = AuditTrail([LogSink()])
    if args.audit_log:
        try:
            audit.add_sink(JsonLinesSink(args.audit_log))
        except OSError as exc:
            raise CommandError(f"--audit-log: cannot open {args.audit_log}: {exc.strerror or exc}") from None
    directory = _state_dir(args)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CommandError(f"cannot create the state directory {directory}: {exc.strerror or exc}") from None
    lock = StateLock(directory, "listening on " + ", ".join(addresses))
    try:
        lock.acquire()
    except StateDirLocked as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot lock the state directory {directory}: {exc.strerror or exc}") from None
    try:
        return _serve_locked(args, listen, lab, audit, lockout)
    finally:
        lock.release()
        audit.close()


def _serve_locked(
    args: argparse.Namespace, listen: Any, lab: Any, audit: Any, lockout: tuple[int, float]
) -> int:
    from netsession.server.app import NetsessionServer, ServerOptions
    from netsession.server.listener import serve
    from netsession.server.throttle import ThrottleSettings

    store = _open_store(args, create=True)
    if not store.list_users():
        logging.getLogger("netsession.server").warning(
            "no accounts yet: add one with `netsession user add NAME --group Administrators`"
        )
    options = ServerOptions(
        policy=AccessPolicy(args.policy),
        allow_guest=args.allow_guest,
        encrypt_data=args.encrypt,
        max_connections=args.max_connections,
        max_sessions_per_account=args.max_sessions_per_account,
        idle_timeout=args.idle_timeout,
        logon_timeout=args.logon_timeout,
        max_local_connections=args.max_local_connections,
        throttle=ThrottleSettings(
            delay=args.logon_failure_delay, lockout_threshold=lockout[0], lockout_window=lockout[1] or 600.0
        ),
    )
    if args.name:
        options.name = args.name.upper()
    options.keytab = args.keytab
    from netsession.server.kerberos import KeytabError

    try:
        server = NetsessionServer(options, store, audit=audit)
    except KeytabError as exc:
        store.close()
        raise CommandError(f"--keytab: {exc}") from None
    lab.install(server)
    local = None if args.no_local_socket else _state_dir(args) / SRVSVC_SOCKET_NAME
    try:
        asyncio.run(serve(server, listen, local))
    except OSError as exc:
        raise CommandError(f"cannot listen: {exc.strerror or exc}") from None
    finally:
        store.close()
    return 0


def register(subparsers: Any) -> None:
    """Add `serve` and `user` to the `netsession` command."""
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir", metavar="DIR",
        help="where accounts and the local socket live (default $XDG_STATE_HOME/netsession or "
        "~/.local/state/netsession; env NETSESSION_STATE_DIR)",
    )

    serve = subparsers.add_parser(
        "serve", parents=[state], help="run the SMB2/3 server whose sessions srvsvc lists and ends",
        description="Run the netsession server: SMB2/3 clients log on to it, and NetrSessionEnum / "
        "NetrSessionDel over \\PIPE\\srvsvc list and end their sessions.",
    )
    serve.add_argument(
        "--listen", action="append", metavar="HOST:PORT[=PERSONALITY]", type=_listen,
        help="address to listen on, repeatable; [v6]:PORT for IPv6 (default 127.0.0.1:4445; 445 needs root); "
        "=PERSONALITY: how this listener answers srvsvc (see --personality)",
    )
    serve.add_argument("--name", help="the server's NetBIOS name (default: the host name)")
    serve.add_argument(
        "--policy", choices=[p.value for p in AccessPolicy], default=AccessPolicy.CLASSIC.value,
        help="who may enumerate at levels 0 and 10: classic = any authenticated user, hardened = "
        "administrators only, refused with an RPC fault (Windows Server 2019 / NetCease)",
    )
    serve.add_argument("--allow-guest", action="store_true", help="accept guest logons")
    serve.add_argument("--encrypt", action="store_true", help="require SMB3 encryption of every session")
    serve.add_argument(
        "--keytab", metavar="FILE",
        help="accept Kerberos logons with the service keys in FILE (cifs/HOST@REALM; needs the kerberos "
        "extra); a local account of the same user name lends its groups",
    )
    serve.add_argument(
        "--max-connections", type=_positive_int, default=16384, metavar="N",
        help="refuse TCP connections beyond N open at once (default %(default)s)",
    )
    serve.add_argument(
        "--max-sessions-per-account", type=_positive_int, default=4096, metavar="N",
        help="refuse a logon beyond N sessions of one account over all its connections (guest and "
        "anonymous count as one account each; default %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout", type=_seconds, default=900.0, metavar="SECONDS",
        help="drop a connection silent this long (default 900; 0 = never)",
    )
    serve.add_argument("--no-local-socket", action="store_true", help="do not serve the local Unix socket")
    serve.add_argument(
        "--logon-timeout", type=float, default=30.0, metavar="SECONDS",
        help="drop a connection that has not logged on this long after connecting (default 30; 0 = never)",
    )
    serve.add_argument(
        "--max-local-connections", type=int, default=256, metavar="N",
        help="connections on the local socket (default 256; 16 per uid but root's and the server's own)",
    )
    serve.add_argument(
        "--logon-failure-delay", type=float, default=2.0, metavar="SECONDS",
        help="after 5 failed logons from one address (or for one account) in 10 minutes, answer each "
        "further failure this late, and check that address's next password no sooner (default 2, as "
        "Windows Server 2025; 0 = off)",
    )
    serve.add_argument(
        "--lockout", metavar="N/SECONDS",
        help="lock an account out (STATUS_ACCOUNT_LOCKED_OUT, right password or not) after N failed "
        "logons within SECONDS, until they age out (default: no lockout)",
    )
    serve.add_argument(
        "--audit-log", metavar="FILE",
        help="append the audit trail (every logon, success or failure, and every srvsvc call) to FILE as "
        "JSON lines, whatever --log-level says",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="the least severe log messages shown on stderr (default %(default)s; the audit trail is info)",
    )
    from netsession.decoy.cli import add_serve_arguments

    add_serve_arguments(serve)
    serve.set_defaults(handler=_serve)

    user = subparsers.add_parser(
        "user", help="manage the server's accounts", description="Manage the server's accounts "
        "(NT hashes in a SQLite file, mode 0600, in the state directory). Usable while the server runs.",
    )
    users = user.add_subparsers(dest="user_command", metavar="{add,del,passwd,list}", required=True)
    add = users.add_parser("add", parents=[state], help="add an account")
    add.add_argument("name", metavar="NAME", help="the account name")
    add.add_argument(
        "--group", action="append", type=_group, metavar="GROUP",
        help=f"repeatable; one of {', '.join(BUILTIN_GROUPS)} (default Users)",
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=_user_add)
    passwd = users.add_parser("passwd", parents=[state], help="change an account's password")
    passwd.add_argument("name", metavar="NAME", help="the account name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the new password from standard input"
    )
    passwd.set_defaults(handler=_user_passwd)
    delete = users.add_parser("del", parents=[state], help="delete an account")
    delete.add_argument("name", metavar="NAME", help="the account name")
    delete.set_defaults(handler=_user_del)
    listing = users.add_parser("list", parents=[state], help="list the accounts and their groups")
    listing.set_defaults(handler=_user_list)
