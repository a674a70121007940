"""The Kerberos initiator of a SESSION_SETUP: SPNEGO of our own around pyspnego's GSSAPI Kerberos context.

The SPNEGO layer (RFC 4178, MS-SPNG §3.1.5) is :mod:`netsession.wire.spnego`; the Kerberos mechanism
(RFC 4121: the AP-REQ, the AP-REP of mutual authentication, the session key, MICs) is pyspnego's
``protocol="kerberos"`` context over python-gssapi and the system's Kerberos library, so the ticket comes
from the usual credential cache (``kinit``; ``KRB5CCNAME`` and ``KRB5_CONFIG`` are honoured) or, given a
password, from an in-memory ``kinit`` of pyspnego's.

Only Kerberos is offered: the NegTokenInit lists MS-KRB5 then KRB5 (the order Windows uses, MS-SPNG §3.1.5.1)
with the optimistic AP-REQ as its mechToken, so a server that cannot do Kerberos refuses it instead of
falling back to NTLM. The service principal is ``cifs/<host>`` (MS-SMB2 §3.2.4.2.3), the host as given.

Everything that goes wrong becomes one :class:`~netsession.client.errors.TransportError` line: reason
``"unsupported"`` when python-gssapi is missing or the server offers no Kerberos, ``"credentials"`` when
there is no usable ticket (or the KDC refused), ``"protocol"`` for a malformed or rejected SPNEGO answer.
"""

from __future__ import annotations

import re
from typing import Any, Final

from netsession.client.errors import CREDENTIALS, PROTOCOL, UNSUPPORTED, TransportError
from netsession.wire.spnego import (
    KERBEROS_OID,
    MS_KERBEROS_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    SpnegoDecodeError,
    decode_token,
    encode_mech_type_list,
    encode_neg_token_init,
    encode_neg_token_resp,
)

SERVICE: Final = "cifs"
# MS-SPNG §3.1.5.1: Windows lists the Microsoft Kerberos OID first, then the standard one.
MECH_TYPES: Final = (MS_KERBEROS_OID, KERBEROS_OID)
_INSTALL_HINT: Final = "pip install 'netsession[kerberos]'"


def _one_line(exc: BaseException) -> str:
    """A pyspnego/GSSAPI error as one short line: the Kerberos library's own words (the GSS minor
    status) when there are some, e.g. "No Kerberos credentials available (default cache: FILE:/tmp/x)"."""
    text = " ".join(str(exc).split())
    minor = re.search(r"Minor \(\d+\): (.+?)(?:, Context: .*)?$", text)
    if minor:
        text = minor.group(1)
    return text[:300] + ("..." if len(text) > 300 else "")


def _principal(username: str | None, domain: str | None) -> str | None:
    """``user@REALM`` for an in-memory kinit: a name with a realm stays as it is; a dotted domain is the
    realm; otherwise the default realm of krb5.conf applies."""
    if not username:
        return None
    if "@" in username or not domain or "." not in domain:
        return username
    return f"{username}@{domain.upper()}"


class KerberosInitiator:
    """One SPNEGO/Kerberos logon to ``host`` (see the module docstring).

    ``step(token)`` takes the server's SPNEGO token (None, b"" or the NEGOTIATE response's NegTokenInit2
    hint at first) and returns the next SESSION_SETUP security buffer, or None when the exchange is over;
    then :attr:`complete` is True and :attr:`session_key` is the GSS session key (MS-SMB2 §3.2.5.3.1 takes
    its first 16 bytes as Session.SessionKey, and all of it as FullSessionKey).
    """

    # The first step may talk to the KDC (a TGS exchange for cifs/<host>): the asyncio driver runs steps
    # in a worker thread, bounded by the call's deadline (client/smb.py).
    may_block: Final = True

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        domain: str | None = None,
        service: str = SERVICE,
    ) -> None:
        try:
            import spnego
            from spnego.exceptions import SpnegoError
        except ImportError as exc:  # pragma: no cover - pyspnego is a runtime dependency
            raise TransportError(None, f"Kerberos is not available ({exc})", reason=UNSUPPORTED) from None
        self.host = host
        self.spn = f"{service}/{host}"
        self._spnego_error: type[Exception] = SpnegoError
        principal = _principal(username, domain)
        if password is not None and principal is None:
            raise TransportError(None, f"{host}: a password was given but no user name", reason=CREDENTIALS)
        try:
            self._ctx: Any = spnego.client(
                principal, password, hostname=host, service=service, protocol="kerberos"
            )
        except ImportError as exc:
            raise TransportError(
                None, f"Kerberos is not available ({exc}; {_INSTALL_HINT})", reason=UNSUPPORTED
            ) from None
        except Exception as exc:
            raise self._error(exc) from None
        self._started = False
        self._done = False

    def __repr__(self) -> str:
        return f"KerberosInitiator({self.host!r}, complete={self.complete})"

    # -- the Initiator shape -----------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._done

    @property
    def session_key(self) -> bytes:
        if not self._done:
            raise TransportError(None, f"{self.host}: the Kerberos logon is not complete", reason=PROTOCOL)
        key: bytes = self._ctx.session_key
        return key

    def step(self, in_token: bytes | None) -> bytes | None:
        if self._done:
            if in_token:
                raise TransportError(None, f"{self.host}: SPNEGO token after the logon completed",
                                     reason=PROTOCOL)
            return None
        if not self._started:
            self._started = True
            if in_token:
                self._check_hint(in_token)
            ap_req = self._gss_step(None)
            if ap_req is None:
                raise TransportError(None, f"{self.host}: Kerberos produced no AP-REQ", reason=CREDENTIALS)
            return encode_neg_token_init(MECH_TYPES, mech_token=ap_req)
        if not in_token:
            raise TransportError(None, f"{self.host}: the server sent no SPNEGO answer", reason=PROTOCOL)
        return self._answer(self._decode_resp(in_token))

    # -- SPNEGO (RFC 4178 §5, MS-SPNG §3.1.5) -----------------------------------------------------------

    def _check_hint(self, token: bytes) -> None:
        """The NegTokenInit2 of the NEGOTIATE response (MS-SPNG §3.2.5.2): advisory, but a server that lists
        mechanisms and no Kerberos one cannot accept a ticket."""
        try:
            hint = decode_token(token)
        except SpnegoDecodeError:
            return  # only a hint (RFC 4178 §4.2.1: the initiator may ignore it)
        if isinstance(hint, NegTokenInit) and hint.mech_types:
            if not any(m in MECH_TYPES for m in hint.mech_types):
                offered = ", ".join(hint.mech_types)
                raise TransportError(
                    None, f"{self.host}: the server offers no Kerberos logon (only {offered})",
                    reason=UNSUPPORTED,
                )

    def _decode_resp(self, token: bytes) -> NegTokenResp:
        try:
            resp = decode_token(token)
        except SpnegoDecodeError as exc:
            raise TransportError(None, f"{self.host}: bad SPNEGO answer: {exc}", reason=PROTOCOL) from None
        if not isinstance(resp, NegTokenResp):
            raise TransportError(None, f"{self.host}: the server answered with a NegTokenInit",
                                 reason=PROTOCOL)
        return resp

    def _answer(self, resp: NegTokenResp) -> bytes | None:
        if resp.neg_state == NegState.REJECT:
            raise TransportError(None, f"{self.host}: the server rejected the Kerberos logon",
                                 reason=CREDENTIALS)
        if resp.supported_mech is not None and resp.supported_mech not in MECH_TYPES:
            raise TransportError(
                None, f"{self.host}: the server chose {resp.supported_mech}, not Kerberos", reason=PROTOCOL
            )
        out = None
        if resp.response_token:
            # The AP-REP (mutual authentication), or a KRB-ERROR that the step turns into an error.
            out = self._gss_step(resp.response_token)
        if not self._ctx.complete:
            if out is None:
                raise TransportError(None, f"{self.host}: the Kerberos exchange stopped half way",
                                     reason=PROTOCOL)
            return encode_neg_token_resp(response_token=out)
        mech_list = encode_mech_type_list(MECH_TYPES)
        if resp.mech_list_mic is not None:
            try:
                self._ctx.verify(mech_list, resp.mech_list_mic)
            except Exception:
                raise TransportError(None, f"{self.host}: the server's mechListMIC does not verify",
                                     reason=PROTOCOL) from None
        if resp.neg_state in (NegState.ACCEPT_INCOMPLETE, NegState.REQUEST_MIC):
            # The acceptor wants the initiator's MIC over the mechanism list (RFC 4178 §5 d).
            self._done = True
            return encode_neg_token_resp(response_token=out, mech_list_mic=self._ctx.sign(mech_list))
        self._done = True
        if out is not None:
            return encode_neg_token_resp(response_token=out)
        return None

    # -- GSSAPI ------------------------------------------------------------------------------------

    def _gss_step(self, token: bytes | None) -> bytes | None:
        try:
            out: bytes | None = self._ctx.step(token)
        except Exception as exc:
            raise self._error(exc) from None
        return out

    def _error(self, exc: Exception) -> TransportError:
        """No ticket, an expired one, a KDC that refused (pyspnego's SpnegoError around a GSS status), or
        a Kerberos error from the server: all mean these credentials cannot log on."""
        text = _one_line(exc)
        what = "no usable Kerberos ticket" if isinstance(exc, self._spnego_error) else "Kerberos failed"
        return TransportError(None, f"{self.host}: {what} for {self.spn} ({text})", reason=CREDENTIALS)


__all__ = ["MECH_TYPES", "SERVICE", "KerberosInitiator"]
