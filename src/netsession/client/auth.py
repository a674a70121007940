"""Who the client logs on as: the :class:`Initiator` shape every SESSION_SETUP is driven through, and
the choice between our NTLMv2 initiator and Kerberos.

An initiator turns the server's SPNEGO tokens into ours (MS-SMB2 §3.2.5.3.1, MS-SPNG §3.3.5)::

    token = initiator.step(negotiate_response_token or None)
    while token is not None:
        reply = SESSION_SETUP(token)
        token = initiator.step(reply.security_buffer)
    initiator.complete, initiator.session_key

:func:`initiator_for` picks one from :class:`~netsession.client.pool.Credentials`:

- ``auth_protocol="kerberos"``: :class:`netsession.client.kerberos.KerberosInitiator` (pyspnego/GSSAPI);
- a password or an NT hash: NTLMv2 (:class:`~netsession.wire.ntlm_initiator.NtlmInitiator`);
- an empty user name and no password: the anonymous (null session) logon;
- no password at all: Kerberos if it is available, else a clear one-line error
  (:class:`~netsession.client.errors.TransportError` with reason ``"credentials"``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from netsession.client.errors import CREDENTIALS, UNSUPPORTED, TransportError
from netsession.wire.ntlm_initiator import NtlmInitiator

if TYPE_CHECKING:
    from netsession.client.pool import Credentials


@runtime_checkable
class Initiator(Protocol):
    """A GSS initiator as the SMB client drives it (see the module docstring)."""

    def step(self, in_token: bytes | None) -> bytes | None:
        """The next token for SESSION_SETUP, or None when nothing more is to be sent."""

    @property
    def complete(self) -> bool:
        """Whether the security context is established."""

    @property
    def session_key(self) -> bytes:
        """The GSS session key (MS-SMB2 §3.2.5.3.1: Session.SessionKey is its first 16 bytes)."""


@functools.lru_cache(maxsize=256)
def _nt_hash(password: str) -> bytes:
    from netsession.server.accounts import nt_hash

    return nt_hash(password)


def _kerberos(host: str, creds: Credentials) -> Initiator:
    try:
        from netsession.client import kerberos  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise TransportError(None, f"Kerberos is not available ({exc})", reason=UNSUPPORTED) from None
    factory = getattr(kerberos, "KerberosInitiator", None)
    if factory is None:
        raise TransportError(None, "Kerberos is not available in this build", reason=UNSUPPORTED)
    try:
        made: Initiator = factory(host, username=creds.username, password=creds.password, domain=creds.domain)
    except TransportError:
        raise
    except Exception as exc:  # pyspnego/GSSAPI: no ticket, no library...
        hint = "no password, and no usable Kerberos ticket" if creds.password is None else "Kerberos"
        raise TransportError(None, f"{host}: {hint}: {exc}", reason=CREDENTIALS) from None
    return made


def initiator_for(host: str, creds: Credentials) -> Initiator:
    """The initiator for logging on to ``host`` with ``creds`` (see the module docstring)."""
    if creds.auth_protocol == "kerberos":
        return _kerberos(host, creds)
    if creds.nt_hash is not None or creds.password is not None:
        if creds.username is None:
            raise TransportError(None, f"{host}: a password was given but no user name", reason=CREDENTIALS)
        key = bytes.fromhex(creds.nt_hash) if creds.nt_hash is not None else _nt_hash(creds.password or "")
        return NtlmInitiator(creds.username, nt_hash=key, domain=creds.domain, target=f"cifs/{host}")
    if creds.username == "":
        return NtlmInitiator("")  # anonymous
    if creds.auth_protocol == "ntlm":
        raise TransportError(None, f"{host}: NTLM needs a password or an NT hash", reason=CREDENTIALS)
    try:
        return _kerberos(host, creds)
    except TransportError as exc:
        raise TransportError(
            None,
            f"{host}: no password, and no usable Kerberos ticket (set NETSESSION_PASSWORD, or kinit)"
            f" [{exc.detail}]",
            reason=CREDENTIALS,
        ) from None


__all__ = ["Initiator", "initiator_for"]
