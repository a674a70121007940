#!/usr/bin/env bash
# Set up netsession on a fresh Debian machine: Samba's client and server tools (the interop peers, and
# rpcclient/smbclient for trying the server by hand), a virtualenv in .venv with netsession and its test
# dependencies. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Samba's server and client tools (the peers of the interop tests, and rpcclient /
# smbclient for trying the server by hand), and nss_wrapper (test users for a private smbd without
# touching /etc/passwd), and PostgreSQL (the fleet's history database in the tests).
# groff-base renders the man page docs/netsession.1, systemd's systemd-analyze checks
# contrib/netsession.service (tests check both).
# Kerberos tests: samba-ad-dc (a private AD DC: its KDC and smbd) and samba-ad-provision (the schema
# `samba-tool domain provision` reads; only a Recommends of samba-ad-dc), krb5-user (kinit/klist), libnss-winbind
# (the DC's smbd looks its users up through winbind, given by nss_wrapper); libkrb5-dev and gcc build
# python-gssapi and krb5 (the `kerberos` extra: PyPI has no Linux wheels of them). samba-testsuite is
# smbtorture (Samba's own rpc.srvsvc suite, a peer the server must pass) and ndrdump (Samba's NDR, the
# oracle of the bridge's codecs).
PACKAGES=(samba smbclient samba-common-bin libnss-wrapper groff-base postgresql
          samba-ad-dc samba-ad-provision krb5-user libnss-winbind libkrb5-dev gcc systemd samba-testsuite)

# Another apt or dpkg may be running (unattended-upgrades, a second setup): wait for its lock instead of
# failing. apt-get waits for the dpkg lock itself (DPkg::Lock::Timeout); `apt-get update`'s lists lock
# is not covered by it, so that one is retried here, for as long (SETUP_APT_RETRY_SECONDS between tries).
LOCK_TIMEOUT=600
APT=(apt-get -o "DPkg::Lock::Timeout=$LOCK_TIMEOUT")
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_run() {  # apt_run ARGS...: apt-get ARGS, its output as it comes (indented, on stderr); waits for a lock
    local waited=0 rc log
    log="$(mktemp)"
    while :; do
        rc=0
        DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" "$@" 2>&1 | tee "$log" \
            | { grep --line-buffered -v -e "Could not get lock" -e "Unable to lock" -e "Unable to acquire" \
                || true; } | sed -u 's/^/  apt: /' >&2 || rc=$?
        if [ "$rc" -ne 0 ] && grep -q "Could not get lock" "$log" && [ "$waited" -lt "$LOCK_TIMEOUT" ]; then
            [ "$waited" -eq 0 ] && echo "setup: another apt/dpkg holds the package lock; waiting for it" \
                "(up to $((LOCK_TIMEOUT / 60)) minutes)..." >&2
            sleep "${SETUP_APT_RETRY_SECONDS:-5}"
            waited=$((waited + ${SETUP_APT_RETRY_SECONDS:-5}))
            continue
        fi
        [ "$rc" -eq 0 ] || grep -e "Could not get lock" -e "Unable to" "$log" | sed 's/^/  apt: /' >&2 || true
        rm -f "$log"
        return "$rc"
    done
}

need_apt=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]} (apt-get waits up to" \
        "$((LOCK_TIMEOUT / 60)) minutes for the package lock)" >&2
    echo "setup: apt-get update" >&2
    apt_run update -q
    echo "setup: apt-get install ${need_apt[*]}" >&2
    apt_run install -y -q --no-install-recommends "${need_apt[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtualenv .venv" >&2
    "$PYTHON" -m venv .venv 2>/dev/null || {
        echo "setup: python3 -m venv failed; installing python3-venv" >&2
        apt_run install -y -q python3-venv
        "$PYTHON" -m venv .venv
    }
fi
# Install (again) only when pyproject.toml changed since the last install into this venv.
stamp=.venv/.netsession-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: pip install -e '.[test,kerberos]' into .venv (netsession and its dependencies; a few" \
        "minutes the first time: python-gssapi and krb5 are built from source)" >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    # pip's own lines, less the "already satisfied" ones: what it downloads and installs.
    .venv/bin/python -m pip install --progress-bar off -e ".[test,kerberos]" 2>&1 \
        | { grep --line-buffered -v -e "^Requirement already satisfied" -e "^WARNING" -e "^$" || true; } \
        | sed -u 's/^/  pip: /' >&2
    .venv/bin/python -c "import netsession, netsession.aio, impacket, smbprotocol, spnego, gssapi, krb5, hypothesis, pytest_timeout" >/dev/null
    # The client runs on netsession's own SMB2/3 engine: importing it must not pull smbprotocol in.
    .venv/bin/python -c "import sys, netsession.aio, netsession.cli; assert 'smbprotocol' not in sys.modules" >/dev/null
    echo "$want" > "$stamp"
fi
echo "setup: ready (.venv/bin/netsession)" >&2
