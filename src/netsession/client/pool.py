"""Credentials per server, and the srvsvc connections the session functions reuse.

``register_session(server, ...)`` records how to log on to a server (in the style of smbprotocol's
``smbclient.register_session``); every later call naming that server uses it. A server nobody registered
gets the credentials of the environment, for scripts:

=======================  ===============================================================================
``NETSESSION_USERNAME``  user name; ``DOMAIN\\user`` or ``DOMAIN/user`` carry the domain
``NETSESSION_PASSWORD``  password (NTLM)
``NETSESSION_NT_HASH``   NT hash, 32 hex digits, instead of a password (NTLM pass-the-hash)
``NETSESSION_DOMAIN``    domain, if the user name has none
``NETSESSION_ENCRYPT``   ``1``/``yes``/``true``: require SMB 3 encryption
``NETSESSION_KERBEROS``  ``1``/``yes``/``true``: Kerberos only (a ticket from ``kinit``)
``NETSESSION_PORT``      TCP port when neither the server name nor a registration gives one (445)
``NETSESSION_TIMEOUT``   seconds to wait for a connection or an answer (30)
=======================  ===============================================================================

With no user name at all, pyspnego looks for a Kerberos ticket (or its NTLM_USER_FILE).

A connection (SMB session, IPC$ tree connect, srvsvc pipe, bound association) is kept per server and
credentials, reused by later calls, and closed at exit. If a kept connection turns out to be broken, it is
re-established once: the call is repeated on the new one when that is safe — before the request went out,
or for the read-only calls.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from netsession.client.names import Target, parse_server
from netsession.client.rpc import SrvsvcClient
from netsession.client.transport import (
    DEFAULT_TIMEOUT,
    PipeTransport,
    SmbPipeTransport,
    TransportError,
    UnixSocketTransport,
)
from netsession.errors import ERROR_INVALID_PARAMETER, NetApiError, shown
from netsession.paths import local_srvsvc_socket

DEFAULT_PORT: Final = 445
AUTH_PROTOCOLS: Final = ("negotiate", "ntlm", "kerberos")
_NT_HASH: Final = re.compile(r"^[0-9a-fA-F]{32}$")
_TRUE: Final = frozenset(("1", "yes", "true", "on"))
_FALSE: Final = frozenset(("", "0", "no", "false", "off"))

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to log on to a server. Secrets stay out of ``repr``."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    domain: str | None = None
    nt_hash: str | None = field(default=None, repr=False)
    encrypt: bool = False
    auth_protocol: str = "negotiate"
    allow_guest: bool = False  # accept a server that logs us on as guest (then nothing is signed)

    def __post_init__(self) -> None:
        if self.nt_hash is not None and not _NT_HASH.match(self.nt_hash):
            raise NetApiError(
                ERROR_INVALID_PARAMETER, "register_session", "The NT hash must be 32 hexadecimal digits."
            )
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise NetApiError(
                ERROR_INVALID_PARAMETER, "register_session", f"auth_protocol must be one of {AUTH_PROTOCOLS}"
            )


@dataclass(frozen=True, slots=True)
class Registration:
    credentials: Credentials
    port: int | None


def split_user(user: str) -> tuple[str | None, str]:
    r"""``DOMAIN\user`` or ``DOMAIN/user`` -> (DOMAIN, user); a plain name has no domain."""
    for sep in ("\\", "/"):
        if sep in user:
            domain, name = user.split(sep, 1)
            return domain or None, name
    return None, user


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials the NETSESSION_* variables describe (all fields None when none is set)."""
    env = os.environ if environ is None else environ
    user = env.get("NETSESSION_USERNAME") or None
    domain = env.get("NETSESSION_DOMAIN") or None
    if user is not None:
        user_domain, user = split_user(user)
        domain = user_domain or domain
    kerberos = _env_bool("NETSESSION_KERBEROS", env)
    return Credentials(
        username=user,
        password=env.get("NETSESSION_PASSWORD") or None,
        domain=domain,
        nt_hash=env.get("NETSESSION_NT_HASH") or None,
        encrypt=_env_bool("NETSESSION_ENCRYPT", env),
        auth_protocol="kerberos" if kerberos else "negotiate",
    )


def _env_bool(name: str, environ: Mapping[str, str]) -> bool:
    """A yes/no variable; anything else is refused (as a bad number is), not read as "no"."""
    text = environ.get(name, "")
    word = text.strip().lower()
    if word not in _TRUE | _FALSE:
        raise NetApiError(ERROR_INVALID_PARAMETER, "", f"The parameter is incorrect. ({name}={shown(text)})")
    return word in _TRUE


def _env_number(name: str, default: float, environ: Mapping[str, str]) -> float:
    text = environ.get(name)
    if not text:
        return default
    bad = NetApiError(ERROR_INVALID_PARAMETER, "", f"The parameter is incorrect. ({name}={shown(text)})")
    try:
        value = float(text)
    except ValueError:
        raise bad from None
    if not value > 0:
        raise bad
    return value


TransportFactory = Callable[[Target | None, Credentials, int, float], PipeTransport]


def default_transport_factory(
    target: Target | None, creds: Credentials, port: int, timeout: float
) -> PipeTransport:
    """SMB for a remote server, the local server's Unix socket for ``None``."""
    if target is None:
        return UnixSocketTransport(local_srvsvc_socket(), timeout=timeout)
    return SmbPipeTransport(
        target.host,
        port,
        username=creds.username,
        password=creds.password,
        domain=creds.domain,
        nt_hash=creds.nt_hash,
        encrypt=creds.encrypt,
        auth_protocol=creds.auth_protocol,
        timeout=timeout,
    )


class _Slot:
    """One cached connection and the lock that serialises calls on it."""

    __slots__ = ("client", "lock")

    def __init__(self) -> None:
        self.client: SrvsvcClient | None = None
        self.lock = threading.Lock()


class ConnectionPool:
    """Registrations and kept connections. The session functions use :func:`current_pool`."""

    def __init__(
        self,
        transport_factory: TransportFactory = default_transport_factory,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._factory = transport_factory
        self._environ = environ
        self._registrations: dict[str, Registration] = {}
        self._slots: dict[tuple[object, ...], _Slot] = {}
        self._lock = threading.Lock()

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    # -- credentials -------------------------------------------------------------------------------

    def register(self, server: str, credentials: Credentials, port: int | None = None) -> None:
        """Use ``credentials`` (and ``port``) for every later call to ``server``."""
        target = parse_server(server, "register_session")
        if target is None:
            raise NetApiError(
                ERROR_INVALID_PARAMETER, "register_session", "The local computer takes no credentials."
            )
        if target.port is not None:
            port = target.port
        with self._lock:
            self._registrations[target.key] = Registration(credentials, port)
        self.close(server)

    def resolve(self, target: Target | None) -> tuple[Credentials, int, float]:
        """The credentials, port and timeout a call to ``target`` uses."""
        env = self.environ
        timeout = _env_number("NETSESSION_TIMEOUT", DEFAULT_TIMEOUT, env)
        if target is None:
            return Credentials(), 0, timeout
        registration = self._registrations.get(target.key)
        creds = registration.credentials if registration is not None else credentials_from_env(env)
        port = target.port
        if port is None and registration is not None:
            port = registration.port
        if port is None:
            port = int(_env_number("NETSESSION_PORT", DEFAULT_PORT, env))
        return creds, port, timeout

    # -- connections -------------------------------------------------------------------------------

    def _slot(self, key: tuple[object, ...]) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            return slot

    def _connect(self, target: Target | None, creds: Credentials, port: int, timeout: float) -> SrvsvcClient:
        client = SrvsvcClient(
            self._factory(target, creds, port, timeout), server_name=None if target is None else target.unc
        )
        client.connect()
        return client

    def run(
        self, server: str | None, call: Callable[[SrvsvcClient], _T], *, funcname: str, idempotent: bool
    ) -> _T:
        """Run ``call`` on the kept connection to ``server`` (connecting if needed). A NetApiError from
        below gets ``funcname``; a broken kept connection is re-established once (see the module doc)."""
        try:
            target = parse_server(server, funcname)
            creds, port, timeout = self.resolve(target)
            if target is None:
                key: tuple[object, ...] = ("local", str(local_srvsvc_socket(self.environ)))
            else:
                key = (target.key, port, creds)
            slot = self._slot(key)
            with slot.lock:
                kept = slot.client
                reused = kept is not None and kept.usable
                if kept is not None and not reused:
                    slot.client = None
                    kept.close()
                client = kept if kept is not None and reused else self._connect(target, creds, port, timeout)
                slot.client = client
                try:
                    return call(client)
                except TransportError as exc:
                    slot.client = None
                    client.close()
                    if not reused or (exc.delivered and not idempotent):
                        raise
                client = slot.client = self._connect(target, creds, port, timeout)
                try:
                    return call(client)
                except TransportError:
                    slot.client = None
                    client.close()
                    raise
        except NetApiError as exc:
            # Name the function the caller called (the layers below leave it empty).
            if not exc.funcname:
                exc.funcname = funcname
                exc.args = (exc.winerror, funcname, exc.strerror)
            raise

    def close(self, server: str | None = None) -> None:
        """Close kept connections: all, or those to one server."""
        wanted: str | None = None
        if server is not None:
            target = parse_server(server)
            wanted = "local" if target is None else target.key
        with self._lock:
            items = [(k, s) for k, s in self._slots.items() if wanted is None or k[0] == wanted]
            for k, _ in items:
                del self._slots[k]
        for _, slot in items:
            client, slot.client = slot.client, None
            if client is not None:
                client.close()

    def clear(self) -> None:
        """Forget every registration and close every connection."""
        with self._lock:
            self._registrations.clear()
        self.close()


_pool = ConnectionPool()
atexit.register(lambda: _pool.close())


def current_pool() -> ConnectionPool:
    """The pool the session functions use."""
    return _pool


def set_pool(pool: ConnectionPool) -> ConnectionPool:
    """Make ``pool`` the one the session functions use; returns the previous one (for tests)."""
    global _pool
    previous, _pool = _pool, pool
    return previous


def register_session(
    server: str,
    username: str | None = None,
    password: str | None = None,
    domain: str | None = None,
    port: int = DEFAULT_PORT,
    encrypt: bool = False,
    nt_hash: str | None = None,
    *,
    auth_protocol: str = "negotiate",
) -> None:
    r"""Log on to ``server`` with these credentials in every later call that names it.

    ``username`` may carry the domain (``DOMAIN\user``). ``nt_hash`` (32 hex digits) replaces the password
    for NTLM. With neither, Kerberos is used if a ticket is available (``auth_protocol="kerberos"`` insists
    on it; it needs python-gssapi). ``encrypt=True`` requires SMB 3 encryption. A port in the server name
    (``fs1:4455``) wins over ``port``.

    >>> register_session(r"\\fs1", "alice", "s3cret!", domain="CORP")   # doctest: +SKIP
    >>> NetSessionEnum(10, r"\\fs1")                                     # doctest: +SKIP
    """
    if username is not None:
        user_domain, username = split_user(username)
        domain = domain or user_domain
    creds = Credentials(username, password, domain, nt_hash, bool(encrypt), auth_protocol)
    _pool.register(server, creds, port)
