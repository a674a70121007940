"""scripts/setup.sh, run for real in a copy of the repository with stand-ins for apt-get, dpkg-query, sudo
and sleep on PATH: it installs only what is missing, says what it installs, waits for a held package lock
(and says so), and gives up after its timeout with apt's own line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_DPKG_QUERY = """#!/bin/sh
for pkg; do :; done
case " $MISSING " in *" $pkg "*) exit 1 ;; esac
printf 'install ok installed'
"""
# Fails with apt's lock message LOCKED_TIMES times (counted in $STATE), then succeeds.
FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "$STATE/apt.log"
n=$(cat "$STATE/locked" 2>/dev/null || echo 0)
if [ "$n" -lt "$LOCKED_TIMES" ]; then
    echo $((n + 1)) > "$STATE/locked"
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
    echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
    exit 100
fi
echo "Setting up fake-package ..."
"""


def make_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text("#!/bin/sh\nexit 0\n")
    digest = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
    (repo / ".venv" / ".netsession-installed").write_text(digest + "\n")  # the venv is current
    fakes = tmp_path / "bin"
    fakes.mkdir()
    scripts = {"dpkg-query": FAKE_DPKG_QUERY, "apt-get": FAKE_APT_GET, "sudo": '#!/bin/sh\nexec "$@"\n',
               "sleep": "#!/bin/sh\nexit 0\n"}
    for name, text in scripts.items():
        (fakes / name).write_text(text)
    for path in [*fakes.iterdir(), venv_bin / "python"]:
        path.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    env = {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}", "STATE": str(state), "LOCKED_TIMES": "0",
           "MISSING": ""}
    return repo, env


def setup(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def apt_calls(env: dict[str, str]) -> list[str]:
    log = Path(env["STATE"]) / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_setup_installs_nothing_when_nothing_is_missing(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path)
    done = setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert apt_calls(env) == []
    assert done.stderr == "setup: ready (.venv/bin/netsession)\n"


def test_setup_names_what_it_installs_and_shows_apts_progress(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path)
    env["MISSING"] = "samba groff-base"
    done = setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert "setup: installing Debian packages: samba groff-base" in done.stderr
    assert "  apt: Setting up fake-package ..." in done.stderr
    calls = apt_calls(env)
    assert all("DPkg::Lock::Timeout=600" in call for call in calls)
    assert calls[-1].endswith("install -y -q --no-install-recommends samba groff-base")


def test_setup_waits_for_a_held_package_lock_and_says_so(tmp_path: Path) -> None:
    repo, env = make_repo(tmp_path)
    env.update(MISSING="samba", LOCKED_TIMES="3")
    done = setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("waiting for it") == 1
    assert "Could not get lock" not in done.stderr  # apt's refusals while waiting are not repeated
    assert [c.split()[-2:] for c in apt_calls(env)][:4] == [["update", "-q"]] * 4


@pytest.mark.parametrize("retry", ["300"])
def test_setup_gives_up_on_a_lock_held_past_the_timeout(tmp_path: Path, retry: str) -> None:
    repo, env = make_repo(tmp_path)
    env.update(MISSING="samba", LOCKED_TIMES="1000", SETUP_APT_RETRY_SECONDS=retry)
    done = setup(repo, env)
    assert done.returncode == 100
    assert "waiting for it" in done.stderr
    assert "  apt: E: Could not get lock /var/lib/apt/lists/lock" in done.stderr
    assert len(apt_calls(env)) == 600 // int(retry) + 1
    assert "ready" not in done.stderr
