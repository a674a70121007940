"""When each TCP connection last received data: the kernel's ``tcp_info.tcpi_last_data_recv``.

smbd keeps a session's idle time in its own memory only. The kernel, though, knows for every TCP socket
how many milliseconds ago data last arrived on it — ``tcpi_last_data_recv`` (``include/uapi/linux/tcp.h``;
``ss -ti`` prints it as ``lastrcv``). It counts segments that carry payload, so every SMB2 request and
every SMB2 ECHO resets it, while pure ACKs and TCP keepalive probes (no payload) do not. It is per
*connection*: sessions multiplexed on one connection share it.

:func:`last_data_recv` asks for it through NETLINK_SOCK_DIAG (``inet_diag``), one dump per address
family of the TCP sockets in ESTABLISHED or CLOSE_WAIT with the INET_DIAG_INFO extension, and indexes
the answer by (local address, local port, remote address, remote port). Linux only; elsewhere (or without
permission) the map is empty and the caller falls back. Address strings are parsed once (cached): the
same connections come back on every call.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import struct
from typing import Final

NETLINK_SOCK_DIAG: Final = 4
SOCK_DIAG_BY_FAMILY: Final = 20
NLM_F_REQUEST: Final = 0x01
NLM_F_DUMP: Final = 0x300
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
INET_DIAG_INFO: Final = 2
TCP_ESTABLISHED: Final = 1
TCP_CLOSE_WAIT: Final = 8
# struct tcp_info: 8 bytes of u8 fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked, lost,
# retrans, fackets, last_data_sent (44), last_ack_sent (48), last_data_recv (52), last_ack_recv (56).
TCPI_LAST_DATA_RECV: Final = 52

_NLMSGHDR: Final = struct.Struct("=IHHII")
_REQ_V2: Final = struct.Struct("=BBBxI")  # family, protocol, ext, pad, states
_SOCKID: Final = struct.Struct(">HH16s16s")  # sport, dport (big-endian), src, dst; then if, cookie
_DIAG_MSG_HEAD: Final = 4  # family, state, timer, retrans
_DIAG_MSG_LEN: Final = 72
_RTATTR: Final = struct.Struct("=HH")

Endpoint = tuple[str, int, str, int]  # local address, local port, remote address, remote port


def _request(family: int, seq: int) -> bytes:
    states = (1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT)
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), states) + bytes(48)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


@functools.lru_cache(maxsize=1 << 14)
def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    addr = ipaddress.IPv6Address(raw)
    mapped = addr.ipv4_mapped
    return str(mapped) if mapped is not None else str(addr)


def parse_dump(family: int, data: bytes, out: dict[Endpoint, int]) -> bool:
    """Add the (endpoint -> ms since last data received) of one netlink answer; True at NLMSG_DONE."""
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size or pos + length > len(data):
            return True
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            raise OSError("sock_diag answered with an error")
        if kind == SOCK_DIAG_BY_FAMILY:
            msg = data[pos + _NLMSGHDR.size : pos + length]
            if len(msg) >= _DIAG_MSG_LEN:
                sport, dport, src, dst = _SOCKID.unpack_from(msg, _DIAG_MSG_HEAD)
                apos = _DIAG_MSG_LEN
                while apos + _RTATTR.size <= len(msg):
                    alen, atype = _RTATTR.unpack_from(msg, apos)
                    if alen < _RTATTR.size:
                        break
                    if atype == INET_DIAG_INFO and alen >= _RTATTR.size + TCPI_LAST_DATA_RECV + 4:
                        (last,) = struct.unpack_from("=I", msg, apos + _RTATTR.size + TCPI_LAST_DATA_RECV)
                        out[(_address(family, src), sport, _address(family, dst), dport)] = last
                    apos += (alen + 3) & ~3
        pos += (length + 3) & ~3
    return False


def last_data_recv() -> dict[Endpoint, int]:
    """Milliseconds since each local TCP socket last received data, by (local, lport, remote, rport).
    Empty when sock_diag is not available."""
    out: dict[Endpoint, int] = {}
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError):
        return out
    with sock:
        sock.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=os.getpid() & 0xFFFF):
            try:
                sock.sendto(_request(family, seq), (0, 0))
                while not parse_dump(family, sock.recv(1 << 17), out):
                    pass
            except OSError:
                continue
    return out


@functools.lru_cache(maxsize=1 << 16)
def parse_tsocket_address(text: str) -> tuple[str, int] | None:
    """Samba's tsocket address string (``ipv4:10.0.0.5:445``, ``ipv6:fd00::5:445``) as (address, port)."""
    kind, _, rest = text.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    addr, _, port = rest.rpartition(":")
    try:
        parsed = ipaddress.ip_address(addr.strip("[]"))
        mapped = getattr(parsed, "ipv4_mapped", None)
        return str(mapped if mapped is not None else parsed), int(port)
    except ValueError:
        return None
