"""A private PostgreSQL for tests: initdb into a temporary directory, postgres on a Unix socket there (no
TCP at all), stopped and removed afterwards.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the ``postgres``
user Debian's package creates (the directory is given to it); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
PORT = 5432  # only names the socket file (.s.PGSQL.5432): nothing listens on TCP


def find_bin() -> Path | None:
    for d in BIN_DIRS:
        if (Path(d) / "postgres").exists():
            return Path(d)
    found = shutil.which("postgres")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    root: Path
    bin: Path
    process: subprocess.Popen[bytes] | None = None
    user: str = "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql:///{database}?host={self.socket_dir}&port={PORT}&user={self.user}"

    def _as_owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        pw = pwd.getpwnam("postgres")
        return pw.pw_uid, pw.pw_gid

    def _run(self, *argv: str) -> None:
        owner = self._as_owner()
        subprocess.run(argv, check=True, capture_output=True, timeout=120,
                       user=owner[0] if owner else None, group=owner[1] if owner else None)

    def start(self) -> None:
        owner = self._as_owner()
        data = self.root / "data"
        self.socket_dir.mkdir(parents=True)
        if owner:
            for p in (self.root, self.socket_dir):
                os.chown(p, *owner)
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        log = open(self.root / "postgres.log", "wb")
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-k", str(self.socket_dir), "-p", str(PORT),
             "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            user=owner[0] if owner else None, group=owner[1] if owner else None,
        )
        log.close()
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("postgres did not start: "
                                       + (self.root / "postgres.log").read_text(errors="replace")) from None
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: smart shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = find_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="netsession-pg-"))
    server = PostgresServer(root, bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
