"""A private Samba AD domain controller for Kerberos tests: a KDC and the DC's own smbd, on loopback only.

Why Samba's AD DC rather than MIT krb5-kdc with a keytab for a standalone smbd: one ``samba-tool domain
provision`` gives the KDC, the accounts and an SMB server that accepts their tickets and answers srvsvc,
with no keytab plumbing or principal creation of our own, and Kerberos logons reach a server that checks
the PAC the way a Windows DC's clients expect.

Everything lives in one temporary directory: ``samba-tool domain provision --targetdir`` (about 7 s of
CPU here, once per test run), then an smb.conf of our own that keeps every path in that directory, runs
only the services needed (``s3fs`` for smbd, ``kdc``, ``winbindd``), and binds only ``lo`` on free ports
(``smb ports``, ``krb5 port``, ``kpasswd port``). ``samba -i -M single`` runs as our child with a pipe on
its stdin: it exits when the pipe closes, so even a killed test run cannot leave it behind for long.

The DC's smbd maps the logged-on SIDs to uids through winbindd and looks them up with getpwuid(), which
needs winbind in the name service; /etc/nsswitch.conf is never touched: nss_wrapper (LD_PRELOAD) with
``NSS_WRAPPER_MODULE_SO_PATH=libnss_winbind.so.2`` gives the DC's processes a name service of their own,
and ``SELFTEST_WINBINDD_SOCKET_DIR`` points libwbclient at this winbindd (the way Samba's selftest does).

Clients use a krb5.conf of their own (``KRB5_CONFIG``: the realm's KDC at 127.0.0.1:<port>, no DNS, no
canonicalisation) and one credential cache per user (``KRB5CCNAME``); ``/etc/krb5.conf`` is never read.
The DC's machine account gets the SPN ``cifs/127.0.0.1`` so a client that connects by address can ask for
a ticket; ``hosts`` (for nss_wrapper, ``NSS_WRAPPER_HOSTS``) maps the DC's own name to 127.0.0.1 for the
client processes that connect by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from samba import find_nss_wrapper, stop_processes_naming

TOOLS = ("samba", "samba-tool", "kinit", "klist")
NSS_WINBIND_NAMES = ("libnss_winbind.so.2",)
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64", "/usr/lib")
START_TIMEOUT = 60.0
ADMIN_PASSWORD = "Adm1n-Pass-dc!"


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def find_nss_winbind() -> str | None:
    for directory in LIB_DIRS:
        for name in NSS_WINBIND_NAMES:
            if (Path(directory) / name).exists():
                return str(Path(directory) / name)
    return None


def missing_prerequisites() -> str | None:
    """Why a private AD DC cannot be started here, or None if it can."""
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install samba-ad-dc krb5-user)"
    if find_nss_wrapper() is None:
        return "nss_wrapper not installed (apt-get install libnss-wrapper)"
    if find_nss_winbind() is None:
        return "libnss_winbind not installed (apt-get install libnss-winbind)"
    if os.geteuid() != 0:
        return "the AD DC's smbd needs root"
    return None


def gssapi_missing() -> str | None:
    """Why pyspnego cannot do Kerberos in this interpreter, or None."""
    try:
        import gssapi  # noqa: F401
        import krb5  # noqa: F401
    except ImportError as exc:
        return f"python-gssapi/krb5 not installed ({exc}; pip install 'netsession[kerberos]')"
    return None


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (the KDC listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass
class DomainUser:
    name: str
    password: str
    admin: bool = False


@dataclass
class ActiveDirectoryDC:
    """One private AD DC. Use :func:`running_ad_dc` to get a started one that cleans up after itself."""

    root: Path
    realm: str = "NETSESSION.TEST"
    domain: str = "NSKRB"
    host_name: str = "nsdc"
    smb_port: int = field(default_factory=free_port)
    kdc_port: int = field(default_factory=free_port)
    kpasswd_port: int = field(default_factory=free_port)
    users: dict[str, DomainUser] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    provision_seconds: float = 0.0

    # -- layout ----------------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "smb.conf"

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def fqdn(self) -> str:
        return f"{self.host_name}.{self.realm.lower()}"

    @property
    def hosts(self) -> Path:
        """An nss_wrapper hosts file that names the DC (for client processes started with
        :meth:`name_env`)."""
        return self.root / "hosts"

    def ccache(self, user: str) -> Path:
        return self.root / "ccache" / user

    def client_env(self, user: str) -> dict[str, str]:
        """KRB5_CONFIG and KRB5CCNAME for a client logging on as ``user`` (after :meth:`kinit`)."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": f"FILE:{self.ccache(user)}"}

    def name_env(self) -> dict[str, str]:
        """LD_PRELOAD nss_wrapper with :attr:`hosts`, so a client process resolves :attr:`fqdn`."""
        wrapper = find_nss_wrapper()
        assert wrapper is not None
        return {"LD_PRELOAD": wrapper, "NSS_WRAPPER_HOSTS": str(self.hosts),
                "NSS_WRAPPER_PASSWD": str(self.root / "passwd"),
                "NSS_WRAPPER_GROUP": str(self.root / "group")}

    @property
    def server_env(self) -> dict[str, str]:
        """The environment of the DC's processes (see the module docstring)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NSS_WRAPPER", "LD_PRELOAD", "KRB5", "SELFTEST"))}
        winbind = find_nss_winbind()
        assert winbind is not None
        env.update(self.name_env())
        env.update(
            NSS_WRAPPER_MODULE_SO_PATH=winbind,
            NSS_WRAPPER_MODULE_FN_PREFIX="winbind",
            SELFTEST_WINBINDD_SOCKET_DIR=str(self.root / "winbindd"),
            KRB5_CONFIG=str(self.krb5_conf),
            HOME=str(self.root),
        )
        return env

    # -- setting up ------------------------------------------------------------------------------------

    def run(self, *argv: str, input: bytes | None = None, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run([_tool(argv[0]), *argv[1:]], input=input, capture_output=True,
                              env=env if env is not None else self.server_env, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def _write_nss(self) -> None:
        """nss_wrapper's files: the accounts the provision looks up (root, nobody, nogroup, users); the
        domain's users come from winbind."""
        r = self.root
        self.hosts.write_text(f"127.0.0.1 {self.fqdn} {self.host_name} localhost\n::1 localhost\n")
        (r / "passwd").write_text("root:x:0:0:root:/root:/bin/false\n"
                                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        (r / "group").write_text("root:x:0:\nusers:x:100:\nnogroup:x:65534:\n")

    def provision(self) -> None:
        self._write_nss()
        started = time.monotonic()
        self.run("samba-tool", "domain", "provision", f"--realm={self.realm}", f"--domain={self.domain}",
                 "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", f"--targetdir={self.root}",
                 f"--host-name={self.host_name}", f"--adminpass={ADMIN_PASSWORD}",
                 "--option=interfaces=lo", "--option=bind interfaces only=yes")
        self.provision_seconds = time.monotonic() - started
        self._write_conf()
        self.samba_tool("spn", "add", "cifs/127.0.0.1", f"{self.host_name.upper()}$")

    def _write_conf(self) -> None:
        r = self.root
        for sub in ("pid", "log", "ncalrpc", "winbindd", "ntp_signd", "cache", "ccache", "bind-dns"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        # Everything the provision's own smb.conf left to defaults outside the directory is set here.
        self.conf.write_text(
            f"""[global]
    netbios name = {self.host_name.upper()}
    realm = {self.realm}
    workgroup = {self.domain}
    server role = active directory domain controller
    server services = s3fs, kdc, winbindd
    private dir = {r}/private
    lock directory = {r}
    state directory = {r}/state
    cache directory = {r}/cache
    pid directory = {r}/pid
    ncalrpc dir = {r}/ncalrpc
    binddns dir = {r}/bind-dns
    winbindd socket directory = {r}/winbindd
    ntp signd socket directory = {r}/ntp_signd
    log file = {r}/log/log.%m
    log level = 1 auth_audit:4
    interfaces = lo
    bind interfaces only = yes
    smb ports = {self.smb_port}
    krb5 port = {self.kdc_port}
    kpasswd port = {self.kpasswd_port}
    disable netbios = yes
    idmap_ldb:use rfc2307 = yes
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
"""
        )
        self.krb5_conf.write_text(
            f"""[libdefaults]
    default_realm = {self.realm}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1

[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{self.kdc_port}
    }}

[domain_realm]
    .{self.realm.lower()} = {self.realm}
    {self.realm.lower()} = {self.realm}
"""
        )

    def samba_tool(self, *argv: str) -> str:
        return self.run("samba-tool", *argv, "-s", str(self.conf))

    def add_user(self, name: str, password: str, *, admin: bool = False) -> DomainUser:
        """A domain user; ``admin`` adds it to Domain Admins (which the DC's srvsvc asks of
        NetSessionEnum callers)."""
        self.samba_tool("user", "add", name, password)
        if admin:
            self.samba_tool("group", "addmembers", "Domain Admins", name)
        user = self.users[name] = DomainUser(name, password, admin)
        return user

    def kinit(self, user: DomainUser) -> dict[str, str]:
        """Get ``user`` a TGT with kinit (the password on stdin) into a cache of its own; returns the
        client environment that uses it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env.update(self.client_env(user.name))
        password = f"{user.password}\n".encode()
        self.run("kinit", f"{user.name}@{self.realm}", input=password, env=env, timeout=30)
        return self.client_env(user.name)

    def service_tickets(self, user: str) -> list[str]:
        """The service principals ``user``'s credential cache holds tickets for (klist)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        env.update(self.client_env(user))
        out = self.run("klist", env=env, check=False, timeout=30)
        # Lines "MM/DD/YY HH:MM:SS  MM/DD/YY HH:MM:SS  service/host@REALM".
        return re.findall(r"^\d\S+ \S+\s+\d\S+ \S+\s+(\S+)$", out, flags=re.M)

    # -- running ---------------------------------------------------------------------------------------

    def start(self) -> None:
        log = open(self.root / "log" / "samba.stdout", "wb")
        self.process = subprocess.Popen(
            [_tool("samba"), "-i", "-M", "single", "-s", str(self.conf), "--debug-stdout"],
            env=self.server_env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        pending = {self.smb_port, self.kdc_port}
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(f"samba exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"samba did not listen on {sorted(pending)}: {self.log_tail()}")
            for port in list(pending):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    pending.discard(port)
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "log" / "samba.stdout"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kerberos_authorizations(self) -> list[str]:
        """The users smbd admitted with a Kerberos ticket, in order: its ``Successful AuthZ: [SMB2,krb5]``
        log lines (auth_audit level 4)."""
        found = []
        for path in sorted(p for p in (self.root / "log").iterdir() if p.is_file()):
            with contextlib.suppress(OSError):
                found += re.findall(r"Successful AuthZ: \[SMB2,krb5\] user \[[^]]*\]\\\[([^]]*)\]",
                                    path.read_text(errors="replace"))
        return found

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()  # samba -i ends at EOF on stdin
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        # smbd, winbindd, samba-dcerpcd and its rpcd_* call setsid: end every process naming our smb.conf.
        stop_processes_naming(self.conf)


@contextlib.contextmanager
def running_ad_dc(prefix: str = "netsession-addc-") -> Iterator[ActiveDirectoryDC]:
    """A provisioned, started DC with a Domain Admin ``nsadmin`` and a plain user ``alice``; stopped and
    its directory removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    dc = ActiveDirectoryDC(root)
    try:
        dc.provision()
        dc.add_user("nsadmin", "Adm1n-pass!23", admin=True)
        dc.add_user("alice", "Al1ce-pass!23")
        dc.start()
        yield dc
    finally:
        dc.stop()
        shutil.rmtree(root, ignore_errors=True)
