"""The decoys on the command line: ``serve``'s lab options and ``netsession decoy add/remove/list``.

``serve`` options (added by :func:`add_serve_arguments`)::

    --sessions FILE | random:N     synthetic sessions (TOML or JSON; see netsession.decoy.spec)
    --sessions-seed N              repeatable activity (and rows, for random:N)
    --personality NAME             the default listener personality (windows, windows-hardened, samba-4.17)
    --listen ADDR:PORT=NAME        a listener with its own personality

``netsession decoy``: ``list [--format table|json]``, ``add --client C --user U [...]``, ``remove
[--client C] [--user U]``, ``reload`` — over the running server's control socket
(``<state dir>/decoy.sock``, root or the server's own user).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from netsession.decoy.control import CONTROL_SOCKET_NAME, ControlError, request
from netsession.decoy.personality import PERSONALITIES, UnknownPersonality, personality, split_listen
from netsession.decoy.spec import SpecError, parse_duration, parse_source


class CommandError(Exception):
    """A user's mistake or an unreachable server: one line, exit status 2."""


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    """The lab's options of `netsession serve`."""
    serve.add_argument(
        "--sessions", metavar="FILE|random:N",
        help="synthetic sessions: a TOML or JSON file (reloaded on SIGHUP), or random:N plausible rows",
    )
    serve.add_argument("--sessions-seed", type=int, metavar="N", help="seed of the synthetic rows' activity")
    serve.add_argument(
        "--metrics", metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (connections, sessions, logons, srvsvc "
        "calls, bytes, refusals)",
    )
    serve.add_argument(
        "--alert-log", metavar="FILE",
        help="write an alert event (JSON, ECS-style names: docs/alerts.md) for every enumeration and "
        "deletion to FILE (- for standard output)",
    )
    serve.add_argument(
        "--alert-syslog", action="append", metavar="TARGET",
        help="send them as RFC 5424 syslog too (repeatable): unix:/dev/log, udp://HOST:PORT or tcp://HOST:PORT",
    )
    serve.add_argument(
        "--alert-on", metavar="TRIGGERS",
        help="what raises an event to an alert: a comma list of enum, non-admin, decoy, decoy-delete "
        "(default non-admin,decoy,decoy-delete)",
    )
    serve.add_argument(
        "--personality", metavar="NAME",
        help=f"how listeners without =NAME answer srvsvc: {', '.join(PERSONALITIES)} "
        "(default: --policy's windows rules)",
    )


def plan_from_args(args: argparse.Namespace, listen: list[str], control_socket: Any) -> tuple[Any, list[str]]:
    """Check the lab's options: (LabPlan, the --listen values without their =PERSONALITY).
    CommandError (one line) for an unknown personality or a sessions file that cannot be used."""
    from netsession.decoy.lab import LabPlan
    from netsession.server.listener import listener_label, parse_listen

    plan = LabPlan(seed=args.sessions_seed, control_socket=control_socket)
    try:
        if args.personality:
            plan.default_personality = personality(args.personality)
        addresses = []
        for value in listen:
            address, name = split_listen(value)
            addresses.append(address)
            if name is not None:
                try:
                    host, port = parse_listen(address)
                except ValueError as exc:
                    raise CommandError(f"--listen: {exc}") from None
                plan.personalities[listener_label(host, port)] = personality(name)
    except UnknownPersonality as exc:
        raise CommandError(str(exc)) from None
    if args.metrics:
        from netsession.decoy.metrics import parse_metrics_address

        try:
            plan.metrics_address = parse_metrics_address(args.metrics)
        except ValueError as exc:
            raise CommandError(f"--metrics: {exc}") from None
    from netsession.decoy.alerts import parse_alert_on, parse_syslog_target

    try:
        if args.alert_on:
            plan.alert_on = parse_alert_on(args.alert_on)
        for target in args.alert_syslog or ():
            parse_syslog_target(target)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    plan.alert_syslog = list(args.alert_syslog or ())
    if args.alert_log:
        if args.alert_log != "-":
            try:
                with open(args.alert_log, "a"):
                    pass
            except OSError as exc:
                why = exc.strerror or exc
                raise CommandError(f"--alert-log: cannot open {args.alert_log}: {why}") from None
        plan.alert_log = args.alert_log
    if args.sessions:
        try:
            plan.sessions = parse_source(args.sessions, args.sessions_seed)
        except SpecError as exc:
            raise CommandError(f"--sessions: {exc}") from None
        plan.sessions_source = args.sessions
    return plan, addresses


# -- netsession decoy ---------------------------------------------------------------------------------


def _socket(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from netsession.paths import state_dir

    directory = Path(args.state_dir).expanduser() if args.state_dir else state_dir()
    return directory / CONTROL_SOCKET_NAME


def _call(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    try:
        return request(_socket(args), message)
    except ControlError as exc:
        raise CommandError(str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    decoys = _call(args, {"op": "list"})["decoys"]
    if args.format == "json":
        print(json.dumps(decoys, indent=2))
        return 0
    if not decoys:
        print("There are no decoys.")
        return 0
    print(f"{'Computer':<22}{'User name':<21}{'Opens':>6} {'Active':>9} {'Idle':>9}  State")
    print("-" * 76)
    for d in decoys:
        state = "listed" if d["active"] else (
            f"back in {d['respawn_in']:.0f} s" if "respawn_in" in d else "deleted"
        )
        active = d.get("active_time", "")
        idle = d.get("idle_time", "")
        print(f"{d['client']:<22}{d['user']:<21}{d['opens']:>6} {active!s:>9} {idle!s:>9}  {state}")
    return 0


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add(args: argparse.Namespace) -> int:
    session: dict[str, Any] = {
        "client": args.client, "user": args.user, "guest": args.guest, "opens": args.opens,
    }
    for key in ("age", "idle", "speak_every", "respawn", "jitter", "transport", "activity"):
        value = getattr(args, key)
        if value is not None:
            session[key] = value
    _call(args, {"op": "add", "session": session})
    return 0


def _remove(args: argparse.Namespace) -> int:
    if not args.client and not args.user:
        raise CommandError("name a --client, a --user, or both")
    removed = _call(args, {"op": "remove", "client": args.client, "user": args.user})["removed"]
    print(f"removed {removed} decoy{'s' if removed != 1 else ''}")
    return 0 if removed else 1


def _reload(args: argparse.Namespace) -> int:
    r = _call(args, {"op": "reload"})
    print(f"kept {r['kept']}, removed {r['removed']}, added {r['added']}")
    return 0


def register(subparsers: Any) -> None:
    """Add `decoy` to the `netsession` command."""
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state-dir", metavar="DIR", help="the server's state directory (its decoy.sock)")
    decoy = subparsers.add_parser(
        "decoy", help="add, remove and list the synthetic sessions of a running server",
        description="Synthetic sessions of the running `netsession serve` (over <state dir>/decoy.sock; "
        "root or the server's own user).",
    )
    commands = decoy.add_subparsers(dest="decoy_command", metavar="{list,add,remove,reload}", required=True)
    listing = commands.add_parser("list", parents=[state], help="the decoys, their times and state")
    listing.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    listing.set_defaults(handler=_list)
    add = commands.add_parser("add", parents=[state], help="add a synthetic session now")
    add.add_argument("--client", required=True, help="address or computer name (shown \\\\CLIENT)")
    add.add_argument("--user", required=True, help="the user name the session shows")
    add.add_argument("--guest", action="store_true", help="a guest logon (SESS_GUEST)")
    add.add_argument("--opens", type=int, default=0, metavar="N", help="files it holds open (default 0)")
    add.add_argument("--age", type=_duration, metavar="DURATION", help="connected this long already (2h)")
    add.add_argument("--idle", type=_duration, metavar="DURATION", help="idle this long now")
    add.add_argument(
        "--speak-every", dest="speak_every", type=_duration, metavar="DURATION",
        help="mean gap between its requests (idle time resets that often; 0: never)",
    )
    add.add_argument("--jitter", type=float, metavar="F", help="each gap is speak-every x (1 +/- F), 0 to 1")
    add.add_argument(
        "--respawn", type=_duration, metavar="DURATION", help="come back this long after NetrSessionDel"
    )
    add.add_argument("--transport", metavar="NAME", help="sesi502_transport (default \\Device\\NetbiosSmb)")
    add.add_argument(
        "--activity", choices=["interactive", "drive", "service", "silent"],
        help="a preset for --speak-every and --jitter",
    )
    add.set_defaults(handler=_add)
    remove = commands.add_parser("remove", parents=[state], help="remove decoys (they do not respawn)")
    remove.add_argument("--client", help="the decoys of this client (\\\\ optional)")
    remove.add_argument("--user", help="the decoys of this user")
    remove.set_defaults(handler=_remove)
    reload = commands.add_parser("reload", parents=[state], help="read the --sessions file again (as SIGHUP)")
    reload.set_defaults(handler=_reload)
