"""Run a private Samba smbd to try the client against: loopback only, its own users, until Ctrl-C.

It is the interop tests' fixture (tests/interop/samba.py): its own smb.conf and directories in a
temporary directory, users through nss_wrapper (never /etc/passwd), an administrator mapped to
BUILTIN\\Administrators. alice holds one session open (an smbclient on IPC$) so there is one to list.
Needs root, as smbd does.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))

from samba import SambaServer, missing_prerequisites

USERS = (("nsadmin", "Adm1n-pass!", True), ("alice", "Al1ce-pass!", False), ("bob", "B0b-pass!", False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=4450)
    args = ap.parse_args()
    missing = missing_prerequisites()
    if missing:
        print(f"private_smbd: {missing}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="netsession-try-smbd-"))
    server = SambaServer(root, port=args.port)
    try:
        server._write_conf()
        users = {name: server.add_user(name, pw, admin=admin) for name, pw, admin in USERS}
        server.start()
        server.hold_session(users["alice"])
        print(f"smbd listening on 127.0.0.1:{args.port} (config {server.conf}); accounts:")
        for name, pw, admin in USERS:
            print(f"  {name}%{pw}" + ("   (administrator)" if admin else ""))
        cmd = f".venv/bin/netsession list 127.0.0.1 --port {args.port} -U 'nsadmin%Adm1n-pass!' --level 1"
        print(f"try:  {cmd}")
        print("Ctrl-C stops it.", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except RuntimeError as exc:
        print(f"private_smbd: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
