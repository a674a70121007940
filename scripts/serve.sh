#!/usr/bin/env bash
# Set up (scripts/setup.sh), make sure the server has an administrator account, and run the server.
# Arguments go to `netsession serve` (e.g. --listen 0.0.0.0:4445, --policy hardened, --encrypt).
#
# The first time, with no accounts yet, it creates the account "admin" in Administrators: its password
# is $NETSESSION_ADMIN_PASSWORD if set, else asked for on a terminal, else generated and printed once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
NS=.venv/bin/netsession
if [ -z "$($NS user list)" ]; then
    password="${NETSESSION_ADMIN_PASSWORD:-}"
    if [ -z "$password" ] && [ -t 0 ]; then
        echo "serve: no accounts yet; creating 'admin' (Administrators)" >&2
        $NS user add admin --group Administrators
    else
        if [ -z "$password" ]; then
            password="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')"
            echo "serve: created account 'admin' (Administrators) with password: $password" >&2
        fi
        printf '%s\n' "$password" | $NS user add admin --group Administrators --password-stdin >/dev/null
    fi
fi
exec $NS serve "$@"
