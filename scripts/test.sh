#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: unit, fuzz, and interop against real Samba, impacket and
# smbprotocol peers that the tests start themselves on loopback. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
