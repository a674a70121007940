"""What the bridge needs from smb.conf, as Samba itself reads it (``testparm``).

The bridge asks Samba's own parser rather than parsing smb.conf itself: ``testparm -s
--parameter-name=NAME FILE`` prints one parameter's effective value (defaults and includes applied), and
``testparm -s FILE`` the share sections.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from netsession.server.srvsvc import IPC_SHARE, Share
from netsession.wire.srvsvc import STYPE_DISKTREE, STYPE_PRINTQ

DEFAULT_SMB_CONF = "/etc/samba/smb.conf"
TESTPARM_TIMEOUT = 30.0


class ConfigError(Exception):
    """smb.conf cannot be read, or lacks what the bridge needs."""


@dataclass(frozen=True, slots=True)
class SambaConfig:
    smb_conf: str
    lock_dir: str  # "lock directory": where smbXsrv_*_global.tdb and msg.sock live
    ncalrpc_dir: str  # "ncalrpc dir": samba-dcerpcd's sockets are in <ncalrpc dir>/np
    socket_dir: str | None  # "external_rpc_pipe:socket_dir", where smbd looks for pipe servers
    netbios_name: str
    shares: tuple[Share, ...]


def _testparm(args: list[str]) -> str:
    tool = shutil.which("testparm") or "/usr/bin/testparm"
    try:
        done = subprocess.run(
            [tool, "-s", *args], capture_output=True, text=True, timeout=TESTPARM_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run testparm: {exc}") from None
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ConfigError(f"testparm {' '.join(args)}: {message}")
    return done.stdout


def parameter(smb_conf: str, name: str) -> str:
    return _testparm([f"--parameter-name={name}", smb_conf]).strip()


def parse_shares(text: str) -> tuple[Share, ...]:
    """The shares of ``testparm -s`` output: IPC$, then each section but [global] (printers as PRINTQ)."""
    shares = [IPC_SHARE]
    name: str | None = None
    fields: dict[str, str] = {}

    def flush() -> None:
        if name is not None and name.casefold() not in ("global", "ipc$"):
            printable = fields.get("printable", "no").lower() in ("yes", "true", "1")
            kind = STYPE_PRINTQ if printable else STYPE_DISKTREE
            shares.append(Share(name, kind, fields.get("comment", "")))

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            flush()
            name, fields = line[1:-1], {}
        elif "=" in line and name is not None:
            key, _, value = line.partition("=")
            fields[key.strip().lower()] = value.strip()
    flush()
    return tuple(shares)


def load(smb_conf: str) -> SambaConfig:
    """Read the bridge's settings from ``smb_conf`` (raises :class:`ConfigError`)."""
    socket_dir = parameter(smb_conf, "external_rpc_pipe:socket_dir") or None
    return SambaConfig(
        smb_conf,
        parameter(smb_conf, "lock directory"),
        parameter(smb_conf, "ncalrpc dir"),
        socket_dir,
        parameter(smb_conf, "netbios name"),
        parse_shares(_testparm([smb_conf])),
    )
