"""``netsession samba-bridge``: netsession as the srvsvc of a running smbd.

::

    netsession samba-bridge [--socket-dir DIR] [--smb-conf FILE] [--policy classic|hardened]
                            [--samba-dcerpcd PATH] [--audit-log FILE] [--log-level LEVEL]

smb.conf needs ``external_rpc_pipe:socket_dir = DIR`` in [global] (DIR not the ncalrpc dir); without
``--socket-dir`` the bridge uses that value.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from netsession.table import AccessPolicy


class CommandError(Exception):
    """A user's mistake: printed as one line, exit status 2."""


def _bridge(args: argparse.Namespace) -> int:
    from netsession.samba.bridge import Bridge, run
    from netsession.samba.config import ConfigError, load

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.audit_log:
        handler = logging.FileHandler(args.audit_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logging.getLogger("netsession.audit").addHandler(handler)
    if not os.path.exists(args.smb_conf):
        raise CommandError(f"--smb-conf: {args.smb_conf} does not exist")
    try:
        config = load(args.smb_conf)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    socket_dir = args.socket_dir or config.socket_dir
    if not socket_dir:
        raise CommandError(
            f"{args.smb_conf} has no 'external_rpc_pipe:socket_dir' and no --socket-dir was given"
        )
    log = logging.getLogger("netsession.samba")
    if config.socket_dir is None:
        log.warning("%s has no 'external_rpc_pipe:socket_dir = %s': smbd will not come here",
                    args.smb_conf, socket_dir)
    elif os.path.realpath(config.socket_dir) != os.path.realpath(socket_dir):
        log.warning("smbd looks for pipes in %s, not in %s", config.socket_dir, socket_dir)
    if os.path.realpath(socket_dir) == os.path.realpath(config.ncalrpc_dir):
        raise CommandError(
            f"--socket-dir {socket_dir} is the ncalrpc dir, which samba-dcerpcd empties: use another one"
        )
    bridge = Bridge(config, socket_dir, policy=AccessPolicy(args.policy), dcerpcd=args.samba_dcerpcd)
    try:
        asyncio.run(run(bridge))
    except OSError as exc:
        raise CommandError(f"cannot listen in {socket_dir}/np: {exc.strerror or exc}") from None
    return 0


def register(subparsers: Any) -> None:
    from netsession.samba.bridge import DEFAULT_DCERPCD
    from netsession.samba.config import DEFAULT_SMB_CONF

    p = subparsers.add_parser(
        "samba-bridge",
        help="serve srvsvc (NetSessionEnum levels 0-502, filters, paging, NetSessionDel) for a running smbd",
        description="Listen on DIR/np/<pipe> for smbd's named-pipe hand-over (smb.conf: "
        "external_rpc_pipe:socket_dir = DIR), answer srvsvc from Samba's live sessions, and forward "
        "every other pipe to samba-dcerpcd.",
    )
    p.add_argument("--socket-dir", metavar="DIR",
                   help="smbd's external_rpc_pipe:socket_dir (default: from smb.conf)")
    p.add_argument("--smb-conf", metavar="FILE", default=DEFAULT_SMB_CONF, help=f"default {DEFAULT_SMB_CONF}")
    p.add_argument("--policy", choices=[p.value for p in AccessPolicy], default=AccessPolicy.CLASSIC.value,
                   help="who may enumerate sessions (default classic)")
    p.add_argument("--samba-dcerpcd", metavar="PATH", default=DEFAULT_DCERPCD,
                   help=f"samba-dcerpcd to start for forwarded pipes (default {DEFAULT_DCERPCD})")
    p.add_argument("--audit-log", metavar="FILE", help="also append the srvsvc audit trail to FILE")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="how much the bridge logs on stderr (default info)")
    p.set_defaults(func=_bridge)
