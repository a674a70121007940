"""contrib/netsession.service: systemd accepts it, its ExecStart is a command line our parser takes, and
its sandbox keeps systemd's exposure score low (`systemd-analyze security`)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from netsession import cli

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "netsession.service"
NETSESSION = shutil.which("netsession") or str(ROOT / ".venv" / "bin" / "netsession")
# systemd-analyze's threshold is tenths of its exposure score (0 safest, 10 least safe): at most 2.5.
EXPOSURE_THRESHOLD = "25"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_unit_runs_as_a_dedicated_user_with_the_hardening_systemd_offers() -> None:
    s = service()
    assert s.get("User") == "netsession" or s.get("DynamicUser") == "yes"
    wanted = [("ProtectSystem", "strict"), ("StateDirectory", "netsession"), ("NoNewPrivileges", "yes"),
              ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
              ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE")]
    for key, value in wanted:
        assert s.get(key) == value, key
    sysusers = (ROOT / "contrib" / "netsession.sysusers").read_text()
    assert "u netsession " in sysusers


def test_unit_exec_start_is_a_valid_serve_command_line() -> None:
    argv = shlex.split(service()["ExecStart"])
    assert argv[0].endswith("/netsession")
    args = cli.build_parser().parse_args(argv[1:])  # a usage error would exit 2
    assert args.command == "serve"
    assert args.state_dir == "/var/lib/netsession"


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's command (systemd checks it exists)."""
    copy = tmp_path / "netsession.service"
    copy.write_text(UNIT.read_text().replace("/opt/netsession/bin/netsession", NETSESSION))
    return copy


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(_installed_copy(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")


def test_systemd_rates_the_sandbox_safe(tmp_path: Path) -> None:
    command = ["systemd-analyze", "security", "--offline=yes", f"--threshold={EXPOSURE_THRESHOLD}",
               str(_installed_copy(tmp_path))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.fixture(autouse=True)
def _systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: scripts/setup.sh installs the systemd package")
