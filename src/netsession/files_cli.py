r"""The session's neighbours on the command line: ``netsession files list`` / ``files close`` (Windows'
``net file`` and ``Get-SmbOpenFile`` / ``Close-SmbOpenFile``) and ``netsession connections``
(``NetConnectionEnum``), with ``--format table|json|csv`` like ``list``. Registered through
:data:`netsession.cli.EXTENSION_MODULES`.

    netsession files list [SERVER] [--path \PIPE] [--user NAME] [--level 2|3] [--format table|json|csv]
    netsession files close SERVER ID...
    netsession connections [SERVER] [QUALIFIER] [--level 0|1] [--format table|json|csv]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any, Final

from netsession import cli, lmshare
from netsession.records import FILE_PYWIN32_KEYS, file_to_pywin32
from netsession.win32net import NetFileClose, NetFileEnum

# What ``net file`` shows, and the CONNECTION_INFO_1 columns.
FILE_COLUMNS: Final = (
    ("ID", "id"), ("Path", "path_name"), ("User name", "user_name"), ("# Locks", "num_locks"),
)
CONNECTION_COLUMNS: Final = (
    ("ID", "id"), ("Type", "type"), ("Opens", "num_opens"), ("Users", "num_users"), ("Time", "time"),
    ("User name", "username"), ("Net name", "netname"),
)
DEFAULT_QUALIFIER: Final = "IPC$"


def _table(rows: list[dict[str, Any]], columns: tuple[tuple[str, str], ...]) -> str:
    if not rows:
        return "There are no entries in the list.\n"
    present = [(title, key) for title, key in columns if key in rows[0]]
    cells = [[("" if r.get(key) is None else str(r.get(key))) for _, key in present] for r in rows]
    widths = [max(cli.display_width(title), *(cli.display_width(c[i]) for c in cells))
              for i, (title, _) in enumerate(present)]
    lines = ["  ".join(title.ljust(w) for (title, _), w in zip(present, widths)).rstrip()]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, Any]], keys: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _write(args: argparse.Namespace, rows: list[dict[str, Any]], keys: list[str], columns: Any) -> None:
    if args.format == "json":
        sys.stdout.write(cli.render_json(rows))
    elif args.format == "csv":
        sys.stdout.write(_csv(rows, keys))
    else:
        sys.stdout.write(_table(rows, columns))


def cmd_files_list(args: argparse.Namespace) -> int:
    server = cli._server(args.server)
    cli.apply_connection_options(args, server, sys.stdin)
    rows = NetFileEnum(args.level, server, args.path, args.user)
    _write(args, rows, list(FILE_PYWIN32_KEYS[args.level]), FILE_COLUMNS)
    return 0


def cmd_files_close(args: argparse.Namespace) -> int:
    server = cli._server(args.server)
    cli.apply_connection_options(args, server, sys.stdin)
    for file_id in args.ids:
        NetFileClose(server, file_id)
    return 0


def _connection_row(record: Any) -> dict[str, Any]:
    return {name.split("_", 1)[1]: value for name, value in zip(record._fields, record)}


def cmd_connections(args: argparse.Namespace) -> int:
    server = cli._server(args.server)
    cli.apply_connection_options(args, server, sys.stdin)
    records: list[Any] = []
    resume: int | None = 0
    seen: set[int] = set()
    while resume is not None:
        page = lmshare.NetConnectionEnum(
            server, args.qualifier, args.level, lmshare.MAX_PREFERRED_LENGTH, resume
        )
        records += page.records
        if not page.more_data or not page.records or page.resume_handle is None or page.resume_handle in seen:
            break
        seen.add(page.resume_handle)
        resume = page.resume_handle
    rows = [_connection_row(r) for r in records]
    keys = ["id"] if args.level == 0 else [key for _, key in CONNECTION_COLUMNS]
    _write(args, rows, keys, CONNECTION_COLUMNS)
    return 0


def _file_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a file id: {text!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"a file id is a DWORD: {text!r}")
    return value


def register(subparsers: Any) -> None:
    formats = ("table", "json", "csv")
    server_help = "\\\\name, name, address or [v6], optional :port (default: the local computer)"
    files = subparsers.add_parser(
        "files", help="list or close the open files and pipes on a server",
        description="The open files and named pipes on a server (NetFileEnum / NetFileClose).",
    )
    actions = files.add_subparsers(dest="files_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "list", parents=[cli.CONNECTION_OPTIONS], allow_abbrev=False, help="list the open files and pipes",
        description="List the open files and pipes on SERVER (Administrators and Server Operators only).",
    )
    p.add_argument("server", nargs="?", metavar="SERVER", help=server_help)
    p.add_argument("--path", metavar="BASE", help="only opens whose path starts with BASE, up to a backslash")
    p.add_argument("--user", metavar="NAME", help="only opens of this user")
    p.add_argument("--level", type=int, choices=(2, 3), default=3, help="information level (default: 3)")
    p.add_argument("--format", choices=formats, default="table", help="output format (default: table)")
    p.set_defaults(func=cmd_files_list)
    p = actions.add_parser(
        "close", parents=[cli.CONNECTION_OPTIONS], allow_abbrev=False, help="force open files closed",
        description="Close each open ID on SERVER ('.' for the local computer): the client's next request "
        "on it fails.",
    )
    p.add_argument("server", metavar="SERVER", help=server_help.replace("default: the", "'.':"))
    p.add_argument("ids", nargs="+", type=_file_id, metavar="ID", help="a file id from 'files list'")
    p.set_defaults(func=cmd_files_close)
    p = subparsers.add_parser(
        "connections", parents=[cli.CONNECTION_OPTIONS], allow_abbrev=False,
        help="list the tree connects to a share or from a computer",
        description="List the tree connects (NetConnectionEnum) to the share QUALIFIER, or from the "
        "computer \\\\QUALIFIER.",
    )
    p.add_argument("server", nargs="?", metavar="SERVER", help=server_help)
    p.add_argument("qualifier", nargs="?", default=DEFAULT_QUALIFIER, metavar="QUALIFIER",
                   help=f"a share name or \\\\computer (default: {DEFAULT_QUALIFIER})")
    p.add_argument("--level", type=int, choices=(0, 1), default=1, help="information level (default: 1)")
    p.add_argument("--format", choices=formats, default="table", help="output format (default: table)")
    p.set_defaults(func=cmd_connections)


__all__ = ["cmd_connections", "cmd_files_close", "cmd_files_list", "file_to_pywin32", "register"]
