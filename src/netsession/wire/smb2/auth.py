"""Who is logging on: the authenticator that SMB2 SESSION_SETUP drives (MS-SMB2 3.3.5.5.3).

The session-setup code sees two small interfaces, :class:`Authenticator` and :class:`AuthContext`::

    auth = NtlmAuthenticator(store, server_name="FS1", entropy=os.urandom, clock=time.time)
    negotiate_response.security_buffer = auth.initial_token()      # NegTokenInit2 (MS-SPNG 2.2.1)

    ctx = auth.new_context()                                       # one per SESSION_SETUP exchange
    step = ctx.step(request.security_buffer)                       # AuthenticationFailed -> LOGON_FAILURE
    # step.complete False -> STATUS_MORE_PROCESSING_REQUIRED with step.out_token
    # step.complete True  -> STATUS_SUCCESS with step.out_token; then ctx.identity, ctx.session_key

:class:`NtlmAuthenticator` speaks SPNEGO (RFC 4178, MS-SPNG) around NTLMv2 (MS-NLMP) and checks the
client against an account store (anything with ``get(name) -> account | None``). Its rules:

* The user is looked up by name only (case-insensitively); whatever domain the client sends (empty,
  ``WORKGROUP``, the server's name, ``.``, another domain) is used only as NTLMv2 defines, in NTOWFv2.
* Only NTLMv2 responses are accepted (LM and NTLMv1 are refused, LmCompatibilityLevel 5).
* Anonymous (MS-NLMP 3.2.5.1.2: empty user name and NT response, LM response empty or Z(1)) succeeds
  only with ``allow_anonymous``: identity ``is_anonymous``, session key Z(16).
* A user name the store does not know succeeds as the Guest account only with ``allow_guest``
  (MS-NLMP 3.2.5.1.2 GuestSession): identity ``is_guest``, session key Z(16), no mechListMIC.
  An account in the Guests group is a guest too (MS-SMB2 note <293>) and also needs ``allow_guest``.
  A known user with a wrong password always fails.
* SPNEGO mechListMIC (MS-SPNG note <8>): checked when the client sends one; required when the client's
  AUTHENTICATE_MESSAGE carries an NTLM MIC or when NTLM was not the client's first mechanism
  (RFC 4178 5); answered with our own when either holds or the client sent one.

Sans-I/O: the random challenge and the time come from the ``entropy`` and ``clock`` the caller passes;
the only outside call is ``accounts.get`` at the AUTHENTICATE step, so an account added, changed or
deleted in between is seen by the next logon (and by a logon in progress).
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

from netsession.groups import GUESTS
from netsession.wire.ntlm import (
    AuthenticateMessage,
    NtlmAcceptor,
    NtlmAuthError,
    NtlmDecodeError,
    NtlmSession,
    ServerNames,
    filetime,
    message_type,
)
from netsession.wire.spnego import (
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    SpnegoDecodeError,
    decode_token,
    encode_neg_token_init2,
    encode_neg_token_resp,
)

__all__ = [
    "GUEST_ACCOUNT_NAME",
    "AccountLockedOut",
    "AccountLookup",
    "AccountRecord",
    "AuthContext",
    "AuthStep",
    "AuthenticationFailed",
    "Authenticator",
    "Identity",
    "MalformedResponse",
    "NtlmAuthContext",
    "NtlmAuthenticator",
]

# MS-DTYP 2.4.2.4 / MS-NLMP 3.2.5.1.2: the account a guest logon is mapped to.
GUEST_ACCOUNT_NAME = "Guest"
# MS-NLMP 3.2.5.1.2: NullSession and GuestSession use SessionBaseKey Z(16); there is no session security.
NULL_SESSION_KEY = bytes(16)
# MS-NLMP 2.2.1.1-2.2.1.3 MessageType.
_NTLM_NEGOTIATE = 1
_NTLM_AUTHENTICATE = 3


# MS-ERREF 2.3.1: the statuses a refused logon is answered with.
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_ACCOUNT_LOCKED_OUT = 0xC0000234


class AuthenticationFailed(Exception):
    """The logon is refused. The SMB layer answers ``status`` (STATUS_LOGON_FAILURE, MS-SMB2 3.3.5.5.3).

    ``reason`` says why, for the server's audit trail only: never send it to the client. ``user``,
    ``domain``, ``workstation``: what the client's AUTHENTICATE_MESSAGE claimed, when one arrived.
    """

    status = STATUS_LOGON_FAILURE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = ""
        self.domain = ""
        self.workstation = ""


class MalformedResponse(AuthenticationFailed):
    """The AUTHENTICATE_MESSAGE itself is malformed (an NTLMv2_CLIENT_CHALLENGE whose AV_PAIRs overrun,
    say): Windows answers STATUS_INVALID_PARAMETER, not LOGON_FAILURE (Samba bug 14932; smbtorture
    smb2.session.ntlmssp_bug14932)."""

    status = STATUS_INVALID_PARAMETER


class AccountLockedOut(AuthenticationFailed):
    """The account is locked out (too many failed logons): answered STATUS_ACCOUNT_LOCKED_OUT, as Windows
    does, whatever the password."""

    status = STATUS_ACCOUNT_LOCKED_OUT


@dataclass(frozen=True)
class Identity:
    """Who a completed logon is (the GSS src_name of MS-SMB2 3.3.5.5.3, plus what the policy needs).

    ``user``/``domain``: the account as the server knows it (``domain`` is the server's name for its local
    accounts), ``"Guest"`` for a guest logon, empty for an anonymous one. ``groups``: the account's groups
    (:mod:`netsession.groups`). ``client_user``/``client_domain``/``workstation``: as the client sent them.
    """

    user: str
    domain: str
    groups: frozenset[str] = frozenset()
    is_guest: bool = False
    is_anonymous: bool = False
    client_user: str = ""
    client_domain: str = ""
    workstation: str = ""

    @property
    def principal(self) -> str:
        """``DOMAIN\\user`` (or ``""`` for an anonymous logon)."""
        return f"{self.domain}\\{self.user}" if self.domain else self.user


@dataclass(frozen=True)
class AuthStep:
    """One leg's result: the token for the SESSION_SETUP response, and whether the logon is done."""

    out_token: bytes
    complete: bool


class AuthContext(Protocol):
    """One logon in progress (one per SESSION_SETUP exchange, MS-SMB2 3.3.5.5)."""

    def step(self, token: bytes) -> AuthStep:
        """Consume the client's security buffer; raise :class:`AuthenticationFailed` to refuse."""
        ...

    @property
    def complete(self) -> bool: ...

    @property
    def identity(self) -> Identity:
        """The logged-on identity; only once ``complete``."""
        ...

    @property
    def session_key(self) -> bytes:
        """The GSS session key (16 bytes; Z(16) for guest and anonymous); only once ``complete``."""
        ...


class Authenticator(Protocol):
    """What the SMB server holds: the NEGOTIATE response token, and a fresh context per logon."""

    def initial_token(self) -> bytes: ...

    def new_context(self) -> AuthContext: ...


class AccountRecord(Protocol):
    """An account as the authenticator needs it (``netsession.server.accounts.Account`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def nt_hash(self) -> bytes: ...

    @property
    def groups(self) -> Set[str]: ...


class AccountLookup(Protocol):
    """Where accounts come from (``netsession.server.accounts.AccountStore`` is one)."""

    def get(self, name: str) -> AccountRecord | None: ...


class NtlmAuthenticator:
    """An :class:`Authenticator` for NTLMv2 inside SPNEGO (or bare NTLMSSP), against ``accounts``.

    ``server_name``: the NetBIOS computer name (TargetName, MsvAvNbComputerName and MsvAvNbDomainName, as a
    server outside a domain sends them, MS-NLMP 3.2.5.1.1); ``dns_name``: MsvAvDnsComputerName (default:
    ``server_name`` in lower case; Windows always sends it and impacket's client needs it).
    ``entropy(n)`` gives n random bytes (``os.urandom``), ``clock()`` the Unix time (``time.time``).
    """

    def __init__(
        self,
        accounts: AccountLookup,
        *,
        server_name: str,
        entropy: Callable[[int], bytes],
        clock: Callable[[], float],
        dns_name: str = "",
        allow_guest: bool = False,
        allow_anonymous: bool = False,
        locked_out: Callable[[str], bool] | None = None,
    ) -> None:
        if not server_name:
            raise ValueError("server_name is required")
        self.accounts = accounts
        self.server_name = server_name
        self.names = ServerNames(server_name, server_name, dns_name or server_name.lower())
        self.entropy = entropy
        self.clock = clock
        self.allow_guest = allow_guest
        self.allow_anonymous = allow_anonymous
        # Asked with the account name before a password is checked: True refuses with AccountLockedOut.
        self.locked_out = locked_out
        # MS-SPNG 2.2.1: the server's NegTokenInit2 lists the mechanisms it accepts: NTLM only.
        self._initial_token = encode_neg_token_init2([NTLMSSP_OID])

    def initial_token(self) -> bytes:
        """The NegTokenInit2 for the SMB2 NEGOTIATE response's security buffer (MS-SMB2 3.3.5.4)."""
        return self._initial_token

    def new_context(self) -> NtlmAuthContext:
        return NtlmAuthContext(self)


class _State(Enum):
    START = auto()  # nothing received yet
    WANT_NEGOTIATE = auto()  # SPNEGO agreed on NTLM but no NEGOTIATE_MESSAGE came with it
    WANT_AUTHENTICATE = auto()  # CHALLENGE_MESSAGE sent
    DONE = auto()
    FAILED = auto()


@dataclass
class _Result:
    identity: Identity
    session_key: bytes
    ntlm: NtlmSession | None  # None for guest and anonymous logons: no session security


class NtlmAuthContext:
    """One logon through :class:`NtlmAuthenticator` (an :class:`AuthContext`)."""

    def __init__(self, authenticator: NtlmAuthenticator) -> None:
        self._auth = authenticator
        self._acceptor = NtlmAcceptor(authenticator.names)
        self._state = _State.START
        self._spnego = True
        self._mech_types_der: bytes | None = None
        self._mic_required = False
        self._result: _Result | None = None
        self._claimed = ("", "", "")  # user, domain, workstation of the AUTHENTICATE_MESSAGE

    # -- results

    @property
    def complete(self) -> bool:
        return self._state is _State.DONE

    def _done(self) -> _Result:
        if self._result is None or self._state is not _State.DONE:
            raise RuntimeError("the logon is not complete")
        return self._result

    @property
    def identity(self) -> Identity:
        return self._done().identity

    @property
    def awaiting_credentials(self) -> bool:
        """True when the next token should be the AUTHENTICATE_MESSAGE (the leg that checks a password)."""
        return self._state is _State.WANT_AUTHENTICATE

    @property
    def session_key(self) -> bytes:
        return self._done().session_key

    # -- the exchange

    def step(self, token: bytes) -> AuthStep:
        if self._state in (_State.DONE, _State.FAILED):
            raise AuthenticationFailed("this logon is already finished")
        try:
            return self._step(bytes(token))
        except AuthenticationFailed as e:
            self._failed(e)
            raise
        except NtlmDecodeError as e:
            error = MalformedResponse if self._state is _State.WANT_AUTHENTICATE else AuthenticationFailed
            raise self._failed(error(f"malformed token: {e}")) from e
        except SpnegoDecodeError as e:
            raise self._failed(AuthenticationFailed(f"malformed token: {e}")) from e
        except NtlmAuthError as e:
            raise self._failed(AuthenticationFailed(str(e))) from e

    def _failed(self, error: AuthenticationFailed) -> AuthenticationFailed:
        self._state = _State.FAILED
        error.user, error.domain, error.workstation = self._claimed
        return error

    def _step(self, token: bytes) -> AuthStep:
        if self._state is _State.START:
            return self._first(token)
        if self._state is _State.WANT_NEGOTIATE:
            resp = self._neg_token_resp(token)
            challenge = self._challenge(resp.response_token)
            self._state = _State.WANT_AUTHENTICATE
            out = encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, response_token=challenge)
            return AuthStep(out, False)
        # WANT_AUTHENTICATE
        client_mic: bytes | None = None
        if self._spnego:
            resp = self._neg_token_resp(token)
            ntlm_token, client_mic = resp.response_token, resp.mech_list_mic
        else:
            ntlm_token = token
        if ntlm_token is None or message_type(ntlm_token) != _NTLM_AUTHENTICATE:
            raise AuthenticationFailed("expected an NTLM AUTHENTICATE_MESSAGE")
        auth = self._acceptor.authenticate(ntlm_token)
        self._claimed = (auth.user_name, auth.domain_name, auth.workstation)
        result = self._logon(auth)
        out = self._final_token(result, auth, client_mic) if self._spnego else b""
        self._result = result
        self._state = _State.DONE
        return AuthStep(out, True)

    def _first(self, token: bytes) -> AuthStep:
        if not token:
            # RFC 4178 3.2 / MS-SPNG: an empty first token asks the acceptor to start (NegTokenInit2).
            return AuthStep(self._auth.initial_token(), False)
        if message_type(token) is not None:  # bare NTLMSSP, no SPNEGO (MS-SPNG note <8>)
            self._spnego = False
            challenge = self._challenge(token)
            self._state = _State.WANT_AUTHENTICATE
            return AuthStep(challenge, False)
        init = decode_token(token)
        if not isinstance(init, NegTokenInit):
            raise AuthenticationFailed("a logon must start with NegTokenInit")
        if NTLMSSP_OID not in init.mech_types:
            offered = ", ".join(init.mech_types)
            raise AuthenticationFailed(f"no mechanism in common: the client offers {offered}")
        self._mech_types_der = init.mech_types_der
        # RFC 4178 5: when the chosen mechanism is not the initiator's first, the MIC exchange is required,
        # the acceptor says so with request-mic, and the optimistic token (for that other mechanism) is
        # dropped.
        preferred = init.mech_types[0] == NTLMSSP_OID
        self._mic_required = not preferred
        if preferred and init.mech_token is not None:
            challenge = self._challenge(init.mech_token)
            self._state = _State.WANT_AUTHENTICATE
            out = encode_neg_token_resp(
                NegState.ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=challenge
            )
        else:
            self._state = _State.WANT_NEGOTIATE
            state = NegState.REQUEST_MIC if self._mic_required else NegState.ACCEPT_INCOMPLETE
            out = encode_neg_token_resp(state, supported_mech=NTLMSSP_OID)
        return AuthStep(out, False)

    def _neg_token_resp(self, token: bytes) -> NegTokenResp:
        resp = decode_token(token)
        if not isinstance(resp, NegTokenResp):
            raise AuthenticationFailed("expected NegTokenResp")
        if resp.neg_state is NegState.REJECT:
            raise AuthenticationFailed("the client rejected the negotiation")
        return resp

    def _challenge(self, negotiate: bytes | None) -> bytes:
        if negotiate is None or message_type(negotiate) != _NTLM_NEGOTIATE:
            raise AuthenticationFailed("expected an NTLM NEGOTIATE_MESSAGE")
        return self._acceptor.challenge(
            negotiate, server_challenge=self._auth.entropy(8), timestamp=filetime(self._auth.clock())
        )

    def _logon(self, auth: AuthenticateMessage) -> _Result:
        """MS-NLMP 3.2.5.1.2 with this server's policy (see the module docstring)."""
        server = self._auth.server_name

        def identity(
            user: str, domain: str, groups: frozenset[str], guest: bool, anonymous: bool
        ) -> Identity:
            return Identity(
                user, domain, groups, guest, anonymous, auth.user_name, auth.domain_name, auth.workstation
            )

        if auth.is_anonymous:
            if not self._auth.allow_anonymous:
                raise AuthenticationFailed("anonymous logons are not allowed")
            return _Result(identity("", "", frozenset(), False, True), NULL_SESSION_KEY, None)
        account = self._auth.accounts.get(auth.user_name) if auth.user_name else None
        if account is None:
            if not self._auth.allow_guest:
                raise AuthenticationFailed(f"no account {auth.user_name!r}, and guest logons are off")
            guest = identity(GUEST_ACCOUNT_NAME, server, frozenset({GUESTS}), True, False)
            return _Result(guest, NULL_SESSION_KEY, None)
        if self._auth.locked_out is not None and self._auth.locked_out(account.name):
            raise AccountLockedOut(f"account {account.name!r} is locked out")
        groups = frozenset(account.groups)
        is_guest = GUESTS in groups
        if is_guest and not self._auth.allow_guest:
            raise AuthenticationFailed(f"account {account.name!r} is a guest, and guest logons are off")
        session = self._acceptor.verify(auth, account.nt_hash, now=filetime(self._auth.clock()))
        return _Result(
            identity(account.name, server, groups, is_guest, False), session.exported_session_key, session
        )

    def _final_token(self, result: _Result, auth: AuthenticateMessage, client_mic: bytes | None) -> bytes:
        if result.ntlm is None:
            # Guest and anonymous logons have no session security (MS-NLMP 3.4): no mechListMIC either way.
            return encode_neg_token_resp(NegState.ACCEPT_COMPLETED)
        assert self._mech_types_der is not None  # set whenever SPNEGO is in use
        mic_needed = self._mic_required or auth.mic is not None or client_mic is not None
        if client_mic is not None:
            if not result.ntlm.verify_signature(self._mech_types_der, client_mic):
                raise AuthenticationFailed("the SPNEGO mechListMIC is wrong")
        elif mic_needed:
            raise AuthenticationFailed("the SPNEGO mechListMIC is missing (MS-SPNG note <8>)")
        mic = result.ntlm.sign(self._mech_types_der) if mic_needed else None
        return encode_neg_token_resp(NegState.ACCEPT_COMPLETED, mech_list_mic=mic)
