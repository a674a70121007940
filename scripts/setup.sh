#!/usr/bin/env bash
# Set up netsession on a fresh Debian machine: Samba's client and server tools (the interop peers, and
# rpcclient/smbclient for trying the server by hand), a virtualenv in .venv with netsession and its test
# dependencies. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Samba's server and client tools (the peers of the interop tests, and rpcclient /
# smbclient for trying the server by hand), and nss_wrapper (test users for a private smbd without
# touching /etc/passwd).
PACKAGES=(samba smbclient samba-common-bin libnss-wrapper)
need_apt=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv 2>/dev/null || {
        echo "setup: python3 -m venv failed; installing python3-venv" >&2
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    }
fi
# Install (again) only when pyproject.toml changed since the last install into this venv.
stamp=.venv/.netsession-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v -e "^WARNING" -e "^$" || true
    .venv/bin/python -c "import netsession, impacket, smbprotocol, spnego, hypothesis, pytest_timeout" >/dev/null
    echo "$want" > "$stamp"
fi
echo "setup: ready (.venv/bin/netsession)" >&2
