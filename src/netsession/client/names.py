r"""Server and client names as the session functions take them.

A **server** may be written ``\\name``, ``name``, an IPv4 address, ``[v6]`` (or a bare IPv6 address),
each optionally followed by ``:port`` (``[v6]:port`` for IPv6). ``None``, ``""``, ``"."`` and ``\\.``
mean the local computer — the local netsession server's Unix socket.

>>> parse_server(r"\\fs1")
Target(host='fs1', port=None)
>>> parse_server("[2001:db8::1]:4455")
Target(host='2001:db8::1', port=4455)
>>> parse_server(None) is None
True

A **client name** (sesiN_cname, the UncClientName filter) is the client's computer name or address in
Windows' UNC form: :func:`unc_client` adds the ``\\`` a server such as Samba leaves out and brackets IPv6.

>>> unc_client("10.0.0.5"), unc_client(r"\\10.0.0.5"), unc_client("::1")
('\\\\10.0.0.5', '\\\\10.0.0.5', '\\\\[::1]')
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from netsession.errors import NERR_InvalidComputer, NetApiError, shown

UNC_PREFIX: Final = "\\\\"
LOCAL_NAMES: Final = frozenset(("", "."))
# Characters no host name, address or NetBIOS name contains (and that would confuse a UNC path).
_FORBIDDEN: Final = frozenset('\\/"<>|*?,;= \t\r\n\0')


@dataclass(frozen=True, slots=True)
class Target:
    """A remote server: host name or address (IPv6 without brackets) and the port, if the name gave one."""

    host: str
    port: int | None = None

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def unc(self) -> str:
        r"""``\\host`` (``\\[v6]``), what Windows sends as a call's ServerName."""
        return f"{UNC_PREFIX}[{self.host}]" if self.is_ipv6 else UNC_PREFIX + self.host

    @property
    def key(self) -> str:
        """The host, case-folded: what registrations and cached connections are filed under."""
        return self.host.casefold()


def _invalid(server: str, why: str, funcname: str) -> NetApiError:
    detail = f"This computer name is invalid. ({shown(server)}: {why})"
    return NetApiError(NERR_InvalidComputer, funcname, detail)


def _port(text: str, server: str, funcname: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _invalid(server, f"bad port {shown(text)}", funcname)
    return int(text)


def parse_server(server: str | None, funcname: str = "") -> Target | None:
    """The target a server name designates; None for the local computer. Raises NetApiError
    (NERR_InvalidComputer) for a name that cannot be one."""
    if server is None:
        return None
    if not isinstance(server, str):
        raise _invalid(repr(server), "not a string", funcname)
    text = server.strip()
    if text.startswith(UNC_PREFIX):
        text = text[2:]
    if text in LOCAL_NAMES:
        return None
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _invalid(server, "unclosed '['", funcname)
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise _invalid(server, f"unexpected {shown(rest)} after ']'", funcname)
            port = _port(rest[1:], server, funcname)
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise _invalid(server, "not an IPv6 address inside [...]", funcname) from None
        return Target(host, port)
    colons = text.count(":")
    if colons >= 2:
        try:
            ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise _invalid(server, "not an IPv6 address (write [v6]:port for a port)", funcname) from None
        return Target(text, None)
    host = text
    if colons == 1:
        host, port_text = text.split(":")
        port = _port(port_text, server, funcname)
    if not host or any(c in _FORBIDDEN for c in host):
        raise _invalid(server, "not a host name or address", funcname)
    return Target(host, port)


def unc_client(name: str | None) -> str | None:
    r"""A client name in Windows' ``\\name`` form; None and ``""`` stay None (no filter / NULL)."""
    if not name:
        return None
    bare = name[2:] if name.startswith(UNC_PREFIX) else name
    if ":" in bare and not bare.startswith("["):
        try:
            ipaddress.IPv6Address(bare.split("%", 1)[0])
        except ValueError:
            pass
        else:
            return f"{UNC_PREFIX}[{bare}]"
    return name if name.startswith(UNC_PREFIX) else UNC_PREFIX + name


def same_client(a: str | None, b: str | None) -> bool:
    """Whether two client names designate the same client (UNC form, case-insensitive)."""
    ua, ub = unc_client(a), unc_client(b)
    return ua is not None and ub is not None and ua.casefold() == ub.casefold()
