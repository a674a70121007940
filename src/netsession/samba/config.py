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


def sections(text: str) -> dict[str, dict[str, str]]:
    """The sections of ``testparm -s`` output, in order: name -> {parameter (lower case) -> value}."""
    out: dict[str, dict[str, str]] = {}
    fields: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            fields = out.setdefault(line[1:-1], {})
        elif "=" in line and fields is not None:
            key, _, value = line.partition("=")
            fields[key.strip().lower()] = value.strip()
    return out


def parse_shares(text: str) -> tuple[Share, ...]:
    """The shares of ``testparm -s`` output: IPC$, then each section but [global] (printers as PRINTQ)."""
    shares = [IPC_SHARE]
    for name, fields in sections(text).items():
        if name.casefold() in ("global", "ipc$"):
            continue
        printable = fields.get("printable", "no").lower() in ("yes", "true", "1")
        shares.append(Share(name, STYPE_PRINTQ if printable else STYPE_DISKTREE, fields.get("comment", "")))
    return tuple(shares)


def load(smb_conf: str) -> SambaConfig:
    """Read the bridge's settings from ``smb_conf`` (raises :class:`ConfigError`).

    ``external_rpc_pipe:socket_dir`` is a parametric option: ``--parameter-name`` fails when it is not
    set, so it is read from the [global] section testparm prints (set options only; None if absent)."""
    text = _testparm([smb_conf])
    parsed = sections(text)
    glob = next((f for name, f in parsed.items() if name.casefold() == "global"), {})
    return SambaConfig(
        smb_conf,
        parameter(smb_conf, "lock directory"),
        parameter(smb_conf, "ncalrpc dir"),
        glob.get("external_rpc_pipe:socket_dir") or None,
        parameter(smb_conf, "netbios name"),
        parse_shares(text),
    )
