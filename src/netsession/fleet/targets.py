r"""Scan targets: names, addresses, ``[v6]``, ``host:port`` and CIDR ranges, read lazily.

A target is written like a server of the session commands (``fs1``, ``\\fs1``, ``10.0.0.5``,
``[2001:db8::1]:4455``, ``fs1:4455``), or as a network: ``10.0.0.0/24``, ``10.0.0.0/24:4455``,
``2001:db8::/120`` or ``[2001:db8::/120]:4455``. A network is expanded as it is consumed (its usable host
addresses, :meth:`ipaddress.IPv4Network.hosts`): a /16 is never a list in memory, and neither is a target
file, which is read a line at a time (``#`` starts a comment; blank lines are skipped; ``-`` is standard
input).

A token that is no target is reported through ``on_error`` (one line each) and skipped; the rest go on.

>>> [t.key for t in iter_targets(["fs1", "10.0.0.0/30:4455", "[::1]"])]
['fs1:445', '10.0.0.1:4455', '10.0.0.2:4455', '[::1]:445']
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, TextIO

from netsession.client.names import parse_server
from netsession.errors import NetApiError

DEFAULT_PORT: Final = 445
# A network bigger than this is refused: 2**24 hosts (a /8) at a few hundred hosts a second is weeks.
MAX_NETWORK_HOSTS: Final = 1 << 24


class TargetError(ValueError):
    """A token that designates no target; ``str()`` is the one line to report."""


class TargetFileError(OSError):
    """A target file that cannot be read (reported before any traffic)."""


@dataclass(frozen=True, slots=True)
class HostTarget:
    """One host to scan: a name or an address (IPv6 without brackets) and the TCP port."""

    host: str
    port: int = DEFAULT_PORT

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def key(self) -> str:
        """``host:port`` (``[v6]:port``), case-folded: what results and resume state are filed under."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host.casefold()}:{self.port}"


def _split_port(text: str) -> tuple[str, int | None]:
    """``[v6/len]:port``, ``v4/len:port`` -> (network text, port)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise TargetError(f"{text!r}: unclosed '['")
        inner, rest = text[1:end], text[end + 1 :]
        if not rest:
            return inner, None
        if not rest.startswith(":"):
            raise TargetError(f"{text!r}: unexpected {rest!r} after ']'")
        return inner, _port(rest[1:], text)
    if text.count(":") == 1:
        net, port = text.split(":")
        return net, _port(port, text)
    return text, None


def _port(text: str, token: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TargetError(f"{token!r}: bad port {text!r}")
    return int(text)


def parse_target(token: str, default_port: int = DEFAULT_PORT) -> Iterator[HostTarget]:
    """The hosts ``token`` designates, lazily. Raises :class:`TargetError` (before yielding anything)
    for a token that is no target."""
    text = token.strip()
    if not text:
        raise TargetError("empty target")
    if "/" in text and not text.startswith("\\\\"):
        net_text, port = _split_port(text)
        try:
            network = ipaddress.ip_network(net_text, strict=False)
        except ValueError as exc:
            raise TargetError(f"{token!r}: not a network ({exc})") from None
        if network.num_addresses > MAX_NETWORK_HOSTS:
            raise TargetError(f"{token!r}: more than {MAX_NETWORK_HOSTS} addresses")
        return _hosts(network, port or default_port)
    try:
        target = parse_server(text)
    except NetApiError as exc:
        raise TargetError(f"{token!r}: {exc.strerror}") from None
    if target is None:
        raise TargetError(f"{token!r}: the local computer is not a scan target")
    return iter((HostTarget(target.host, target.port or default_port),))


def _hosts(network: ipaddress.IPv4Network | ipaddress.IPv6Network, port: int) -> Iterator[HostTarget]:
    for address in network.hosts():  # a generator: nothing is listed in advance
        yield HostTarget(str(address), port)


def network_size(token: str) -> int:
    """How many hosts ``token`` designates (0 when it is no target), without expanding it."""
    text = token.strip()
    if "/" in text and not text.startswith("\\\\"):
        try:
            network = ipaddress.ip_network(_split_port(text)[0], strict=False)
        except ValueError:
            return 0
        hosts = network.num_addresses
        if network.version == 4 and network.prefixlen < 31:
            hosts -= 2
        elif network.version == 6 and network.prefixlen < 127:
            hosts -= 1
        return hosts
    return 1 if text else 0


def _file_tokens(path: str, stdin: TextIO) -> Iterator[str]:
    stream: TextIO
    if path == "-":
        stream = stdin
    else:
        try:
            stream = open(path, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise TargetFileError(f"cannot read the target file {path}: {exc.strerror or exc}") from None
    try:
        for line in stream:
            text = line.split("#", 1)[0].strip()
            if text:
                yield from text.split()
    finally:
        if stream is not stdin:
            stream.close()


def check_files(paths: Iterable[str]) -> None:
    """Raise :class:`TargetFileError` if a target file cannot be opened (checked before any traffic)."""
    for path in paths:
        if path == "-":
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TargetFileError(f"cannot read the target file {path}: {exc.strerror or exc}") from None


def count_targets(tokens: Iterable[str], files: Iterable[str] = ()) -> int | None:
    """How many hosts the targets make (for a progress bar), or None when a file is standard input."""
    total = sum(network_size(t) for t in tokens)
    for path in files:
        if path == "-":
            return None
        total += sum(network_size(t) for t in _file_tokens(path, sys.stdin))
    return total


def iter_targets(
    tokens: Iterable[str],
    files: Iterable[str] = (),
    *,
    default_port: int = DEFAULT_PORT,
    on_error: Callable[[str], None] | None = None,
    stdin: TextIO | None = None,
) -> Iterator[HostTarget]:
    """Every host the command-line tokens and the target files designate, in order, lazily."""
    source = stdin if stdin is not None else sys.stdin

    def all_tokens() -> Iterator[str]:
        yield from tokens
        for path in files:
            yield from _file_tokens(path, source)

    for token in all_tokens():
        try:
            hosts = parse_target(token, default_port)
        except TargetError as exc:
            if on_error is not None:
                on_error(str(exc))
            continue
        yield from hosts
