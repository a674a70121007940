"""Where the local netsession server keeps its state, and where its srvsvc socket is.

Both ends use these: the server listens on :func:`local_srvsvc_socket`, and the client connects there when
a call names no server ("the local computer", as ``servername=NULL`` means on Windows).

The state directory is, in order: ``$NETSESSION_STATE_DIR``; ``$XDG_STATE_HOME/netsession``;
``~/.local/state/netsession`` (XDG Base Directory Specification, "state" data).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

STATE_DIR_ENV: Final = "NETSESSION_STATE_DIR"
# The local server's DCE/RPC endpoint: plain connection-oriented PDUs over a SOCK_STREAM Unix socket,
# each PDU framed by its own frag_length (ncalrpc style).
SRVSVC_SOCKET_NAME: Final = "srvsvc.sock"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The netsession state directory (not created here)."""
    env = os.environ if environ is None else environ
    explicit = env.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_STATE_HOME")
    # XDG: a relative path in $XDG_STATE_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "netsession"
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "state" / "netsession"


def local_srvsvc_socket(environ: Mapping[str, str] | None = None) -> Path:
    """The Unix socket the local netsession server answers srvsvc calls on."""
    return state_dir(environ) / SRVSVC_SOCKET_NAME
