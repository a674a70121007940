#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run a private Samba smbd on 127.0.0.1:4450 to try the client against:
# its own users (nsadmin is an administrator), one session held open, everything removed on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/private_smbd.py "$@"
