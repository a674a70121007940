"""Test-only encoders for the Samba structures the bridge decodes (named_pipe_auth_req level 7,
smbXsrv_session_globalB / tcon / open records), written from the IDL so the tests can vary what smbd
would send; ``ndrdump`` (Samba's own NDR parser) checks that what they build is what Samba reads."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

REF = 0x00020000


class W:
    """A little-endian NDR writer with Samba's alignment habits."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ref = REF

    def align(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def u8(self, v: int) -> None:
        self.buf += bytes([v])

    def u16(self, v: int) -> None:
        self.align(2)
        self.buf += struct.pack("<H", v)

    def u32(self, v: int) -> None:
        self.align(4)
        self.buf += struct.pack("<I", v)

    def hyper(self, v: int) -> None:
        self.align(8)
        self.buf += struct.pack("<Q", v)

    def nttime(self, v: int) -> None:
        self.align(4)
        self.buf += struct.pack("<Q", v)

    def ptr(self, present: bool) -> None:
        if present:
            self.u32(self.ref)
            self.ref += 4
        else:
            self.u32(0)

    def cstring(self, s: str) -> None:
        raw = s.encode() + b"\0"
        self.u32(len(raw))
        self.u32(0)
        self.u32(len(raw))
        self.buf += raw

    def blob(self, data: bytes) -> None:
        self.u32(len(data))
        self.buf += data

    def sid(self, text: str) -> None:
        parts = text.split("-")
        subs = [int(p) for p in parts[3:]]
        self.align(4)
        self.u8(int(parts[1]))
        self.u8(len(subs))
        self.buf += int(parts[2]).to_bytes(6, "big")
        for s in subs:
            self.u32(s)


@dataclass
class Identity:
    account: str = "alice"
    domain: str = "NSTESTSRV"
    sids: tuple[str, ...] = ("S-1-5-21-1-2-3-1001", "S-1-5-21-1-2-3-513", "S-1-1-0", "S-1-5-2", "S-1-5-11")
    uid: int = 10002
    gid: int = 20000
    groups: tuple[int, ...] = (20000,)
    strings: dict[str, str | None] = field(default_factory=dict)


def session_info(w: W, who: Identity) -> None:
    """auth_session_info: scalars, then security_token, unix_token, info, unix_info."""
    w.align(4)
    w.ptr(True)
    w.ptr(True)
    w.ptr(True)
    w.ptr(True)
    w.ptr(False)  # torture
    w.blob(bytes(range(16)))  # session_key
    w.ptr(False)  # credentials
    w.buf += bytes(range(100, 116))  # unique_session_token
    w.u16(0)  # ticket_type
    # security_token
    w.align(8)
    w.u32(len(who.sids))
    w.u32(len(who.sids))
    for s in who.sids:
        w.sid(s)
    w.hyper(0)
    w.u32(0)
    # security_unix_token: the hoisted size, then the struct
    w.u32(len(who.groups))
    w.hyper(who.uid)
    w.hyper(who.gid)
    w.u32(len(who.groups))
    for g in who.groups:
        w.hyper(g)
    # auth_user_info
    names = [who.account, None, who.domain, None, who.account, "", "", "", "", who.domain]
    w.align(4)
    w.ptr(names[0] is not None)
    w.ptr(names[1] is not None)
    w.u8(0)
    for n in names[2:]:
        w.ptr(n is not None)
    for _ in range(6):
        w.nttime(0)
    w.u16(0)
    w.u16(0)
    w.u32(0x10)
    w.u8(1)
    for n in names:
        if n is not None:
            w.cstring(n)
    # auth_user_info_unix
    w.align(4)
    w.ptr(True)
    w.ptr(True)
    w.cstring(who.account)
    w.cstring(who.account)


def npa_request(who: Identity | None = None, *, level: int = 7, client: str = "127.0.0.2",
                server: str = "127.0.0.1", client_port: int = 50000, server_port: int = 445) -> bytes:
    """A whole named_pipe_auth_req (length prefix included)."""
    w = W()
    w.buf += b"\0\0\0\0NPAM"
    w.u32(level)
    w.u32(level)
    w.u8(1)  # NCACN_NP
    w.ptr(True)
    w.ptr(True)
    w.u16(client_port)
    w.ptr(True)
    w.ptr(True)
    w.u16(server_port)
    w.ptr(who is not None)
    w.cstring("smbd-host")
    w.cstring(client)
    w.cstring("smbd-host")
    w.cstring(server)
    if who is not None:
        w.align(4)
        w.ptr(True)
        w.blob(b"")
        session_info(w, who)
    body = bytes(w.buf)
    return struct.pack(">I", len(body) - 4) + body[4:]


def server_id(w: W, pid: int, unique: int) -> None:
    w.hyper(pid)
    w.u32(0)
    w.u32(0xFFFFFFFF)
    w.hyper(unique)


@dataclass
class ChannelSpec:
    pid: int = 4242
    unique: int = 77
    local: str = "ipv4:127.0.0.1:445"
    remote: str = "ipv4:127.0.0.2:50000"


def session_global(global_id: int, who: Identity | None, channels: list[ChannelSpec], *,
                   creation: int = 134406380608256860, version: int = 0, watchers: int = 0) -> bytes:
    """An smbXsrv_session_global.tdb value: the watcher header, then smbXsrv_session_globalB."""
    w = W()
    w.u32(version)
    w.u32(6)
    w.u32(version)
    w.ptr(True)
    w.align(8)
    w.ptr(False)  # db_rec
    w.u32(global_id)
    w.hyper(global_id)
    w.nttime(creation)
    w.nttime(0x8000000000000000)
    w.nttime(creation + 1000)
    w.u32(1)
    w.ptr(who is not None)
    w.u16(0x0311)
    w.u8(6)
    w.u16(2)
    w.u8(8)
    w.u16(2)
    for _ in range(4):
        w.blob(bytes(16))
        w.ptr(False)
    w.u32(len(channels))
    for ch in channels:
        w.align(8)
        server_id(w, ch.pid, ch.unique)
        w.hyper(1)
        w.nttime(creation)
        w.cstring(ch.local)
        w.cstring(ch.remote)
        w.cstring(ch.remote.split(":")[1])
        w.blob(bytes(16))
        w.ptr(False)
        w.u32(1)
        w.ptr(False)
        w.u16(2)
        w.u16(2)
    if who is not None:
        session_info(w, who)
    header = struct.pack("<I", watchers) + bytes(32 * watchers)
    return header + bytes(w.buf)


def tcon_global(tcon_id: int, session_id: int, share: str, pid: int = 4242) -> bytes:
    w = W()
    w.u32(0)
    w.u32(1)
    w.u32(0)
    w.ptr(True)
    w.align(8)
    w.ptr(False)
    w.u32(tcon_id)
    w.u32(tcon_id)
    server_id(w, pid, 77)
    w.nttime(134406380608287140)
    w.cstring(share)
    w.u8(0)
    w.u32(session_id)
    w.u8(0)
    return bytes(w.buf)


def open_global(open_id: int, owner: str, pid: int = 4242, *, disconnected: bool = False) -> bytes:
    w = W()
    w.u32(0)
    w.u32(1)
    w.u32(0)
    w.ptr(True)
    w.align(8)
    w.ptr(False)
    server_id(w, pid, 77)
    w.u32(open_id)
    w.hyper(open_id)
    w.hyper(open_id + 1)
    w.sid(owner)
    w.nttime(134406380608287140)
    w.buf += bytes(48)  # three GUIDs
    w.nttime(134406380608300000 if disconnected else 0)
    w.u32(0)
    w.u8(0)
    w.blob(b"")
    w.u16(0)
    w.hyper(0)
    w.buf += bytes(64)
    return bytes(w.buf)
