"""A simulated fleet and a private Samba on loopback, to try `netsession scan`, `watch` and `history`.

    .venv/bin/python scripts/fleet_lab.py [--classic 50] [--hardened 10] [--dir DIR]

Starts (tests/fleet/fleet_sim.py): one `netsession serve` on --classic 127.0.10.x addresses, a hardened one
on --hardened 127.0.20.x, 5 addresses where nothing listens, 5 tarpits, 2 hosts that are not SMB — all on
one port — and a private smbd (tests/interop/samba.py) on 127.0.0.1 with the same users (alice, a plain
user; admin, an administrator). bob holds a session on the classic server and on Samba. Writes the
targets to DIR/targets, prints the commands to try, and stops everything on Ctrl-C. Loopback only.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fleet"))
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from fleet_sim import start_fleet  # noqa: E402
from netsession_server import ADMIN, ALICE, BOB  # noqa: E402
from samba import SambaServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classic", type=int, default=50)
    parser.add_argument("--hardened", type=int, default=10)
    parser.add_argument("--dir", help="where to write the targets file (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="netsession-lab-"))
    work.mkdir(parents=True, exist_ok=True)
    print("starting the simulated fleet and a private smbd ...", file=sys.stderr)
    fleet = start_fleet(classic=args.classic, hardened=args.hardened, unused=5, tarpits=5, not_smb=2)
    samba_root = Path(tempfile.mkdtemp(prefix="netsession-lab-smbd-"))
    samba = SambaServer(samba_root)
    try:
        samba._write_conf()
        samba.add_user(ADMIN.name, ADMIN.password, admin=True)
        samba.add_user(ALICE.name, ALICE.password)
        samba.add_user(BOB.name, BOB.password)
        samba.start()
        fleet.classic.hold_smbclient(BOB)
        samba.hold_session(samba.users[BOB.name])
        hosts = (fleet.classic_hosts + fleet.hardened_hosts + fleet.unused_hosts + fleet.tarpit_hosts
                 + fleet.not_smb_hosts)
        targets = work / "targets"
        targets.write_text("# the simulated fleet\n" + "\n".join(fleet.targets(hosts))
                           + f"\n# a private Samba\n127.0.0.1:{samba.port}\n")
        print(f"""
{len(hosts)} simulated hosts and a Samba smbd are up; the targets are in {targets}.
bob is logged on to the classic server and to Samba. Try:

  netsession scan -f {targets} -U {ALICE.credentials} --deadline 3 --summary
  netsession scan -f {targets} -U {ADMIN.credentials} --deadline 3 --format jsonl | head
  netsession scan -f {targets} -U {ALICE.credentials} --deadline 3 --format bloodhound --domain corp.local \\
      -o sessions.json
  netsession watch -f {targets} -U {ALICE.credentials} --deadline 3 --every 20s --rounds 3 \\
      --db {work}/history.sqlite
  netsession history user bob --db {work}/history.sqlite

Ctrl-C stops everything.""", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C must not leave servers behind: finish the clean-up first
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping ...", file=sys.stderr)
        samba.stop()
        shutil.rmtree(samba_root, ignore_errors=True)
        fleet.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
