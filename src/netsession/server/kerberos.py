"""Kerberos logons for `netsession serve --keytab FILE`: SPNEGO of our own, python-gssapi's acceptor.

:class:`NegotiateAuthenticator` stands in front of the :class:`~netsession.wire.smb2.auth.NtlmAuthenticator`:
its NEGOTIATE hint (MS-SPNG §2.2.1 NegTokenInit2) lists MS-KRB5, KRB5 and NTLMSSP, as a Windows server in
a domain does. A client whose NegTokenInit prefers Kerberos (its first mechType is MS-KRB5 or KRB5, with the
AP-REQ as mechToken) is accepted with the service key from the keytab (``gss_acquire_cred_from`` with a
``keytab`` store: the process environment is not touched); the answer is accept-completed with the AP-REP
(mutual authentication, RFC 4121) and, when the client sent one, its mechListMIC checked (RFC 4178 §5).
Everything else goes to NTLM unchanged.

Who logged on: the client principal ``user@REALM``, accepted only from the realm of the keytab's service
principal. The session's user is ``user``, its domain the realm; a local account of that name (``netsession
user add``) lends its groups (an Administrators member may enumerate at every level), and its lockout state
applies; a principal with no local account is an authenticated user without groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from netsession.wire.smb2.auth import (
    AccountLockedOut,
    AccountLookup,
    AuthContext,
    AuthenticationFailed,
    AuthStep,
    Identity,
    NtlmAuthenticator,
)
from netsession.wire.spnego import (
    KERBEROS_OID,
    MS_KERBEROS_OID,
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    SpnegoDecodeError,
    decode_token,
    encode_neg_token_init2,
    encode_neg_token_resp,
)

KERBEROS_MECHS: Final = (MS_KERBEROS_OID, KERBEROS_OID)
# The GSS session key (MS-SMB2 §3.3.5.5.3): GSS_C_INQ_SSPI_SESSION_KEY, as MIT and Heimdal expose it.
_GSS_C_INQ_SSPI_SESSION_KEY: Final = "1.2.840.113554.1.2.2.5.5"


class KeytabError(Exception):
    """The keytab cannot be used (missing, unreadable, no key, no python-gssapi): one line for the CLI."""


class NegotiateAuthenticator:
    """Kerberos with the keys of ``keytab`` in front of ``ntlm`` (see the module docstring)."""

    def __init__(self, ntlm: NtlmAuthenticator, keytab: str | Path, accounts: AccountLookup) -> None:
        try:
            import gssapi
        except ImportError as exc:
            hint = "pip install 'netsession[kerberos]'"
            raise KeytabError(f"Kerberos needs python-gssapi ({exc}; {hint})") from None
        self._gssapi: Any = gssapi
        path = Path(keytab)
        if not path.is_file():
            raise KeytabError(f"{path}: no such keytab")
        self.keytab = path
        self.ntlm = ntlm
        self.accounts = accounts
        self._creds = self._acquire()
        self.initial = encode_neg_token_init2([*KERBEROS_MECHS, NTLMSSP_OID])

    def _acquire(self) -> Any:
        """Acceptor credentials from the keytab only (any service principal it holds)."""
        gssapi = self._gssapi
        try:
            raw = gssapi.raw.acquire_cred_from({b"keytab": str(self.keytab).encode()}, usage="accept")
            return gssapi.Credentials(base=raw.creds)
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise KeytabError(f"{self.keytab}: cannot accept Kerberos with it ({text})") from None

    def initial_token(self) -> bytes:
        return self.initial

    def new_context(self) -> AuthContext:
        return _NegotiateContext(self)


class _NegotiateContext:
    """One logon: Kerberos if the client prefers it, else the NTLM context."""

    def __init__(self, authenticator: NegotiateAuthenticator) -> None:
        self._auth = authenticator
        self._ntlm: AuthContext | None = None
        self._identity: Identity | None = None
        self._session_key = b""

    # -- AuthContext -------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._ntlm.complete if self._ntlm is not None else self._identity is not None

    @property
    def identity(self) -> Identity:
        if self._ntlm is not None:
            return self._ntlm.identity
        if self._identity is None:
            raise RuntimeError("the logon is not complete")
        return self._identity

    @property
    def session_key(self) -> bytes:
        if self._ntlm is not None:
            return self._ntlm.session_key
        return self._session_key

    @property
    def awaiting_credentials(self) -> bool:
        """What the connection's pre-logon budget asks (see ServerConnection): Kerberos is one leg."""
        if self._ntlm is not None:
            return bool(getattr(self._ntlm, "awaiting_credentials", True))
        return self._identity is None

    def step(self, token: bytes) -> AuthStep:
        if self._ntlm is not None:
            return self._ntlm.step(token)
        if self._identity is not None:
            raise AuthenticationFailed("a SPNEGO token after the Kerberos logon completed")
        init = None
        try:
            init = decode_token(token)
        except SpnegoDecodeError:
            pass  # bare NTLMSSP, or garbage: NTLM's context says which
        if not (isinstance(init, NegTokenInit) and init.mech_types and init.mech_types[0] in KERBEROS_MECHS
                and init.mech_token):
            self._ntlm = self._auth.ntlm.new_context()
            return self._ntlm.step(token)
        return self._kerberos(init)

    # -- Kerberos (MS-SPNG §3.2.5.2, RFC 4121) --------------------------------------------------------

    def _kerberos(self, init: NegTokenInit) -> AuthStep:
        gssapi = self._auth._gssapi
        assert init.mech_token is not None
        try:
            ctx = gssapi.SecurityContext(creds=self._auth._creds, usage="accept")
            ap_rep = ctx.step(init.mech_token)
            complete = bool(ctx.complete)
            if complete:
                client = str(ctx.initiator_name)
                service = str(ctx.target_name) if ctx.target_name is not None else ""
                key = gssapi.raw.inquire_sec_context_by_oid(
                    ctx, gssapi.OID.from_int_seq(_GSS_C_INQ_SSPI_SESSION_KEY)
                )
        except Exception as exc:  # a ticket for a key we lack, a replay, a skewed clock: GSSError
            raise AuthenticationFailed(f"Kerberos: {' '.join(str(exc).split())}") from None
        if not complete:
            raise AuthenticationFailed("Kerberos: the AP-REQ did not complete the context (no U2U here)")
        if init.mech_list_mic is not None:
            try:
                ctx.verify_signature(init.mech_types_der, init.mech_list_mic)
            except Exception:
                raise AuthenticationFailed("Kerberos: the client's mechListMIC does not verify") from None
        user, _, realm = client.rpartition("@")
        service_realm = service.rpartition("@")[2]
        failure = AuthenticationFailed(f"Kerberos: {client} is not of the keytab's realm {service_realm}")
        failure.user, failure.domain = user or client, realm
        if not user or not realm or (service_realm and realm.casefold() != service_realm.casefold()):
            raise failure
        locked_out = self._auth.ntlm.locked_out
        if locked_out is not None and locked_out(user):
            refused = AccountLockedOut(f"Kerberos: {user} is locked out")
            refused.user, refused.domain = user, realm
            raise refused
        account = self._auth.accounts.get(user)
        groups = frozenset(account.groups) if account is not None else frozenset()
        self._session_key = bytes(key[0])
        self._identity = Identity(user=account.name if account is not None else user, domain=realm,
                                  groups=groups, client_user=user, client_domain=realm)
        answer = encode_neg_token_resp(
            NegState.ACCEPT_COMPLETED, supported_mech=init.mech_types[0], response_token=ap_rep or None
        )
        return AuthStep(answer, True)


__all__ = ["KERBEROS_MECHS", "KeytabError", "NegotiateAuthenticator"]
