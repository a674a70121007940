#!/usr/bin/env python3
"""Issue 9's attacks, replayed against `netsession serve` and, where the attack applies, against Samba's
smbd in the same run; the figures the issue asks for beside each.

    .venv/bin/python bench/bench_attacks.py            # everything (a few minutes)
    .venv/bin/python bench/bench_attacks.py oid guess  # some: oid partial setups opens guess

* oid      — SESSION_SETUPs whose SPNEGO mechTypes hold one OID with a 60 KB arc, against random tokens
             of the same size: server CPU per byte (the figure: the OID costs no more than random bytes).
* partial  — unauthenticated connections, each holding a partial frame just under the largest frame it
             may send before logon: the server's memory (figure: 1,000 connections < 100 MB).
* setups   — SESSION_SETUPs with SessionId 0 on one connection: memory (figure: < 1 MB).
* opens    — a plain user opens pipes and never reads the answers to its calls: memory
             (figure: < 100 MB however many opens).
* guess    — 20 connections of one address guessing passwords: answered guesses per second after the
             first few (figure: <= 1/s).
During each attack a legitimate logon from another address (127.0.0.2) is timed (figure: < 1 s).

Memory is the server's USS (private pages) after minus before; smbd's is the sum over its processes.
The attacks are raw sockets with netsession's own codecs and pyspnego's NTLM (a test dependency); the
legitimate logon is netsession's client engine.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import spnego
from _peers import (
    ADMIN,
    HOST,
    USER,
    cpu_seconds,
    free_port,
    machine_line,
    memory,
    print_table,
    raise_nofile,
    running_smbd,
    smbd_children,
)

from netsession.wire.smb2.constants import Dialect, NtStatus, SecurityMode
from netsession.wire.smb2.header import Smb2Header
from netsession.wire.smb2.messages import SessionSetupRequest, decode_response
from netsession.wire.smb2.negotiate import NegotiateRequest
from netsession.wire.smb2.transport import DirectTcpDeframer, frame

MB = 1e6
LEGIT_SOURCE = "127.0.0.2"
ATTACK_SOURCE = "127.0.0.3"


# -- an attacker: exactly the bytes it sends, unsigned, no keys (legitimate logons are the engine's) ----


class Raw:
    def __init__(self, port: int, source: str = ATTACK_SOURCE, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0))
        self.message_id = 0
        self.deframer = DirectTcpDeframer()

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()

    def send(self, command_body: object, *, session_id: int = 0, credits: int = 1) -> None:
        command = command_body.COMMAND
        header = Smb2Header(
            command=command, credits=credits, message_id=self.message_id, session_id=session_id
        )
        self.message_id += 1
        self.sock.sendall(frame(header.encode() + command_body.encode()))  # type: ignore[attr-defined]

    def recv(self) -> tuple[Smb2Header, object]:
        while True:
            message = self.deframer.next_message()
            if message is not None:
                return decode_response(message)
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed by the server")
            self.deframer.feed(data)

    def negotiate(self) -> None:
        self.send(NegotiateRequest((Dialect.SMB_2_1,), SecurityMode.SIGNING_ENABLED, 0, uuid4()), credits=64)
        header, _ = self.recv()
        assert header.status == 0, hex(header.status)

    def setup(self, token: bytes, session_id: int = 0) -> tuple[int, int, bytes]:
        """One SESSION_SETUP; (status, session id, token)."""
        request = SessionSetupRequest(token, security_mode=SecurityMode.SIGNING_ENABLED)
        self.send(request, session_id=session_id, credits=8)
        header, body = self.recv()
        return header.status, header.session_id, getattr(body, "security_buffer", b"")

    def logon(self, user: str, password: str) -> int:
        ntlm = spnego.client(user, password, hostname="bench", protocol="ntlm")
        token = ntlm.step()
        session_id = 0
        while True:
            status, session_id, out = self.setup(token, session_id)
            if status != NtStatus.STATUS_MORE_PROCESSING_REQUIRED:
                return status
            token = ntlm.step(out)


def uuid4() -> object:
    import uuid

    return uuid.uuid4()


def legit_logon_seconds(port: int, user: tuple[str, str]) -> float:
    """A legitimate user's logon meanwhile, from another address, by netsession's own client."""
    from _smb import logon

    start = time.perf_counter()
    logon(HOST, port, *user, timeout=120.0, bind_address=LEGIT_SOURCE).close()
    return time.perf_counter() - start


# -- the servers ------------------------------------------------------------------------------------------


class Target:
    name: str
    port: int

    def cpu(self) -> float: ...

    def uss(self) -> int: ...


class Netsession(Target):
    name = "netsession serve"

    def __init__(self, *serve_options: str) -> None:
        from netsession.groups import ADMINISTRATORS, USERS
        from netsession.server.accounts import AccountStore, nt_hash

        self.root = Path(tempfile.mkdtemp(prefix="netsession-attacks-"))
        with AccountStore(str(self.root / "accounts.db")) as store:
            store.add_user(ADMIN[0], nt_hash(ADMIN[1]), (ADMINISTRATORS,))
            store.add_user(USER[0], nt_hash(USER[1]), (USERS,))
        self.port = free_port()
        self.log = open(self.root / "serve.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from netsession.cli import main; sys.exit(main())", "serve",
             "--state-dir", str(self.root), "--listen", f"{HOST}:{self.port}", "--log-level", "warning",
             "--max-connections", "20000", *serve_options],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while not (self.root / "srvsvc.sock").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"netsession serve did not start: {(self.root / 'serve.log').read_text()}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def uss(self) -> int:
        return memory(self.process.pid).uss

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


class Smbd(Target):
    name = "Samba smbd"

    def __init__(self, samba: object) -> None:
        self.samba = samba
        self.port = samba.port  # type: ignore[attr-defined]
        self.pid = samba.process.pid  # type: ignore[attr-defined]

    def cpu(self) -> float:
        return cpu_seconds(self.pid, reaped_children=True) + sum(
            cpu_seconds(p, reaped_children=True) for p in smbd_children(self.samba)
        )

    def uss(self) -> int:
        total = memory(self.pid).uss
        for pid in smbd_children(self.samba):
            with suppress(OSError, KeyError):
                total += memory(pid).uss
        return total


@contextmanager
def netsession(*options: str) -> Iterator[Netsession]:
    server = Netsession(*options)
    try:
        yield server
    finally:
        server.stop()


# -- the attacks ------------------------------------------------------------------------------------------


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def oid_token(arc_octets: int) -> bytes:
    arc = b"\x2b" + b"\xff" * arc_octets + b"\x01"
    init = der(0xA0, der(0x30, der(0xA0, der(0x30, der(0x06, arc)))))
    return der(0x60, der(0x06, bytes.fromhex("2b0601050502")) + init)


def attack_oid(target: Target, messages: int = 200) -> list[list[str]]:
    """Interleaved (OID, random, OID, random...) so that drift hits both alike; CPU per connection."""
    token = oid_token(60_000)
    rnd = random.Random(1).randbytes(len(token))
    spent = {"60 KB OID arc": 0.0, "random token": 0.0}
    legit: list[float] = []
    for i in range(messages):
        for what, payload in (("60 KB OID arc", token), ("random token", rnd)):
            before = target.cpu()
            raw = Raw(target.port)
            try:
                raw.negotiate()
                raw.setup(payload)
            except (ConnectionError, OSError):
                pass
            finally:
                raw.close()
            time.sleep(0.002)  # let the server finish with the connection before reading its CPU
            spent[what] += target.cpu() - before
        if i % 50 == 25:
            legit.append(legit_logon_seconds(target.port, USER))
    return [
        [target.name, what, f"{cpu / messages * 1e3:.2f} ms",
         f"{cpu / (messages * len(token)) * 1e9:.1f} ns/B",
         f"{max(legit):.3f} s"]
        for what, cpu in spent.items()
    ]


def attack_partial(target: Target, connections: int) -> list[str]:
    limit = 0x10000 + 256  # netsession's PRE_LOGON_MAX_MESSAGE; smbd takes more, this is what both take
    base = target.uss()
    held = []
    for _ in range(connections):
        raw = Raw(target.port)
        raw.negotiate()
        raw.sock.sendall(limit.to_bytes(4, "big") + bytes(limit - 1))
        held.append(raw)
    time.sleep(1.0)
    grown = target.uss() - base
    legit = legit_logon_seconds(target.port, USER)
    for raw in held:
        raw.close()
    return [target.name, f"{connections} connections", f"{grown / MB:.1f} MB", f"{legit:.3f} s"]


def attack_setups(target: Target, setups: int = 20_000) -> list[str]:
    raw = Raw(target.port)
    raw.negotiate()
    token = spnego.client(USER[0], USER[1], hostname="bench", protocol="ntlm").step()
    base = target.uss()
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    try:
        for _ in range(setups):
            status, _, _ = raw.setup(token)
            statuses[status] = statuses.get(status, 0) + 1
    except (ConnectionError, OSError) as exc:
        statuses[-1] = statuses.get(-1, 0) + 1
        print(f"  {target.name}: connection ended after {sum(statuses.values())} setups: {exc}")
    took = time.perf_counter() - start
    grown = target.uss() - base
    legit = legit_logon_seconds(target.port, USER)
    raw.close()
    kept = statuses.get(NtStatus.STATUS_MORE_PROCESSING_REQUIRED, 0)
    return [target.name, f"{sum(statuses.values())} in {took:.1f} s", f"{kept} kept",
            f"{grown / MB:.2f} MB", f"{legit:.3f} s"]


def attack_opens(target: Netsession, opens: int = 30) -> list[str]:
    from _smb import logon

    from netsession.client.loop import run
    from netsession.client.smb import SmbPipe
    from netsession.wire.dcerpc import ClientAssociation, Request
    from netsession.wire.srvsvc import SRVSVC_PIPE, NetrSessionEnumRequest, Opnum

    held = logon(HOST, target.port, USER[0], USER[1])
    base = target.uss()
    refused = 0
    stub = NetrSessionEnumRequest(level=10).encode()

    async def flood() -> int:
        nonlocal refused
        smb = held.smb
        tree = await smb.tree_connect("IPC$")
        written = 0
        for _ in range(opens):
            fid = await smb.create_pipe(tree, SRVSVC_PIPE)
            pipe = SmbPipe(smb, tree, fid, SRVSVC_PIPE)
            assoc = ClientAssociation()
            from netsession.server.pipes import SRVSVC_SYNTAX

            assoc.bind(SRVSVC_SYNTAX)
            try:
                await pipe.transceive(b"".join(assoc.data_to_send()))
            except Exception:
                refused += 1
                continue
            for call_id in range(2, 2000):
                try:
                    await pipe.write(Request(call_id, 0, Opnum.NetrSessionEnum, stub).encode())
                    written += 1
                except Exception:  # STATUS_PIPE_BUSY: this account's unread budget is spent
                    refused += 1
                    break
        return written

    written = run(flood())
    grown = target.uss() - base
    legit = legit_logon_seconds(target.port, USER)
    held.close()
    time.sleep(7)  # the server hands freed memory back at most every 5 s (listener.TRIM_INTERVAL)
    after = target.uss() - base
    return [target.name, f"{opens} opens, {written} calls unread", f"{refused} refused",
            f"{grown / MB:.1f} MB", f"{after / MB:.1f} MB", f"{legit:.3f} s"]


def attack_guess(target: Target, seconds: float = 20.0, connections: int = 20) -> list[str]:
    answered: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def guesser() -> None:
        raw: Raw | None = None
        while time.monotonic() < stop:
            try:
                if raw is None:
                    raw = Raw(target.port, timeout=seconds + 30)
                    raw.negotiate()
                status = raw.logon(ADMIN[0], f"guess-{random.random()}")
                assert status != 0
                with lock:
                    answered.append(time.monotonic())
            except (ConnectionError, OSError):
                if raw is not None:
                    raw.close()
                raw = None
        if raw is not None:
            raw.close()

    threads = [threading.Thread(target=guesser, daemon=True) for _ in range(connections)]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    legit = legit_logon_seconds(target.port, ADMIN)
    for t in threads:
        t.join(seconds + 60)
    answered.sort()
    later = [t for t in answered if t > start + 5]  # after the first few
    rate = len(later) / max(seconds - 5, 1e-9)
    return [target.name, f"{len(answered)} in {seconds:.0f} s", f"{rate:.2f}/s", f"{legit:.3f} s"]


def main(argv: list[str]) -> int:
    raise_nofile()
    wanted = set(argv) or {"oid", "partial", "setups", "opens", "guess"}
    print(machine_line())
    with running_smbd() as samba:
        smbd = Smbd(samba)
        if "oid" in wanted:
            rows = []
            with netsession() as ours:
                rows += attack_oid(ours)
            rows += attack_oid(smbd)
            print("\nSESSION_SETUP with a 60 KB OID arc vs a random token of the same size (200 each, one")
            print("connection each: NEGOTIATE + SESSION_SETUP; server CPU, connection handling included)")
            print_table(["server", "token", "CPU/message", "CPU/byte", "legit logon"], rows)
        if "partial" in wanted:
            rows = []
            with netsession() as ours:
                rows.append(attack_partial(ours, 1000))
            rows.append(attack_partial(smbd, 100))
            print("\nunauthenticated connections, each holding a 64 KiB partial frame")
            print_table(["server", "connections", "memory held", "legit logon"], rows)
        if "setups" in wanted:
            rows = []
            with netsession() as ours:
                rows.append(attack_setups(ours))
            rows.append(attack_setups(smbd))
            print("\nSESSION_SETUPs with SessionId 0 on one connection")
            print_table(["server", "setups", "contexts", "memory held", "legit logon"], rows)
        if "guess" in wanted:
            rows = []
            with netsession() as ours:
                rows.append(attack_guess(ours))
            rows.append(attack_guess(smbd))
            print("\nwrong passwords from one address, 20 connections (answered guesses; rate after 5 s)")
            print_table(["server", "answered", "guesses/s", "legit logon (other address)"], rows)
    if "opens" in wanted:
        with netsession("--sessions", "random:3000") as ours:
            rows = [attack_opens(ours)]
        print("\na plain user's pipes, calls written and never read (3,000-row table, level 10)")
        print_table(["server", "opens", "writes refused", "memory held", "after disconnect", "legit logon"],
                    rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
