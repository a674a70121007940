"""A private Samba smbd for interop tests: its own smb.conf, directories and users, on a free loopback port.

Users exist only for this smbd: nss_wrapper (LD_PRELOAD=libnss_wrapper.so with NSS_WRAPPER_PASSWD /
NSS_WRAPPER_GROUP pointing at files in the temporary directory) gives smbd, pdbedit, smbpasswd and net a
passwd and group database of their own — the way Samba's selftest does it — so /etc/passwd is never touched.
Administrators are made with ``net groupmap add sid=S-1-5-32-544 unixgroup=... type=builtin`` (FACTS.md §6)
and the domain's Domain Admins (rid 512) mapped to a second group, since smbd lets only root or Domain
Admins call NetSessDel.

smbd runs in the foreground as our child; on demand it starts samba-dcerpcd and rpcd_* helpers, which
detach (setsid). :meth:`SambaServer.stop` ends smbd, then every process whose command line names this
server's own smb.conf — all started by this server and nothing else — and removes the directory.

smbd must run as root (it switches to each user's uid); elsewhere uid_wrapper would be needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NSS_WRAPPER_NAMES = ("libnss_wrapper.so", "libnss_wrapper.so.0")
NSS_WRAPPER_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
SAMBA_TOOLS = ("smbd", "smbclient", "smbstatus", "pdbedit", "smbpasswd", "net")
START_TIMEOUT = 20.0


def find_nss_wrapper() -> str | None:
    """The path of libnss_wrapper.so, or None if the package is not installed."""
    for directory in NSS_WRAPPER_DIRS:
        for name in NSS_WRAPPER_NAMES:
            path = Path(directory) / name
            if path.exists():
                return str(path)
    return None


def missing_prerequisites() -> str | None:
    """Why a private smbd cannot be started here, or None if it can."""
    missing = [t for t in SAMBA_TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        return f"Samba tools not installed: {', '.join(missing)} (apt-get install samba smbclient)"
    if find_nss_wrapper() is None:
        return "nss_wrapper not installed (apt-get install libnss-wrapper)"
    if os.geteuid() != 0:
        return "smbd needs root to switch to its users' uids"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class User:
    name: str
    password: str
    uid: int
    groups: tuple[str, ...] = ()


@dataclass
class HeldSession:
    """An smbclient connected to IPC$, idle at its prompt: one live SMB session until :meth:`close`."""

    user: User
    process: subprocess.Popen[bytes]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tcp_states(self, port: int) -> list[str]:
        """The states (/proc/net/tcp codes) of this smbclient's TCP connections to ``port``; ``"08"``
        (CLOSE_WAIT) means the server closed its end."""
        inodes = set()
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        states = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if fields[9] in inodes and remote_port == port:
                        states.append(fields[3])
        return states

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class SambaServer:
    """One private smbd. Use :func:`running_samba` to get a started one that cleans up after itself."""

    root: Path
    port: int = field(default_factory=free_port)
    workgroup: str = "NSTEST"
    netbios_name: str = "NSTESTSRV"
    users: dict[str, User] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    held: list[HeldSession] = field(default_factory=list)
    extra_conf: str = ""  # more [global] lines, e.g. "smb encrypt = required"

    # -- layout ----------------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.root / "smb.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment every Samba tool of this server runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NSS_WRAPPER", "LD_PRELOAD"))}
        wrapper = find_nss_wrapper()
        assert wrapper is not None
        env.update(
            LD_PRELOAD=wrapper,
            NSS_WRAPPER_PASSWD=str(self.root / "passwd"),
            NSS_WRAPPER_GROUP=str(self.root / "group"),
            NSS_WRAPPER_HOSTS=str(self.root / "hosts"),
            HOME=str(self.root),
        )
        return env

    def _write_conf(self) -> None:
        for sub in ("private", "lock", "state", "cache", "pid", "log", "ncalrpc", "share"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(
            f"""[global]
    workgroup = {self.workgroup}
    netbios name = {self.netbios_name}
    server role = standalone server
    security = user
    passdb backend = tdbsam:{r}/private/passdb.tdb
    private dir = {r}/private
    lock directory = {r}/lock
    state directory = {r}/state
    cache directory = {r}/cache
    pid directory = {r}/pid
    ncalrpc dir = {r}/ncalrpc
    log file = {r}/log/log.%m
    log level = 1
    smb ports = {self.port}
    interfaces = lo
    bind interfaces only = yes
    disable netbios = yes
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
    guest account = nobody
    map to guest = never
    server min protocol = SMB2_02
    client min protocol = SMB2_02
{self.extra_conf}

[share]
    path = {r}/share
    read only = no
"""
        )
        (r / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
        self._write_nss()

    def _write_nss(self) -> None:
        passwd = ["root:x:0:0:root:/root:/bin/false", "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"]
        members: dict[str, list[str]] = {"nsusers": [], "nsadmins": [], "nsdomadmins": []}
        for user in self.users.values():
            passwd.append(f"{user.name}:x:{user.uid}:20000:{user.name}:{self.root}:/bin/false")
            members["nsusers"].append(user.name)
            for g in user.groups:
                members[g].append(user.name)
        group = [
            "root:x:0:",
            "nogroup:x:65534:",
            f"nsusers:x:20000:{','.join(members['nsusers'])}",
            f"nsadmins:x:20001:{','.join(members['nsadmins'])}",
            f"nsdomadmins:x:20002:{','.join(members['nsdomadmins'])}",
        ]
        (self.root / "passwd").write_text("\n".join(passwd) + "\n")
        (self.root / "group").write_text("\n".join(group) + "\n")

    # -- running tools ---------------------------------------------------------------------------------

    def run(self, *argv: str, input: bytes | None = None, check: bool = True, timeout: float = 30) -> str:
        """Run a Samba tool with this server's environment; returns its stdout."""
        done = subprocess.run(
            [_tool(argv[0]), *argv[1:]],
            input=input,
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stdout.decode(errors='replace')}"
                f"{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def add_user(self, name: str, password: str, *, admin: bool = False) -> User:
        """A Unix user (in nss_wrapper's files) with a Samba password; ``admin`` puts it in BUILTIN\\
        Administrators and Domain Admins."""
        user = User(name, password, 10001 + len(self.users), ("nsadmins", "nsdomadmins") if admin else ())
        self.users[name] = user
        self._write_nss()
        pw = f"{password}\n{password}\n".encode()
        self.run("smbpasswd", "-c", str(self.conf), "-a", "-s", name, input=pw)
        return user

    def smbstatus(self) -> dict[str, Any]:
        """``smbstatus --json`` of this server."""
        out = self.run("smbstatus", "-s", str(self.conf), "--json")
        data: dict[str, Any] = json.loads(out)
        return data

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.smbstatus().get("sessions", {}).values())

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._write_conf()
        self.run("net", "-s", str(self.conf), "groupmap", "add", "sid=S-1-5-32-544", "unixgroup=nsadmins",
                 "type=builtin")
        self.run("net", "-s", str(self.conf), "groupmap", "add", "rid=512", "unixgroup=nsdomadmins",
                 "type=domain", "ntgroup=Domain Admins")
        log = open(self.root / "log" / "smbd.stdout", "wb")
        self.process = subprocess.Popen(
            [_tool("smbd"), "--foreground", "--no-process-group", "-s", str(self.conf), "--debug-stdout",
             "-d", "1"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # smbd signals its whole process group when it exits: give it one of its own.
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"smbd exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError(f"smbd did not listen on port {self.port}: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "log" / "smbd.stdout"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def own_processes(self) -> list[int]:
        """Every process whose command line names this server's smb.conf (smbd, its children, and the
        samba-dcerpcd / rpcd_* helpers smbd started): all ours, by construction."""
        return processes_naming(self.conf)

    def hold_session(self, user: User, share: str = "IPC$") -> HeldSession:
        """Start an smbclient logged on as ``user`` and wait until smbstatus shows its session."""
        before = {s["session_id"] for s in self.sessions()}
        process = subprocess.Popen(
            [_tool("smbclient"), f"//127.0.0.1/{share}", "-p", str(self.port), "-s", str(self.conf),
             "-U", f"{user.name}%{user.password}"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        held = HeldSession(user, process)
        self.held.append(held)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"smbclient for {user.name} exited with {process.returncode}")
            new = [s for s in self.sessions() if s["session_id"] not in before and s["username"] == user.name]
            if new:
                return held
            time.sleep(0.05)
        held.close()
        raise RuntimeError(f"smbclient for {user.name} did not show up in smbstatus")

    def stop(self) -> None:
        for held in self.held:
            held.close()
        self.held.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # The helpers smbd started outlive it (samba-dcerpcd calls setsid).
        stop_processes_naming(self.conf)


def processes_naming(conf: Path) -> list[int]:
    """The processes whose command line names ``conf``: an smbd started with it and every helper it
    started (they all get ``--configfile=<conf>``)."""
    marker = str(conf).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def stop_processes_naming(conf: Path) -> None:
    """SIGTERM, then SIGKILL, every process naming ``conf``, waiting up to 5 s each time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_naming(conf)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def running_samba(prefix: str = "netsession-smbd-", extra_conf: str = "") -> Iterator[SambaServer]:
    """A started private smbd with an administrator ``nsadmin`` and plain users ``alice`` and ``bob``;
    stopped and its directory removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = SambaServer(root, extra_conf=extra_conf)
    try:
        server._write_conf()
        server.add_user("nsadmin", "Adm1n-pass!", admin=True)
        server.add_user("alice", "Al1ce-pass!")
        server.add_user("bob", "B0b-pass!")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
